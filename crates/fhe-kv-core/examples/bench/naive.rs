//! The naive baseline: the textbook composition with the TFHE-rs integer API on the same
//! rows: decompress, `eq`, boolean AND/OR, `if_then_else`, carry-propagating `add`.
//! Writing the rows back (recompression) is left out of the naive SET/DELETE, which
//! flatters the baseline slightly.

use fhe_kv_core::keys::ServerKeys;
use fhe_kv_core::row::{decode_row, decompress_row};
use fhe_kv_core::Width;
use rayon::prelude::*;
use tfhe::integer::prelude::*;
use tfhe::integer::{BooleanBlock, IntegerCiphertext, RadixCiphertext, ServerKey};
use tfhe::shortint::Ciphertext;

pub struct Naive<'a> {
    server: &'a ServerKeys,
    isk: ServerKey,
    kw: Width,
    vw: Width,
}

type Decoded = (BooleanBlock, RadixCiphertext, RadixCiphertext);

impl<'a> Naive<'a> {
    pub fn new(server: &'a ServerKeys, kw: Width, vw: Width) -> Self {
        Naive {
            server,
            isk: ServerKey::from_raw_parts(server.sks.clone()),
            kw,
            vw,
        }
    }

    /// Decompress a row: (occupied, key, value).
    fn decode(&self, bytes: &[u8]) -> Decoded {
        let stored = decode_row(bytes, self.server.key_id, self.kw, self.vw).unwrap();
        let row = decompress_row(self.server, &stored, self.kw, self.vw).unwrap();
        let occupied = self
            .isk
            .boolean_bitnot(&BooleanBlock::new_unchecked(row.vacant));
        (
            occupied,
            RadixCiphertext::from_blocks(row.key),
            RadixCiphertext::from_blocks(row.value),
        )
    }

    fn matches(&self, (occ, k, _): &Decoded, q: &RadixCiphertext) -> BooleanBlock {
        self.isk
            .boolean_bitand(occ, &self.isk.eq_parallelized(k, q))
    }

    pub fn get(&self, rows: &[Vec<u8>], query: &[Ciphertext]) -> (BooleanBlock, RadixCiphertext) {
        let isk = &self.isk;
        let q = RadixCiphertext::from_blocks(query.to_vec());
        let zero: RadixCiphertext = isk.create_trivial_zero_radix(self.vw.blocks());
        rows.par_iter()
            .map(|bytes| {
                let d = self.decode(bytes);
                let eq = self.matches(&d, &q);
                let sel = isk.if_then_else_parallelized(&eq, &d.2, &zero);
                (eq, sel)
            })
            .reduce(
                || (isk.create_trivial_boolean_block(false), zero.clone()),
                |(f1, v1), (f2, v2)| (isk.boolean_bitor(&f1, &f2), isk.add_parallelized(&v1, &v2)),
            )
    }

    pub fn set(
        &self,
        rows: &[Vec<u8>],
        query: &[Ciphertext],
        value: &[Ciphertext],
    ) -> Vec<Decoded> {
        let isk = &self.isk;
        let q = RadixCiphertext::from_blocks(query.to_vec());
        let v = RadixCiphertext::from_blocks(value.to_vec());
        let decoded: Vec<Decoded> = rows.par_iter().map(|b| self.decode(b)).collect();
        let eqs: Vec<BooleanBlock> = decoded.par_iter().map(|d| self.matches(d, &q)).collect();
        let found = eqs
            .iter()
            .skip(1)
            .fold(eqs[0].clone(), |a, b| isk.boolean_bitor(&a, b));
        let mut before = isk.create_trivial_boolean_block(false);
        let mut writes = Vec::with_capacity(rows.len());
        for ((occ, _, _), eq) in decoded.iter().zip(&eqs) {
            let free = isk.boolean_bitnot(occ);
            let first_free = isk.boolean_bitand(&free, &isk.boolean_bitnot(&before));
            before = isk.boolean_bitor(&before, &free);
            let insert = isk.boolean_bitand(&first_free, &isk.boolean_bitnot(&found));
            writes.push(isk.boolean_bitor(eq, &insert));
        }
        decoded
            .par_iter()
            .zip(writes.par_iter())
            .map(|((occ, k, val), w)| {
                (
                    isk.boolean_bitor(occ, w),
                    isk.if_then_else_parallelized(w, &q, k),
                    isk.if_then_else_parallelized(w, &v, val),
                )
            })
            .collect()
    }

    /// Same semantics as fhe_kv's DELETE: the matching slot's flag is cleared; with
    /// `scrub`, every vacant slot's key and value are zeroed (`if_then_else`).
    pub fn delete(
        &self,
        rows: &[Vec<u8>],
        query: &[Ciphertext],
        scrub: bool,
    ) -> (BooleanBlock, Vec<Decoded>) {
        let isk = &self.isk;
        let q = RadixCiphertext::from_blocks(query.to_vec());
        let zero_k: RadixCiphertext = isk.create_trivial_zero_radix(self.kw.blocks());
        let zero_v: RadixCiphertext = isk.create_trivial_zero_radix(self.vw.blocks());
        let out: Vec<(BooleanBlock, Decoded)> = rows
            .par_iter()
            .map(|bytes| {
                let d = self.decode(bytes);
                let eq = self.matches(&d, &q);
                let occ = isk.boolean_bitand(&d.0, &isk.boolean_bitnot(&eq));
                let (k, v) = if scrub {
                    (
                        isk.if_then_else_parallelized(&occ, &d.1, &zero_k),
                        isk.if_then_else_parallelized(&occ, &d.2, &zero_v),
                    )
                } else {
                    (d.1, d.2)
                };
                (eq, (occ, k, v))
            })
            .collect();
        let found = out
            .iter()
            .skip(1)
            .fold(out[0].0.clone(), |a, (b, _)| isk.boolean_bitor(&a, b));
        (found, out.into_iter().map(|(_, d)| d).collect())
    }
}
