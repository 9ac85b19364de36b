#!/usr/bin/env bash
# The high-availability test: kill -9 of the Patroni-managed PostgreSQL primary under load, KILLS
# times (default 3; CI runs 1). Starts a three-node Patroni + etcd cluster (deploy/ha/cluster.sh)
# in a scratch directory, prepares the databases, runs tests/ha/failover_test.py (which starts the
# daemons and the load, kills, checks) and stops everything on exit, whatever happened.
#
#   bash tests/ha/run.sh [KILLS]
#
# Environment:
#   MQLEDGER_BINARY   the daemon (default build/daemon/mqledger); copied to the scratch dir
#   HA_PORT_BASE      first of the 40 loopback ports used (default 55400; moved up by 100 until
#                     the block is free)
#   HA_WORK_DIR       scratch directory (default: mktemp -d); kept on failure or with HA_KEEP=1
#   HA_CLIENTS        client threads (default 6)
#   HA_TEST_ARGS      more options for failover_test.py (e.g. --clients 12)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)"
kills="${1:-3}"
[[ "$kills" =~ ^[0-9]+$ && "$kills" -ge 1 ]] || { echo "usage: tests/ha/run.sh [KILLS>=1]" >&2; exit 2; }
binary="${MQLEDGER_BINARY:-$root/build/daemon/mqledger}"
[[ -x "$binary" ]] || { echo "run.sh: $binary not found (build first, or set MQLEDGER_BINARY)" >&2; exit 2; }
for tool in patroni /usr/bin/etcd curl setsid; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool missing (apt-get install patroni etcd-server curl)" >&2; exit 2; }
done

work="${HA_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/mqledger-ha.XXXXXX")}"
mkdir -p "$work"
work="$(cd "$work" && pwd -P)"
cluster="$root/deploy/ha/cluster.sh"
status=1

port_free() { # port → 0 when nothing listens on 127.0.0.1:port
    /usr/bin/python3 - "$1" <<'PY'
import socket, sys
s = socket.socket()
# As the servers do: a port with only TIME_WAIT connections left by an earlier run is free.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}
block_free() { local p; for ((p = $1; p < $1 + 40; p++)); do port_free "$p" || return 1; done; }

cleanup() {
    local f pid
    trap - EXIT INT TERM
    # The daemons the test started (it stops them itself when it gets that far).
    for f in "$work"/daemon*.pid "$work"/leader*.pid; do
        [[ -f "$f" ]] || continue
        pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    sleep 0.5
    for f in "$work"/daemon*.pid "$work"/leader*.pid; do
        [[ -f "$f" ]] || continue
        pid="$(cat "$f")"
        if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    done
    bash "$cluster" stop "$work" || true
    if [[ "$status" == 0 && "${HA_KEEP:-0}" != 1 && -z "${HA_WORK_DIR:-}" ]]; then
        rm -rf "$work"
    else
        echo "run.sh: logs kept in $work (daemon*.log, leader*.log, node*/patroni.log, etcd.log)" >&2
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

base="${HA_PORT_BASE:-55400}"
for ((i = 0; i < 20; i++)); do
    if block_free "$base"; then break; fi
    echo "run.sh: a port in $base..$((base + 39)) is taken; trying $((base + 100))" >&2
    base=$((base + 100))
done
block_free "$base" || { echo "run.sh: no free block of 40 loopback ports found" >&2; exit 1; }

cp "$binary" "$work/mqledger"
chmod 0755 "$work/mqledger"
echo "run.sh: $(date -u +%FT%TZ) scratch $work, ports $base.., $kills kill(s)" >&2
t0=$SECONDS
HA_PORT_BASE="$base" bash "$cluster" start "$work"
bash "$cluster" setup-db "$work" "$work/mqledger" mqledger
bash "$cluster" setup-db "$work" "$work/mqledger" mqledger_leader
echo "run.sh: cluster and databases ready in $((SECONDS - t0)) s" >&2

set +e
# Bounded here, below ctest's TIMEOUT (600 s): ctest kills with SIGKILL, which no trap survives,
# and the cluster's processes run in their own sessions.
timeout --signal=TERM $((240 + 150 * kills)) /usr/bin/python3 "$root/tests/ha/failover_test.py" --dir "$work" --cluster "$cluster" --binary "$work/mqledger" \
    --kills "$kills" --port-base "$base" --clients "${HA_CLIENTS:-6}" ${HA_TEST_ARGS:-}
status=$?
set -e
echo "run.sh: finished in $((SECONDS - t0)) s, status $status" >&2
exit "$status"
