//! The two-round GET end to end in the kernels, with real parameters: client-sealed rows
//! (no PBS to build the table), locate on the server, fetch by CMux tree, client checks.

use super::*;
use crate::client_rows::ClearRow;
use crate::client_two_round::Located;
use crate::codec::decode_integer;
use crate::envelope::Kind;
use crate::testkeys::test_keys;
use crate::two_round::{
    check_fetch_header, decode_fetch_payload, encode_fetch_result, encode_locate_result,
};
use crate::Width;

fn env(key: Width, value: Width) -> KernelEnv<'static> {
    KernelEnv {
        keys: &test_keys().1,
        key_width: key,
        value_width: value,
        pool: None,
        batch_rows: 2,
    }
}

fn row(occupied: bool, key: u64, value: u64, kw: Width, vw: Width) -> ClearRow {
    ClearRow {
        occupied,
        key: key.to_le_bytes()[..kw.bytes()].to_vec(),
        value: value.to_le_bytes()[..vw.bytes()].to_vec(),
    }
}

fn seal(rows: &[ClearRow]) -> Vec<Vec<u8>> {
    let sealer = test_keys().0.row_sealer();
    rows.iter().map(|r| sealer.seal(r).unwrap()).collect()
}

fn locate(rows: &[Vec<u8>], keys: &[u64], kw: Width, vw: Width) -> Vec<Located> {
    let (client, server) = test_keys();
    let queries: Vec<Vec<tfhe::shortint::Ciphertext>> = keys
        .iter()
        .map(|&k| {
            let bytes = client.encrypt_key(k, kw).unwrap();
            decode_integer(&bytes, "key", Kind::QueryKey, server.key_id, kw).unwrap()
        })
        .collect();
    let refs: Vec<&[tfhe::shortint::Ciphertext]> = queries.iter().map(Vec::as_slice).collect();
    let batches = rows.chunks(2).map(|c| Ok(c.iter().collect::<Vec<_>>()));
    let outs =
        oblivious_locate_many_streamed(&env(kw, vw), &refs, rows.len(), batches, &mut |_, _| {})
            .unwrap();
    outs.into_iter()
        .map(|out| {
            let bytes = encode_locate_result(server, kw, out).unwrap();
            client.open_locate(&bytes, kw, rows.len()).unwrap()
        })
        .collect()
}

fn fetch(rows: &[Vec<u8>], query: &[u8], kw: Width, vw: Width) -> crate::Result<Vec<u8>> {
    let server = &test_keys().1;
    let header = check_fetch_header(query, server.key_id, rows.len())?;
    let selectors = decode_fetch_payload(&header)?;
    let batches = rows.chunks(3).map(|c| Ok(c.iter().collect::<Vec<_>>()));
    let out = oblivious_fetch_streamed(
        &env(kw, vw).rows(),
        &selectors,
        rows.len(),
        batches,
        &mut |_, _| {},
    )?;
    encode_fetch_result(server.key_id, &out)
}

#[test]
fn locate_finds_occupied_slots_only_and_fetch_returns_every_slot_exactly() {
    let (client, _) = test_keys();
    let (kw, vw) = (Width::W8, Width::W16);
    // 5 slots: 3 selector bits, so the tree pads 3 zero leaves. Slot 1 is a tombstone of
    // key 7, which must not be found; key 7 lives in slot 2.
    let clear = vec![
        row(true, 3, 0x3030, kw, vw),
        row(false, 7, 0x7070, kw, vw),
        row(true, 7, 0x7777, kw, vw),
        ClearRow::vacant(kw, vw),
        row(true, 200, 0x0002, kw, vw),
    ];
    let rows = seal(&clear);
    let located = locate(&rows, &[3, 7, 200, 9, 0], kw, vw);
    assert_eq!(
        located,
        vec![
            Located::Slot(0),
            Located::Slot(2),
            Located::Slot(4),
            Located::Absent,
            Located::Absent
        ]
    );
    for (slot, want) in clear.iter().enumerate() {
        let query = client.fetch_query(Located::Slot(slot), rows.len()).unwrap();
        let answer = fetch(&rows, &query, kw, vw).unwrap();
        assert_eq!(
            &client.open_fetch(&answer, kw, vw).unwrap(),
            want,
            "slot {slot}"
        );
    }
    // The whole exchange, hit and miss (a miss still fetches, a random slot).
    for (key, want) in [(7u64, Some(vec![0x77, 0x77])), (9, None)] {
        let located = locate(&rows, &[key], kw, vw)[0];
        let query = client.fetch_query(located, rows.len()).unwrap();
        let answer = fetch(&rows, &query, kw, vw).unwrap();
        let key_le = key.to_le_bytes()[..1].to_vec();
        assert_eq!(
            client
                .open_two_round(located, &answer, &key_le, kw, vw)
                .unwrap(),
            want
        );
    }
}

#[test]
fn u64_keys_and_values_through_both_rounds() {
    let (client, _) = test_keys();
    let (kw, vw) = (Width::W64, Width::W64);
    let clear = vec![
        row(true, u64::MAX - 1, 1, kw, vw),
        row(true, u64::MAX, 0xdead_beef_0bad_f00d, kw, vw),
    ];
    let rows = seal(&clear);
    let located = locate(&rows, &[u64::MAX, u64::MAX - 2], kw, vw);
    assert_eq!(located, vec![Located::Slot(1), Located::Absent]);
    let query = client.fetch_query(located[0], rows.len()).unwrap();
    let answer = fetch(&rows, &query, kw, vw).unwrap();
    assert_eq!(
        client
            .open_two_round(located[0], &answer, &u64::MAX.to_le_bytes(), kw, vw)
            .unwrap(),
        Some(0xdead_beef_0bad_f00du64.to_le_bytes().to_vec())
    );
}

#[test]
fn a_fetch_after_the_table_changed_is_reported_not_misread() {
    let (client, _) = test_keys();
    let (kw, vw) = (Width::W8, Width::W8);
    let before = seal(&[row(true, 1, 10, kw, vw), row(true, 2, 20, kw, vw)]);
    let located = locate(&before, &[2], kw, vw)[0];
    assert_eq!(located, Located::Slot(1));
    // A writer moved key 2 away before the fetch.
    let after = seal(&[row(true, 2, 20, kw, vw), row(true, 5, 50, kw, vw)]);
    let query = client.fetch_query(located, after.len()).unwrap();
    let answer = fetch(&after, &query, kw, vw).unwrap();
    let err = client
        .open_two_round(located, &answer, &[2], kw, vw)
        .unwrap_err();
    assert!(err.to_string().contains("changed between"), "{err}");
}

#[test]
fn malformed_fetch_queries_are_refused_before_any_row_is_read() {
    let (client, _) = test_keys();
    let (kw, vw) = (Width::W8, Width::W8);
    let rows = seal(&vec![row(true, 1, 10, kw, vw); 3]);
    // Made for a 9-slot table: 4 bits instead of 2.
    let wrong_size = client.fetch_query(Located::Slot(0), 9).unwrap();
    let err = fetch(&rows, &wrong_size, kw, vw).unwrap_err();
    assert!(err.to_string().contains("selects among 2^4"), "{err}");
    let good = client.fetch_query(Located::Slot(0), 3).unwrap();
    // Truncated payload, and one byte flipped in the body data: refused or decoded, never
    // a panic; a flipped byte inside the GGSW data decodes and only garbles the answer.
    assert!(fetch(&rows, &good[..good.len() - 9], kw, vw).is_err());
    assert!(fetch(&rows, &good[..40], kw, vw).is_err());
    let mut flipped = good.clone();
    let at = flipped.len() - 100;
    flipped[at] ^= 0x55;
    let _ = fetch(&rows, &flipped, kw, vw);
    // A query key is not a fetch query.
    let key = client.encrypt_key(1, kw).unwrap();
    assert!(fetch(&rows, &key, kw, vw).is_err());
    // The client refuses slots outside the table.
    assert!(client.fetch_query(Located::Slot(3), 3).is_err());
}
