-- fhe_kv catalog. Runs first in CREATE EXTENSION (schema fhe_kv).

-- Uploaded server keys. key_id is the fingerprint of the compressed server key (the
-- first 16 bytes of SHA-256 of the envelope payload, hex). The CHECK makes the database
-- itself refuse a row whose key_id does not match its key, even one inserted by hand.
-- server_key is NULL for a key loaded per session (fhe_kv.load_session_key): the row only
-- records its key_id, so tables can be bound to it; the key itself is never stored.
CREATE TABLE fhe_kv.server_keys (
    key_id     text PRIMARY KEY,
    server_key bytea,
    -- The uploading role's name, for information only. A name, not a regrole: a dump
    -- restored into a cluster without that role must still load the key (a regrole
    -- column would make the whole COPY of this table fail there).
    owner      name NOT NULL DEFAULT current_user,
    created_at timestamptz NOT NULL DEFAULT now(),
    -- Whether the key carries the bucketed layout's key material: its envelope kind
    -- (byte 6) is server_key_bundle (16), not the older server_key (2).
    supports_buckets boolean GENERATED ALWAYS AS (substring(server_key FROM 6 FOR 1) = '\x10') STORED,
    CONSTRAINT server_key_fingerprint CHECK (
        key_id = left(encode(sha256(substring(server_key FROM 33)), 'hex'), 32)
    ),
    CONSTRAINT key_id_format CHECK (key_id ~ '^[0-9a-f]{32}$')
);
-- Ciphertexts do not compress: store them out of line without pglz attempts.
ALTER TABLE fhe_kv.server_keys ALTER COLUMN server_key SET STORAGE EXTERNAL;
COMMENT ON TABLE fhe_kv.server_keys IS
    'Server (evaluation) keys uploaded with fhe_kv.register_server_key; public material. server_key NULL: loaded per session only (fhe_kv.load_session_key).';

-- Keys are never replaced or removed. The one change allowed: a key_id recorded for
-- session-only use gets its key when someone registers the same key for good (the
-- fingerprint CHECK guarantees it is the same key).
CREATE FUNCTION fhe_kv._guard_server_keys() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF OLD.server_key IS NOT NULL OR NEW.server_key IS NULL
       OR (NEW.key_id, NEW.owner, NEW.created_at) IS DISTINCT FROM (OLD.key_id, OLD.owner, OLD.created_at) THEN
        RAISE EXCEPTION 'fhe_kv: server keys cannot be changed: a stored key is never replaced or removed';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER guard BEFORE UPDATE ON fhe_kv.server_keys
    FOR EACH ROW EXECUTE FUNCTION fhe_kv._guard_server_keys();

-- Registry of encrypted tables. Each data table is bound to one key_id forever.
CREATE TABLE fhe_kv.encrypted_tables (
    relid      regclass PRIMARY KEY,
    key_id     text NOT NULL REFERENCES fhe_kv.server_keys (key_id),
    capacity   integer NOT NULL CHECK (capacity > 0),
    key_bits   integer NOT NULL CHECK (key_bits IN (8, 16, 32, 64, 128, 256)),
    value_bits integer NOT NULL CHECK (value_bits IN (8, 16, 32, 64, 128, 256)),
    -- What the client encodes into those integers (the server never interprets them):
    -- 'u<bits>' or 'text:K' (keys of up to K bytes as keyed 64/128-bit tags, the key itself
    -- kept in the value integer); 'u<bits>' or 'bytes:N' (length byte + up to N bytes).
    key_type   text NOT NULL,
    value_type text NOT NULL,
    row_format text NOT NULL DEFAULT 'compact-v1' CHECK (row_format IN ('compact-v1', 'bucket-v1', 'leveled-v1', 'leveled-v2', 'bucket-leveled-v1')),
    created_at timestamptz NOT NULL DEFAULT now(),
    -- 'flat': one row per slot, every operation bootstraps every slot (compact-v1).
    -- 'bucketed': one row per bucket of bucket_slots slots, two halves of capacity /
    -- (2 * bucket_slots) buckets; an operation bootstraps its key's two candidate
    -- buckets only (bucket-v1, docs/bucketed.md). bucket-leveled-v1 (from 0.6.0): the
    -- same buckets, each slot leveled: ~8 bootstraps per candidate slot for the server's
    -- GET and DELETE instead of ~80; SET is the key owner's fetch and write (docs/leveled.md).
    -- 'leveled': one row per slot as 'flat', in a leveled row format: every operation
    -- touches each slot, at ~6-8 bootstraps per slot instead of ~150 (docs/leveled.md);
    -- a SET takes two rounds with the key owner. leveled-v2 (one GLWE per slot, ~15 KB
    -- after a SET) is the default from 0.5.0; leveled-v1 (the value as lookup tables,
    -- ~47 KB after a SET, a faster GET) is 0.4.0's and can still be asked for.
    layout       text NOT NULL DEFAULT 'flat' CHECK (layout IN ('flat', 'bucketed', 'leveled')),
    bucket_slots integer,
    -- Write-backs of a bucketed table since the key owner last sealed its rows (create,
    -- import, grow, refresh): each adds noise to every bucket, and the extension refuses
    -- writes past the row format's budget (BucketLayout::write_budget) until the key
    -- owner re-seals the rows (fhe-kv refresh), which sets it back to 0. (From 0.6.0.)
    writes bigint NOT NULL DEFAULT 0 CHECK (writes >= 0),
    CONSTRAINT layout_matches_format CHECK (
        (layout = 'flat' AND row_format = 'compact-v1' AND bucket_slots IS NULL)
        OR (layout = 'leveled' AND row_format IN ('leveled-v1', 'leveled-v2') AND bucket_slots IS NULL)
        OR (layout = 'bucketed' AND row_format IN ('bucket-v1', 'bucket-leveled-v1') AND bucket_slots >= 1
            AND capacity % (2 * bucket_slots) = 0)),
    CONSTRAINT key_type_matches_width CHECK (
        key_type = 'u' || key_bits
        OR (key_type ~ '^text:[0-9]{1,2}$' AND key_bits IN (64, 128))),
    CONSTRAINT value_type_is_known CHECK (
        value_type = 'u' || value_bits OR value_type ~ '^(u(8|16|32|64|128|256)|bytes:[0-9]{1,2})$'),
    -- Text keys: 64-bit tags only while n(n-1)/2 * 2^-64 <= 2^-40 (the client's bound).
    CONSTRAINT text_key_collision_bound CHECK (
        key_type NOT LIKE 'text:%' OR key_bits = 128 OR capacity::bigint * (capacity - 1) / 2 <= 16777216)
);

-- Catalog rows may only describe tables the current role owns, and the binding of a table
-- to its key, widths and format never changes (no key substitution).
CREATE FUNCTION fhe_kv._guard_encrypted_tables() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = NEW.relid
                   AND pg_has_role(current_user, c.relowner, 'USAGE'))
       -- A writer of the table (UPDATE on it) counts its write-backs, and only that.
       AND NOT (TG_OP = 'UPDATE' AND NEW.writes > OLD.writes AND NEW.capacity = OLD.capacity
                AND has_table_privilege(NEW.relid, 'UPDATE')) THEN
        RAISE EXCEPTION 'fhe_kv: only the owner of % can register or resize it', NEW.relid;
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.relid, NEW.key_id, NEW.key_bits, NEW.value_bits, NEW.key_type,
                             NEW.value_type, NEW.row_format, NEW.layout, NEW.bucket_slots)
        IS DISTINCT FROM (OLD.relid, OLD.key_id, OLD.key_bits, OLD.value_bits, OLD.key_type,
                          OLD.value_type, OLD.row_format, OLD.layout, OLD.bucket_slots) THEN
        RAISE EXCEPTION 'fhe_kv: the key, widths, types, format and layout of % cannot change', OLD.relid;
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.capacity < OLD.capacity THEN
        RAISE EXCEPTION 'fhe_kv: % cannot shrink (capacity % -> %)', OLD.relid, OLD.capacity, NEW.capacity;
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER guard BEFORE INSERT OR UPDATE ON fhe_kv.encrypted_tables
    FOR EACH ROW EXECUTE FUNCTION fhe_kv._guard_encrypted_tables();

-- Dropping a data table drops its catalog entry.
CREATE FUNCTION fhe_kv._on_sql_drop() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    DELETE FROM fhe_kv.encrypted_tables
     WHERE relid::oid IN (SELECT objid FROM pg_event_trigger_dropped_objects()
                          WHERE object_type = 'table');
END $$;

CREATE EVENT TRIGGER fhe_kv_drop_table ON sql_drop
    EXECUTE FUNCTION fhe_kv._on_sql_drop();


-- Ciphertext types: bytea underneath, so psql and every driver pass them as bytea.
-- The functions validate the envelope (kind, key_id, width) with precise errors.
CREATE DOMAIN fhe_kv.enc_key AS bytea;
COMMENT ON DOMAIN fhe_kv.enc_key IS 'An encrypted query key (fhe-kv encrypt --key).';
CREATE DOMAIN fhe_kv.enc_value AS bytea;
COMMENT ON DOMAIN fhe_kv.enc_value IS 'An encrypted value (fhe-kv encrypt --value).';
CREATE DOMAIN fhe_kv.enc_result AS bytea;
COMMENT ON DOMAIN fhe_kv.enc_result IS 'An encrypted GET answer (found, value); fhe-kv decrypt reads it.';
CREATE DOMAIN fhe_kv.enc_locate AS bytea;
COMMENT ON DOMAIN fhe_kv.enc_locate IS 'Two-round GET, round 1 answer: per-slot mismatch counts only the key owner can read.';
CREATE DOMAIN fhe_kv.enc_fetch AS bytea;
COMMENT ON DOMAIN fhe_kv.enc_fetch IS 'Two-round GET, round 2: a GGSW-encrypted slot index (query) or the selected slot (answer).';
CREATE DOMAIN fhe_kv.enc_write AS bytea;
COMMENT ON DOMAIN fhe_kv.enc_write IS 'A key owner''s write to a bucketed table (selectors, encrypted deltas, the read''s state token).';
CREATE DOMAIN fhe_kv.enc_status AS bytea;
COMMENT ON DOMAIN fhe_kv.enc_status IS 'An encrypted SET/DELETE status; fhe-kv decrypt reads it.';

-- The catalog is user data: pg_dump must dump its rows, or a restored database has its
-- encrypted tables and no way to use them. pg_dump emits the two tables' data after the
-- user tables exist (regclass values resolve) and in foreign-key order (keys first).
SELECT pg_catalog.pg_extension_config_dump('fhe_kv.server_keys', '');
SELECT pg_catalog.pg_extension_config_dump('fhe_kv.encrypted_tables', '');

GRANT USAGE ON SCHEMA fhe_kv TO PUBLIC;
GRANT SELECT ON fhe_kv.server_keys, fhe_kv.encrypted_tables TO PUBLIC;
-- Keys are append-only for everyone: no UPDATE/DELETE, so nobody replaces a key. Only
-- key_id and server_key may be given: owner and created_at are the server's (nobody
-- uploads a key in another role's name).
GRANT INSERT (key_id, server_key) ON fhe_kv.server_keys TO PUBLIC;
-- Only for completing a session-only row with its key (the guard trigger refuses the rest).
GRANT UPDATE (server_key) ON fhe_kv.server_keys TO PUBLIC;
GRANT INSERT ON fhe_kv.encrypted_tables TO PUBLIC;
GRANT UPDATE (capacity, writes) ON fhe_kv.encrypted_tables TO PUBLIC;
-- DROP TABLE runs the sql_drop event trigger as the dropping role, which may not DELETE
-- from the catalog: the trigger runs as the extension owner instead (it only removes the
-- rows of the tables being dropped; search_path is pinned in its definition).
ALTER FUNCTION fhe_kv._on_sql_drop() SECURITY DEFINER;
