#include "daemon/serve.h"

#include "daemon/auth.h"
#include "daemon/http_server.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "daemon/readiness.h"
#include "daemon/router.h"
#include "daemon/routes.h"
#include "daemon/systemd_notify.h"
#include "ledger/codec.h"
#include "daemon/version.h"

#include "ledger/clock.h"
#include "ledger/store/migrate.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <csignal>
#include <iostream>
#include <thread>

namespace mqledger {
namespace net = boost::asio;

namespace {

std::string_view to_string(store::readiness r) {
    switch (r) {
    case store::readiness::ready: return "ready";
    case store::readiness::unreachable: return "unreachable";
    case store::readiness::not_migrated: return "not_migrated";
    }
    return "?";
}

// Runs the io_context until it has no more work. A handler that throws is logged and the loop
// goes on: one bad request must not take the daemon down.
void run_loop(net::io_context& ioc) {
    for (;;) {
        try {
            ioc.run();
            return;
        } catch (const std::exception& e) {
            log_line(log_level::error, "unhandled exception in the event loop", {{"error", e.what()}});
        }
    }
}

} // namespace

int run_serve(const config& cfg) {
    setup_logging(cfg.log, cfg.log_level);

    std::unique_ptr<token_store> tokens;
    if (cfg.insecure_no_auth) {
        log_line(log_level::warn, "authentication is off (--insecure-no-auth); listening on loopback only");
    } else {
        try {
            tokens = std::make_unique<token_store>(cfg.tokens_file);
        } catch (const tokens_error& e) {
            std::cerr << "mqledger serve: " << e.what() << "\n";
            return 2;
        }
        if (tokens->size() == 0) log_line(log_level::warn, "the tokens file holds no token", {{"file", cfg.tokens_file}});
    }

    // The one clock of the process (DESIGN.md "Clock"): whatever needs `now` gets it from here.
    system_clock_source system_clock;
    std::unique_ptr<manual_clock> manual;
    if (cfg.clock == clock_kind::manual)
        manual = std::make_unique<manual_clock>(cfg.clock_start.value_or(system_clock.now()));
    const clock& now_source = manual ? static_cast<const clock&>(*manual) : system_clock;

    metrics m(version());

    std::atomic<bool> ready_sent{false};
    std::atomic<int> last_readiness{-1};
    readiness_monitor readiness(
        [url = cfg.database_url] { return store::check_ready(url); },
        [&](store::readiness r) {
            m.set_database_up(r != store::readiness::unreachable);
            if (last_readiness.exchange(static_cast<int>(r)) != static_cast<int>(r))
                log_line(r == store::readiness::ready ? log_level::info : log_level::warn, "database",
                         {{"state", to_string(r)}});
            // READY=1 once: the listener is already up when the monitor starts.
            if (r == store::readiness::ready && !ready_sent.exchange(true)) {
                systemd::notify_ready();
                systemd::notify_status("ready");
            }
        },
        std::chrono::seconds(1));

    http::router router(tokens.get());
    add_ops_routes(router, readiness, m);
    if (manual) add_clock_routes(router, *manual, {});

    net::io_context ioc(static_cast<int>(cfg.threads));
    http::server server(
        ioc,
        http::server_options{cfg.listen, cfg.body_limit, 16 * 1024, cfg.read_timeout, cfg.idle_timeout},
        http::synchronous(router),
        [&router](std::string_view method, std::string_view target) { return router.route_of(method, target); },
        [&m](std::string_view method, std::string_view target, const http::response& res, double seconds,
             std::size_t bytes) {
            m.observe_request(method, res.route, res.status, seconds);
            log_request(method, target, res.route, res.status, seconds, bytes, res.internal_error);
        });

    std::uint16_t port = 0;
    try {
        port = server.start();
    } catch (const std::exception& e) {
        std::cerr << "mqledger serve: " << e.what() << "\n";
        log_line(log_level::error, "cannot listen", {{"error", e.what()}});
        return 1;
    }
    log_line(log_level::info, "listening",
             {{"host", cfg.listen.host}, {"port", std::int64_t{port}}, {"threads", std::int64_t{cfg.threads}},
              {"clock", manual ? "manual" : "system"}, {"now", codec::format_time(now_source.now())},
              {"auth", tokens ? "tokens" : "off"}, {"version", version()}});

    // Set once shutdown begins: a completion already queued when cancel() runs must not re-arm
    // its timer or signal wait, or the event loop would never run out of work.
    std::atomic<bool> shutting_down{false};

    // SIGHUP reloads the tokens (and must never kill the daemon, its default action).
    net::signal_set hup(ioc, SIGHUP);
    std::function<void()> arm_hup = [&] {
        hup.async_wait([&](const boost::system::error_code& ec, int) {
            if (ec || shutting_down) return;
            if (!tokens) {
                log_line(log_level::info, "SIGHUP: nothing to reload (no tokens file)");
            } else {
                try {
                    tokens->reload();
                    log_line(log_level::info, "tokens reloaded", {{"tokens", static_cast<std::int64_t>(tokens->size())}});
                } catch (const std::exception& e) {
                    log_line(log_level::error, "tokens not reloaded; the previous ones stay in force", {{"error", e.what()}});
                }
            }
            arm_hup();
        });
    };
    arm_hup();

    net::steady_timer watchdog(ioc);
    const auto watchdog_period = systemd::watchdog_period();
    std::function<void()> arm_watchdog = [&] {
        systemd::notify_watchdog();
        watchdog.expires_after(*watchdog_period);
        watchdog.async_wait([&](const boost::system::error_code& ec) {
            if (!ec && !shutting_down) arm_watchdog();
        });
    };
    if (watchdog_period) arm_watchdog();

    // Graceful shutdown: stop accepting, let in-flight requests finish for at most
    // --shutdown-timeout, then leave the event loop.
    net::signal_set stop_signals(ioc, SIGINT, SIGTERM);
    net::steady_timer deadline(ioc);
    stop_signals.async_wait([&](const boost::system::error_code& ec, int signo) {
        if (ec) return;
        shutting_down = true;
        log_line(log_level::info, "stopping", {{"signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"},
                                               {"connections", static_cast<std::int64_t>(server.connections())}});
        systemd::notify_stopping();
        hup.cancel();
        watchdog.cancel();
        deadline.expires_after(cfg.shutdown_timeout);
        deadline.async_wait([&](const boost::system::error_code& dec) {
            if (dec) return;
            log_line(log_level::warn, "in-flight requests did not finish in time; stopping anyway");
            ioc.stop();
        });
        server.stop([&] { deadline.cancel(); });
    });

    readiness.start();

    std::vector<std::thread> pool;
    for (unsigned i = 1; i < cfg.threads; ++i) pool.emplace_back([&ioc] { run_loop(ioc); });
    run_loop(ioc);
    for (auto& t : pool) t.join();

    readiness.stop();
    log_line(log_level::info, "stopped");
    return 0;
}

} // namespace mqledger
