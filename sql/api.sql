-- Public SQL API (runs after the Rust functions are defined).

CREATE FUNCTION fhe_kv.create_table(
    name text,
    key_id text,
    capacity integer,
    key_bits integer DEFAULT 64,
    value_bits integer DEFAULT 64
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
    EXECUTE format('COMMENT ON TABLE %s IS %L', rel,
                   'fhe_kv encrypted table (key_id ' || key_id || '); use fhe_kv.fhe_get/fhe_set/fhe_delete');
    EXECUTE format('INSERT INTO %s (slot, row) SELECT g, $1 FROM generate_series(0, $2 - 1) AS g', rel)
        USING empty, capacity;
    INSERT INTO fhe_kv.encrypted_tables (relid, key_id, capacity, key_bits, value_bits)
        VALUES (rel, create_table.key_id, create_table.capacity, create_table.key_bits, create_table.value_bits);
    RETURN rel;
END $$;
COMMENT ON FUNCTION fhe_kv.create_table(text, text, integer, integer, integer) IS
    'Create an encrypted table of `capacity` empty slots bound to key_id.';

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
    -- Same lock as fhe_set/fhe_delete: writers to one table are serialized.
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', tbl);
    SELECT * INTO t FROM fhe_kv.encrypted_tables WHERE relid = tbl;
    empty := fhe_kv._empty_row(t.key_id, t.key_bits, t.value_bits);
    EXECUTE format('INSERT INTO %s (slot, row) SELECT g, $1 FROM generate_series($2, $3 - 1) AS g', tbl)
        USING empty, t.capacity, t.capacity + n;
    UPDATE fhe_kv.encrypted_tables SET capacity = t.capacity + n WHERE relid = tbl;
    RETURN t.capacity + n;
END $$;
COMMENT ON FUNCTION fhe_kv.grow(regclass, integer) IS 'Add n empty slots to an encrypted table.';

CREATE FUNCTION fhe_kv.fhe_get(tbl regclass, key fhe_kv.enc_key) RETURNS fhe_kv.enc_result
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_get(tbl::oid, key)::fhe_kv.enc_result $$;
COMMENT ON FUNCTION fhe_kv.fhe_get(regclass, fhe_kv.enc_key) IS
    'Private GET: encrypted (found, value) for an encrypted key; touches every slot.';

CREATE FUNCTION fhe_kv.fhe_set(tbl regclass, key fhe_kv.enc_key, value fhe_kv.enc_value)
RETURNS fhe_kv.enc_status
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_set(tbl::oid, key, value)::fhe_kv.enc_status $$;
COMMENT ON FUNCTION fhe_kv.fhe_set(regclass, fhe_kv.enc_key, fhe_kv.enc_value) IS
    'Private idempotent upsert; returns an encrypted status (inserted/updated/full); rewrites every slot.';

CREATE FUNCTION fhe_kv.fhe_delete(tbl regclass, key fhe_kv.enc_key) RETURNS fhe_kv.enc_status
LANGUAGE sql VOLATILE AS $$ SELECT fhe_kv._fhe_delete(tbl::oid, key)::fhe_kv.enc_status $$;
COMMENT ON FUNCTION fhe_kv.fhe_delete(regclass, fhe_kv.enc_key) IS
    'Private DELETE; returns an encrypted status (deleted/not_found); rewrites every slot.';
