-- fhe_kv 0.1.0 -> 0.2.0 (ALTER EXTENSION fhe_kv UPDATE).
--
-- * The catalog (server keys and table bindings) is registered for pg_dump, so dumps carry
--   it and restored databases work (before, a restore brought back the encrypted tables
--   without their catalog rows: unusable).
-- * server_keys.owner becomes a role *name*: a regrole column made the whole COPY of the
--   keys fail when a dump was restored into a cluster without that role.
-- * fhe_kv.attach_table registers a slot table again (tables restored from a dump made
--   before this version, or with pg_dump -t), after checking every row; new tables carry
--   the attach call in their COMMENT.
-- tests/backup.rs checks that an upgraded database has the same extension objects as a
-- fresh CREATE EXTENSION.

ALTER TABLE fhe_kv.server_keys ALTER COLUMN owner DROP DEFAULT;
ALTER TABLE fhe_kv.server_keys ALTER COLUMN owner TYPE name USING owner::text::name;
ALTER TABLE fhe_kv.server_keys ALTER COLUMN owner SET DEFAULT current_user;

SELECT pg_catalog.pg_extension_config_dump('fhe_kv.server_keys', '');
SELECT pg_catalog.pg_extension_config_dump('fhe_kv.encrypted_tables', '');

CREATE FUNCTION "_check_rows"(
	"tbl" oid, /* Option < pg_sys :: Oid > */
	"key_id" TEXT, /* Option < & str > */
	"key_bits" INT, /* Option < i32 > */
	"value_bits" INT, /* Option < i32 > */
	"capacity" INT /* Option < i32 > */
) RETURNS INT /* i32 */
VOLATILE PARALLEL UNSAFE
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_check_rows_wrapper';

CREATE OR REPLACE FUNCTION fhe_kv._create_table(
    name text,
    key_id text,
    capacity integer,
    key_bits integer,
    value_bits integer,
    key_type text,
    value_type text
) RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    parts text[];
    qualified text;
    rel regclass;
    empty bytea;
BEGIN
    IF name IS NULL OR key_id IS NULL OR capacity IS NULL OR key_bits IS NULL OR value_bits IS NULL THEN
        RAISE EXCEPTION 'fhe_kv.create_table: arguments must not be NULL';
    END IF;
    IF capacity < 1 OR capacity > 1000000 THEN
        RAISE EXCEPTION 'fhe_kv.create_table: capacity must be between 1 and 1000000, got %', capacity
            USING HINT = 'Every operation touches every slot: choose the number of entries you need, grow later with fhe_kv.grow.';
    END IF;
    -- Builds the empty-slot ciphertext; validates key_id and widths (clear errors).
    empty := fhe_kv._empty_row(key_id, key_bits, value_bits);
    parts := parse_ident(name);
    SELECT string_agg(quote_ident(p), '.') INTO qualified FROM unnest(parts) AS p;
    EXECUTE format('CREATE TABLE %s (slot integer PRIMARY KEY, row bytea NOT NULL)', qualified);
    rel := qualified::regclass;
    EXECUTE format('ALTER TABLE %s ALTER COLUMN row SET STORAGE EXTERNAL', rel);
    -- The comment travels with `pg_dump -t`: it says how to attach the table again.
    EXECUTE format('COMMENT ON TABLE %s IS %L', rel,
                   format('fhe_kv encrypted table: key_id %s, key_type %s, value_type %s. '
                          'Use fhe_kv.fhe_get/fhe_set/fhe_delete. Restored without its catalog '
                          'entry (pg_dump -t): SELECT fhe_kv.attach_table(%L, %L, %L, %L)',
                          key_id, key_type, value_type, rel::text, key_id, key_type, value_type));
    EXECUTE format('INSERT INTO %s (slot, row) SELECT g, $1 FROM generate_series(0, $2 - 1) AS g', rel)
        USING empty, capacity;
    INSERT INTO fhe_kv.encrypted_tables (relid, key_id, capacity, key_bits, value_bits, key_type, value_type)
        VALUES (rel, _create_table.key_id, _create_table.capacity, _create_table.key_bits,
                _create_table.value_bits, _create_table.key_type, _create_table.value_type);
    RETURN rel;
END $$;

-- The key and value integer widths of a typed table (text:K or uN keys, bytes:N or uN
-- values) of `capacity` slots. Widths follow the client's encoding
-- (fhe_kv_core::encoding::TableCodec): text keys get 64-bit tags while
-- n(n-1)/2 * 2^-64 <= 2^-40, else 128; the value integer holds the key (text, K + 1 bytes)
-- and the value (N + 1 bytes or the integer), in the smallest width.
CREATE FUNCTION fhe_kv._typed_widths(
    key_type text,
    value_type text,
    capacity integer,
    OUT key_bits integer,
    OUT value_bits integer
)
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    need integer;
BEGIN
    IF key_type ~ '^text:[0-9]{1,2}$' AND substring(key_type FROM 6)::int BETWEEN 1 AND 30 THEN
        key_bits := CASE WHEN capacity::bigint * (capacity - 1) / 2 <= 16777216 THEN 64 ELSE 128 END;
        need := substring(key_type FROM 6)::int + 1;
    ELSIF key_type ~ '^u(8|16|32|64|128|256)$' THEN
        key_bits := substring(key_type FROM 2)::int;
        need := 0;
    ELSE
        RAISE EXCEPTION 'fhe_kv: key_type must be text:K (1 <= K <= 30) or u8/u16/u32/u64/u128/u256, got %', key_type;
    END IF;
    IF value_type ~ '^bytes:[0-9]{1,2}$' AND substring(value_type FROM 7)::int BETWEEN 1 AND 31 THEN
        need := need + substring(value_type FROM 7)::int + 1;
    ELSIF value_type ~ '^u(8|16|32|64|128|256)$' THEN
        need := need + substring(value_type FROM 2)::int / 8;
    ELSE
        RAISE EXCEPTION 'fhe_kv: value_type must be bytes:N (1 <= N <= 31) or u8/u16/u32/u64/u128/u256, got %', value_type;
    END IF;
    SELECT min(w) INTO value_bits FROM unnest(ARRAY[8, 16, 32, 64, 128, 256]) AS w WHERE w / 8 >= need;
    IF value_bits IS NULL THEN
        RAISE EXCEPTION 'fhe_kv: % keys with % values need % bytes per value, more than 32', key_type, value_type, need
            USING HINT = 'The key (text:K) and the value (bytes:N) share one 256-bit integer: K + N <= 30.';
    END IF;
END $$;

-- Typed form: key_type 'text:K' or 'u8'…'u256', value_type 'bytes:N' or 'u8'…'u256'.
CREATE OR REPLACE FUNCTION fhe_kv.create_table(
    name text,
    key_id text,
    capacity integer,
    key_type text,
    value_type text
) RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    w record;
BEGIN
    w := fhe_kv._typed_widths(key_type, value_type, capacity);
    RETURN fhe_kv._create_table(name, key_id, capacity, w.key_bits, w.value_bits, key_type, value_type);
END $$;

-- Recovery: register an existing slot table again, e.g. one restored from a dump made
-- before the catalog was part of dumps (fhe_kv < 0.2.0) or from `pg_dump -t`. Only the
-- table's owner can (the catalog guard), and only after every row has been checked to
-- be a row of this key_id and these types: nothing is registered otherwise.
CREATE FUNCTION fhe_kv.attach_table(
    tbl regclass,
    key_id text,
    key_type text,
    value_type text
) RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    cols text[];
    slots bigint;
    distinct_slots bigint;
    lo integer;
    hi integer;
    w record;
BEGIN
    IF tbl IS NULL OR key_id IS NULL OR key_type IS NULL OR value_type IS NULL THEN
        RAISE EXCEPTION 'fhe_kv.attach_table: arguments must not be NULL';
    END IF;
    IF EXISTS (SELECT 1 FROM fhe_kv.encrypted_tables t WHERE t.relid = tbl) THEN
        RAISE EXCEPTION 'fhe_kv.attach_table: % is already an fhe_kv table', tbl;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid = tbl AND c.relkind = 'r'
                   AND pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')) THEN
        RAISE EXCEPTION 'fhe_kv.attach_table: only the owner of table % can attach it', tbl;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM fhe_kv.server_keys k WHERE k.key_id = attach_table.key_id) THEN
        RAISE EXCEPTION 'fhe_kv.attach_table: no server key with key_id % is registered', key_id
            USING HINT = 'Register the key first: fhe-kv register-key, or restore fhe_kv.server_keys.';
    END IF;
    SELECT array_agg(a.attname::text || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
                     ORDER BY a.attnum)
      INTO cols
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped;
    IF cols IS DISTINCT FROM ARRAY['slot integer', 'row bytea'] THEN
        RAISE EXCEPTION 'fhe_kv.attach_table: % has columns (%), not (slot integer, row bytea)',
            tbl, array_to_string(cols, ', ');
    END IF;
    -- Writers wait while the rows are checked and the binding is made.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    EXECUTE format('SELECT count(*), count(DISTINCT slot), min(slot), max(slot) FROM %s', tbl)
        INTO slots, distinct_slots, lo, hi;
    IF slots = 0 OR distinct_slots <> slots OR lo IS DISTINCT FROM 0 OR hi IS DISTINCT FROM slots - 1 THEN
        RAISE EXCEPTION 'fhe_kv.attach_table: % must hold slots 0 to n-1 (it has % rows, slots % to %)',
            tbl, slots, lo, hi;
    END IF;
    w := fhe_kv._typed_widths(key_type, value_type, slots::integer);
    -- Every row: an fhe_kv row envelope of this key_id and widths (no FHE, no server key).
    PERFORM fhe_kv._check_rows(tbl::oid, key_id, w.key_bits, w.value_bits, slots::integer);
    INSERT INTO fhe_kv.encrypted_tables (relid, key_id, capacity, key_bits, value_bits, key_type, value_type)
        VALUES (tbl, attach_table.key_id, slots, w.key_bits, w.value_bits,
                attach_table.key_type, attach_table.value_type);
    RETURN tbl;
END $$;
COMMENT ON FUNCTION fhe_kv.attach_table(regclass, text, text, text) IS
    'Register an existing slot table (e.g. restored with pg_dump -t, or from a dump made before fhe_kv 0.2.0) after checking that every row belongs to key_id and the given types; owner only.';
