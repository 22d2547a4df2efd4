//! The key owner's side of a bucketed table: build queries (the encrypted key plus its
//! candidate buckets as selector bits), read a bucket read's answer, and seal/open whole
//! buckets for import, export and rehashing (all without server-side FHE).

use super::params;
use super::wire::{self, decode_read_result, decode_row};
use super::{BucketLayout, SlotFormat};
use crate::client_rows::ClearRow;
use crate::error::{FheKvError, Result};
use crate::kernels::{DeleteStatus, SetStatus};
use crate::keys::ClientKeys;
use crate::params::{Width, MESSAGE_MODULUS};
use tfhe::core_crypto::prelude::*;

/// A block message `m` sits at `m · Δ` in a stored bucket, `Δ = 2^63 / 16`: the shortint
/// encoding of a block with its padding bit (what sample extraction hands to the PBS).
const DELTA_LOG: u32 = 59;

/// Split a little-endian plaintext into 2-bit block messages, least significant first.
fn blocks_of(le: &[u8]) -> impl Iterator<Item = u64> + '_ {
    le.iter()
        .flat_map(|byte| (0..4).map(move |i| u64::from((byte >> (2 * i)) & 3)))
}

impl ClientKeys {
    /// The candidate buckets `(left, right)` of the key integer `key_le` in `layout`.
    pub fn bucket_candidates(&self, layout: &BucketLayout, key_le: &[u8]) -> (usize, usize) {
        self.buckets.candidates(key_le, layout)
    }

    /// A query key for a bucketed table (envelope `bucket_query_key`): the encrypted key
    /// `key_le` (little-endian, the table's key width) and its two candidate buckets as
    /// GGSW selector bits (~96 KiB per bit, `2 ⌈log2 m⌉` bits).
    pub fn encrypt_bucket_key_le(&self, layout: &BucketLayout, key_le: &[u8]) -> Result<Vec<u8>> {
        let key = match layout.format {
            SlotFormat::Blocks => self.encrypt_key_le(key_le, layout.key)?,
            SlotFormat::Leveled => {
                self.leveled_query_key(layout.leveled("a query")?.row.key, key_le)?
            }
        };
        let selectors =
            wire::encrypt_selectors(&self.glwe, layout, self.bucket_candidates(layout, key_le));
        wire::encode_query(self.key_id, layout, key, selectors)
    }

    /// The key owner's handle on one key of a bucketed table: its candidate buckets as
    /// selector bits (encrypted once, ~96 KiB per bit), for a bucket read and, when
    /// writing, for the write that follows it.
    pub fn bucket_access(&self, layout: &BucketLayout, key_le: &[u8]) -> BucketAccess {
        BucketAccess {
            layout: *layout,
            key_le: key_le.to_vec(),
            selectors: wire::encrypt_selectors(
                &self.glwe,
                layout,
                self.bucket_candidates(layout, key_le),
            ),
        }
    }

    /// The bucket read of `key_le` (envelope `bucket_selectors`, argument of `fhe_fetch`):
    /// its two candidate buckets as selector bits, no key.
    pub fn bucket_read_query(&self, layout: &BucketLayout, key_le: &[u8]) -> Result<Vec<u8>> {
        self.bucket_access(layout, key_le).read_query(self)
    }

    /// Read a bucket read's answer for `key_le`: its value (little-endian, the table's
    /// value width), `None` if neither candidate bucket holds the key. One GLWE
    /// decryption per bucket, no bootstrap.
    pub fn open_bucket_read(
        &self,
        layout: &BucketLayout,
        answer: &[u8],
        key_le: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        let read = ReadBuckets::open(self, layout, answer)?;
        Ok(read
            .find(key_le)?
            .map(|(h, i)| read.slots[h][i].value.clone()))
    }

    /// Decrypt a stored bucket (a row of a bucketed table) into its slots.
    pub fn open_bucket(&self, layout: &BucketLayout, bytes: &[u8]) -> Result<Vec<ClearRow>> {
        let glwe = decode_row(bytes, self.key_id, layout)?;
        self.open_bucket_glwe(layout, &glwe, "stored bucket")
    }

    fn open_bucket_glwe(
        &self,
        layout: &BucketLayout,
        glwe: &GlweCiphertextOwned<u64>,
        what: &'static str,
    ) -> Result<Vec<ClearRow>> {
        if layout.format == SlotFormat::Leveled {
            return self.open_leveled_bucket_rows(&layout.leveled("opening a bucket")?, glwe, what);
        }
        let mut plain = PlaintextList::new(0u64, PlaintextCount(params::coefficients()));
        decrypt_glwe_ciphertext(&self.glwe, glwe, &mut plain);
        let messages: Vec<u64> = plain.as_ref()[..layout.used_coefficients()]
            .iter()
            .map(|&p| p.wrapping_add(1 << (DELTA_LOG - 1)) >> DELTA_LOG)
            .collect();
        if let Some(bad) = messages.iter().find(|&&m| m >= MESSAGE_MODULUS) {
            return Err(FheKvError::BadPayload {
                what,
                detail: format!("a block decrypted to {bad} (not a 2-bit message)"),
            });
        }
        messages
            .chunks(layout.slot_blocks())
            .map(|slot| ClearRow::from_messages(slot, layout.key, what))
            .collect()
    }

    /// Seal a bucket of clear slots (exactly `bucket_slots` of them) as a stored row: a
    /// fresh GLWE encryption under the bucket key, so its noise is far below a PBS
    /// output's and the server treats it like its own rows.
    pub fn seal_bucket(&self, layout: &BucketLayout, slots: &[ClearRow]) -> Result<Vec<u8>> {
        if slots.len() != layout.bucket_slots {
            return Err(FheKvError::InvalidArgument(format!(
                "a bucket holds {} slots, {} were given",
                layout.bucket_slots,
                slots.len()
            )));
        }
        let glwe = encrypt_bucket_glwe(&self.glwe, &bucket_plaintext(layout, slots)?);
        wire::encode_row(self.key_id, layout, &glwe)
    }
}

/// The plaintext of a bucket of clear slots (exactly `bucket_slots` of them), laid out as
/// the table's slot format says. A vacant slot keeps its key and value (a tombstone reads
/// back as it is stored), so the difference of two such plaintexts is exactly a write.
pub(crate) fn bucket_plaintext(
    layout: &BucketLayout,
    slots: &[ClearRow],
) -> Result<PlaintextListOwned<u64>> {
    for slot in slots {
        check_width(&slot.key, layout.key, "key")?;
        check_width(&slot.value, layout.value, "value")?;
    }
    if layout.format == SlotFormat::Leveled {
        return layout
            .leveled("a bucket plaintext")?
            .plaintext_of_rows(slots);
    }
    let mut plain = PlaintextList::new(0u64, PlaintextCount(params::coefficients()));
    for (i, slot) in slots.iter().enumerate() {
        let messages = std::iter::once(u64::from(!slot.occupied))
            .chain(blocks_of(&slot.key))
            .chain(blocks_of(&slot.value));
        let at = layout.slot_offset(i);
        for (p, m) in plain.as_mut()[at..at + layout.slot_blocks()]
            .iter_mut()
            .zip(messages)
        {
            *p = m << DELTA_LOG;
        }
    }
    Ok(plain)
}

/// The two candidate buckets of a bucket read, decrypted, and the table state they came
/// from.
struct ReadBuckets {
    /// `slots[half][slot]`
    slots: [Vec<ClearRow>; 2],
    state: u64,
}

impl ReadBuckets {
    fn open(keys: &ClientKeys, layout: &BucketLayout, answer: &[u8]) -> Result<ReadBuckets> {
        let what = "bucket read result";
        let ([left, right], state) = decode_read_result(answer, keys.key_id, layout)?;
        Ok(ReadBuckets {
            slots: [
                keys.open_bucket_glwe(layout, &left, what)?,
                keys.open_bucket_glwe(layout, &right, what)?,
            ],
            state,
        })
    }

    /// Where `key_le` is: `(half, slot)`.
    fn find(&self, key_le: &[u8]) -> Result<Option<(usize, usize)>> {
        let mut found = None;
        for (h, bucket) in self.slots.iter().enumerate() {
            for (i, row) in bucket.iter().enumerate() {
                if row.occupied && row.key == key_le {
                    if found.is_some() {
                        return Err(FheKvError::BadPayload {
                            what: "bucket read result",
                            detail: "two slots hold the key (the table is corrupt)".into(),
                        });
                    }
                    found = Some((h, i));
                }
            }
        }
        Ok(found)
    }
}

/// See [`ClientKeys::bucket_access`].
pub struct BucketAccess {
    layout: BucketLayout,
    key_le: Vec<u8>,
    selectors: wire::BucketSelectors,
}

impl BucketAccess {
    /// The `bucket_selectors` envelope of the read (argument of `fhe_fetch`).
    pub fn read_query(&self, keys: &ClientKeys) -> Result<Vec<u8>> {
        wire::encode_selectors(keys.key_id, &self.layout, &self.selectors)
    }

    /// The key's value in a read's answer (`None`: absent).
    pub fn get(&self, keys: &ClientKeys, answer: &[u8]) -> Result<Option<Vec<u8>>> {
        let read = ReadBuckets::open(keys, &self.layout, answer)?;
        Ok(read
            .find(&self.key_le)?
            .map(|(h, i)| read.slots[h][i].value.clone()))
    }

    /// The write (argument of `fhe_write`) that upserts `value_le` after the read whose
    /// answer is `answer`: the key's slot if present, else the first vacant candidate slot
    /// in the order the server's SET fills them. The status is decided here, by the key
    /// owner; the server sees a write either way (a zero delta when the table is full).
    pub fn upsert(
        &self,
        keys: &ClientKeys,
        answer: &[u8],
        value_le: &[u8],
    ) -> Result<(SetStatus, Vec<u8>)> {
        check_width(value_le, self.layout.value, "value")?;
        let read = ReadBuckets::open(keys, &self.layout, answer)?;
        let mut new = read.slots.clone();
        let status = match read.find(&self.key_le)? {
            Some((h, i)) => {
                new[h][i].value = value_le.to_vec();
                SetStatus::Updated
            }
            None => match self
                .layout
                .candidate_order()
                .find(|&(h, i)| !read.slots[h][i].occupied)
            {
                Some((h, i)) => {
                    new[h][i] = ClearRow {
                        occupied: true,
                        key: self.key_le.clone(),
                        value: value_le.to_vec(),
                    };
                    SetStatus::Inserted
                }
                None => SetStatus::Full,
            },
        };
        Ok((status, self.write(keys, &read, &new)?))
    }

    /// The write that deletes the key after the read: its flag becomes vacant (the pair
    /// stays, encrypted, like the server's tombstone); with `scrub`, the key and value of
    /// every vacant candidate slot are zeroed too.
    pub fn remove(
        &self,
        keys: &ClientKeys,
        answer: &[u8],
        scrub: bool,
    ) -> Result<(DeleteStatus, Vec<u8>)> {
        let read = ReadBuckets::open(keys, &self.layout, answer)?;
        let mut new = read.slots.clone();
        let status = match read.find(&self.key_le)? {
            Some((h, i)) => {
                new[h][i].occupied = false;
                DeleteStatus::Deleted
            }
            None => DeleteStatus::NotFound,
        };
        if scrub {
            for slot in new.iter_mut().flatten().filter(|s| !s.occupied) {
                *slot = ClearRow::vacant(self.layout.key, self.layout.value);
            }
        }
        Ok((status, self.write(keys, &read, &new)?))
    }

    /// The write taking the read's buckets to `new`: per half, an encryption of the
    /// message differences (zero where nothing changes).
    fn write(
        &self,
        keys: &ClientKeys,
        read: &ReadBuckets,
        new: &[Vec<ClearRow>; 2],
    ) -> Result<Vec<u8>> {
        let delta = |h: usize| -> Result<_> {
            let mut plain = bucket_plaintext(&self.layout, &new[h])?;
            let old = bucket_plaintext(&self.layout, &read.slots[h])?;
            for (p, o) in plain.as_mut().iter_mut().zip(old.as_ref()) {
                *p = p.wrapping_sub(*o);
            }
            Ok(wire::encrypt_delta(&keys.glwe, &plain))
        };
        wire::encode_write(
            keys.key_id,
            &self.layout,
            self.selectors.clone(),
            [delta(0)?, delta(1)?],
            read.state,
        )
    }
}

fn check_width(le: &[u8], width: Width, what: &str) -> Result<()> {
    if le.len() != width.bytes() {
        return Err(FheKvError::InvalidArgument(format!(
            "a {what} of {} bytes in a {width} column",
            le.len()
        )));
    }
    Ok(())
}

/// One slot's content as placed by the key owner: `(key, value)`, `None` when vacant.
pub type PlacedSlot = Option<(Vec<u8>, Vec<u8>)>;

/// Where a set of entries goes in a bucketed table: the server's SET rule, replayed by
/// the key owner (import, rehash). Slots fill in candidate order — the first free slot of
/// `(left 0, right 0, left 1, right 1, …)` — so a table built here looks like one built by
/// SETs, and the load limit of [`super::overflow`] applies to it.
pub struct Placement {
    layout: BucketLayout,
    /// `slots[bucket][slot]`: the key/value there (`None`: vacant).
    slots: Vec<Vec<PlacedSlot>>,
}

impl Placement {
    pub fn new(layout: BucketLayout) -> Placement {
        Placement {
            layout,
            slots: vec![vec![None; layout.bucket_slots]; layout.buckets()],
        }
    }

    /// The table as it is: `rows[bucket]` opened with [`ClientKeys::open_bucket`].
    pub fn from_rows(layout: BucketLayout, rows: Vec<Vec<ClearRow>>) -> Result<Placement> {
        if rows.len() != layout.buckets() {
            return Err(FheKvError::InvalidArgument(format!(
                "{} buckets given, the layout has {}",
                rows.len(),
                layout.buckets()
            )));
        }
        Ok(Placement {
            layout,
            slots: rows
                .into_iter()
                .map(|bucket| {
                    bucket
                        .into_iter()
                        .map(|r| r.occupied.then_some((r.key, r.value)))
                        .collect()
                })
                .collect(),
        })
    }

    pub fn layout(&self) -> &BucketLayout {
        &self.layout
    }

    /// Every entry, bucket by bucket.
    pub fn entries(&self) -> impl Iterator<Item = &(Vec<u8>, Vec<u8>)> {
        self.slots.iter().flatten().flatten()
    }

    /// Insert or update `key → value`; `Ok(false)` when the key is new and both candidate
    /// buckets are full (nothing changed), like a SET answering `full`.
    pub fn upsert(&mut self, keys: &ClientKeys, key: Vec<u8>, value: Vec<u8>) -> Result<bool> {
        let (left, right) = keys.bucket_candidates(&self.layout, &key);
        let buckets = [left, self.layout.buckets_per_half + right];
        for &b in &buckets {
            for slot in self.slots[b].iter_mut().flatten() {
                if slot.0 == key {
                    slot.1 = value;
                    return Ok(true);
                }
            }
        }
        for (half, i) in self.layout.candidate_order() {
            let slot = &mut self.slots[buckets[half]][i];
            if slot.is_none() {
                *slot = Some((key, value));
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The stored rows of this placement, in bucket order, freshly sealed.
    pub fn seal(
        &self,
        keys: &ClientKeys,
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Vec<Vec<u8>>> {
        let total = self.slots.len();
        self.slots
            .iter()
            .enumerate()
            .map(|(i, bucket)| {
                let clear: Vec<ClearRow> = bucket
                    .iter()
                    .map(|slot| {
                        ClearRow::of_slot(slot.as_ref(), self.layout.key, self.layout.value)
                    })
                    .collect();
                let row = keys.seal_bucket(&self.layout, &clear);
                progress(i + 1, total);
                row
            })
            .collect()
    }
}

/// A fresh encryption of `plain` under the bucket (PBS GLWE) key.
pub(crate) fn encrypt_bucket_glwe(
    glwe_key: &GlweSecretKeyOwned<u64>,
    plain: &PlaintextListOwned<u64>,
) -> GlweCiphertextOwned<u64> {
    let mut seeder = new_seeder();
    let mut generator =
        EncryptionRandomGenerator::<DefaultRandomGenerator>::new(seeder.seed(), seeder.as_mut());
    let mut glwe = GlweCiphertext::new(
        0u64,
        params::glwe_size(),
        params::polynomial_size(),
        params::ciphertext_modulus(),
    );
    encrypt_glwe_ciphertext(
        glwe_key,
        &mut glwe,
        plain,
        params::noise_distribution(),
        &mut generator,
    );
    glwe
}
