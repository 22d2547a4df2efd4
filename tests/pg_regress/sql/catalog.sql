-- fhe_kv catalog and table management. Ciphertexts are random, so this file shows
-- only what is deterministic: the catalog, the table layout and argument checking.
-- The server key registered by setup.sql, as every test finds it.
SELECT count(*) AS keys FROM fhe_kv.server_keys;
SELECT key_id AS k FROM fhe_kv.server_keys \gset

-- An encrypted table of 4 slots, 16-bit keys and 32-bit values.
SELECT fhe_kv.create_table('inventory', :'k', 4, 16, 32);
SELECT table_name, key_id = :'k' AS bound_to_key, capacity, key_type, value_type,
       key_bits, value_bits, row_format
  FROM fhe_kv.tables;
-- Each slot is one row holding a compact encrypted (vacant, key, value) list.
\d inventory
SELECT count(*) AS slots, min(length(row)) > 0 AS rows_present FROM inventory;
SELECT replace(fhe_kv.describe(row), :'k', '<key_id>') AS describe FROM inventory WHERE slot = 0;

-- Schema-qualified and quoted names work.
CREATE SCHEMA app;
SELECT fhe_kv.create_table('app."Mixed Case"', :'k', 2, 64, 64);
SELECT table_name FROM fhe_kv.tables ORDER BY table_name::text;

-- Typed tables: text keys (up to K bytes, as keyed 64-bit tags at this capacity; the key
-- itself rides in the value integer for export) and byte-string values (up to N bytes).
SELECT fhe_kv.create_table('notes', :'k', 4, 'text:15', 'bytes:15');
SELECT fhe_kv.create_table('big_notes', :'k', 6000, 'text:8', 'u64') IS NOT NULL AS created;
SELECT table_name, key_type, value_type, key_bits, value_bits FROM fhe_kv.tables
 WHERE key_type LIKE 'text:%' ORDER BY table_name::text;
DROP TABLE big_notes;
SELECT fhe_kv.create_table('n1', :'k', 4, 'text', 'bytes:15');
SELECT fhe_kv.create_table('n2', :'k', 4, 'text:15', 'bytes:32');
SELECT fhe_kv.create_table('n3', :'k', 4, 'text:20', 'bytes:20');
SELECT fhe_kv.create_table('n4', :'k', 4, 'u64', 'string');

-- grow adds empty slots.
SELECT fhe_kv.grow('inventory', 2);
SELECT capacity FROM fhe_kv.tables WHERE table_name = 'inventory'::regclass;
SELECT count(*) AS slots FROM inventory;

-- The table's comment says what it is and how to register it again after a restore
-- that lost its catalog entry (pg_dump -t, or a dump made before fhe_kv 0.2.0).
SELECT replace(obj_description('inventory'::regclass), :'k', '<key_id>') AS comment;
-- Such a table, simulated: a copy of the slots that fhe_kv does not know.
CREATE TABLE restored (slot integer PRIMARY KEY, row bytea NOT NULL);
INSERT INTO restored SELECT slot, row FROM inventory;
SELECT fhe_kv.fhe_get('restored', '\x00');
-- attach_table checks every row against the key and the types, then registers it.
SELECT regress_error(format('SELECT fhe_kv.attach_table(%L, %L, %L, %L)', 'restored', :'k', 'u16', 'u64'));
SELECT fhe_kv.attach_table('restored', :'k', 'u16', 'u32');
SELECT table_name, capacity, key_type, value_type FROM fhe_kv.tables
 WHERE table_name = 'restored'::regclass;
SELECT fhe_kv.attach_table('restored', :'k', 'u16', 'u32');
DROP TABLE restored;

-- Bucketed tables: an operation bootstraps its key's two candidate buckets only. For
-- them capacity is the number of keys to hold: the table gets enough buckets of
-- bucket_slots slots that a SET refuses a new key with probability < 1e-9 up to
-- load_limit keys. layout => 'auto' (the default) picks bucketed from 2 x bucket_slots
-- keys up when the server key supports it (supports_buckets).
SELECT supports_buckets FROM fhe_kv.server_keys;
SELECT fhe_kv.create_table('patients', :'k', 1000);
SELECT fhe_kv.create_table('tiny', :'k', 8);
SELECT fhe_kv.create_table('flat_by_choice', :'k', 1000, 8, 8, layout => 'flat');
SELECT fhe_kv.create_table('big_buckets', :'k', 1000, 8, 8, layout => 'bucketed', bucket_slots => 16);
SELECT table_name, capacity, layout, bucket_slots, rows, load_limit, row_format
  FROM fhe_kv.tables WHERE table_name::text IN ('patients', 'tiny', 'flat_by_choice', 'big_buckets')
 ORDER BY table_name::text;
-- One row per bucket, each one GLWE ciphertext holding its slots.
\d patients
SELECT count(*) AS buckets, min(length(row)) = max(length(row)) AS same_size FROM patients;
SELECT replace(fhe_kv.describe(row), :'k', '<key_id>') AS describe FROM patients WHERE bucket = 0;
-- The load limit behind the sizing, for a few bucket sizes.
SELECT z, fhe_kv.bucket_load_limit(z, 12000) AS keys_in_12000_slots
  FROM generate_series(2, 8) AS z;
-- Growing a bucketed table moves keys between buckets, which needs the client key.
SELECT fhe_kv.grow('patients', 10);
SELECT fhe_kv.create_table('b1', :'k', 100, layout => 'sideways');
SELECT fhe_kv.create_table('b2', :'k', 100, 64, 64, layout => 'bucketed', bucket_slots => 0);
SELECT fhe_kv.create_table('b3', :'k', 100, 64, 64, layout => 'bucketed', bucket_slots => 32);
SELECT fhe_kv.create_table('b4', :'k', 100, 64, 64, layout => 'flat', bucket_slots => 6);
DROP TABLE tiny, flat_by_choice, big_buckets;

-- Argument checking.
SELECT fhe_kv.create_table('t1', :'k', 0, 64, 64);
SELECT fhe_kv.create_table('t2', :'k', 4, 12, 64);
SELECT fhe_kv.create_table('t3', :'k', 4, 64, 512);
SELECT fhe_kv.create_table('t4', 'not-a-key-id', 4, 64, 64);
SELECT fhe_kv.create_table('t5', '00000000000000000000000000000000', 4, 64, 64);
SELECT fhe_kv.create_table(NULL, :'k', 4, 64, 64);
SELECT fhe_kv.create_table('inventory', :'k', 4, 64, 64);
SELECT fhe_kv.grow('inventory', 0);
SELECT fhe_kv.grow('pg_class', 1);

-- The binding of a table to its key and widths cannot be changed, nor can it shrink.
UPDATE fhe_kv.encrypted_tables SET key_bits = 64 WHERE relid = 'inventory'::regclass;
UPDATE fhe_kv.encrypted_tables SET key_type = 'text:8' WHERE relid = 'notes'::regclass;
UPDATE fhe_kv.encrypted_tables SET capacity = 1 WHERE relid = 'inventory'::regclass;

-- Dropping a table removes it from the catalog.
DROP TABLE app."Mixed Case";
SELECT table_name FROM fhe_kv.tables ORDER BY table_name::text;

-- Clean up for the tests that follow in this database.
DROP TABLE inventory, notes, patients;
DROP SCHEMA app;
SELECT count(*) AS tables_left FROM fhe_kv.tables;
