// Readiness of the database behind /readyz, mqledger_database_up and systemd's READY=1.
//
// A background thread probes once a second and /readyz answers from the last result, so a
// probe storm never reaches the database and a slow connect never blocks an I/O thread.
#pragma once

#include "ledger/store/migrate.h"

#include <chrono>
#include <functional>
#include <memory>
#include <optional>

namespace mqledger {

class readiness_monitor {
public:
    using probe_fn = std::function<store::readiness()>;
    /// Called on the monitor's thread after every probe, never after stop() returned.
    using result_fn = std::function<void(store::readiness)>;

    readiness_monitor(probe_fn probe, result_fn on_result, std::chrono::milliseconds interval);
    ~readiness_monitor();
    readiness_monitor(const readiness_monitor&) = delete;
    readiness_monitor& operator=(const readiness_monitor&) = delete;

    /// Starts probing (the first probe at once). Call at most once.
    void start();
    /// Stops the probing; idempotent. Waits at most `patience` for a probe in progress (a
    /// connect to a black-holed host can hang for minutes), then leaves it behind: shutdown
    /// must not hang on the database.
    void stop(std::chrono::milliseconds patience = std::chrono::seconds(3));

    /// The last probe's result; nullopt before the first probe finished. Thread-safe.
    [[nodiscard]] std::optional<store::readiness> current() const;

private:
    struct shared;
    std::shared_ptr<shared> shared_;
    bool started_ = false;
};

} // namespace mqledger
