-- Public SQL API (runs after the Rust functions are defined).

-- The catalog as users read it (needs fhe_kv.bucket_load_limit, a Rust function).
CREATE VIEW fhe_kv.tables AS
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
GRANT SELECT ON fhe_kv.tables TO PUBLIC;

-- Keys this session loaded with fhe_kv.load_session_key (session memory, never stored).
CREATE VIEW fhe_kv.session_keys AS
    SELECT key_id, supports_buckets, loaded_at, upload_bytes FROM fhe_kv._session_keys();
COMMENT ON VIEW fhe_kv.session_keys IS
    'Server keys loaded for this session only (fhe_kv.load_session_key): held in this backend''s memory, never stored, gone at disconnect.';
GRANT SELECT ON fhe_kv.session_keys TO PUBLIC;

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

CREATE FUNCTION fhe_kv._create_table(
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

CREATE FUNCTION fhe_kv.create_table(
    name text,
    key_id text,
    capacity integer,
    key_bits integer DEFAULT 64,
    value_bits integer DEFAULT 64,
    layout text DEFAULT 'auto',
    bucket_slots integer DEFAULT NULL
) RETURNS regclass
LANGUAGE plpgsql AS $$
BEGIN
    IF key_bits IS NOT NULL AND key_bits NOT IN (8, 16, 32, 64, 128, 256)
       OR value_bits IS NOT NULL AND value_bits NOT IN (8, 16, 32, 64, 128, 256) THEN
        RAISE EXCEPTION 'fhe_kv.create_table: width must be 8, 16, 32, 64, 128 or 256 bits, got key_bits % and value_bits %',
            key_bits, value_bits;
    END IF;
    RETURN fhe_kv._create_table(name, key_id, capacity, 'u' || key_bits, 'u' || value_bits,
                                layout, bucket_slots);
END $$;
COMMENT ON FUNCTION fhe_kv.create_table(text, text, integer, integer, integer, text, integer) IS
    'Create an encrypted table holding `capacity` keys, bound to key_id, with integer keys and values of the given widths. layout: auto (bucketed from 2 × bucket_slots keys up, if the key supports it), flat (capacity slots, every operation touches each), bucketed (enough buckets of bucket_slots slots that capacity keys fit with a SET refusing a new key with probability < 1e-9) or leveled (capacity slots of at most fhe_kv.leveled_max_slots(), ~20x fewer bootstraps per slot than flat; SET in two rounds; one GLWE per slot, row format leveled-v2) or leveled-v1 (the same with 0.4.0''s lookup-table rows: a faster GET, three times the bytes after a SET) or bucketed-leveled (bucketed, each bucket''s slots leveled, row format bucket-leveled-v1: the server''s GET and DELETE ~10x fewer bootstraps per candidate slot than bucketed; SET only as the key owner''s fetch and write).';

-- Typed form: key_type 'text:K' or 'u8'…'u256', value_type 'bytes:N' or 'u8'…'u256'.
CREATE FUNCTION fhe_kv.create_table(
    name text,
    key_id text,
    capacity integer,
    key_type text,
    value_type text,
    layout text DEFAULT 'auto',
    bucket_slots integer DEFAULT NULL
) RETURNS regclass
LANGUAGE sql AS $$
    SELECT fhe_kv._create_table(name, key_id, capacity, key_type, value_type, layout, bucket_slots)
$$;
COMMENT ON FUNCTION fhe_kv.create_table(text, text, integer, text, text, text, integer) IS
    'Create an encrypted table with typed keys (text:K or uN) and values (bytes:N or uN); capacity and layout as for the integer form.';

CREATE FUNCTION fhe_kv.grow(tbl regclass, n integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    t fhe_kv.encrypted_tables;
    empty bytea;
BEGIN
    IF tbl IS NULL OR n IS NULL THEN
        RAISE EXCEPTION 'fhe_kv.grow: arguments must not be NULL';
    END IF;
    IF n < 1 THEN
        RAISE EXCEPTION 'fhe_kv.grow: n must be positive, got %', n;
    END IF;
    SELECT * INTO t FROM fhe_kv.encrypted_tables WHERE relid = tbl;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'relation "%" is not an fhe_kv table', tbl
            USING HINT = 'Create encrypted tables with fhe_kv.create_table.';
    END IF;
    IF t.layout = 'bucketed' THEN
        RAISE EXCEPTION 'fhe_kv.grow: % is bucketed: growing it moves keys to new buckets, which only the key owner can compute', tbl
            USING HINT = 'Run `fhe-kv grow TABLE N` (Client::grow): it rehashes the table client-side and writes it with fhe_kv.rehash.';
    END IF;
    -- Same lock as fhe_set/fhe_delete: writers to one table are serialized.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    SELECT * INTO t FROM fhe_kv.encrypted_tables WHERE relid = tbl;
    IF t.layout = 'leveled' THEN
        IF t.capacity + n > fhe_kv.leveled_max_slots() THEN
            RAISE EXCEPTION 'fhe_kv.grow: a leveled table holds at most % slots; % has %', fhe_kv.leveled_max_slots(), tbl, t.capacity
                USING HINT = 'Its answers sum one term per slot without a bootstrap (docs/leveled.md).';
        END IF;
        empty := fhe_kv._empty_leveled_row(t.key_id, t.key_bits, t.value_bits, t.row_format);
    ELSE
        empty := fhe_kv._empty_row(t.key_id, t.key_bits, t.value_bits);
    END IF;
    EXECUTE format('INSERT INTO %s (slot, row) SELECT g, $1 FROM generate_series($2, $3 - 1) AS g', tbl)
        USING empty, t.capacity, t.capacity + n;
    IF t.key_type LIKE 'text:%' AND t.key_bits = 64
       AND (t.capacity + n)::bigint * (t.capacity + n - 1) / 2 > 16777216 THEN
        RAISE EXCEPTION 'fhe_kv.grow: % has 64-bit text-key tags; % slots would exceed the 2^-40 collision bound', tbl, t.capacity + n
            USING HINT = 'Create a new table (text keys above 5793 slots get 128-bit tags) and import into it.';
    END IF;
    UPDATE fhe_kv.encrypted_tables SET capacity = t.capacity + n WHERE relid = tbl;
    RETURN t.capacity + n;
END $$;
COMMENT ON FUNCTION fhe_kv.grow(regclass, integer) IS 'Add n empty slots to an encrypted table.';

-- Recovery: register an existing slot table again, e.g. one restored from a dump made
-- before the catalog was part of dumps (fhe_kv < 0.2.0) or from `pg_dump -t`. Only the
-- table's owner can (the catalog guard), and only after every row has been checked to
-- be a row of this key_id and these types: nothing is registered otherwise. A bucketed
-- table is attached with its bucket_slots (its COMMENT says how many).
CREATE FUNCTION fhe_kv.attach_table(
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

-- Growing a bucketed table: the key owner rehashed every key into `buckets_per_half`
-- buckets per half and sealed the new rows (fhe-kv grow). Validates every row, then
-- replaces the table's rows and capacity in this transaction; owner only (the catalog
-- guard), and a table never shrinks.
CREATE FUNCTION fhe_kv.rehash(tbl regclass, buckets_per_half integer, rows bytea[]) RETURNS integer
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._rehash(tbl::oid, buckets_per_half, rows) $$;
COMMENT ON FUNCTION fhe_kv.rehash(regclass, integer, bytea[]) IS
    'Grow a bucketed table (fhe-kv grow): replace its rows with the key owner''s rehash into buckets_per_half buckets per half; returns the new capacity. Call after LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE and reading the rows in the same transaction.';

CREATE FUNCTION fhe_kv.fhe_get(tbl regclass, key fhe_kv.enc_key) RETURNS fhe_kv.enc_result
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_get(tbl::oid, key)::fhe_kv.enc_result $$;
COMMENT ON FUNCTION fhe_kv.fhe_get(regclass, fhe_kv.enc_key) IS
    'Private GET: encrypted (found, value) for an encrypted key; touches every slot.';

CREATE FUNCTION fhe_kv.fhe_get_many(tbl regclass, keys fhe_kv.enc_key[]) RETURNS fhe_kv.enc_result[]
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_get_many(tbl::oid, keys::bytea[])::fhe_kv.enc_result[] $$;
COMMENT ON FUNCTION fhe_kv.fhe_get_many(regclass, fhe_kv.enc_key[]) IS
    'Batched private GET of 1 to 64 keys in one pass over the table (each row decoded once); results in key order.';

CREATE FUNCTION fhe_kv.fhe_locate(tbl regclass, key fhe_kv.enc_key) RETURNS fhe_kv.enc_locate
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_locate(tbl::oid, key)::fhe_kv.enc_locate $$;
COMMENT ON FUNCTION fhe_kv.fhe_locate(regclass, fhe_kv.enc_key) IS
    'Two-round GET, round 1: which slot holds the key, readable only by the key owner; touches every slot, decompresses keys only.';

CREATE FUNCTION fhe_kv.fhe_locate_many(tbl regclass, keys fhe_kv.enc_key[]) RETURNS fhe_kv.enc_locate[]
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_locate_many(tbl::oid, keys::bytea[])::fhe_kv.enc_locate[] $$;
COMMENT ON FUNCTION fhe_kv.fhe_locate_many(regclass, fhe_kv.enc_key[]) IS
    'Two-round GET, round 1 for 1 to 64 keys in one pass (each row''s key decompressed once); answers in key order.';

CREATE FUNCTION fhe_kv.fhe_fetch(tbl regclass, query fhe_kv.enc_fetch) RETURNS fhe_kv.enc_fetch
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_fetch(tbl::oid, query)::fhe_kv.enc_fetch $$;
COMMENT ON FUNCTION fhe_kv.fhe_fetch(regclass, fhe_kv.enc_fetch) IS
    'Two-round GET, round 2: the slot selected by an encrypted index (CMux tree, no bootstrap); always called, also after a miss.';

CREATE FUNCTION fhe_kv.fhe_write(tbl regclass, write fhe_kv.enc_write) RETURNS integer
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_write(tbl::oid, write) $$;
COMMENT ON FUNCTION fhe_kv.fhe_write(regclass, fhe_kv.enc_write) IS
    'Bucketed tables: the key owner''s write after an fhe_fetch of the same candidate buckets (encrypted deltas, no bootstrap). Leveled tables: SET round 2 after fhe_set_locate (the new row and its encrypted slot index, no bootstrap). Refused with SQLSTATE 40001 if the table changed since that read. Rewrites every bucket or slot; returns their number.';

CREATE FUNCTION fhe_kv.fhe_set_locate(tbl regclass, key fhe_kv.enc_key) RETURNS fhe_kv.enc_locate
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_set_locate(tbl::oid, key)::fhe_kv.enc_locate $$;
COMMENT ON FUNCTION fhe_kv.fhe_set_locate(regclass, fhe_kv.enc_key) IS
    'Leveled tables, SET round 1: the key''s slot or the first vacant one, readable only by the key owner, with the table state fhe_write must carry; touches every slot.';

CREATE FUNCTION fhe_kv.fhe_set(tbl regclass, key fhe_kv.enc_key, value fhe_kv.enc_value)
RETURNS fhe_kv.enc_status
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_set(tbl::oid, key, value)::fhe_kv.enc_status $$;
COMMENT ON FUNCTION fhe_kv.fhe_set(regclass, fhe_kv.enc_key, fhe_kv.enc_value) IS
    'Private idempotent upsert; returns an encrypted status (inserted/updated/full); rewrites every slot. Leveled tables take a two-round SET instead (fhe_set_locate, fhe_write).';

CREATE FUNCTION fhe_kv.fhe_delete(tbl regclass, key fhe_kv.enc_key, scrub boolean DEFAULT false)
RETURNS fhe_kv.enc_status
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_delete(tbl::oid, key, scrub)::fhe_kv.enc_status $$;
COMMENT ON FUNCTION fhe_kv.fhe_delete(regclass, fhe_kv.enc_key, boolean) IS
    'Private DELETE; returns an encrypted status (deleted/not_found); rewrites every slot. The freed slot keeps the deleted pair, encrypted and flagged vacant, until reused; scrub => true also zeroes every vacant slot (about 1.6x the cost).';

CREATE FUNCTION fhe_kv.replace_all_rows(tbl regclass, rows bytea[]) RETURNS integer
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._replace_all_rows(tbl::oid, rows) $$;
COMMENT ON FUNCTION fhe_kv.replace_all_rows(regclass, bytea[]) IS
    'Bulk load (fhe-kv import): replace every slot, in slot order, with rows the key owner sealed; validates every row first. Call after LOCK TABLE ... IN SHARE ROW EXCLUSIVE MODE and reading the rows in the same transaction.';
