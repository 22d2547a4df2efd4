//! Leveled equality: a stored key compared with a query key by external products, with
//! bootstraps only where a decision is made (the first part of the per-slot kernel of
//! docs/leveled.md).
//!
//! Today's kernels compare a key block by block: one PBS per 2-bit block plus the folds
//! of the mismatch bits, 40 PBS for a u64 key on blocks a bucketed table already holds as
//! GLWE coefficients (and 65 more to decompress a flat row first). Here the comparison
//! itself is linear and costs no bootstrap:
//!
//! * **Stored key** ([`owner`]): one GLWE under the PBS's GLWE secret key (`k = 1`,
//!   `N = 2048`, the bucket key) whose coefficient `b` holds key bit `k_b` and whose
//!   coefficient `B` (the key width) holds the constant 1, all at the block encoding
//!   `Δ = 2^59`: `K(X) = Σ_b k_b X^b + X^B`; beside it the vacant flag, an LWE sample
//!   under the big LWE key (the only part a private DELETE rewrites, [`delete`]).
//! * **Query** ([`owner`]): for each chunk `c` of at most [`CHUNK_BITS`] key bits, a GGSW
//!   of the polynomial `M_c(X) = Σ_{b ∈ c} (1 − 2 q_b) X^{−b} + (Σ_{b ∈ c} q_b) X^{−B}`.
//! * **Server** ([`equality`]): per chunk, one external product `GGSW(M_c) ⊡ GLWE(K)`; the
//!   constant coefficient of `K · M_c` is
//!   `Σ_{b ∈ c} k_b (1 − 2 q_b) + Σ_{b ∈ c} q_b = Σ_{b ∈ c} k_b ⊕ q_b`, the chunk's
//!   Hamming distance `d_c ∈ [0, 15]` — it fits the block's 4-bit plaintext space. (No
//!   other pair of terms meets at degree 0: the exponents `j − b` lie in `(−N, N)`, and
//!   `B` differs from every key-bit position.) Sample extraction turns it into an LWE
//!   under the big LWE key, a shortint block the server key can bootstrap:
//!   one PBS `[d_c ≠ 0]` per chunk, then the existing fold `[Σ = 0]` (one PBS for up to
//!   five chunks). A u64 key: 5 chunks, **6 PBS and 5 external products** (an external
//!   product costs ~0.0006 PBS here).
//!
//! Noise ([`crate::noise::LeveledEqualityNoise`]): the extracted distance carries the
//! stored key's noise times `‖M_c‖² ≤ 15 + 15²` plus one external product's error, orders
//! of magnitude below one PBS output, so it enters the PBS at the nominal noise level.
//!
//! **Selection** ([`get`]): the value is stored as lookup-table GLWEs, laid out exactly as
//! TFHE-rs lays out a many-LUT accumulator for the functions `m ↦ m · v_j` (eight 4-bit
//! nibbles per GLWE), but encrypted. Bootstrapping the match bit `m` with that encrypted
//! accumulator (`apply_many_lookup_table`) yields `m · v_j` for eight nibbles at once: a
//! u64 value costs 2 blind rotations per slot, and the answers of all slots are summed
//! with no further bootstrap (keys are unique, so at most one term is non-zero).
//!
//! **DELETE** ([`delete`]): the match bit is added to the vacant flag and bootstrapped,
//! `chunks + 2` PBS per slot (7 for u64 keys); the key and value GLWEs stay as the key
//! owner wrote them.
//!
//! **Two-round GET** ([`two_round`]): round 1 returns the found flag and the matching
//! slot's index bits as sums of match bits (6 PBS per u64 slot), round 2 selects that
//! slot's value GLWEs by a CMux tree (no bootstrap).
//!
//! **SET** in two rounds: round 1 ([`set_locate`]) is the locate plus a chain of "vacant
//! seen" bits, so the key owner learns the key's slot or the first vacant one (7 PBS per
//! u64 slot); round 2 ([`set_write`]) selects that slot's old parts, and expands
//! `new − old` down a tree of external products into every slot (no PBS). Every row it
//! writes is stored whole, masks included, at 32 bits per coefficient
//! ([`wire::RowGlwes::Server`]: ~47 KB per u64/u64 slot).
//!
//! The messages between the rounds (answers, round-2 queries) have wire formats of their
//! own ([`messages`]), decoded as untrusted input on either side.
//!
//! The SQL surface stores these rows in flat tables (`layout => 'leveled'`) of row format
//! [`ROW_FORMAT_LEVELED_V2`], [`RowFormat::OneGlwe`]: one GLWE per slot with the value's
//! nibbles as single coefficients, within 16 KB after a SET (the one-round GET rebuilds
//! the lookup tables per slot, [`repack`]); [`ROW_FORMAT_LEVELED_V1`] tables (fhe_kv
//! 0.4.0's lookup-table rows) are still served (docs/leveled.md, "One-GLWE rows").
//!
//! [`in_bucket`] packs one-GLWE slots `Z` to a bucket GLWE for the bucketed layout: one
//! external product per chunk and candidate bucket yields every candidate slot's chunk
//! distance: row format `bucket-leveled-v1` ([`crate::bucket::SlotFormat::Leveled`]).

pub mod delete;
pub mod equality;
pub mod get;
pub mod in_bucket;
pub mod messages;
pub mod owner;
pub mod owner_messages;
pub mod repack;
pub mod set_locate;
pub mod set_write;
pub mod two_round;
pub mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_in_bucket;

use crate::params::Width;
use std::ops::Range;

/// Names of the row formats of leveled tables, recorded per table in the catalog:
/// [`RowFormat::LookupTables`] (fhe_kv 0.4.0's leveled tables) and [`RowFormat::OneGlwe`]
/// (the default from fhe_kv 0.5.0).
pub const ROW_FORMAT_LEVELED_V1: &str = "leveled-v1";
pub const ROW_FORMAT_LEVELED_V2: &str = "leveled-v2";

/// Key bits per chunk: a chunk's Hamming distance must fit the block's plaintext space
/// `[0, 16)`.
pub const CHUNK_BITS: usize = 15;

/// Block encoding of the stored key's coefficients (a 4-bit plaintext space plus padding
/// bit on the 64-bit torus), the same as every shortint block.
pub const DELTA_LOG: u32 = 59;

/// How a key of `width` is cut into chunks: bits `0..bits` in order, [`CHUNK_BITS`] at a
/// time (the last chunk may be shorter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkLayout {
    pub width: Width,
}

impl ChunkLayout {
    pub fn new(width: Width) -> ChunkLayout {
        ChunkLayout { width }
    }

    /// Key bits (`B`).
    pub fn bits(&self) -> usize {
        self.width.bits() as usize
    }

    /// Coefficient of the stored GLWE that holds the constant 1 (right after the key bits).
    pub fn one_at(&self) -> usize {
        self.bits()
    }

    /// Coefficients of the stored key GLWE in use (key bits and the constant): the bodies
    /// a stored row keeps.
    pub fn used_coefficients(&self) -> usize {
        self.bits() + 1
    }

    pub fn chunks(&self) -> usize {
        self.bits().div_ceil(CHUNK_BITS)
    }

    /// The key bits of chunk `c`.
    pub fn chunk(&self, c: usize) -> Range<usize> {
        let start = c * CHUNK_BITS;
        start..(start + CHUNK_BITS).min(self.bits())
    }
}

/// How a leveled row holds its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowFormat {
    /// [`ROW_FORMAT_LEVELED_V1`]: the value as lookup-table GLWEs beside the key GLWE,
    /// eight nibbles each, in the many-LUT layout the selection bootstraps with.
    LookupTables,
    /// One GLWE per slot: the value's nibbles are single coefficients of the key GLWE,
    /// right after the constant (`B + 1 ..`); a one-round GET rebuilds the lookup tables
    /// per slot ([`repack`]). A row a SET computed is one mask and `B + 1 + nibbles`
    /// bodies instead of a mask per part with every body of the tables (docs/leveled.md).
    OneGlwe,
}

impl RowFormat {
    /// The format a catalog `row_format` names, if it is a leveled one.
    pub fn from_name(name: &str) -> Option<RowFormat> {
        match name {
            ROW_FORMAT_LEVELED_V1 => Some(RowFormat::LookupTables),
            ROW_FORMAT_LEVELED_V2 => Some(RowFormat::OneGlwe),
            _ => None,
        }
    }

    /// The catalog's name of this format.
    pub fn name(self) -> &'static str {
        match self {
            RowFormat::LookupTables => ROW_FORMAT_LEVELED_V1,
            RowFormat::OneGlwe => ROW_FORMAT_LEVELED_V2,
        }
    }
}

/// A table of the leveled format: key and value widths, and how the value is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowLayout {
    pub key: ChunkLayout,
    pub value: Width,
    pub format: RowFormat,
}

/// Value nibbles per lookup-table GLWE: a many-LUT over a match bit (input degree 1, two
/// boxes per function) holds `16 / 2 = 8` functions `m ↦ m · v_j`.
pub const NIBBLES_PER_GLWE: usize = 8;

impl RowLayout {
    /// The [`RowFormat::LookupTables`] layout (`leveled-v1` tables).
    pub fn new(key: Width, value: Width) -> RowLayout {
        RowLayout {
            key: ChunkLayout::new(key),
            value,
            format: RowFormat::LookupTables,
        }
    }

    /// The [`RowFormat::OneGlwe`] layout.
    pub fn one_glwe(key: Width, value: Width) -> RowLayout {
        RowLayout::of_format(key, value, RowFormat::OneGlwe)
    }

    /// The layout of a table of these widths and row format.
    pub fn of_format(key: Width, value: Width, format: RowFormat) -> RowLayout {
        RowLayout {
            format,
            ..RowLayout::new(key, value)
        }
    }

    /// 4-bit pieces of the value, least significant first.
    pub fn value_nibbles(&self) -> usize {
        self.value.bits() as usize / 4
    }

    /// Lookup-table GLWEs stored beside the key GLWE (none in one-GLWE rows).
    pub fn value_glwes(&self) -> usize {
        match self.format {
            RowFormat::LookupTables => self.value_nibbles().div_ceil(NIBBLES_PER_GLWE),
            RowFormat::OneGlwe => 0,
        }
    }

    /// Coefficients of the key GLWE in use, the bodies a stored row keeps: the key bits
    /// and the constant, and in one-GLWE rows the value's nibbles after them.
    pub fn key_glwe_bodies(&self) -> usize {
        match self.format {
            RowFormat::LookupTables => self.key.used_coefficients(),
            RowFormat::OneGlwe => self.key.used_coefficients() + self.value_nibbles(),
        }
    }

    /// Where a one-GLWE row holds nibble `j`: coefficient `B + 1 + j`. Above the
    /// constant, so it never meets a query exponent `−b` (`b ≤ B`) at degree 0 and the
    /// equality is unchanged.
    pub fn nibble_positions(&self) -> Vec<usize> {
        (0..self.value_nibbles())
            .map(|j| self.key.used_coefficients() + j)
            .collect()
    }

    /// GLWEs the two-round GET's round 2 returns: the lookup tables, or the one GLWE.
    pub fn fetched_glwes(&self) -> usize {
        match self.format {
            RowFormat::LookupTables => self.value_glwes(),
            RowFormat::OneGlwe => 1,
        }
    }
}

/// Bit `b` of a little-endian key.
pub(crate) fn bit(key_le: &[u8], b: usize) -> u64 {
    u64::from((key_le[b / 8] >> (b % 8)) & 1)
}
