#!/usr/bin/env python3
"""fhe_kv from Python: the fhe_kv package holds the client key, psycopg moves bytea.

The typed API (`kv.put`, `kv.get`, ...) encrypts, calls the extension's SQL functions and
decrypts. For SQL of your own, `kv.encrypt_query_key` / `kv.encrypt_value` make the
arguments and `kv.decrypt_result` / `kv.decrypt_status` read the answers: psycopg passes
them as bytes, as any Postgres driver would. The server never sees a plaintext.

    make python                      # builds the wheel, installs it in target/python-venv
    export DATABASE_URL=postgres://alice@localhost/kv FHE_KV_CLIENT_KEY=~/.fhe-kv/client.key
    fhe-kv create-table notes --capacity 8 --key-type text:15 --value-type bytes:15
    target/python-venv/bin/python examples/python/psycopg_example.py notes patient-4711 "blood: A+"
"""
import os
import sys

import fhe_kv
import psycopg


def main() -> None:
    table, key, value = sys.argv[1:4]
    keys = fhe_kv.load_client_key(os.environ["FHE_KV_CLIENT_KEY"])
    with psycopg.connect(os.environ.get("DATABASE_URL", "")) as conn:
        kv = fhe_kv.Client.from_psycopg(conn, keys)

        # The typed API.
        print("set:", kv.put(table, key, value.encode()))

        # Your own SQL: enc_key / enc_result / enc_status are domains over bytea.
        enc_key = kv.encrypt_query_key(table, key)
        (result,) = conn.execute(
            "SELECT fhe_kv.fhe_get(%s::regclass, %s)::bytea", (table, enc_key)
        ).fetchone()
        found = kv.decrypt_result(table, result)
        print("get:", "not found" if found is None else "found " + found.decode())

        (status,) = conn.execute(
            "SELECT fhe_kv.fhe_delete(%s::regclass, %s)::bytea", (table, enc_key)
        ).fetchone()
        conn.commit()
        print("delete:", kv.decrypt_status(status))
        kv.close()


if __name__ == "__main__":
    try:
        main()
    except fhe_kv.Error as e:
        sys.exit(f"error: {e}" + (f"\nhint: {e.hint}" if e.hint else ""))
