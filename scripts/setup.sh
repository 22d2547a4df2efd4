#!/usr/bin/env bash
# Install what fhe_kv needs to build and test, skipping whatever is already there:
# Postgres 15 server + headers, libclang, OpenSSL (headers for the client's TLS, the CLI for
# the TLS tests' certificates), Python 3 with venv/pip and psycopg (the Python package and
# its tests), cargo-pgrx 0.18.0, `cargo pgrx init`.
set -euo pipefail

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi

missing=()
# python3-psycopg: the Python package's tests and the psycopg example (examples/python).
for pkg in postgresql-15 postgresql-server-dev-15 libclang-dev clang pkg-config sudo libssl-dev openssl \
    python3 python3-venv python3-pip python3-psycopg; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! cargo pgrx --version 2>/dev/null | grep -q '0\.18\.0'; then
    echo "setup: installing cargo-pgrx 0.18.0 (~5 min)"
    cargo install cargo-pgrx --version 0.18.0 --locked
fi

if ! grep -qs "^pg15 *= *\"$PG_CONFIG\"" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    echo "setup: cargo pgrx init --pg15 $PG_CONFIG"
    cargo pgrx init --pg15 "$PG_CONFIG" >/dev/null
fi
echo "setup: ok ($(cargo pgrx --version), $("$PG_CONFIG" --version))"
