// The write path (issue 13): the engine's state cache against a second daemon on the same
// database, and the writer queue's backpressure. Real daemons, real PostgreSQL, real HTTP.
//
// - Two daemons interleave commands on the same instances. Each daemon caches what it decided;
//   the other's writes make those entries stale. Every stale entry must be caught: by the
//   append's version check (a write decided from it is refused by the store and decided again),
//   or, for an answer that writes nothing (a refusal), by deciding again without the cache.
//   Nothing decided from a stale state is ever written, and verify passes.
// - With the writer held (another session holds the append lock), commands beyond
//   --queue-events are answered 503 `overloaded` with Retry-After, and write nothing; the ones
//   queued are written once the writer runs again.
#include "tests/e2e/http_client.h"

#include "ledger/store/event_store.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <chrono>
#include <future>
#include <regex>
#include <thread>

using namespace mqledger;
using namespace mqledger::test;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

struct ledger_db {
    scratch_database db;
    ledger_db() { REQUIRE(run_mqledger({"migrate", "--database-url", db.url()}).exit_code == 0); }
};

std::vector<std::string> serve_args(std::uint16_t port, const std::string& db, std::vector<std::string> more = {}) {
    std::vector<std::string> a{"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db,
                               "--insecure-no-auth", "--log-format", "json", "--clock", "manual",
                               "--clock-start", "2026-03-13T06:00:00Z"};
    a.insert(a.end(), more.begin(), more.end());
    return a;
}

void ok(const http_result& r, int status = 200) {
    INFO(r.body);
    REQUIRE(r.status == status);
}

json::object kafka_payg(const std::string& id, const std::string& account) {
    return {{"instance_id", id}, {"account_id", account}, {"product", "kafka"}, {"billing", "payg"},
            {"timezone", "Asia/Shanghai"}, {"price", json::object{{"hourly", 120}}}};
}

std::vector<std::string> topics(const http_result& r) {
    std::vector<std::string> out;
    for (const auto& t : r.json.at("topics").as_array()) out.emplace_back(t.is_string() ? t.as_string() : t.at("name").as_string());
    std::sort(out.begin(), out.end());
    return out;
}

double metric(const http_client& c, const std::string& name_and_labels) {
    const auto page = c.get("/metrics").body;
    const std::regex line("^" + std::regex_replace(name_and_labels, std::regex(R"([{}\"])"), R"(\$&)") + R"( ([-+0-9.eE]+)$)",
                          std::regex::multiline);
    std::smatch m;
    if (!std::regex_search(page, m, line)) return -1;
    return std::stod(m[1].str());
}

std::int64_t scalar(const std::string& url, const std::string& sql) {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    return tx.exec(sql)[0][0].as<std::int64_t>();
}

} // namespace

TEST_CASE("write path: two daemons interleave commands on the same instances, every stale cache entry is caught "
          "(RULES.md: a command is decided from the instance's current state)",
          "[e2e][cache]") {
    ledger_db l;
    const auto pa = free_port();
    daemon_process a(serve_args(pa, l.db.url()), pa);
    const auto pb = free_port();
    daemon_process b(serve_args(pb, l.db.url()), pb);
    const auto ca = a.client();
    const auto cb = b.client();

    ok(ca.post("/v1/accounts", json::object{{"account_id", "acc"}, {"currency", "CNY"}}), 201);
    ok(ca.post("/v1/accounts/acc/funds", json::object{{"amount", 1000000}, {"reference", "seed"}}));
    ok(ca.post("/v1/instances", kafka_payg("k-1", "acc")), 201);
    ok(ca.post("/v1/instances/k-1/actions/deploy", json::object{}));
    ok(ca.post("/v1/instances/k-1/topics", json::object{{"name", "a1"}}), 201);   // A caches k-1

    // B writes k-1 behind A's back; A's next topic is decided from its stale entry, refused by
    // the store's version check, and decided again from the database: both topics are there.
    ok(cb.post("/v1/instances/k-1/topics", json::object{{"name", "b1"}}), 201);
    const auto r = ca.post("/v1/instances/k-1/topics", json::object{{"name", "a2"}});
    ok(r, 201);
    CHECK(topics(ca.get("/v1/instances/k-1")) == std::vector<std::string>{"a1", "a2", "b1"});

    // A refusal from a stale entry is never answered: A caches k-1 running; B stops it; "enable"
    // on A looks illegal from the cached state (already running) but is legal from the real one.
    ok(ca.post("/v1/instances/k-1/topics", json::object{{"name", "a3"}}), 201);
    ok(cb.post("/v1/instances/k-1/actions/stop", json::object{}));
    const auto enable = ca.post("/v1/instances/k-1/actions/enable", json::object{});
    INFO(enable.body);
    CHECK(enable.status == 200);
    CHECK(ca.get("/v1/instances/k-1").json.at("state") == "running");

    // And a write from a stale entry is refused when the real state refuses it: A caches
    // running; B stops; A's stop (legal from the cache) is 409 from the real state.
    ok(cb.post("/v1/instances/k-1/actions/stop", json::object{}));
    const auto stop = ca.post("/v1/instances/k-1/actions/stop", json::object{});
    CHECK(stop.status == 409);

    // If-Match against a stale cached version: the real version decides.
    const auto v = ca.get("/v1/instances/k-1").json.at("version").to_number<std::int64_t>();
    ok(cb.post("/v1/instances/k-1/actions/enable", json::object{}));
    const auto stale = ca.post("/v1/instances/k-1/topics", json::object{{"name", "a4"}}, {{"If-Match", std::to_string(v)}});
    CHECK(stale.status == 412);
    ok(ca.post("/v1/instances/k-1/topics", json::object{{"name", "a4"}}, {{"If-Match", std::to_string(v + 1)}}), 201);

    // Many interleaved commands from both daemons on three instances of one account.
    for (const auto* id : {"k-2", "k-3"}) {
        ok(cb.post("/v1/instances", kafka_payg(id, "acc")), 201);
        ok(cb.post(std::string("/v1/instances/") + id + "/actions/deploy", json::object{}));
    }
    std::vector<std::future<int>> done;
    for (int d = 0; d < 2; ++d)
        done.push_back(std::async(std::launch::async, [&, d] {
            const auto c = d == 0 ? ca : cb;
            int created = 0;
            for (int i = 0; i < 60; ++i) {
                const std::string id = "k-" + std::to_string(1 + i % 3);
                const auto res = c.post("/v1/instances/" + id + "/topics",
                                        json::object{{"name", "t" + std::to_string(d) + "-" + std::to_string(i)}});
                if (res.status == 201) ++created;
            }
            return created;
        }));
    int created = 0;
    for (auto& f : done) created += f.get();
    CHECK(created == 120);
    std::size_t total_topics = 0;
    for (const auto* id : {"k-1", "k-2", "k-3"}) total_topics += topics(ca.get(std::string("/v1/instances/") + id)).size();
    CHECK(total_topics == 120 + 4 + 1);   // a1, a2, a3, a4 and b1 on k-1

    // A used its cache, and was caught by the store at least once (the first stale topic).
    CHECK(metric(ca, "mqledger_state_cache_lookups_total{result=\"hit\"}") > 0);
    // Every event's stream version follows the one before it, and verify (chain, every unit
    // decided again from the log, projections) passes.
    CHECK(scalar(l.db.url(), "SELECT count(*) FROM (SELECT stream_version - lag(stream_version) OVER "
                             "(PARTITION BY stream ORDER BY position) AS d FROM events) x WHERE d <> 1") == 0);
    const auto verify = run_mqledger({"verify", "--database-url", l.db.url()});
    INFO(verify.out << verify.err);
    CHECK(verify.exit_code == 0);
}

TEST_CASE("write path: a full writer queue answers 503 overloaded with Retry-After and writes nothing "
          "(API.md: 503, nothing is written on a refusal)",
          "[e2e][backpressure]") {
    ledger_db l;
    const auto port = free_port();
    daemon_process d(serve_args(port, l.db.url(), {"--queue-events", "1"}), port);
    const auto c = d.client();
    ok(c.post("/v1/accounts", json::object{{"account_id", "acc"}, {"currency", "CNY"}}), 201);
    ok(c.post("/v1/accounts/acc/funds", json::object{{"amount", 1000000}, {"reference", "seed"}}));
    for (const auto* id : {"q-1", "q-2", "q-3"}) {
        ok(c.post("/v1/instances", kafka_payg(id, "acc")), 201);
        ok(c.post(std::string("/v1/instances/") + id + "/actions/deploy", json::object{}));
    }
    const auto before = scalar(l.db.url(), "SELECT count(*) FROM events");

    // Another session holds the append lock: the writer takes q-1's topic and waits in its batch;
    // q-2's fills the queue (one event); q-3's finds it full.
    pqxx::connection holder(l.db.url());
    pqxx::nontransaction htx(holder);
    htx.exec("SELECT pg_advisory_lock(" + std::to_string(store::append_lock_key) + ")");
    auto first = std::async(std::launch::async, [&] { return c.post("/v1/instances/q-1/topics", json::object{{"name", "x"}}); });
    std::this_thread::sleep_for(500ms);
    auto second = std::async(std::launch::async, [&] { return c.post("/v1/instances/q-2/topics", json::object{{"name", "x"}}); });
    std::this_thread::sleep_for(500ms);
    const auto third = c.post("/v1/instances/q-3/topics", json::object{{"name", "x"}});
    CHECK(third.status == 503);
    CHECK(third.error_code() == "overloaded");
    CHECK(third.header("Retry-After") == "1");
    CHECK(metric(c, "mqledger_writer_queue_events") == 1);

    htx.exec("SELECT pg_advisory_unlock(" + std::to_string(store::append_lock_key) + ")");
    ok(first.get(), 201);
    ok(second.get(), 201);
    CHECK(scalar(l.db.url(), "SELECT count(*) FROM events") == before + 2);
    CHECK(topics(c.get("/v1/instances/q-3")).empty());
    // The refused command goes through once there is room.
    ok(c.post("/v1/instances/q-3/topics", json::object{{"name", "x"}}), 201);
    const auto verify = run_mqledger({"verify", "--database-url", l.db.url()});
    INFO(verify.out << verify.err);
    CHECK(verify.exit_code == 0);
}

TEST_CASE("write path: a timer due on an instance another daemon changed fires from the real state, not the "
          "stale cached one (RULES.md: every time-driven event fires once, effective at its deadline)",
          "[e2e][cache]") {
    ledger_db l;
    const auto pa = free_port();
    daemon_process a(serve_args(pa, l.db.url()), pa);
    const auto pb = free_port();
    daemon_process b(serve_args(pb, l.db.url()), pb);
    const auto ca = a.client();
    const auto cb = b.client();
    ok(ca.post("/v1/accounts", json::object{{"account_id", "acc"}, {"currency", "CNY"}}), 201);
    ok(ca.post("/v1/accounts/acc/funds", json::object{{"amount", 1000000}, {"reference", "seed"}}));
    // A caches k-9 not deployed (nothing billed, no settlement due); B deploys it, so the hourly
    // settlement comes due in the timers table while A's cached state knows nothing of it.
    ok(ca.post("/v1/instances", kafka_payg("k-9", "acc")), 201);
    ok(cb.post("/v1/instances/k-9/actions/deploy", json::object{}));
    const auto due = cb.get("/v1/instances/k-9").json.at("deadlines").at("next_settlement_at").as_string();
    // A's clock passes the deadline: A's timer pass must fire it.
    ok(ca.post("/v1/clock", json::object{{"advance_seconds", 3 * 3600}}));
    const auto events = ca.get("/v1/instances/k-9/events").json.at("items").as_array();
    bool settled = false;
    for (const auto& e : events)
        if (e.at("type") == "instance.settled") settled = true;
    INFO("settlement due at " << due);
    CHECK(settled);
    CHECK(ca.get("/v1/instances/k-9").json.at("deadlines").at("next_settlement_at").as_string() != due);
    const auto verify = run_mqledger({"verify", "--database-url", l.db.url()});
    INFO(verify.out << verify.err);
    CHECK(verify.exit_code == 0);
}
