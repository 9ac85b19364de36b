// systemd's notify protocol (Type=notify): READY=1 once the listener is up and the database is
// migrated, STOPPING=1 on shutdown, WATCHDOG=1 at half the watchdog interval. Every call is a
// harmless no-op when not started by systemd (NOTIFY_SOCKET unset).
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace mqledger::systemd {

void notify_ready();
void notify_stopping();
void notify_watchdog();
/// A free-form status line shown by `systemctl status`.
void notify_status(std::string_view status);
/// The interval at which to send WATCHDOG=1 (half of WATCHDOG_USEC), if systemd expects it.
[[nodiscard]] std::optional<std::chrono::microseconds> watchdog_period();

} // namespace mqledger::systemd
