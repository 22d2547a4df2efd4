-- Leveled tables (layout => 'leveled', docs/leveled.md): one row per slot as in a flat
-- table, in a row format whose equality is computed with external products, so GET,
-- the two-round GET and DELETE cost ~6-8 bootstraps per u64/u64 slot instead of ~150.
-- A SET takes two rounds with the key owner in between (fhe_set_locate, fhe_write); the
-- fhe-kv client and the Rust library run both. Ciphertexts are random, so this file
-- shows what is deterministic: the catalog, the rows, and the refusals.
SELECT key_id AS k FROM fhe_kv.server_keys \gset

-- A leveled table of 4 slots, u64 keys and values. Its slots start as never-written
-- rows the server builds alone (no client key needed). Each slot is one GLWE: the key's
-- bits and the value's nibbles are its coefficients (row format leveled-v2).
SELECT fhe_kv.create_table('prices_lv', :'k', 4, 64, 64, layout => 'leveled');
SELECT table_name, layout, row_format, capacity, load_limit, key_type, value_type
  FROM fhe_kv.tables WHERE table_name = 'prices_lv'::regclass;
SELECT count(*) AS slots FROM prices_lv;
SELECT replace(fhe_kv.describe(row), :'k', '<key_id>') AS describe FROM prices_lv WHERE slot = 0;
SELECT replace(obj_description('prices_lv'::regclass), :'k', '<key_id>') AS comment;

-- Its answers sum one term per slot without a bootstrap: the noise bound caps a leveled
-- table's size.
SELECT fhe_kv.leveled_max_slots();
SELECT regress_error(format('SELECT fhe_kv.create_table(%L, %L, 2000, 64, 64, layout => %L)', 'too_big', :'k', 'leveled'));
SELECT fhe_kv.grow('prices_lv', 2);
SELECT regress_error('SELECT fhe_kv.grow(''prices_lv'', 1020)');

-- The one-round SET is for flat and bucketed tables; fhe_set_locate is for leveled ones.
SELECT regress_error('SELECT fhe_kv.fhe_set(''prices_lv'', ''\x00'', ''\x00'')');
SELECT fhe_kv.create_table('prices_flat', :'k', 2, 64, 64, layout => 'flat');
SELECT regress_error('SELECT fhe_kv.fhe_set_locate(''prices_flat'', ''\x00'')');
-- A DELETE on a leveled table flags the slot vacant; there is no scrub.
SELECT regress_error('SELECT fhe_kv.fhe_delete(''prices_lv'', ''\x00'', scrub => true)');

-- Every argument is an envelope checked before any work: a compact table's row is not a
-- leveled query key, and garbage is not an envelope.
SELECT row AS flat_row FROM prices_flat WHERE slot = 0 \gset
SELECT regress_error(format('SELECT fhe_kv.fhe_get(%L, %L::bytea)', 'prices_lv', :'flat_row'));
SELECT regress_error('SELECT fhe_kv.fhe_get(''prices_lv'', ''\x00'')');
SELECT regress_error('SELECT fhe_kv.fhe_fetch(''prices_lv'', ''\x00'')');
SELECT regress_error('SELECT fhe_kv.fhe_write(''prices_lv'', ''\x00'')');
-- An import must bring one leveled row per slot.
SELECT regress_error(format('SELECT fhe_kv.replace_all_rows(%L, ARRAY[%L::bytea])', 'prices_lv', :'flat_row'));
SELECT regress_error(format('SELECT fhe_kv.replace_all_rows(%L, array_fill(%L::bytea, ARRAY[6]))', 'prices_lv', :'flat_row'));

-- A copy of the data table (as pg_dump -t restores it) attaches again as leveled, after
-- every row was checked; its comment says so.
CREATE TABLE prices_copy AS SELECT slot, row FROM prices_lv;
SELECT regress_error(format('SELECT fhe_kv.attach_table(%L, %L, %L, %L)', 'prices_copy', :'k', 'u64', 'u64'));
SELECT fhe_kv.attach_table('prices_copy', :'k', 'u64', 'u64', leveled => true);
SELECT table_name, layout, row_format, capacity FROM fhe_kv.tables
 WHERE table_name = 'prices_copy'::regclass;

-- The lookup-table rows of fhe_kv 0.4.0 (leveled-v1: a faster GET, three times the
-- bytes after a SET) can still be asked for; tables made before 0.5.0 keep them. A row
-- of one leveled format is not a row of the other, and attach_table tells them apart.
SELECT fhe_kv.create_table('prices_v1', :'k', 2, 64, 64, layout => 'leveled-v1');
SELECT table_name, layout, row_format, capacity FROM fhe_kv.tables
 WHERE table_name = 'prices_v1'::regclass;
SELECT replace(fhe_kv.describe(row), :'k', '<key_id>') AS describe FROM prices_v1 WHERE slot = 0;
SELECT row AS v1_row FROM prices_v1 WHERE slot = 0 \gset
SELECT regress_error(format('SELECT fhe_kv.replace_all_rows(%L, array_fill(%L::bytea, ARRAY[6]))', 'prices_lv', :'v1_row'));
CREATE TABLE prices_v1_copy AS SELECT slot, row FROM prices_v1;
SELECT fhe_kv.attach_table('prices_v1_copy', :'k', 'u64', 'u64', leveled => true);
SELECT table_name, row_format FROM fhe_kv.tables WHERE table_name = 'prices_v1_copy'::regclass;
SELECT fhe_kv.grow('prices_v1', 1);
SELECT regress_error(format('SELECT fhe_kv.create_table(%L, %L, 2, 64, 64, layout => %L)', 'bad_layout', :'k', 'leveled-v3'));
DROP TABLE prices_copy, prices_lv, prices_flat, prices_v1, prices_v1_copy;
