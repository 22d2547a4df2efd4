# fhe_kv — the two commands that matter:
#   make demo   install what is missing, build, run the demo on a throwaway cluster
#   make test   the full test suite (what .ci/run runs)
SHELL := /bin/bash
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
export PG_CONFIG

.PHONY: all setup install cli python demo test bench bench-cancel bench-kernels bench-leveled bench-leveled-buckets lint clean-clusters

all: install cli python

setup:
	bash scripts/setup.sh

# Installs the extension into the Postgres of $(PG_CONFIG) (needs write access there).
install: setup
	cargo pgrx install --pg-config $(PG_CONFIG)

cli:
	cargo build -p fhe-kv-client

# The Python package (import fhe_kv): a wheel in target/wheels, installed into
# target/python-venv (PYTHON_PROFILE=release for a release build).
python: setup
	bash scripts/python.sh

demo: install cli
	bash scripts/demo.sh

test: setup
	bash scripts/test.sh

# Format check and clippy on their own, for development (make test lints during its builds).
lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# Table-size benchmark on a throwaway cluster: bucketed tables of 1,000 / 10,000 /
# 100,000 slots in both slot formats (bucket-v1, bucketed-leveled), a flat and a leveled one
# (target/bench/tables.{md,json,svg}; ~20 min on 2 cores).
bench: install
	bash scripts/bench.sh

# How long after a query cancel / statement_timeout each operation stops, at random
# moments, u64/u64 and u8/u8 rows, both layouts (target/bench/cancel.{md,json}; ~6 min).
bench-cancel: install
	BENCH_EXAMPLE=bench_cancel bash scripts/bench.sh

# Kernel benchmark of the flat layout against the naive baseline (target/bench). The full
# default sweep takes ~1.5 h on 2 cores; e.g. KERNEL_BENCH_ARGS="--sizes 8 --types 16/16".
bench-kernels:
	cargo run -p fhe-kv-core --features test-keys --example bench -- $(KERNEL_BENCH_ARGS)

# The leveled kernels per slot (key comparison, whole GET, two-round GET, DELETE) next to
# the block kernels and the naive integer API (u64/u64, 8 slots, ~3 min; the first run
# builds TFHE-rs once more, ~11 min); e.g. LEVELED_BENCH_ARGS="16 32"
# (key and value bits, slots). See docs/leveled.md.
bench-leveled:
	cargo run -p fhe-kv-core --features test-keys --example leveled_equality -- $(LEVELED_BENCH_ARGS)

# The server-side GET and DELETE of a bucketed table on leveled slots inside buckets,
# next to bucket-v1 blocks and the naive integer GET over the same candidates (u64/u64,
# 6 slots per bucket, ~2 min; its first run builds TFHE-rs once more, as bench-leveled);
# e.g. LEVELED_BUCKETS_ARGS="64" (buckets per half).
bench-leveled-buckets:
	cargo run -p fhe-kv-core --features test-keys --example leveled_buckets -- $(LEVELED_BUCKETS_ARGS)

# Stop clusters left behind by an interrupted demo or test run.
clean-clusters:
	source scripts/workdir.sh && w=$$(fhe_kv_workdir) && \
	  for c in demo-cluster test-cluster bench-cluster; do bash scripts/pgcluster.sh stop $$w/$$c; done
