#include "daemon/serve.h"

#include "daemon/auth.h"
#include "daemon/db_pool.h"
#include "daemon/engine.h"
#include "daemon/timer_service.h"
#include "daemon/transparency.h"
#include "daemon/http_server.h"
#include "daemon/logging.h"
#include "daemon/metrics.h"
#include "daemon/policy_service.h"
#include "daemon/readiness.h"
#include "daemon/router.h"
#include "daemon/routes.h"
#include "daemon/systemd_notify.h"
#include "ledger/codec.h"
#include "daemon/version.h"

#include "ledger/clock.h"
#include "ledger/store/conninfo.h"
#include "ledger/store/checkpoint.h"
#include "ledger/store/digest.h"
#include "ledger/store/tree_store.h"
#include "ledger/store/event_store.h"
#include "ledger/store/migrate.h"
#include "projections/projector.h"
#include "projections/queries.h"
#include "projections/rebuild.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>

#include <atomic>
#include <csignal>
#include <fstream>
#include <iterator>
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
        [url = store::for_daemon(cfg.database_url)] { return store::check_ready(url); },
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

    // Digests (issue 5): signed with the configured Ed25519 key, if any.
    std::unique_ptr<store::digest_signer> signer;
    if (!cfg.digest_key_file.empty()) {
        try {
            std::ifstream in(cfg.digest_key_file);
            if (!in) throw store::digest_error("cannot read " + cfg.digest_key_file);
            const std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            signer = std::make_unique<store::digest_signer>(pem);
        } catch (const store::digest_error& e) {
            std::cerr << "mqledger serve: --digest-key: " << e.what() << "\n";
            return 2;
        }
    }

    // The Merkle tree and its checkpoints (issue 14), signed with the same key as the digests.
    transparency::options topts;
    topts.database_url = store::for_daemon(cfg.database_url);
    topts.origin = cfg.checkpoint_origin;
    try {
        const auto read_pem = [](const std::string& path) {
            std::ifstream in(path);
            if (!in) throw checkpoint::key_error("cannot read " + path);
            return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        };
        if (!cfg.digest_key_file.empty()) topts.key = checkpoint::private_key::from_pem(read_pem(cfg.digest_key_file));
        for (const auto& [name, file] : cfg.witness_keys)
            topts.witnesses.emplace_back(name, checkpoint::public_key::from_pem(read_pem(file)));
    } catch (const checkpoint::key_error& e) {
        std::cerr << "mqledger serve: --digest-key / --witness-key: " << e.what() << "\n";
        return 2;
    }
    transparency tree(std::move(topts), now_source);

    // The ledger: one writer (group commit) whose batches update the projections in the same
    // transaction, a read pool, and the engine that decides between them.
    policy_registry policies;   // versions are added (policy_service), never changed
    const projections::projector projector(policies);
    store::store_options store_opts;
    store_opts.observer = projector.observer();
    store_opts.sets = projections::set_reader();
    store_opts.max_queued_events = cfg.queue_events;
    store_opts.max_queued_bytes = cfg.queue_bytes;
    store::event_store store(cfg.database_url, now_source, std::move(store_opts));
    db_pool reads(cfg.database_url, cfg.db_connections, &engine::prepare);
    // The policy table in force (issue 15): nothing is decided before the log's versions are known.
    policy_service pol(policies, store, reads, now_source, cfg.policy_file);
    timer_service* timers_ptr = nullptr;
    engine eng(reads, store, policies, now_source,
               engine_hooks{
                   [&m](const std::vector<store::recorded_event>& written, double seconds) {
                       std::vector<std::pair<std::string, std::string>> types;
                       types.reserve(written.size());
                       for (const auto& e : written) {
                           std::string cause;
                           if (e.type == "instance.released")
                               if (const auto* c = e.data.if_contains("cause"); c && c->is_string())
                                   cause = std::string(c->get_string());
                           types.emplace_back(e.type, std::move(cause));
                       }
                       m.observe_append(types, seconds);
                   },
                   [&m](const std::string& id, timer_kind kind, time_point due, duration late) {
                       const double late_s = std::chrono::duration<double>(late).count();
                       m.observe_timer(to_string(kind), late_s);
                       log_line(log_level::info, "timer fired",
                                {{"instance", id}, {"timer", to_string(kind)}, {"due_at", codec::format_time(due)},
                                 {"late_seconds", late_s}});
                   },
                   [&timers_ptr](time_point due) {
                       if (timers_ptr) timers_ptr->notify(due);
                   },
                   // Usage recorded and billed (issue 15): counted where the append happens, so
                   // summed over daemons each append counts once.
                   [&m](const unit_outcome& o, const std::vector<store::recorded_event>&) { m.observe_unit(o); },
                   [&pol] { return pol.loaded(); }},
               cfg.state_cache);
    // Under the system clock several daemons may share the database: one leads the timers. A
    // manual clock is one daemon's private time, so it fires for itself (POST /v1/clock).
    timer_service timers(eng, now_source, !manual,
                         manual ? nullptr : std::make_unique<leader_lock>(cfg.database_url),
                         [&m](bool leading) { m.set_timer_leader(leading); });
    m.set_timer_leader(manual != nullptr);
    timers_ptr = &timers;

    // The policy table in force (issue 15): a bad --policy file stops the start; an unreachable
    // database only delays the loading (retried below). Until it is loaded, commands answer 503,
    // timers wait (engine_hooks.ready) and /readyz is 503.
    try {
        (void)pol.read_file();
    } catch (const policy_file_error& e) {
        std::cerr << "mqledger serve: " << e.what() << "\n";
        return 2;
    }
    const auto apply_policy = [&pol, &m](const char* when) {
        try {
            const auto o = pol.apply();
            m.set_policy_version(o.version);
            log_line(log_level::info, o.changed ? "policy changed" : "policy in force",
                     {{"policy_version", static_cast<std::int64_t>(o.version)}, {"hash", o.hash}, {"when", when}});
            return true;
        } catch (const policy_file_error& e) {
            log_line(log_level::error, "policy not reloaded; the table in force stays", {{"error", e.what()}});
            return pol.loaded();   // before the first load: retried until the file is fixed
        } catch (const std::exception& e) {
            log_line(log_level::warn, "policy not loaded yet (database)", {{"error", e.what()}});
            return false;
        }
    };
    bool policy_pending = !apply_policy("start");

    m.declare_witnesses(tree.witness_names());
    m.on_scrape([&reads, &now_source, &m, &eng, &store, &tree] {
        {
            const auto c = eng.cache().statistics();
            const auto [events, bytes] = store.queued();
            m.set_runtime_figures({c.hits, c.misses, c.entries, eng.cache().capacity(), events, bytes});
        }
        try {
            reads.with([&](pqxx::connection& c) {
                pqxx::nontransaction tx(c);
                metrics::transparency_figures t;
                t.tree_size = store::tree_size(tx);
                const auto cp = store::latest_checkpoint(tx);
                if (cp) {
                    t.checkpoint_size = cp->tree_size;
                    t.checkpoint_age_seconds = std::chrono::duration<double>(now_source.now() - cp->created_at).count();
                }
                if (cp) t.cosigned = tree.cosigned(*cp);
                else
                    for (const auto& w : tree.witness_names()) t.cosigned.emplace_back(w, false);
                m.set_transparency_figures(t);
                const auto figures = projections::read_figures(tx, now_source.now());
                metrics::projection_figures f;
                for (const auto& [product, billing, state, n] : figures.instances) f.instances.push_back({product, billing, state, n});
                f.timers_pending = figures.timers_pending;
                f.releases_next_24h = figures.releases_next_24h;
                f.releases_next_7d = figures.releases_next_7d;
                f.accounts_overdue = figures.accounts_overdue;
                f.head_position = figures.head_position;
                m.set_projection_figures(f);
            });
        } catch (const std::exception& e) {
            // The projection gauges keep their last values; mqledger_database_up says why.
            log_line(log_level::debug, "metrics: projection figures not refreshed", {{"error", e.what()}});
        }
    });

    net::thread_pool workers(cfg.workers);
    const run_blocking_fn run_on_workers = [&workers](std::function<void()> job) { net::post(workers, std::move(job)); };
    http::router router(tokens.get());
    add_ops_routes(router, readiness, m, [&timers, &pol] { return timers.caught_up() && pol.loaded(); }, run_on_workers);
    add_policy_routes(router, policies, run_on_workers);
    add_api_routes(router, eng, reads, run_on_workers, now_source, signer.get(), &tree.tiles());
    add_transparency_routes(router, tree, reads, run_on_workers, m);
    add_docs_routes(router);
    if (manual)
        add_clock_routes(
            router, *manual,
            [&eng, &now_source, &tree](time_point up_to) -> std::size_t {
                try {
                    const auto fired = eng.fire_due(up_to);
                    // Every clock move also extends the tree and signs a checkpoint, so tests
                    // that move the clock see a checkpoint of everything written so far.
                    tree.tick();
                    return fired;
                } catch (const std::exception& e) {
                    log_line(log_level::warn, "timers not fired", {{"error", e.what()}});
                    throw http::api_error(503, "unavailable",
                                          "the clock is now " + codec::format_time(now_source.now()) +
                                              " but the timers due by then could not all fire (database "
                                              "unavailable); they fire with the next clock move once it is back");
                }
            },
            run_on_workers);

    net::io_context ioc(static_cast<int>(cfg.threads));
    http::server server(
        ioc,
        http::server_options{cfg.listen, cfg.body_limit, 16 * 1024, cfg.read_timeout, cfg.idle_timeout},
        http::routed(router),
        [&router](std::string_view method, std::string_view target) { return router.route_of(method, target); },
        [&m](std::string_view method, std::string_view target, const http::response& res, double seconds,
             std::size_t bytes) {
            m.observe_request(method, res.route, res.status, seconds);
            log_request(method, target, res.route, res.status, seconds, bytes, res.internal_error);
        });

    // Projections behind the log (a migration emptied them to change their shape, or rows were
    // appended without the projector) are rebuilt before the first request, as `mqledger
    // rebuild` does; commands decided on stale rows would only meet version conflicts.
    try {
        if (const auto l = projections::behind(store::for_daemon(cfg.database_url))) {
            log_line(log_level::warn, "projections are behind the log; rebuilding them",
                     {{"checkpoint", l->checkpoint}, {"head", l->head}});
            const auto r = projections::rebuild(store::for_daemon(cfg.database_url), policies);
            log_line(log_level::info, "projections rebuilt",
                     {{"position", r.position}, {"instances", static_cast<std::int64_t>(r.instances)},
                      {"accounts", static_cast<std::int64_t>(r.accounts)}});
        }
    } catch (const std::exception& e) {
        // Unreachable or not migrated yet: readiness reports it; the next start checks again.
        log_line(log_level::warn, "projections not checked against the log", {{"error", e.what()}});
    }

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
    // Set when --shutdown-timeout expired: queued commands nobody waits for any more are dropped
    // (nothing written for them) instead of run.
    std::atomic<bool> gave_up{false};

    // SIGHUP reloads the tokens (and must never kill the daemon, its default action).
    net::signal_set hup(ioc, SIGHUP);
    std::function<void()> arm_hup = [&] {
        hup.async_wait([&](const boost::system::error_code& ec, int) {
            if (ec || shutting_down) return;
            net::post(workers, [&apply_policy] { (void)apply_policy("SIGHUP"); });
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

    // Every second: until the policy stream could be read (the database was unreachable at
    // start), load it; afterwards adopt the versions other daemons on the ledger appended, so a
    // state written under a newer version is never judged by an older table here.
    net::steady_timer policy_retry(ioc);
    std::atomic<bool> policy_loaded_once{!policy_pending};
    std::function<void()> arm_policy_retry = [&] {
        policy_retry.expires_after(std::chrono::seconds(1));
        policy_retry.async_wait([&](const boost::system::error_code& ec) {
            if (ec || shutting_down) return;
            net::post(workers, [&] {
                if (!policy_loaded_once) {
                    policy_loaded_once = apply_policy("retry");
                } else {
                    try {
                        const auto before = policies.current().version();
                        const auto now_in_force = pol.refresh();
                        if (now_in_force != before) {
                            m.set_policy_version(now_in_force);
                            log_line(log_level::info, "policy version adopted from the log",
                                     {{"policy_version", static_cast<std::int64_t>(now_in_force)}});
                        }
                    } catch (const std::exception& e) {
                        log_line(log_level::debug, "policy versions not refreshed", {{"error", e.what()}});
                    }
                }
                net::post(ioc, [&] { if (!shutting_down) arm_policy_retry(); });
            });
        });
    };
    arm_policy_retry();

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

    // A digest line (position, hash, signature) in the log every --digest-interval, for auditors
    // who keep digests outside the database.
    net::steady_timer digest_timer(ioc);
    std::function<void()> arm_digest = [&] {
        digest_timer.expires_after(cfg.digest_interval);
        digest_timer.async_wait([&](const boost::system::error_code& ec) {
            if (ec || shutting_down) return;
            net::post(workers, [&] {
                try {
                    const auto h = reads.with([](pqxx::connection& c) {
                        pqxx::read_transaction tx(c);
                        return store::head(tx);
                    });
                    store::digest d{h.position, h.hash, std::nullopt};
                    if (signer) d.signature = signer->sign(h.position, h.hash);
                    log_line(log_level::info, "ledger digest",
                             {{"position", h.position}, {"hash", h.hash}, {"digest", store::to_string(d)}});
                } catch (const std::exception& e) {
                    log_line(log_level::warn, "ledger digest not taken", {{"error", e.what()}});
                }
            });
            arm_digest();
        });
    };
    arm_digest();

    // The Merkle tree is extended, and a checkpoint signed, every --checkpoint-interval.
    net::steady_timer checkpoint_timer(ioc);
    std::atomic<bool> tick_running{false};
    std::function<void()> arm_checkpoint = [&] {
        checkpoint_timer.expires_after(cfg.checkpoint_interval);
        checkpoint_timer.async_wait([&](const boost::system::error_code& ec) {
            if (ec || shutting_down) return;
            if (!tick_running.exchange(true))
                net::post(workers, [&] {
                    try {
                        (void)tree.tick();
                    } catch (const std::exception& e) {
                        log_line(log_level::warn, "Merkle tree not extended", {{"error", e.what()}});
                    }
                    tick_running = false;
                });
            arm_checkpoint();
        });
    };
    arm_checkpoint();

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
        policy_retry.cancel();
        digest_timer.cancel();
        checkpoint_timer.cancel();
        deadline.expires_after(cfg.shutdown_timeout);
        deadline.async_wait([&](const boost::system::error_code& dec) {
            if (dec) return;
            log_line(log_level::warn, "in-flight requests did not finish in time; stopping anyway");
            gave_up = true;
            ioc.stop();
        });
        server.stop([&] { deadline.cancel(); });
    });

    readiness.start();
    timers.start();
    // The first tick at once: a daemon started on a ledger without a tree (just migrated) builds it.
    tick_running = true;
    net::post(workers, [&] {
        try {
            (void)tree.tick();
        } catch (const std::exception& e) {
            log_line(log_level::warn, "Merkle tree not extended", {{"error", e.what()}});
        }
        tick_running = false;
    });

    std::vector<std::thread> pool;
    for (unsigned i = 1; i < cfg.threads; ++i) pool.emplace_back([&ioc] { run_loop(ioc); });
    run_loop(ioc);
    for (auto& t : pool) t.join();

    // Every request is answered; no new work can arrive. Stop firing, let the workers finish,
    // and the store (destroyed last) appends whatever is still queued.
    timers.stop();
    if (gave_up) workers.stop();   // jobs already running finish; queued ones never start
    workers.join();
    readiness.stop();
    log_line(log_level::info, "stopped");
    return 0;
}

} // namespace mqledger
