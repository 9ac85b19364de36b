#include "ledger/clock.h"

#include <chrono>

namespace mqledger {
time_point system_clock_source::now() const {
    return std::chrono::time_point_cast<duration>(std::chrono::system_clock::now());
}
} // namespace mqledger
