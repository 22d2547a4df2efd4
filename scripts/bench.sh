#!/usr/bin/env bash
# `make bench`: the table-size benchmark on a throwaway cluster — bucketed u64/u64 tables
# of 1,000 / 10,000 / 100,000 slots in both slot formats (bucket-v1 and leveled slots) and
# a flat and a leveled one beside them (bootstraps, external products, seconds, WAL bytes,
# bytes per slot, create + load time), written to target/bench/tables.{md,json,svg}.
# About 20 minutes on 2 cores.
#   BENCH_ARGS="--sizes 1000,10000 --flat-slots 16 --leveled-slots 32" make bench
# The kernel benchmark of the flat layout (sizes × widths, naive baseline) is
# `make bench-kernels`. `make bench-cancel` runs examples/bench_cancel the same way
# (BENCH_EXAMPLE=bench_cancel): the cancel-latency distribution.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/workdir.sh
work=$(fhe_kv_workdir)
export FHE_KV_TEST_KEY_DIR=$work/fhe-kv-test-keys
cluster=$work/bench-cluster
export FHE_KV_TEST_PORT=${FHE_KV_BENCH_PORT:-54331}
# Generate (or reuse) the test keys before the cluster needs them.
example=${BENCH_EXAMPLE:-bench_tables}
cargo build -p fhe-kv-client --example "$example"
trap 'bash scripts/pgcluster.sh stop "$cluster"' EXIT
bash scripts/pgcluster.sh start "$cluster"
eval "$(bash scripts/pgcluster.sh env "$cluster")"
psql -X -q -d postgres -c "CREATE EXTENSION fhe_kv"
# shellcheck disable=SC2086
cargo run -p fhe-kv-client --example "$example" -- ${BENCH_ARGS:-}
