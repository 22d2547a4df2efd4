//! Lookup tables of the kernels, built once per operation (~32 KB each).
//! Inputs are block plaintexts in `[0, 16)` (message + carry space); every table states the
//! linear combination it expects and the range that combination stays in.

use tfhe::shortint::server_key::{
    BivariateLookupTableOwned, LookupTableOwned, ManyLookupTableOwned,
};
use tfhe::shortint::ServerKey;

/// The constant of `x = k − q + NEQ_OFFSET`: what `ServerKey::unchecked_sub` would add for
/// a right operand of degree 3, written out so the table does not depend on it.
pub(crate) const NEQ_OFFSET: u64 = 4;

pub(crate) struct Luts {
    /// `x ↦ [x ≠ NEQ_OFFSET]` on `x = k − q + NEQ_OFFSET` (see `super::block_neq`).
    pub neq: LookupTableOwned,
    /// `x ↦ [x ≠ 0]`: OR of a group of bits.
    pub nonzero: LookupTableOwned,
    /// `x ↦ [x = 0]`: NOR of a group of bits (last step of `match`).
    pub is_zero: LookupTableOwned,
    /// `x ↦ x mod 4`: cleans a one-hot sum of 2-bit values (at most one term is non-zero),
    /// and is the first step of input cleaning.
    pub low2: LookupTableOwned,
    /// `y ↦ y` on `[0, 4)`, `0` elsewhere: second step of input cleaning for SET's
    /// masked update (a negated block `-y` lands at `32 − y` and comes out as `−0`).
    pub in_range: LookupTableOwned,
    /// bivariate `(m, v) ↦ m ? v : 0` on `4m + v` (GET selection).
    pub select: BivariateLookupTableOwned,
    /// bivariate `(m, v) ↦ m ? 0 : v` on `4m + v` (scrubbing DELETE: `vacant ? 0 : b`).
    pub keep_unless: BivariateLookupTableOwned,
    /// `x ↦ 4·[x ≠ 0]`: OR of match bits, pre-scaled for the `write` combination.
    pub found4: LookupTableOwned,
    /// on `x = vacant + 2·before ∈ [0,3]`: `[2·(x = 1), [x ≠ 0]]` = (first_free pre-scaled,
    /// before of the next row). Two outputs from one blind rotation (many-LUT).
    pub prefix: ManyLookupTableOwned,
    /// on `z = m + 2·first_free + 4·found ∈ [0,7]`: `[8·write, insert]` with
    /// `write = m ∨ insert`, `insert = first_free ∧ ¬found`. Two outputs from one blind
    /// rotation (many-LUT; two functions leave 8 input values each, exactly `z`'s range).
    pub write8_insert: ManyLookupTableOwned,
    /// on `y = new − old + 4 + 8·write ∈ [1,15]`: `write ? (new − old) mod 8 : 0`, so that
    /// `old + d ≡ write ? new : old (mod 8)` (see `set::masked_update`).
    pub delta8: LookupTableOwned,
    /// on `x = 4·found + any_free`: 2 = updated, 1 = inserted, 3 = full.
    pub set_status: LookupTableOwned,
}

impl Luts {
    pub fn new(sks: &ServerKey) -> Luts {
        let prefix_first_free = |x: u64| 2 * u64::from(x == 1);
        let prefix_before = |x: u64| u64::from(x != 0);
        // z = m + 2·first_free + 4·found
        let insert = |z: u64| (z >> 1) & 1 & (1 - ((z >> 2) & 1));
        let write8 = |z: u64| 8 * ((z & 1) | insert(z));
        Luts {
            neq: sks.generate_lookup_table(|x| u64::from(x != NEQ_OFFSET)),
            nonzero: sks.generate_lookup_table(|x| u64::from(x != 0)),
            is_zero: sks.generate_lookup_table(|x| u64::from(x == 0)),
            low2: sks.generate_lookup_table(|x| x % 4),
            in_range: sks.generate_lookup_table(|y| if y < 4 { y } else { 0 }),
            select: sks.generate_lookup_table_bivariate(|m, v| if m == 1 { v } else { 0 }),
            keep_unless: sks.generate_lookup_table_bivariate(|m, v| if m == 1 { 0 } else { v }),
            found4: sks.generate_lookup_table(|x| 4 * u64::from(x != 0)),
            prefix: sks.generate_many_lookup_table(&[&prefix_first_free, &prefix_before]),
            write8_insert: sks.generate_many_lookup_table(&[&write8, &insert]),
            delta8: sks.generate_lookup_table(|y| {
                if y >= 8 {
                    // y - 12 = new - old ∈ [-3, 3]; its residue mod 8 is in [0, 7].
                    (y + 8 - 12) % 8
                } else {
                    0
                }
            }),
            set_status: sks.generate_lookup_table(|x| {
                let (found, any_free) = (x >> 2, x & 3);
                if found != 0 {
                    super::SetStatus::Updated as u64
                } else if any_free != 0 {
                    super::SetStatus::Inserted as u64
                } else {
                    super::SetStatus::Full as u64
                }
            }),
        }
    }
}
