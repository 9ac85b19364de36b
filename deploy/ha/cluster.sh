#!/usr/bin/env bash
# A three-node PostgreSQL 15 cluster under Patroni with one etcd, all on loopback, everything
# (data, logs, pid files, sockets) under one directory DIR. For the high-availability test
# (tests/ha/run.sh) and for trying failover by hand. `trust` authentication on 127.0.0.1: a test
# cluster, never a production one.
#
#   cluster.sh start DIR              etcd + node1 (initialises), then node2 and node3 (clone);
#                                     returns when a primary, a synchronous standby and a
#                                     streaming replica are up
#   cluster.sh stop DIR               stops everything started under DIR (pid files; SIGTERM,
#                                     then SIGKILL); safe to call twice or after a failed start
#   cluster.sh status DIR             patronictl list
#   cluster.sh primary DIR            the primary's PostgreSQL port (exit 1 if none)
#   cluster.sh primary-name DIR       the primary's node name (node1..node3)
#   cluster.sh wait-healthy DIR [S]   wait up to S seconds (default 120) for leader + sync
#                                     standby + replica, all running
#   cluster.sh kill-node DIR NAME     kill -9 the node's patroni, postmaster and backends at once
#                                     (a machine crash, as far as one host can simulate it)
#   cluster.sh start-node DIR NAME    start the node's patroni again (it rejoins as a replica,
#                                     pg_rewind first if needed)
#   cluster.sh url DIR [DB]           the daemon's multi-host libpq URL (user mqledger)
#   cluster.sh admin-url DIR [DB]     superuser URL of the current primary
#   cluster.sh node-url DIR NAME [DB] superuser URL of one node (primary or replica)
#   cluster.sh node-port DIR NAME     that node's PostgreSQL port
#   cluster.sh setup-db DIR MQLEDGER [DB]
#                                     on the primary: roles mqledger_app/mqledger, database DB
#                                     (default mqledger), then `MQLEDGER migrate`
#
# Ports (loopback only), from HA_PORT_BASE (default 55400), fixed at `start` in DIR/cluster.env:
#   base+0 etcd client, base+1 etcd peer, base+11..13 PostgreSQL node1..3, base+21..23 Patroni
#   REST API node1..3. base+30.. are left to the test's daemons.
# As root, etcd and patroni (and so PostgreSQL) run as the `postgres` OS user; DIR is chowned to it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
pgbin="${MQLEDGER_PG_BIN:-/usr/lib/postgresql/15/bin}"
nodes=(node1 node2 node3)

die() { echo "cluster.sh: $*" >&2; exit 1; }
say() { echo "cluster.sh: $*" >&2; }

if [[ "$(id -u)" == 0 ]]; then
    server_user=postgres
    # setpriv execs (no intermediate process), so $! is the server's own pid.
    as_server() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }
    as_server_exec=(setpriv --reuid=postgres --regid=postgres --init-groups --)
else
    server_user="$(id -un)"
    as_server() { "$@"; }
    as_server_exec=()
fi

dir_arg() {
    [[ -n "${1:-}" ]] || die "missing DIR"
    mkdir -p "$1"
    dir="$(cd "$1" && pwd -P)"
}

load_env() {
    [[ -f "$dir/cluster.env" ]] || die "$dir/cluster.env missing: not started with 'cluster.sh start $dir'"
    # shellcheck disable=SC1091
    source "$dir/cluster.env"
}

node_index() { case "$1" in node1) echo 1 ;; node2) echo 2 ;; node3) echo 3 ;; *) die "unknown node $1" ;; esac; }
pg_port() { echo $((base + 10 + $(node_index "$1"))); }
api_port() { echo $((base + 20 + $(node_index "$1"))); }

# The postgres user must reach DIR (mktemp -d under a 0700 home, say): add o+x where needed.
ensure_traversable() {
    [[ "$(id -u)" == 0 ]] || return 0
    local path="" part
    IFS='/' read -r -a parts <<<"${dir#/}"
    for part in "${parts[@]}"; do
        path="$path/$part"
        if ! runuser -u postgres -- test -x "$path"; then
            chmod o+x "$path"
            say "added o+x to $path so the postgres user can reach $dir"
        fi
    done
}

alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }
pid_of() { [[ -f "$1" ]] && cat "$1" 2>/dev/null || true; }

# Start "$@" as the server user in the background, stdout+stderr to $log, its pid in $pidfile.
# setsid gives it its own session (a ^C or a signal to the caller's process group does not reach
# it; only `stop` and `kill-node`, by pid, end it). setsid forks when the caller leads its process
# group, so the pid is written by the process itself just before it execs the server.
spawn() { # pidfile log cmd...
    local pidfile="$1" log="$2" i; shift 2
    rm -f "$pidfile"
    HOME="$dir" setsid "${as_server_exec[@]}" bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' \
        "$pidfile" "$@" >>"$log" 2>&1 </dev/null &
    for ((i = 0; i < 100; i++)); do [[ -s "$pidfile" ]] && return 0; sleep 0.05; done
    die "no pid file $pidfile"
}

http_status() { # url → HTTP status or 000
    curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true
}

start_etcd() {
    local pidfile="$dir/etcd.pid"
    if alive "$(pid_of "$pidfile")"; then return 0; fi
    mkdir -p "$dir/etcd"
    [[ "$(id -u)" != 0 ]] || chown -R postgres: "$dir/etcd"
    chmod 0700 "$dir/etcd"
    say "starting etcd on 127.0.0.1:$base (log $dir/etcd.log)"
    spawn "$pidfile" "$dir/etcd.log" /usr/bin/etcd --name ha-etcd --data-dir "$dir/etcd" \
        --listen-client-urls "http://127.0.0.1:$base" --advertise-client-urls "http://127.0.0.1:$base" \
        --listen-peer-urls "http://127.0.0.1:$((base + 1))" \
        --initial-advertise-peer-urls "http://127.0.0.1:$((base + 1))" \
        --initial-cluster "ha-etcd=http://127.0.0.1:$((base + 1))" --initial-cluster-state new \
        --initial-cluster-token "mqledger-ha-$base"
    local i
    for ((i = 0; i < 100; i++)); do
        [[ "$(http_status "http://127.0.0.1:$base/health")" == 200 ]] && return 0
        alive "$(pid_of "$pidfile")" || { tail -n 20 "$dir/etcd.log" >&2; die "etcd exited"; }
        sleep 0.2
    done
    tail -n 20 "$dir/etcd.log" >&2
    die "etcd did not become healthy"
}

write_node_config() { # name
    local name="$1" nd="$dir/$1"
    mkdir -p "$nd/run"
    sed -e "s|@NAME@|$name|g" -e "s|@DIR@|$dir|g" -e "s|@PGBIN@|$pgbin|g" \
        -e "s|@PG_PORT@|$(pg_port "$name")|g" -e "s|@API_PORT@|$(api_port "$name")|g" \
        -e "s|@ETCD_PORT@|$base|g" "$here/patroni.yml.in" >"$nd/patroni.yml"
    if [[ "$(id -u)" == 0 ]]; then chown -R postgres: "$nd"; fi
    chmod 0700 "$nd"
}

start_node() { # name
    local name="$1" nd="$dir/$1"
    if alive "$(pid_of "$nd/patroni.pid")"; then return 0; fi
    write_node_config "$name"
    echo "---- start $(date -u +%FT%TZ)" >>"$nd/patroni.log"
    [[ "$(id -u)" != 0 ]] || chown postgres: "$nd/patroni.log"
    spawn "$nd/patroni.pid" "$nd/patroni.log" /usr/bin/patroni "$nd/patroni.yml"
    say "started patroni $name (PostgreSQL 127.0.0.1:$(pg_port "$name"), REST 127.0.0.1:$(api_port "$name"), log $nd/patroni.log)"
}

primary_name() {
    local n
    for n in "${nodes[@]}"; do
        if [[ "$(http_status "http://127.0.0.1:$(api_port "$n")/primary")" == 200 ]]; then echo "$n"; return 0; fi
    done
    return 1
}

# 0 when: one leader, one sync standby, three members running (replicas streaming from it).
healthy() {
    local n out
    for n in "${nodes[@]}"; do
        out="$(curl -s -m 2 "http://127.0.0.1:$(api_port "$n")/cluster" 2>/dev/null)" || continue
        [[ -n "$out" ]] || continue
        /usr/bin/python3 -c '
import json, sys
c = json.loads(sys.argv[1])
m = c.get("members", [])
roles = sorted(x.get("role") for x in m)
ok = (len(m) == 3 and all(x.get("state") in ("running", "streaming") for x in m)
      and roles.count("leader") == 1 and roles.count("sync_standby") == 1
      and all(x.get("lag", 0) in (0, "0") or isinstance(x.get("lag"), int) and x["lag"] < 1048576
              for x in m if x.get("role") != "leader"))
sys.exit(0 if ok else 1)' "$out" && return 0
        return 1
    done
    return 1
}

wait_healthy() { # seconds
    local deadline=$((SECONDS + ${1:-120}))
    while ((SECONDS < deadline)); do
        if healthy; then return 0; fi
        sleep 0.5
    done
    return 1
}

postmaster_pid() { # name
    local f="$dir/$1/data/postmaster.pid"
    [[ -f "$f" ]] && head -n 1 "$f" 2>/dev/null || true
}

children_of() { # pid → its direct children
    ps -o pid= --ppid "$1" 2>/dev/null | tr -d ' ' || true
}

# Processes of this DIR found by their command line (the DIR path is unique to this cluster):
# catches a postmaster whose patroni was killed, or a pid file lost mid-start.
pids_under_dir() {
    local p cmd
    for p in /proc/[0-9]*; do
        cmd="$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")" || continue
        case "$cmd" in
            *"$dir/node"[123]"/patroni.yml"* | *"-D $dir/node"[123]"/data"* | *"--data-dir $dir/etcd"* | \
            *"$dir/node"[123]/data*) echo "${p#/proc/}" ;;
        esac
    done
    return 0
}

kill_node() { # name: SIGKILL patroni, the postmaster and its children in one go
    local name="$1" pp pm kids
    pp="$(pid_of "$dir/$name/patroni.pid")"
    pm="$(postmaster_pid "$name")"
    kids=""
    if alive "$pm"; then kids="$(children_of "$pm" | tr '\n' ' ')"; fi
    # shellcheck disable=SC2086
    kill -9 ${pp:+$pp} ${pm:+$pm} $kids 2>/dev/null || true
    echo "patroni=$pp postmaster=$pm children=$kids"
}

stop_node() { # name
    local name="$1" pp pm i
    pp="$(pid_of "$dir/$name/patroni.pid")"
    if alive "$pp"; then
        kill -TERM "$pp" 2>/dev/null || true   # patroni stops its PostgreSQL (fast) and exits
    fi
}

cmd_stop() {
    local n i pp pm left
    [[ -d "$dir" ]] || return 0
    for n in "${nodes[@]}"; do stop_node "$n"; done
    for ((i = 0; i < 60; i++)); do
        left=0
        for n in "${nodes[@]}"; do
            alive "$(pid_of "$dir/$n/patroni.pid")" && left=1
            alive "$(postmaster_pid "$n")" && left=1
        done
        ((left == 0)) && break
        sleep 0.25
    done
    for n in "${nodes[@]}"; do
        pp="$(pid_of "$dir/$n/patroni.pid")"; pm="$(postmaster_pid "$n")"
        if alive "$pp" || alive "$pm"; then
            say "$n did not stop in 15 s: SIGKILL"
            kill_node "$n" >/dev/null
        fi
    done
    pp="$(pid_of "$dir/etcd.pid")"
    if alive "$pp"; then
        kill -TERM "$pp" 2>/dev/null || true
        for ((i = 0; i < 40; i++)); do alive "$pp" || break; sleep 0.25; done
        alive "$pp" && kill -9 "$pp" 2>/dev/null || true
    fi
    # Anything of this DIR still running (a postmaster orphaned by a kill -9 of its patroni...).
    # Several rounds: a patroni killed while starting PostgreSQL leaves a postmaster that appears
    # a moment later.
    for ((i = 0; i < 5; i++)); do
        sleep 0.3
        left="$(pids_under_dir | tr '\n' ' ')"
        [[ -n "${left// /}" ]] || break
        say "killing leftovers under $dir: $left"
        # shellcheck disable=SC2086
        kill -9 $left 2>/dev/null || true
    done
    rm -f "$dir/etcd.pid" "$dir"/node*/patroni.pid
    say "stopped ($dir)"
}

cmd_start() {
    command -v patroni >/dev/null || die "patroni not installed (apt-get install patroni)"
    [[ -x /usr/bin/etcd ]] || die "etcd not installed (apt-get install etcd-server)"
    [[ -x "$pgbin/postgres" ]] || die "PostgreSQL 15 not found in $pgbin"
    base="${HA_PORT_BASE:-55400}"
    if [[ -f "$dir/cluster.env" ]]; then
        # shellcheck disable=SC1091
        source "$dir/cluster.env"
    else
        echo "base=$base" >"$dir/cluster.env"
    fi
    ensure_traversable
    [[ "$(id -u)" != 0 ]] || chown postgres: "$dir"
    chmod 0755 "$dir"
    start_etcd
    start_node node1
    local deadline=$((SECONDS + 90))
    until primary_name >/dev/null; do
        ((SECONDS < deadline)) || { tail -n 40 "$dir/node1/patroni.log" >&2; die "node1 did not become primary"; }
        alive "$(pid_of "$dir/node1/patroni.pid")" || { tail -n 40 "$dir/node1/patroni.log" >&2; die "patroni node1 exited"; }
        sleep 0.5
    done
    say "node1 is primary; cloning node2 and node3"
    start_node node2
    start_node node3
    if ! wait_healthy 150; then
        cmd_status >&2 || true
        for n in node2 node3; do tail -n 20 "$dir/$n/patroni.log" >&2; done
        die "the cluster did not become healthy"
    fi
    say "cluster healthy: primary $(primary_name) on 127.0.0.1:$(pg_port "$(primary_name)")"
}

cmd_status() {
    patronictl -c "$dir/node1/patroni.yml" list 2>/dev/null || {
        local n; for n in "${nodes[@]}"; do
            echo "$n: $(curl -s -m 2 "http://127.0.0.1:$(api_port "$n")/patroni" || echo down)"; done
    }
}

app_url() { # db
    printf 'postgresql://mqledger@127.0.0.1:%s,127.0.0.1:%s,127.0.0.1:%s/%s?target_session_attrs=read-write&connect_timeout=2\n' \
        "$(pg_port node1)" "$(pg_port node2)" "$(pg_port node3)" "$1"
}

node_url() { # name db
    printf 'postgresql://postgres@127.0.0.1:%s/%s?connect_timeout=2\n' "$(pg_port "$1")" "$2"
}

cmd_setup_db() { # mqledger-binary db
    local bin="$1" db="$2" p url
    p="$(primary_name)" || die "no primary"
    psql_p() { "$pgbin/psql" -X -q -v ON_ERROR_STOP=1 "$(node_url "$p" postgres)" "$@"; }
    psql_p <"$here/../roles.sql"
    if [[ "$(psql_p -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]]; then
        psql_p -c "CREATE DATABASE $db TEMPLATE template0 ENCODING 'UTF8'"
    fi
    url="$(node_url "$p" "$db")"
    "$bin" migrate --database-url "$url" >&2
    say "database $db ready on $p"
}

case "${1:-}" in
    start) dir_arg "${2:-}"; cmd_start ;;
    stop) dir_arg "${2:-}"; [[ -f "$dir/cluster.env" ]] && source "$dir/cluster.env"; base="${base:-${HA_PORT_BASE:-55400}}"; cmd_stop ;;
    status) dir_arg "${2:-}"; load_env; cmd_status ;;
    primary) dir_arg "${2:-}"; load_env; p="$(primary_name)" || exit 1; pg_port "$p" ;;
    primary-name) dir_arg "${2:-}"; load_env; primary_name ;;
    wait-healthy) dir_arg "${2:-}"; load_env; wait_healthy "${3:-120}" ;;
    kill-node) dir_arg "${2:-}"; load_env; kill_node "${3:?node name}" ;;
    start-node) dir_arg "${2:-}"; load_env; start_node "${3:?node name}" ;;
    url) dir_arg "${2:-}"; load_env; app_url "${3:-mqledger}" ;;
    admin-url) dir_arg "${2:-}"; load_env; p="$(primary_name)" || die "no primary"; node_url "$p" "${3:-mqledger}" ;;
    node-url) dir_arg "${2:-}"; load_env; node_url "${3:?node name}" "${4:-mqledger}" ;;
    node-port) dir_arg "${2:-}"; load_env; pg_port "${3:?node name}" ;;
    setup-db) dir_arg "${2:-}"; load_env; cmd_setup_db "${3:?mqledger binary}" "${4:-mqledger}" ;;
    *) sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2; exit 2 ;;
esac
