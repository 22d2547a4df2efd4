#!/usr/bin/env bash
# The fhe_kv demo: a throwaway Postgres cluster, keys, a small flat table and a
# 10,000-key bucketed one, and private SET/GET/DELETE through the `fhe-kv` CLI, with the
# time of each operation.
# Run via `make demo` (which installs the extension and builds the CLI first).
set -euo pipefail
cd "$(dirname "$0")/.."

demo=target/demo
fhe_kv=target/debug/fhe-kv
[ -x "$fhe_kv" ] || { echo "demo: build the CLI first (make cli)" >&2; exit 1; }

source scripts/workdir.sh
cluster=$(fhe_kv_workdir)/demo-cluster
cleanup() { bash scripts/pgcluster.sh stop "$cluster"; }
trap cleanup EXIT
bash scripts/pgcluster.sh start "$cluster"
eval "$(bash scripts/pgcluster.sh env "$cluster")"
export PGDATABASE=postgres
psql -X -q -c "CREATE EXTENSION fhe_kv"

export FHE_KV_CLIENT_KEY=$demo/keys/client.key
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() {
    printf '$ fhe-kv %s\n' "$*"
    "$fhe_kv" --timing "$@"
}

say "1. Generate keys. The client key never leaves this machine (written 0600)."
run keygen --out-dir "$demo/keys" --force

say "2. Upload the server key (public evaluation keys, ~143 MB)."
run register --server-key "$demo/keys/server.key"

say "3. Create an encrypted table: 4 slots, u64 patient ids -> u64 glucose values."
run create-table blood_tests --capacity 4 --key-bits 64 --value-bits 64

say "4. SET three entries, then SET patient 4711 again (an update: still one entry)."
run put blood_tests 4711 142
run put blood_tests 4712 97
run put blood_tests 4713 188
run put blood_tests 4711 150

say "5. GET a present and an absent key, then both again with the two-round GET (locate, then fetch: same answers, about half the server work)."
run get blood_tests 4711
run get blood_tests 9999
run get --two-round blood_tests 4711
run get --two-round blood_tests 9999

say "6. DELETE patient 4712, then GET it again."
run delete blood_tests 4712
run get blood_tests 4712

say "7. The same GET from psql: encrypt with the CLI, call SQL, decrypt with the CLI."
echo "\$ psql -At -c \"SELECT fhe_kv.fhe_get('blood_tests', '\$(fhe-kv encrypt --key 4713)')\" | fhe-kv decrypt"
psql -X -At -c "SELECT fhe_kv.fhe_get('blood_tests', '$("$fhe_kv" encrypt --key 4713)')" | "$fhe_kv" decrypt

say "8. What a thief with a dump of the database sees:"
psql -X -c "SELECT slot, length(row) AS bytes, fhe_kv.describe(row) AS envelope, \
                   '...' || encode(substring(row FROM 1001 FOR 16), 'hex') || '...' AS ciphertext_sample
              FROM blood_tests ORDER BY slot"
say "9. A bucketed table for 10,000 patients: each operation bootstraps only its key's two candidate buckets."
run create-table lab_results --capacity 10000
seq 1 5000 | awk '{ print $1 "," ($1 * 37) % 1000 }' > "$demo/lab_results.csv"
run import lab_results "$demo/lab_results.csv"

say "10. GET, SET, DELETE as the key owner: read the two candidate buckets, decrypt here, write back encrypted changes (no bootstrap on the server)."
run get lab_results 4711
run put lab_results 4711 123
run put lab_results 9999 1
run get lab_results 4711 9999 10001
run delete lab_results 9999
run get lab_results 9999

say "11. The same GET computed by the server on its encrypted candidates (fhe_get: ~1,000 bootstraps, whatever the table size)."
run get --server-side lab_results 4711

say "12. What the server stores: one row per bucket, and what it knows of the table."
psql -X -c "SELECT table_name, layout, capacity AS slots, bucket_slots, rows AS buckets, load_limit
              FROM fhe_kv.tables WHERE layout = 'bucketed'"
say "Done. The cluster is removed on exit."
