#!/usr/bin/env bash
# pgbench-driven load on an fhe_kv table: concurrent clients run private SETs and GETs on
# pre-encrypted ciphertexts (a table of envelopes made with the fhe-kv CLI), then the
# script reports the operations completed and the errors, and checks with the client key
# that every key that was written holds its value.
#
#   scripts/pgbench_load.sh           manual mode: 120 s of load, 2 clients, 4 keys
#   scripts/pgbench_load.sh --short   CI mode: 15 s (run by the reliability tests)
#
# Environment: PGHOST/PGPORT/PGUSER reach a cluster with fhe_kv installed (e.g.
# `eval "$(bash scripts/pgcluster.sh env DIR)"`); FHE_KV_CLI (the fhe-kv binary, default
# target/debug/fhe-kv); FHE_KV_TEST_KEY_DIR (client.key + server.key, default
# target/fhe-kv-test-keys); LOAD_SECONDS, LOAD_CLIENTS, LOAD_KEYS override the mode.
# Exit status 1 if an operation failed, nothing completed or a value is wrong.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=120
[ "${1:-}" = "--short" ] && seconds=15
seconds=${LOAD_SECONDS:-$seconds}
clients=${LOAD_CLIENTS:-2}
nkeys=${LOAD_KEYS:-4}
cli=${FHE_KV_CLI:-target/debug/fhe-kv}
keydir=${FHE_KV_TEST_KEY_DIR:-target/fhe-kv-test-keys}
bindir=$("${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" --bindir)
export PGDATABASE=fhe_kv_load

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# the CLI refuses a group/world-readable client key; the cached test key is a+r
install -m 600 "$keydir/client.key" "$work/client.key"
export FHE_KV_CLIENT_KEY=$work/client.key

"$bindir/psql" -q -d postgres -c "DROP DATABASE IF EXISTS $PGDATABASE WITH (FORCE)" \
    -c "CREATE DATABASE $PGDATABASE"
"$bindir/psql" -q -c 'CREATE EXTENSION fhe_kv'
"$cli" register --server-key "$keydir/server.key" >/dev/null
"$cli" create-table kv --capacity "$nkeys" --key-bits 8 --value-bits 8 --layout flat >/dev/null

# key i holds 10*i: pre-encrypt every key and value once
"$bindir/psql" -q -c 'CREATE TABLE load_inputs (i int PRIMARY KEY, k bytea, v bytea)'
for i in $(seq 1 "$nkeys"); do
    k=$("$cli" encrypt --key "$i" --bits 8)
    v=$("$cli" encrypt --value $((10 * i)) --bits 8)
    "$bindir/psql" -q -c "INSERT INTO load_inputs VALUES ($i, '$k', '$v')"
done

cat >"$work/set.sql" <<EOF
\set i random(1, $nkeys)
SELECT length(fhe_kv.fhe_set('kv', k, v)) FROM load_inputs WHERE i = :i;
EOF
cat >"$work/get.sql" <<EOF
\set i random(1, $nkeys)
SELECT length(fhe_kv.fhe_get('kv', k)) FROM load_inputs WHERE i = :i;
EOF

echo "pgbench load: $clients clients, ${seconds} s, table of $nkeys u8/u8 slots"
set +e
"$bindir/pgbench" -n -c "$clients" -j "$clients" -T "$seconds" \
    -f "$work/set.sql@1" -f "$work/get.sql@1" >"$work/out" 2>"$work/err"
status=$?
set -e
cat "$work/out"
ops=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$work/out")
# per script: "SQL script N: …" then " - weight: …" and " - K transactions (…)"
per_script() { awk -v n="$1" '$0 ~ "^SQL script " n ":" { f = 1; next }
                                f && / transactions / { print $2; exit }' "$work/out"; }
sets=$(per_script 1)
gets=$(per_script 2)
errors=$(grep -c 'aborted\|ERROR' "$work/err" || true)
if [ "$status" != 0 ] && [ "$errors" = 0 ]; then errors=1; fi
[ "$errors" = 0 ] || sed 's/^/pgbench: /' "$work/err" | head -20

# every key that was written holds its value; the others are absent
wrong=0
found=0
for i in $(seq 1 "$nkeys"); do
    got=$("$cli" get kv "$i")
    if [ "$got" = $((10 * i)) ]; then
        found=$((found + 1))
    elif [ "$got" != "(not found)" ]; then
        echo "key $i: got '$got', expected $((10 * i)) or (not found)"
        wrong=$((wrong + 1))
    fi
done
"$bindir/psql" -q -d postgres -c "DROP DATABASE $PGDATABASE WITH (FORCE)"

echo "pgbench load: ${ops:-0} operations (${sets:-0} SET, ${gets:-0} GET) in ${seconds} s, $errors errors; verify: $found keys hold their value, $wrong wrong"
[ "$errors" = 0 ] && [ "${ops:-0}" -gt 0 ] && [ "$wrong" = 0 ]
