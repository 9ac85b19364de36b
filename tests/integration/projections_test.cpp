// Integration tests of the projections (DESIGN.md "Projections", "Timers"): the projector as the
// store's batch observer, rebuild and compare, as_of, and atomicity with the append.
#include "tests/integration/pg_fixture.h"
#include "tests/support/fleet.h"

#include "daemon/engine.h"

#include "ledger/clock.h"
#include "ledger/codec.h"
#include "ledger/decide.h"
#include "ledger/local_time.h"
#include "ledger/store/event_store.h"
#include "projections/as_of.h"
#include "projections/conformance.h"
#include "projections/projector.h"
#include "projections/rebuild.h"
#include "projections/snapshot.h"

#include <algorithm>
#include <atomic>
#include <thread>
#include <chrono>
#include <future>
#include <map>
#include <set>

using namespace mqledger;
using mqledger::test::scratch_db;
namespace cmd = mqledger::commands;
namespace proj = mqledger::projections;

namespace {

time_point local(std::string_view text) { return parse_local(text, find_zone("Asia/Shanghai")); }

// The tests' daemon (tests/support/fleet.h) with a real store: every unit the core decides is
// appended exactly as the engine appends it (`append_of`, the unit record in its metadata),
// through the store whose observer is the projector, so the projections can be checked against
// the fleet's own in-memory states.
struct world {
    policy_registry policies;
    proj::projector projector{policies};
    manual_clock clk{local("2025-11-23 09:00")};
    store::event_store store;
    test::fleet fleet{policies.current()};
    const std::map<std::string, instance_state>& instances = fleet.view.instances();
    const std::map<std::string, account_state>& accounts = fleet.view.accounts();
    std::vector<pending_event> history;

    explicit world(const std::string& url) : store(url, clk, store::observed_by(projector.observer())) {
        fleet.on_unit = [this](const test::logged_unit& u) {
            clk.advance_to(u.record.at);   // written when decided: recorded_at is the decision's time
            const auto res = store.append(append_of(u.outcome, u.record.command, u.record.at,
                                                    request_meta{"test", {}, {}, {}, {}}, u.policy));
            INFO(res.message);
            REQUIRE(res.ok());
            history.insert(history.end(), u.events.begin(), u.events.end());
        };
    }

    void run(const std::string& id, const cmd::command& c, time_point now) {
        const unit_command u = cmd::is_account_command(c) ? unit_command{account_command{"acc-1", c}}
                                                          : unit_command{instance_command{id, c}};
        const auto o = fleet.run(u, now);
        if (!o.ok()) FAIL("refused: " << o.refused->message);
    }
    const policy& pol(const instance_state& s) const { return policies.current().get(s.prod, s.bill); }

    /// The timer service up to `t`: each due instant in order, one unit per account.
    void fire_until(time_point t) { fleet.fire_until(t); }
};

cmd::purchase kafka_payg(std::string id) {
    cmd::purchase p;
    p.instance_id = std::move(id);
    p.account_id = "acc-1";
    p.prod = product::kafka;
    p.bill = billing::payg;
    p.timezone = "Asia/Shanghai";
    p.rate = price{price::unit::hourly, 120};
    return p;
}

// Opens acc-1, buys i-1 and i-2 (Kafka payg), deploys both, stops i-1 at 14:00 on day 1 and
// fires every timer up to i-1's release (08:00 on day 3).
void kafka_story(world& w) {
    w.run("", cmd::open_account{"CNY"}, local("2025-11-23 09:00"));
    w.run("", cmd::add_funds{100000, "wire-77"}, local("2025-11-23 09:01"));
    w.run("i-1", kafka_payg("i-1"), local("2025-11-23 09:10"));
    w.run("i-2", kafka_payg("i-2"), local("2025-11-23 09:20"));
    w.run("i-1", cmd::deploy{}, local("2025-11-23 09:30"));
    w.run("i-2", cmd::deploy{}, local("2025-11-23 09:40"));
    w.run("i-1", cmd::create_topic{"orders"}, local("2025-11-23 09:45"));
    w.fire_until(local("2025-11-23 14:00"));
    w.run("i-1", cmd::stop{}, local("2025-11-23 14:00"));
    w.fire_until(local("2025-11-25 08:00"));
}

std::vector<std::string> rows_of(const std::string& url, const std::string& sql) {
    pqxx::connection c(url);
    pqxx::read_transaction tx(c);
    std::vector<std::string> out;
    for (const auto& r : tx.exec(sql)) out.emplace_back(r[0].c_str());
    return out;
}

// Every projection table as sorted JSON rows.
std::vector<std::string> dump(const std::string& url) {
    std::vector<std::string> out;
    for (const char* t : {"instance_state", "timers", "accounts", "instance_counts", "projection_checkpoint"}) {
        auto rows = rows_of(url, std::string("SELECT to_jsonb(x)::text FROM ") + t + " x ORDER BY 1");
        out.push_back(std::string("-- ") + t);
        out.insert(out.end(), rows.begin(), rows.end());
    }
    return out;
}

} // namespace

TEST_CASE("projections: the projector's tables equal folding the streams in memory", "[projections]") {
    scratch_db db;
    world w(db.app_url());
    kafka_story(w);

    const auto& i1 = w.instances.at("i-1");
    REQUIRE(i1.current == state::released);
    REQUIRE(w.instances.at("i-2").current == state::running);

    pqxx::connection c(db.app_url());
    pqxx::read_transaction tx(c);
    for (const auto& [id, expected] : w.instances) {
        const auto r = tx.exec_params("SELECT snapshot::text, state, product, billing, account_id, version FROM instance_state "
                                      "WHERE instance_id = $1", id);
        REQUIRE(r.size() == 1);
        std::string error;
        const auto s = proj::decode_instance_snapshot(boost::json::parse(r[0][0].c_str()), error);
        INFO(error);
        REQUIRE(s);
        CHECK(*s == expected);
        CHECK(r[0][1].as<std::string>() == to_string(expected.current));
        CHECK(r[0][2].as<std::string>() == "kafka");
        CHECK(r[0][3].as<std::string>() == "payg");
        CHECK(r[0][4].as<std::string>() == "acc-1");
        CHECK(r[0][5].as<std::int64_t>() == expected.version);

        // Timers are exactly the core's deadlines of the folded state.
        std::set<std::pair<std::string, std::string>> want, got;
        for (const auto& t : deadlines(expected, w.pol(expected)))
            want.emplace(std::string(to_string(t.kind)), codec::format_time(t.due_at));
        for (const auto& row : tx.exec_params(
                 "SELECT kind, to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM timers "
                 "WHERE instance_id = $1", id))
            got.emplace(row[0].c_str(), row[1].c_str());
        CHECK(got == want);
    }
    // i-2 is running with hourly settlement pending; i-1 is released and has no timer left.
    CHECK(tx.exec("SELECT 1 FROM timers WHERE instance_id = 'i-1'").empty());
    CHECK_FALSE(tx.exec("SELECT 1 FROM timers WHERE instance_id = 'i-2' AND kind = 'settlement'").empty());

    const auto& acct = w.accounts.at("acc-1");
    const auto a = tx.exec("SELECT snapshot::text, balance, owed, currency FROM accounts WHERE account_id = 'acc-1'");
    REQUIRE(a.size() == 1);
    std::string error;
    const auto as = proj::decode_account_snapshot(boost::json::parse(a[0][0].c_str()), error);
    REQUIRE(as);
    CHECK(*as == acct);
    CHECK(a[0][1].as<std::int64_t>() == acct.balance);
    CHECK(a[0][2].as<std::int64_t>() == acct.owed());
    CHECK(a[0][3].as<std::string>() == "CNY");
    CHECK(acct.total_charged > 0); // the settlements were charged

    // Counts: what the fold says, and a GROUP BY over instance_state.
    const auto counts = rows_of(db.app_url(), "SELECT product || '/' || billing || '/' || state || '=' || count "
                                              "FROM instance_counts ORDER BY 1");
    CHECK(counts == std::vector<std::string>{"kafka/payg/released=1", "kafka/payg/running=1"});
    CHECK(counts == rows_of(db.app_url(), "SELECT product || '/' || billing || '/' || state || '=' || count(*) "
                                          "FROM instance_state GROUP BY product, billing, state ORDER BY 1"));
    const auto head = store::head(tx);
    CHECK(tx.exec("SELECT position FROM projection_checkpoint WHERE name = 'projections'")[0][0].as<std::int64_t>() ==
          head.position);
}

TEST_CASE("projections: timers are written as differences (a moved settlement, a stop's release, a restore, a "
          "release that drops them) and stay equal to a rebuild and to every instance's deadlines",
          "[projections]") {
    scratch_db db;
    world w(db.app_url());
    w.run("", cmd::open_account{"CNY"}, local("2025-11-23 09:00"));
    w.run("", cmd::add_funds{2000, "wire"}, local("2025-11-23 09:00"));
    w.run("i-1", kafka_payg("i-1"), local("2025-11-23 09:00"));
    w.run("i-1", cmd::deploy{}, local("2025-11-23 09:00"));
    auto r = kafka_payg("r-1");
    r.prod = product::rocketmq;
    r.config = instance_config{"standard", "cluster", 1000, false, 0};
    w.run("r-1", r, local("2025-11-23 09:00"));
    w.run("i-1", cmd::create_topic{"orders"}, local("2025-11-23 09:30"));   // changes no timer
    w.fire_until(local("2025-11-24 09:00"));                                // 240/h: owing by 17:00
    REQUIRE(w.instances.at("i-1").current == state::expired);
    REQUIRE(w.instances.at("r-1").current == state::stopped);
    w.run("", cmd::add_funds{100000, "pay"}, local("2025-11-24 10:00"));    // restores both
    REQUIRE(w.instances.at("r-1").current == state::running);
    w.run("i-1", cmd::stop{}, local("2025-11-24 11:00"));
    w.fire_until(local("2025-11-27 09:00"));                                // i-1 released 11-26 08:00
    REQUIRE(w.instances.at("i-1").current == state::released);
    CHECK_FALSE(proj::compare(db.app_url(), w.policies).has_value());
    std::multiset<std::string> expected;
    for (const auto& [id, s] : w.instances)
        for (const auto& t : deadlines(s, w.pol(s))) expected.insert(id + " " + std::string(to_string(t.kind)) + " " + codec::format_time(t.due_at));
    std::multiset<std::string> live;
    for (const auto& row : rows_of(db.app_url(), "SELECT instance_id || ' ' || kind || ' ' || "
                                                 "to_char(due_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM timers"))
        live.insert(row);
    CHECK(live == expected);
    CHECK(db.admin_scalar("SELECT count(*) FROM timers WHERE instance_id = 'i-1'") == "0");
}

TEST_CASE("projections: pending releases list the release timer with its cause", "[projections]") {
    scratch_db db;
    world w(db.app_url());
    w.run("", cmd::open_account{"CNY"}, local("2025-11-23 09:00"));
    w.run("", cmd::add_funds{100000, "wire-77"}, local("2025-11-23 09:01"));
    w.run("i-1", kafka_payg("i-1"), local("2025-11-23 09:10"));
    w.run("i-1", cmd::deploy{}, local("2025-11-23 09:30"));
    w.run("i-1", cmd::stop{}, local("2025-11-23 14:00"));
    const auto rows = rows_of(db.app_url(), "SELECT instance_id || ' ' || state || ' ' || cause || ' ' || "
                                            "to_char(release_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD HH24:MI') "
                                            "FROM pending_releases ORDER BY release_at");
    CHECK(rows == std::vector<std::string>{"i-1 stopped deadline 2025-11-25 08:00"});
}

TEST_CASE("projections: a rebuild reproduces the live tables and compare finds a hand-altered row", "[projections]") {
    scratch_db db;
    world w(db.app_url());
    kafka_story(w);
    const auto live = dump(db.app_url());
    REQUIRE(live.size() > 8);

    CHECK_FALSE(proj::compare(db.app_url(), w.policies).has_value());
    const auto report = proj::rebuild(db.app_url(), w.policies);
    CHECK(report.instances == 2);
    CHECK(report.accounts == 1);
    CHECK(dump(db.app_url()) == live);

    // A hand edit (as the superuser) is caught and named; a rebuild repairs it.
    db.admin_scalar("UPDATE instance_state SET state = 'running' WHERE instance_id = 'i-1'");
    const auto diff = proj::compare(db.app_url(), w.policies);
    REQUIRE(diff.has_value());
    CHECK(diff->table == "instance_state");
    CHECK(diff->row.find("\"i-1\"") != std::string::npos);
    db.admin_scalar("DELETE FROM timers WHERE instance_id = 'i-2'");
    (void)proj::rebuild(db.app_url(), w.policies);
    CHECK(dump(db.app_url()) == live);
    CHECK_FALSE(proj::compare(db.app_url(), w.policies).has_value());

    // The projector continues on the rebuilt tables: the counts still match a GROUP BY.
    w.run("i-2", cmd::stop{}, local("2025-11-25 09:00"));
    CHECK(rows_of(db.app_url(), "SELECT product || '/' || billing || '/' || state || '=' || count FROM instance_counts ORDER BY 1") ==
          std::vector<std::string>{"kafka/payg/released=1", "kafka/payg/stopped=1"});
    CHECK_FALSE(proj::compare(db.app_url(), w.policies).has_value());
    // No event was written by the rebuilds.
    CHECK(std::stoll(db.admin_scalar("SELECT count(*) FROM events")) == static_cast<long long>(w.history.size()));
}

TEST_CASE("projections: a rebuild while appends go on leaves tables equal to the log", "[projections]") {
    scratch_db db;
    world w(db.app_url());
    w.run("", cmd::open_account{"CNY"}, local("2025-11-23 09:00"));
    w.run("", cmd::add_funds{100000000, "wire-77"}, local("2025-11-23 09:01"));
    std::atomic<bool> stop{false};
    std::atomic<int> appended{0};
    std::thread writer([&] {
        // Purchases of new instances only, decided as units against a private copy of the view
        // (payg purchases touch only their own new stream).
        auto view = w.fleet.view;
        for (int i = 0; !stop && i < 5000; ++i) {
            const std::string id = "c-" + std::to_string(i);
            const unit_command u = instance_command{id, kafka_payg(id)};
            const auto at = w.clk.now();
            const auto o = decide_unit(view, u, at, w.policies.current());
            if (!o.ok()) continue;
            if (w.store.append(append_of(o, u, at, request_meta{"test", {}, {}, {}, {}}, w.policies.current().version())).ok())
                ++appended;
            view.absorb(o, w.policies.current());
        }
    });
    while (appended < 50) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    for (int i = 0; i < 3; ++i) (void)proj::rebuild(db.app_url(), w.policies);
    stop = true;
    writer.join();
    CHECK(appended > 50);
    CHECK_FALSE(proj::compare(db.app_url(), w.policies).has_value());
    CHECK(db.admin_scalar("SELECT count(*) FROM instance_state") == std::to_string(appended.load()));
}

TEST_CASE("projections: as_of returns the state folded up to that time", "[projections]") {
    scratch_db db;
    world w(db.app_url());
    kafka_story(w);

    pqxx::connection c(db.app_url());
    pqxx::read_transaction tx(c);
    const time_point t = local("2025-11-23 12:00");
    instance_state expected;
    expected.id = "i-1";
    for (const auto& e : w.history)
        if (e.stream == "instance-i-1" && e.effective_at <= t)
            expected = evolve(std::move(expected), e.data, e.effective_at, policy_set::defaults());
    const auto past = proj::instance_as_of(tx, "i-1", t, policy_registry{});
    CHECK(past == expected);
    CHECK(past.current == state::running);
    CHECK(proj::instance_as_of(tx, "i-1", local("2025-11-26 00:00"), policy_registry{}) == w.instances.at("i-1"));
    CHECK_FALSE(proj::instance_as_of(tx, "i-1", local("2025-11-23 09:00"), policy_registry{}).exists);
    CHECK(proj::account_as_of(tx, "acc-1", local("2025-11-23 09:05"), policy_registry{}).balance == 100000);
}

TEST_CASE("projections: a projector failure rolls back the whole batch", "[projections]") {
    scratch_db db;
    policy_registry policies;
    proj::projector projector(policies);
    manual_clock clk(local("2025-11-23 09:00"));
    store::event_store st(db.app_url(), clk, store::observed_by(projector.observer()));

    // Well-formed for the store, but the codec refuses it (an extra field): the projector throws.
    store::append_request bad;
    bad.streams.push_back({"instance-x", 0, {{"instance.deployed", {{"bogus", 1}}, local("2025-11-23 09:00")}}});
    bad.streams.push_back({"account-y", 0, {{"account.opened", {{"currency", "CNY"}}, local("2025-11-23 09:00")}}});
    const auto r = st.append(std::move(bad));
    CHECK(r.code == store::append_code::unavailable);
    CHECK(db.admin_scalar("SELECT count(*) FROM events") == "0");
    CHECK(db.admin_scalar("SELECT count(*) FROM accounts") == "0");
    CHECK(db.admin_scalar("SELECT count(*) FROM projection_checkpoint") == "0");

    // The store goes on: a good append is projected.
    store::append_request good;
    good.streams.push_back({"account-y", 0, {{"account.opened", {{"currency", "CNY"}}, local("2025-11-23 09:00")}}});
    REQUIRE(st.append(std::move(good)).ok());
    CHECK(db.admin_scalar("SELECT currency FROM accounts WHERE account_id = 'y'") == "CNY");
}

TEST_CASE("projections: snapshots round-trip exactly and refuse extra keys", "[projections]") {
    instance_state s;
    s.exists = true;
    s.id = "i-9";
    s.account_id = "acc-1";
    s.prod = product::rocketmq;
    s.bill = billing::serverless;
    s.timezone = "Asia/Shanghai";
    s.current = state::stopped;
    s.state_since = local("2025-11-23 10:00") + std::chrono::microseconds(7);
    s.expires_at = local("2026-01-01 00:00");
    s.rate = price{price::unit::hourly, 99};
    s.config = instance_config{"professional", "cluster", 2000, true, 5};
    s.auto_renew = {true, 3};
    s.topics = {"a", "b"};
    s.marks = {{local("2025-11-23 10:00"), state::running, 99}};
    s.settled_until = local("2025-11-23 11:00");
    s.billed_total = 1234;
    s.version = 17;
    std::string error;
    const auto back = proj::decode_instance_snapshot(boost::json::value(proj::encode_snapshot(s)), error);
    REQUIRE(back);
    CHECK(*back == s);

    auto extra = proj::encode_snapshot(s);
    extra["surprise"] = 1;
    CHECK_FALSE(proj::decode_instance_snapshot(boost::json::value(extra), error));
    CHECK(error.find("surprise") != std::string::npos);

    account_state a;
    a.exists = true;
    a.currency = "CNY";
    a.balance = -5;
    a.overdue_since = local("2025-11-23 10:00");
    a.version = 3;
    const auto ab = proj::decode_account_snapshot(boost::json::value(proj::encode_snapshot(a)), error);
    REQUIRE(ab);
    CHECK(*ab == a);
}

// Appends `n` requests (one Kafka payg instance each: purchased, deployed, a topic: 3 events)
// through a store with `observer`, all queued at once so group commit batches them; seconds taken.
double timed_appends(const std::string& url, store::batch_observer observer, int n) {
    policy_registry policies;
    manual_clock clk(local("2025-11-23 10:00"));
    store::event_store st(url, clk, store::observed_by(std::move(observer)));
    decide_context ctx;
    ctx.policies = &policies.current();
    ctx.account = account_facts{100000000, std::nullopt};
    const time_point t = local("2025-11-23 10:00");
    std::vector<store::append_request> requests;
    for (int i = 0; i < n; ++i) {
        const std::string id = "p-" + std::to_string(i);
        ctx.instance_id = id;
        instance_state s;
        s.id = id;
        store::append_request r;
        r.streams.push_back({instance_stream(id), 0, {}});
        for (const cmd::command& c : {cmd::command(kafka_payg(id)), cmd::command(cmd::deploy{}), cmd::command(cmd::create_topic{"t"})}) {
            auto d = decide(s, c, t, ctx);
            REQUIRE(d.ok());
            for (auto& e : d.events) {
                s = evolve(std::move(s), e.data, e.effective_at, policy_set::defaults());
                r.streams[0].events.push_back({std::string(events::type_name(e.data)), codec::encode(e.data), e.effective_at});
            }
        }
        r.metadata = {{"actor", "bench"}, {"policy_version", current_policy_version}};
        requests.push_back(std::move(r));
    }
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::future<store::append_result>> done;
    done.reserve(requests.size());
    for (auto& r : requests) done.push_back(st.append_async(std::move(r)));
    for (auto& f : done) REQUIRE(f.get().ok());
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

TEST_CASE("projections: throughput of appends with the projector", "[projections][throughput]") {
    constexpr int n = 10000;
    scratch_db bare_db, db;
    policy_registry policies;
    proj::projector projector(policies);
    const double bare = timed_appends(bare_db.app_url(), {}, n);
    double in_projector = 0;
    const double with = timed_appends(
        db.app_url(),
        [&](pqxx::transaction_base& tx, const store::batch_view& batch) {
            const auto start = std::chrono::steady_clock::now();
            auto w = projector.writes(tx, batch.events, batch.projections, batch.first_param);
            in_projector += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            return w;
        },
        n);
    WARN(3 * n << " events: store alone " << (3 * n) / bare << " events/s; with projections " << (3 * n) / with
               << " events/s (" << with / bare << "x the time; " << in_projector << " s in the projector)");

    CHECK(db.admin_scalar("SELECT count FROM instance_counts WHERE state = 'running'") == std::to_string(n));
    CHECK_FALSE(proj::compare(db.app_url(), policies).has_value());
}

namespace {

// Everything in the log judged by the conformance checker; the first failure, if any.
std::optional<std::pair<std::int64_t, std::string>> first_nonconforming(const std::string& url,
                                                                        const policy_registry& policies) {
    pqxx::connection c(url);
    const auto r = proj::check_conformance(c, policies);
    if (r.bad_position) return std::make_pair(*r.bad_position, r.reason);
    return std::nullopt;
}

// Appends one event exactly as given, bypassing the rules, with a unit record the forger made up
// (`unit`, declaring one event): what a buggy or malicious writer with the app role could do. The
// hash chain stays valid; only the replay of the unit can tell.
void append_raw(world& w, const std::string& stream, const events::event& e, time_point at, const unit_command& unit,
                time_point decided_at) {
    store::append_request r;
    r.streams.push_back({stream, store::any_version, {{std::string(events::type_name(e)), codec::encode(e), at}}});
    r.metadata = {{"actor", "forger"}, {"policy_version", current_policy_version}};
    r.first_metadata = {{"unit", encode_unit(unit_record{unit, decided_at, 1})}};
    REQUIRE(w.store.append(std::move(r)).ok());
}

} // namespace

TEST_CASE("conformance: a history decided by the rules core conforms event by event (settlements, charges, "
          "stop, release at 08:00 two days later)",
          "[projections][conformance]") {
    scratch_db db;
    world w(db.app_url());
    kafka_story(w);
    const auto bad = first_nonconforming(db.app_url(), w.policies);
    INFO((bad ? bad->second : ""));
    CHECK(!bad);
}

TEST_CASE("conformance: a stop of a subscription instance is reported with its position (K: subscriptions "
          "cannot be stopped)",
          "[projections][conformance]") {
    scratch_db db;
    world w(db.app_url());
    w.run("", cmd::open_account{"CNY"}, local("2025-11-23 09:00"));
    w.run("", cmd::add_funds{100000, ""}, local("2025-11-23 09:01"));
    auto p = kafka_payg("s-1");
    p.bill = billing::subscription;
    p.rate = price{price::unit::monthly, 30000};
    p.term_months = 1;
    w.run("s-1", p, local("2025-11-23 09:10"));
    w.run("s-1", cmd::deploy{}, local("2025-11-23 09:20"));
    w.clk.advance_to(local("2025-11-23 10:00"));
    append_raw(w, "instance-s-1", events::stopped{}, local("2025-11-23 10:00"), instance_command{"s-1", cmd::stop{}},
               local("2025-11-23 10:00"));
    const auto bad = first_nonconforming(db.app_url(), w.policies);
    REQUIRE(bad);
    CHECK(bad->first == 6);   // opened, funds, purchased, charged, deployed, then the forged stop
    CHECK(bad->second.find("instance.stopped") != std::string::npos);
}

TEST_CASE("conformance: a release before its deadline, and a settlement that overcharges, are reported (K: "
          "release at 08:00 two days after stopping, E: hourly bill = price × billable time)",
          "[projections][conformance]") {
    scratch_db db;
    world w(db.app_url());
    w.run("", cmd::open_account{"CNY"}, local("2025-11-23 09:00"));
    w.run("", cmd::add_funds{100000, ""}, local("2025-11-23 09:01"));
    w.run("i-1", kafka_payg("i-1"), local("2025-11-23 09:10"));
    w.run("i-1", cmd::deploy{}, local("2025-11-23 09:30"));

    SECTION("release early") {
        w.run("i-1", cmd::stop{}, local("2025-11-23 09:40"));
        const auto head = store::head(db.app_url()).position;
        w.clk.advance_to(local("2025-11-25 07:59"));
        append_raw(w, "instance-i-1", events::released{events::release_cause::deadline, {}, {}},
                   local("2025-11-25 07:59"), fire_timers{"acc-1", local("2025-11-25 07:59")}, local("2025-11-25 07:59"));
        const auto bad = first_nonconforming(db.app_url(), w.policies);
        REQUIRE(bad);
        CHECK(bad->first == head + 1);
        CHECK(bad->second.find("instance.released") != std::string::npos);
    }
    SECTION("overcharge") {
        const auto head = store::head(db.app_url()).position;
        const auto start = local("2025-11-23 09:00");
        const auto end = local("2025-11-23 10:00");
        // 30 minutes at 120/hour is 60; the forger bills 120.
        w.clk.advance_to(end);
        append_raw(w, "instance-i-1", events::settled{start, end, 120}, end, fire_timers{"acc-1", end}, end);
        const auto bad = first_nonconforming(db.app_url(), w.policies);
        REQUIRE(bad);
        CHECK(bad->first == head + 1);
        CHECK(bad->second.find("instance.settled") != std::string::npos);
    }
}

TEST_CASE("conformance: a renewal without its charge, and an expiry recorded before the term ended, are "
          "reported (K: renewal charges price x months, time-driven events happen at their deadline)",
          "[projections][conformance]") {
    scratch_db db;
    world w(db.app_url());
    w.run("", cmd::open_account{"CNY"}, local("2025-11-23 09:00"));
    w.run("", cmd::add_funds{100000, ""}, local("2025-11-23 09:01"));
    auto p = kafka_payg("s-1");
    p.bill = billing::subscription;
    p.rate = price{price::unit::monthly, 30000};
    p.term_months = 1;
    w.run("s-1", p, local("2025-11-23 09:10"));
    w.run("s-1", cmd::deploy{}, local("2025-11-23 09:20"));
    const auto head = store::head(db.app_url()).position;
    const auto expiry = *w.instances.at("s-1").expires_at;

    SECTION("renewed, never charged") {
        w.clk.advance_to(local("2025-11-30 10:00"));
        append_raw(w, "instance-s-1", events::renewed{1, 30000, local("2026-01-23 09:10"), false},
                   local("2025-11-30 10:00"), instance_command{"s-1", cmd::renew{1}}, local("2025-11-30 10:00"));
        const auto bad = first_nonconforming(db.app_url(), w.policies);
        REQUIRE(bad);
        CHECK(bad->first == head + 2);   // where the charge should have been
        CHECK(bad->second.find("account.charged") != std::string::npos);
    }
    SECTION("expired at the term end, but written a day before it") {
        w.clk.advance_to(expiry - std::chrono::hours(24));
        // The forger even claims the unit was decided at the expiry; it was written a day before.
        append_raw(w, "instance-s-1", events::expired{events::expiry_cause::term_ended}, expiry,
                   fire_timers{"acc-1", expiry}, expiry);
        const auto bad = first_nonconforming(db.app_url(), w.policies);
        REQUIRE(bad);
        CHECK(bad->first == head + 1);
        CHECK(bad->second.find("instance.expired") != std::string::npos);
    }
}
