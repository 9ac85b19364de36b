// Elapsed-time measurement for operations code (request latency, cache freshness).
//
// This is the one place outside ledger/clock.h that reads a clock, and it reads only the
// monotonic one: durations of the daemon's own work are not ledger time, so they must not come
// from the injected mqledger::clock (which a manual clock may freeze or jump).
#pragma once

#include <chrono>

namespace mqledger {

/// Measures the time since it was constructed or last reset. Not thread-safe; cheap to copy.
class stopwatch {
public:
    stopwatch() noexcept : start_(std::chrono::steady_clock::now()) {}
    void reset() noexcept { start_ = std::chrono::steady_clock::now(); }
    [[nodiscard]] std::chrono::steady_clock::duration elapsed() const noexcept {
        return std::chrono::steady_clock::now() - start_;
    }
    [[nodiscard]] double seconds() const noexcept { return std::chrono::duration<double>(elapsed()).count(); }

private:
    std::chrono::steady_clock::time_point start_;
};

} // namespace mqledger
