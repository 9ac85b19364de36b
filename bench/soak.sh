#!/usr/bin/env bash
# bench/soak.sh: the soak run (not part of CI): the daemon under a steady request rate for a
# long time, watched for leaks and drift.
#
#   bash bench/soak.sh                         # 10 minutes at 300 requests/s
#   SOAK_SECONDS=120 SOAK_WARMUP=30 SOAK_REPORT_EVERY=30 bash bench/soak.sh   # a quick try
#
# What it does: CREATE DATABASE soak_<pid> on the PostgreSQL cluster, `mqledger migrate` on it
# as the owner, `mqledger serve --insecure-no-auth` on it as the daemon's role (system clock,
# log in $SOAK_LOG_DIR), then `bench_http --rate` (open loop: latency from the scheduled send
# time; topic create/delete pairs, one event append each, so instances stay the same size while
# the log grows) for SOAK_SECONDS. Every SOAK_SAMPLE_EVERY seconds it samples the daemon's RSS
# (/proc/PID/status VmRSS) and open file descriptors (/proc/PID/fd); bench_http prints p50/p99
# per SOAK_REPORT_EVERY seconds. Then PASS/FAIL for:
#   rss     the largest RSS after the warm-up is at most 10% above the RSS at the end of the warm-up
#   fds     the fd count at the last sample under load is at most 2 above the count at the end of
#           the warm-up (2: a keep-alive connection being replaced at the moment of a sample);
#           the counts before and after the load, idle, are printed too
#   p99     the last interval's p99 is at most 2x the first interval after the warm-up
#   errors  every request got a 2xx, at (at least 95% of) the asked rate
# Exit status 0 only when all four pass. The daemon is stopped (SIGTERM) and the database
# dropped afterwards.
#
# Database: the cluster named by MQLEDGER_TEST_DATABASE_URL (owner, user postgres) and
# MQLEDGER_TEST_APP_DATABASE_URL (the daemon's role) when both are set, as for the tests;
# otherwise the embedded one (`deploy/pg.sh start`, admin-url, url). Both URLs must name the
# database as postgresql:///mqledger?... (the scratch database's name is swapped in).
#
# Environment (defaults in brackets):
#   MQLEDGER_BUILD_DIR   build tree with daemon/mqledger and bench/bench_http [build]
#   SOAK_SECONDS [600]   SOAK_RATE [300] requests/s   SOAK_WARMUP [120] s
#   SOAK_REPORT_EVERY [60] s (p99 per interval)   SOAK_SAMPLE_EVERY [10] s (RSS, fds)
#   SOAK_CONNECTIONS [64]   SOAK_PORT [18490]   SOAK_SERVE_ARGS (extra `serve` options)
#   SOAK_LOG_DIR [a fresh mktemp -d]: daemon.log, bench.log, samples.tsv
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$root"

build="${MQLEDGER_BUILD_DIR:-build}"
daemon="$build/daemon/mqledger"
[[ -x "$daemon" ]] || daemon="$build/mqledger"
bench="$build/bench/bench_http"
for b in "$daemon" "$bench"; do
    [[ -x "$b" ]] || { echo "soak.sh: $b not built (cmake --build $build --target mqledger bench_http)" >&2; exit 1; }
done

seconds="${SOAK_SECONDS:-600}"
rate="${SOAK_RATE:-300}"
warmup="${SOAK_WARMUP:-120}"
report_every="${SOAK_REPORT_EVERY:-60}"
sample_every="${SOAK_SAMPLE_EVERY:-10}"
connections="${SOAK_CONNECTIONS:-64}"
port="${SOAK_PORT:-18490}"
read -r -a serve_args <<<"${SOAK_SERVE_ARGS:-}"
logdir="${SOAK_LOG_DIR:-$(mktemp -d /tmp/soak.XXXXXX)}"
mkdir -p "$logdir"
if ((warmup >= seconds)); then echo "soak.sh: SOAK_WARMUP ($warmup) must be below SOAK_SECONDS ($seconds)" >&2; exit 2; fi

if [[ -n "${MQLEDGER_TEST_DATABASE_URL:-}" && -n "${MQLEDGER_TEST_APP_DATABASE_URL:-}" ]]; then
    admin_url="$MQLEDGER_TEST_DATABASE_URL"
    app_url="$MQLEDGER_TEST_APP_DATABASE_URL"
else
    bash deploy/pg.sh start
    admin_url="$(bash deploy/pg.sh admin-url)"
    app_url="$(bash deploy/pg.sh url)"
fi
with_db() { printf '%s\n' "${1/:\/\/\/mqledger\?/:///$2?}"; }

db="soak_$$"
daemon_pid=""
bench_pid=""
cleanup() {
    [[ -n "$bench_pid" ]] && kill -TERM "$bench_pid" 2>/dev/null || true
    if [[ -n "$daemon_pid" ]] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 1 150); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$daemon_pid" 2>/dev/null || true
        wait "$daemon_pid" 2>/dev/null || true
    fi
    psql -X -q -d "$admin_url" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "soak.sh: 127.0.0.1:$port is in use; set SOAK_PORT" >&2
    exit 1
fi
psql -X -q -v ON_ERROR_STOP=1 -d "$admin_url" -c "CREATE DATABASE $db TEMPLATE template0 ENCODING 'UTF8'"
"$daemon" migrate --database-url "$(with_db "$admin_url" "$db")" >"$logdir/migrate.log"
"$daemon" serve --listen "127.0.0.1:$port" --database-url "$(with_db "$app_url" "$db")" --insecure-no-auth \
    "${serve_args[@]}" >"$logdir/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break
    kill -0 "$daemon_pid" 2>/dev/null || { tail -n 20 "$logdir/daemon.log" >&2; echo "soak.sh: daemon exited" >&2; exit 1; }
    sleep 0.1
done
curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" || { echo "soak.sh: daemon not ready" >&2; exit 1; }

echo "== soak: ${seconds} s at ${rate} requests/s over ${connections} connections, warm-up ${warmup} s;" \
     "daemon pid $daemon_pid, database $db, logs in $logdir"
echo "   $(date -u '+%Y-%m-%d %H:%M:%S UTC'), nproc $(nproc), load average $(cut -d' ' -f1-3 /proc/loadavg)"

idle_before_fds=$(find "/proc/$daemon_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
"$bench" --url "http://127.0.0.1:$port" --connections "$connections" --rate "$rate" --duration "$seconds" \
    --report-every "$report_every" >"$logdir/bench.log" 2>&1 &
bench_pid=$!

# Samples are taken from the moment the measured load starts (bench_http prints "steady:" after
# its set-up), so t is seconds into the load.
for _ in $(seq 1 600); do grep -q '^steady:' "$logdir/bench.log" 2>/dev/null && break; kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.1; done
start=$(date +%s.%N)
printf 't_s\trss_kb\tfds\n' >"$logdir/samples.tsv"
sample() {
    local now rss fds
    now=$(date +%s.%N)
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$daemon_pid/status" 2>/dev/null || echo 0)
    fds=$(find "/proc/$daemon_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    printf '%.0f\t%s\t%s\n' "$(echo "$now - $start" | bc)" "$rss" "$fds" >>"$logdir/samples.tsv"
    printf '   t=%5.0f s  rss %7s kB  fds %4s  %s\n' "$(echo "$now - $start" | bc)" "$rss" "$fds" \
        "$(grep '^steady interval' "$logdir/bench.log" | tail -n 1 | sed 's/^steady //')"
}
next=0
while kill -0 "$bench_pid" 2>/dev/null; do
    elapsed=$(echo "$(date +%s.%N) - $start" | bc)
    if (($(echo "$elapsed >= $next" | bc))); then
        sample
        next=$((next + sample_every))
    fi
    kill -0 "$daemon_pid" 2>/dev/null || { echo "soak.sh: the daemon died" >&2; tail -n 20 "$logdir/daemon.log" >&2; exit 1; }
    sleep 0.5
done
bench_status=0
wait "$bench_pid" || bench_status=$?
bench_pid=""
sleep 1   # the keep-alive connections are closed by then
idle_after_rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$daemon_pid/status" 2>/dev/null || echo 0)
idle_after_fds=$(find "/proc/$daemon_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
echo "   idle again after the load: rss ${idle_after_rss} kB, fds ${idle_after_fds} (before the load: ${idle_before_fds})"
echo "   $(date -u '+%Y-%m-%d %H:%M:%S UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== bench_http:"
grep -E '^(steady|setup)' "$logdir/bench.log" | sed 's/^/   /'
((bench_status == 0)) || { echo "soak.sh: bench_http exited with $bench_status" >&2; tail -n 5 "$logdir/bench.log" >&2; exit 1; }

# The verdicts.
status=0
verdict() { # name pass(0/1) text
    if [[ "$2" == 1 ]]; then echo "PASS $1: $3"; else echo "FAIL $1: $3"; status=1; fi
}
read -r rss_base rss_max rss_last fd_base fd_max fd_last < <(awk -F'\t' -v w="$warmup" '
    NR == 1 { next }
    $1 >= w && !based { rb = $2; fb = $3; based = 1 }
    based { if ($2 > rm) rm = $2; if ($3 > fm) fm = $3; rl = $2; fl = $3 }
    END { print rb + 0, rm + 0, rl + 0, fb + 0, fm + 0, fl + 0 }' "$logdir/samples.tsv")
if ((rss_base > 0)); then
    growth=$(printf '%.1f' "$(echo "scale=3; ($rss_max - $rss_base) * 100 / $rss_base" | bc)")
    verdict rss "$( (($(echo "$growth <= 10" | bc))) && echo 1 || echo 0)" \
        "RSS ${rss_base} kB after the warm-up, at most ${rss_max} kB later (${growth}%; limit 10%), ${rss_last} kB at the end"
else
    verdict rss 0 "no RSS sample after the warm-up"
fi
verdict fds "$( ((fd_last <= fd_base + 2)) && echo 1 || echo 0)" \
    "${fd_base} open fds after the warm-up, ${fd_last} at the last sample under load (at most ${fd_max})"

# p99 of the first interval that starts at or after the warm-up, and of the last interval.
read -r p99_first p99_last first_end last_end < <(awk -v w="$warmup" -v e="$report_every" '
    /^steady interval=/ {
        for (i = 1; i <= NF; ++i) { split($i, kv, "="); f[kv[1]] = kv[2] }
        start = f["end_s"] - e
        if (start >= w && first == "") { first = f["p99_ms"]; fe = f["end_s"] }
        last = f["p99_ms"]; le = f["end_s"]
    }
    END { print (first == "" ? -1 : first), (last == "" ? -1 : last), fe + 0, le + 0 }' "$logdir/bench.log")
if [[ "$p99_first" == -1 ]]; then
    verdict p99 0 "no interval after the warm-up (SOAK_REPORT_EVERY too long for SOAK_SECONDS - SOAK_WARMUP?)"
else
    verdict p99 "$( (($(echo "$p99_last <= 2 * $p99_first" | bc))) && echo 1 || echo 0)" \
        "p99 ${p99_first} ms in the interval ending at ${first_end} s, ${p99_last} ms in the last (ending at ${last_end} s); limit 2x"
fi

total=$(grep '^steady total:' "$logdir/bench.log" || true)
non2xx=$(sed -n 's/.*non-2xx \([0-9]*\).*/\1/p' <<<"$total")
okrate=$(sed -n 's/.*2xx (\([0-9.]*\)\/s.*/\1/p' <<<"$total")
if [[ -z "$non2xx" || -z "$okrate" ]]; then
    verdict errors 0 "no summary from bench_http"
else
    verdict errors "$( ((non2xx == 0)) && (($(echo "$okrate >= 0.95 * $rate" | bc))) && echo 1 || echo 0)" \
        "${non2xx} non-2xx answers; ${okrate} 2xx/s of ${rate}/s asked"
fi
echo "   samples: $logdir/samples.tsv; bench output: $logdir/bench.log; daemon log: $logdir/daemon.log"
exit "$status"
