#!/usr/bin/env bash
# A throwaway Postgres 15 cluster for the demo and the tests.
#
#   scripts/pgcluster.sh start DIR   initdb + start; no TCP, unix socket in DIR/sock
#   scripts/pgcluster.sh stop DIR    stop and remove DIR
#   scripts/pgcluster.sh env DIR     print the PG* variables to reach it
#
# initdb refuses to run as root, so the cluster runs as the unprivileged `postgres` OS
# user when we are root (as in CI), else as the current user.
set -euo pipefail

cmd=${1:?usage: pgcluster.sh start|stop|env DIR}
dir=${2:?usage: pgcluster.sh start|stop|env DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
port=${FHE_KV_TEST_PORT:-54329}
bindir=$("${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" --bindir)

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" stop -m immediate >/dev/null 2>&1 || true
    fi
    rm -rf "$dir/data" "$dir/sock"
    mkdir -p "$dir/sock"
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$dir"; fi
    as_owner "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log"; exit 1; }
    as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w \
        -o "-c listen_addresses='' -k $dir/sock -p $port -c fsync=off" start >/dev/null \
        || { cat "$dir/postgres.log"; exit 1; }
    echo "pgcluster: running in $dir (socket $dir/sock, port $port)"
    ;;
stop)
    if [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$bindir/pg_ctl" -D "$dir/data" stop -m fast >/dev/null || true
    fi
    rm -rf "$dir"
    ;;
env)
    echo "export PGHOST=$dir/sock PGPORT=$port PGUSER=postgres"
    ;;
*)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
