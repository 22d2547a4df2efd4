#!/usr/bin/env bash
# The full fhe_kv test suite (`make test`, run by .ci/run):
#   1. format; lint (clippy) during the builds below
#   2. core + client unit tests (kernel cases with real parameters; generates the cached
#      test keys under target/fhe-kv-test-keys on first run)
#   3. in-backend tests: `cargo pgrx test` on a pgrx-managed cluster run as `postgres`
#   4. install the extension, start a throwaway cluster, run the SQL regression tests
#      (tests/pg_regress: sql vs expected, run by pg_regress), the end-to-end client/CLI tests and the reliability
#      tests (hostile input, privileges, concurrency, pgbench load, crash safety), the
#      bucketed- and leveled-table tests, query cancel/statement_timeout, backups and
#      upgrades, TLS and the password file
set -euo pipefail
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
log=target/test-logs
mkdir -p "$log"
source scripts/workdir.sh
work=$(fhe_kv_workdir)
# Test keys: generated once, cached; read by the tests and by Postgres backends.
export FHE_KV_TEST_KEY_DIR=$work/fhe-kv-test-keys
# Each stage's wall time goes to $log/durations.txt and into the summary: the suite must
# stay well inside CI's 90 minutes, and this shows where the time goes.
: > "$log/durations.txt"
stage_name="" stage_start=$SECONDS
stage() {
    if [ -n "$stage_name" ]; then
        printf '%6d s  %s\n' $((SECONDS - stage_start)) "$stage_name" >> "$log/durations.txt"
    fi
    stage_name=$* stage_start=$SECONDS
    printf '\n\033[1m== test: %s\033[0m\n' "$*"
}

stage "format"
cargo fmt --all --check

# Lint: clippy-driver compiles the workspace's own crates in the builds the suite runs
# anyway (unit tests and examples, the extension with and without pg_test, the Python
# wheel), so the clippy lints cost no separate type-check of TFHE-rs and every other
# dependency (~10 min of CI). `lint_gate` turns any rustc or clippy warning in our crates
# into a failure, as `cargo clippy --workspace --all-targets -- -D warnings` would
# (`make lint` runs that one for development). Dependencies are compiled by plain rustc.
export RUSTC_WORKSPACE_WRAPPER
RUSTC_WORKSPACE_WRAPPER=$(command -v clippy-driver)
lint_gate() {
    if grep -E '^warning: `[^`]+` \(.*\) generated [0-9]+ warnings?' "$1"; then
        echo "test: lint: the warnings above fail the suite (clippy -D warnings); see $1" >&2
        exit 1
    fi
}

stage "lint and build: core and client, with their tests and examples"
cargo test -p fhe-kv-core -p fhe-kv-client --no-run 2>&1 | tee "$log/unit-build.log"
lint_gate "$log/unit-build.log"

stage "core and client unit tests"
cargo test -p fhe-kv-core -p fhe-kv-client 2>&1 | tee "$log/unit.log"

stage "in-backend tests (cargo pgrx test)"
# The backend runs as `postgres`: let it read the cached test keys and own its data dir.
chmod -R a+rX "$FHE_KV_TEST_KEY_DIR"
pgdata=$work/pgrx-test-pgdata
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$pgdata" && chown postgres: "$pgdata"
    cargo pgrx test pg15 --runas postgres --pgdata "$pgdata" 2>&1 | tee "$log/pgrx.log"
else
    cargo pgrx test pg15 2>&1 | tee "$log/pgrx.log"
fi
lint_gate "$log/pgrx.log"
# fhe-kv-core's Cargo.toml lines up the features pgrx switches on, so this stage reuses the
# unit tests' TFHE-rs. A dependency change can undo that silently and cost ~13 min of CI.
if grep -q 'Compiling tfhe v' "$log/pgrx.log"; then
    echo "test: warning: cargo pgrx test compiled TFHE-rs again; its feature set no longer" \
        "matches the unit tests' (see the feature-unification lines in crates/fhe-kv-core/Cargo.toml)" >&2
fi

stage "install the extension"
if [ "$(id -u)" = 0 ]; then
    cargo pgrx install --pg-config "$PG_CONFIG" 2>&1 | tee "$log/install.log"
else
    cargo pgrx install --sudo --pg-config "$PG_CONFIG" 2>&1 | tee "$log/install.log"
fi
lint_gate "$log/install.log"

# The frozen install scripts of earlier releases (tests/upgrade): tests/backup.rs makes
# databases with them and upgrades them, as a user of 0.1.0 or 0.2.0 would.
sharedir=$("$PG_CONFIG" --sharedir)
if [ "$(id -u)" = 0 ]; then
    cp tests/upgrade/fhe_kv--*.sql "$sharedir/extension/"
else
    sudo cp tests/upgrade/fhe_kv--*.sql "$sharedir/extension/"
fi

stage "the Python package (import fhe_kv)"
bash scripts/python.sh 2>&1 | tee "$log/python-build.log"
lint_gate "$log/python-build.log"
export FHE_KV_PYTHON=$PWD/target/python-venv/bin/python

stage "throwaway cluster"
cluster=$work/test-cluster
trap 'bash scripts/pgcluster.sh stop "$cluster"' EXIT
bash scripts/pgcluster.sh start "$cluster"
eval "$(bash scripts/pgcluster.sh env "$cluster")"
export FHE_KV_SERVER_KEY=$FHE_KV_TEST_KEY_DIR/server.key
stage "cluster: SQL regression (pg_regress)"
bash scripts/regress.sh 2>&1 | tee "$log/regress.log"
export FHE_KV_TEST_PGHOST=$PGHOST FHE_KV_TEST_PGPORT=$PGPORT
stage "cluster: end-to-end (e2e)"
cargo test -p fhe-kv-client --test e2e -- --include-ignored --test-threads 1 2>&1 | tee "$log/e2e.log"
stage "cluster: text keys and byte values"
# Text keys, byte values, import/export, the psycopg example.
cargo test -p fhe-kv-client --test text_bytes -- --include-ignored --test-threads 1 2>&1 \
    | tee "$log/text_bytes.log"
stage "cluster: reliability"
# hostile-input corpus, privileges, key substitution, concurrency, pgbench load (short
# mode), crash safety (on clusters of their own, ports PGPORT+11/+12)
cargo test -p fhe-kv-client --test reliability -- --include-ignored --test-threads 1 --nocapture \
    2>&1 | tee "$log/reliability.log"

stage "cluster: bucketed tables"
# Bucketed tables: a 10,000-slot table through the CLI against an oracle, hostile bucketed
# envelopes.
cargo test -p fhe-kv-client --test bucketed -- --include-ignored --test-threads 1 --nocapture \
    2>&1 | tee "$log/bucketed.log"
stage "cluster: leveled tables"
# Leveled tables: the CLI against an oracle (import, two-round SET, GET, two-round GET,
# DELETE, full, export, grow), text keys and attach, the hostile corpus over every leveled
# envelope and stale round 2s (SQLSTATE 40001).
cargo test -p fhe-kv-client --test leveled -- --include-ignored --test-threads 1 --nocapture \
    2>&1 | tee "$log/leveled.log"
stage "cluster: cancel and statement_timeout"
# Query cancel and statement_timeout at random moments of every operation: SQLSTATE 57014
# within a fraction of a second, nothing changed, the backend still answers.
cargo test -p fhe-kv-client --test cancel -- --include-ignored --test-threads 1 --nocapture \
    2>&1 | tee "$log/cancel.log"

stage "cluster: backup and upgrade"
# pg_dump/psql and pg_dump -Fc/pg_restore into a fresh database and a fresh cluster (port
# PGPORT+13), pg_dump -t and attach, a 0.1.0 database recovered and upgraded.
cargo test -p fhe-kv-client --test backup -- --include-ignored --test-threads 1 2>&1 \
    | tee "$log/backup.log"

stage "cluster: Python package"
# The Python package against the cluster: typed tables, own SQL through psycopg, errors,
# key files, session keys.
"$FHE_KV_PYTHON" -m pytest -q -p no:cacheprovider crates/fhe-kv-python/tests 2>&1 | tee "$log/python.log"

stage "cluster: session keys"
# Server keys loaded for one session only: used, never stored (WAL, dump), refused
# elsewhere with a hint, gone at disconnect, the CLI's --session-key.
cargo test -p fhe-kv-client --test session_keys -- --include-ignored --test-threads 1 --nocapture \
    2>&1 | tee "$log/session_keys.log"

stage "cluster: TLS and password file"
# TLS (sslmode, sslrootcert, client certificates) and the password file, on a cluster of
# its own with ssl = on (port PGPORT+14).
cargo test -p fhe-kv-client --test tls -- --include-ignored --test-threads 1 --nocapture 2>&1 \
    | tee "$log/tls.log"

stage "summary"
passed=$(cat "$log"/{unit,pgrx,e2e,text_bytes,reliability,bucketed,leveled,cancel,backup,session_keys,tls}.log | awk '/^test result: ok\./ { n += $4 } END { print n + 0 }')
python=$(sed -n 's/^\([0-9]*\) passed.*/\1/p' "$log/python.log")
regress=$(sed -n 's/^ *All \([0-9]*\) tests passed.*/\1/p' "$log/regress.log")
echo "fhe_kv: $((passed + regress + python)) passed, 0 failed"
echo "time per stage (also in $log/durations.txt):"
cat "$log/durations.txt"
echo "total: $((SECONDS / 60)) min $((SECONDS % 60)) s"
