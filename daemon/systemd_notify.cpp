#include "daemon/systemd_notify.h"

#include <systemd/sd-daemon.h>

#include <string>

namespace mqledger::systemd {

void notify_ready() { sd_notify(0, "READY=1"); }
void notify_stopping() { sd_notify(0, "STOPPING=1"); }
void notify_watchdog() { sd_notify(0, "WATCHDOG=1"); }
void notify_status(std::string_view status) { sd_notify(0, ("STATUS=" + std::string(status)).c_str()); }

std::optional<std::chrono::microseconds> watchdog_period() {
    std::uint64_t usec = 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::microseconds(usec / 2);
}

} // namespace mqledger::systemd
