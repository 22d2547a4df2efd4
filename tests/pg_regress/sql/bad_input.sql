-- Hostile and mistaken input: every case is a clear ERROR, the session keeps working,
-- and the table is unchanged. Valid ciphertexts are exercised by the client tests;
-- here envelopes are built by hand, which is enough because the header (magic,
-- version, kind, width, key_id, length) is checked before any TFHE decoding.
SELECT key_id AS k FROM fhe_kv.server_keys \gset
SELECT fhe_kv.create_table('kv', :'k', 2, 8, 8);
SELECT md5(string_agg(row::text, ',' ORDER BY slot)) AS before FROM kv \gset

-- An envelope: magic FHKV, version 1, kind, bits (u16 little endian), key_id, payload length
-- (little endian), payload.
CREATE FUNCTION le64(n bigint) RETURNS bytea LANGUAGE sql AS $$
    SELECT string_agg(set_byte('\x00'::bytea, 0, ((n >> (8 * i)) & 255)::int), '' ORDER BY i)
      FROM generate_series(0, 7) AS i
$$;
CREATE FUNCTION envelope(kind int, bits int, key_id text, payload bytea) RETURNS bytea
LANGUAGE sql AS $$
    SELECT 'FHKV'::bytea || '\x01'::bytea || set_byte('\x00'::bytea, 0, kind)
        || set_byte('\x00'::bytea, 0, bits) || '\x00'::bytea || decode(key_id, 'hex')
        || le64(length(payload)) || payload
$$;

-- NULLs
SELECT fhe_kv.fhe_get('kv', NULL);
SELECT fhe_kv.fhe_get(NULL, '\x00');
SELECT fhe_kv.fhe_set('kv', envelope(3, 8, :'k', '\x00'), NULL);
SELECT fhe_kv.fhe_delete('kv', NULL);
SELECT fhe_kv.fhe_delete('kv', envelope(3, 8, :'k', '\x00'), scrub => NULL);
-- not an envelope at all
SELECT fhe_kv.fhe_get('kv', '');
SELECT fhe_kv.fhe_get('kv', '\xdeadbeef');
SELECT fhe_kv.fhe_get('kv', convert_to(repeat('x', 64), 'UTF8'));
-- truncated: header promises more payload than follows
SELECT fhe_kv.fhe_get('kv', substring(envelope(3, 8, :'k', '\x0102030405') FROM 1 FOR 34));
-- unknown format version, unknown kind
SELECT fhe_kv.fhe_get('kv', overlay(envelope(3, 8, :'k', '\x00') PLACING '\x07' FROM 5));
SELECT fhe_kv.fhe_get('kv', envelope(42, 8, :'k', '\x00'));
-- a valid envelope of the wrong kind (a value where a key is expected, and the reverse)
SELECT fhe_kv.fhe_get('kv', envelope(4, 8, :'k', '\x00'));
SELECT fhe_kv.fhe_set('kv', envelope(3, 8, :'k', '\x00'), envelope(3, 8, :'k', '\x00'));
-- made for another key_id
SELECT regress_error($$SELECT fhe_kv.fhe_get('kv', envelope(3, 8, 'ffffffffffffffffffffffffffffffff', '\x00'))$$);
-- the wrong width (a 64-bit key for an 8-bit table)
SELECT fhe_kv.fhe_get('kv', envelope(3, 64, :'k', '\x00'));
-- right header, garbage TFHE payload; and a payload over the size limit
SELECT fhe_kv.fhe_get('kv', envelope(3, 8, :'k', '\x0102030405060708'));
SELECT fhe_kv.fhe_delete('kv', envelope(3, 8, :'k', convert_to(repeat('A', 100000), 'UTF8')));
-- batched GET: no keys, too many keys, a NULL key, one bad key among good ones
SELECT fhe_kv.fhe_get_many('kv', ARRAY[]::bytea[]::fhe_kv.enc_key[]);
SELECT fhe_kv.fhe_get_many('kv', array_fill(envelope(3, 8, :'k', '\x00'), ARRAY[65])::fhe_kv.enc_key[]);
SELECT fhe_kv.fhe_get_many('kv', ARRAY[NULL]::fhe_kv.enc_key[]);
SELECT fhe_kv.fhe_get_many('kv', ARRAY[envelope(3, 8, :'k', '\x00'), NULL]::fhe_kv.enc_key[]);
SELECT fhe_kv.fhe_get_many('kv', ARRAY[envelope(3, 8, :'k', '\x00'), envelope(4, 8, :'k', '\x00')]::fhe_kv.enc_key[]);
SELECT fhe_kv.fhe_get_many('kv', ARRAY[envelope(3, 8, :'k', '\x00'), envelope(3, 8, :'k', '\x00')]::fhe_kv.enc_key[]);
SELECT fhe_kv.fhe_get_many('kv', NULL);
-- two-round GET: fhe_locate checks keys like fhe_get; fhe_fetch takes a fetch query (kind
-- 10) whose bit count matches the table's capacity (2 slots: 1 bit)
SELECT fhe_kv.fhe_locate('kv', NULL);
SELECT fhe_kv.fhe_locate('kv', envelope(4, 8, :'k', '\x00'));
SELECT fhe_kv.fhe_locate('kv', envelope(3, 8, :'k', '\x0102030405060708'));
SELECT fhe_kv.fhe_locate_many('kv', ARRAY[]::bytea[]::fhe_kv.enc_key[]);
SELECT fhe_kv.fhe_fetch('kv', NULL);
SELECT fhe_kv.fhe_fetch('kv', envelope(3, 8, :'k', '\x00'));
SELECT fhe_kv.fhe_fetch('kv', envelope(10, 3, :'k', '\x00'));
SELECT regress_error($$SELECT fhe_kv.fhe_fetch('kv', envelope(10, 1, 'ffffffffffffffffffffffffffffffff', '\x00'))$$);
SELECT fhe_kv.fhe_fetch('kv', envelope(10, 1, :'k', '\x0102030405060708'));
SELECT fhe_kv.fhe_fetch('kv', envelope(10, 1, :'k', convert_to(repeat('A', 3000000), 'UTF8')));
-- tables that are not fhe_kv tables, or do not exist
CREATE TABLE plain (slot int, row bytea);
SELECT fhe_kv.fhe_get('plain', envelope(3, 8, :'k', '\x00'));
SELECT fhe_kv.fhe_get('no_such_table', '\x00');
SELECT fhe_kv._fhe_get(12345, envelope(3, 8, :'k', '\x00'));
-- server keys: garbage, a wrong fingerprint, a forged row inserted by hand
SELECT fhe_kv.register_server_key('\x00');
SELECT fhe_kv.register_server_key(envelope(2, 0, 'ffffffffffffffffffffffffffffffff', '\x0102'));
SELECT fhe_kv.register_server_key(envelope(2, 0, left(encode(sha256('\x0102'), 'hex'), 32), '\x0102'));
INSERT INTO fhe_kv.server_keys (key_id, server_key, created_at)
    VALUES ('ffffffffffffffffffffffffffffffff', envelope(2, 0, 'ffffffffffffffffffffffffffffffff', '\x00'), '2000-01-01 UTC');
-- session-only keys go through the same checks: nothing is recorded or loaded
SELECT fhe_kv.load_session_key(NULL);
SELECT fhe_kv.load_session_key('\x00');
SELECT fhe_kv.load_session_key(envelope(2, 0, 'ffffffffffffffffffffffffffffffff', '\x0102'));
SELECT fhe_kv.load_session_key(envelope(2, 0, left(encode(sha256('\x0102'), 'hex'), 32), '\x0102'));
SELECT fhe_kv.unload_session_key('not-a-key-id');
SELECT count(*) AS session_keys FROM fhe_kv.session_keys;
SELECT count(*) AS keys FROM fhe_kv.server_keys;
-- a key cannot be replaced or removed through the catalog
UPDATE fhe_kv.encrypted_tables SET key_id = 'ffffffffffffffffffffffffffffffff';
UPDATE fhe_kv.server_keys SET server_key = NULL;

-- describe() reads headers without decrypting; NULL for non-envelopes
SELECT fhe_kv.describe(envelope(3, 8, 'ffffffffffffffffffffffffffffffff', '\x00'));
SELECT fhe_kv.describe('\xdeadbeef') IS NULL AS not_an_envelope;

-- after all of that: same session works, table unchanged
SELECT md5(string_agg(row::text, ',' ORDER BY slot)) = :'before' AS unchanged FROM kv;
SELECT count(*) AS slots FROM kv;

DROP TABLE kv, plain;
DROP FUNCTION envelope, le64;
