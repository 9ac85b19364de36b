#!/usr/bin/env bash
# bench/run_http.sh: the HTTP benchmarks (bench_http) against a real daemon on a scratch
# database of the embedded PostgreSQL; everything it creates it removes again.
#
#   bash bench/run_http.sh [http|settlement|both] [extra bench_http options...]
#
#   http        64 keep-alive connections sending `POST /v1/instances/{id}/topics` back to back
#               (one event append each) against `serve` on the system clock; prints commands/s,
#               p50/p90/p99/max and the target (>= 10,000/s at p99 <= 25 ms;
#               bench/README.md "Targets")
#   settlement  against `serve --clock manual --clock-start $BENCH_CLOCK_START`: creates and
#               deploys N payg Kafka instances, then times one `POST /v1/clock
#               {"advance_seconds": 3600}` (one hourly settlement per instance; target <= 5 s)
#   both        (default) http, then settlement, each on its own database and daemon
#   tree        the http run with and without the Merkle tree (issue 14: with >= 0.9x without),
#               alternating daemons that differ only in --checkpoint-interval, all with a fresh
#               --digest-key (so every tick also signs a checkpoint): `off` 86400 (the tree is
#               extended once, at start), `10s` the default 10, `1s` 1 (strict); rounds in
#               ABC CBA ... order; per run commands/s, p99, and the tree size / newest checkpoint
#               at the end; then the mean per variant, the ratios to `off`, and `result:` lines
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
#   BENCH_TREE_ROUNDS    tree: rounds over the variants [2]
#   BENCH_TREE_VARIANTS  tree: which, in order [off 10s 1s]
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
    http | settlement | both | tree) shift || true ;;
    -*) mode=both ;;
    *) echo "usage: bench/run_http.sh [http|settlement|both|tree] [bench_http options...]" >&2; exit 2 ;;
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
keydir=""
on_exit() {
    cleanup
    if [[ -n "$keydir" ]]; then rm -rf "$keydir"; fi
}
trap on_exit EXIT
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
if [[ "$mode" == tree ]]; then
    keydir="$(mktemp -d /tmp/bench_tree_key.XXXXXX)"
    openssl genpkey -algorithm ed25519 -out "$keydir/log.pem" 2>/dev/null
    chmod 600 "$keydir/log.pem"
    rounds="${BENCH_TREE_ROUNDS:-2}"
    read -r -a variants <<<"${BENCH_TREE_VARIANTS:-off 10s 1s}"
    declare -A tree_sum=() tree_runs=() tree_list=()
    for ((round = 1; round <= rounds; round++)); do
        order=("${variants[@]}")
        if ((round % 2 == 0)); then   # ABC CBA: a drift in the machine's state hits every variant alike
            order=()
            for ((k = ${#variants[@]} - 1; k >= 0; k--)); do order+=("${variants[k]}"); done
        fi
        for v in "${order[@]}"; do
            case "$v" in
                off) interval=86400 ;;
                10s) interval=10 ;;
                1s) interval=1 ;;
                *) echo "run_http.sh: unknown tree variant $v (off, 10s, 1s)" >&2; exit 2 ;;
            esac
            name="tree_${v}_$round"
            start_daemon "$name" --digest-key "$keydir/log.pem" --checkpoint-interval "$interval"
            echo "   variant $v: --checkpoint-interval $interval --digest-key (round $round of $rounds)"
            context
            out="$("$bench" --url "http://127.0.0.1:$port" --connections "$connections" --seconds "$seconds" \
                --warmup "$warmup" --threads "$threads" "${extra[@]}" 2>&1)" || status=1
            printf '%s\n' "$out"
            context
            cps="$(awk '/commands\/s \(2xx\)/ { print $1 }' <<<"$out" | tail -n1)"
            p99="$(awk '/latency ms:/ { for (i = 1; i < NF; i++) if ($i == "p99") print $(i+1) }' <<<"$out" | tail -n1)"
            head_pos="$(curl -fsS "http://127.0.0.1:$port/v1/ledger/head" 2>/dev/null | sed -n 's/.*"position":\([0-9]*\).*/\1/p')"
            cp_size="$(curl -fsS "http://127.0.0.1:$port/v1/ledger/checkpoint" 2>/dev/null | sed -n 2p)"
            made="$(grep -c '"msg":"checkpoint"' "$logdir/$name.daemon.log" || true)"
            echo "tree: variant=$v round=$round commands_per_s=${cps:-?} p99_ms=${p99:-?} head=${head_pos:-?}" \
                "newest_checkpoint=${cp_size:-none} checkpoints_made=${made:-0}"
            if [[ -n "$cps" ]]; then
                tree_sum[$v]="$(awk -v a="${tree_sum[$v]:-0}" -v b="$cps" 'BEGIN { printf "%.6f", a + b }')"
                tree_runs[$v]=$((${tree_runs[$v]:-0} + 1))
                tree_list[$v]="${tree_list[$v]:-}${tree_list[$v]:+ }$cps"
            fi
            cleanup
        done
    done
    echo
    echo "tree summary ($rounds round(s), ${seconds} s windows, $connections connections):"
    off_mean=""
    [[ -n "${tree_runs[off]:-}" ]] && off_mean="$(awk -v s="${tree_sum[off]}" -v n="${tree_runs[off]}" 'BEGIN { printf "%.1f", s / n }')"
    for v in "${variants[@]}"; do
        [[ -n "${tree_runs[$v]:-}" ]] || continue
        mean="$(awk -v s="${tree_sum[$v]}" -v n="${tree_runs[$v]}" 'BEGIN { printf "%.1f", s / n }')"
        ratio=""
        [[ -n "$off_mean" ]] && ratio="$(awk -v a="$mean" -v b="$off_mean" 'BEGIN { if (b > 0) printf "%.3f", a / b }')"
        echo "  $v: mean $mean commands/s (runs: ${tree_list[$v]})${ratio:+, ratio to off $ratio}"
        echo "result: tree_${v}_cps $mean"
        echo "result: tree_${v}_runs ${tree_list[$v]// /,}"
        [[ -n "$ratio" && "$v" != off ]] && echo "result: tree_${v}_ratio $ratio"
    done
    if [[ -n "$off_mean" && -n "${tree_runs[1s]:-}" ]]; then
        r="$(awk -v s="${tree_sum[1s]}" -v n="${tree_runs[1s]}" -v b="$off_mean" 'BEGIN { printf "%.3f", s / n / b }')"
        echo "target (issue 14): HTTP commands/s with the tree (--checkpoint-interval 1 and a key) >= 0.9x without:" \
            "$(awk -v r="$r" 'BEGIN { print (r >= 0.9 ? "PASS" : "SHORT") }') ($r)"
    fi
fi
exit "$status"
