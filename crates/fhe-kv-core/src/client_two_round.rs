//! The key owner's side of the two-round GET (see [`crate::two_round`]): read the locate
//! answer, build the fetch query, open the fetched row.

use crate::client_rows::ClearRow;
use crate::envelope::{Envelope, Kind};
use crate::error::{FheKvError, Result};
use crate::keys::ClientKeys;
use crate::params::{limits, Width, MESSAGE_MODULUS};
use crate::row::{decode_block_list_within, packed_glwes};
use crate::two_round::{decode_fetch_result, encrypt_fetch_query, locate_groups};

/// Where the locate round found a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Located {
    /// The slot that holds the key.
    Slot(usize),
    /// No slot holds the key.
    Absent,
}

impl ClientKeys {
    /// Read one key's locate answer for a table of `capacity` slots with `key`-wide keys.
    pub fn open_locate(&self, bytes: &[u8], key: Width, capacity: usize) -> Result<Located> {
        let what = "locate result";
        let env = Envelope::parse(bytes, what)?;
        env.expect(what, Kind::LocateResult, Some(self.key_id))?;
        env.expect_bits(what, key.bits())?;
        let groups = locate_groups(key);
        let blocks = capacity * groups;
        let list = decode_block_list_within(env.payload, blocks, what, limits::LOCATE_RESULT)?;
        let sums = self
            .row_sealer()
            .open_packed(&packed_glwes(&list)?, blocks, what)?;
        // Each sum is read in [0, 8), which holds every possible sum (≤ LOCATE_GROUP = 7).
        let mut hits = sums
            .chunks(groups)
            .enumerate()
            .filter(|(_, slot)| slot.iter().all(|&s| s == 0))
            .map(|(i, _)| i);
        match (hits.next(), hits.next()) {
            (None, _) => Ok(Located::Absent),
            (Some(slot), None) => Ok(Located::Slot(slot)),
            (Some(a), Some(b)) => Err(FheKvError::BadPayload {
                what,
                detail: format!("slots {a} and {b} both hold the key (the table is corrupt)"),
            }),
        }
    }

    /// The fetch query for a locate answer. After a miss it selects a uniformly random slot:
    /// the server must see a fetch either way, or it would learn whether the key exists.
    pub fn fetch_query(&self, located: Located, capacity: usize) -> Result<Vec<u8>> {
        let slot = match located {
            Located::Slot(slot) => slot,
            Located::Absent => random_below(capacity),
        };
        encrypt_fetch_query(
            &self.compression.post_packing_ks_key,
            self.key_id,
            slot,
            capacity,
        )
    }

    /// Open a fetch answer: the selected stored row in the clear.
    pub fn open_fetch(&self, bytes: &[u8], key: Width, value: Width) -> Result<ClearRow> {
        let what = "fetch result";
        let blocks = 1 + key.blocks() + value.blocks();
        let result = decode_fetch_result(bytes, self.key_id, blocks)?;
        let messages = self.row_sealer().open_packed(&result.glwes, blocks, what)?;
        if let Some(bad) = messages.iter().find(|&&m| m >= MESSAGE_MODULUS) {
            return Err(FheKvError::BadPayload {
                what,
                detail: format!("a block decrypted to {bad}"),
            });
        }
        ClearRow::from_messages(&messages, key, what)
    }

    /// The GET answer of a two-round exchange for the query key `key_le` (little-endian,
    /// `key` wide): the value when the key was located and the fetched slot still holds
    /// it; `None` after a miss. A fetched slot that no longer holds the key means a writer
    /// changed the table between the rounds (run both in one REPEATABLE READ transaction).
    pub fn open_two_round(
        &self,
        located: Located,
        fetched: &[u8],
        key_le: &[u8],
        key: Width,
        value: Width,
    ) -> Result<Option<Vec<u8>>> {
        let row = self.open_fetch(fetched, key, value)?;
        match located {
            Located::Absent => Ok(None),
            Located::Slot(_) if row.occupied && row.key == key_le => Ok(Some(row.value)),
            Located::Slot(slot) => Err(FheKvError::InvalidArgument(format!(
                "slot {slot} no longer holds the key: the table changed between the locate \
                 and fetch rounds (run both in one REPEATABLE READ transaction)"
            ))),
        }
    }
}

/// A uniformly random slot (rejection sampling over OS randomness via TFHE-rs' seeder).
pub(crate) fn random_below(n: usize) -> usize {
    let mut seeder = tfhe::core_crypto::prelude::new_seeder();
    let bound = n as u128;
    let zone = u128::MAX - u128::MAX % bound;
    loop {
        let x = seeder.seed().0;
        if x < zone {
            return (x % bound) as usize;
        }
    }
}
