//! Hostile-input helpers shared by the corpus tests (`reliability.rs`, `leveled.rs`):
//! mutations of a genuine envelope (header fields, lengths, kinds, widths, key_ids,
//! sizes, structural payload fields, bit flips), each with what the extension must
//! answer.

use fhe_kv_core::Kind;

/// Bytes of an envelope header.
pub const HEADER: usize = 32;

/// What a hostile case must produce.
#[derive(Clone, Copy)]
pub enum Expect {
    /// An ERROR whose message contains the fragment.
    Error(&'static str),
    /// A mutated TFHE payload may still decode to a valid ciphertext (of garbage): then
    /// the call succeeds. If it errors, the message must contain the fragment.
    ErrorOrGarbage(&'static str),
}

/// Offsets where two serializations of the same shape agree on a non-zero byte that
/// starts a run: the structural fields (lengths, counts, dimensions, moduli, type
/// names) of TFHE-rs' versioned serialization, as opposed to random mask/body bytes.
pub fn structural_fields(a: &[u8], b: &[u8]) -> Vec<usize> {
    let fixed = |i: usize| a[i] == b[i] && a[i] != 0;
    (HEADER..a.len().min(b.len()))
        .filter(|&i| fixed(i) && !fixed(i - 1))
        .collect()
}

/// `bytes` with the little-endian u64 at `at` replaced by `value` (clipped at the end).
pub fn forge_u64(bytes: &[u8], at: usize, value: u64) -> Vec<u8> {
    let mut out = bytes.to_vec();
    let le = value.to_le_bytes();
    let n = (out.len() - at).min(8);
    out[at..at + n].copy_from_slice(&le[..n]);
    out
}

/// Keep the header's payload length consistent with the bytes that follow.
pub fn fix_length(mut bytes: Vec<u8>) -> Vec<u8> {
    let len = (bytes.len() - HEADER) as u64;
    bytes[24..32].copy_from_slice(&len.to_le_bytes());
    bytes
}

pub fn with_payload(envelope: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = envelope[..HEADER].to_vec();
    out.extend_from_slice(payload);
    fix_length(out)
}

pub fn header_flip_expectation(offset: usize) -> &'static str {
    match offset {
        0..=3 => "bad magic",
        4 => "format version",
        5 => "kind",
        6 | 7 => "bits wide",
        8..=23 => "was made for key_id",
        _ => "header declares",
    }
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failing case is reproducible.
pub fn pseudo_random(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// One mutated argument: (description, bytes, expectation).
pub type Mutation = (String, Option<Vec<u8>>, Expect);

/// Mutations of one envelope `good` (`twin`: another envelope of the same shape, to tell
/// structural bytes from random ones). `fragment`: the message of payload-level
/// failures; `fields`/`flips`: how many structural fields to forge and bits to flip;
/// `limit`: the payload size limit of this kind of envelope.
pub fn envelope_mutations(
    good: &[u8],
    twin: &[u8],
    fragment: &'static str,
    fields: usize,
    flips: usize,
    limit: usize,
) -> Vec<Mutation> {
    let mut out: Vec<Mutation> = Vec::new();
    let len = good.len();
    out.push(("empty".into(), Some(vec![]), Expect::Error("it is empty")));
    for n in [1, 4, 8, 16, 24, 31] {
        out.push((
            format!("truncated to {n} bytes"),
            Some(good[..n].to_vec()),
            Expect::Error("shorter than the 32-byte header"),
        ));
    }
    for n in [32, 33, 40, len / 2, len - 1] {
        out.push((
            format!("truncated to {n} bytes"),
            Some(good[..n].to_vec()),
            Expect::Error("header declares"),
        ));
    }
    out.push((
        "one byte appended".into(),
        Some([good, &[0]].concat()),
        Expect::Error("header declares"),
    ));
    // truncated payload with the length fixed up: the header is valid, TFHE must refuse
    for n in [
        0,
        1,
        8,
        16,
        64,
        (len - HEADER) / 2,
        len - HEADER - 8,
        len - HEADER - 1,
    ] {
        out.push((
            format!("payload cut to {n} bytes, length fixed"),
            Some(with_payload(good, &good[HEADER..HEADER + n])),
            Expect::Error(fragment),
        ));
    }
    out.push((
        "payload padded by 8 bytes, length fixed".into(),
        Some(fix_length([good, &[0u8; 8]].concat())),
        Expect::ErrorOrGarbage(fragment),
    ));
    // every header byte with one bit flipped
    for i in 0..HEADER {
        let mut b = good.to_vec();
        b[i] ^= 1 << (i % 8);
        out.push((
            format!("header byte {i} bit {} flipped", i % 8),
            Some(b),
            Expect::Error(header_flip_expectation(i)),
        ));
    }
    // length field forged
    for declared in [0u64, 1, (len - HEADER + 1) as u64, 1 << 32, u64::MAX] {
        out.push((
            format!("payload length forged to {declared}"),
            Some(forge_u64(good, 24, declared)),
            Expect::Error("header declares"),
        ));
    }
    // unknown kinds: 0, the first kind no fhe_kv version defines, and the top of the byte
    let first_unknown = (1..=u8::MAX)
        .find(|&k| Kind::from_u8(k).is_none())
        .expect("a free kind byte");
    for kind in [0u8, first_unknown, 200, 255] {
        let mut b = good.to_vec();
        b[5] = kind;
        out.push((
            format!("unknown kind {kind}"),
            Some(b),
            Expect::Error("unknown kind"),
        ));
    }
    // the leveled messages' kinds, other than this envelope's own: a wrong kind
    let leveled = (1..=u8::MAX).filter(|&k| {
        k != good[5] && Kind::from_u8(k).is_some_and(|kind| kind.name().starts_with("leveled_"))
    });
    for kind in leveled {
        let mut b = good.to_vec();
        b[5] = kind;
        out.push((
            format!("leveled kind {kind}"),
            Some(b),
            Expect::Error("has envelope kind 'leveled_"),
        ));
    }
    // forged widths
    for bits in [0u8, 7, 9, 128, 255] {
        let mut b = good.to_vec();
        b[6] = bits;
        out.push((
            format!("width byte forged to {bits}"),
            Some(b),
            Expect::Error("bits wide"),
        ));
    }
    // forged key_ids
    for (name, id) in [
        ("all-zero", [0u8; 16]),
        ("all-ones", [0xff; 16]),
        ("random", {
            let r = pseudo_random(7, 16);
            r.try_into().unwrap()
        }),
    ] {
        let mut b = good.to_vec();
        b[8..24].copy_from_slice(&id);
        out.push((
            format!("{name} key_id"),
            Some(b),
            Expect::Error("was made for key_id"),
        ));
    }
    // over the size limit, header consistent
    for size in [limit + 1, (4 << 20).max(2 * limit)] {
        out.push((
            format!("{size}-byte payload (over the limit)"),
            Some(with_payload(good, &pseudo_random(size as u64, size))),
            Expect::Error("larger than the limit"),
        ));
    }
    // garbage of a valid-looking shape
    out.push((
        "random bytes".into(),
        Some(pseudo_random(11, len)),
        Expect::Error("not an fhe_kv envelope"),
    ));
    out.push((
        "valid header, random payload".into(),
        Some(with_payload(good, &pseudo_random(13, len - HEADER))),
        Expect::Error(fragment),
    ));
    // forged structural fields of the TFHE payload: lengths, block counts, dimensions,
    // moduli, version tags, type names
    for &at in structural_fields(good, twin).iter().take(fields) {
        for value in [0u64, 0xffff_ffff, u64::MAX] {
            out.push((
                format!("payload field at {at} forged to {value:#x}"),
                Some(forge_u64(good, at, value)),
                Expect::ErrorOrGarbage(fragment),
            ));
        }
    }
    // single bit flips spread over the payload
    for k in 0..flips {
        let at = HEADER + (k * 7919 + 13) % (len - HEADER);
        let mut b = good.to_vec();
        b[at] ^= 1 << (k % 8);
        out.push((
            format!("payload byte {at} bit {} flipped", k % 8),
            Some(b),
            Expect::ErrorOrGarbage(fragment),
        ));
    }
    out
}
