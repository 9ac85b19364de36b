#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] [HARNESS...]
#
# Builds the libFuzzer harnesses of tests/fuzz/ with clang into build-fuzz/ (at the top of the
# repository; CC=clang CXX=clang++, -DMQLEDGER_FUZZ=ON, tests and benchmarks off, the project's
# code instrumented with -fsanitize=fuzzer-no-link,address,undefined) and runs each harness for
# SECONDS (default 30; 0 = only replay the seed corpus once) on a copy of its seed corpus
# tests/fuzz/corpus/HARNESS/ with its dictionary tests/fuzz/dict/HARNESS.dict. The repository's
# corpus is never written: the copy and anything found live in build-fuzz/fuzz-work/HARNESS/.
#
# Harnesses (all by default): api_parse_fuzz codec_fuzz tokens_fuzz router_fuzz proof_fuzz.
# Exits non-zero if any harness crashed, leaked, timed out or broke a property, after printing
# the tail of its log and the path of the input that did it. To reproduce one:
#     build-fuzz/tests/fuzz/HARNESS PATH_OF_INPUT
# A finding becomes a Catch2 regression test (tests/unit/ or tests/e2e/fuzz_regression_test.cpp).
#
# Environment: MQLEDGER_FUZZ_JOBS (build parallelism, default 2), MQLEDGER_FUZZ_MAX_LEN (the
# largest input tried, default 4096 bytes).
set -euo pipefail

seconds="${1:-30}"
shift || true
if ! [[ "$seconds" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS] [HARNESS...]" >&2
    exit 2
fi
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(api_parse_fuzz codec_fuzz tokens_fuzz router_fuzz proof_fuzz)

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="$root/build-fuzz"
jobs="${MQLEDGER_FUZZ_JOBS:-2}"
max_len="${MQLEDGER_FUZZ_MAX_LEN:-4096}"

generator=()
if [ ! -f "$build/CMakeCache.txt" ] && command -v ninja >/dev/null; then generator=(-G Ninja); fi
CC=clang CXX=clang++ cmake -S "$root" -B "$build" "${generator[@]}" -DMQLEDGER_TESTS=OFF -DMQLEDGER_BENCH=OFF \
    -DMQLEDGER_FUZZ=ON >/dev/null
cmake --build "$build" --target fuzz_harnesses -j "$jobs"

export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=0
for h in "${harnesses[@]}"; do
    exe="$build/tests/fuzz/$h"
    seeds="$root/tests/fuzz/corpus/$h"
    if [ ! -x "$exe" ] || [ ! -d "$seeds" ]; then
        echo "run.sh: no harness or seed corpus called '$h'" >&2
        failed=1
        continue
    fi
    work="$build/fuzz-work/$h"
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp -R "$seeds/." "$work/corpus/"
    dict=()
    [ -f "$root/tests/fuzz/dict/$h.dict" ] && dict=(-dict="$root/tests/fuzz/dict/$h.dict")
    if [ "$seconds" -eq 0 ]; then
        mode=(-runs=0)
    else
        mode=(-max_total_time="$seconds")
    fi
    echo "== $h: ${seconds}s, corpus copy in $work/corpus"
    rc=0
    "$exe" "${mode[@]}" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$work/artifacts/" "${dict[@]}" "$work/corpus" >"$work/log" 2>&1 || rc=$?
    # The last status line: inputs run, coverage, features, corpus size.
    grep -E '^#[0-9]+' "$work/log" | tail -n 1 || true
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$work/log" || true
    found=$(find "$work/artifacts" -type f | sort)
    if [ "$rc" -ne 0 ] || [ -n "$found" ]; then
        failed=1
        echo "!! $h FAILED (exit $rc); log: $work/log" >&2
        tail -n 40 "$work/log" >&2
        for f in $found; do echo "!! crashing input: $f" >&2; done
        [ -n "$found" ] || echo "!! no input saved; see the log" >&2
    fi
done
exit "$failed"
