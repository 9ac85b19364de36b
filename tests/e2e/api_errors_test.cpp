// Every error status of API.md's "Errors" table, over real HTTP against a real PostgreSQL: each
// refusal has the documented code and extra fields, and writes nothing (the ledger head does not
// move). Also the Idempotency-Key and If-Match contracts, alone and under concurrent requests.
#include "tests/e2e/http_client.h"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace mqledger::test;
namespace json = boost::json;

namespace {


/// error[k] of an error body, or null.
json::value err(const http_result& r, std::string_view k) {
    if (!r.json.is_object()) return nullptr;
    const auto* e = r.json.as_object().if_contains("error");
    if (!e || !e->is_object()) return nullptr;
    const auto* v = e->as_object().if_contains(k);
    return v ? *v : json::value();
}

bool migrate(const scratch_database& db) {
    const auto r = run_mqledger({"migrate", "--database-url", db.url()});
    if (r.exit_code != 0) throw std::runtime_error("mqledger migrate failed: " + r.err);
    return true;
}

std::vector<std::string> serve_args(std::uint16_t port, const std::string& db, const std::string& tokens) {
    std::vector<std::string> a{"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db,
                               "--clock", "manual", "--clock-start", "2026-03-13T06:00:00Z"};
    if (tokens.empty()) a.emplace_back("--insecure-no-auth");
    else {
        a.emplace_back("--tokens");
        a.push_back(tokens);
    }
    return a;
}

/// A migrated scratch database and a daemon with the manual clock; without a tokens file it runs
/// with --insecure-no-auth, with one every call carries `auth` (admin unless changed).
class ledger_daemon {
public:
    explicit ledger_daemon(const std::string& tokens_file = "", std::string admin_token = "")
        : migrated_(migrate(db_)), port_(free_port()), d_(serve_args(port_, db_.url(), tokens_file), port_),
          c(d_.client()), admin_(std::move(admin_token)) {}

    header_list auth(header_list h = {}) const {
        if (!admin_.empty()) h.emplace_back("Authorization", "Bearer " + admin_);
        return h;
    }

    http_result post(const std::string& path, const json::value& body, header_list h = {}) const {
        return c.post(path, body, auth(std::move(h)));
    }
    http_result raw(std::string_view method, const std::string& path, std::string body, header_list h = {}) const {
        return c.request(method, path, std::move(body), auth(std::move(h)));
    }
    http_result get(const std::string& path) const { return c.get(path, auth()); }

    json::object get_ok(const std::string& path) const {
        const auto r = get(path);
        INFO("GET " << path << " → " << r.status << " " << r.body);
        REQUIRE(r.status == 200);
        return r.json.as_object();
    }

    void open(const std::string& acc, std::int64_t funds) const {
        auto r = post("/v1/accounts", json::object{{"account_id", acc}, {"currency", "CNY"}});
        INFO("open " << acc << " → " << r.status << " " << r.body);
        REQUIRE(r.status == 201);
        if (funds > 0) {
            r = post("/v1/accounts/" + acc + "/funds", json::object{{"amount", funds}, {"reference", "seed"}});
            INFO("funds → " << r.status << " " << r.body);
            REQUIRE(r.status == 200);
        }
    }

    json::object buy(const json::object& body) const {
        const auto r = post("/v1/instances", body);
        INFO("purchase → " << r.status << " " << r.body);
        REQUIRE(r.status == 201);
        return r.json.as_object();
    }

    json::object act(const std::string& id, const std::string& action, const json::object& body = {}) const {
        const auto r = post("/v1/instances/" + id + "/actions/" + action, body);
        INFO(action << " " << id << " → " << r.status << " " << r.body);
        REQUIRE(r.status == 200);
        return r.json.as_object();
    }

    std::int64_t balance(const std::string& acc) const { return num(get_ok("/v1/accounts/" + acc).at("balance")); }
    std::int64_t version(const std::string& id) const { return num(get_ok("/v1/instances/" + id).at("version")); }

    std::int64_t head() const { return num(get_ok("/v1/ledger/head").at("position")); }

    /// `mqledger verify` on this daemon's database: the chain, every event's legality under the
    /// rules, the projections against a rebuild (API.md "Command line").
    void verify() const {
        const auto r = run_mqledger({"verify", "--database-url", db_.url()});
        INFO("verify: exit " << r.exit_code << "\n" << r.out << r.err);
        CHECK(r.exit_code == 0);
    }
    std::string head_hash() const { return str(get_ok("/v1/ledger/head").at("hash")); }

    /// Runs `request`, checks it was refused with `status` / `code` as a JSON error, and that the
    /// ledger head did not move.
    http_result refused(const std::function<http_result()>& request, int status, const std::string& code) const {
        const auto before = get_ok("/v1/ledger/head");
        const auto r = request();
        INFO("→ " << r.status << " " << r.body);
        CHECK(r.status == status);
        CHECK(r.error_code() == code);
        CHECK(r.header("Content-Type") == "application/json");
        CHECK(err(r, "message").is_string());
        const auto after = get_ok("/v1/ledger/head");
        CHECK(num(after.at("position")) == num(before.at("position")));
        CHECK(str(after.at("hash")) == str(before.at("hash")));
        return r;
    }

private:
    scratch_database db_;
    bool migrated_;
    std::uint16_t port_;
    daemon_process d_;

public:
    http_client c;

private:
    std::string admin_;
};

json::object purchase_body(const std::string& id, const std::string& acc, const std::string& product,
                           const std::string& billing, json::object price, int term_months = 0) {
    json::object b{{"instance_id", id}, {"account_id", acc}, {"product", product}, {"billing", billing},
                   {"timezone", "Asia/Shanghai"}, {"price", std::move(price)}};
    if (term_months > 0) b["term_months"] = term_months;
    return b;
}

json::object rmq_config(const std::string& edition, std::int64_t tps) {
    return json::object{{"edition", edition}, {"sub_category", "cluster"}, {"tps", tps},
                        {"internet_access", false}, {"bandwidth_mbps", 0}};
}

json::object monthly(std::int64_t v) { return json::object{{"monthly", v}}; }
json::object hourly(std::int64_t v) { return json::object{{"hourly", v}}; }

std::string quoted(std::int64_t v) { return "\"" + std::to_string(v) + "\""; }

} // namespace

TEST_CASE("api errors: 400 malformed for a body that is not JSON or not the expected shape, nothing written",
          "[e2e][api]") {
    ledger_daemon l;
    l.open("acc-1", 100000);
    l.buy(purchase_body("k-1", "acc-1", "kafka", "payg", hourly(100)));

    l.refused([&] { return l.raw("POST", "/v1/accounts", "{\"account_id\": "); }, 400, "malformed");
    l.refused([&] { return l.raw("POST", "/v1/accounts", "not json at all"); }, 400, "malformed");
    l.refused([&] { return l.raw("POST", "/v1/accounts", "[\"acc-2\", \"CNY\"]"); }, 400, "malformed");
    l.refused([&] { return l.raw("POST", "/v1/accounts", ""); }, 400, "malformed");
    l.refused([&] { return l.post("/v1/accounts/acc-1/funds", json::object{{"amount", "ten"}}); }, 400, "malformed");
    l.refused([&] { return l.post("/v1/accounts/acc-1/funds", json::object{{"amount", 1.5}}); }, 400, "malformed");
    l.refused([&] { return l.post("/v1/accounts/acc-1/charges", json::array{1, 2}); }, 400, "malformed");
    l.refused(
        [&] {
            auto b = purchase_body("k-2", "acc-1", "kafka", "payg", hourly(100));
            b["price"] = "cheap";
            return l.post("/v1/instances", b);
        },
        400, "malformed");
    l.refused([&] { return l.post("/v1/instances/k-1/topics", json::object{{"name", 42}}); }, 400, "malformed");
    l.refused([&] { return l.raw("POST", "/v1/instances/k-1/actions/deploy", "{oops"); }, 400, "malformed");
    l.refused([&] { return l.post("/v1/instances/k-1/actions/renew", json::object{{"months", "one"}}); }, 400,
              "malformed");
    CHECK(l.balance("acc-1") == 100000);
    CHECK(l.version("k-1") == 1);
}

TEST_CASE("api errors: 401 without or with a bad token, 403 for a role that may not act, the token's name is the "
          "event's actor",
          "[e2e][api][auth]") {
    temp_dir dir;
    const auto tokens = dir.write("tokens", "admin ada " + sha256_hex("admin-secret") + "\noperator olga " +
                                                sha256_hex("operator-secret") + "\nbilling bill " +
                                                sha256_hex("billing-secret") + "\nauditor aude " +
                                                sha256_hex("auditor-secret") + "\n");
    ledger_daemon l(tokens.string(), "admin-secret");
    l.open("acc-1", 0);
    const auto as = [](const std::string& token) { return http_client::bearer(token); };
    const json::object funds{{"amount", 5000}, {"reference", "wire-1"}};

    // 401: no token, an unknown token.
    auto r = l.refused([&] { return l.c.post("/v1/accounts/acc-1/funds", funds); }, 401, "unauthenticated");
    l.refused([&] { return l.c.post("/v1/accounts/acc-1/funds", funds, as("guess")); }, 401, "unauthenticated");
    l.refused([&] { return l.c.get("/v1/accounts/acc-1"); }, 401, "unauthenticated");

    // 403: auditors only read; operators act on instances, not on money; billing not on instances.
    l.refused([&] { return l.c.post("/v1/accounts/acc-1/funds", funds, as("auditor-secret")); }, 403, "forbidden");
    l.refused([&] { return l.c.post("/v1/accounts/acc-1/funds", funds, as("operator-secret")); }, 403, "forbidden");
    l.refused(
        [&] {
            return l.c.post("/v1/accounts", json::object{{"account_id", "acc-2"}, {"currency", "CNY"}},
                            as("auditor-secret"));
        },
        403, "forbidden");
    r = l.c.post("/v1/accounts/acc-1/funds", funds, as("billing-secret"));
    CHECK(r.status == 200);
    CHECK(num(r.json.at("balance")) == 5000);

    // An Idempotency-Key belongs to its caller: the same key and body from another token is
    // refused (422), never answered with the first caller's response, and writes nothing.
    auto with_key = [&](const std::string& token) {
        auto h = as(token);
        h.emplace_back("Idempotency-Key", "funds-shared-key");
        return h;
    };
    r = l.c.post("/v1/accounts/acc-1/funds", funds, with_key("billing-secret"));
    CHECK(r.status == 200);
    CHECK(num(r.json.at("balance")) == 10000);
    r = l.c.post("/v1/accounts/acc-1/funds", funds, with_key("billing-secret"));   // the same caller: a replay
    CHECK(r.status == 200);
    CHECK(num(r.json.at("balance")) == 10000);
    r = l.refused([&] { return l.c.post("/v1/accounts/acc-1/funds", funds, with_key("admin-secret")); }, 422, "invalid");
    CHECK(str(err(r, "field")) == "Idempotency-Key");
    CHECK(num(l.c.get("/v1/accounts/acc-1", as("admin-secret")).json.at("balance")) == 10000);

    const auto body = purchase_body("k-1", "acc-1", "kafka", "payg", hourly(100));
    l.refused([&] { return l.c.post("/v1/instances", body, as("auditor-secret")); }, 403, "forbidden");
    r = l.c.post("/v1/instances", body, as("operator-secret"));
    CHECK(r.status == 201);
    l.refused([&] { return l.c.post("/v1/instances/k-1/actions/deploy", json::object{}, as("billing-secret")); }, 403,
              "forbidden");
    l.refused([&] { return l.c.post("/v1/instances/k-1/actions/deploy", json::object{}, as("auditor-secret")); }, 403,
              "forbidden");
    l.refused([&] { return l.c.post("/v1/instances/k-1/topics", json::object{{"name", "t"}}, as("auditor-secret")); },
              403, "forbidden");
    r = l.c.post("/v1/instances/k-1/actions/deploy", json::object{}, as("operator-secret"));
    CHECK(r.status == 200);

    l.refused([&] { return l.c.del("/v1/instances/k-1/topics/t", as("auditor-secret")); }, 403, "forbidden");
    l.refused([&] { return l.c.post("/v1/clock", json::object{{"advance_seconds", 1}}, as("operator-secret")); }, 403,
              "forbidden");
    l.refused([&] { return l.c.post("/v1/clock", json::object{{"advance_seconds", 1}}, as("billing-secret")); }, 403,
              "forbidden");
    l.refused([&] { return l.c.get("/v1/ledger/head"); }, 401, "unauthenticated");
    l.refused([&] { return l.c.get("/v1/events?after=0"); }, 401, "unauthenticated");
    l.refused([&] { return l.c.get("/v1/instances/k-1", as("Bearer admin-secret")); }, 401, "unauthenticated");

    // Auditors read everything.
    CHECK(l.c.get("/v1/instances/k-1", as("auditor-secret")).status == 200);
    CHECK(l.c.get("/v1/accounts/acc-1", as("auditor-secret")).status == 200);
    CHECK(l.c.get("/v1/ledger/head", as("auditor-secret")).status == 200);

    // The actor of each event is the token's name.
    r = l.c.get("/v1/events?after=0&limit=100", as("auditor-secret"));
    REQUIRE(r.status == 200);
    std::set<std::pair<std::string, std::string>> actors;
    for (const auto& e : r.json.at("items").as_array())
        actors.emplace(str(e.at("type")), str(e.at("metadata").at("actor")));
    CHECK(actors.count({"account.opened", "ada"}) == 1);
    CHECK(actors.count({"account.funds_added", "bill"}) == 1);
    CHECK(actors.count({"instance.purchased", "olga"}) == 1);
    CHECK(actors.count({"instance.deployed", "olga"}) == 1);
}

TEST_CASE("api errors: the add-funds action needs the role that may add funds (billing, admin): operator and "
          "auditor get 403, the billing token's name is the payment's actor",
          "[e2e][api][auth]") {
    temp_dir dir;
    const auto tokens = dir.write("tokens", "admin ada " + sha256_hex("admin-secret") + "\noperator olga " +
                                                sha256_hex("operator-secret") + "\nbilling bill " +
                                                sha256_hex("billing-secret") + "\nauditor aude " +
                                                sha256_hex("auditor-secret") + "\n");
    ledger_daemon l(tokens.string(), "admin-secret");
    l.open("acc-1", 100);
    l.buy(purchase_body("k-1", "acc-1", "kafka", "payg", hourly(120)));
    l.act("k-1", "deploy");
    REQUIRE(l.post("/v1/clock", json::object{{"advance_seconds", 3600}}).status == 200);
    REQUIRE(str(l.get_ok("/v1/instances/k-1").at("state")) == "expired");
    const auto as = [](const std::string& token) { return http_client::bearer(token); };
    const json::object funds{{"amount", 5000}, {"reference", "wire-1"}};
    const std::string path = "/v1/instances/k-1/actions/add-funds";

    l.refused([&] { return l.c.post(path, funds); }, 401, "unauthenticated");
    l.refused([&] { return l.c.post(path, funds, as("operator-secret")); }, 403, "forbidden");
    l.refused([&] { return l.c.post(path, funds, as("auditor-secret")); }, 403, "forbidden");
    const auto r = l.c.post(path, funds, as("billing-secret"));
    REQUIRE(r.status == 200);
    CHECK(str(r.json.at("state")) == "running");
    CHECK(l.balance("acc-1") == 4980);
    const auto events = l.get_ok("/v1/events?after=0&limit=100").at("items").as_array();
    std::set<std::pair<std::string, std::string>> actors;
    for (const auto& e : events) actors.emplace(str(e.at("type")), str(e.at("metadata").at("actor")));
    CHECK(actors.count({"account.funds_added", "bill"}) == 1);
    CHECK(actors.count({"instance.restored", "bill"}) == 1);
    // Running again, add-funds is no longer offered: 409 for an admin as for anyone, nothing written.
    const auto refused = l.refused([&] { return l.post(path, funds); }, 409, "invalid_transition");
    CHECK(str(err(refused, "state")) == "running");
}

TEST_CASE("api errors: 402 insufficient_balance adds balance and required (purchase, renewal, manual charge, "
          "upgrade)",
          "[e2e][api]") {
    ledger_daemon l;
    l.open("acc-1", 40000);

    auto r = l.refused([&] { return l.post("/v1/instances", purchase_body("k-1", "acc-1", "kafka", "subscription", monthly(30000), 2)); },
                       402, "insufficient_balance");
    CHECK(num(err(r, "balance")) == 40000);
    CHECK(num(err(r, "required")) == 60000);
    CHECK(l.get("/v1/instances/k-1").status == 404);

    l.buy(purchase_body("k-1", "acc-1", "kafka", "subscription", monthly(30000), 1));
    l.act("k-1", "deploy");
    CHECK(l.balance("acc-1") == 10000);
    r = l.refused([&] { return l.post("/v1/instances/k-1/actions/renew", json::object{{"months", 1}}); }, 402,
                  "insufficient_balance");
    CHECK(num(err(r, "balance")) == 10000);
    CHECK(num(err(r, "required")) == 30000);

    r = l.refused(
        [&] {
            return l.post("/v1/accounts/acc-1/charges", json::object{{"amount", 10001}, {"instance_id", "k-1"},
                                                                       {"reason", "usage"}, {"reference", "c-1"}});
        },
        402, "insufficient_balance");
    CHECK(num(err(r, "balance")) == 10000);
    CHECK(num(err(r, "required")) == 10001);

    auto q = purchase_body("q-1", "acc-1", "rocketmq", "subscription", monthly(5000), 1);
    q["config"] = rmq_config("standard", 1000);
    l.buy(q);
    r = l.refused(
        [&] {
            return l.post("/v1/instances/q-1/actions/change-config",
                          json::object{{"config", rmq_config("professional", 1000)}, {"price", monthly(50000)}});
        },
        402, "insufficient_balance");
    CHECK(num(err(r, "balance")) == 5000);
    CHECK(num(err(r, "required")) == 45000);
    CHECK(l.balance("acc-1") == 5000);
}

TEST_CASE("api errors: 404 not_found for an unknown account, instance, topic or route", "[e2e][api]") {
    ledger_daemon l;
    l.open("acc-1", 100000);
    l.buy(purchase_body("k-1", "acc-1", "kafka", "payg", hourly(100)));
    l.act("k-1", "deploy");

    l.refused([&] { return l.get("/v1/accounts/nobody"); }, 404, "not_found");
    l.refused([&] { return l.post("/v1/accounts/nobody/funds", json::object{{"amount", 1}, {"reference", "x"}}); }, 404,
              "not_found");
    l.refused([&] { return l.get("/v1/instances/ghost"); }, 404, "not_found");
    l.refused([&] { return l.get("/v1/instances/ghost/events"); }, 404, "not_found");
    l.refused([&] { return l.post("/v1/instances/ghost/actions/deploy", json::object{}); }, 404, "not_found");
    l.refused([&] { return l.post("/v1/instances", purchase_body("k-2", "nobody", "kafka", "payg", hourly(1))); }, 404,
              "not_found");
    l.refused([&] { return l.raw("DELETE", "/v1/instances/k-1/topics/none", ""); }, 404, "not_found");
    l.refused([&] { return l.raw("DELETE", "/v1/instances/k-1/groups/none", ""); }, 404, "not_found");
    l.refused([&] { return l.post("/v1/instances/k-1/actions/explode", json::object{}); }, 404, "not_found");
    l.refused([&] { return l.get("/v1/nothing/here"); }, 404, "not_found");
    // Before its purchase the instance did not exist.
    l.refused([&] { return l.get("/v1/instances/k-1?as_of=2026-03-01T00:00:00Z"); }, 404, "not_found");
}

TEST_CASE("api errors: 409 invalid_transition adds the state and the allowed actions", "[e2e][api]") {
    ledger_daemon l;
    l.open("acc-1", 100000);
    l.buy(purchase_body("k-1", "acc-1", "kafka", "payg", hourly(100)));

    auto r = l.refused([&] { return l.post("/v1/instances/k-1/actions/stop", json::object{}); }, 409,
                       "invalid_transition");
    CHECK(str(err(r, "state")) == "not_deployed");
    CHECK(strings(err(r, "allowed_actions")) == std::vector<std::string>{"deploy"});

    l.act("k-1", "deploy");
    // Kafka has no configuration changes (Q is RocketMQ's).
    r = l.refused(
        [&] {
            return l.post("/v1/instances/k-1/actions/change-config",
                          json::object{{"config", rmq_config("professional", 1000)}, {"price", hourly(200)}});
        },
        409, "invalid_transition");
    CHECK(str(err(r, "state")) == "running");
    r = l.refused([&] { return l.post("/v1/instances/k-1/actions/renew", json::object{{"months", 1}}); }, 409,
                  "invalid_transition");
    CHECK(str(err(r, "state")) == "running");
    CHECK(strings(err(r, "allowed_actions")) == std::vector<std::string>{"stop"});

    l.act("k-1", "stop");
    r = l.refused([&] { return l.post("/v1/instances/k-1/actions/delete", json::object{}); }, 409,
                  "invalid_transition");
    CHECK(str(err(r, "state")) == "stopped");
    auto allowed = strings(err(r, "allowed_actions"));
    std::sort(allowed.begin(), allowed.end());
    CHECK(allowed == std::vector<std::string>{"enable", "force-delete"});
}

TEST_CASE("api errors: 409 conflict for a duplicate id, a change in progress and a pending force deletion",
          "[e2e][api]") {
    ledger_daemon l;
    l.open("acc-1", 100000);
    l.refused([&] { return l.post("/v1/accounts", json::object{{"account_id", "acc-1"}, {"currency", "CNY"}}); }, 409,
              "conflict");
    l.buy(purchase_body("k-1", "acc-1", "kafka", "payg", hourly(100)));
    l.refused([&] { return l.post("/v1/instances", purchase_body("k-1", "acc-1", "kafka", "payg", hourly(100))); },
              409, "conflict");

    auto q = purchase_body("q-1", "acc-1", "rocketmq", "payg", hourly(100));
    q["config"] = rmq_config("standard", 1000);
    l.buy(q);
    l.act("q-1", "change-config", json::object{{"config", rmq_config("standard", 2000)}, {"price", hourly(200)}});
    l.refused(
        [&] {
            return l.post("/v1/instances/q-1/actions/change-config",
                          json::object{{"config", rmq_config("standard", 3000)}, {"price", hourly(300)}});
        },
        409, "conflict");
    l.refused([&] { return l.post("/v1/instances/q-1/topics", json::object{{"name", "t"}}); }, 409, "conflict");

    l.act("k-1", "deploy");
    l.act("k-1", "stop");
    l.act("k-1", "force-delete");
    l.refused([&] { return l.post("/v1/instances/k-1/actions/force-delete", json::object{}); }, 409, "conflict");
    l.refused([&] { return l.post("/v1/instances/k-1/actions/enable", json::object{}); }, 409, "conflict");
}

TEST_CASE("api errors: 412 version_mismatch when If-Match differs, adding the current version, a matching If-Match "
          "passes",
          "[e2e][api]") {
    ledger_daemon l;
    l.open("acc-1", 100000);
    l.buy(purchase_body("k-1", "acc-1", "kafka", "payg", hourly(100)));
    CHECK(l.version("k-1") == 1);

    auto r = l.refused([&] { return l.post("/v1/instances/k-1/actions/deploy", json::object{}, {{"If-Match", quoted(7)}}); },
                       412, "version_mismatch");
    CHECK(num(err(r, "version")) == 1);
    r = l.refused([&] { return l.post("/v1/instances/k-1/actions/deploy", json::object{}, {{"If-Match", quoted(0)}}); },
                  412, "version_mismatch");
    CHECK(num(err(r, "version")) == 1);

    l.refused([&] { return l.post("/v1/instances/k-1/actions/deploy", json::object{}, {{"If-Match", "\"one\""}}); }, 400,
              "malformed");
    r = l.post("/v1/instances/k-1/actions/deploy", json::object{}, {{"If-Match", quoted(1)}});
    CHECK(r.status == 200);
    CHECK(num(r.json.at("version")) == 2);

    r = l.refused(
        [&] { return l.post("/v1/instances/k-1/topics", json::object{{"name", "orders"}}, {{"If-Match", quoted(1)}}); },
        412, "version_mismatch");
    CHECK(num(err(r, "version")) == 2);
    r = l.post("/v1/instances/k-1/topics", json::object{{"name", "orders"}}, {{"If-Match", quoted(2)}});
    CHECK((r.status == 200 || r.status == 201));
    CHECK(l.version("k-1") == 3);
}

TEST_CASE("api errors: 413 too_large for a body over 64 KiB on event-producing routes", "[e2e][api]") {
    ledger_daemon l;
    l.open("acc-1", 1000);
    const std::string big = "{\"amount\": 1, \"reference\": \"" + std::string(70 * 1024, 'x') + "\"}";
    l.refused([&] { return l.raw("POST", "/v1/accounts/acc-1/funds", big); }, 413, "too_large");
    l.refused([&] { return l.raw("POST", "/v1/instances", std::string(64 * 1024 + 1, ' ')); }, 413, "too_large");
    CHECK(l.balance("acc-1") == 1000);
}

TEST_CASE("api errors: 422 invalid names the field (product, timezone, amounts, prices, terms, refused purchases)",
          "[e2e][api]") {
    ledger_daemon l;
    l.open("acc-1", 1000000);
    l.buy(purchase_body("k-1", "acc-1", "kafka", "subscription", monthly(1000), 1));

    const auto field_of = [&](const json::object& body, const std::string& path = "/v1/instances") {
        const auto r = l.refused([&] { return l.post(path, body); }, 422, "invalid");
        return str(err(r, "field"));
    };
    CHECK(field_of(purchase_body("x-1", "acc-1", "pulsar", "payg", hourly(1))) == "product");
    CHECK(field_of(purchase_body("x-1", "acc-1", "kafka", "weekly", hourly(1))) == "billing");
    auto b = purchase_body("x-1", "acc-1", "kafka", "payg", hourly(1));
    b["timezone"] = "Mars/Olympus_Mons";
    CHECK(field_of(b) == "timezone");
    CHECK(field_of(purchase_body("x-1", "acc-1", "kafka", "payg", hourly(-5))) == "price");
    CHECK(field_of(purchase_body("x-1", "acc-1", "kafka", "payg", monthly(100))) == "price");   // payg is hourly
    CHECK(field_of(purchase_body("x-1", "acc-1", "kafka", "subscription", monthly(100), 61)) == "term_months");
    b = purchase_body("x-1", "acc-1", "kafka", "subscription", monthly(100));
    b["term_months"] = 0;
    CHECK(field_of(b) == "term_months");
    // M: pay-as-you-go MQTT is no longer sold; R: no serverless RabbitMQ.
    CHECK(field_of(purchase_body("x-1", "acc-1", "mqtt", "payg", json::object{{"daily", 900}})) == "billing");
    CHECK(field_of(purchase_body("x-1", "acc-1", "rabbitmq", "serverless", hourly(1))) == "billing");
    // RocketMQ needs a configuration.
    CHECK(field_of(purchase_body("x-1", "acc-1", "rocketmq", "payg", hourly(1))) == "config");
    b = purchase_body("x-1", "acc-1", "rabbitmq", "subscription", monthly(100), 1);
    b["auto_renew"] = json::object{{"enabled", true}, {"days_before", 28}};
    CHECK(field_of(b) == "auto_renew");
    // Import: a time in the future, a subscription without expires_at.
    b = purchase_body("x-1", "acc-1", "kafka", "payg", hourly(1));
    b["state"] = "running";
    b["state_since"] = "2027-01-01T00:00:00Z";
    CHECK(field_of(b, "/v1/instances/import") == "state_since");
    b = purchase_body("x-1", "acc-1", "kafka", "subscription", monthly(1), 1);
    b["state"] = "running";
    b["state_since"] = "2026-03-01T00:00:00Z";
    CHECK(field_of(b, "/v1/instances/import") == "expires_at");

    CHECK(field_of(json::object{{"account_id", "acc-2"}, {"currency", "cny"}}, "/v1/accounts") == "currency");
    CHECK(field_of(json::object{{"amount", -5}, {"reference", "x"}}, "/v1/accounts/acc-1/funds") == "amount");
    CHECK(field_of(json::object{{"amount", 0}, {"reference", "x"}}, "/v1/accounts/acc-1/funds") == "amount");
    CHECK(field_of(json::object{{"amount", -1}, {"instance_id", "k-1"}, {"reason", "usage"}, {"reference", "x"}},
                   "/v1/accounts/acc-1/charges") == "amount");
    CHECK(field_of(json::object{{"months", 0}}, "/v1/instances/k-1/actions/renew") == "months");
    CHECK(field_of(json::object{{"enabled", true}, {"days_before", 0}}, "/v1/instances/k-1/actions/auto-renew") ==
          "days_before");
    CHECK(field_of(json::object{{"name", ""}}, "/v1/instances/k-1/topics") == "name");
    CHECK(l.balance("acc-1") == 999000);
}

TEST_CASE("api errors: Idempotency-Key — the same key and body return the first response and write nothing, the "
          "same key with another body is 422",
          "[e2e][api][idempotency]") {
    ledger_daemon l;
    l.open("acc-1", 1000);
    const json::object funds{{"amount", 100}, {"reference", "wire-9"}};
    const header_list key{{"Idempotency-Key", "funds-9"}};

    const auto first = l.post("/v1/accounts/acc-1/funds", funds, key);
    REQUIRE(first.status == 200);
    CHECK(num(first.json.at("balance")) == 1100);
    const auto head = l.head();
    for (int i = 0; i < 3; ++i) {
        const auto again = l.post("/v1/accounts/acc-1/funds", funds, key);
        CHECK(again.status == first.status);
        CHECK(again.body == first.body);
    }
    CHECK(l.head() == head);
    CHECK(l.balance("acc-1") == 1100);

    auto r = l.refused([&] { return l.post("/v1/accounts/acc-1/funds", json::object{{"amount", 200}, {"reference", "wire-9"}}, key); },
                       422, "invalid");
    CHECK(str(err(r, "field")) == "Idempotency-Key");
    CHECK(l.balance("acc-1") == 1100);

    // A purchase replayed after the instance moved on returns the first response (201, not deployed).
    const auto body = purchase_body("k-1", "acc-1", "kafka", "payg", hourly(100));
    const header_list pkey{{"Idempotency-Key", "buy-k-1"}};
    const auto bought = l.post("/v1/instances", body, pkey);
    REQUIRE(bought.status == 201);
    l.act("k-1", "deploy");
    const auto head2 = l.head();
    const auto replay = l.post("/v1/instances", body, pkey);
    CHECK(replay.status == 201);
    CHECK(replay.body == bought.body);
    CHECK(str(replay.json.at("state")) == "not_deployed");
    CHECK(l.head() == head2);

    // A replay is answered before If-Match is judged: the first response, not a 412.
    const header_list tkey{{"Idempotency-Key", "topic-k-1"}, {"If-Match", quoted(2)}};
    const auto topic = l.post("/v1/instances/k-1/topics", json::object{{"name", "orders"}}, tkey);
    REQUIRE((topic.status == 200 || topic.status == 201));
    const auto head4 = l.head();
    const auto topic2 = l.post("/v1/instances/k-1/topics", json::object{{"name", "orders"}}, tkey);
    CHECK(topic2.status == topic.status);
    CHECK(topic2.body == topic.body);
    CHECK(l.head() == head4);

    // An action with a key: the second call does not stop twice or fail as an invalid transition.
    const header_list skey{{"Idempotency-Key", "stop-k-1"}};
    const auto stopped = l.post("/v1/instances/k-1/actions/stop", json::object{}, skey);
    REQUIRE(stopped.status == 200);
    const auto head3 = l.head();
    const auto stopped2 = l.post("/v1/instances/k-1/actions/stop", json::object{}, skey);
    CHECK(stopped2.status == 200);
    CHECK(stopped2.body == stopped.body);
    CHECK(l.head() == head3);
    // The key is bound to its request: the same key on another route is refused.
    l.refused([&] { return l.post("/v1/instances/k-1/actions/enable", json::object{}, skey); }, 422, "invalid");
}

TEST_CASE("api errors: concurrent requests with one Idempotency-Key write once and all get the first response",
          "[e2e][api][idempotency][concurrency]") {
    ledger_daemon l;
    l.open("acc-1", 1000);
    const auto head = l.head();
    constexpr int n = 8;
    std::vector<http_result> results(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            results[static_cast<std::size_t>(i)] =
                l.post("/v1/accounts/acc-1/funds", json::object{{"amount", 250}, {"reference", "wire-c"}},
                       {{"Idempotency-Key", "concurrent-funds"}});
        });
    for (auto& t : threads) t.join();
    for (const auto& r : results) {
        INFO(r.status << " " << r.body);
        CHECK(r.status == 200);
        CHECK(r.body == results[0].body);
    }
    CHECK(l.balance("acc-1") == 1250);
    CHECK(l.head() == head + 1);

    // Concurrent purchases of one id without a key: exactly one is created, the rest conflict.
    std::vector<http_result> buys(n);
    threads.clear();
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            buys[static_cast<std::size_t>(i)] = l.post("/v1/instances", purchase_body("k-race", "acc-1", "kafka", "payg", hourly(100)));
        });
    for (auto& t : threads) t.join();
    int created = 0, conflicts = 0;
    for (const auto& r : buys) {
        if (r.status == 201) ++created;
        if (r.status == 409 && r.error_code() == "conflict") ++conflicts;
    }
    CHECK(created == 1);
    CHECK(conflicts == n - 1);
    CHECK(l.head() == head + 2);
}

TEST_CASE("api errors: concurrent writes with the same If-Match — exactly one wins, the others get 412 and write "
          "nothing",
          "[e2e][api][concurrency]") {
    ledger_daemon l;
    l.open("acc-1", 100000);
    l.buy(purchase_body("k-1", "acc-1", "kafka", "payg", hourly(100)));
    l.act("k-1", "deploy");
    REQUIRE(l.version("k-1") == 2);
    const auto head = l.head();

    constexpr int n = 8;
    std::vector<http_result> results(n);
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            results[static_cast<std::size_t>(i)] = l.post(
                "/v1/instances/k-1/topics", json::object{{"name", "t-" + std::to_string(i)}}, {{"If-Match", quoted(2)}});
        });
    for (auto& t : threads) t.join();
    int won = 0, mismatched = 0;
    for (const auto& r : results) {
        INFO(r.status << " " << r.body);
        if (r.status == 200 || r.status == 201) ++won;
        if (r.status == 412) {
            ++mismatched;
            CHECK(r.error_code() == "version_mismatch");
            CHECK(num(err(r, "version")) == 3);
        }
    }
    CHECK(won == 1);
    CHECK(mismatched == n - 1);
    CHECK(l.version("k-1") == 3);
    CHECK(l.head() == head + 1);
    CHECK(l.get_ok("/v1/instances/k-1").at("topics").as_array().size() == 1);

    // Without If-Match, concurrent writes to one stream are all applied (no lost update).
    threads.clear();
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            results[static_cast<std::size_t>(i)] =
                l.post("/v1/instances/k-1/groups", json::object{{"name", "g-" + std::to_string(i)}});
        });
    for (auto& t : threads) t.join();
    for (const auto& r : results) CHECK((r.status == 200 || r.status == 201));
    CHECK(l.version("k-1") == 3 + n);
    CHECK(l.get_ok("/v1/instances/k-1").at("groups").as_array().size() == static_cast<std::size_t>(n));
    CHECK(l.head() == head + 1 + n);

    // The global feed has every position once, in order, and each stream's versions are consecutive.
    const auto feed = l.get_ok("/v1/events?after=0&limit=10000");
    std::int64_t expect = 1;
    std::map<std::string, std::int64_t> versions;
    for (const auto& e : feed.at("items").as_array()) {
        CHECK(num(e.at("position")) == expect++);
        CHECK(num(e.at("stream_version")) == ++versions[str(e.at("stream"))]);
    }
    CHECK(expect - 1 == l.head());
    CHECK(num(feed.at("head")) == l.head());
}

TEST_CASE("api errors: 402 for a pay-as-you-go purchase while the account owes (decision), nothing written",
          "[e2e][api]") {
    ledger_daemon l;
    l.open("acc-1", 100);
    l.buy(purchase_body("k-1", "acc-1", "kafka", "payg", hourly(120)));
    l.act("k-1", "deploy");
    const auto r = l.post("/v1/clock", json::object{{"now", "2026-03-13T07:00:00Z"}});
    REQUIRE(r.status == 200);
    REQUIRE(l.balance("acc-1") == -20);
    const auto refused =
        l.refused([&] { return l.post("/v1/instances", purchase_body("k-2", "acc-1", "kafka", "payg", hourly(1))); }, 402,
                  "insufficient_balance");
    CHECK(num(err(refused, "balance")) == -20);
    // A manual charge never takes the balance below zero (decision: only settlements do).
    l.refused(
        [&] {
            return l.post("/v1/accounts/acc-1/charges",
                          json::object{{"amount", 1}, {"instance_id", "k-1"}, {"reason", "usage"}, {"reference", "c"}});
        },
        402, "insufficient_balance");
}

TEST_CASE("api errors: 402 for a pay-as-you-go upgrade while the account owes (Q, E: with an insufficient balance "
          "you cannot upgrade), required 0, a downgrade is accepted",
          "[e2e][api]") {
    ledger_daemon l;
    l.open("acc-1", 100);
    l.buy(purchase_body("k-1", "acc-1", "kafka", "payg", hourly(120)));
    l.act("k-1", "deploy");
    // The first hourly bill (120) leaves the account owing 20.
    REQUIRE(l.post("/v1/clock", json::object{{"advance_seconds", 3600}}).status == 200);
    REQUIRE(l.balance("acc-1") == -20);
    // A running RocketMQ pay-as-you-go instance on the owing account (imports do not check debt).
    auto q = purchase_body("q-1", "acc-1", "rocketmq", "payg", hourly(120));
    q["config"] = rmq_config("standard", 1000);
    q["state"] = "running";
    q["state_since"] = "2026-03-13T07:00:00Z";
    const auto imported = l.post("/v1/instances/import", q);
    REQUIRE(imported.status == 201);

    auto r = l.refused(
        [&] {
            return l.post("/v1/instances/q-1/actions/change-config",
                          json::object{{"config", rmq_config("professional", 1000)}, {"price", hourly(240)}});
        },
        402, "insufficient_balance");
    CHECK(num(err(r, "balance")) == -20);
    CHECK(num(err(r, "required")) == 0);

    // Q's "Same as upgrade" is the billing effect: a downgrade while owing is accepted.
    const auto v = l.act("q-1", "change-config",
                         json::object{{"config", rmq_config("standard", 500)}, {"price", hourly(60)}});
    CHECK(num(v.at("price").at("hourly")) == 60);
    l.verify();
}

TEST_CASE("api errors: concurrent commands while the clock moves — every hourly bill is written once, the balance is "
          "funds minus bills, the feed has no gap",
          "[e2e][api][concurrency]") {
    ledger_daemon l;
    l.open("acc-1", 1000000);
    constexpr int instances = 5;
    constexpr int hours = 24;
    for (int i = 0; i < instances; ++i) {
        const auto id = "k-" + std::to_string(i);
        l.buy(purchase_body(id, "acc-1", "kafka", "payg", hourly(100)));
        l.act(id, "deploy");
    }
    std::atomic<bool> done{false};
    std::atomic<int> failures{0};
    std::mutex failure_mu;
    std::string first_failure;
    std::vector<std::thread> workers;
    for (int w = 0; w < 3; ++w)
        workers.emplace_back([&, w] {
            for (int n = 0; !done && n < 200; ++n) {
                const auto id = "k-" + std::to_string((w + n) % instances);
                const auto r = l.post("/v1/instances/" + id + "/topics",
                                      json::object{{"name", "w" + std::to_string(w) + "-" + std::to_string(n)}});
                if (r.status != 201 && r.status != 200) {
                    ++failures;
                    std::lock_guard lock(failure_mu);
                    if (first_failure.empty()) first_failure = std::to_string(r.status) + " " + r.body;
                }
            }
        });
    for (int h = 0; h < hours; ++h) {
        const auto r = l.post("/v1/clock", json::object{{"advance_seconds", 3600}});
        REQUIRE(r.status == 200);
    }
    done = true;
    for (auto& t : workers) t.join();
    INFO("first failure: " << first_failure);
    CHECK(failures == 0);

    for (int i = 0; i < instances; ++i) {
        const auto id = "k-" + std::to_string(i);
        INFO(id);
        const auto evs = l.get_ok("/v1/instances/" + id + "/events").at("items").as_array();
        std::vector<std::string> ends;
        std::int64_t expect_version = 1;
        for (const auto& e : evs) {
            CHECK(num(e.at("stream_version")) == expect_version++);
            if (str(e.at("type")) != "instance.settled") continue;
            ends.push_back(str(e.at("data").at("cycle_end")));
            CHECK(num(e.at("data").at("amount")) == 100);
            CHECK(str(e.at("effective_at")) == str(e.at("data").at("cycle_end")));
        }
        CHECK(ends.size() == static_cast<std::size_t>(hours));
        CHECK(std::set<std::string>(ends.begin(), ends.end()).size() == ends.size());
    }
    CHECK(l.balance("acc-1") == 1000000 - instances * hours * 100);

    const auto feed = l.get_ok("/v1/events?after=0&limit=10000");
    std::int64_t expect = 1;
    for (const auto& e : feed.at("items").as_array()) CHECK(num(e.at("position")) == expect++);
    CHECK(expect - 1 == l.head());

    // Paging the feed with after/limit visits every position once.
    std::int64_t after = 0;
    std::int64_t pages = 0;
    for (; pages < 10000; ++pages) {
        const auto page = l.get_ok("/v1/events?after=" + std::to_string(after) + "&limit=7");
        const auto& items = page.at("items").as_array();
        CHECK(items.size() <= 7);
        if (items.empty()) break;
        for (const auto& e : items) CHECK(num(e.at("position")) == ++after);
    }
    CHECK(after == l.head());
    CHECK(pages > 1);
    l.verify();
}

TEST_CASE("api errors: 422 for bad list and feed parameters, nothing written", "[e2e][api]") {
    ledger_daemon l;
    l.open("acc-1", 0);
    auto r = l.refused([&] { return l.get("/v1/instances?state=sleeping"); }, 422, "invalid");
    CHECK(str(err(r, "field")) == "state");
    r = l.refused([&] { return l.get("/v1/instances?product=pulsar"); }, 422, "invalid");
    CHECK(str(err(r, "field")) == "product");
    r = l.refused([&] { return l.get("/v1/instances?limit=0"); }, 422, "invalid");
    CHECK(str(err(r, "field")) == "limit");
    r = l.refused([&] { return l.get("/v1/releases/pending?before=tomorrow"); }, 422, "invalid");
    CHECK(str(err(r, "field")) == "before");
    r = l.refused([&] { return l.get("/v1/instances/x?as_of=yesterday"); }, 422, "invalid");
    CHECK(str(err(r, "field")) == "as_of");
    r = l.refused([&] { return l.get("/v1/events?after=-1"); }, 422, "invalid");
    CHECK(str(err(r, "field")) == "after");
}
