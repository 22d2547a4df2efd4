//! The bucketed layout (row format `bucket-v1`): bootstraps per operation that do not
//! grow with the table. docs/bucketed.md explains the design; in short:
//!
//! * The table is two **halves** of `m` **buckets** each; a bucket holds `Z` slots
//!   `(vacant, key, value)` as the coefficients of one GLWE ciphertext under the PBS's
//!   GLWE key ([`params`]), one Postgres row per bucket.
//! * The key owner maps every key to one candidate bucket per half with a keyed PRF
//!   ([`hash`]) and sends the two bucket indices as GGSW-encrypted **selector** bits next
//!   to the encrypted key ([`wire`]).
//! * The server selects both candidate buckets with CMux trees over every bucket
//!   (external products only), extracts their `2Z` slots as shortint blocks (no
//!   bootstrap: they are LWE samples under the big key), and runs the equality-mask
//!   kernels on those slots only ([`kernels`]).
//! * SET and DELETE pack the changed candidate slots back into a GLWE delta and add it to
//!   **every** bucket through an expansion tree driven by the same selectors
//!   ([`write_back`]): every row of the table changes, by an encryption of zero except at
//!   the candidates, so the server learns neither bucket nor slot.
//!
//! Module map (who runs what): [`hash`] and [`client`] are the key owner's; [`select`],
//! [`kernels`] and [`write_back`] the server's; [`wire`] the formats between them;
//! [`overflow`] the load-limit analysis.

pub mod client;
pub mod hash;
pub mod kernels;
pub mod ops;
pub mod overflow;
pub mod params;
pub mod select;
pub mod wire;
pub mod write_back;

use crate::error::{FheKvError, Result};
use crate::leveled::in_bucket::LeveledBucketLayout;
use crate::params::Width;

/// Name of the row format of bucketed tables, recorded per table in the catalog.
pub const ROW_FORMAT_BUCKET_V1: &str = "bucket-v1";

/// Name of the row format of bucketed tables of leveled slots
/// ([`crate::leveled::in_bucket`]).
pub const ROW_FORMAT_BUCKET_LEVELED_V1: &str = "bucket-leveled-v1";

/// How a bucket lays out its slots in the bucket GLWE. Both are one GLWE per bucket at 32
/// bits per coefficient, selected and written back the same way; they differ in which
/// coefficients a slot takes and in the kernels that read them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotFormat {
    /// `bucket-v1`: `(vacant, key blocks, value blocks)`, 2-bit messages.
    Blocks,
    /// `bucket-leveled-v1`: a leveled slot (key bits, constant, value nibbles, vacant
    /// flag last), [`crate::leveled::in_bucket::LeveledBucketLayout`].
    Leveled,
}

impl SlotFormat {
    /// The catalog's name of this format.
    pub fn row_format(self) -> &'static str {
        match self {
            SlotFormat::Blocks => ROW_FORMAT_BUCKET_V1,
            SlotFormat::Leveled => ROW_FORMAT_BUCKET_LEVELED_V1,
        }
    }

    /// The format a catalog row-format name stands for (`None`: not a bucketed format).
    pub fn of_row_format(name: &str) -> Option<SlotFormat> {
        match name {
            ROW_FORMAT_BUCKET_V1 => Some(SlotFormat::Blocks),
            ROW_FORMAT_BUCKET_LEVELED_V1 => Some(SlotFormat::Leveled),
            _ => None,
        }
    }
}

/// Slots per bucket when `create_table` is not told otherwise: a SET refuses a new key
/// with probability < 10^-9 up to ~58% load ([`overflow::load_limit`]), for 12 candidate
/// slots per operation. Six slots of the widest rows (u256/u256, 257 blocks) still fit
/// one bucket GLWE.
pub const DEFAULT_BUCKET_SLOTS: usize = 6;

/// The shape of a bucketed table: widths, slots per bucket, buckets per half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketLayout {
    pub key: Width,
    pub value: Width,
    /// Slots per bucket (`Z`).
    pub bucket_slots: usize,
    /// Buckets in each of the two halves (`m`).
    pub buckets_per_half: usize,
    /// How a bucket's slots are laid out (and which kernels read them).
    pub format: SlotFormat,
}

impl BucketLayout {
    /// Check a `bucket-v1` layout: at least one bucket per half, and a bucket's slots fit
    /// one GLWE.
    pub fn new(
        key: Width,
        value: Width,
        bucket_slots: usize,
        buckets_per_half: usize,
    ) -> Result<BucketLayout> {
        Self::of_format(
            key,
            value,
            bucket_slots,
            buckets_per_half,
            SlotFormat::Blocks,
        )
    }

    /// Check a layout of either slot format.
    pub fn of_format(
        key: Width,
        value: Width,
        bucket_slots: usize,
        buckets_per_half: usize,
        format: SlotFormat,
    ) -> Result<BucketLayout> {
        let layout = BucketLayout {
            key,
            value,
            bucket_slots,
            buckets_per_half,
            format,
        };
        let max = layout.max_bucket_slots();
        if bucket_slots == 0 || bucket_slots > max {
            return Err(FheKvError::InvalidArgument(format!(
                "bucket_slots must be between 1 and {max} for {key} keys and {value} values \
                 (a bucket's slots share one {}-coefficient ciphertext), got {bucket_slots}",
                params::coefficients()
            )));
        }
        if buckets_per_half == 0 || index_bits(buckets_per_half) > params::MAX_INDEX_BITS {
            return Err(FheKvError::InvalidArgument(format!(
                "a bucketed table has 1 to 2^{} buckets per half, got {buckets_per_half}",
                params::MAX_INDEX_BITS
            )));
        }
        Ok(layout)
    }

    /// The smallest layout of `bucket_slots`-slot buckets with at least `capacity` slots.
    pub fn for_capacity(
        key: Width,
        value: Width,
        bucket_slots: usize,
        capacity: usize,
    ) -> Result<BucketLayout> {
        let per_pair = 2 * bucket_slots.max(1);
        BucketLayout::new(key, value, bucket_slots, capacity.div_ceil(per_pair).max(1))
    }

    /// Coefficients of one slot: `1 + K + V` blocks (vacant flag, key blocks, value
    /// blocks) in `bucket-v1`, a leveled slot's width in `bucket-leveled-v1`.
    pub fn slot_blocks(&self) -> usize {
        match self.format {
            SlotFormat::Blocks => 1 + self.key.blocks() + self.value.blocks(),
            SlotFormat::Leveled => LeveledBucketLayout::width_for(self.key, self.value),
        }
    }

    /// The coefficient of slot `i`'s vacant flag: first in `bucket-v1`, last in
    /// `bucket-leveled-v1`.
    pub fn vacant_at(&self, i: usize) -> usize {
        match self.format {
            SlotFormat::Blocks => self.slot_offset(i),
            SlotFormat::Leveled => self.slot_offset(i) + self.slot_blocks() - 1,
        }
    }

    /// The leveled slot layout of a `bucket-leveled-v1` table; an error naming the
    /// operation for a `bucket-v1` table.
    pub fn leveled(&self, operation: &str) -> Result<LeveledBucketLayout> {
        match self.format {
            SlotFormat::Leveled => {
                LeveledBucketLayout::new(self.key, self.value, self.bucket_slots)
            }
            SlotFormat::Blocks => Err(FheKvError::InvalidArgument(format!(
                "{operation} needs a {ROW_FORMAT_BUCKET_LEVELED_V1} table, this one is \
                 {ROW_FORMAT_BUCKET_V1}"
            ))),
        }
    }

    /// Check that the table's slots are `bucket-v1` blocks (the block kernels' input).
    pub fn expect_blocks(&self, operation: &str) -> Result<()> {
        match self.format {
            SlotFormat::Blocks => Ok(()),
            SlotFormat::Leveled => Err(FheKvError::InvalidArgument(format!(
                "{operation} runs on {ROW_FORMAT_BUCKET_V1} tables; this one is \
                 {ROW_FORMAT_BUCKET_LEVELED_V1}, whose slots the leveled kernels read"
            ))),
        }
    }

    /// The most slots one bucket GLWE holds for these widths.
    pub fn max_bucket_slots(&self) -> usize {
        params::coefficients() / self.slot_blocks()
    }

    /// Coefficients of a bucket that hold slots (the rest stay unused).
    pub fn used_coefficients(&self) -> usize {
        self.bucket_slots * self.slot_blocks()
    }

    /// First coefficient of slot `i` of a bucket.
    pub fn slot_offset(&self, i: usize) -> usize {
        i * self.slot_blocks()
    }

    /// Rows of the table (buckets of both halves).
    pub fn buckets(&self) -> usize {
        2 * self.buckets_per_half
    }

    /// Slots of the table.
    pub fn capacity(&self) -> usize {
        self.buckets() * self.bucket_slots
    }

    /// Selector bits per half: ⌈log2 m⌉, at least 1.
    pub fn index_bits(&self) -> usize {
        index_bits(self.buckets_per_half)
    }

    /// Write-backs (the key owner's writes, the server's SETs and DELETEs: each rewrites
    /// every bucket) a table of this layout takes after its rows were last sealed by the
    /// key owner (import, grow, refresh) before its stored noise could reach what the
    /// kernels assume. Every write-back adds an expansion path and a storage rounding to
    /// every bucket, so only a fresh sealing (a rehash) brings the count back to 0.
    ///
    /// * `bucket-v1`: until a block reaches [`select::STORED_NOISE_LEVEL`] nominal
    ///   variances ([`crate::noise::BucketNoise::writes_until_level`]), > 10^6.
    /// * `bucket-leveled-v1`: until the worst chunk distance reaches one PBS output
    ///   ([`crate::noise::LeveledBucketNoise::writes_until_nominal`], each write counted
    ///   twice, as measured), 2.1 · 10^5 at 14 selector bits.
    pub fn write_budget(&self) -> u64 {
        let budget = match self.format {
            SlotFormat::Blocks => {
                crate::noise::BucketNoise::new(self.index_bits(), self.used_coefficients())
                    .writes_until_level(select::STORED_NOISE_LEVEL as f64)
            }
            SlotFormat::Leveled => {
                crate::noise::LeveledBucketNoise::new(self.index_bits()).writes_until_nominal()
            }
        };
        budget.max(0.0).floor() as u64
    }

    /// Candidate slots per operation, in the interleaved order SET fills them:
    /// `(left 0, right 0, left 1, right 1, …)` as `(half, slot)` pairs.
    pub fn candidate_order(&self) -> impl Iterator<Item = (usize, usize)> {
        (0..self.bucket_slots).flat_map(|slot| [(0, slot), (1, slot)])
    }
}

/// The stored row of an empty bucket: a trivial GLWE (zero mask) whose flag coefficients
/// say vacant. The server knows a new table is empty anyway; the first write-back gives
/// every bucket a real mask.
pub fn empty_bucket_row(key_id: crate::envelope::KeyId, layout: &BucketLayout) -> Result<Vec<u8>> {
    use tfhe::core_crypto::prelude::*;
    let mut glwe = GlweCiphertext::new(
        0u64,
        params::glwe_size(),
        params::polynomial_size(),
        params::ciphertext_modulus(),
    );
    // Vacant slots as the key owner writes them (flag 1, key and value 0; a leveled
    // slot also carries the constant coefficient 1 every chunk distance reads), as a
    // trivial GLWE: the first write-back gives every row a mask.
    let vacant =
        vec![crate::client_rows::ClearRow::vacant(layout.key, layout.value); layout.bucket_slots];
    let plain = client::bucket_plaintext(layout, &vacant)?;
    glwe.get_mut_body().as_mut().copy_from_slice(plain.as_ref());
    wire::encode_row(key_id, layout, &glwe)
}

/// Buckets per half for `keys` keys in buckets of `bucket_slots` within the load limit.
pub fn buckets_for_keys(bucket_slots: usize, keys: usize) -> usize {
    let z = bucket_slots.max(1);
    let alpha = overflow::load_limit(z);
    if alpha <= 0.0 {
        return keys.max(1);
    }
    let mut m = ((keys as f64 / (alpha * 2.0 * z as f64)).ceil() as usize).max(1);
    while overflow::load_limit_keys(z, 2 * m * z) < keys {
        m += 1;
    }
    m
}

/// Number of selector bits to address `n` buckets: ⌈log2 n⌉, at least 1.
pub fn index_bits(n: usize) -> usize {
    (usize::BITS - n.saturating_sub(1).leading_zeros()).max(1) as usize
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn write_budgets_follow_the_noise_models() {
        let leveled = |per_half| {
            BucketLayout::of_format(Width::W64, Width::W64, 6, per_half, SlotFormat::Leveled)
                .unwrap()
        };
        // 100,000 slots: 14 selector bits, the budget docs/leveled.md states.
        let big = leveled(8334);
        assert!(
            (200_000..230_000).contains(&big.write_budget()),
            "{}",
            big.write_budget()
        );
        // Fewer levels, less noise per write-back: small tables take more writes.
        assert!(leveled(16).write_budget() > big.write_budget());
        for per_half in [84, 834, 8334] {
            println!(
                "u64/u64, {} slots: write budget {} (leveled slots), {} (bucket-v1)",
                12 * per_half,
                leveled(per_half).write_budget(),
                BucketLayout::new(Width::W64, Width::W64, 6, per_half)
                    .unwrap()
                    .write_budget()
            );
        }
        let blocks = BucketLayout::new(Width::W64, Width::W64, 6, 8334).unwrap();
        assert!(
            blocks.write_budget() > 1_000_000,
            "{}",
            blocks.write_budget()
        );
        for bits in [8usize, 256] {
            let w = Width::from_bits(bits as u32).unwrap();
            let l = BucketLayout::of_format(w, w, 1, 1 << 20, SlotFormat::Leveled).unwrap();
            assert!(l.write_budget() > 0, "{bits}-bit keys, 20 levels");
        }
    }

    #[test]
    fn layouts_round_capacity_up_to_whole_bucket_pairs() {
        let l = BucketLayout::for_capacity(Width::W64, Width::W64, 6, 100_000).unwrap();
        assert_eq!(l.buckets_per_half, 8334);
        assert_eq!(l.capacity(), 100_008);
        assert_eq!(l.index_bits(), 14);
        assert_eq!(l.slot_blocks(), 65);
        assert_eq!(l.used_coefficients(), 390);
        assert_eq!(l.max_bucket_slots(), 31);
        let by_keys =
            BucketLayout::new(Width::W64, Width::W64, 6, buckets_for_keys(6, 1000)).unwrap();
        assert!(super::overflow::load_limit_keys(6, by_keys.capacity()) >= 1000);
        let smaller =
            BucketLayout::new(Width::W64, Width::W64, 6, by_keys.buckets_per_half - 1).unwrap();
        assert!(super::overflow::load_limit_keys(6, smaller.capacity()) < 1000);
        let tiny = BucketLayout::for_capacity(Width::W8, Width::W8, 4, 1).unwrap();
        assert_eq!((tiny.buckets_per_half, tiny.capacity()), (1, 8));
        assert_eq!(tiny.index_bits(), 1);
        // u256/u256: 257 blocks per slot, at most 7 per bucket.
        assert!(BucketLayout::for_capacity(Width::W256, Width::W256, 7, 10).is_ok());
        assert!(BucketLayout::for_capacity(Width::W256, Width::W256, 8, 10).is_err());
        assert!(BucketLayout::for_capacity(Width::W8, Width::W8, 0, 10).is_err());
        let order: Vec<_> = tiny.candidate_order().collect();
        assert_eq!(
            order,
            [
                (0, 0),
                (1, 0),
                (0, 1),
                (1, 1),
                (0, 2),
                (1, 2),
                (0, 3),
                (1, 3)
            ]
        );
    }
}
