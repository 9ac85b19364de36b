#!/usr/bin/env bash
# Build, start the embedded PostgreSQL, migrate, and run the daemon in the foreground against it
# without authentication (loopback only). Extra arguments go to `mqledger serve`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$root"
bash deploy/setup.sh
exec build/daemon/mqledger serve --database-url "$(bash deploy/pg.sh url)" --insecure-no-auth "$@"
