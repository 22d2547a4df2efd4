//! The key owner reading and writing whole stored rows, with no server-side FHE at all:
//! the fast path behind `fhe-kv import` / `export`.
//!
//! * [`RowSealer`] encrypts a clear `(occupied, key, value)` row into exactly the stored
//!   `compact-v1` format the server writes (see [`crate::row`]): fresh encryptions of each
//!   block, packed into one GLWE by a packing key-switching key the client generates from its
//!   own secret keys (the server's compression key is the same kind of key; it needs no
//!   server key and costs no bootstrap).
//! * [`ClientKeys::open_row`] decrypts a stored row directly with the private compression
//!   GLWE key: no decompression bootstrap (which would cost one PBS per block, ~20 ms each),
//!   just one GLWE decryption per row.
//!
//! TFHE-rs 1.8 does not expose the GLWEs inside a shortint `CompressedCiphertextList`, so
//! [`packed_glwes`] re-reads the list's plain serde encoding (first field:
//! `Vec<CompressedModulusSwitchedGlweCiphertext<u64>>`). The row was conformance-checked
//! first; the unit tests pin the layout, so a TFHE-rs upgrade that changes it fails them.

use crate::envelope::{Envelope, KeyId, Kind};
use crate::error::{FheKvError, Result};
use crate::keys::ClientKeys;
use crate::params::{block_params, compression_params, limits, Width, MESSAGE_MODULUS};
use crate::row::{decode_row, StoredRow};
use tfhe::core_crypto::entities::compressed_modulus_switched_glwe_ciphertext::CompressedModulusSwitchedGlweCiphertext;
use tfhe::core_crypto::prelude::*;
use tfhe::safe_serialization::safe_serialize;
use tfhe::shortint::list_compression::CompressionKey;
use tfhe::shortint::Ciphertext;

/// A stored row in the clear. `key`/`value` are little-endian plaintexts of the table widths.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClearRow {
    pub occupied: bool,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

impl ClearRow {
    pub fn vacant(key: Width, value: Width) -> ClearRow {
        ClearRow {
            occupied: false,
            key: vec![0; key.bytes()],
            value: vec![0; value.bytes()],
        }
    }
}

/// Encrypts clear rows into the stored format. Build once per import (~1 s).
pub struct RowSealer<'a> {
    keys: &'a ClientKeys,
    compression: CompressionKey,
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
    /// A sealer for rows of this key (generates a packing key-switching key).
    pub fn row_sealer(&self) -> RowSealer<'_> {
        let (integer_ck, _, private_compression, ..) = self.hl.clone().into_raw_parts();
        let private = private_compression
            .expect("fhe_kv client keys are generated with compression enabled")
            .into_raw_parts();
        let shortint_ck = integer_ck.into_raw_parts();
        let comp = compression_params();
        let mut seeder = new_seeder();
        let mut generator = EncryptionRandomGenerator::<DefaultRandomGenerator>::new(
            seeder.seed(),
            seeder.as_mut(),
        );
        let packing_key_switching_key = allocate_and_generate_new_lwe_packing_keyswitch_key(
            &shortint_ck.encryption_key(),
            &private.post_packing_ks_key,
            comp.packing_ks_base_log(),
            comp.packing_ks_level(),
            comp.packing_ks_key_noise_distribution(),
            block_params().ciphertext_modulus,
            &mut generator,
        );
        RowSealer {
            keys: self,
            compression: CompressionKey {
                packing_key_switching_key,
                lwe_per_glwe: comp.lwe_per_glwe(),
                storage_log_modulus: comp.storage_log_modulus(),
            },
        }
    }

    /// Decrypt a stored row of a table with `key`/`value` widths. The row is decoded with
    /// the same conformance checks the server applies.
    pub fn open_row(&self, bytes: &[u8], key: Width, value: Width) -> Result<ClearRow> {
        let stored = decode_row(bytes, self.key_id, key, value)?;
        let (_, _, private_compression, ..) = self.hl.clone().into_raw_parts();
        let private = private_compression
            .expect("fhe_kv client keys are generated with compression enabled")
            .into_raw_parts();
        let mut messages = Vec::with_capacity(1 + key.blocks() + value.blocks());
        for glwe in packed_glwes(&stored)? {
            let count = glwe.bodies_count().0;
            let glwe = glwe.extract();
            let mut plain = PlaintextList::new(0u64, PlaintextCount(glwe.polynomial_size().0));
            decrypt_glwe_ciphertext(&private.post_packing_ks_key, &glwe, &mut plain);
            // Packing put each block's message in its carry bits (message · 4): with the
            // padding bit on top, one message step is 2^64 / (2 · 16) · 4 = 2^61.
            messages.extend(
                plain.as_ref()[..count]
                    .iter()
                    .map(|&p| (p.wrapping_add(1 << 60) >> 61) % MESSAGE_MODULUS),
            );
        }
        if messages.len() != 1 + key.blocks() + value.blocks() {
            return Err(FheKvError::BadPayload {
                what: "stored row",
                detail: format!("{} blocks after decryption", messages.len()),
            });
        }
        let vacant = messages[0];
        if vacant > 1 {
            return Err(FheKvError::BadPayload {
                what: "stored row",
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
}

impl RowSealer<'_> {
    /// The stored-row envelope of `row` (fresh randomness every call, so equal rows give
    /// unrelated ciphertexts).
    pub fn seal(&self, row: &ClearRow) -> Result<Vec<u8>> {
        let shortint_ck = self.keys.hl.clone().into_raw_parts().0.into_raw_parts();
        let vacant = u64::from(!row.occupied);
        let blocks: Vec<Ciphertext> = std::iter::once(vacant)
            .chain(blocks_of(&row.key))
            .chain(blocks_of(&row.value))
            .map(|m| shortint_ck.encrypt(m))
            .collect();
        let list = self.compression.compress_ciphertexts_into_list(&blocks);
        let mut payload = Vec::new();
        safe_serialize(&StoredRow::from_list(list), &mut payload, limits::ROW)
            .map_err(|e| FheKvError::Internal(format!("serializing a row: {e}")))?;
        Ok(Envelope::encode(Kind::Row, 0, self.keys.key_id, &payload))
    }

    pub fn key_id(&self) -> KeyId {
        self.keys.key_id
    }
}

/// The modulus-switched GLWEs of a stored row (see the module doc).
fn packed_glwes(stored: &StoredRow) -> Result<Vec<CompressedModulusSwitchedGlweCiphertext<u64>>> {
    #[derive(serde::Deserialize)]
    struct ListLayout {
        glwes: Vec<CompressedModulusSwitchedGlweCiphertext<u64>>,
    }
    let internal =
        |detail: String| FheKvError::Internal(format!("reading a row's GLWEs: {detail}"));
    let plain = bincode::serialize(stored.list()).map_err(|e| internal(e.to_string()))?;
    let layout: ListLayout = bincode::deserialize(&plain).map_err(|e| internal(e.to_string()))?;
    Ok(layout.glwes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::row::{decompress_row, empty_row, encode_row};
    use crate::testkeys::test_keys;

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
