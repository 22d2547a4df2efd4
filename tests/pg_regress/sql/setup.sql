-- Runs once, before the other tests, in the database they share (cargo pgrx regress).
CREATE EXTENSION fhe_kv;

-- Register the server key produced by `fhe-kv keygen` (here: the test key, whose path
-- scripts/test.sh passes as FHE_KV_SERVER_KEY). register_server_key returns the key_id:
-- 32 hex digits, the key's fingerprint.
\getenv server_key_file FHE_KV_SERVER_KEY
SELECT length(fhe_kv.register_server_key(pg_read_binary_file(:'server_key_file'))) AS key_id_length;
-- Registering the same key again is a no-op returning the same key_id.
SELECT fhe_kv.register_server_key(pg_read_binary_file(:'server_key_file'))
     = (SELECT key_id FROM fhe_kv.server_keys) AS same_key_id;
SELECT count(*) AS keys FROM fhe_kv.server_keys;

-- Keys are generated per machine, so an error that names this machine's key_id is shown
-- through this helper, with the key_id masked.
CREATE FUNCTION regress_error(statement text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    key_id text := (SELECT k.key_id FROM fhe_kv.server_keys k ORDER BY k.created_at LIMIT 1);
    hint text;
BEGIN
    EXECUTE statement;
    RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
    RETURN 'ERROR:  ' || replace(SQLERRM, key_id, '<key_id>')
        || CASE WHEN hint <> '' THEN E'\nHINT:  ' || replace(hint, key_id, '<key_id>') ELSE '' END;
END $$;
