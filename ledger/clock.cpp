#include "ledger/clock.h"

#include <algorithm>
#include <chrono>

namespace mqledger {
time_point system_clock_source::now() const {
    auto t = std::chrono::time_point_cast<duration>(std::chrono::system_clock::now()).time_since_epoch().count();
    auto latest = latest_.load(std::memory_order_relaxed);
    while (t > latest && !latest_.compare_exchange_weak(latest, t, std::memory_order_relaxed)) {
    }
    return time_point(duration(std::max(t, latest)));
}
} // namespace mqledger
