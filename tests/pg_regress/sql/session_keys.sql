-- Server keys for one session only. fhe_kv.load_session_key keeps a key in this
-- backend's memory (never in a table, the WAL or a dump) until the session ends or
-- unload_session_key; tables bound to its key_id then work in this session. A key_id
-- known only that way is recorded in fhe_kv.server_keys with server_key NULL.
-- (tests/session_keys.rs shows a key that is never registered, across sessions.)
\getenv server_key_file FHE_KV_SERVER_KEY
SELECT key_id AS k FROM fhe_kv.server_keys \gset

SELECT count(*) AS loaded FROM fhe_kv.session_keys;
SELECT fhe_kv.load_session_key(pg_read_binary_file(:'server_key_file')) = :'k' AS same_key_id;
SELECT key_id = :'k' AS this_key, supports_buckets, upload_bytes > 100000000 AS over_100_mb
  FROM fhe_kv.session_keys;
-- Loading it again changes nothing.
SELECT fhe_kv.load_session_key(pg_read_binary_file(:'server_key_file')) = :'k' AS same_key_id;
SELECT count(*) AS loaded FROM fhe_kv.session_keys;
-- The registered key was already stored; loading it for the session did not touch it.
SELECT count(*) AS keys, bool_and(server_key IS NOT NULL) AS stored FROM fhe_kv.server_keys;

SELECT fhe_kv.unload_session_key(:'k') AS unloaded;
SELECT fhe_kv.unload_session_key(:'k') AS unloaded_again;
SELECT count(*) AS loaded FROM fhe_kv.session_keys;

-- How many keys a session may hold: fhe_kv.server_key_cache_size (each ~250 MB).
SHOW fhe_kv.server_key_cache_size;
