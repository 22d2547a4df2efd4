# Sourced by the demo and test drivers: choose where throwaway clusters and the cached
# test keys live. The Postgres server runs as the `postgres` OS user when we are root,
# so those files must be reachable by it; if this checkout is not (e.g. under /root),
# use a directory under /tmp named after the checkout instead of target/.
fhe_kv_workdir() {
    local repo=$PWD
    if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -r "$repo/Cargo.toml" 2>/dev/null; then
        local dir=/tmp/fhe-kv-$(printf '%s' "$repo" | sha256sum | cut -c1-12)
        mkdir -p "$dir" && chmod 755 "$dir"
        echo "$dir"
    else
        mkdir -p "$repo/target"
        echo "$repo/target"
    fi
}
