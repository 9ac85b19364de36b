#!/usr/bin/env bash
# The embedded PostgreSQL 15 cluster the README's commands, the tests and the benchmarks use.
#
#   deploy/pg.sh start       initdb once, start, wait until it accepts connections, create the
#                            database `mqledger` and the roles `mqledger` (LOGIN, the daemon's)
#                            and `mqledger_app` (NOLOGIN group role the migrations grant to)
#   deploy/pg.sh stop        fast shutdown
#   deploy/pg.sh status      exit 0 when running
#   deploy/pg.sh url         the daemon's libpq URL (user mqledger)
#   deploy/pg.sh admin-url   the owner's libpq URL (user postgres, a superuser)
#   deploy/pg.sh standby     a hot standby of another cluster of this script: base backup once
#                            (pg_basebackup -R, streaming), then start it read-only. The primary
#                            is 127.0.0.1:$MQLEDGER_PG_PRIMARY_PORT (default 54329); set
#                            MQLEDGER_PG_VAR and MQLEDGER_PG_PORT to put the standby elsewhere.
#                            `stop`, `status`, `url` and `admin-url` then work on the standby.
#
# The cluster lives in ./var/pg (repo-relative), its unix socket in ./var/run, TCP only on
# 127.0.0.1:54329. MQLEDGER_PG_VAR and MQLEDGER_PG_PORT move it (the tests start private clusters
# this way, to stop and start them under load without disturbing the shared one). Authentication is `trust` for local and loopback connections: this is a
# development and test cluster, never a production one. fsync and synchronous_commit stay on
# because the benchmarks measure durable appends.
#
# initdb and postgres refuse to run as root, so as root the server runs as the `postgres` OS user
# (runuser); as any other user it runs as that user.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
pgbin="${MQLEDGER_PG_BIN:-/usr/lib/postgresql/15/bin}"
port="${MQLEDGER_PG_PORT:-54329}"
var="${MQLEDGER_PG_VAR:-$root/var}"
data="$var/pg"
run="$var/run"
log="$var/pg.log"

die() { echo "pg.sh: $*" >&2; exit 1; }

if [[ "$(id -u)" == 0 ]]; then
    server_user=postgres
    as_server() { runuser -u postgres -- "$@"; }
else
    server_user="$(id -un)"
    as_server() { "$@"; }
fi

# Minimal percent-encoding for the socket path inside a URL.
urlencode() {
    local s="$1" out="" c i
    for ((i = 0; i < ${#s}; i++)); do
        c="${s:i:1}"
        case "$c" in
            [A-Za-z0-9/._~-]) out+="$c" ;;
            *) out+="$(printf '%%%02X' "'$c")" ;;
        esac
    done
    printf '%s' "$out"
}

url_for() { # user
    printf 'postgresql:///mqledger?host=%s&port=%s&user=%s\n' "$(urlencode "$run")" "$port" "$1"
}

psql_admin() { # psql as the superuser over the socket, stopping at the first error
    as_server "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 -h "$run" -p "$port" -U postgres "$@"
}

# A clone may sit under a directory the server's user cannot traverse (mktemp -d gives 0700).
# Add only the search bit, only where needed, and say so.
ensure_traversable() {
    [[ "$server_user" == postgres && "$(id -u)" == 0 ]] || return 0
    local path="" part
    mkdir -p "$var"
    IFS='/' read -r -a parts <<<"$(cd "$var" && pwd -P | sed 's|^/||')"
    for part in "" "${parts[@]}"; do
        [[ -n "$part" ]] && path="$path/$part"
        local dir="${path:-/}"
        if ! runuser -u postgres -- test -x "$dir"; then
            chmod o+x "$dir"
            echo "pg.sh: added o+x to $dir so the postgres user can reach $data" >&2
        fi
    done
}

is_running() {
    [[ -f "$data/PG_VERSION" ]] && as_server "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

prepare_dirs() {
    [[ -x "$pgbin/initdb" ]] || die "PostgreSQL 15 binaries not found in $pgbin (apt-get install postgresql)"
    ensure_traversable
    mkdir -p "$var" "$run"
    if [[ "$(id -u)" == 0 ]]; then
        chown postgres: "$run"
        if [[ ! -d "$data" ]]; then install -d -o postgres -g postgres -m 0700 "$data"; fi
        touch "$log" && chown postgres: "$log"
    else
        mkdir -p "$data" && chmod 0700 "$data"
    fi
}

# Rewritten on every start so a moved clone still finds its socket directory (a standby's copy
# of its primary's file is replaced the same way).
write_conf() {
    as_server tee "$data/mqledger.conf" >/dev/null <<EOF
# Written by deploy/pg.sh on every start; edit the script, not this file.
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$run'
fsync = on
synchronous_commit = on
max_connections = 200
shared_buffers = 256MB
max_wal_size = 2GB
EOF
}

start_server() {
    if ! is_running; then
        echo "pg.sh: starting PostgreSQL on 127.0.0.1:$port (socket in $run, log $log)" >&2
        as_server "$pgbin/pg_ctl" -D "$data" -l "$log" -w -t 60 start >/dev/null \
            || { tail -n 30 "$log" >&2; die "PostgreSQL did not start"; }
    fi
    local i
    for ((i = 0; i < 60; i++)); do
        if as_server "$pgbin/pg_isready" -q -h "$run" -p "$port" -U postgres; then break; fi
        sleep 0.5
    done
    as_server "$pgbin/pg_isready" -q -h "$run" -p "$port" -U postgres \
        || { tail -n 30 "$log" >&2; die "PostgreSQL does not accept connections"; }
}

cmd_start() {
    prepare_dirs
    if [[ ! -f "$data/PG_VERSION" ]]; then
        echo "pg.sh: initdb $data" >&2
        # UTF8 with the C locale: jsonb needs UTF8, and byte order keeps sorting predictable.
        as_server "$pgbin/initdb" -D "$data" -U postgres -E UTF8 --no-locale \
            --auth-local=trust --auth-host=trust >"$var/initdb.log" 2>&1 \
            || { cat "$var/initdb.log" >&2; die "initdb failed"; }
        echo "include_if_exists = 'mqledger.conf'" >>"$data/postgresql.conf"
    fi
    [[ ! -f "$data/standby.signal" ]] || die "$data is a standby: start it with 'deploy/pg.sh standby'"
    write_conf
    start_server

    # The roles (cluster-wide) and the database.
    psql_admin -d postgres <"$root/deploy/roles.sql"
    if [[ "$(psql_admin -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'mqledger'")" != 1 ]]; then
        psql_admin -d postgres -c "CREATE DATABASE mqledger TEMPLATE template0 ENCODING 'UTF8'"
    fi
}

cmd_standby() {
    local primary_port="${MQLEDGER_PG_PRIMARY_PORT:-54329}"
    [[ "$primary_port" != "$port" ]] || die "the standby needs its own MQLEDGER_PG_PORT (the primary is on $primary_port)"
    prepare_dirs
    if [[ ! -f "$data/PG_VERSION" ]]; then
        echo "pg.sh: base backup of 127.0.0.1:$primary_port into $data" >&2
        # -R writes standby.signal and primary_conninfo; -X stream copies the WAL the backup needs.
        as_server "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$primary_port" -U postgres -D "$data" \
            -R -X stream --checkpoint=fast >"$var/basebackup.log" 2>&1 \
            || { cat "$var/basebackup.log" >&2; die "pg_basebackup failed"; }
    fi
    [[ -f "$data/standby.signal" ]] || die "$data is not a standby (it has no standby.signal)"
    write_conf
    start_server
}

cmd_stop() {
    if is_running; then
        as_server "$pgbin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
        echo "pg.sh: stopped" >&2
    fi
}

case "${1:-}" in
    start) cmd_start ;;
    standby) cmd_standby ;;
    stop) cmd_stop ;;
    status)
        if is_running; then echo "running: 127.0.0.1:$port, socket $run, data $data"; else echo "not running"; exit 3; fi ;;
    url) url_for mqledger ;;
    admin-url) url_for postgres ;;
    *) echo "usage: deploy/pg.sh start|standby|stop|status|url|admin-url" >&2; exit 2 ;;
esac
