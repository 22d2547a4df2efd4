//! Round 2 of a two-round leveled SET: the write, with no bootstrap.
//!
//! After round 1 ([`super::set_locate`]) the key owner knows the slot `t` to write (the
//! key's, else the first vacant one) and sends the bits of `t` as selector GGSWs, an
//! `enable` selector (0 when the table is full: nothing is written, and the server sees
//! the same call), and the new row as the key owner writes any row (key GLWE, value
//! GLWEs, an occupied vacant flag). For each part of a row, the server
//!
//! 1. **selects** the old part of slot `t` with the CMux tree of the two-round GET
//!    (`bucket::select::Tree`);
//! 2. forms the **delta** `enable ⊡ (new − old_t)`;
//! 3. **expands** it down the bucketed layout's expansion tree
//!    ([`crate::bucket::write_back::DeltaLeaves`]): slot `t` receives the delta, every
//!    other slot an encryption of 0; and adds each leaf to its slot.
//!
//! Slot `t` ends up holding `new` whatever it held before (`old_t + new − old_t`), and
//! every slot is rewritten with fresh masks, so the rows show neither the slot nor whether
//! it was an insert, an update or nothing. The vacant flag is an LWE sample, not a GLWE:
//! it travels as the constant coefficient of a GLWE (`embed_constant`, the inverse of
//! sample extraction; the other coefficients are never read), and its new value is the
//! extraction of the sum.
//!
//! Cost per slot and part: one CMux of the selection tree and one product of the
//! expansion, so about `2 (value GLWEs + 2)` external products per slot (8 for u64/u64,
//! ~0.005 PBS) and **no PBS**: a whole SET is round 1's 7 PBS per u64 slot.
//!
//! Noise ([`crate::noise::LeveledGetNoise::written`]): the written slot carries the new
//! row's own noise plus `2 · bits + 1` external products' errors (selection, enable,
//! expansion), whatever it held before; every other slot gains `bits` external products'
//! errors per SET (an encryption of 0), orders of magnitude below a PBS output, as the
//! bucketed layout's write-back ([`crate::noise::BucketNoise`]).
//!
//! Rows a server writes this way have computed masks: [`leveled_set_write_rows`] stores
//! them whole at 32 bits per coefficient ([`super::wire::RowGlwes::Server`]), ~47 KB per
//! u64/u64 slot. That is 3x the 16 KB: the one-GLWE-per-slot layout of
//! docs/leveled.md is what brings it under.
//!
//! **The two rounds must see the same table.** Round 2 writes where round 1 pointed: if
//! another SET or DELETE changed the table in between, two inserts could take the same
//! vacant slot (one entry lost) or a key could end up in two slots (a GET would sum two
//! values). The caller must make the pair atomic, e.g. refuse round 2 when the table's
//! write counter differs from the one round 1 returned (the key owner then runs both
//! rounds again).

use super::two_round::check_index_bits;
use super::wire::{decode_row, encode_written_row, StoredSlot};
use super::RowLayout;
use crate::bucket::params;
use crate::bucket::select::{add_external_product, zero_glwe, Tree};
use crate::bucket::wire::Selector;
use crate::bucket::write_back::DeltaLeaves;
use crate::envelope::KeyId;
use crate::error::{FheKvError, Result};
use rayon::prelude::*;
use tfhe::core_crypto::prelude::*;

/// A GLWE whose constant coefficient decrypts to what `lwe` decrypts to (under the big
/// LWE key, the GLWE key's coefficients in order): the inverse of extracting coefficient
/// 0. Extraction reads mask coefficient `j` of polynomial `i` as `A_i[0]` for `j = 0` and
/// `−A_i[N − j]` otherwise, so this puts `a_{i,0}` at `A_i[0]` and `−a_{i,j}` at
/// `A_i[N − j]`; the body goes to `B[0]`. The other coefficients decrypt to noise-like
/// values nobody reads. Exact (no error added).
pub(crate) fn embed_constant(lwe: &LweCiphertextOwned<u64>) -> GlweCiphertextOwned<u64> {
    let n = params::polynomial_size().0;
    let mut glwe = zero_glwe();
    let (mask, body) = lwe.get_mask_and_body();
    let mask = mask.as_ref();
    for (i, mut poly) in glwe
        .get_mut_mask()
        .as_mut_polynomial_list()
        .iter_mut()
        .enumerate()
    {
        let a = &mask[i * n..(i + 1) * n];
        let poly = poly.as_mut();
        poly[0] = a[0];
        for j in 1..n {
            poly[n - j] = a[j].wrapping_neg();
        }
    }
    glwe.get_mut_body().as_mut()[0] = *body.data;
    glwe
}

/// Coefficient 0 of `glwe` as an LWE sample under the big LWE key.
fn extract_constant(glwe: &GlweCiphertextOwned<u64>) -> LweCiphertextOwned<u64> {
    let mut lwe = LweCiphertext::new(
        0u64,
        params::lwe_dimension().to_lwe_size(),
        params::ciphertext_modulus(),
    );
    extract_lwe_sample_from_glwe_ciphertext(glwe, &mut lwe, MonomialDegree(0));
    lwe
}

/// Part `p` of a slot as a GLWE: 0 the key, then the value GLWEs, last the vacant flag.
fn part(slot: &StoredSlot, p: usize) -> GlweCiphertextOwned<u64> {
    match p {
        0 => slot.key.clone(),
        p if p <= slot.values.len() => slot.values[p - 1].clone(),
        _ => embed_constant(&slot.vacant),
    }
}

/// Round 2's query, from the key owner: the index bits of the slot to write, the enable
/// bit, and the new row (a `leveled_row` envelope, decoded by the server as any row).
pub struct LeveledSetWriteQuery {
    pub index: Vec<Selector>,
    pub enable: Selector,
    pub row: Vec<u8>,
    /// The table state round 1 answered in: the caller refuses the write if the table
    /// changed since ([`super::messages`], "Table state").
    pub state: u64,
}

/// Round 2 of a SET: write `new` into the slot whose index `index` encrypts (bit `j` in
/// `index[j]`, exactly [`super::two_round::index_bits`] of them) if `enable` encrypts 1, and rewrite every
/// slot. `new` is a row the key owner wrote (decoded as untrusted input by the caller).
pub fn leveled_set_write(
    layout: RowLayout,
    slots: &mut [StoredSlot],
    index: &[Selector],
    enable: &Selector,
    new: &StoredSlot,
) -> Result<()> {
    if slots.is_empty() {
        return Err(FheKvError::InvalidArgument("the table has no slots".into()));
    }
    check_index_bits("SET", slots.len(), index)?;
    let glwes = layout.value_glwes();
    if new.values.len() != glwes || slots.iter().any(|s| s.values.len() != glwes) {
        return Err(FheKvError::Internal("a slot of another value width".into()));
    }
    let parts = glwes + 2;
    let shared: &[StoredSlot] = slots;
    // Each part's leaves, in slot order. Parts are independent: one task each.
    let leaves: Vec<Vec<GlweCiphertextOwned<u64>>> = (0..parts)
        .into_par_iter()
        .map(|p| {
            let mut tree = Tree::new(index);
            for slot in shared {
                tree.push(part(slot, p));
            }
            let mut diff = part(new, p);
            glwe_ciphertext_sub_assign(&mut diff, &tree.finish());
            let mut delta = zero_glwe();
            add_external_product(&mut delta, enable, &diff);
            DeltaLeaves::new(index, shared.len(), delta).collect()
        })
        .collect();
    for (s, slot) in slots.iter_mut().enumerate() {
        glwe_ciphertext_add_assign(&mut slot.key, &leaves[0][s]);
        for (g, value) in slot.values.iter_mut().enumerate() {
            glwe_ciphertext_add_assign(value, &leaves[1 + g][s]);
        }
        // extraction is linear: extract(embed(v) + leaf) = v + extract(leaf)
        lwe_ciphertext_add_assign(&mut slot.vacant, &extract_constant(&leaves[parts - 1][s]));
    }
    Ok(())
}

/// Round 2 of a SET on stored rows (`leveled_row` envelopes of a table of `layout`, and
/// the query's new row, all decoded as untrusted input): the new bytes of every row, in
/// order, each stored whole ([`encode_written_row`]). Any bad row or query fails the
/// whole operation before a result is returned, so the caller writes nothing.
pub fn leveled_set_write_rows<R: AsRef<[u8]>>(
    key_id: KeyId,
    layout: RowLayout,
    rows: &[R],
    query: &LeveledSetWriteQuery,
) -> Result<Vec<Vec<u8>>> {
    let new = decode_row(&query.row, key_id, layout)?;
    let mut slots = rows
        .iter()
        .map(|bytes| decode_row(bytes.as_ref(), key_id, layout))
        .collect::<Result<Vec<_>>>()?;
    leveled_set_write(layout, &mut slots, &query.index, &query.enable, &new)?;
    slots
        .iter()
        .map(|slot| encode_written_row(key_id, layout, slot))
        .collect()
}
