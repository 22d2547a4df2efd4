#!/usr/bin/env bash
# pg_regress-style SQL tests: run test/sql/NAME.sql with psql, compare with
# test/expected/NAME.out. Needs PG* pointing at a cluster with fhe_kv installed
# (scripts/pgcluster.sh) and FHE_KV_SERVER_KEY naming a server key file the server can read.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p target/regress
failed=0
passed=0
# Keys are generated per machine: print their key_id as <key_id> so outputs compare.
key_id=$(tail -c +33 "$FHE_KV_SERVER_KEY" | sha256sum | cut -c1-32)
for sql in test/sql/*.sql; do
    name=$(basename "$sql" .sql)
    db="regress_$name"
    psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
    psql -X -a -q -d "$db" -v VERBOSITY=default -v "server_key_file=$FHE_KV_SERVER_KEY" \
        <"$sql" 2>&1 | sed "s/$key_id/<key_id>/g" >"target/regress/$name.out"
    if diff -u "test/expected/$name.out" "target/regress/$name.out" >"target/regress/$name.diff"; then
        echo "regress: $name ... ok"
        passed=$((passed + 1))
    else
        echo "regress: $name ... FAILED"
        cat "target/regress/$name.diff"
        failed=$((failed + 1))
    fi
done
echo "regress: $passed passed, $failed failed"
[ "$failed" = 0 ]
