// `mqledger verify` against forgeries of a ledger the real daemon wrote (issue 12; API.md
// `verify`: "every event was a legal transition when it was written"). A forger with the
// database superuser rewrites the table and recomputes the hash chain, so the chain check
// passes; the unit-by-unit replay must still report each forgery, exit 1, at its position:
// a forged instance.expired {cause: overdue} for a funded instance, a payment whose restores
// were dropped, a bill whose stop was dropped, a settlement with another amount, and an extra
// instance.restored. Also: a daemon started on emptied projections (migration 0004) rebuilds
// them from the log before it serves.
#include "tests/e2e/http_client.h"

#include "ledger/canonical_json.h"
#include "ledger/codec.h"
#include "ledger/store/event_store.h"
#include "ledger/store/hash_chain.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <functional>
#include <map>

using namespace mqledger;
using namespace mqledger::test;
namespace json = boost::json;

namespace {

struct ledger_db {
    scratch_database db;
    ledger_db() { REQUIRE(run_mqledger({"migrate", "--database-url", db.url()}).exit_code == 0); }
};

std::vector<std::string> serve_args(std::uint16_t port, const std::string& db) {
    return {"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db, "--insecure-no-auth",
            "--log-format", "json", "--clock", "manual", "--clock-start", "2026-03-13T06:00:00Z"};
}

void ok(const http_result& r, int status = 200) {
    INFO(r.body);
    REQUIRE(r.status == status);
}

json::object payg(const std::string& id, const std::string& account, const std::string& product, std::int64_t hourly) {
    json::object o{{"instance_id", id}, {"account_id", account}, {"product", product}, {"billing", "payg"},
                   {"timezone", "Asia/Shanghai"}, {"price", json::object{{"hourly", hourly}}}};
    if (product == "rocketmq")
        o["config"] = json::object{{"edition", "standard"}, {"sub_category", "cluster"}, {"tps", 1000},
                                   {"internet_access", false}, {"bandwidth_mbps", 0}};
    return o;
}

// The daemon writes: acc-1 (1,000) with k-1 (Kafka payg, 120/h) and r-1 (RocketMQ payg, 500/h);
// the 08:00 bills leave acc-1 owing, which stops r-1 and expires k-1; a payment at 08:30 restores
// both. acc-2 (100,000) with m-1 (Kafka payg), funded and running throughout.
void write_story(const http_client& c) {
    for (const auto& [id, funds] : {std::pair{"acc-1", 1000}, std::pair{"acc-2", 100000}}) {
        ok(c.post("/v1/accounts", json::object{{"account_id", id}, {"currency", "CNY"}}), 201);
        ok(c.post(std::string("/v1/accounts/") + id + "/funds", json::object{{"amount", funds}, {"reference", "seed"}}));
    }
    ok(c.post("/v1/instances", payg("k-1", "acc-1", "kafka", 120)), 201);
    ok(c.post("/v1/instances/k-1/actions/deploy", json::object{}));
    ok(c.post("/v1/instances", payg("r-1", "acc-1", "rocketmq", 500)), 201);
    ok(c.post("/v1/instances", payg("m-1", "acc-2", "kafka", 120)), 201);
    ok(c.post("/v1/instances/m-1/actions/deploy", json::object{}));
    ok(c.post("/v1/clock", json::object{{"now", "2026-03-13T08:30:00Z"}}));
    REQUIRE(c.get("/v1/instances/r-1").json.at("state") == "stopped");
    REQUIRE(c.get("/v1/instances/k-1").json.at("state") == "expired");
    ok(c.post("/v1/accounts/acc-1/funds", json::object{{"amount", 5000}, {"reference", "pay"}}));
    REQUIRE(c.get("/v1/instances/r-1").json.at("state") == "running");
    REQUIRE(c.get("/v1/instances/k-1").json.at("state") == "running");
}

// A row of the events table as the forger handles it.
struct row {
    std::string stream;
    std::string type;
    json::object data;
    json::object metadata;
    time_point effective_at;
    time_point recorded_at;
};

std::vector<row> rows_of(const std::string& url) {
    std::vector<row> out;
    for (auto& e : store::read_all(url, 0, 1000000))
        out.push_back({e.stream, e.type, std::move(e.data), std::move(e.metadata), e.effective_at, e.recorded_at});
    return out;
}

// Writes `rows` into a fresh, migrated database as a forger with the superuser would: positions
// and stream versions renumbered, every prev_hash and hash recomputed, so the chain verifies.
void forge(const std::string& url, const std::vector<row>& rows) {
    pqxx::connection c(url);
    pqxx::work w(c);
    std::string prev(store::genesis_hash);
    std::map<std::string, std::int64_t> versions;
    std::int64_t position = 0;
    for (const auto& r : rows) {
        const auto data = canonical_json(json::value(r.data));
        const auto meta = canonical_json(json::value(r.metadata));
        const auto version = ++versions[r.stream];
        const auto hash = store::event_hash({prev, ++position, r.stream, version, r.type, store::to_us(r.effective_at),
                                             store::to_us(r.recorded_at), data, meta});
        w.exec_params("INSERT INTO events (position, stream, stream_version, type, data, metadata, effective_at, "
                      "recorded_at, prev_hash, hash) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7::timestamptz, "
                      "$8::timestamptz, $9, $10)",
                      position, r.stream, version, r.type, data, meta, codec::format_time(r.effective_at),
                      codec::format_time(r.recorded_at), prev, hash);
        prev = hash;
    }
    w.commit();
}

// The index of the first row matching `pred`.
std::size_t find_row(const std::vector<row>& rows, const std::function<bool(const row&)>& pred) {
    for (std::size_t i = 0; i < rows.size(); ++i)
        if (pred(rows[i])) return i;
    FAIL("no such row in the ledger");
    return 0;
}

// `mqledger verify` on a forged copy: the chain holds, conformance fails at `position`.
void require_found(const std::vector<row>& forged, std::int64_t position, std::string_view mentions) {
    ledger_db copy;
    forge(copy.db.url(), forged);
    const auto v = run_mqledger({"verify", "--database-url", copy.db.url()});
    INFO(v.out << v.err);
    CHECK(v.exit_code == 1);
    CHECK(v.out.find("chain:       ok") != std::string::npos);
    CHECK(v.out.find("conformance: FAILED") != std::string::npos);
    CHECK(v.out.find("first bad position: " + std::to_string(position) + ":") != std::string::npos);
    CHECK(v.out.find(mentions) != std::string::npos);
}

} // namespace

TEST_CASE("verify: forgeries of a daemon's ledger with a recomputed hash chain are each reported at their "
          "position: a forged overdue expiry of a funded instance, dropped restores of a payment, a dropped stop "
          "of a bill, another settlement amount, an extra restore (RULES.md Accounts and payments, API.md verify)",
          "[e2e][audit][units]") {
    ledger_db db;
    {
        const auto port = free_port();
        daemon_process d(serve_args(port, db.db.url()), port);
        write_story(d.client());
    }
    const auto original = rows_of(db.db.url());
    {
        // The real ledger and an exact copy of it verify.
        const auto v = run_mqledger({"verify", "--database-url", db.db.url()});
        INFO(v.out << v.err);
        REQUIRE(v.exit_code == 0);
        ledger_db copy;
        forge(copy.db.url(), original);
        const auto c = run_mqledger({"verify", "--database-url", copy.db.url()});
        INFO(c.out << c.err);
        CHECK(c.out.find("conformance: ok") != std::string::npos);
    }
    const auto is = [](std::string_view type, std::string_view stream) {
        return [=](const row& r) { return r.type == type && r.stream == stream; };
    };

    SECTION("a well-chained instance.expired {cause: overdue} for the funded m-1, appended as its own timer unit") {
        auto rows = original;
        row forged = rows.back();
        forged.stream = "instance-m-1";
        forged.type = "instance.expired";
        forged.data = json::object{{"cause", "overdue"}};
        forged.metadata = json::object{{"actor", "timer"},
                                       {"policy_version", 1},
                                       {"schema_version", json::object{{"instance.expired", 1}}},
                                       {"unit", json::object{{"account_id", "acc-2"},
                                                             {"command", json::object{{"type", "fire_timers"},
                                                                                      {"up_to", "2026-03-13T08:00:00Z"}}},
                                                             {"at", "2026-03-13T08:00:00Z"},
                                                             {"events", 1}}}};
        forged.effective_at = forged.recorded_at;
        rows.push_back(forged);
        require_found(rows, static_cast<std::int64_t>(rows.size()), "instance.expired");
    }
    SECTION("the payment at 08:30 without the restores it decided") {
        auto rows = original;
        const auto i = find_row(rows, is("instance.restored", "instance-k-1"));
        rows.erase(rows.begin() + static_cast<std::ptrdiff_t>(i), rows.begin() + static_cast<std::ptrdiff_t>(i) + 2);
        require_found(rows, static_cast<std::int64_t>(i) + 1, "instance.restored");
    }
    SECTION("the 08:00 bill without the stop of r-1 it decided") {
        auto rows = original;
        const auto i = find_row(rows, is("instance.stopped", "instance-r-1"));
        rows.erase(rows.begin() + static_cast<std::ptrdiff_t>(i));
        require_found(rows, static_cast<std::int64_t>(i) + 1, "instance.stopped");
    }
    SECTION("k-1's 07:00 settlement and its charge at another amount, changed together") {
        auto rows = original;
        const auto i = find_row(rows, is("instance.settled", "instance-k-1"));
        rows[i].data["amount"] = 100;
        REQUIRE(rows[i + 1].type == "account.charged");
        rows[i + 1].data["amount"] = 100;
        require_found(rows, static_cast<std::int64_t>(i) + 1, "instance.settled");
    }
    SECTION("an extra instance.restored of k-1 after the 08:00 bill, with the bill's metadata") {
        auto rows = original;
        const auto i = find_row(rows, is("instance.expired", "instance-k-1"));
        row extra = rows[i];
        extra.type = "instance.restored";
        extra.data = json::object{{"cause", "paid"}};
        rows.insert(rows.begin() + static_cast<std::ptrdiff_t>(i) + 1, extra);
        require_found(rows, static_cast<std::int64_t>(i) + 2, "instance.restored");
    }
}

TEST_CASE("start-up: a daemon whose projections were emptied (as migration 0004 does) rebuilds them from the "
          "log before it serves, and verify passes (DESIGN.md Projections: rebuilt from the log at any time)",
          "[e2e][units]") {
    ledger_db db;
    const auto port = free_port();
    std::string before;
    {
        daemon_process d(serve_args(port, db.db.url()), port);
        write_story(d.client());
        before = d.client().get("/v1/instances/r-1").body;
    }
    {
        pqxx::connection c(db.db.url());
        pqxx::work w(c);
        w.exec("TRUNCATE instance_state, timers, accounts, instance_counts");
        w.exec("DELETE FROM projection_checkpoint");
        w.commit();
    }
    daemon_process d(serve_args(port, db.db.url()), port);
    const auto after = d.client().get("/v1/instances/r-1");
    CHECK(after.status == 200);
    // The same view, but for the manual clock, which starts anew.
    CHECK(after.json.at("state") == json::parse(before).at("state"));
    CHECK(after.json.at("version") == json::parse(before).at("version"));
    CHECK(d.stdout_text().find("projections are behind the log; rebuilding them") != std::string::npos);
    const auto v = run_mqledger({"verify", "--database-url", db.db.url()});
    INFO(v.out << v.err);
    CHECK(v.exit_code == 0);
}
