#!/usr/bin/env bash
# The SQL regression tests: tests/pg_regress/sql/NAME.sql against
# tests/pg_regress/expected/NAME.out, run by Postgres' pg_regress the way
# `cargo pgrx regress` runs them: one database (fhe_kv_regress) shared by all tests,
# setup.sql first (it creates the extension and registers the test server key), then the
# others in name order.
#
# `cargo pgrx regress` itself (pgrx 0.18) cannot run as root: it starts its own
# Postgres instance with initdb and pg_ctl as the calling user, which both refuse root,
# and its --runas applies only to createdb/dropdb. CI runs as root, so this script
# drives the same pg_regress binary against the throwaway cluster (scripts/pgcluster.sh)
# instead. As an ordinary user with a pgrx-managed Postgres, `cargo pgrx regress pg15`
# should run the same files (same layout, database name and setup.sql convention).
#
# Needs PG* pointing at the cluster, fhe_kv installed there, and FHE_KV_SERVER_KEY naming
# a server key file the server can read (setup.sql and session_keys.sql load it with
# pg_read_binary_file).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${FHE_KV_SERVER_KEY:?set FHE_KV_SERVER_KEY to a server key file (scripts/test.sh does)}"
export FHE_KV_SERVER_KEY
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
pg_regress=$(dirname "$("$PG_CONFIG" --pgxs)")/../test/regress/pg_regress
db=fhe_kv_regress
out=target/pg_regress
rm -rf "$out" && mkdir -p "$out"

psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
tests=(setup)
for sql in tests/pg_regress/sql/*.sql; do
    name=$(basename "$sql" .sql)
    [ "$name" = setup ] || tests+=("$name")
done
set +e
"$pg_regress" --host="$PGHOST" --port="$PGPORT" --user="${PGUSER:-postgres}" \
    --use-existing --dbname="$db" \
    --inputdir=tests/pg_regress --outputdir="$out" "${tests[@]}"
status=$?
set -e
if [ $status != 0 ] && [ -f "$out/regression.diffs" ]; then
    cat "$out/regression.diffs"
fi
exit $status
