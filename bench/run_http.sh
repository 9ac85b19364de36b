#!/usr/bin/env bash
# bench/run_http.sh: the HTTP benchmarks (bench_http) against a real daemon on a scratch
# database of the embedded PostgreSQL; everything it creates it removes again.
#
#   bash bench/run_http.sh [http|settlement|both] [extra bench_http options...]
#
#   http        64 keep-alive connections sending `POST /v1/instances/{id}/topics` back to back
#               (one event append each) against `serve` on the system clock; prints commands/s,
#               p50/p90/p99/max and the DESIGN.md target (>= 10,000/s at p99 <= 25 ms)
#   settlement  against `serve --clock manual --clock-start $BENCH_CLOCK_START`: creates and
#               deploys N payg Kafka instances, then times one `POST /v1/clock
#               {"advance_seconds": 3600}` (one hourly settlement per instance; target <= 5 s)
#   both        (default) http, then settlement, each on its own database and daemon
#
# For each run: `deploy/pg.sh start` (no-op when the cluster runs), CREATE DATABASE
# bench_http_<pid>_<mode>, `mqledger migrate` on it as the owner, `mqledger serve --listen
# 127.0.0.1:$BENCH_PORT --insecure-no-auth` on it as the daemon's role (log in
# $BENCH_LOG_DIR), wait for /readyz, run bench_http, stop the daemon (SIGTERM), DROP DATABASE.
#
# Environment (defaults in brackets):
#   MQLEDGER_BUILD_DIR   build tree with daemon/mqledger and bench/bench_http [build]
#   BENCH_PORT           daemon port on 127.0.0.1 [18480]
#   BENCH_CONNECTIONS    [64]    BENCH_SECONDS [10]    BENCH_WARMUP [2]    BENCH_THREADS [1]
#   BENCH_SETTLEMENT_N   instances for the settlement run [100000]
#   BENCH_CLOCK_START    the manual clock's start, a whole hour [2026-01-05T00:00:00Z]
#   BENCH_SERVE_ARGS     extra `mqledger serve` options (e.g. "--threads 2 --log-level warn")
#   BENCH_LOG_DIR        where the daemon logs go [a fresh mktemp -d]
#   BENCH_KEEP_DATABASE  1: keep the scratch databases (for `mqledger verify`, psql) [0]
#
# Example, with the build tree of the brief:
#   MQLEDGER_BUILD_DIR=/tmp/build-bench bash bench/run_http.sh http --seconds 20
#   BENCH_SETTLEMENT_N=10000 bash bench/run_http.sh settlement
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$root"

mode="${1:-both}"
case "$mode" in
    http | settlement | both) shift || true ;;
    -*) mode=both ;;
    *) echo "usage: bench/run_http.sh [http|settlement|both] [bench_http options...]" >&2; exit 2 ;;
esac
extra=("$@")

build="${MQLEDGER_BUILD_DIR:-build}"
daemon="$build/daemon/mqledger"
[[ -x "$daemon" ]] || daemon="$build/mqledger"
bench="$build/bench/bench_http"
for b in "$daemon" "$bench"; do
    [[ -x "$b" ]] || { echo "run_http.sh: $b not built (cmake --build $build --target mqledger bench_http)" >&2; exit 1; }
done

port="${BENCH_PORT:-18480}"
connections="${BENCH_CONNECTIONS:-64}"
seconds="${BENCH_SECONDS:-10}"
warmup="${BENCH_WARMUP:-2}"
threads="${BENCH_THREADS:-1}"
settlement_n="${BENCH_SETTLEMENT_N:-100000}"
clock_start="${BENCH_CLOCK_START:-2026-01-05T00:00:00Z}"
read -r -a serve_args <<<"${BENCH_SERVE_ARGS:-}"
logdir="${BENCH_LOG_DIR:-$(mktemp -d /tmp/bench_http.XXXXXX)}"
mkdir -p "$logdir"

bash deploy/pg.sh start
admin_url="$(bash deploy/pg.sh admin-url)"
app_url="$(bash deploy/pg.sh url)"
# The URLs name the database as postgresql:///mqledger?...; swap in the scratch one.
with_db() { printf '%s\n' "${1/:\/\/\/mqledger\?/:///$2?}"; }

daemon_pid=""
db=""
cleanup() {
    if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    daemon_pid=""
    if [[ -n "$db" ]]; then
        if [[ "${BENCH_KEEP_DATABASE:-0}" == 1 ]]; then
            echo "run_http.sh: kept database $db ($(with_db "$admin_url" "$db"))" >&2
        else
            psql -X -q -d "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" || true
        fi
    fi
    db=""
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start_daemon() { # mode, extra serve options...
    local name="$1"; shift
    db="bench_http_$$_$name"
    psql -X -q -v ON_ERROR_STOP=1 -d "$admin_url" -c "CREATE DATABASE $db TEMPLATE template0 ENCODING 'UTF8'"
    "$daemon" migrate --database-url "$(with_db "$admin_url" "$db")" >"$logdir/$name.migrate.log"
    if port_in_use; then echo "run_http.sh: 127.0.0.1:$port is in use; set BENCH_PORT" >&2; exit 1; fi
    "$daemon" serve --listen "127.0.0.1:$port" --database-url "$(with_db "$app_url" "$db")" --insecure-no-auth \
        "$@" "${serve_args[@]}" >"$logdir/$name.daemon.log" 2>&1 &
    daemon_pid=$!
    local i
    for ((i = 0; i < 100; i++)); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null; then break; fi
        kill -0 "$daemon_pid" 2>/dev/null || { tail -n 20 "$logdir/$name.daemon.log" >&2; echo "run_http.sh: daemon exited" >&2; exit 1; }
        sleep 0.1
    done
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" \
        || { tail -n 20 "$logdir/$name.daemon.log" >&2; echo "run_http.sh: daemon not ready" >&2; exit 1; }
    echo "== $name: daemon pid $daemon_pid on 127.0.0.1:$port, database $db, log $logdir/$name.daemon.log"
}

context() {
    echo "   $(date -u '+%Y-%m-%d %H:%M:%S UTC'), nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)"
}

status=0
if [[ "$mode" == http || "$mode" == both ]]; then
    start_daemon http
    context
    "$bench" --url "http://127.0.0.1:$port" --connections "$connections" --seconds "$seconds" \
        --warmup "$warmup" --threads "$threads" "${extra[@]}" || status=1
    context
    cleanup
fi
if [[ "$mode" == settlement || "$mode" == both ]]; then
    start_daemon settlement --clock manual --clock-start "$clock_start"
    context
    "$bench" --url "http://127.0.0.1:$port" --connections "$connections" --threads "$threads" \
        --settlement "$settlement_n" "${extra[@]}" || status=1
    context
    # The daemon's memory after the settlement: its state cache is as full as the run made it.
    cache_entries="$(curl -fsS "http://127.0.0.1:$port/metrics" | awk '$1 == "mqledger_state_cache_entries" {print $2}')"
    echo "daemon memory after the settlement: $(awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$daemon_pid/status") MB RSS," \
         "peak $(awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$daemon_pid/status") MB; state cache entries ${cache_entries:-?}"
    cleanup
fi
exit "$status"
