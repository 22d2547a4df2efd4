#!/usr/bin/env python3
"""fhe_kv from Python with psycopg: the database driver only moves bytea.

The `fhe-kv` CLI holds the client key: it encrypts keys/values (`fhe-kv encrypt`) and
decrypts answers (`fhe-kv decrypt`). psycopg calls the SQL functions with those bytes,
exactly as any Postgres driver would. Nothing in this script sees a plaintext the server
could not; the server sees none at all.

    export DATABASE_URL=postgres://alice@localhost/kv FHE_KV_CLIENT_KEY=~/.fhe-kv/client.key
    fhe-kv create-table notes --capacity 8 --key-type text:15 --value-type bytes:15
    python3 examples/python/psycopg_example.py notes patient-4711 "blood: A+"

Environment: DATABASE_URL (or the PG* variables), FHE_KV_CLIENT_KEY, and FHE_KV (path to
the fhe-kv binary, default `fhe-kv` on PATH).
"""
import os
import subprocess
import sys

import psycopg

FHE_KV = os.environ.get("FHE_KV", "fhe-kv")


def fhe_kv(*args: str, stdin: str | None = None) -> str:
    """Run the fhe-kv CLI; its errors go to our stderr and stop the script."""
    done = subprocess.run(
        [FHE_KV, *args], input=stdin, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"fhe-kv {args[0]} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def from_psql_hex(text: str) -> bytes:
    """`fhe-kv encrypt` prints bytea as psql does: \\x followed by hex."""
    return bytes.fromhex(text.removeprefix("\\x"))


def to_psql_hex(data: bytes) -> str:
    return "\\x" + data.hex()


def main() -> None:
    table, key, value = sys.argv[1:4]
    enc_key = from_psql_hex(fhe_kv("encrypt", "--table", table, "--key", key))
    enc_value = from_psql_hex(
        fhe_kv("encrypt", "--table", table, "--key", key, "--value", value)
    )
    with psycopg.connect(os.environ.get("DATABASE_URL", "")) as conn:
        # enc_key / enc_value / enc_status are domains over bytea: pass bytes.
        (status,) = conn.execute(
            "SELECT fhe_kv.fhe_set(%s::regclass, %s, %s)::bytea",
            (table, enc_key, enc_value),
        ).fetchone()
        print("set:", fhe_kv("decrypt", stdin=to_psql_hex(status)))

        (result,) = conn.execute(
            "SELECT fhe_kv.fhe_get(%s::regclass, %s)::bytea", (table, enc_key)
        ).fetchone()
        print("get:", fhe_kv("decrypt", "--table", table, stdin=to_psql_hex(result)))

        (status,) = conn.execute(
            "SELECT fhe_kv.fhe_delete(%s::regclass, %s)::bytea", (table, enc_key)
        ).fetchone()
        print("delete:", fhe_kv("decrypt", stdin=to_psql_hex(status)))


if __name__ == "__main__":
    main()
