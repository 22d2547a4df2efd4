-- fhe_kv 0.5.0 -> 0.6.0 (ALTER EXTENSION fhe_kv UPDATE).
--
-- * Bucketed tables of leveled slots (row format bucket-leveled-v1, docs/leveled.md):
--   create_table(..., layout => 'bucketed-leveled'). The buckets are bucket-v1's; each
--   slot in them is leveled, so the server's GET and DELETE cost ~8 bootstraps per
--   candidate slot instead of ~80. A SET is the key owner's fetch and write (no
--   server-side fhe_set or fhe_locate there). Existing tables keep their format.
--   attach_table(..., bucket_slots => Z, leveled => true) attaches such a table.
-- * fhe_kv.encrypted_tables.writes (and fhe_kv.tables.writes): write-backs of a bucketed
--   table since the key owner last sealed its rows; writes past the row format's noise
--   budget are refused until `fhe-kv refresh` re-seals them (docs/leveled.md).
-- The definitions below are those of sql/bootstrap.sql and sql/api.sql (the Rust
-- functions as pgrx generates them). tests/backup.rs checks that an upgraded database has
-- the same extension objects as a fresh CREATE EXTENSION.

-- Catalog.
ALTER TABLE fhe_kv.encrypted_tables DROP CONSTRAINT encrypted_tables_row_format_check;
ALTER TABLE fhe_kv.encrypted_tables ADD CONSTRAINT encrypted_tables_row_format_check
    CHECK (row_format IN ('compact-v1', 'bucket-v1', 'leveled-v1', 'leveled-v2', 'bucket-leveled-v1'));
ALTER TABLE fhe_kv.encrypted_tables DROP CONSTRAINT layout_matches_format;
ALTER TABLE fhe_kv.encrypted_tables ADD CONSTRAINT layout_matches_format CHECK (
        (layout = 'flat' AND row_format = 'compact-v1' AND bucket_slots IS NULL)
        OR (layout = 'leveled' AND row_format IN ('leveled-v1', 'leveled-v2') AND bucket_slots IS NULL)
        OR (layout = 'bucketed' AND row_format IN ('bucket-v1', 'bucket-leveled-v1') AND bucket_slots >= 1
            AND capacity % (2 * bucket_slots) = 0));

-- The write-back count of bucketed tables and its budget (docs/leveled.md): writers
-- count their write-backs; fhe-kv refresh (the key owner's re-sealing) sets it to 0.
ALTER TABLE fhe_kv.encrypted_tables ADD COLUMN writes bigint NOT NULL DEFAULT 0 CHECK (writes >= 0);
CREATE OR REPLACE FUNCTION fhe_kv._guard_encrypted_tables() RETURNS trigger
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
GRANT UPDATE (writes) ON fhe_kv.encrypted_tables TO PUBLIC;

-- Rust functions.
CREATE FUNCTION fhe_kv."_empty_bucket"(
	"key_id" TEXT, /* Option < & str > */
	"key_bits" INT, /* Option < i32 > */
	"value_bits" INT, /* Option < i32 > */
	"bucket_slots" INT, /* Option < i32 > */
	"buckets_per_half" INT, /* Option < i32 > */
	"row_format" TEXT /* Option < & str > */
) RETURNS bytea /* Vec < u8 > */
VOLATILE PARALLEL UNSAFE 
LANGUAGE c /* Rust */
AS 'MODULE_PATHNAME', '_empty_bucket_of_format_wrapper';

-- SQL functions.
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
    leveled boolean := layout IN ('leveled', 'leveled-v1');
    -- Bucketed tables of leveled slots (row format bucket-leveled-v1): the server's GET
    -- and DELETE cost ~8 bootstraps per candidate slot instead of ~80; SET is the key
    -- owner's fetch and write (docs/leveled.md).
    bucket_format text := CASE WHEN layout = 'bucketed-leveled' THEN 'bucket-leveled-v1' ELSE 'bucket-v1' END;
    -- Leveled rows: one GLWE per slot (leveled-v2) unless the lookup-table rows of 0.4.0
    -- are asked for (leveled-v1: a faster GET, three times the bytes after a SET).
    leveled_format text := CASE WHEN layout = 'leveled-v1' THEN 'leveled-v1' ELSE 'leveled-v2' END;
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
    IF layout NOT IN ('auto', 'flat', 'bucketed', 'bucketed-leveled', 'leveled', 'leveled-v1') THEN
        RAISE EXCEPTION 'fhe_kv.create_table: layout must be auto, flat, bucketed, bucketed-leveled, leveled or leveled-v1, got %', layout;
    END IF;
    IF leveled AND capacity > fhe_kv.leveled_max_slots() THEN
        RAISE EXCEPTION 'fhe_kv.create_table: a leveled table holds at most % slots, got %', fhe_kv.leveled_max_slots(), capacity
            USING HINT = 'Its answers sum one term per slot without a bootstrap (docs/leveled.md); use layout => ''bucketed'' for larger tables.';
    END IF;
    z := coalesce(bucket_slots, fhe_kv.default_bucket_slots());
    -- 'auto': bucketed where it is cheaper — from 2 × bucket_slots keys up, where a flat
    -- table would bootstrap more slots per operation than a bucketed one's two candidate
    -- buckets — if the key can serve bucketed tables.
    bucketed := layout IN ('bucketed', 'bucketed-leveled')
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
            RAISE EXCEPTION 'fhe_kv.create_table: bucket_slots is for bucketed tables (layout => ''bucketed'' or ''bucketed-leveled'')';
        END IF;
        slots := capacity;
        index_column := 'slot';
    END IF;
    w := fhe_kv._typed_widths(key_type, value_type, slots);
    IF bucketed THEN
        -- Validates key_id (registered, with bucket key material), widths, bucket size.
        empty := fhe_kv._empty_bucket(key_id, w.key_bits, w.value_bits, z, per_half, bucket_format);
    ELSIF leveled THEN
        -- A never-written leveled slot (trivial ciphertexts); validates key_id and widths.
        empty := fhe_kv._empty_leveled_row(key_id, w.key_bits, w.value_bits, leveled_format);
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
                          'Use fhe_kv.fhe_get/%s/fhe_delete. Restored without its catalog '
                          'entry (pg_dump -t): SELECT fhe_kv.attach_table(%L, %L, %L, %L%s)',
                          key_id, key_type, value_type,
                          CASE WHEN bucketed THEN format(', bucketed%s, %s slots per bucket',
                                                         CASE WHEN bucket_format = 'bucket-leveled-v1' THEN ' (leveled slots)' ELSE '' END, z)
                               WHEN leveled THEN ', leveled' ELSE '' END,
                          CASE WHEN leveled THEN 'fhe_set_locate+fhe_write'
                               WHEN bucket_format = 'bucket-leveled-v1' THEN 'fhe_fetch+fhe_write'
                               ELSE 'fhe_set' END,
                          rel::text, key_id, key_type, value_type,
                          CASE WHEN bucketed THEN format(', bucket_slots => %s%s', z,
                                                         CASE WHEN bucket_format = 'bucket-leveled-v1' THEN ', leveled => true' ELSE '' END)
                               WHEN leveled THEN ', leveled => true' ELSE '' END));
    EXECUTE format('INSERT INTO %s SELECT g, $1 FROM generate_series(0, $2 - 1) AS g', rel)
        USING empty, CASE WHEN bucketed THEN 2 * per_half ELSE slots END;
    INSERT INTO fhe_kv.encrypted_tables (relid, key_id, capacity, key_bits, value_bits, key_type,
                                         value_type, row_format, layout, bucket_slots)
        VALUES (rel, _create_table.key_id, slots, w.key_bits, w.value_bits,
                _create_table.key_type, _create_table.value_type,
                CASE WHEN bucketed THEN bucket_format WHEN leveled THEN leveled_format ELSE 'compact-v1' END,
                CASE WHEN bucketed THEN 'bucketed' WHEN leveled THEN 'leveled' ELSE 'flat' END,
                CASE WHEN bucketed THEN z END);
    RETURN rel;
END $$;

CREATE OR REPLACE FUNCTION fhe_kv.attach_table(
    tbl regclass,
    key_id text,
    key_type text,
    value_type text,
    bucket_slots integer DEFAULT NULL,
    leveled boolean DEFAULT false
) RETURNS regclass
LANGUAGE plpgsql AS $$
DECLARE
    cols text[];
    index_column text := CASE WHEN bucket_slots IS NULL THEN 'slot' ELSE 'bucket' END;
    n bigint;
    distinct_n bigint;
    lo integer;
    hi integer;
    capacity integer;
    w record;
BEGIN
    IF tbl IS NULL OR key_id IS NULL OR key_type IS NULL OR value_type IS NULL OR leveled IS NULL THEN
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
            USING HINT = 'Register the key first: fhe-kv register, or restore fhe_kv.server_keys.';
    END IF;
    SELECT array_agg(a.attname::text || ' ' || pg_catalog.format_type(a.atttypid, a.atttypmod)
                     ORDER BY a.attnum)
      INTO cols
      FROM pg_catalog.pg_attribute a
     WHERE a.attrelid = tbl AND a.attnum > 0 AND NOT a.attisdropped;
    IF cols IS DISTINCT FROM ARRAY[index_column || ' integer', 'row bytea'] THEN
        RAISE EXCEPTION 'fhe_kv.attach_table: % has columns (%), not (% integer, row bytea)',
            tbl, array_to_string(cols, ', '), index_column;
    END IF;
    -- Writers wait while the rows are checked and the binding is made.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    EXECUTE format('SELECT count(*), count(DISTINCT %1$I), min(%1$I), max(%1$I) FROM %2$s', index_column, tbl)
        INTO n, distinct_n, lo, hi;
    IF n = 0 OR distinct_n <> n OR lo IS DISTINCT FROM 0 OR hi IS DISTINCT FROM n - 1
       OR (bucket_slots IS NOT NULL AND n % 2 <> 0) THEN
        RAISE EXCEPTION 'fhe_kv.attach_table: % must hold %s 0 to n-1% (it has % rows, % to %)',
            tbl, index_column, CASE WHEN bucket_slots IS NULL THEN '' ELSE ', n even' END, n, lo, hi;
    END IF;
    IF leveled AND bucket_slots IS NULL AND n > fhe_kv.leveled_max_slots() THEN
        RAISE EXCEPTION 'fhe_kv.attach_table: a leveled table holds at most % slots; % has %', fhe_kv.leveled_max_slots(), tbl, n;
    END IF;
    capacity := n * coalesce(bucket_slots, 1);
    w := fhe_kv._typed_widths(key_type, value_type, capacity);
    -- Every row: an fhe_kv row of this key_id, widths and bucket size (no FHE, no server key).
    PERFORM fhe_kv._check_rows(tbl::oid, key_id, w.key_bits, w.value_bits, capacity, bucket_slots, leveled);
    INSERT INTO fhe_kv.encrypted_tables (relid, key_id, capacity, key_bits, value_bits, key_type,
                                         value_type, row_format, layout, bucket_slots)
        VALUES (tbl, attach_table.key_id, capacity, w.key_bits, w.value_bits,
                attach_table.key_type, attach_table.value_type,
                CASE WHEN bucket_slots IS NOT NULL THEN
                         CASE WHEN leveled THEN 'bucket-leveled-v1' ELSE 'bucket-v1' END
                     WHEN leveled THEN fhe_kv._leveled_row_format(tbl::oid, attach_table.key_id, w.key_bits, w.value_bits)
                     ELSE 'compact-v1' END,
                CASE WHEN bucket_slots IS NOT NULL THEN 'bucketed' WHEN leveled THEN 'leveled' ELSE 'flat' END,
                attach_table.bucket_slots);
    RETURN tbl;
END $$;
COMMENT ON FUNCTION fhe_kv.attach_table(regclass, text, text, text, integer, boolean) IS
    'Register an existing fhe_kv data table (e.g. restored with pg_dump -t, or from a dump made before fhe_kv 0.2.0) after checking that every row belongs to key_id and the given types; owner only. bucket_slots: for a bucketed table; leveled => true: for a leveled one, or with bucket_slots for a bucketed table of leveled slots (bucket-leveled-v1).';

COMMENT ON FUNCTION fhe_kv.create_table(text, text, integer, integer, integer, text, integer) IS
    'Create an encrypted table holding `capacity` keys, bound to key_id, with integer keys and values of the given widths. layout: auto (bucketed from 2 × bucket_slots keys up, if the key supports it), flat (capacity slots, every operation touches each), bucketed (enough buckets of bucket_slots slots that capacity keys fit with a SET refusing a new key with probability < 1e-9) or leveled (capacity slots of at most fhe_kv.leveled_max_slots(), ~20x fewer bootstraps per slot than flat; SET in two rounds; one GLWE per slot, row format leveled-v2) or leveled-v1 (the same with 0.4.0''s lookup-table rows: a faster GET, three times the bytes after a SET) or bucketed-leveled (bucketed, each bucket''s slots leveled, row format bucket-leveled-v1: the server''s GET and DELETE ~10x fewer bootstraps per candidate slot than bucketed; SET only as the key owner''s fetch and write).';

-- The catalog view, with the write count.
CREATE OR REPLACE VIEW fhe_kv.tables AS
    SELECT relid AS table_name, key_id, capacity, key_type, value_type, key_bits, value_bits,
           row_format, created_at, layout, bucket_slots,
           capacity / coalesce(bucket_slots, 1) AS rows,
           -- Keys a SET can always store: every slot of a flat table; for a bucketed table
           -- the load up to which a new key is refused with probability < 10^-9.
           CASE layout WHEN 'bucketed' THEN fhe_kv.bucket_load_limit(bucket_slots, capacity)
                       ELSE capacity END AS load_limit,
           -- Bucketed tables: write-backs since the key owner last sealed the rows.
           writes
      FROM fhe_kv.encrypted_tables;
COMMENT ON VIEW fhe_kv.tables IS
    'Encrypted tables: key_id, capacity, types, widths and layout of each, how many keys a SET can always store (load_limit), and for bucketed tables the write-backs since the key owner last sealed the rows (writes; fhe-kv info shows the budget).';
