#!/usr/bin/env bash
# Fresh Debian 12, as root: install what is missing, build into build/, start the embedded
# PostgreSQL (deploy/pg.sh) and migrate it. Quick when re-run: dpkg-query skips installed
# packages, Ninja and ccache skip unchanged sources, pg.sh skips initdb.
#
# Environment: MQLEDGER_BUILD_DIR (default build), MQLEDGER_CMAKE_ARGS (extra configure flags).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$root"
build="${MQLEDGER_BUILD_DIR:-build}"

packages=(cmake ninja-build g++ ccache pkg-config libboost1.81-dev libboost-json1.81-dev
          libboost-program-options1.81-dev libboost-url1.81-dev libpqxx-dev prometheus-cpp-dev libspdlog-dev catch2
          libhowardhinnant-date-dev libsystemd-dev libssl-dev postgresql tzdata
          systemd prometheus clang libclang-rt-dev python3 openssl python3-yaml python3-jsonschema
          dpkg-dev lintian patroni python3-etcd etcd-server etcd-client curl)
# From systemd on: tests only (unit verify, dashboard, fuzzing, proofs, OpenAPI, the Debian
# package and lintian, the Patroni + etcd failover test).
missing=()
for p in "${packages[@]}"; do
    if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]]; then missing+=("$p"); fi
done
if ((${#missing[@]})); then
    if [[ "$(id -u)" != 0 ]]; then
        echo "setup.sh: missing Debian packages (run as root to install): ${missing[*]}" >&2
        exit 1
    fi
    echo "setup.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${missing[@]}"
fi

# shellcheck disable=SC2086 # MQLEDGER_CMAKE_ARGS is a list of flags
cmake -S . -B "$build" -G Ninja -DMQLEDGER_WERROR=ON ${MQLEDGER_CMAKE_ARGS:-}
cmake --build "$build"

bash deploy/pg.sh start
admin_url="$(bash deploy/pg.sh admin-url)"
"$build/daemon/mqledger" migrate --database-url "$admin_url"
echo "setup.sh: built into $build/, PostgreSQL running, database migrated" >&2
