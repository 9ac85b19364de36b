#include "daemon/timer_service.h"

#include "daemon/logging.h"
#include "ledger/codec.h"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

namespace mqledger {
namespace net = boost::asio;

namespace {
// After a failure (database down), try again this soon.
constexpr auto retry_after = std::chrono::seconds(1);
} // namespace

timer_service::timer_service(engine& eng, const mqledger::clock& clk, bool automatic,
                             std::unique_ptr<leader_lock> leadership, std::function<void(bool)> on_leadership,
                             std::chrono::milliseconds poll)
    : engine_(eng), clock_(clk), automatic_(automatic), leadership_(std::move(leadership)),
      on_leadership_(std::move(on_leadership)), poll_(poll), timer_(ioc_) {}

timer_service::~timer_service() { stop(); }

void timer_service::start() {
    net::post(ioc_, [this] { fire(); });
    thread_ = std::thread([this] {
        auto guard = net::make_work_guard(ioc_);
        for (;;) {
            try {
                ioc_.run();
                return;
            } catch (const std::exception& e) {
                log_line(log_level::error, "timer service: unhandled exception", {{"error", e.what()}});
            }
        }
    });
}

void timer_service::stop() {
    if (stopping_.exchange(true)) return;
    ioc_.stop();
    if (thread_.joinable()) thread_.join();
    // Hand leadership over at once rather than when the process exits.
    if (leadership_) leadership_->release();
}

// Whether this daemon may fire now; logs and reports changes of leadership.
bool timer_service::lead() {
    if (!leadership_) return true;
    const auto s = leadership_->check();
    const bool now_leading = s == leader_lock::status::leader;
    if (now_leading != leading_.exchange(now_leading)) {
        if (now_leading)
            log_line(log_level::info, "timer leader: this daemon fires the timers");
        else
            log_line(log_level::warn, "timer leadership lost",
                     {{"reason", s == leader_lock::status::unknown ? "database unreachable"
                                                                    : "another daemon holds the lock"}});
        if (on_leadership_) on_leadership_(now_leading);
    }
    // Another daemon leads and does the catching up; this one is ready to serve.
    if (s == leader_lock::status::follower) caught_up_ = true;
    return now_leading;
}

void timer_service::notify(time_point due) {
    if (!automatic_ || stopping_) return;
    net::post(ioc_, [this, due] {
        if (!armed_for_ || due < *armed_for_) arm(due);
    });
}

void timer_service::arm(time_point when) {
    armed_for_ = when;
    const auto delay = when - clock_.now();
    timer_.expires_after(delay.count() > 0 ? std::chrono::duration_cast<std::chrono::steady_clock::duration>(delay)
                                           : std::chrono::steady_clock::duration::zero());
    timer_.async_wait([this](const boost::system::error_code& ec) {
        if (!ec && !stopping_) fire();
    });
}

void timer_service::fire() {
    armed_for_.reset();
    if (!lead()) {
        // Ask again soon: when the leader dies its session ends and the lock is free.
        arm(clock_.now() + poll_);
        return;
    }
    const auto now = clock_.now();
    try {
        const auto fired = engine_.fire_due(now);
        if (!caught_up_.exchange(true))
            log_line(log_level::info, "timers caught up", {{"fired", static_cast<std::int64_t>(fired)},
                                                           {"up_to", codec::format_time(now)}});
    } catch (const std::exception& e) {
        log_line(log_level::warn, "timers not fired; retrying", {{"error", e.what()}});
        if (automatic_ || !caught_up_) arm(clock_.now() + retry_after);
        return;
    }
    if (!automatic_) return;
    // The next deadline; a timer still due now decided nothing (logged by the engine) and is
    // retried after the poll period rather than in a loop.
    time_point next = clock_.now() + poll_;
    try {
        if (const auto due = engine_.earliest_due(); due && *due > now && *due < next) next = *due;
    } catch (const std::exception& e) {
        log_line(log_level::warn, "timers: cannot read the next deadline", {{"error", e.what()}});
        next = clock_.now() + retry_after;
    }
    arm(next);
}

} // namespace mqledger
