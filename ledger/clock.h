// The one injected clock (DESIGN.md "Clock"). No other code reads the system time: the daemon
// owns one clock object and hands `now()` to whatever needs it; the rules core only takes time
// as an argument.
#pragma once

#include "ledger/types.h"

#include <atomic>

namespace mqledger {

class clock {
public:
    virtual ~clock() = default;
    /// The current instant. Thread-safe.
    [[nodiscard]] virtual time_point now() const = 0;
};

/// Production clock: the system's UTC time, never going back: after a backward step of the
/// system time (NTP) it holds at the latest instant it returned until the system catches up, so
/// a unit is never written (recorded_at) before it was decided (its `at`). Thread-safe.
class system_clock_source final : public clock {
public:
    [[nodiscard]] time_point now() const override;

private:
    mutable std::atomic<std::int64_t> latest_{0};
};

/// Tests and what-if runs: time moves only when told, and only forward. Thread-safe.
class manual_clock final : public clock {
public:
    explicit manual_clock(time_point start) : now_(start.time_since_epoch().count()) {}
    [[nodiscard]] time_point now() const override { return time_point(duration(now_.load())); }
    /// Moves the clock to `t`; returns false (and leaves it) if `t` is in the past.
    bool advance_to(time_point t) {
        auto cur = now_.load();
        while (t.time_since_epoch().count() >= cur)
            if (now_.compare_exchange_weak(cur, t.time_since_epoch().count())) return true;
        return false;
    }
private:
    std::atomic<std::int64_t> now_;
};

} // namespace mqledger
