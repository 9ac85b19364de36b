// The timer service (DESIGN.md "Timers"): fires every time-driven event exactly once in effect.
// It keeps only the soonest due time in memory and arms one Asio timer for it on its own thread
// (firing reads and writes the database, which must not stall the HTTP threads). On start it
// fires everything already overdue (catch-up after downtime); commands that create an earlier
// deadline call `notify`; a periodic re-read picks up timers written by other daemons. With the
// manual clock it only catches up once at start: `POST /v1/clock` fires the rest.
//
// Several daemons on one database: only the holder of the leader lock fires (daemon/leader_lock.h);
// the others re-check every `poll` and take over when the leader is gone, starting with a
// catch-up of everything that came due meanwhile.
#pragma once

#include "daemon/engine.h"
#include "daemon/leader_lock.h"

#include "ledger/clock.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace mqledger {

class timer_service {
public:
    /// `automatic`: arm for the system clock; otherwise only the start-up catch-up runs.
    /// `leadership`: fire only while holding it (null: always fire, e.g. the manual clock).
    /// `on_leadership` is called on the service thread when leadership is gained or lost.
    timer_service(engine& eng, const mqledger::clock& clk, bool automatic,
                  std::unique_ptr<leader_lock> leadership = nullptr,
                  std::function<void(bool)> on_leadership = {},
                  std::chrono::milliseconds poll = std::chrono::seconds(1));
    ~timer_service();
    timer_service(const timer_service&) = delete;
    timer_service& operator=(const timer_service&) = delete;

    void start();
    /// Stops the thread after the firing in progress (if any) finished.
    void stop();
    /// A deadline at `due` now exists; fire no later than that. Thread-safe.
    void notify(time_point due);
    /// True once the start-up catch-up has completed, or another daemon is known to lead (it
    /// does the catching up). Thread-safe.
    [[nodiscard]] bool caught_up() const noexcept { return caught_up_; }
    /// True while this daemon fires the timers. Thread-safe.
    [[nodiscard]] bool leading() const noexcept { return leading_; }

private:
    void arm(time_point when);
    void fire();
    bool lead();

    engine& engine_;
    const mqledger::clock& clock_;
    bool automatic_;
    std::unique_ptr<leader_lock> leadership_;
    std::function<void(bool)> on_leadership_;
    std::chrono::milliseconds poll_;
    boost::asio::io_context ioc_;
    boost::asio::steady_timer timer_;
    std::optional<time_point> armed_for_;   // only touched on the service thread
    std::atomic<bool> caught_up_{false};
    std::atomic<bool> leading_{false};
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

} // namespace mqledger
