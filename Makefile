# fhe_kv — the two commands that matter:
#   make demo   install what is missing, build, run the demo on a throwaway cluster
#   make test   the full test suite (what .ci/run runs)
SHELL := /bin/bash
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
export PG_CONFIG

.PHONY: all setup install cli demo test bench clean-clusters

all: install cli

setup:
	bash scripts/setup.sh

# Installs the extension into the Postgres of $(PG_CONFIG) (needs write access there).
install: setup
	cargo pgrx install --pg-config $(PG_CONFIG)

cli:
	cargo build -p fhe-kv-client

demo: install cli
	bash scripts/demo.sh

test: setup
	bash scripts/test.sh

# Kernel benchmark against the naive baseline (table, JSON and SVG under target/bench).
# The full default sweep takes ~1.5 h on 2 cores; e.g. BENCH_ARGS="--sizes 8 --types 16/16".
bench:
	cargo run -p fhe-kv-core --features test-keys --example bench -- $(BENCH_ARGS)

# Stop clusters left behind by an interrupted demo or test run.
clean-clusters:
	source scripts/workdir.sh && w=$$(fhe_kv_workdir) && \
	  for c in demo-cluster test-cluster; do bash scripts/pgcluster.sh stop $$w/$$c; done
