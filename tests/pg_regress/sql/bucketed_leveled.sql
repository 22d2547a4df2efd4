-- Bucketed tables of leveled slots (layout => 'bucketed-leveled', row format
-- bucket-leveled-v1, docs/leveled.md): the buckets of a bucketed table, each slot in
-- them leveled, so the server's GET and DELETE cost ~8 bootstraps per candidate slot
-- (u64 keys) instead of ~80. A SET is the key owner's bucket read (fhe_fetch) and write
-- (fhe_write): the fhe-kv client and the Rust library run both. Ciphertexts are random,
-- so this file shows what is deterministic: the catalog, the rows, and the refusals.
SELECT key_id AS k FROM fhe_kv.server_keys \gset

-- 100 keys: enough buckets of 6 slots that a new key is refused with probability < 1e-9.
SELECT fhe_kv.create_table('labs', :'k', 100, 64, 64, layout => 'bucketed-leveled');
SELECT table_name, layout, row_format, bucket_slots, rows, capacity, load_limit
  FROM fhe_kv.tables WHERE table_name = 'labs'::regclass;
SELECT count(*) AS buckets, min(length(row)) = max(length(row)) AS same_size FROM labs;
SELECT replace(fhe_kv.describe(row), :'k', '<key_id>') AS describe FROM labs WHERE bucket = 0;
SELECT replace(obj_description('labs'::regclass), :'k', '<key_id>') AS comment;

-- The server computes GET and DELETE; it has no SET and no locate on these slots (the
-- key owner's bucket read is the two-round GET, in one round and without a bootstrap).
SELECT regress_error('SELECT fhe_kv.fhe_set(''labs'', ''\x00'', ''\x00'')');
SELECT regress_error('SELECT fhe_kv.fhe_locate(''labs'', ''\x00'')');
SELECT regress_error('SELECT fhe_kv.fhe_set_locate(''labs'', ''\x00'')');
-- A DELETE flags the slot vacant; the key owner's write is the scrub.
SELECT regress_error('SELECT fhe_kv.fhe_delete(''labs'', ''\x00'', scrub => true)');
-- Every argument is an envelope checked before any work.
SELECT regress_error('SELECT fhe_kv.fhe_get(''labs'', ''\x00'')');
SELECT regress_error('SELECT fhe_kv.fhe_delete(''labs'', ''\x00'')');
-- Growing moves keys between buckets, which needs the client key (fhe-kv grow).
SELECT regress_error('SELECT fhe_kv.grow(''labs'', 10)');

-- A copy of the data table (as pg_dump -t restores it) attaches again with its bucket
-- size and leveled => true, after every row was checked; a bucket-v1 table's rows are
-- not leveled buckets.
CREATE TABLE labs_copy AS SELECT bucket, row FROM labs;
SELECT fhe_kv.attach_table('labs_copy', :'k', 'u64', 'u64', bucket_slots => 6, leveled => true);
SELECT table_name, layout, row_format, bucket_slots, capacity FROM fhe_kv.tables
 WHERE table_name = 'labs_copy'::regclass;
SELECT fhe_kv.create_table('labs_blocks', :'k', 100, 64, 64, layout => 'bucketed');
CREATE TABLE blocks_copy AS SELECT bucket, row FROM labs_blocks;
SELECT regress_error(format('SELECT fhe_kv.attach_table(%L, %L, %L, %L, bucket_slots => 6, leveled => true)',
                            'blocks_copy', :'k', 'u64', 'u64'));
DROP TABLE labs, labs_copy, labs_blocks, blocks_copy;
