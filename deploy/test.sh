#!/usr/bin/env bash
# Build and run the whole test suite against the embedded PostgreSQL: first the normal build in
# build/, then a Debug build with AddressSanitizer and UBSan in build-asan/ (skip it with
# MQLEDGER_SKIP_ASAN=1 for quick local runs), then a short libFuzzer run of every harness with
# clang in build-fuzz/ (MQLEDGER_SKIP_FUZZ=1 skips it; MQLEDGER_FUZZ_SECONDS, default 20).
# Exits non-zero if anything failed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$root"

bash deploy/setup.sh
MQLEDGER_TEST_DATABASE_URL="$(bash deploy/pg.sh admin-url)"
MQLEDGER_TEST_APP_DATABASE_URL="$(bash deploy/pg.sh url)"
export MQLEDGER_TEST_DATABASE_URL MQLEDGER_TEST_APP_DATABASE_URL

status=0
echo "== tests (build/)" >&2
ctest --test-dir build --output-on-failure -j2 || status=1

if [[ "${MQLEDGER_SKIP_ASAN:-0}" != 1 ]]; then
    echo "== tests under AddressSanitizer + UBSan (build-asan/)" >&2
    cmake -S . -B build-asan -G Ninja -DMQLEDGER_WERROR=ON -DMQLEDGER_SANITIZERS=ON \
        -DCMAKE_BUILD_TYPE=Debug -DMQLEDGER_BENCH=OFF
    cmake --build build-asan
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
    LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}" \
    UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
        ctest --test-dir build-asan --output-on-failure -j2 || status=1
else
    echo "== sanitizer build skipped (MQLEDGER_SKIP_ASAN=1)" >&2
fi

# The libFuzzer harnesses (clang, build-fuzz/): a short run of each on its seed corpus, so CI
# catches a parser that a known input or a few seconds of mutation breaks. Longer runs:
# `bash tests/fuzz/run.sh 600`.
if [[ "${MQLEDGER_SKIP_FUZZ:-0}" != 1 ]]; then
    echo "== fuzzing, ${MQLEDGER_FUZZ_SECONDS:-20} s per harness (build-fuzz/)" >&2
    bash tests/fuzz/run.sh "${MQLEDGER_FUZZ_SECONDS:-20}" || status=1
else
    echo "== fuzzing skipped (MQLEDGER_SKIP_FUZZ=1)" >&2
fi

if ((status)); then echo "test.sh: FAILED" >&2; else echo "test.sh: all passed" >&2; fi
exit "$status"
