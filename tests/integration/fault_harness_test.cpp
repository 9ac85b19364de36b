// A seeded fault-injection harness for the write path (issue 13): two engines, each with its own
// event store, read pool and state cache, share one real database, as two daemons do. Random
// commands go to either engine while the stores are made to fail:
//   - a connection dropped before a batch begins, or before its rows and COMMIT are sent
//     (nothing written);
//   - a serialization failure answered to the rows and COMMIT (nothing written);
//   - a connection lost right after COMMIT (written, but the caller is told the outcome is
//     unknown);
//   - latency inside a batch; and every database session killed (pg_terminate_backend).
// The client does what the API asks of one: it retries a command answered 503 with the same
// Idempotency-Key. After every step the harness checks that
//   - every acknowledged command is in the ledger exactly once (by its idempotency key);
//   - no unit was written from a state other than the log's (each stream a written unit read,
//     at the version it read, has exactly that many events before the unit): no stale cache
//     entry ever decided anything that got written;
// and, every few steps and at the end, that `verify` passes: the chain, every unit decided again
// from the log, and the projections equal to a rebuild.
//
// The steps and the faults are drawn from one seed, and run one at a time, so a seed replays its
// run: MQLEDGER_FAULT_SEED=<seed> MQLEDGER_FAULT_STEPS=<n> build/tests/integration_tests
// "[faults]". MQLEDGER_FAULT_SEEDS=<count> runs more seeds (the documented longer run).
#include "tests/integration/pg_fixture.h"

#include "daemon/db_pool.h"
#include "daemon/engine.h"
#include "ledger/clock.h"
#include "ledger/codec.h"
#include "ledger/store/event_store.h"
#include "ledger/store/verify.h"
#include "projections/conformance.h"
#include "projections/projector.h"
#include "projections/queries.h"
#include "projections/rebuild.h"

#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>

using namespace mqledger;
using namespace mqledger::test;
namespace cmd = mqledger::commands;

namespace {

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

// The faults of one store, drawn from the run's seed (the steps run one at a time, so the
// writer threads draw in a fixed order).
struct fault_source {
    std::mutex m;
    std::mt19937_64 rng;
    bool enabled = true;
    std::map<std::string, int> injected;

    explicit fault_source(std::uint64_t seed) : rng(seed) {}

    void operator()(store::fault_point p) {
        std::unique_lock lock(m);
        if (!enabled) return;
        const auto r = std::uniform_int_distribution<int>(0, 99)(rng);
        const auto delay = std::uniform_int_distribution<int>(1, 5)(rng);
        switch (p) {
        case store::fault_point::before_begin:
            if (r < 5) {
                ++injected["drop before begin"];
                throw pqxx::broken_connection("injected: connection dropped before BEGIN");
            }
            break;
        case store::fault_point::before_commit:
            if (r < 5) {
                ++injected["drop before commit"];
                throw pqxx::broken_connection("injected: connection dropped before COMMIT");
            }
            if (r < 10) {
                ++injected["serialization failure"];
                throw pqxx::serialization_failure("injected: could not serialize access");
            }
            if (r < 20) {
                ++injected["latency"];
                lock.unlock();
                std::this_thread::sleep_for(std::chrono::milliseconds(delay));
            }
            break;
        case store::fault_point::after_commit:
            if (r < 8) {
                ++injected["lost after commit"];
                throw pqxx::broken_connection("injected: connection lost after COMMIT");
            }
            break;
        }
    }
};

// One "daemon": a store with faults, a read pool and an engine with a small cache (so entries
// are also evicted), on the shared database and the shared clock.
struct node {
    const policy_registry& policies;
    projections::projector projector;
    std::shared_ptr<fault_source> faults;
    store::event_store store;
    db_pool reads;
    engine eng;

    node(const std::string& url, const mqledger::clock& clk, const policy_registry& p, std::uint64_t seed,
         engine_hooks hooks)
        : policies(p), projector(p), faults(std::make_shared<fault_source>(seed)),
          store(url, clk, options(projector, faults)), reads(url, 2, &engine::prepare),
          eng(reads, store, p, clk, std::move(hooks), 16) {}

    static store::store_options options(const projections::projector& proj, std::shared_ptr<fault_source> f) {
        store::store_options o;
        o.observer = proj.observer();
        o.sets = projections::set_reader();
        o.fault = [f](store::fault_point p) { (*f)(p); };
        return o;
    }
};

// verify: the chain, every unit decided again from the log under `policies`, and the projections
// equal to a rebuild.
void require_verified(const scratch_db& db, const policy_registry& policies) {
    const auto chain = store::verify_chain(db.admin_url());
    INFO("chain: " << chain.reason);
    REQUIRE(chain.ok);
    pqxx::connection c(db.admin_url());
    const auto conf = projections::check_conformance(c, policies);
    INFO("conformance at " << conf.bad_position.value_or(0) << ": " << conf.reason);
    REQUIRE(!conf.bad_position);
    const auto diff = projections::compare(db.admin_url(), policies);
    INFO("projections differ: " << (diff ? diff->table + " " + diff->side + " " + diff->row : ""));
    REQUIRE(!diff);
}

struct acknowledged {
    std::string key;
    std::string what;
};

void run_seed(std::uint64_t seed, int steps) {
    INFO("fault harness seed " << seed << " (replay: MQLEDGER_FAULT_SEED=" << seed << " MQLEDGER_FAULT_STEPS=" << steps
                               << " build/tests/integration_tests \"[faults]\")");
    scratch_db db;
    const policy_registry policies;
    manual_clock clk(time_point(std::chrono::seconds(1773381600)));   // 2026-03-13 06:00Z

    // Units written, with the versions they read: checked against the log after each step.
    std::mutex written_mutex;
    std::vector<std::pair<std::map<std::string, std::int64_t>, std::int64_t>> written;   // reads, first position
    engine_hooks hooks;
    hooks.unit_written = [&](const unit_outcome& o, const std::vector<store::recorded_event>& events) {
        if (events.empty()) return;
        std::lock_guard lock(written_mutex);
        written.emplace_back(o.read_versions, events.front().position);
    };
    node a(db.app_url(), clk, policies, seed * 2 + 1, hooks);
    node b(db.app_url(), clk, policies, seed * 2 + 2, hooks);
    std::mt19937_64 rng(seed);
    const auto pick = [&](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };

    std::vector<acknowledged> acks;
    int key_counter = 0;
    int gave_up = 0;
    // A client: the same key until the answer is not 503 (at most 20 tries).
    const auto send = [&](bool account, const std::string& id, const cmd::command& c, const std::string& what) {
        request_meta meta;
        meta.actor = "harness";
        meta.idempotency_key = "k-" + std::to_string(seed) + "-" + std::to_string(++key_counter);
        meta.fingerprint = what + " " + id;
        for (int attempt = 0; attempt < 20; ++attempt) {
            auto& n = pick(2) == 0 ? a : b;   // a retry may reach the other daemon
            const auto o = account ? n.eng.execute_account(id, c, meta) : n.eng.execute_instance(id, c, meta);
            if (o.kind == outcome_kind::unavailable || o.kind == outcome_kind::overloaded) continue;
            REQUIRE(o.kind != outcome_kind::internal);
            REQUIRE(o.kind != outcome_kind::idempotency_mismatch);
            if (o.kind == outcome_kind::ok && (!o.written.empty() || o.replayed)) acks.push_back({*meta.idempotency_key, what});
            return;
        }
        ++gave_up;
    };

    pqxx::connection check(db.admin_url());
    const auto verify_all = [&] { require_verified(db, policies); };

    const std::vector<std::string> accounts{"acc-1", "acc-2"};
    std::vector<std::string> instances;
    for (const auto& acc : accounts) {
        send(true, acc, cmd::open_account{"CNY"}, "open");
        send(true, acc, cmd::add_funds{5000, "seed"}, "funds");
    }
    for (int step = 0; step < steps; ++step) {
        INFO("step " << step);
        const int what = pick(100);
        if (what < 12 || instances.size() < 2) {
            const std::string id = "i-" + std::to_string(instances.size() + 1);
            cmd::purchase p;
            p.instance_id = id;
            p.account_id = accounts[static_cast<std::size_t>(pick(2))];
            p.prod = product::kafka;
            p.bill = billing::payg;
            p.timezone = pick(2) == 0 ? "Asia/Kolkata" : "Europe/Berlin";
            p.rate = price{price::unit::hourly, 40 + 10 * pick(5)};
            send(false, id, p, "purchase");
            instances.push_back(id);
        } else if (what < 25) {
            send(false, instances[static_cast<std::size_t>(pick(static_cast<int>(instances.size())))], cmd::deploy{}, "deploy");
        } else if (what < 50) {
            send(false, instances[static_cast<std::size_t>(pick(static_cast<int>(instances.size())))],
                 cmd::create_topic{"t" + std::to_string(step)}, "topic");
        } else if (what < 58) {
            send(false, instances[static_cast<std::size_t>(pick(static_cast<int>(instances.size())))], cmd::stop{}, "stop");
        } else if (what < 66) {
            send(false, instances[static_cast<std::size_t>(pick(static_cast<int>(instances.size())))], cmd::enable{}, "enable");
        } else if (what < 78) {
            send(true, accounts[static_cast<std::size_t>(pick(2))], cmd::add_funds{100 * (1 + pick(30)), "pay"}, "funds");
        } else if (what < 93) {
            // Time passes; one of the daemons fires what is due (hourly bills, debt, releases).
            clk.advance_to(clk.now() + std::chrono::minutes(20 + 20 * pick(9)));
            auto& n = pick(2) == 0 ? a : b;
            for (int attempt = 0; attempt < 20; ++attempt) {
                try {
                    (void)n.eng.fire_due(clk.now());
                    break;
                } catch (const store::store_unavailable&) {
                } catch (const pqxx::broken_connection&) {
                }
            }
        } else {
            // Every session of the database is killed: pools and writers reconnect.
            pqxx::nontransaction tx(check);
            tx.exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid()");
        }

        // Every acknowledged command is in the ledger exactly once.
        {
            pqxx::nontransaction tx(check);
            for (const auto& ack : acks) {
                INFO(ack.what << " " << ack.key);
                REQUIRE(tx.exec_params("SELECT count(*) FROM events WHERE idempotency_key = $1", ack.key)[0][0]
                            .as<std::int64_t>() == 1);
            }
            // Every written unit read each stream at the version the log had right before it.
            std::lock_guard lock(written_mutex);
            for (const auto& [reads, first] : written)
                for (const auto& [stream, version] : reads) {
                    INFO("unit at position " << first << " read " << stream << " at version " << version);
                    REQUIRE(tx.exec_params("SELECT count(*) FROM events WHERE stream = $1 AND position < $2", stream, first)[0][0]
                                .as<std::int64_t>() == version);
                }
            written.clear();
        }
        if (step % 50 == 49) verify_all();
    }
    for (auto* n : {&a, &b}) {
        std::lock_guard lock(n->faults->m);
        n->faults->enabled = false;
    }
    verify_all();
    std::map<std::string, int> injected;
    for (auto* n : {&a, &b})
        for (const auto& [k, v] : n->faults->injected) injected[k] += v;
    std::string summary;
    for (const auto& [k, v] : injected) summary += k + ": " + std::to_string(v) + "; ";
    WARN("seed " << seed << ": " << acks.size() << " commands acknowledged, " << gave_up << " given up; injected " << summary);
    CHECK(acks.size() > static_cast<std::size_t>(steps) / 3);
    CHECK(injected["lost after commit"] > 0);
}

} // namespace

TEST_CASE("faults: two engines on one database under injected failures, every acknowledged command is written "
          "once, no stale cache decides, verify passes (API.md Idempotency-Key, DESIGN.md reliability)",
          "[faults]") {
    const auto steps = static_cast<int>(env_or("MQLEDGER_FAULT_STEPS", 300));
    if (const char* s = std::getenv("MQLEDGER_FAULT_SEED"); s != nullptr && *s != '\0') {
        run_seed(std::strtoull(s, nullptr, 10), steps);
        return;
    }
    const auto seeds = env_or("MQLEDGER_FAULT_SEEDS", 3);
    for (std::uint64_t seed = 1; seed <= seeds; ++seed) run_seed(seed, steps);
}

namespace {

// Holds a store's writer before its next batch begins, once armed, until released.
struct writer_gate {
    std::mutex m;
    std::condition_variable cv;
    bool armed = false, holding = false, released = false;

    void operator()(store::fault_point p) {
        if (p != store::fault_point::before_begin) return;
        std::unique_lock lock(m);
        if (!armed) return;
        armed = false;
        holding = true;
        cv.notify_all();
        cv.wait(lock, [&] { return released; });
    }
    void wait_holding() {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return holding; });
    }
    void release() {
        std::lock_guard lock(m);
        released = true;
        cv.notify_all();
    }
};

time_point at(const char* iso) { return *codec::parse_time(iso); }

// A Kafka pay-as-you-go instance of account "acc" in UTC, 100 an hour.
cmd::purchase kafka_payg(const std::string& id) {
    cmd::purchase p;
    p.instance_id = id;
    p.account_id = "acc";
    p.prod = product::kafka;
    p.bill = billing::payg;
    p.timezone = "UTC";
    p.rate = price{price::unit::hourly, 100};
    return p;
}

} // namespace

TEST_CASE("faults: an instance that comes due on another engine while a unit of its account waits to be written "
          "makes that unit a conflict, decided again with it (RULES.md Time-driven events, due order across the "
          "account's instances)",
          "[faults]") {
    scratch_db db;
    const policy_registry policies;
    // Two daemons whose clocks disagree by an hour: B's lags A's.
    manual_clock clk_a(at("2026-01-05T00:00:00Z")), clk_b(at("2026-01-05T00:00:00Z"));
    writer_gate gate;
    projections::projector proj_a(policies), proj_b(policies);
    store::store_options oa, ob;
    oa.observer = proj_a.observer();
    ob.observer = proj_b.observer();
    oa.sets = ob.sets = projections::set_reader();
    oa.fault = [&gate](store::fault_point p) { gate(p); };
    store::event_store store_a(db.app_url(), clk_a, oa), store_b(db.app_url(), clk_b, ob);
    db_pool reads_a(db.app_url(), 2, &engine::prepare), reads_b(db.app_url(), 2, &engine::prepare);
    engine a(reads_a, store_a, policies, clk_a, {}, 16), b(reads_b, store_b, policies, clk_b, {}, 16);
    const request_meta meta{"test", {}, {}, {}, {}};
    REQUIRE(a.execute_account("acc", cmd::open_account{"CNY"}, meta).kind == outcome_kind::ok);
    REQUIRE(a.execute_account("acc", cmd::add_funds{100000, "seed"}, meta).kind == outcome_kind::ok);
    REQUIRE(a.execute_instance("i-y", kafka_payg("i-y"), meta).kind == outcome_kind::ok);
    REQUIRE(a.execute_instance("i-y", cmd::deploy{}, meta).kind == outcome_kind::ok);

    // A, at 01:30, decides a topic command on i-y: its unit first bills i-y's hour due at 01:00.
    // Its append waits before the batch begins.
    clk_a.advance_to(at("2026-01-05T01:30:00Z"));
    clk_b.advance_to(at("2026-01-05T00:30:00Z"));
    gate.armed = true;
    command_outcome topic;
    std::thread t([&] { topic = a.execute_instance("i-y", cmd::create_topic{"orders"}, meta); });
    gate.wait_holding();
    // Meanwhile B, at 00:30, creates and deploys i-x on the same account: its first hour is due at
    // 01:00 too, before A's unit's time. Neither touches a stream A's unit read.
    REQUIRE(b.execute_instance("i-x", kafka_payg("i-x"), meta).kind == outcome_kind::ok);
    REQUIRE(b.execute_instance("i-x", cmd::deploy{}, meta).kind == outcome_kind::ok);
    gate.release();
    t.join();
    REQUIRE(topic.kind == outcome_kind::ok);

    // A's written unit bills both hours, in due order (01:00, then instance id: i-x before i-y).
    std::vector<std::string> settled;
    for (const auto& e : topic.written)
        if (e.type == "instance.settled") settled.push_back(e.stream);
    CHECK(settled == std::vector<std::string>{"instance-i-x", "instance-i-y"});

    require_verified(db, policies);
}

TEST_CASE("policy at run time: a daemon that has not adopted the newest table yet writes an instance's timers "
          "from its own decision, so the projections stay those of the log (docs/rules.md run-time policy)",
          "[faults]") {
    scratch_db db;
    manual_clock clk(at("2026-01-05T00:00:00Z"));
    // Daemon A holds version 2 (Kafka pay-as-you-go bills 2 hours after each hour); daemon B
    // has not read it from the log yet.
    policy_registry newer, older;
    std::string error;
    auto v2 = newer.current().with_overrides(boost::json::parse(R"({"kafka/payg": {"issue_delay_hours": 2}})"), error);
    REQUIRE(v2);
    v2->set_version(newer.current().version() + 1);
    newer.add(*v2);
    projections::projector proj_a(newer), proj_b(older);
    store::store_options oa, ob;
    oa.observer = proj_a.observer();
    ob.observer = proj_b.observer();
    oa.sets = ob.sets = projections::set_reader();
    store::event_store store_a(db.app_url(), clk, oa), store_b(db.app_url(), clk, ob);
    db_pool reads_a(db.app_url(), 2, &engine::prepare), reads_b(db.app_url(), 2, &engine::prepare);
    engine a(reads_a, store_a, newer, clk, {}, 16), b(reads_b, store_b, older, clk, {}, 16);
    {
        store::append_request req;
        req.streams.push_back({projections::policy_stream, 0,
                               {store::new_event{projections::policy_changed_type, projections::policy_changed_data(*v2), clk.now()}}});
        req.metadata["actor"] = "policy";
        req.metadata["policy_version"] = v2->version();
        REQUIRE(store_a.append(std::move(req)).ok());
    }
    const request_meta meta{"test", {}, {}, {}, {}};
    REQUIRE(a.execute_account("acc", cmd::open_account{"CNY"}, meta).kind == outcome_kind::ok);
    REQUIRE(a.execute_account("acc", cmd::add_funds{100000, "seed"}, meta).kind == outcome_kind::ok);
    REQUIRE(a.execute_instance("i-1", kafka_payg("i-1"), meta).kind == outcome_kind::ok);
    clk.advance_to(at("2026-01-05T00:10:00Z"));
    REQUIRE(a.execute_instance("i-1", cmd::deploy{}, meta).kind == outcome_kind::ok);   // decided under version 2
    clk.advance_to(at("2026-01-05T00:20:00Z"));
    REQUIRE(b.execute_instance("i-1", cmd::create_topic{"orders"}, meta).kind == outcome_kind::ok);   // under 1

    // The log says version 1 decided last: the timers of the table B used, not A's.
    require_verified(db, newer);
}
