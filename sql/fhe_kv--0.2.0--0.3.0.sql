-- fhe_kv 0.2.0 -> 0.3.0 (ALTER EXTENSION fhe_kv UPDATE).
--
-- * Session-only server keys: fhe_kv.load_session_key keeps a server key in the session's
--   memory only; server_keys records its key_id with server_key NULL (so tables can be
--   bound to it), and registering the same key later stores it (the one UPDATE the new
--   guard trigger allows). fhe_kv.session_keys lists the session's keys;
--   fhe_kv.unload_session_key forgets one; create_table's 'auto' layout asks the session's
--   copy whether the key serves bucketed tables.
-- The definitions below are those of sql/bootstrap.sql and sql/api.sql (the Rust
-- functions as pgrx generates them). tests/backup.rs checks that an upgraded database has
-- the same extension objects as a fresh CREATE EXTENSION.

-- Catalog.
ALTER TABLE fhe_kv.server_keys ALTER COLUMN server_key DROP NOT NULL;
ALTER TABLE fhe_kv.server_keys ADD CONSTRAINT key_id_format CHECK (key_id ~ '^[0-9a-f]{32}$');
COMMENT ON TABLE fhe_kv.server_keys IS
    'Server (evaluation) keys uploaded with fhe_kv.register_server_key; public material. server_key NULL: loaded per session only (fhe_kv.load_session_key).';

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

-- Only for completing a session-only row with its key (the guard trigger refuses the rest).
GRANT UPDATE (server_key) ON fhe_kv.server_keys TO PUBLIC;

-- Rust functions.
CREATE FUNCTION fhe_kv."load_session_key"(
	"server_key" bytea /* Option < & [u8] > */
) RETURNS TEXT /* String */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'load_session_key_wrapper';

CREATE FUNCTION fhe_kv."unload_session_key"(
	"key_id" TEXT /* & str */
) RETURNS bool /* bool */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', 'unload_session_key_wrapper';

CREATE FUNCTION fhe_kv."_session_keys"() RETURNS TABLE (
	"key_id" TEXT,  /* String */
	"supports_buckets" bool,  /* bool */
	"loaded_at" timestamp with time zone,  /* pgrx :: datum :: TimestampWithTimeZone */
	"upload_bytes" bigint  /* i64 */
)
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_session_keys_wrapper';

CREATE FUNCTION fhe_kv."_session_key_supports_buckets"(
	"key_id" TEXT /* & str */
) RETURNS bool /* Option < bool > */
STRICT VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_session_key_supports_buckets_wrapper';

-- API.
CREATE VIEW fhe_kv.session_keys AS
    SELECT key_id, supports_buckets, loaded_at, upload_bytes FROM fhe_kv._session_keys();
COMMENT ON VIEW fhe_kv.session_keys IS
    'Server keys loaded for this session only (fhe_kv.load_session_key): held in this backend''s memory, never stored, gone at disconnect.';
GRANT SELECT ON fhe_kv.session_keys TO PUBLIC;

CREATE OR REPLACE FUNCTION fhe_kv._create_table(
    name text,
    key_id text,
    capacity integer,
    key_type text,
    value_type text,
    layout text,
    bucket_slots integer
) RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    parts text[];
    qualified text;
    rel regclass;
    empty bytea;
    bucketed boolean;
    z integer;
    per_half integer;
    slots integer;
    w record;
    index_column text;
BEGIN
    IF name IS NULL OR key_id IS NULL OR capacity IS NULL OR key_type IS NULL
       OR value_type IS NULL OR layout IS NULL THEN
        RAISE EXCEPTION 'fhe_kv.create_table: arguments must not be NULL';
    END IF;
    IF capacity < 1 OR capacity > 1000000 THEN
        RAISE EXCEPTION 'fhe_kv.create_table: capacity must be between 1 and 1000000, got %', capacity
            USING HINT = 'capacity is the number of keys the table must hold; grow it later with fhe-kv grow.';
    END IF;
    IF layout NOT IN ('auto', 'flat', 'bucketed') THEN
        RAISE EXCEPTION 'fhe_kv.create_table: layout must be auto, flat or bucketed, got %', layout;
    END IF;
    z := coalesce(bucket_slots, fhe_kv.default_bucket_slots());
    -- 'auto': bucketed where it is cheaper — from 2 × bucket_slots keys up, where a flat
    -- table would bootstrap more slots per operation than a bucketed one's two candidate
    -- buckets — if the key can serve bucketed tables.
    bucketed := layout = 'bucketed'
        OR (layout = 'auto' AND capacity >= 2 * z
            AND (SELECT coalesce(k.supports_buckets, fhe_kv._session_key_supports_buckets(k.key_id))
                   FROM fhe_kv.server_keys k WHERE k.key_id = _create_table.key_id));
    IF bucketed THEN
        -- Enough buckets that `capacity` keys are within the load limit: a SET of a new
        -- key is then refused with probability < 10^-9 (docs/bucketed.md).
        per_half := fhe_kv.buckets_for_keys(z, capacity);
        slots := 2 * per_half * z;
        index_column := 'bucket';
    ELSE
        IF bucket_slots IS NOT NULL THEN
            RAISE EXCEPTION 'fhe_kv.create_table: bucket_slots is for bucketed tables (layout => ''bucketed'')';
        END IF;
        slots := capacity;
        index_column := 'slot';
    END IF;
    w := fhe_kv._typed_widths(key_type, value_type, slots);
    IF bucketed THEN
        -- Validates key_id (registered, with bucket key material), widths, bucket size.
        empty := fhe_kv._empty_bucket(key_id, w.key_bits, w.value_bits, z, per_half);
    ELSE
        -- Builds the empty-slot ciphertext; validates key_id and widths (clear errors).
        empty := fhe_kv._empty_row(key_id, w.key_bits, w.value_bits);
    END IF;
    parts := parse_ident(name);
    SELECT string_agg(quote_ident(p), '.') INTO qualified FROM unnest(parts) AS p;
    EXECUTE format('CREATE TABLE %s (%I integer PRIMARY KEY, row bytea NOT NULL)', qualified, index_column);
    rel := qualified::regclass;
    EXECUTE format('ALTER TABLE %s ALTER COLUMN row SET STORAGE EXTERNAL', rel);
    -- The comment travels with `pg_dump -t`: it says how to attach the table again.
    EXECUTE format('COMMENT ON TABLE %s IS %L', rel,
                   format('fhe_kv encrypted table: key_id %s, key_type %s, value_type %s%s. '
                          'Use fhe_kv.fhe_get/fhe_set/fhe_delete. Restored without its catalog '
                          'entry (pg_dump -t): SELECT fhe_kv.attach_table(%L, %L, %L, %L%s)',
                          key_id, key_type, value_type,
                          CASE WHEN bucketed THEN format(', bucketed, %s slots per bucket', z) ELSE '' END,
                          rel::text, key_id, key_type, value_type,
                          CASE WHEN bucketed THEN format(', bucket_slots => %s', z) ELSE '' END));
    EXECUTE format('INSERT INTO %s SELECT g, $1 FROM generate_series(0, $2 - 1) AS g', rel)
        USING empty, CASE WHEN bucketed THEN 2 * per_half ELSE slots END;
    INSERT INTO fhe_kv.encrypted_tables (relid, key_id, capacity, key_bits, value_bits, key_type,
                                         value_type, row_format, layout, bucket_slots)
        VALUES (rel, _create_table.key_id, slots, w.key_bits, w.value_bits,
                _create_table.key_type, _create_table.value_type,
                CASE WHEN bucketed THEN 'bucket-v1' ELSE 'compact-v1' END,
                CASE WHEN bucketed THEN 'bucketed' ELSE 'flat' END,
                CASE WHEN bucketed THEN z END);
    RETURN rel;
END $$;
