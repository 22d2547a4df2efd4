//! The key owner reading and writing whole stored rows, with no server-side FHE at all:
//! the fast path behind `fhe-kv import` / `export`.
//!
//! A stored row (`compact-v1`, see [`crate::row`]) is a shortint `CompressedCiphertextList`:
//! GLWE ciphertexts under the private *compression* GLWE key whose first coefficients carry
//! the blocks' messages (scaled into the carry bits, `m · 4 · Δ`), modulus-switched to the
//! storage modulus. The key owner holds that GLWE key, so:
//!
//! * [`RowSealer`] writes a row by **encrypting that GLWE directly** (one GLWE encryption per
//!   up to `lwe_per_glwe` blocks) instead of encrypting every block as an LWE and packing
//!   them with the packing key-switching key, which costs ~0.5 s per 161-block row. The
//!   fresh GLWE has only the encryption noise of the compression key's own distribution,
//!   less than a packing key-switch adds, so the server's decompression (and its conformance
//!   check, which it applies to every row) treats it exactly like its own rows.
//! * [`ClientKeys::open_row`] reads a row with one GLWE decryption: no decompression
//!   bootstrap (which would cost one PBS per block, ~20 ms each).
//!
//! TFHE-rs 1.8 does not expose the GLWEs inside a `CompressedCiphertextList`;
//! [`crate::row`] reaches them through a mirror of the list's plain serde layout (see
//! `row::packed_glwes`), only on lists that passed the conformance check.

use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use crate::keys::ClientKeys;
use crate::params::{block_params, compression_params, limits, Width, MESSAGE_MODULUS};
use crate::row::{
    decode_block_list, decode_row, list_of_glwes, packed_glwes, StoredRow, PACKED_STEP_LOG,
};
use tfhe::core_crypto::entities::compressed_modulus_switched_glwe_ciphertext::CompressedModulusSwitchedGlweCiphertext;
use tfhe::core_crypto::prelude::*;
use tfhe::safe_serialization::safe_serialize;
use tfhe::shortint::list_compression::CompressionPrivateKeys;

/// A stored row in the clear. `key`/`value` are little-endian plaintexts of the table widths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearRow {
    pub occupied: bool,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl ClearRow {
    /// A row from its decrypted block messages `[vacant, key…, value…]` (each in [0, 4)).
    pub(crate) fn from_messages(
        messages: &[u64],
        key: Width,
        what: &'static str,
    ) -> Result<ClearRow> {
        let vacant = messages[0];
        if vacant > 1 {
            return Err(FheKvError::BadPayload {
                what,
                detail: format!("vacant flag decrypted to {vacant}"),
            });
        }
        let (key_blocks, value_blocks) = messages[1..].split_at(key.blocks());
        Ok(ClearRow {
            occupied: vacant == 0,
            key: le_of_blocks(key_blocks),
            value: le_of_blocks(value_blocks),
        })
    }

    pub fn vacant(key: Width, value: Width) -> ClearRow {
        ClearRow {
            occupied: false,
            key: vec![0; key.bytes()],
            value: vec![0; value.bytes()],
        }
    }

    /// The row of a slot holding `Some((key, value))`, or a vacant one of these widths.
    pub fn of_slot(slot: Option<&(Vec<u8>, Vec<u8>)>, key: Width, value: Width) -> ClearRow {
        match slot {
            Some((k, v)) => ClearRow {
                occupied: true,
                key: k.clone(),
                value: v.clone(),
            },
            None => ClearRow::vacant(key, value),
        }
    }
}

/// Seals clear rows into the stored format and opens stored rows, answers and statuses
/// with the client's private compression key (borrowed: building one is free).
pub struct RowSealer<'a> {
    keys: &'a ClientKeys,
    private: &'a CompressionPrivateKeys,
}

/// Split a little-endian plaintext into 2-bit block messages, least significant first.
fn blocks_of(le: &[u8]) -> impl Iterator<Item = u64> + '_ {
    le.iter()
        .flat_map(|byte| (0..4).map(move |i| u64::from((byte >> (2 * i)) & 3)))
}

fn le_of_blocks(blocks: &[u64]) -> Vec<u8> {
    blocks
        .chunks(4)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |acc, (i, &m)| acc | ((m as u8) << (2 * i)))
        })
        .collect()
}

impl ClientKeys {
    /// A sealer for rows of this key.
    pub fn row_sealer(&self) -> RowSealer<'_> {
        RowSealer {
            keys: self,
            private: &self.compression,
        }
    }

    /// Decrypt one stored row (see [`RowSealer::open`]).
    pub fn open_row(&self, bytes: &[u8], key: Width, value: Width) -> Result<ClearRow> {
        self.row_sealer().open(bytes, key, value)
    }
}

impl RowSealer<'_> {
    /// Decrypt a stored row of a table with `key`/`value` widths. The row is decoded with
    /// the same conformance checks the server applies.
    pub fn open(&self, bytes: &[u8], key: Width, value: Width) -> Result<ClearRow> {
        let stored = decode_row(bytes, self.keys.key_id, key, value)?;
        let messages =
            self.open_messages(&stored, 1 + key.blocks() + value.blocks(), "stored row")?;
        ClearRow::from_messages(&messages, key, "stored row")
    }
}

impl RowSealer<'_> {
    /// The block messages (each in [0, 4)) of a decoded compressed list that must hold
    /// exactly `blocks` blocks: one GLWE decryption per packed GLWE, no bootstrap.
    pub fn open_messages(
        &self,
        list: &StoredRow,
        blocks: usize,
        what: &'static str,
    ) -> Result<Vec<u64>> {
        let messages = self.open_packed(&packed_glwes(list)?, blocks, what)?;
        Ok(messages.into_iter().map(|m| m % MESSAGE_MODULUS).collect())
    }

    /// The padded 3-bit plaintexts (in [0, 8)) of packed GLWEs that must hold exactly
    /// `blocks` bodies in all: the message with its padding bit, which a valid block keeps
    /// clear and a sum of small terms (the locate round's mismatch counts) may use.
    pub(crate) fn open_packed(
        &self,
        glwes: &[CompressedModulusSwitchedGlweCiphertext<u64>],
        blocks: usize,
        what: &'static str,
    ) -> Result<Vec<u64>> {
        let mut messages = Vec::with_capacity(blocks);
        for glwe in glwes {
            let count = glwe.bodies_count().0;
            let glwe = glwe.extract();
            let mut plain = PlaintextList::new(0u64, PlaintextCount(glwe.polynomial_size().0));
            decrypt_glwe_ciphertext(&self.private.post_packing_ks_key, &glwe, &mut plain);
            messages.extend(
                plain.as_ref()[..count]
                    .iter()
                    .map(|&p| p.wrapping_add(1 << (PACKED_STEP_LOG - 1)) >> PACKED_STEP_LOG),
            );
        }
        if messages.len() != blocks {
            return Err(FheKvError::BadPayload {
                what,
                detail: format!(
                    "{} blocks after decryption, expected {blocks}",
                    messages.len()
                ),
            });
        }
        Ok(messages)
    }

    /// Decrypt a GET result envelope (see [`crate::codec::encode_get_result`]): the value
    /// width and the little-endian value, `None` when the key is absent.
    pub fn open_get_result(&self, bytes: &[u8]) -> Result<(Width, Option<Vec<u8>>)> {
        let what = "get result";
        let env = Envelope::parse(bytes, what)?;
        env.expect(what, Kind::GetResult, Some(self.keys.key_id))?;
        let width = Width::from_bits(env.bits.into())?;
        let list = decode_block_list(env.payload, 1 + width.blocks(), what)?;
        let messages = self.open_messages(&list, 1 + width.blocks(), what)?;
        match messages[0] {
            0 => Ok((width, None)),
            1 => Ok((width, Some(le_of_blocks(&messages[1..])))),
            other => Err(FheKvError::BadPayload {
                what,
                detail: format!("found flag decrypted to {other}"),
            }),
        }
    }

    /// Decrypt a SET/DELETE status envelope of `kind` to its code.
    pub fn open_status(&self, kind: Kind, bytes: &[u8]) -> Result<u8> {
        let what = "status";
        let env = Envelope::parse(bytes, what)?;
        env.expect(what, kind, Some(self.keys.key_id))?;
        let list = decode_block_list(env.payload, 1, what)?;
        Ok(self.open_messages(&list, 1, what)?[0] as u8)
    }
}

impl RowSealer<'_> {
    /// The stored-row envelope of `row` (fresh randomness every call, so equal rows give
    /// unrelated ciphertexts).
    pub fn seal(&self, row: &ClearRow) -> Result<Vec<u8>> {
        let comp = compression_params();
        let glwe_key = &self.private.post_packing_ks_key;
        let polynomial_size = glwe_key.polynomial_size();
        let ciphertext_modulus = block_params().ciphertext_modulus;
        let messages: Vec<u64> = std::iter::once(u64::from(!row.occupied))
            .chain(blocks_of(&row.key))
            .chain(blocks_of(&row.value))
            .collect();
        let mut seeder = new_seeder();
        let mut generator = EncryptionRandomGenerator::<DefaultRandomGenerator>::new(
            seeder.seed(),
            seeder.as_mut(),
        );
        let glwes = messages
            .chunks(comp.lwe_per_glwe().0)
            .map(|chunk| {
                let mut plain = PlaintextList::new(0u64, PlaintextCount(polynomial_size.0));
                for (p, &m) in plain.as_mut().iter_mut().zip(chunk) {
                    *p = m << PACKED_STEP_LOG;
                }
                let mut glwe = GlweCiphertext::new(
                    0u64,
                    glwe_key.glwe_dimension().to_glwe_size(),
                    polynomial_size,
                    ciphertext_modulus,
                );
                encrypt_glwe_ciphertext(
                    glwe_key,
                    &mut glwe,
                    &plain,
                    comp.packing_ks_key_noise_distribution(),
                    &mut generator,
                );
                CompressedModulusSwitchedGlweCiphertext::compress(
                    &glwe,
                    comp.storage_log_modulus(),
                    LweCiphertextCount(chunk.len()),
                )
            })
            .collect();
        let list = list_of_glwes(glwes)?;
        let mut payload = Vec::new();
        safe_serialize(&StoredRow::from_list(list), &mut payload, limits::ROW)
            .map_err(|e| FheKvError::Internal(format!("serializing a row: {e}")))?;
        Ok(Envelope::encode(Kind::Row, 0, self.keys.key_id, &payload))
    }

    pub fn key_id(&self) -> KeyId {
        self.keys.key_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{oblivious_get, KernelEnv};
    use crate::row::{decompress_row, empty_row, encode_row};
    use crate::testkeys::test_keys;
    use tfhe::shortint::Ciphertext;

    fn clear(occupied: bool, key: &[u8], value: &[u8]) -> ClearRow {
        ClearRow {
            occupied,
            key: key.to_vec(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn sealed_rows_open_on_the_client_and_decompress_on_the_server() {
        let (client, server) = test_keys();
        let sealer = client.row_sealer();
        let (kw, vw) = (Width::W16, Width::W32);
        for row in [
            clear(true, &[0x34, 0x12], &[1, 2, 3, 0xff]),
            clear(false, &[0, 0], &[0, 0, 0, 0]),
            clear(true, &[0xff, 0xff], &[0xa5, 0x5a, 0, 7]),
        ] {
            let bytes = sealer.seal(&row).unwrap();
            assert_eq!(client.open_row(&bytes, kw, vw).unwrap(), row);
            // The server accepts and decompresses it like its own rows.
            let stored = decode_row(&bytes, server.key_id, kw, vw).unwrap();
            let decompressed = decompress_row(server, &stored, kw, vw).unwrap();
            let ck = client.hl.clone().into_raw_parts().0;
            let dec = |b: Vec<Ciphertext>| -> u64 {
                ck.decrypt_radix::<u64>(&tfhe::integer::RadixCiphertext::from(b))
            };
            assert_eq!(dec(vec![decompressed.vacant]), u64::from(!row.occupied));
            assert_eq!(
                dec(decompressed.key),
                u64::from(u16::from_le_bytes([row.key[0], row.key[1]]))
            );
            assert_eq!(
                dec(decompressed.value),
                u64::from(u32::from_le_bytes(row.value[..4].try_into().unwrap()))
            );
        }
    }

    #[test]
    fn the_get_kernel_reads_client_sealed_rows() {
        let (client, server) = test_keys();
        let sealer = client.row_sealer();
        let (kw, vw) = (Width::W8, Width::W16);
        let rows: Vec<Vec<u8>> = [
            clear(true, &[5], &[0x34, 0x12]),
            clear(false, &[9], &[0xff, 0xff]),
            clear(true, &[9], &[0x21, 0x43]),
        ]
        .iter()
        .map(|r| sealer.seal(r).unwrap())
        .collect();
        let env = KernelEnv {
            keys: server,
            key_width: kw,
            value_width: vw,
            pool: None,
            batch_rows: 8,
        };
        for (key, want) in [(5u64, Some(0x1234u64)), (9, Some(0x4321)), (7, None)] {
            let query = crate::codec::decode_integer(
                &client.encrypt_key(key, kw).unwrap(),
                "key",
                Kind::QueryKey,
                client.key_id,
                kw,
            )
            .unwrap();
            let out = oblivious_get(&env, &query, &rows, &mut |_, _| {}).unwrap();
            let result = crate::codec::encode_get_result(server, vw, out.found, out.value).unwrap();
            assert_eq!(client.decrypt_get(&result).unwrap(), want, "key {key}");
        }
    }

    #[test]
    fn server_written_rows_open_on_the_client() {
        let (client, server) = test_keys();
        let (kw, vw) = (Width::W64, Width::W256);
        let bytes = encode_row(server, &empty_row(server, kw, vw)).unwrap();
        assert_eq!(
            client.open_row(&bytes, kw, vw).unwrap(),
            ClearRow::vacant(kw, vw)
        );
        // Wide rows span two GLWEs when they exceed lwe_per_glwe blocks.
        let sealer = client.row_sealer();
        let (kw, vw) = (Width::W256, Width::W256);
        let row = clear(true, &[7u8; 32], &(0..32).collect::<Vec<u8>>());
        let bytes = sealer.seal(&row).unwrap();
        assert_eq!(client.open_row(&bytes, kw, vw).unwrap(), row);
    }

    #[test]
    fn rows_of_the_wrong_shape_are_refused() {
        let (client, _) = test_keys();
        let bytes = client
            .row_sealer()
            .seal(&ClearRow::vacant(Width::W8, Width::W8))
            .unwrap();
        assert!(client.open_row(&bytes, Width::W16, Width::W8).is_err());
        assert!(client
            .open_row(&bytes[..bytes.len() - 1], Width::W8, Width::W8)
            .is_err());
    }
}
