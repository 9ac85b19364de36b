// Whole instance lifecycles of the real daemon over real HTTP against a real PostgreSQL, driven by
// the manual clock (RULES.md, every product section; seeds K, R, Q, E, M; API.md). One daemon per
// TEST_CASE; every instance and account id is distinct inside it. Times: the clock starts at
// 2026-03-13T06:00:00Z, which is 14:00 on the 13th in Asia/Shanghai (UTC+8, no DST), the seed K
// example's "stopped at 14:00 on October 13 → released at 8:00 on October 15" moved to 2026.
#include "tests/e2e/http_client.h"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <set>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace mqledger::test;
namespace json = boost::json;

namespace {

constexpr const char* start_time = "2026-03-13T06:00:00Z";   // 14:00 Asia/Shanghai


bool has(const std::vector<std::string>& list, const std::string& s) {
    return std::find(list.begin(), list.end(), s) != list.end();
}

/// The value at key `k` of object `o`, or null.
json::value field(const json::object& o, std::string_view k) {
    const auto* v = o.if_contains(k);
    return v ? *v : json::value();
}

/// `deadlines[k]` of an instance view as a string, "" when the key is absent.
std::string deadline(const json::object& inst, std::string_view k) {
    const auto* d = inst.if_contains("deadlines");
    if (!d || !d->is_object()) return "";
    const auto* v = d->as_object().if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

bool migrate(const scratch_database& db) {
    const auto r = run_mqledger({"migrate", "--database-url", db.url()});
    if (r.exit_code != 0) throw std::runtime_error("mqledger migrate failed: " + r.err);
    return true;
}

/// A migrated scratch database and a daemon on it with the manual clock, plus the calls every
/// lifecycle needs.
class ledger_daemon {
public:
    explicit ledger_daemon(const std::string& clock_start = start_time)
        : migrated_(migrate(db_)), port_(free_port()),
          d_({"serve", "--listen", "127.0.0.1:" + std::to_string(port_), "--database-url", db_.url(),
              "--insecure-no-auth", "--clock", "manual", "--clock-start", clock_start},
             port_),
          c(d_.client()) {}

    http_result post(const std::string& path, const json::value& body, const header_list& h = {}) const {
        return c.post(path, body, h);
    }

    json::object get_ok(const std::string& path) const {
        const auto r = c.get(path);
        INFO("GET " << path << " → " << r.status << " " << r.body);
        REQUIRE(r.status == 200);
        REQUIRE(r.json.is_object());
        return r.json.as_object();
    }

    void open(const std::string& acc, std::int64_t funds) const {
        auto r = post("/v1/accounts", json::object{{"account_id", acc}, {"currency", "CNY"}});
        INFO("open " << acc << " → " << r.status << " " << r.body);
        REQUIRE(r.status == 201);
        if (funds > 0) fund(acc, funds);
    }

    json::object fund(const std::string& acc, std::int64_t amount) const {
        const auto r = post("/v1/accounts/" + acc + "/funds",
                            json::object{{"amount", amount}, {"reference", "wire-" + std::to_string(amount)}});
        INFO("funds " << acc << " → " << r.status << " " << r.body);
        REQUIRE(r.status == 200);
        return r.json.as_object();
    }

    json::object account(const std::string& acc) const { return get_ok("/v1/accounts/" + acc); }
    std::int64_t balance(const std::string& acc) const { return num(account(acc).at("balance")); }

    json::object buy(const json::object& body) const {
        const auto r = post("/v1/instances", body);
        INFO("purchase " << json::serialize(body) << " → " << r.status << " " << r.body);
        REQUIRE(r.status == 201);
        return r.json.as_object();
    }

    json::object import(const json::object& body) const {
        const auto r = post("/v1/instances/import", body);
        INFO("import " << json::serialize(body) << " → " << r.status << " " << r.body);
        REQUIRE(r.status == 201);
        return r.json.as_object();
    }

    json::object inst(const std::string& id) const { return get_ok("/v1/instances/" + id); }
    std::string state(const std::string& id) const { return str(inst(id).at("state")); }

    http_result try_act(const std::string& id, const std::string& action, const json::object& body = {}) const {
        return post("/v1/instances/" + id + "/actions/" + action, body);
    }

    json::object act(const std::string& id, const std::string& action, const json::object& body = {}) const {
        const auto r = try_act(id, action, body);
        INFO(action << " " << id << " " << json::serialize(body) << " → " << r.status << " " << r.body);
        REQUIRE(r.status == 200);
        return r.json.as_object();
    }

    /// Moves the manual clock to `t` (every timer due by then has fired when this returns).
    json::object clock(const std::string& t) const {
        const auto r = post("/v1/clock", json::object{{"now", t}});
        INFO("clock → " << t << ": " << r.status << " " << r.body);
        REQUIRE(r.status == 200);
        CHECK(str(r.json.at("now")) == t);
        return r.json.as_object();
    }

    json::array events(const std::string& id) const {
        const auto o = get_ok("/v1/instances/" + id + "/events");
        return o.at("items").as_array();
    }

    std::vector<std::string> types(const std::string& id) const {
        std::vector<std::string> out;
        for (const auto& e : events(id)) out.push_back(str(e.at("type")));
        return out;
    }

    /// Every event of `type` in the instance's stream, oldest first.
    std::vector<json::object> of_type(const std::string& id, const std::string& type) const {
        std::vector<json::object> out;
        for (const auto& e : events(id))
            if (str(e.at("type")) == type) out.push_back(e.as_object());
        return out;
    }

    /// The only (or newest) event of `type`; REQUIREs one exists.
    json::object last(const std::string& id, const std::string& type) const {
        const auto all = of_type(id, type);
        INFO("events of " << id << ": " << json::serialize(json::value_from(types(id))));
        REQUIRE_FALSE(all.empty());
        return all.back();
    }

    std::int64_t head() const { return num(get_ok("/v1/ledger/head").at("position")); }

    /// `mqledger verify` on this daemon's database: the chain, every event's legality under the
    /// rules, the projections against a rebuild (API.md "Command line").
    void verify() const {
        const auto r = run_mqledger({"verify", "--database-url", db_.url()});
        INFO("verify: exit " << r.exit_code << "\n" << r.out << r.err);
        CHECK(r.exit_code == 0);
    }

private:
    scratch_database db_;
    bool migrated_;
    std::uint16_t port_;
    daemon_process d_;

public:
    http_client c;
};

json::object purchase_body(const std::string& id, const std::string& acc, const std::string& product,
                           const std::string& billing, json::object price, int term_months = 0) {
    json::object b{{"instance_id", id}, {"account_id", acc}, {"product", product}, {"billing", billing},
                   {"timezone", "Asia/Shanghai"}, {"price", std::move(price)}};
    if (term_months > 0) b["term_months"] = term_months;
    return b;
}

json::object rmq_config(const std::string& edition, std::int64_t tps, bool internet = false, std::int64_t bandwidth = 0,
                        const std::string& sub_category = "cluster") {
    return json::object{{"edition", edition}, {"sub_category", sub_category}, {"tps", tps},
                        {"internet_access", internet}, {"bandwidth_mbps", bandwidth}};
}

json::object rocketmq_body(const std::string& id, const std::string& acc, const std::string& billing, json::object price,
                           int term_months = 0, json::object config = rmq_config("standard", 1000)) {
    auto b = purchase_body(id, acc, "rocketmq", billing, std::move(price), term_months);
    b["config"] = std::move(config);
    return b;
}

json::object monthly(std::int64_t v) { return json::object{{"monthly", v}}; }
json::object hourly(std::int64_t v) { return json::object{{"hourly", v}}; }
json::object daily(std::int64_t v) { return json::object{{"daily", v}}; }

std::int64_t sum_settled(const ledger_daemon& l, const std::string& id) {
    std::int64_t total = 0;
    for (const auto& e : l.of_type(id, "instance.settled")) total += num(e.at("data").at("amount"));
    return total;
}

} // namespace

// ============================================================================================
// Kafka (K)
// ============================================================================================

TEST_CASE("kafka subscription: purchase charges price x term and starts not_deployed, deploy -> running (K)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-ks1", 100000);
    auto v = l.buy(purchase_body("ks-1", "acc-ks1", "kafka", "subscription", monthly(30000), 2));
    CHECK(str(v.at("state")) == "not_deployed");
    CHECK(str(v.at("display_state")) == "Not Deployed");
    // K: Not Deployed shows Deploy (auto-renew, a setting rather than a console action, may be listed too).
    CHECK(has(strings(v.at("actions")), "deploy"));
    CHECK_FALSE(has(strings(v.at("actions")), "renew"));
    CHECK_FALSE(has(strings(v.at("actions")), "force-delete"));
    CHECK(v.at("service_available") == false);
    CHECK(str(v.at("expires_at")) == "2026-05-13T06:00:00Z");   // 2 calendar months, same local time
    CHECK(str(v.at("product")) == "kafka");
    CHECK(str(v.at("billing")) == "subscription");
    CHECK(str(v.at("timezone")) == "Asia/Shanghai");
    CHECK(num(v.at("version")) == 1);
    CHECK(v.at("pending").at("force_delete") == false);
    CHECK(v.at("pending").at("config_change").is_null());
    CHECK(l.balance("acc-ks1") == 100000 - 60000);
    // API.md's instance view: every key is there.
    for (const char* k : {"instance_id", "account_id", "product", "billing", "timezone", "state", "display_state",
                          "service_available", "data_retained", "actions", "expires_at", "deadlines", "pending",
                          "config", "price", "auto_renew", "topics", "groups", "version"}) {
        INFO(k);
        CHECK(v.contains(k));
    }
    CHECK(num(v.at("price").at("monthly")) == 30000);
    CHECK(v.at("auto_renew").at("enabled") == false);
    // Deadlines appear only when they apply: no release, suspension, freeze, settlement or renewal attempt.
    for (const char* k : {"release_at", "suspend_at", "freeze_at", "next_auto_renew_at", "next_settlement_at"}) {
        INFO(k);
        CHECK(deadline(v, k).empty());
    }
    const auto acc = l.account("acc-ks1");
    for (const char* k : {"account_id", "currency", "balance", "owed", "overdue_since"}) {
        INFO(k);
        CHECK(acc.contains(k));
    }
    CHECK(str(acc.at("currency")) == "CNY");
    CHECK(num(acc.at("owed")) == 0);
    CHECK(acc.at("overdue_since").is_null());

    // K: Stop is for pay-as-you-go and serverless only.
    auto r = l.try_act("ks-1", "stop");
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");

    l.clock("2026-03-13T07:00:00Z");
    v = l.act("ks-1", "deploy");
    CHECK(str(v.at("state")) == "running");
    CHECK(str(v.at("display_state")) == "Running");
    CHECK(v.at("service_available") == true);
    CHECK(v.at("data_retained") == true);
    const auto actions = strings(v.at("actions"));
    CHECK(has(actions, "renew"));
    CHECK(has(actions, "unsubscribe"));
    CHECK_FALSE(has(actions, "stop"));
    CHECK_FALSE(has(actions, "deploy"));
    CHECK(num(v.at("version")) == 2);
    CHECK(l.types("ks-1") == std::vector<std::string>{"instance.purchased", "instance.deployed"});
    CHECK(str(l.last("ks-1", "instance.deployed").at("effective_at")) == "2026-03-13T07:00:00Z");
    const auto purchased = l.last("ks-1", "instance.purchased").at("data").as_object();
    CHECK(str(purchased.at("expires_at")) == "2026-05-13T06:00:00Z");
    CHECK(num(purchased.at("term_months")) == 2);

    // Deploying twice is not an available action.
    r = l.try_act("ks-1", "deploy");
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");
}


TEST_CASE("kafka subscription: term end -> expired (even never deployed), released 7 days later, catch-up keeps "
          "effective times, delete removes it from the list (K)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-ks2", 100000);
    l.buy(purchase_body("ks-2", "acc-ks2", "kafka", "subscription", monthly(30000), 1));
    l.buy(purchase_body("ks-3", "acc-ks2", "kafka", "subscription", monthly(30000), 1));   // never deployed
    l.act("ks-2", "deploy");
    auto r = l.post("/v1/instances/ks-2/topics", json::object{{"name", "orders"}});
    CHECK((r.status == 200 || r.status == 201));
    r = l.post("/v1/instances/ks-2/groups", json::object{{"name", "g1"}});
    CHECK((r.status == 200 || r.status == 201));

    // One jump over expiry (04-13 06:00Z) and the release 7 days later: the timers fire in order,
    // each effective at its own deadline.
    const auto moved = l.clock("2026-04-23T06:00:00Z");
    CHECK(num(moved.at("fired")) >= 4);

    for (const char* id : {"ks-2", "ks-3"}) {
        INFO(id);
        const auto expired = l.last(id, "instance.expired");
        CHECK(str(expired.at("effective_at")) == "2026-04-13T06:00:00Z");
        CHECK(str(expired.at("data").at("cause")) == "term_ended");
        const auto released = l.last(id, "instance.released");
        CHECK(str(released.at("effective_at")) == "2026-04-20T06:00:00Z");
        CHECK(str(released.at("data").at("cause")) == "deadline");
        const auto v = l.inst(id);
        CHECK(str(v.at("state")) == "released");
        CHECK(str(v.at("display_state")) == "Released");
        CHECK(strings(v.at("actions")) == std::vector<std::string>{"delete"});
        CHECK(v.at("data_retained") == false);
        CHECK(v.at("service_available") == false);
    }
    // Timer events written late (in one clock jump) are recorded when written but effective at
    // their deadlines; the stream's versions are consecutive.
    std::int64_t expect_version = 1;
    for (const auto& e : l.events("ks-2")) {
        CHECK(num(e.at("stream_version")) == expect_version++);
        CHECK(str(e.at("stream")) == "instance-ks-2");
        CHECK(str(e.at("recorded_at")) >= str(e.at("effective_at")));
        CHECK(e.at("hash").is_string());
        CHECK_FALSE(e.at("metadata").at("actor").is_null());
    }
    CHECK(str(l.last("ks-2", "instance.released").at("recorded_at")) == "2026-04-23T06:00:00Z");
    // K: release deletes all topics and groups; the event lists what was destroyed.
    const auto released = l.last("ks-2", "instance.released").at("data").as_object();
    CHECK(strings(released.at("topics")) == std::vector<std::string>{"orders"});
    CHECK(strings(released.at("groups")) == std::vector<std::string>{"g1"});
    CHECK(strings(l.inst("ks-2").at("topics")).empty());

    // The past state, as of a time inside the 7 days.
    const auto past = l.get_ok("/v1/instances/ks-2?as_of=2026-04-15T00:00:00Z");
    CHECK(str(past.at("state")) == "expired");
    CHECK(deadline(past, "release_at") == "2026-04-20T06:00:00Z");

    // After 7 days a subscription can no longer be renewed (K: "cannot be restored").
    r = l.try_act("ks-2", "renew", json::object{{"months", 1}});
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");
    CHECK(str(r.json.at("error").at("state")) == "released");
    CHECK(strings(r.json.at("error").at("allowed_actions")) == std::vector<std::string>{"delete"});

    const auto deleted = l.act("ks-2", "delete");
    CHECK(str(deleted.at("state")) == "deleted");
    const auto list = l.get_ok("/v1/instances?account_id=acc-ks2");
    std::vector<std::string> ids;
    for (const auto& i : list.at("items").as_array()) ids.push_back(str(i.at("instance_id")));
    CHECK(ids == std::vector<std::string>{"ks-3"});
    // The history stays in the ledger.
    CHECK(l.types("ks-2").back() == "instance.deleted");
    CHECK(l.types("ks-2").size() == 7);   // purchased, deployed, topic, group, expired, released, deleted
}

TEST_CASE("kafka subscription: renew within 7 days of expiring restores running, the renewed term starts at the "
          "old expiry (K, Terms)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-ks4", 200000);
    l.buy(purchase_body("ks-4", "acc-ks4", "kafka", "subscription", monthly(30000), 1));
    l.buy(purchase_body("ks-5", "acc-ks4", "kafka", "subscription", monthly(30000), 1));
    l.act("ks-4", "deploy");
    l.act("ks-5", "deploy");
    CHECK(l.balance("acc-ks4") == 140000);

    // Renewal while running extends the term by calendar months (K: Running → Renew).
    l.clock("2026-03-20T00:00:00Z");
    auto v = l.act("ks-5", "renew", json::object{{"months", 2}});
    CHECK(str(v.at("state")) == "running");
    CHECK(str(v.at("expires_at")) == "2026-06-13T06:00:00Z");
    CHECK(l.balance("acc-ks4") == 80000);
    auto renewed = l.last("ks-5", "instance.renewed").at("data").as_object();
    CHECK(num(renewed.at("months")) == 2);
    CHECK(num(renewed.at("amount")) == 60000);
    CHECK(renewed.at("auto") == false);

    l.clock("2026-04-13T06:00:00Z");
    v = l.inst("ks-4");
    CHECK(str(v.at("state")) == "expired");
    CHECK(str(v.at("display_state")) == "Expired");
    CHECK(has(strings(v.at("actions")), "renew"));
    CHECK(has(strings(v.at("actions")), "force-delete"));
    CHECK(deadline(v, "release_at") == "2026-04-20T06:00:00Z");
    CHECK(str(l.inst("ks-5").at("state")) == "running");

    // Day 3 of the 7: renew restores Running, and the new term runs from the old expiry.
    l.clock("2026-04-16T06:00:00Z");
    v = l.act("ks-4", "renew", json::object{{"months", 1}});
    CHECK(str(v.at("state")) == "running");
    CHECK(str(v.at("expires_at")) == "2026-05-13T06:00:00Z");
    CHECK(v.at("service_available") == true);
    CHECK(deadline(v, "release_at").empty());
    CHECK(l.balance("acc-ks4") == 50000);
    renewed = l.last("ks-4", "instance.renewed").at("data").as_object();
    CHECK(str(renewed.at("expires_at")) == "2026-05-13T06:00:00Z");
    CHECK(num(renewed.at("amount")) == 30000);
    CHECK(str(l.last("ks-4", "instance.restored").at("effective_at")) == "2026-04-16T06:00:00Z");

    // The release deadline of the old expiry is moot: nothing happens at 04-20.
    l.clock("2026-04-21T00:00:00Z");
    CHECK(str(l.inst("ks-4").at("state")) == "running");
    CHECK(l.of_type("ks-4", "instance.released").empty());

    // And the renewed term ends at its own expiry.
    l.clock("2026-05-13T06:00:00Z");
    CHECK(str(l.inst("ks-4").at("state")) == "expired");
    CHECK(str(l.last("ks-4", "instance.expired").at("effective_at")) == "2026-05-13T06:00:00Z");
}

TEST_CASE("kafka subscription: expired before it was ever deployed, renewed within 7 days -> not_deployed, then "
          "deploy -> running, a deployed one renewed after expiry -> running (K: only Deploy leads to Running)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-ks6", 200000);
    l.buy(purchase_body("ks-6", "acc-ks6", "kafka", "subscription", monthly(30000), 1));   // never deployed
    l.buy(purchase_body("ks-7", "acc-ks6", "kafka", "subscription", monthly(30000), 1));
    l.act("ks-7", "deploy");

    l.clock("2026-04-15T06:00:00Z");
    CHECK(l.state("ks-6") == "expired");
    CHECK(l.state("ks-7") == "expired");

    auto v = l.act("ks-6", "renew", json::object{{"months", 1}});
    CHECK(str(v.at("state")) == "not_deployed");
    CHECK(str(v.at("display_state")) == "Not Deployed");
    CHECK(v.at("service_available") == false);
    CHECK(str(v.at("state_since")) == "2026-04-15T06:00:00Z");
    CHECK(str(v.at("expires_at")) == "2026-05-13T06:00:00Z");   // the term keeps running from the old expiry
    CHECK(has(strings(v.at("actions")), "deploy"));
    CHECK_FALSE(has(strings(v.at("actions")), "renew"));
    CHECK(deadline(v, "release_at").empty());
    CHECK(str(l.last("ks-6", "instance.restored").at("data").at("cause")) == "renewed");
    CHECK(l.balance("acc-ks6") == 200000 - 3 * 30000);

    v = l.act("ks-7", "renew", json::object{{"months", 1}});
    CHECK(str(v.at("state")) == "running");

    v = l.act("ks-6", "deploy");
    CHECK(str(v.at("state")) == "running");
    CHECK(l.types("ks-6") == std::vector<std::string>{"instance.purchased", "instance.expired", "instance.renewed",
                                                      "instance.restored", "instance.deployed"});
    // The old release deadline is moot for both.
    l.clock("2026-04-23T00:00:00Z");
    CHECK(l.state("ks-6") == "running");
    CHECK(l.state("ks-7") == "running");
    l.verify();
}

TEST_CASE("kafka subscription: unsubscribe (by ticket) expires at once, released 7 days later, force delete of an "
          "expired subscription releases at once (K)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-ks6", 200000);
    l.buy(purchase_body("ks-6", "acc-ks6", "kafka", "subscription", monthly(30000), 3));
    l.buy(purchase_body("ks-7", "acc-ks6", "kafka", "subscription", monthly(30000), 1));
    l.act("ks-6", "deploy");
    l.act("ks-7", "deploy");
    const auto before = l.balance("acc-ks6");

    // Not deployed or running: force delete is not an action.
    auto r = l.try_act("ks-7", "force-delete");
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");

    l.clock("2026-03-20T02:00:00Z");
    auto v = l.act("ks-6", "unsubscribe");
    CHECK(str(v.at("state")) == "expired");
    const auto expired = l.last("ks-6", "instance.expired");
    CHECK(str(expired.at("data").at("cause")) == "unsubscribed");
    CHECK(str(expired.at("effective_at")) == "2026-03-20T02:00:00Z");
    CHECK(l.of_type("ks-6", "instance.unsubscribed").size() == 1);
    CHECK(deadline(v, "release_at") == "2026-03-27T02:00:00Z");
    CHECK(l.balance("acc-ks6") == before);   // decision: no refund

    l.clock("2026-03-27T02:00:00Z");
    CHECK(str(l.inst("ks-6").at("state")) == "released");
    CHECK(str(l.last("ks-6", "instance.released").at("effective_at")) == "2026-03-27T02:00:00Z");

    // ks-7 expires 04-13; a force deletion of a subscription runs at once (K: the task runs when
    // the instance is Expired).
    l.clock("2026-04-14T00:00:00Z");
    CHECK(str(l.inst("ks-7").at("state")) == "expired");
    v = l.act("ks-7", "force-delete");
    CHECK(str(v.at("state")) == "released");
    CHECK(l.of_type("ks-7", "instance.force_delete_requested").size() == 1);
    const auto released = l.last("ks-7", "instance.released");
    CHECK(str(released.at("data").at("cause")) == "force_delete");
    CHECK(str(released.at("effective_at")) == "2026-04-14T00:00:00Z");
    CHECK(str(l.act("ks-7", "delete").at("state")) == "deleted");
}

TEST_CASE("kafka payg: stopped 14:00 on the 13th is released at 08:00 on the 15th local, enable works until then "
          "(K seed example)",
          "[e2e][kafka]") {
    ledger_daemon l("2026-03-13T05:00:00Z");   // 13:00 Asia/Shanghai
    l.open("acc-kp1", 100000);
    l.buy(purchase_body("kp-1", "acc-kp1", "kafka", "payg", hourly(120)));
    l.buy(purchase_body("kp-2", "acc-kp1", "kafka", "payg", hourly(120)));
    auto v = l.act("kp-1", "deploy");
    CHECK(str(v.at("state")) == "running");
    CHECK(strings(v.at("actions")) == std::vector<std::string>{"stop"});   // K: no renew for payg
    l.act("kp-2", "deploy");

    l.clock("2026-03-13T06:00:00Z");   // 14:00 local on the 13th
    v = l.act("kp-1", "stop");
    CHECK(str(v.at("state")) == "stopped");
    CHECK(str(v.at("display_state")) == "Stopped");
    CHECK(v.at("service_available") == false);
    CHECK(v.at("data_retained") == true);
    auto actions = strings(v.at("actions"));
    std::sort(actions.begin(), actions.end());
    CHECK(actions == std::vector<std::string>{"enable", "force-delete"});
    CHECK(deadline(v, "release_at") == "2026-03-15T00:00:00Z");   // 08:00 local on the 15th
    l.act("kp-2", "stop");

    // The last second before 08:00 on the third day: still stopped, enable still available.
    l.clock("2026-03-14T23:59:59Z");
    v = l.inst("kp-1");
    CHECK(str(v.at("state")) == "stopped");
    CHECK(has(strings(v.at("actions")), "enable"));
    v = l.act("kp-2", "enable");
    CHECK(str(v.at("state")) == "running");
    CHECK(deadline(v, "release_at").empty());

    l.clock("2026-03-15T00:00:00Z");
    v = l.inst("kp-1");
    CHECK(str(v.at("state")) == "released");
    const auto released = l.last("kp-1", "instance.released");
    CHECK(str(released.at("effective_at")) == "2026-03-15T00:00:00Z");
    CHECK(str(released.at("data").at("cause")) == "deadline");
    CHECK(str(l.inst("kp-2").at("state")) == "running");

    // Too late to enable.
    const auto r = l.try_act("kp-1", "enable");
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");
}

TEST_CASE("kafka serverless: the 08:00 release is local time in the instance's own zone, also across a DST change "
          "(K, Local time)",
          "[e2e][kafka]") {
    ledger_daemon l("2026-03-13T05:00:00Z");
    l.open("acc-kv1", 1000000);
    auto berlin = purchase_body("kv-1", "acc-kv1", "kafka", "serverless", hourly(200));
    berlin["timezone"] = "Europe/Berlin";
    l.buy(berlin);
    berlin["instance_id"] = "kv-2";
    l.buy(berlin);
    l.act("kv-1", "deploy");

    l.clock("2026-03-13T06:00:00Z");   // 07:00 CET on the 13th
    auto v = l.act("kv-1", "stop");
    CHECK(deadline(v, "release_at") == "2026-03-15T07:00:00Z");   // 08:00 CET on the 15th
    // Serverless is settled hourly like payg: 05:00-06:00 at 200.
    CHECK(sum_settled(l, "kv-1") == 200);

    // Europe/Berlin moves to summer time at 02:00 on 2026-03-29.
    l.clock("2026-03-28T10:00:00Z");
    CHECK(str(l.inst("kv-1").at("state")) == "released");
    CHECK(str(l.last("kv-1", "instance.released").at("effective_at")) == "2026-03-15T07:00:00Z");
    l.act("kv-2", "deploy");
    l.clock("2026-03-28T11:00:00Z");   // 12:00 CET on the 28th
    v = l.act("kv-2", "stop");
    CHECK(deadline(v, "release_at") == "2026-03-30T06:00:00Z");   // 08:00 CEST on the 30th
    l.clock("2026-03-30T05:59:59Z");
    CHECK(str(l.inst("kv-2").at("state")) == "stopped");
    l.clock("2026-03-30T06:00:00Z");
    CHECK(str(l.inst("kv-2").at("state")) == "released");
    CHECK(str(l.last("kv-2", "instance.released").at("effective_at")) == "2026-03-30T06:00:00Z");
    l.verify();
}

TEST_CASE("kafka payg: settlement at the start of each hour charges the running time of the previous hour "
          "(RULES Accounts, E)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-kp3", 10000);
    l.buy(purchase_body("kp-3", "acc-kp3", "kafka", "payg", hourly(120)));
    // Not deployed is not billed, and a payg purchase charges nothing.
    CHECK(l.balance("acc-kp3") == 10000);
    CHECK(deadline(l.inst("kp-3"), "next_settlement_at").empty());

    l.clock("2026-03-13T06:30:00Z");
    auto v = l.act("kp-3", "deploy");
    CHECK(deadline(v, "next_settlement_at") == "2026-03-13T07:00:00Z");

    l.clock("2026-03-13T07:00:00Z");
    auto settled = l.last("kp-3", "instance.settled");
    CHECK(str(settled.at("effective_at")) == "2026-03-13T07:00:00Z");
    CHECK(str(settled.at("data").at("cycle_start")) == "2026-03-13T06:00:00Z");
    CHECK(str(settled.at("data").at("cycle_end")) == "2026-03-13T07:00:00Z");
    CHECK(num(settled.at("data").at("amount")) == 60);   // half an hour at 120/h
    CHECK(l.balance("acc-kp3") == 9940);
    CHECK(deadline(l.inst("kp-3"), "next_settlement_at") == "2026-03-13T08:00:00Z");

    l.clock("2026-03-13T07:15:00Z");
    l.act("kp-3", "stop");
    l.clock("2026-03-13T08:00:00Z");
    settled = l.last("kp-3", "instance.settled");
    CHECK(num(settled.at("data").at("amount")) == 30);   // 15 minutes
    CHECK(l.balance("acc-kp3") == 9910);

    // Stopped time is not billed.
    l.clock("2026-03-13T11:00:00Z");
    CHECK(l.of_type("kp-3", "instance.settled").size() == 2);
    CHECK(l.balance("acc-kp3") == 9910);
    CHECK(deadline(l.inst("kp-3"), "next_settlement_at").empty());

    // The charges are account events naming the instance.
    const auto feed = l.get_ok("/v1/events?after=0&limit=1000");
    std::int64_t charged = 0;
    for (const auto& e : feed.at("items").as_array()) {
        if (str(e.at("type")) != "account.charged") continue;
        CHECK(str(e.at("stream")) == "account-acc-kp3");
        CHECK(str(e.at("data").at("instance_id")) == "kp-3");
        charged += num(e.at("data").at("amount"));
    }
    CHECK(charged == 90);
}

TEST_CASE("kafka payg: a bill that leaves the account owing expires the instance, adding funds that clear the debt "
          "restores it (K, RULES Accounts)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-kp4", 100);
    l.buy(purchase_body("kp-4", "acc-kp4", "kafka", "payg", hourly(120)));
    l.act("kp-4", "deploy");

    l.clock("2026-03-13T07:00:00Z");
    auto a = l.account("acc-kp4");
    CHECK(num(a.at("balance")) == -20);
    CHECK(num(a.at("owed")) == 20);
    CHECK(str(a.at("overdue_since")) == "2026-03-13T07:00:00Z");
    auto v = l.inst("kp-4");
    CHECK(str(v.at("state")) == "expired");
    CHECK(str(v.at("display_state")) == "Expired");
    auto actions = strings(v.at("actions"));
    std::sort(actions.begin(), actions.end());
    CHECK(actions == std::vector<std::string>{"add-funds", "force-delete"});
    CHECK(deadline(v, "release_at") == "2026-03-20T07:00:00Z");
    CHECK(deadline(v, "next_settlement_at").empty());
    const auto expired = l.last("kp-4", "instance.expired");
    CHECK(str(expired.at("data").at("cause")) == "overdue");
    CHECK(str(expired.at("effective_at")) == "2026-03-13T07:00:00Z");

    // Funds that do not clear what is owed change nothing.
    l.clock("2026-03-13T08:00:00Z");
    l.fund("acc-kp4", 10);
    CHECK(str(l.inst("kp-4").at("state")) == "expired");
    CHECK(num(l.account("acc-kp4").at("owed")) == 10);

    l.clock("2026-03-13T09:00:00Z");
    l.fund("acc-kp4", 100000);
    a = l.account("acc-kp4");
    CHECK(num(a.at("balance")) == 99990);
    CHECK(num(a.at("owed")) == 0);
    CHECK(a.at("overdue_since").is_null());
    v = l.inst("kp-4");
    CHECK(str(v.at("state")) == "running");
    const auto restored = l.last("kp-4", "instance.restored");
    CHECK(str(restored.at("effective_at")) == "2026-03-13T09:00:00Z");
    CHECK(deadline(v, "release_at").empty());

    // Billing resumes from the restoration.
    l.clock("2026-03-13T10:00:00Z");
    CHECK(num(l.last("kp-4", "instance.settled").at("data").at("amount")) == 120);
    CHECK(l.balance("acc-kp4") == 99870);
}

TEST_CASE("kafka payg: add-funds, listed on the overdue path (K: \"Renew or add funds\"), is an action: it pays into "
          "the instance's account and the instance is restored (API actions)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-kp9", 100);
    l.buy(purchase_body("kp-9", "acc-kp9", "kafka", "payg", hourly(120)));
    l.act("kp-9", "deploy");

    // Running: add-funds is not offered, and not accepted.
    auto r = l.try_act("kp-9", "add-funds", json::object{{"amount", 1000}, {"reference", "early"}});
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");
    CHECK(strings(r.json.at("error").at("allowed_actions")) == std::vector<std::string>{"stop"});

    l.clock("2026-03-13T07:00:00Z");
    auto v = l.inst("kp-9");
    REQUIRE(str(v.at("state")) == "expired");
    REQUIRE(has(strings(v.at("actions")), "add-funds"));

    // The body of POST /v1/accounts/{id}/funds, with its checks.
    r = l.try_act("kp-9", "add-funds", json::object{{"amount", 0}, {"reference", "zero"}});
    CHECK(r.status == 422);
    CHECK(str(r.json.at("error").at("field")) == "amount");
    r = l.try_act("kp-9", "add-funds", json::object{{"amount", 5}, {"bogus", 1}});
    CHECK(r.status == 400);
    r = l.try_act("ghost", "add-funds", json::object{{"amount", 5}, {"reference", "x"}});
    CHECK(r.status == 404);
    CHECK(r.error_code() == "not_found");
    r = l.post("/v1/instances/kp-9/actions/add-funds", json::object{{"amount", 5}, {"reference", "x"}},
               {{"If-Match", "\"1\""}});
    CHECK(r.status == 412);
    CHECK(num(r.json.at("error").at("version")) == num(v.at("version")));
    CHECK(l.balance("acc-kp9") == -20);

    l.clock("2026-03-13T08:30:00Z");
    const header_list key{{"Idempotency-Key", "pay-kp9"}};
    r = l.post("/v1/instances/kp-9/actions/add-funds", json::object{{"amount", 1000}, {"reference", "wire-kp9"}}, key);
    REQUIRE(r.status == 200);
    v = r.json.as_object();
    CHECK(str(v.at("instance_id")) == "kp-9");
    CHECK(str(v.at("state")) == "running");
    CHECK(v.at("overdue_since").is_null());
    CHECK(deadline(v, "release_at").empty());
    CHECK(strings(v.at("actions")) == std::vector<std::string>{"stop"});
    CHECK(l.balance("acc-kp9") == 980);
    const auto restored = l.last("kp-9", "instance.restored");
    CHECK(str(restored.at("effective_at")) == "2026-03-13T08:30:00Z");
    CHECK(str(restored.at("data").at("cause")) == "paid");
    // The payment is the account's event, with the reference given.
    const auto acc = l.get_ok("/v1/events?after=0&limit=1000");
    std::vector<std::string> refs;
    for (const auto& e : acc.at("items").as_array())
        if (str(e.at("type")) == "account.funds_added") refs.push_back(str(e.at("data").at("reference")));
    CHECK(refs.back() == "wire-kp9");

    // A repeat with the same key answers the same view and writes nothing, even later.
    const auto head = l.head();
    l.clock("2026-03-13T09:30:00Z");
    const auto head_after_bill = l.head();
    CHECK(head_after_bill > head);   // the 09:00 bill
    const auto again =
        l.post("/v1/instances/kp-9/actions/add-funds", json::object{{"amount", 1000}, {"reference", "wire-kp9"}}, key);
    CHECK(again.status == 200);
    CHECK(again.body == r.body);
    CHECK(l.head() == head_after_bill);
    CHECK(l.balance("acc-kp9") == 980 - 60);
    l.verify();
}

TEST_CASE("actions: every action an instance view lists is one POST /v1/instances/{id}/actions/{action} routes, in "
          "every state walked (never 404) (API.md, K's Actions column)",
          "[e2e][kafka][rabbitmq][rocketmq][mqtt]") {
    ledger_daemon l;
    l.open("acc-w1", 10000000);
    l.open("acc-w2", 100);
    l.buy(purchase_body("w-ks1", "acc-w1", "kafka", "subscription", monthly(1000), 1));   // never deployed
    l.buy(purchase_body("w-ks2", "acc-w1", "kafka", "subscription", monthly(1000), 1));
    l.act("w-ks2", "deploy");
    l.buy(purchase_body("w-kp1", "acc-w1", "kafka", "payg", hourly(10)));
    l.act("w-kp1", "deploy");
    l.buy(purchase_body("w-kp2", "acc-w1", "kafka", "serverless", hourly(10)));
    l.act("w-kp2", "deploy");
    l.act("w-kp2", "stop");
    l.buy(rocketmq_body("w-qs1", "acc-w1", "subscription", monthly(1000), 1));
    l.buy(rocketmq_body("w-qp1", "acc-w1", "payg", hourly(10)));
    l.buy(purchase_body("w-rs1", "acc-w1", "rabbitmq", "subscription", monthly(1000), 1));
    l.buy(purchase_body("w-ms1", "acc-w1", "mqtt", "subscription", monthly(1000), 1));
    // On the small account: the first bill leaves it owing, putting both on their overdue paths.
    l.buy(purchase_body("w-kp3", "acc-w2", "kafka", "payg", hourly(120)));
    l.act("w-kp3", "deploy");
    l.buy(rocketmq_body("w-qp2", "acc-w2", "payg", hourly(120)));
    const std::vector<std::string> ids{"w-ks1", "w-ks2", "w-kp1", "w-kp2", "w-qs1", "w-qp1", "w-rs1", "w-ms1", "w-kp3",
                                       "w-qp2"};

    // Each listed action, posted with a body it accepts and a stale If-Match: routed, parsed and
    // judged against the instance's version (412), so nothing is written and the walk can go on.
    std::set<std::string> seen_actions, seen_states;
    const auto walk = [&] {
        for (const auto& id : ids) {
            const auto v = l.inst(id);
            seen_states.insert(str(v.at("product")) + "/" + str(v.at("billing")) + "/" + str(v.at("state")));
            for (const auto& a : strings(v.at("actions"))) {
                json::object body;
                if (a == "renew") body = json::object{{"months", 1}};
                if (a == "auto-renew") body = json::object{{"enabled", true}, {"days_before", 7}};
                if (a == "add-funds") body = json::object{{"amount", 1}, {"reference", "walk"}};
                if (a == "change-config") {
                    body = json::object{{"config", rmq_config("standard", 2000)}, {"price", v.at("price")}};
                }
                const auto r = l.post("/v1/instances/" + id + "/actions/" + a, body, {{"If-Match", "\"999\""}});
                INFO(id << " in " << str(v.at("state")) << ": " << a << " -> " << r.status << " " << r.body);
                CHECK(r.status != 404);
                CHECK(r.status == 412);
                seen_actions.insert(a);
            }
        }
    };
    walk();
    l.clock("2026-03-13T07:00:00Z");   // w-kp3 expired, w-qp2 stopped (overdue)
    walk();
    l.act("w-kp1", "stop");            // no hourly bills on the long jumps below
    l.clock("2026-04-14T00:00:00Z");   // 1-month terms expired; stopped ones released
    walk();
    l.clock("2026-04-29T00:00:00Z");   // RabbitMQ frozen, MQTT suspended
    walk();

    CHECK(seen_actions == std::set<std::string>{"deploy", "stop", "enable", "renew", "add-funds", "unsubscribe",
                                                "force-delete", "delete", "change-config", "auto-renew"});
    for (const char* st : {"kafka/subscription/not_deployed", "kafka/subscription/expired", "kafka/payg/expired",
                           "kafka/serverless/stopped", "rocketmq/payg/stopped", "rocketmq/subscription/expired",
                           "rabbitmq/subscription/frozen", "mqtt/subscription/suspended", "kafka/payg/released"}) {
        INFO(st);
        CHECK(seen_states.count(st) == 1);
    }
    l.verify();
}

TEST_CASE("kafka payg: an overdue instance not paid for is released 7 days after expiring (K)", "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-kp5", 50);
    l.buy(purchase_body("kp-5", "acc-kp5", "kafka", "payg", hourly(120)));
    l.act("kp-5", "deploy");
    l.clock("2026-03-20T06:59:59Z");
    CHECK(str(l.inst("kp-5").at("state")) == "expired");
    l.clock("2026-03-20T07:00:00Z");
    CHECK(str(l.inst("kp-5").at("state")) == "released");
    const auto released = l.last("kp-5", "instance.released");
    CHECK(str(released.at("effective_at")) == "2026-03-20T07:00:00Z");
    CHECK(str(released.at("data").at("cause")) == "deadline");
    // Only the one cycle was billed: expired time is not.
    CHECK(sum_settled(l, "kp-5") == 120);
    // Paying after the release restores nothing.
    l.fund("acc-kp5", 1000);
    CHECK(str(l.inst("kp-5").at("state")) == "released");
}

TEST_CASE("kafka payg: force delete while expired waits for the next settlement, funds added meanwhile do not "
          "restore it (K)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-kp6", 100);
    l.buy(purchase_body("kp-6", "acc-kp6", "kafka", "payg", hourly(120)));
    l.act("kp-6", "deploy");
    l.clock("2026-03-13T07:00:00Z");
    CHECK(str(l.inst("kp-6").at("state")) == "expired");

    l.clock("2026-03-13T07:30:00Z");
    auto v = l.act("kp-6", "force-delete");
    CHECK(str(v.at("state")) == "expired");
    CHECK(v.at("pending").at("force_delete") == true);
    CHECK(deadline(v, "release_at") == "2026-03-13T08:00:00Z");   // the next settlement time
    auto actions = strings(v.at("actions"));
    CHECK_FALSE(has(actions, "add-funds"));
    CHECK_FALSE(has(actions, "force-delete"));
    CHECK(l.of_type("kp-6", "instance.force_delete_requested").size() == 1);

    auto r = l.try_act("kp-6", "force-delete");
    CHECK(r.status == 409);
    CHECK(r.error_code() == "conflict");

    // K: "the instance is still deleted even if funds are added".
    l.clock("2026-03-13T07:45:00Z");
    l.fund("acc-kp6", 1000);
    v = l.inst("kp-6");
    CHECK(str(v.at("state")) == "expired");
    CHECK(v.at("pending").at("force_delete") == true);
    CHECK(l.of_type("kp-6", "instance.restored").empty());

    l.clock("2026-03-13T08:00:00Z");
    v = l.inst("kp-6");
    CHECK(str(v.at("state")) == "released");
    const auto released = l.last("kp-6", "instance.released");
    CHECK(str(released.at("data").at("cause")) == "force_delete");
    CHECK(str(released.at("effective_at")) == "2026-03-13T08:00:00Z");
    CHECK(l.balance("acc-kp6") == 980);
}

TEST_CASE("kafka payg: force delete while stopped refuses enable and releases at the next settlement after the "
          "final bill (K)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-kp7", 10000);
    l.buy(purchase_body("kp-7", "acc-kp7", "kafka", "payg", hourly(120)));
    l.act("kp-7", "deploy");
    l.clock("2026-03-13T06:30:00Z");
    l.act("kp-7", "stop");
    l.clock("2026-03-13T06:40:00Z");
    auto v = l.act("kp-7", "force-delete");
    CHECK(v.at("pending").at("force_delete") == true);
    CHECK(str(v.at("state")) == "stopped");

    const auto r = l.try_act("kp-7", "enable");
    CHECK(r.status == 409);
    CHECK(r.error_code() == "conflict");

    l.clock("2026-03-13T07:00:00Z");
    v = l.inst("kp-7");
    CHECK(str(v.at("state")) == "released");
    const auto released = l.last("kp-7", "instance.released");
    CHECK(str(released.at("data").at("cause")) == "force_delete");
    CHECK(str(released.at("effective_at")) == "2026-03-13T07:00:00Z");
    // The final bill: the half hour it ran, settled before the release.
    CHECK(sum_settled(l, "kp-7") == 60);
    CHECK(l.balance("acc-kp7") == 9940);
    const auto t = l.types("kp-7");
    const auto settled_at = std::find(t.begin(), t.end(), "instance.settled");
    const auto released_at = std::find(t.begin(), t.end(), "instance.released");
    CHECK(settled_at < released_at);
}

TEST_CASE("kafka: topics and groups only while running, stop keeps them, release lists what it destroyed (K)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-kt1", 10000);
    l.buy(purchase_body("kt-1", "acc-kt1", "kafka", "payg", hourly(10)));
    auto r = l.post("/v1/instances/kt-1/topics", json::object{{"name", "orders"}});
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");

    l.act("kt-1", "deploy");
    for (const char* t : {"orders", "payments"}) {
        r = l.post("/v1/instances/kt-1/topics", json::object{{"name", t}});
        CHECK((r.status == 200 || r.status == 201));
    }
    for (const char* g : {"g1", "g2"}) {
        r = l.post("/v1/instances/kt-1/groups", json::object{{"name", g}});
        CHECK((r.status == 200 || r.status == 201));
    }
    r = l.post("/v1/instances/kt-1/topics", json::object{{"name", "orders"}});
    CHECK(r.status == 409);
    CHECK(r.error_code() == "conflict");
    r = l.c.del("/v1/instances/kt-1/topics/payments");
    CHECK((r.status == 200 || r.status == 204));
    r = l.c.del("/v1/instances/kt-1/groups/g2");
    CHECK((r.status == 200 || r.status == 204));
    r = l.c.del("/v1/instances/kt-1/topics/no-such-topic");
    CHECK(r.status == 404);
    CHECK(r.error_code() == "not_found");

    auto v = l.inst("kt-1");
    CHECK(strings(v.at("topics")) == std::vector<std::string>{"orders"});
    CHECK(strings(v.at("groups")) == std::vector<std::string>{"g1"});
    CHECK(l.of_type("kt-1", "instance.topic_created").size() == 2);
    CHECK(str(l.last("kt-1", "instance.topic_deleted").at("data").at("name")) == "payments");
    CHECK(str(l.last("kt-1", "instance.group_deleted").at("data").at("name")) == "g2");

    // K: "Topics, consumer groups, and components are preserved" while stopped, but they cannot
    // be changed (decision).
    l.act("kt-1", "stop");
    v = l.inst("kt-1");
    CHECK(strings(v.at("topics")) == std::vector<std::string>{"orders"});
    r = l.post("/v1/instances/kt-1/topics", json::object{{"name", "late"}});
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");

    l.clock("2026-03-15T00:00:00Z");
    const auto released = l.last("kt-1", "instance.released").at("data").as_object();
    CHECK(strings(released.at("topics")) == std::vector<std::string>{"orders"});
    CHECK(strings(released.at("groups")) == std::vector<std::string>{"g1"});
    v = l.inst("kt-1");
    CHECK(strings(v.at("topics")).empty());
    CHECK(strings(v.at("groups")).empty());
}

TEST_CASE("kafka: instance list filters and pages, pending releases are listed soonest first (API)", "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-kl", 1000000);
    l.buy(purchase_body("kl-1", "acc-kl", "kafka", "payg", hourly(10)));
    l.buy(purchase_body("kl-2", "acc-kl", "kafka", "subscription", monthly(1000), 1));
    l.buy(purchase_body("kl-3", "acc-kl", "kafka", "payg", hourly(10)));
    for (const char* id : {"kl-1", "kl-2", "kl-3"}) l.act(id, "deploy");
    l.act("kl-1", "stop");                 // released 03-15 00:00Z
    l.clock("2026-03-13T08:00:00Z");
    l.act("kl-2", "unsubscribe");          // released 03-20 08:00Z

    auto list = l.get_ok("/v1/instances?state=running&product=kafka");
    std::vector<std::string> ids;
    for (const auto& i : list.at("items").as_array()) ids.push_back(str(i.at("instance_id")));
    CHECK(ids == std::vector<std::string>{"kl-3"});

    list = l.get_ok("/v1/instances?billing=payg&account_id=acc-kl");
    ids.clear();
    for (const auto& i : list.at("items").as_array()) ids.push_back(str(i.at("instance_id")));
    std::sort(ids.begin(), ids.end());
    CHECK(ids == std::vector<std::string>{"kl-1", "kl-3"});

    // Pages of one, following next_cursor to the end.
    ids.clear();
    std::string path = "/v1/instances?product=kafka&limit=1";
    for (int page = 0; page < 10; ++page) {
        list = l.get_ok(path);
        CHECK(list.at("items").as_array().size() <= 1);
        for (const auto& i : list.at("items").as_array()) ids.push_back(str(i.at("instance_id")));
        const auto next = field(list, "next_cursor");
        if (next.is_null() || (next.is_string() && next.as_string().empty())) break;
        path = "/v1/instances?product=kafka&limit=1&cursor=" + str(next);
    }
    std::sort(ids.begin(), ids.end());
    CHECK(ids == std::vector<std::string>{"kl-1", "kl-2", "kl-3"});

    const auto pending = l.get_ok("/v1/releases/pending");
    const auto& items = pending.at("items").as_array();
    REQUIRE(items.size() == 2);
    CHECK(str(items[0].at("instance_id")) == "kl-1");
    CHECK(str(items[0].at("state")) == "stopped");
    CHECK(str(items[0].at("release_at")) == "2026-03-15T00:00:00Z");
    CHECK(str(items[1].at("instance_id")) == "kl-2");
    CHECK(str(items[1].at("state")) == "expired");
    CHECK(str(items[1].at("release_at")) == "2026-03-20T08:00:00Z");
    const auto before = l.get_ok("/v1/releases/pending?before=2026-03-16T00:00:00Z");
    CHECK(before.at("items").as_array().size() == 1);
}

TEST_CASE("payg/serverless overdue: one bill leaving the account owing puts every running payg instance of the "
          "account on its overdue path, subscriptions keep running, paying restores all (RULES Accounts, E, K)",
          "[e2e][kafka][rocketmq]") {
    ledger_daemon l;
    l.open("acc-mix", 10150);
    l.buy(rocketmq_body("mx-sub", "acc-mix", "subscription", monthly(10000), 1));
    CHECK(l.balance("acc-mix") == 150);
    l.buy(purchase_body("mx-k", "acc-mix", "kafka", "payg", hourly(100)));
    l.act("mx-k", "deploy");
    l.buy(rocketmq_body("mx-q", "acc-mix", "payg", hourly(100)));

    // 07:00: two bills of 100 against 150: the account owes 50 and both payg instances lapse,
    // whichever bill came first.
    l.clock("2026-03-13T07:00:00Z");
    CHECK(l.balance("acc-mix") == -50);
    CHECK(str(l.inst("mx-k").at("state")) == "expired");
    CHECK(str(l.inst("mx-q").at("state")) == "stopped");
    CHECK(str(l.last("mx-k", "instance.expired").at("effective_at")) == "2026-03-13T07:00:00Z");
    CHECK(str(l.last("mx-q", "instance.stopped").at("effective_at")) == "2026-03-13T07:00:00Z");
    // E: a subscription runs to its expiry regardless of balance.
    CHECK(str(l.inst("mx-sub").at("state")) == "running");

    l.clock("2026-03-14T00:00:00Z");
    l.fund("acc-mix", 100);
    CHECK(str(l.inst("mx-k").at("state")) == "running");
    CHECK(str(l.inst("mx-q").at("state")) == "running");
    CHECK(str(l.last("mx-q", "instance.restored").at("effective_at")) == "2026-03-14T00:00:00Z");
    l.verify();
}

// ============================================================================================
// RabbitMQ (R)
// ============================================================================================

TEST_CASE("rabbitmq subscription: running from purchase, expired (grace 15 d) -> frozen (retention 15 d) -> "
          "released (R)",
          "[e2e][rabbitmq]") {
    ledger_daemon l;
    l.open("acc-rs1", 100000);
    auto v = l.buy(purchase_body("rs-1", "acc-rs1", "rabbitmq", "subscription", monthly(20000), 1));
    CHECK(str(v.at("state")) == "running");   // R: Running from the time it is purchased
    CHECK(str(v.at("expires_at")) == "2026-04-13T06:00:00Z");
    CHECK(has(strings(v.at("actions")), "renew"));
    CHECK_FALSE(has(strings(v.at("actions")), "stop"));
    CHECK_FALSE(has(strings(v.at("actions")), "unsubscribe"));   // Kafka's
    CHECK(l.balance("acc-rs1") == 80000);

    l.clock("2026-04-13T06:00:00Z");
    v = l.inst("rs-1");
    CHECK(str(v.at("state")) == "expired");
    CHECK(str(v.at("display_state")) == "Expired");
    CHECK(v.at("data_retained") == true);
    // R: "Yearly/Monthly RabbitMQ instances cannot run after their subscription expires" (the
    // seed over RULES.md's usable-grace reading; README "Rules: decisions").
    CHECK(v.at("service_available") == false);
    CHECK(has(strings(v.at("actions")), "renew"));
    CHECK(deadline(v, "freeze_at") == "2026-04-28T06:00:00Z");
    CHECK(deadline(v, "release_at") == "2026-05-13T06:00:00Z");

    l.clock("2026-04-28T06:00:00Z");
    v = l.inst("rs-1");
    CHECK(str(v.at("state")) == "frozen");
    CHECK(str(v.at("display_state")) == "Frozen");
    CHECK(v.at("service_available") == false);
    CHECK(v.at("data_retained") == true);
    CHECK(has(strings(v.at("actions")), "renew"));
    CHECK(deadline(v, "release_at") == "2026-05-13T06:00:00Z");
    CHECK(str(l.last("rs-1", "instance.frozen").at("effective_at")) == "2026-04-28T06:00:00Z");

    l.clock("2026-05-13T06:00:00Z");
    v = l.inst("rs-1");
    CHECK(str(v.at("state")) == "released");
    CHECK(str(l.last("rs-1", "instance.released").at("effective_at")) == "2026-05-13T06:00:00Z");
    CHECK(str(l.last("rs-1", "instance.released").at("data").at("cause")) == "deadline");
    const auto r = l.try_act("rs-1", "renew", json::object{{"months", 1}});
    CHECK(r.status == 409);
}

TEST_CASE("rabbitmq subscription: manual renewal in any state before release restores running, grace and "
          "retention are part of the renewed term (R, Terms)",
          "[e2e][rabbitmq]") {
    ledger_daemon l;
    l.open("acc-rs2", 200000);
    l.buy(purchase_body("rs-2", "acc-rs2", "rabbitmq", "subscription", monthly(20000), 1));
    l.buy(purchase_body("rs-3", "acc-rs2", "rabbitmq", "subscription", monthly(20000), 1));

    l.clock("2026-04-20T00:00:00Z");   // grace
    auto v = l.act("rs-2", "renew", json::object{{"months", 1}});
    CHECK(str(v.at("state")) == "running");
    CHECK(str(v.at("expires_at")) == "2026-05-13T06:00:00Z");

    l.clock("2026-05-01T00:00:00Z");   // rs-3 is in retention (frozen since 04-28)
    CHECK(str(l.inst("rs-3").at("state")) == "frozen");
    v = l.act("rs-3", "renew", json::object{{"months", 2}});
    CHECK(str(v.at("state")) == "running");
    CHECK(str(v.at("expires_at")) == "2026-06-13T06:00:00Z");
    CHECK(v.at("service_available") == true);
    CHECK(str(l.last("rs-3", "instance.restored").at("effective_at")) == "2026-05-01T00:00:00Z");
    CHECK(l.balance("acc-rs2") == 200000 - 40000 - 20000 - 40000);

    // Renewed again after its renewed term lapsed: still from the (new) expiry.
    l.clock("2026-05-20T00:00:00Z");   // rs-2 expired 05-13 again
    CHECK(str(l.inst("rs-2").at("state")) == "expired");
    v = l.act("rs-2", "renew", json::object{{"months", 1}});
    CHECK(str(v.at("expires_at")) == "2026-06-13T06:00:00Z");
}

TEST_CASE("rabbitmq subscription: auto-renew attempts at 03:00 local 7 days before expiry and renews for the term "
          "(R)",
          "[e2e][rabbitmq]") {
    ledger_daemon l;
    l.open("acc-ra1", 100000);
    auto body = purchase_body("ra-1", "acc-ra1", "rabbitmq", "subscription", monthly(20000), 1);
    body["auto_renew"] = json::object{{"enabled", true}, {"days_before", 7}};
    auto v = l.buy(body);
    CHECK(deadline(v, "next_auto_renew_at") == "2026-04-05T19:00:00Z");   // 04-06 03:00 local
    CHECK(v.at("auto_renew").at("enabled") == true);
    CHECK(num(v.at("auto_renew").at("days_before")) == 7);

    l.clock("2026-04-05T18:59:59Z");
    CHECK(l.of_type("ra-1", "instance.renewed").empty());
    l.clock("2026-04-05T19:00:00Z");
    const auto renewed = l.last("ra-1", "instance.renewed");
    CHECK(str(renewed.at("effective_at")) == "2026-04-05T19:00:00Z");
    CHECK(renewed.at("data").at("auto") == true);
    CHECK(num(renewed.at("data").at("months")) == 1);
    CHECK(num(renewed.at("data").at("amount")) == 20000);
    v = l.inst("ra-1");
    CHECK(str(v.at("expires_at")) == "2026-05-13T06:00:00Z");
    CHECK(deadline(v, "next_auto_renew_at") == "2026-05-05T19:00:00Z");
    CHECK(l.balance("acc-ra1") == 60000);

    // The next term renews the same way; the instance never expires.
    l.clock("2026-05-14T00:00:00Z");
    CHECK(str(l.inst("ra-1").at("state")) == "running");
    CHECK(l.of_type("ra-1", "instance.renewed").size() == 2);
    CHECK(str(l.inst("ra-1").at("expires_at")) == "2026-06-13T06:00:00Z");
}

TEST_CASE("rabbitmq subscription: a failed auto-renew deduction retries at 03:00 local every day until expiry, "
          "then the instance expires (R)",
          "[e2e][rabbitmq]") {
    ledger_daemon l;
    l.open("acc-ra2", 25000);
    auto body = purchase_body("ra-2", "acc-ra2", "rabbitmq", "subscription", monthly(20000), 1);
    body["auto_renew"] = json::object{{"enabled", true}, {"days_before", 7}};
    l.buy(body);
    CHECK(l.balance("acc-ra2") == 5000);

    l.clock("2026-04-13T06:00:00Z");
    const auto failed = l.of_type("ra-2", "instance.auto_renew_failed");
    // 03:00 local on 04-06 … 04-13 (the expiry is 14:00 local on 04-13): eight attempts.
    REQUIRE(failed.size() == 8);
    for (std::size_t i = 0; i < failed.size(); ++i) {
        const std::string day = std::to_string(5 + i);
        CHECK(str(failed[i].at("effective_at")) == "2026-04-" + std::string(day.size() == 1 ? "0" : "") + day + "T19:00:00Z");
        CHECK(num(failed[i].at("data").at("required")) == 20000);
        CHECK(num(failed[i].at("data").at("balance")) == 5000);
    }
    CHECK(l.of_type("ra-2", "instance.renewed").empty());
    const auto v = l.inst("ra-2");
    CHECK(str(v.at("state")) == "expired");
    CHECK(deadline(v, "next_auto_renew_at").empty());
    CHECK(l.balance("acc-ra2") == 5000);
}

TEST_CASE("rabbitmq subscription: after failed attempts, funds added make the next daily 03:00 attempt succeed (R)",
          "[e2e][rabbitmq]") {
    ledger_daemon l;
    l.open("acc-ra3", 20000);
    auto body = purchase_body("ra-3", "acc-ra3", "rabbitmq", "subscription", monthly(20000), 1);
    body["auto_renew"] = json::object{{"enabled", true}, {"days_before", 7}};
    l.buy(body);
    l.clock("2026-04-07T00:00:00Z");   // attempts of 04-06 and 04-07 03:00 local failed
    CHECK(l.of_type("ra-3", "instance.auto_renew_failed").size() == 2);
    CHECK(deadline(l.inst("ra-3"), "next_auto_renew_at") == "2026-04-07T19:00:00Z");
    l.fund("acc-ra3", 20000);
    l.clock("2026-04-08T00:00:00Z");
    const auto renewed = l.last("ra-3", "instance.renewed");
    CHECK(str(renewed.at("effective_at")) == "2026-04-07T19:00:00Z");
    CHECK(renewed.at("data").at("auto") == true);
    CHECK(str(l.inst("ra-3").at("expires_at")) == "2026-05-13T06:00:00Z");
    CHECK(l.balance("acc-ra3") == 0);
    l.clock("2026-04-14T00:00:00Z");
    CHECK(str(l.inst("ra-3").at("state")) == "running");
    CHECK(l.of_type("ra-3", "instance.auto_renew_failed").size() == 2);
}

TEST_CASE("rabbitmq subscription: the deduction date is settable, auto-renew enabled late tries the next 03:00, "
          "and can be disabled (R)",
          "[e2e][rabbitmq]") {
    ledger_daemon l;
    l.open("acc-ra4", 500000);
    l.buy(purchase_body("ra-4", "acc-ra4", "rabbitmq", "subscription", monthly(20000), 1));
    l.buy(purchase_body("ra-5", "acc-ra4", "rabbitmq", "subscription", monthly(20000), 1));
    l.buy(purchase_body("ra-6", "acc-ra4", "rabbitmq", "subscription", monthly(20000), 1));
    CHECK(deadline(l.inst("ra-4"), "next_auto_renew_at").empty());

    // 3 days before the expiry date: 04-10 03:00 local.
    auto v = l.act("ra-4", "auto-renew", json::object{{"enabled", true}, {"days_before", 3}});
    CHECK(deadline(v, "next_auto_renew_at") == "2026-04-09T19:00:00Z");
    CHECK(str(l.last("ra-4", "instance.auto_renew_set").at("effective_at")) == start_time);
    CHECK(num(l.last("ra-4", "instance.auto_renew_set").at("data").at("days_before")) == 3);

    l.act("ra-6", "auto-renew", json::object{{"enabled", true}, {"days_before", 7}});
    // Enabled after 04-06 03:00 local (08:00 local on 04-08): the first attempt is the next 03:00.
    l.clock("2026-04-08T00:00:00Z");
    v = l.act("ra-5", "auto-renew", json::object{{"enabled", true}, {"days_before", 7}});
    CHECK(deadline(v, "next_auto_renew_at") == "2026-04-08T19:00:00Z");
    // Disabled before its attempt: ra-6 renewed on 04-06 already; disabling stops the next term's.
    v = l.act("ra-6", "auto-renew", json::object{{"enabled", false}, {"days_before", 7}});
    CHECK(deadline(v, "next_auto_renew_at").empty());
    CHECK(v.at("auto_renew").at("enabled") == false);

    l.clock("2026-04-13T06:00:00Z");
    CHECK(str(l.last("ra-4", "instance.renewed").at("effective_at")) == "2026-04-09T19:00:00Z");
    CHECK(str(l.last("ra-5", "instance.renewed").at("effective_at")) == "2026-04-08T19:00:00Z");
    CHECK(str(l.inst("ra-6").at("expires_at")) == "2026-05-13T06:00:00Z");
    l.clock("2026-05-13T06:00:00Z");
    CHECK(str(l.inst("ra-6").at("state")) == "expired");
    CHECK(l.of_type("ra-6", "instance.renewed").size() == 1);
}

TEST_CASE("rabbitmq subscription: the deduction date may be any lead shorter than the term, 300 days on a 12-month "
          "term, one success renews and the next attempt waits for the next term's window (R)",
          "[e2e][rabbitmq]") {
    ledger_daemon l;
    l.open("acc-ra7", 24000);
    auto b = purchase_body("ra-7", "acc-ra7", "rabbitmq", "subscription", monthly(1000), 12);
    b["auto_renew"] = json::object{{"enabled", true}, {"days_before", 365}};
    auto r = l.post("/v1/instances", b);
    CHECK(r.status == 422);
    CHECK(str(r.json.at("error").at("field")) == "auto_renew");
    b["auto_renew"] = json::object{{"enabled", true}, {"days_before", 300}};
    auto v = l.buy(b);
    CHECK(str(v.at("expires_at")) == "2027-03-13T06:00:00Z");
    // 300 days before 2027-03-13 is 2026-05-17: 03:00 local.
    CHECK(deadline(v, "next_auto_renew_at") == "2026-05-16T19:00:00Z");
    r = l.try_act("ra-7", "auto-renew", json::object{{"enabled", true}, {"days_before", 365}});
    CHECK(r.status == 422);
    CHECK(str(r.json.at("error").at("field")) == "days_before");

    l.clock("2026-05-20T00:00:00Z");
    const auto renewed = l.of_type("ra-7", "instance.renewed");
    REQUIRE(renewed.size() == 1);
    CHECK(str(renewed[0].at("effective_at")) == "2026-05-16T19:00:00Z");
    CHECK(num(renewed[0].at("data").at("months")) == 12);
    v = l.inst("ra-7");
    CHECK(str(v.at("expires_at")) == "2028-03-13T06:00:00Z");
    CHECK(deadline(v, "next_auto_renew_at") == "2027-05-17T19:00:00Z");
    CHECK(l.balance("acc-ra7") == 0);
    l.verify();
}

TEST_CASE("rabbitmq payg: an uncovered bill -> expired (15 d) -> frozen (15 d) -> released from the overdue "
          "moment, paying restores, serverless is not sold (R)",
          "[e2e][rabbitmq]") {
    ledger_daemon l;
    l.open("acc-rp1", 50);
    l.open("acc-rp2", 50);
    auto v = l.buy(purchase_body("rp-1", "acc-rp1", "rabbitmq", "payg", hourly(100)));
    CHECK(str(v.at("state")) == "running");
    CHECK_FALSE(has(strings(v.at("actions")), "renew"));   // R: only yearly/monthly renew
    l.buy(purchase_body("rp-2", "acc-rp2", "rabbitmq", "payg", hourly(100)));

    l.clock("2026-03-13T07:00:00Z");
    for (const char* id : {"rp-1", "rp-2"}) {
        v = l.inst(id);
        CHECK(str(v.at("state")) == "expired");
        CHECK(has(strings(v.at("actions")), "add-funds"));
        CHECK(deadline(v, "freeze_at") == "2026-03-28T07:00:00Z");
        CHECK(deadline(v, "release_at") == "2026-04-12T07:00:00Z");
    }
    CHECK(l.balance("acc-rp1") == -50);

    l.clock("2026-03-30T00:00:00Z");   // retention
    CHECK(str(l.inst("rp-1").at("state")) == "frozen");
    l.fund("acc-rp1", 1000);
    CHECK(str(l.inst("rp-1").at("state")) == "running");

    l.clock("2026-04-12T07:00:00Z");
    CHECK(str(l.inst("rp-2").at("state")) == "released");
    CHECK(str(l.last("rp-2", "instance.frozen").at("effective_at")) == "2026-03-28T07:00:00Z");
    CHECK(str(l.last("rp-2", "instance.released").at("effective_at")) == "2026-04-12T07:00:00Z");

    const auto r = l.post("/v1/instances", purchase_body("rv-1", "acc-rp1", "rabbitmq", "serverless", hourly(100)));
    CHECK(r.status == 422);
    CHECK(r.error_code() == "invalid");
}

// ============================================================================================
// RocketMQ expiry (E)
// ============================================================================================

TEST_CASE("rocketmq subscription: grace period 7 d with service, console and API disabled, renew restores, "
          "otherwise released with all metadata (E)",
          "[e2e][rocketmq]") {
    ledger_daemon l;
    l.open("acc-qs1", 100000);
    for (const char* id : {"qs-1", "qs-2"}) {
        auto v = l.buy(rocketmq_body(id, "acc-qs1", "subscription", monthly(10000), 1));
        CHECK(str(v.at("state")) == "running");
        CHECK(str(v.at("config").at("edition")) == "standard");
        auto r = l.post(std::string("/v1/instances/") + id + "/topics", json::object{{"name", "orders"}});
        CHECK((r.status == 200 || r.status == 201));
        r = l.post(std::string("/v1/instances/") + id + "/groups", json::object{{"name", "g1"}});
        CHECK((r.status == 200 || r.status == 201));
    }

    l.clock("2026-04-13T06:00:00Z");
    auto v = l.inst("qs-1");
    CHECK(str(v.at("state")) == "expired");
    CHECK(str(v.at("display_state")) == "Grace period");
    CHECK(v.at("service_available") == false);
    CHECK(v.at("data_retained") == true);
    CHECK(deadline(v, "release_at") == "2026-04-20T06:00:00Z");
    CHECK(strings(v.at("topics")) == std::vector<std::string>{"orders"});   // metadata retained
    // E: console and API disabled: topic and group operations refused.
    auto r = l.post("/v1/instances/qs-1/topics", json::object{{"name", "late"}});
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");
    r = l.c.del("/v1/instances/qs-1/groups/g1");
    CHECK(r.status == 409);

    l.clock("2026-04-18T00:00:00Z");
    v = l.act("qs-1", "renew", json::object{{"months", 1}});
    CHECK(str(v.at("state")) == "running");
    CHECK(str(v.at("expires_at")) == "2026-05-13T06:00:00Z");
    CHECK(strings(v.at("topics")) == std::vector<std::string>{"orders"});

    l.clock("2026-04-20T06:00:00Z");
    CHECK(str(l.inst("qs-1").at("state")) == "running");
    v = l.inst("qs-2");
    CHECK(str(v.at("state")) == "released");
    const auto released = l.last("qs-2", "instance.released");
    CHECK(str(released.at("effective_at")) == "2026-04-20T06:00:00Z");
    CHECK(strings(released.at("data").at("topics")) == std::vector<std::string>{"orders"});
    CHECK(strings(released.at("data").at("groups")) == std::vector<std::string>{"g1"});
    // E: "All metadata deleted": the configuration too, listed in the event (schema version 2).
    CHECK(released.at("data").at("config") == rmq_config("standard", 1000));
    CHECK(num(released.at("metadata").at("schema_version").at("instance.released")) == 2);
    CHECK(v.at("config").is_null());
    CHECK(strings(v.at("topics")).empty());
    CHECK(l.inst("qs-1").at("config") == rmq_config("standard", 1000));
    l.verify();
}

TEST_CASE("rocketmq payg: an uncovered hourly bill stops the instance (console disabled), paying restores, "
          "released 7 days after stopping (E)",
          "[e2e][rocketmq]") {
    ledger_daemon l;
    l.open("acc-qp1", 50);
    l.open("acc-qp2", 50);
    auto v = l.buy(rocketmq_body("qp-1", "acc-qp1", "payg", hourly(100)));
    CHECK(str(v.at("state")) == "running");
    // E has no manual stop for RocketMQ.
    auto r = l.try_act("qp-1", "stop");
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");
    l.buy(rocketmq_body("qp-2", "acc-qp2", "payg", hourly(100)));
    l.open("acc-qp3", 50);
    l.buy(rocketmq_body("qv-2", "acc-qp3", "serverless", hourly(100)));   // E: serverless alike
    r = l.post("/v1/instances/qp-2/topics", json::object{{"name", "orders"}});
    CHECK((r.status == 200 || r.status == 201));

    l.clock("2026-03-13T07:00:00Z");
    v = l.inst("qp-1");
    CHECK(str(v.at("state")) == "stopped");
    CHECK(str(v.at("display_state")) == "Stopped");
    CHECK(v.at("service_available") == false);
    CHECK(v.at("data_retained") == true);
    CHECK(deadline(v, "release_at") == "2026-03-20T07:00:00Z");
    CHECK(str(l.last("qp-1", "instance.stopped").at("effective_at")) == "2026-03-13T07:00:00Z");
    CHECK(l.state("qv-2") == "stopped");
    CHECK(deadline(l.inst("qv-2"), "release_at") == "2026-03-20T07:00:00Z");
    r = l.post("/v1/instances/qp-1/topics", json::object{{"name", "x"}});
    CHECK(r.status == 409);

    l.clock("2026-03-19T00:00:00Z");
    l.fund("acc-qp1", 100000);
    v = l.inst("qp-1");
    CHECK(str(v.at("state")) == "running");
    CHECK(str(l.last("qp-1", "instance.restored").at("effective_at")) == "2026-03-19T00:00:00Z");

    l.clock("2026-03-20T07:00:00Z");
    CHECK(str(l.inst("qp-1").at("state")) == "running");
    CHECK(str(l.inst("qp-2").at("state")) == "released");
    CHECK(l.state("qv-2") == "released");
    const auto released = l.last("qp-2", "instance.released");
    CHECK(str(released.at("effective_at")) == "2026-03-20T07:00:00Z");
    CHECK(strings(released.at("data").at("topics")) == std::vector<std::string>{"orders"});
}

// ============================================================================================
// RocketMQ configuration changes (Q)
// ============================================================================================

TEST_CASE("rocketmq subscription: upgrade pays (new - old) x remaining months, downgrade refunds, a change in "
          "progress locks topics, groups and further changes for 5 minutes (Q)",
          "[e2e][rocketmq]") {
    ledger_daemon l;
    l.open("acc-qc1", 100000);
    l.buy(rocketmq_body("qc-1", "acc-qc1", "subscription", monthly(10000), 3));   // expires 06-13
    CHECK(l.balance("acc-qc1") == 70000);

    // Q's example shape: bought for several months, upgraded after one: pay the difference for
    // the remaining (two) months.
    l.clock("2026-04-13T06:00:00Z");
    auto v = l.act("qc-1", "change-config",
                   json::object{{"config", rmq_config("standard", 2000)}, {"price", monthly(20000)}});
    CHECK(l.balance("acc-qc1") == 50000);
    CHECK(v.at("pending").at("config_change").is_object());
    CHECK_FALSE(has(strings(v.at("actions")), "change-config"));
    CHECK(num(v.at("config").at("tps")) == 2000);
    auto started = l.last("qc-1", "instance.config_change_started").at("data").as_object();
    CHECK(num(started.at("amount")) == 20000);

    // Q: no topics, groups or further changes while the change is in progress.
    auto r = l.post("/v1/instances/qc-1/topics", json::object{{"name", "orders"}});
    CHECK(r.status == 409);
    CHECK(r.error_code() == "conflict");
    r = l.post("/v1/instances/qc-1/groups", json::object{{"name", "g"}});
    CHECK(r.status == 409);
    CHECK(r.error_code() == "conflict");
    r = l.try_act("qc-1", "change-config", json::object{{"config", rmq_config("standard", 3000)}, {"price", monthly(30000)}});
    CHECK(r.status == 409);
    CHECK(r.error_code() == "conflict");

    l.clock("2026-04-13T06:04:59Z");
    CHECK(l.inst("qc-1").at("pending").at("config_change").is_object());
    l.clock("2026-04-13T06:05:00Z");
    v = l.inst("qc-1");
    CHECK(v.at("pending").at("config_change").is_null());
    CHECK(str(l.last("qc-1", "instance.config_change_completed").at("effective_at")) == "2026-04-13T06:05:00Z");
    CHECK(num(v.at("price").at("monthly")) == 20000);
    r = l.post("/v1/instances/qc-1/topics", json::object{{"name", "orders"}});
    CHECK((r.status == 200 || r.status == 201));

    // One month left: a downgrade refunds the difference for it.
    l.clock("2026-05-13T06:00:00Z");
    l.act("qc-1", "change-config", json::object{{"config", rmq_config("standard", 1500)}, {"price", monthly(15000)}});
    started = l.last("qc-1", "instance.config_change_started").at("data").as_object();
    CHECK(num(started.at("amount")) == -5000);
    CHECK(l.balance("acc-qc1") == 55000);
    bool refunded = false;
    const auto feed = l.get_ok("/v1/events?after=0&limit=1000");
    for (const auto& e : feed.at("items").as_array())
        if (str(e.at("type")) == "account.refunded") {
            refunded = true;
            CHECK(num(e.at("data").at("amount")) == 5000);
            CHECK(str(e.at("data").at("instance_id")) == "qc-1");
            CHECK(str(e.at("stream")) == "account-acc-qc1");
        }
    CHECK(refunded);
    l.clock("2026-05-13T06:10:00Z");

    // Q's table for subscriptions: edition upgrade only, sub-category never, a change of nothing refused.
    r = l.try_act("qc-1", "change-config", json::object{{"config", rmq_config("standard", 1500, false, 0, "standalone")},
                                                         {"price", monthly(15000)}});
    CHECK(r.status == 422);
    CHECK(str(r.json.at("error").at("field")) == "config.sub_category");
    r = l.try_act("qc-1", "change-config", json::object{{"config", rmq_config("standard", 1500)}, {"price", monthly(15000)}});
    CHECK(r.status == 422);
    CHECK(r.error_code() == "invalid");
    l.act("qc-1", "change-config", json::object{{"config", rmq_config("professional", 1500, true, 10)},
                                                 {"price", monthly(25000)}});
    l.clock("2026-05-13T06:20:00Z");
    r = l.try_act("qc-1", "change-config", json::object{{"config", rmq_config("standard", 1500, true, 10)},
                                                         {"price", monthly(15000)}});
    CHECK(r.status == 422);
    CHECK(str(r.json.at("error").at("field")) == "config.edition");
    // An upgrade the balance cannot cover is refused with what it would cost.
    r = l.try_act("qc-1", "change-config", json::object{{"config", rmq_config("enterprise_platinum", 1500, true, 10)},
                                                         {"price", monthly(10000000)}});
    CHECK(r.status == 402);
    CHECK(r.error_code() == "insufficient_balance");
    CHECK(num(r.json.at("error").at("balance")) == l.balance("acc-qc1"));
}

TEST_CASE("rocketmq payg: a configuration change applies the new rate at once, time-weighted in the hour (Q)",
          "[e2e][rocketmq]") {
    ledger_daemon l;
    l.open("acc-qc2", 100000);
    l.buy(rocketmq_body("qc-2", "acc-qc2", "payg", hourly(100)));
    l.clock("2026-03-13T06:30:00Z");
    l.act("qc-2", "change-config", json::object{{"config", rmq_config("professional", 1000)}, {"price", hourly(200)}});
    CHECK(l.balance("acc-qc2") == 100000);   // no difference and no refund
    CHECK(num(l.last("qc-2", "instance.config_change_started").at("data").at("amount")) == 0);
    l.clock("2026-03-13T07:00:00Z");
    CHECK(num(l.last("qc-2", "instance.settled").at("data").at("amount")) == 150);   // 50 + 100
    CHECK(l.balance("acc-qc2") == 99850);
    l.clock("2026-03-13T08:00:00Z");
    CHECK(num(l.last("qc-2", "instance.settled").at("data").at("amount")) == 200);

    // Q's example: Standard Standalone → Professional Standalone is allowed, → Standard Cluster is not.
    l.buy(rocketmq_body("qc-4", "acc-qc2", "payg", hourly(100), 0, rmq_config("standard", 1000, false, 0, "standalone")));
    auto r = l.try_act("qc-4", "change-config", json::object{{"config", rmq_config("standard", 1000, false, 0, "cluster")},
                                                              {"price", hourly(150)}});
    CHECK(r.status == 422);
    CHECK(str(r.json.at("error").at("field")) == "config.sub_category");
    const auto v = l.act("qc-4", "change-config",
                         json::object{{"config", rmq_config("professional", 1000, false, 0, "standalone")},
                                      {"price", hourly(150)}});
    CHECK(str(v.at("config").at("edition")) == "professional");
    CHECK(str(v.at("config").at("sub_category")) == "standalone");
    // Internet access on is an upgrade, bandwidth up or down (after the change completes).
    l.clock("2026-03-13T08:05:00Z");
    l.act("qc-4", "change-config", json::object{{"config", rmq_config("professional", 1000, true, 20, "standalone")},
                                                 {"price", hourly(180)}});
    l.clock("2026-03-13T08:10:00Z");
    l.act("qc-4", "change-config", json::object{{"config", rmq_config("professional", 500, true, 5, "standalone")},
                                                 {"price", hourly(120)}});
    CHECK(num(l.inst("qc-4").at("config").at("bandwidth_mbps")) == 5);
    l.verify();
}

TEST_CASE("rocketmq serverless: edition standard <-> professional only, the current cycle pays the highest rate "
          "used, the new rate from the next cycle (Q)",
          "[e2e][rocketmq]") {
    ledger_daemon l;
    l.open("acc-qv1", 100000);
    auto v = l.buy(rocketmq_body("qv-1", "acc-qv1", "serverless", hourly(100)));
    CHECK(str(v.at("state")) == "running");

    auto r = l.try_act("qv-1", "change-config", json::object{{"config", rmq_config("standard", 2000)}, {"price", hourly(200)}});
    CHECK(r.status == 422);
    CHECK(str(r.json.at("error").at("field")) == "config.tps");
    r = l.try_act("qv-1", "change-config",
                  json::object{{"config", rmq_config("standard", 1000, true, 5)}, {"price", hourly(200)}});
    CHECK(r.status == 422);
    r = l.try_act("qv-1", "change-config",
                  json::object{{"config", rmq_config("enterprise_platinum", 1000)}, {"price", hourly(300)}});
    CHECK(r.status == 422);
    CHECK(str(r.json.at("error").at("field")) == "config.edition");

    l.clock("2026-03-13T06:30:00Z");
    l.act("qv-1", "change-config", json::object{{"config", rmq_config("professional", 1000)}, {"price", hourly(200)}});
    CHECK(l.balance("acc-qv1") == 100000);
    l.clock("2026-03-13T07:00:00Z");
    CHECK(num(l.last("qv-1", "instance.settled").at("data").at("amount")) == 200);   // highest rate used

    // Downgrade back (serverless may): this cycle still pays the highest, the next the new rate.
    l.clock("2026-03-13T07:10:00Z");
    l.act("qv-1", "change-config", json::object{{"config", rmq_config("standard", 1000)}, {"price", hourly(100)}});
    l.clock("2026-03-13T08:00:00Z");
    CHECK(num(l.last("qv-1", "instance.settled").at("data").at("amount")) == 200);
    l.clock("2026-03-13T09:00:00Z");
    CHECK(num(l.last("qv-1", "instance.settled").at("data").at("amount")) == 100);
    CHECK(l.balance("acc-qv1") == 100000 - 500);
}

// ============================================================================================
// MQTT (M)
// ============================================================================================

TEST_CASE("mqtt subscription: grace period 15 d runs normally, service suspension from day 16, released after day "
          "30 with topics and group ids (M)",
          "[e2e][mqtt]") {
    ledger_daemon l;
    l.open("acc-ms1", 100000);
    for (const char* id : {"ms-1", "ms-2"}) {
        auto v = l.buy(purchase_body(id, "acc-ms1", "mqtt", "subscription", monthly(5000), 1));
        CHECK(str(v.at("state")) == "running");
        const auto r = l.post(std::string("/v1/instances/") + id + "/topics", json::object{{"name", "sensors"}});
        CHECK((r.status == 200 || r.status == 201));
    }
    l.clock("2026-04-13T06:00:00Z");
    auto v = l.inst("ms-1");
    CHECK(str(v.at("state")) == "expired");
    CHECK(str(v.at("display_state")) == "Grace period");
    CHECK(v.at("service_available") == true);   // M: runs normally
    CHECK(deadline(v, "suspend_at") == "2026-04-28T06:00:00Z");
    CHECK(deadline(v, "release_at") == "2026-05-13T06:00:00Z");

    // Runs normally in grace: topics can still be managed.
    auto r = l.post("/v1/instances/ms-1/topics", json::object{{"name", "grace-topic"}});
    CHECK((r.status == 200 || r.status == 201));
    l.clock("2026-04-28T05:59:59Z");
    CHECK(str(l.inst("ms-1").at("state")) == "expired");
    l.clock("2026-04-28T06:00:00Z");
    v = l.inst("ms-1");
    CHECK(str(v.at("state")) == "suspended");
    CHECK(str(v.at("display_state")) == "Service suspension");
    CHECK(v.at("service_available") == false);
    CHECK(v.at("data_retained") == true);
    CHECK(str(l.last("ms-1", "instance.suspended").at("effective_at")) == "2026-04-28T06:00:00Z");
    r = l.post("/v1/instances/ms-1/topics", json::object{{"name", "suspended-topic"}});
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");

    // Renewal in suspension restores running.
    l.clock("2026-05-01T00:00:00Z");
    v = l.act("ms-2", "renew", json::object{{"months", 1}});
    CHECK(str(v.at("state")) == "running");
    CHECK(str(v.at("expires_at")) == "2026-05-13T06:00:00Z");

    l.clock("2026-05-13T06:00:00Z");
    v = l.inst("ms-1");
    CHECK(str(v.at("state")) == "released");
    const auto released = l.last("ms-1", "instance.released");
    CHECK(str(released.at("effective_at")) == "2026-05-13T06:00:00Z");
    CHECK(strings(released.at("data").at("topics")) == std::vector<std::string>{"sensors", "grace-topic"});
    CHECK(str(l.inst("ms-2").at("state")) == "expired");   // its renewed term ended the same instant
}

TEST_CASE("mqtt payg: purchase is refused (no longer sold) but import works, daily bill 9 h after the local day, "
          "uncovered -> grace 24 h -> suspended -> released after day 8, paying restores (M)",
          "[e2e][mqtt]") {
    ledger_daemon l;
    l.open("acc-mp1", 100);
    l.open("acc-mp2", 100);
    auto r = l.post("/v1/instances", purchase_body("mp-0", "acc-mp1", "mqtt", "payg", daily(2400)));
    CHECK(r.status == 422);
    CHECK(r.error_code() == "invalid");
    CHECK(str(r.json.at("error").at("field")) == "billing");

    for (const std::string id : {"mp-1", "mp-2"}) {
        auto body = purchase_body(id, id == "mp-1" ? "acc-mp1" : "acc-mp2", "mqtt", "payg", daily(2400));
        body["state"] = "running";
        body["state_since"] = "2026-01-01T00:00:00Z";
        auto v = l.import(body);
        CHECK(str(v.at("state")) == "running");
        // The local day 03-13 (Asia/Shanghai) ends at 16:00Z; its bill is issued 9 h later.
        CHECK(deadline(v, "next_settlement_at") == "2026-03-14T01:00:00Z");
    }
    CHECK(l.of_type("mp-1", "instance.imported").size() == 1);

    l.clock("2026-03-14T01:00:00Z");
    auto settled = l.last("mp-1", "instance.settled");
    CHECK(str(settled.at("data").at("cycle_start")) == "2026-03-12T16:00:00Z");
    CHECK(str(settled.at("data").at("cycle_end")) == "2026-03-13T16:00:00Z");
    CHECK(num(settled.at("data").at("amount")) == 1000);   // billed from the import: 10 of 24 h
    CHECK(l.balance("acc-mp1") == -900);
    auto v = l.inst("mp-1");
    CHECK(str(v.at("state")) == "expired");
    CHECK(str(v.at("display_state")) == "Grace period");
    CHECK(v.at("service_available") == true);
    CHECK(deadline(v, "suspend_at") == "2026-03-15T01:00:00Z");
    CHECK(deadline(v, "release_at") == "2026-03-22T01:00:00Z");

    l.clock("2026-03-15T01:00:00Z");
    v = l.inst("mp-1");
    CHECK(str(v.at("state")) == "suspended");
    CHECK(v.at("service_available") == false);
    CHECK(str(l.last("mp-1", "instance.suspended").at("effective_at")) == "2026-03-15T01:00:00Z");
    // The 24 h grace "runs normally" and is billed (decision): the local day 03-14, running until
    // 01:00Z and in grace after, is billed in full.
    bool day14_billed = false;
    for (const auto& e : l.of_type("mp-1", "instance.settled"))
        if (str(e.at("data").at("cycle_start")) == "2026-03-13T16:00:00Z") {
            day14_billed = true;
            CHECK(num(e.at("data").at("amount")) == 2400);
            CHECK(str(e.at("effective_at")) == "2026-03-15T01:00:00Z");
        }
    CHECK(day14_billed);

    l.clock("2026-03-16T00:00:00Z");
    l.fund("acc-mp2", 100000);
    CHECK(str(l.inst("mp-2").at("state")) == "running");

    l.clock("2026-03-22T01:00:00Z");
    CHECK(str(l.inst("mp-1").at("state")) == "released");
    CHECK(str(l.last("mp-1", "instance.released").at("effective_at")) == "2026-03-22T01:00:00Z");
    CHECK(str(l.inst("mp-2").at("state")) == "running");
    l.verify();
}

// ============================================================================================
// Import (RULES.md "Import of existing instances")
// ============================================================================================

TEST_CASE("import: deadlines already in the past fire at once, effective at the deadline, later ones apply as usual "
          "(Import, Time-driven events)",
          "[e2e][import]") {
    ledger_daemon l;
    l.open("acc-im", 100000);
    // Kafka payg stopped at 14:00 local on 03-10: released at 08:00 local on 03-12 (already past).
    auto body = purchase_body("im-1", "acc-im", "kafka", "payg", hourly(100));
    body["state"] = "stopped";
    body["state_since"] = "2026-03-10T06:00:00Z";
    l.import(body);
    // RocketMQ subscription expired on 03-01: its 7-day grace ended 03-08.
    auto q = rocketmq_body("im-2", "acc-im", "subscription", monthly(1000), 1);
    q["state"] = "expired";
    q["state_since"] = "2026-03-01T00:00:00Z";
    q["expires_at"] = "2026-03-01T00:00:00Z";
    l.import(q);
    // Kafka subscription running, expiring in the future.
    auto k = purchase_body("im-3", "acc-im", "kafka", "subscription", monthly(1000), 1);
    k["state"] = "running";
    k["state_since"] = "2026-02-20T00:00:00Z";
    k["expires_at"] = "2026-03-20T00:00:00Z";
    l.import(k);

    // Overdue states imported with the time they began: the remaining path is timed from it.
    auto e = purchase_body("im-4", "acc-im", "kafka", "payg", hourly(100));
    e["state"] = "expired";
    e["state_since"] = "2026-03-11T00:00:00Z";
    auto v = l.import(e);
    CHECK(deadline(v, "release_at") == "2026-03-18T00:00:00Z");
    auto m = purchase_body("im-5", "acc-im", "mqtt", "payg", daily(100));
    m["state"] = "suspended";
    m["state_since"] = "2026-03-10T00:00:00Z";
    v = l.import(m);
    CHECK(deadline(v, "release_at") == "2026-03-17T00:00:00Z");
    auto f = purchase_body("im-6", "acc-im", "rabbitmq", "payg", hourly(100));
    f["state"] = "frozen";
    f["state_since"] = "2026-03-01T00:00:00Z";
    v = l.import(f);
    CHECK(deadline(v, "release_at") == "2026-03-16T00:00:00Z");
    CHECK(str(v.at("display_state")) == "Frozen");

    // "fire at once": without moving the clock.
    const auto deadline_at = std::chrono::steady_clock::now() + std::chrono::seconds(3);
    while (std::chrono::steady_clock::now() < deadline_at &&
           (l.state("im-1") != "released" || l.state("im-2") != "released"))
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(l.state("im-1") == "released");
    CHECK(l.state("im-2") == "released");
    // Whether or not they fired at once, nudging the clock by nothing must not change their times.
    const auto nudged = l.post("/v1/clock", json::object{{"advance_seconds", 0}});
    CHECK(nudged.status == 200);
    CHECK(l.state("im-1") == "released");
    CHECK(str(l.last("im-1", "instance.released").at("effective_at")) == "2026-03-12T00:00:00Z");
    CHECK(str(l.last("im-2", "instance.released").at("effective_at")) == "2026-03-08T00:00:00Z");
    CHECK(l.state("im-3") == "running");
    // An import charges nothing.
    CHECK(l.balance("acc-im") == 100000);

    l.clock("2026-03-20T00:00:00Z");
    CHECK(l.state("im-3") == "expired");
    CHECK(str(l.last("im-4", "instance.released").at("effective_at")) == "2026-03-18T00:00:00Z");
    CHECK(str(l.last("im-5", "instance.released").at("effective_at")) == "2026-03-17T00:00:00Z");
    CHECK(str(l.last("im-6", "instance.released").at("effective_at")) == "2026-03-16T00:00:00Z");
    CHECK(str(l.last("im-3", "instance.expired").at("effective_at")) == "2026-03-20T00:00:00Z");
}

TEST_CASE("terms: a term ends at the same local time N calendar months later, clamped to the month's last day, a "
          "renewal adds months to the current expiry (Terms)",
          "[e2e][terms]") {
    ledger_daemon l("2028-01-31T02:00:00Z");   // 10:00 on 01-31 Asia/Shanghai
    l.open("acc-t1", 100000);
    auto v = l.buy(purchase_body("t-1", "acc-t1", "mqtt", "subscription", monthly(1000), 1));
    CHECK(str(v.at("expires_at")) == "2028-02-29T02:00:00Z");   // leap year
    v = l.buy(purchase_body("t-2", "acc-t1", "rabbitmq", "subscription", monthly(1000), 13));
    CHECK(str(v.at("expires_at")) == "2029-02-28T02:00:00Z");
    v = l.act("t-1", "renew", json::object{{"months", 1}});
    CHECK(str(v.at("expires_at")) == "2028-03-29T02:00:00Z");   // from 02-29, the day drifts (decision)
    CHECK(l.balance("acc-t1") == 100000 - 1000 - 13000 - 1000);
    l.clock("2028-03-29T02:00:00Z");
    CHECK(l.state("t-1") == "expired");
    CHECK(str(l.last("t-1", "instance.expired").at("effective_at")) == "2028-03-29T02:00:00Z");
}

TEST_CASE("kafka payg: stop, enable, stop again: the release is 08:00 local on the third local day of the latest stop "
          "(K, Local time)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-kp8", 100000);
    l.buy(purchase_body("kp-8", "acc-kp8", "kafka", "payg", hourly(10)));
    l.act("kp-8", "deploy");
    auto v = l.act("kp-8", "stop");   // 14:00 local on the 13th
    CHECK(deadline(v, "release_at") == "2026-03-15T00:00:00Z");
    l.clock("2026-03-14T02:00:00Z");
    v = l.act("kp-8", "enable");
    CHECK(str(v.at("state")) == "running");
    CHECK(deadline(v, "release_at").empty());
    // 01:00 local on the 15th is still the 14th in UTC: the days are counted locally.
    l.clock("2026-03-14T17:00:00Z");
    v = l.act("kp-8", "stop");
    CHECK(deadline(v, "release_at") == "2026-03-17T00:00:00Z");   // 08:00 local on the 17th
    l.clock("2026-03-16T00:00:00Z");   // the first stop's deadline has no effect any more
    CHECK(l.state("kp-8") == "stopped");
    l.clock("2026-03-17T00:00:00Z");
    CHECK(l.state("kp-8") == "released");
    CHECK(str(l.last("kp-8", "instance.released").at("effective_at")) == "2026-03-17T00:00:00Z");
}

TEST_CASE("kafka serverless: a bill that leaves the account owing expires it, funds that bring the balance back to "
          "exactly zero restore it (K, RULES Accounts: zero or above)",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-kv3", 100);
    l.buy(purchase_body("kv-3", "acc-kv3", "kafka", "serverless", hourly(120)));
    l.act("kv-3", "deploy");
    l.clock("2026-03-13T07:00:00Z");
    CHECK(l.state("kv-3") == "expired");
    CHECK(str(l.last("kv-3", "instance.expired").at("data").at("cause")) == "overdue");
    CHECK(l.balance("acc-kv3") == -20);
    l.clock("2026-03-13T07:30:00Z");
    l.fund("acc-kv3", 20);
    CHECK(l.balance("acc-kv3") == 0);
    CHECK(l.state("kv-3") == "running");
    CHECK(str(l.last("kv-3", "instance.restored").at("effective_at")) == "2026-03-13T07:30:00Z");
    // Billing resumes at the restoration: half an hour at 120/h, owing again.
    l.clock("2026-03-13T08:00:00Z");
    CHECK(num(l.last("kv-3", "instance.settled").at("data").at("amount")) == 60);
    CHECK(l.state("kv-3") == "expired");
    CHECK(str(l.last("kv-3", "instance.expired").at("effective_at")) == "2026-03-13T08:00:00Z");
}

TEST_CASE("rocketmq subscription: a mid-month upgrade pays the difference for the elapsed-time fraction of the "
          "remaining partial month (Q, decision)",
          "[e2e][rocketmq]") {
    ledger_daemon l;
    l.open("acc-qc3", 100000);
    l.buy(rocketmq_body("qc-3", "acc-qc3", "subscription", monthly(10000), 1));   // 03-13 → 04-13, 31 days
    // 15.5 of the 31 days remain: half a month of a 10,000 difference.
    l.clock("2026-03-28T18:00:00Z");
    l.act("qc-3", "change-config", json::object{{"config", rmq_config("standard", 2000)}, {"price", monthly(20000)}});
    CHECK(num(l.last("qc-3", "instance.config_change_started").at("data").at("amount")) == 5000);
    CHECK(l.balance("acc-qc3") == 100000 - 10000 - 5000);
    // A renewal afterwards charges the new monthly price.
    l.clock("2026-03-29T00:00:00Z");
    const auto v = l.act("qc-3", "renew", json::object{{"months", 1}});
    CHECK(num(l.last("qc-3", "instance.renewed").at("data").at("amount")) == 20000);
    CHECK(str(v.at("expires_at")) == "2026-05-13T06:00:00Z");
}

TEST_CASE("rabbitmq subscription: auto-renewal can be enabled only before expiry (R)", "[e2e][rabbitmq]") {
    ledger_daemon l;
    l.open("acc-ra7", 100000);
    l.buy(purchase_body("ra-7", "acc-ra7", "rabbitmq", "subscription", monthly(20000), 1));
    CHECK(has(strings(l.inst("ra-7").at("actions")), "auto-renew"));
    l.clock("2026-04-14T00:00:00Z");
    CHECK(l.state("ra-7") == "expired");
    CHECK_FALSE(has(strings(l.inst("ra-7").at("actions")), "auto-renew"));
    const auto r = l.try_act("ra-7", "auto-renew", json::object{{"enabled", true}, {"days_before", 7}});
    CHECK(r.status == 409);
    CHECK(r.error_code() == "invalid_transition");
    CHECK(str(r.json.at("error").at("state")) == "expired");
}

namespace {

// The lifecycle of one account's instances, each event as (type, effective_at, data): what must
// not depend on how the clock got there.
std::vector<std::string> history(const ledger_daemon& l, const std::vector<std::string>& ids) {
    std::vector<std::string> out;
    for (const auto& id : ids)
        for (const auto& e : l.events(id))
            out.push_back(id + " " + str(e.at("type")) + " @" + str(e.at("effective_at")) + " " + json::serialize(e.at("data")));
    return out;
}

void catch_up_scenario(const ledger_daemon& l) {
    l.open("acc-cu", 25000 + 250);
    auto rabbit = purchase_body("cu-r", "acc-cu", "rabbitmq", "subscription", monthly(25000), 1);
    rabbit["auto_renew"] = json::object{{"enabled", true}, {"days_before", 3}};
    l.buy(rabbit);   // balance 250: every auto-renew attempt fails
    l.buy(purchase_body("cu-k", "acc-cu", "kafka", "payg", hourly(120)));
    l.act("cu-k", "deploy");   // 07:00 → 130, 08:00 → 10, 09:00 → -110: overdue
    auto mqtt = purchase_body("cu-m", "acc-cu", "mqtt", "payg", daily(2400));
    mqtt["state"] = "running";
    mqtt["state_since"] = "2026-03-01T00:00:00Z";
    l.import(mqtt);
}

} // namespace

TEST_CASE("time-driven events: one clock jump over two months writes the same history, effective at the same "
          "deadlines, as moving day by day (RULES Time-driven events)",
          "[e2e][timers]") {
    ledger_daemon stepwise;
    ledger_daemon jump;
    catch_up_scenario(stepwise);
    catch_up_scenario(jump);

    // 03-13 06:00Z + 65 days covers: hourly bills and the Kafka overdue release, the MQTT daily
    // bills, grace, suspension and release, the RabbitMQ failed attempts, expiry, freeze, release.
    for (int day = 1; day <= 65; ++day) {
        const auto r = stepwise.post("/v1/clock", json::object{{"advance_seconds", 86400}});
        REQUIRE(r.status == 200);
    }
    jump.clock("2026-05-17T06:00:00Z");
    CHECK(str(stepwise.get_ok("/v1/clock").at("now")) == "2026-05-17T06:00:00Z");

    const std::vector<std::string> ids{"cu-r", "cu-k", "cu-m"};
    const auto a = history(stepwise, ids);
    const auto b = history(jump, ids);
    CHECK(a == b);
    for (const auto& id : ids) CHECK(stepwise.state(id) == "released");
    CHECK(str(jump.last("cu-k", "instance.released").at("effective_at")) == "2026-03-20T09:00:00Z");
    CHECK(str(jump.last("cu-r", "instance.released").at("effective_at")) == "2026-05-13T06:00:00Z");
    CHECK(jump.of_type("cu-r", "instance.auto_renew_failed").size() == 4);   // 04-10 … 04-13 03:00 local
    CHECK(jump.balance("acc-cu") == stepwise.balance("acc-cu"));
    stepwise.verify();
    jump.verify();
}

TEST_CASE("local time: a 03:00 that does not exist (DST gap) moves forward to the first instant that exists, an "
          "ambiguous 03:00 takes the earlier instant, and is tried once that day (RULES Local time, R)",
          "[e2e][rabbitmq][dst]") {
    // Europe/Helsinki: on 2026-03-29 03:00 EET jumps to 04:00 EEST; on 2026-10-25 04:00 EEST falls
    // back to 03:00 EET, so 03:00-04:00 local happens twice.
    {
        ledger_daemon l;   // 2026-03-13T06:00Z = 08:00 EET
        l.open("acc-dst1", 700);
        auto body = purchase_body("dst-1", "acc-dst1", "rabbitmq", "subscription", monthly(500), 1);
        body["timezone"] = "Europe/Helsinki";
        body["auto_renew"] = json::object{{"enabled", true}, {"days_before", 27}};
        auto v = l.buy(body);
        CHECK(str(v.at("expires_at")) == "2026-04-13T05:00:00Z");   // 08:00 EEST
        CHECK(deadline(v, "next_auto_renew_at") == "2026-03-17T01:00:00Z");
        l.clock("2026-04-13T05:00:00Z");
        std::vector<std::string> at;
        for (const auto& e : l.of_type("dst-1", "instance.auto_renew_failed")) at.push_back(str(e.at("effective_at")));
        CHECK(at.size() == 28);   // 03-17 … 04-13, one a day
        CHECK(std::count(at.begin(), at.end(), "2026-03-28T01:00:00Z") == 1);   // 03:00 EET
        CHECK(std::count(at.begin(), at.end(), "2026-03-29T01:00:00Z") == 1);   // no 03:00: 04:00 EEST
        CHECK(std::count(at.begin(), at.end(), "2026-03-30T00:00:00Z") == 1);   // 03:00 EEST
        CHECK(l.state("dst-1") == "expired");
    }
    {
        ledger_daemon l("2026-10-01T00:00:00Z");   // 03:00 EEST
        l.open("acc-dst2", 700);
        auto body = purchase_body("dst-2", "acc-dst2", "rabbitmq", "subscription", monthly(500), 1);
        body["timezone"] = "Europe/Helsinki";
        body["auto_renew"] = json::object{{"enabled", true}, {"days_before", 27}};
        auto v = l.buy(body);
        CHECK(str(v.at("expires_at")) == "2026-11-01T01:00:00Z");   // 03:00 EET
        l.clock("2026-11-01T01:00:00Z");
        std::vector<std::string> at;
        for (const auto& e : l.of_type("dst-2", "instance.auto_renew_failed")) at.push_back(str(e.at("effective_at")));
        CHECK(at.size() == 27);   // 10-05 … 10-31, one a day
        CHECK(std::count(at.begin(), at.end(), "2026-10-24T00:00:00Z") == 1);   // 03:00 EEST
        CHECK(std::count(at.begin(), at.end(), "2026-10-25T00:00:00Z") == 1);   // the earlier 03:00
        CHECK(std::count(at.begin(), at.end(), "2026-10-25T01:00:00Z") == 0);   // not again at the later one
        CHECK(std::count(at.begin(), at.end(), "2026-10-26T01:00:00Z") == 1);   // 03:00 EET
        CHECK(l.state("dst-2") == "expired");
    }
}

TEST_CASE("vocabulary: the time zone defaults to Asia/Shanghai (decision) and local rules follow it", "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-tz", 100000);
    auto body = purchase_body("tz-1", "acc-tz", "kafka", "payg", hourly(10));
    body.erase("timezone");
    auto v = l.buy(body);
    CHECK(str(v.at("timezone")) == "Asia/Shanghai");
    l.act("tz-1", "deploy");
    v = l.act("tz-1", "stop");   // 14:00 on the 13th in Shanghai
    CHECK(deadline(v, "release_at") == "2026-03-15T00:00:00Z");
}

TEST_CASE("payg overdue: a bill that leaves the balance negative starts the overdue path of its running instance "
          "even when the account already owed (decision), paying the whole debt restores both",
          "[e2e][kafka]") {
    ledger_daemon l;
    l.open("acc-od", 100);
    l.buy(purchase_body("od-a", "acc-od", "kafka", "payg", hourly(120)));
    l.buy(purchase_body("od-b", "acc-od", "kafka", "payg", hourly(120)));
    l.act("od-a", "deploy");
    l.act("od-b", "deploy");
    l.clock("2026-03-13T06:30:00Z");
    l.act("od-b", "stop");
    l.clock("2026-03-13T07:00:00Z");   // bills 120 + 60 against 100
    CHECK(l.balance("acc-od") == -80);
    CHECK(l.state("od-a") == "expired");
    CHECK(l.state("od-b") == "stopped");   // not running: its manual stop is untouched
    l.clock("2026-03-13T07:10:00Z");
    CHECK(str(l.act("od-b", "enable").at("state")) == "running");
    l.clock("2026-03-13T08:00:00Z");   // 50 minutes at 120/h
    CHECK(num(l.last("od-b", "instance.settled").at("data").at("amount")) == 100);
    CHECK(l.balance("acc-od") == -180);
    CHECK(l.state("od-b") == "expired");
    const auto expired = l.last("od-b", "instance.expired");
    CHECK(str(expired.at("data").at("cause")) == "overdue");
    CHECK(str(expired.at("effective_at")) == "2026-03-13T08:00:00Z");
    CHECK(str(l.account("acc-od").at("overdue_since")) == "2026-03-13T07:00:00Z");

    l.fund("acc-od", 180);
    CHECK(l.state("od-a") == "running");
    CHECK(l.state("od-b") == "running");
    l.verify();
}

TEST_CASE("money: a cycle's charge is rate x billable time, rounded half-up once per cycle (RULES Money)",
          "[e2e][kafka]") {
    ledger_daemon l("2026-03-13T06:59:00Z");
    l.open("acc-rd", 100000);
    for (const char* id : {"rd-1", "rd-2", "rd-3"}) l.buy(purchase_body(id, "acc-rd", "kafka", "payg", hourly(30)));
    l.act("rd-1", "deploy");                 // 1 minute at 30/h = 0.5 → 1
    l.clock("2026-03-13T07:00:00Z");
    CHECK(num(l.last("rd-1", "instance.settled").at("data").at("amount")) == 1);
    l.act("rd-2", "deploy");
    l.clock("2026-03-13T07:20:00Z");
    l.act("rd-2", "stop");                   // 20 minutes at 30/h = 10
    l.act("rd-3", "deploy");
    l.clock("2026-03-13T07:21:30Z");
    l.act("rd-3", "stop");                   // 90 s at 30/h = 0.75 → 1
    l.clock("2026-03-13T08:00:00Z");
    CHECK(num(l.last("rd-2", "instance.settled").at("data").at("amount")) == 10);
    CHECK(num(l.last("rd-3", "instance.settled").at("data").at("amount")) == 1);
    CHECK(num(l.last("rd-1", "instance.settled").at("data").at("amount")) == 30);
    CHECK(l.balance("acc-rd") == 100000 - 1 - 10 - 1 - 30);
}

TEST_CASE("accounts: funds raise and manual charges lower the balance, both are account events with their data "
          "(RULES Accounts and payments)",
          "[e2e][accounts]") {
    ledger_daemon l;
    l.open("acc-m", 0);
    CHECK(l.balance("acc-m") == 0);
    auto a = l.fund("acc-m", 1500);
    CHECK(num(a.at("balance")) == 1500);
    const auto r = l.post("/v1/accounts/acc-m/charges", json::object{{"amount", 500}, {"instance_id", "i-x"},
                                                                      {"reason", "usage"}, {"reference", "inv-1"}});
    REQUIRE(r.status == 200);
    CHECK(num(r.json.at("balance")) == 1000);
    CHECK(str(r.json.at("account_id")) == "acc-m");
    std::vector<std::string> types;
    const auto feed = l.get_ok("/v1/events?after=0&limit=100");
    for (const auto& e : feed.at("items").as_array()) {
        CHECK(str(e.at("stream")) == "account-acc-m");
        types.push_back(str(e.at("type")));
        if (str(e.at("type")) == "account.funds_added") {
            CHECK(num(e.at("data").at("amount")) == 1500);
            CHECK(str(e.at("data").at("reference")) == "wire-1500");
        }
        if (str(e.at("type")) == "account.charged") {
            CHECK(num(e.at("data").at("amount")) == 500);
            CHECK(str(e.at("data").at("instance_id")) == "i-x");
            CHECK(str(e.at("data").at("reason")) == "usage");
            CHECK(str(e.at("data").at("reference")) == "inv-1");
        }
        if (str(e.at("type")) == "account.opened") CHECK(str(e.at("data").at("currency")) == "CNY");
    }
    CHECK(types == std::vector<std::string>{"account.opened", "account.funds_added", "account.charged"});
}

TEST_CASE("time-driven events: deadlines that passed while the daemon was down fire at start-up, effective at their "
          "deadlines, in due order (RULES Time-driven events, DESIGN catch-up)",
          "[e2e][timers][restart]") {
    scratch_database db;
    migrate(db);
    const auto serve = [&](std::uint16_t port, const std::string& start) {
        return std::vector<std::string>{"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url",
                                        db.url(), "--insecure-no-auth", "--clock", "manual", "--clock-start", start};
    };
    const auto ok = [](const http_result& r, int status) {
        INFO(r.status << " " << r.body);
        REQUIRE(r.status == status);
        return r.json;
    };
    {
        const auto port = free_port();
        daemon_process d(serve(port, start_time), port);
        const auto c = d.client();
        ok(c.post("/v1/accounts", json::object{{"account_id", "acc-dn"}, {"currency", "CNY"}}), 201);
        ok(c.post("/v1/accounts/acc-dn/funds", json::object{{"amount", 100000}, {"reference", "w"}}), 200);
        ok(c.post("/v1/instances", purchase_body("dn-p", "acc-dn", "kafka", "payg", hourly(10))), 201);
        ok(c.post("/v1/instances", purchase_body("dn-s", "acc-dn", "kafka", "subscription", monthly(1000), 1)), 201);
        ok(c.post("/v1/instances/dn-p/actions/deploy", json::object{}), 200);
        ok(c.post("/v1/instances/dn-p/actions/stop", json::object{}), 200);   // released 03-15 00:00Z
        CHECK(d.stop() == 0);
    }
    // Down from 03-13 to 04-21: the stopped release (03-15), the expiry (04-13) and the expired
    // release (04-20) all passed.
    const auto port = free_port();
    daemon_process d(serve(port, "2026-04-21T00:00:00Z"), port);
    const auto c = d.client();
    const auto state_of = [&](const std::string& id) { return str(ok(c.get("/v1/instances/" + id), 200).at("state")); };
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < until && (state_of("dn-p") != "released" || state_of("dn-s") != "released"))
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(state_of("dn-p") == "released");
    CHECK(state_of("dn-s") == "released");
    std::vector<std::string> seen;
    for (const auto& id : {"dn-p", "dn-s"}) {
        const auto evs = ok(c.get(std::string("/v1/instances/") + id + "/events"), 200).at("items").as_array();
        for (const auto& e : evs) {
            const auto type = str(e.at("type"));
            if (type != "instance.expired" && type != "instance.released") continue;
            seen.push_back(std::string(id) + " " + type + " @" + str(e.at("effective_at")));
            CHECK(str(e.at("recorded_at")) >= "2026-04-21T00:00:00Z");
        }
    }
    CHECK(seen == std::vector<std::string>{"dn-p instance.released @2026-03-15T00:00:00Z",
                                           "dn-s instance.expired @2026-04-13T06:00:00Z",
                                           "dn-s instance.released @2026-04-20T06:00:00Z"});
}

TEST_CASE("auto-renew: every subscription product renews at 03:00 local N days before expiry (R, decision for K, E, "
          "M)",
          "[e2e][kafka][rocketmq][mqtt]") {
    ledger_daemon l;
    l.open("acc-ar", 100000);
    auto k = purchase_body("ar-k", "acc-ar", "kafka", "subscription", monthly(1000), 2);
    auto q = rocketmq_body("ar-q", "acc-ar", "subscription", monthly(2000), 2);
    auto m = purchase_body("ar-m", "acc-ar", "mqtt", "subscription", monthly(3000), 2);
    for (auto* b : {&k, &q, &m}) (*b)["auto_renew"] = json::object{{"enabled", true}, {"days_before", 5}};
    for (const auto& b : {k, q, m}) {
        const auto v = l.buy(b);
        CHECK(deadline(v, "next_auto_renew_at") == "2026-05-07T19:00:00Z");   // 05-08 03:00 local
    }
    CHECK(l.balance("acc-ar") == 100000 - 12000);
    l.clock("2026-05-14T00:00:00Z");
    for (const char* id : {"ar-k", "ar-q", "ar-m"}) {
        INFO(id);
        const auto renewed = l.last(id, "instance.renewed");
        CHECK(str(renewed.at("effective_at")) == "2026-05-07T19:00:00Z");
        CHECK(num(renewed.at("data").at("months")) == 2);   // the instance's term (decision)
        CHECK(str(l.inst(id).at("expires_at")) == "2026-07-13T06:00:00Z");
        CHECK(l.state(id) != "expired");
    }
    CHECK(l.state("ar-k") == "not_deployed");   // a Kafka term runs from purchase, deployed or not
    CHECK(l.balance("acc-ar") == 100000 - 24000);
}
