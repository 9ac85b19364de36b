// docs/openapi.yaml against the real daemon: every operation of the document is called over HTTP
// (successes and the documented errors: 400, 401, 402, 403, 404, 405, 409, 412, 413, 422, 503),
// each exchange is recorded, and tests/e2e/openapi_check.py validates them all against the
// document with jsonschema (Draft 2020-12): a route or status the document lacks, a response
// field it does not describe or describes otherwise, a documented operation or status never
// seen, a request body that succeeded although its documented schema refuses it, and a served
// GET /v1/openapi.json that is not the YAML all fail the test. The checker also deletes, in turn,
// a property of every schema the responses use, and requires each deletion to be caught.
//
// Three daemons: the main one (--tokens with one token per role, --clock manual so the timers and
// the checkpoints can be driven, --digest-key and --witness-key so checkpoints and co-signatures
// exist); a bare one on an empty migrated database without a key (no checkpoint: the proofs'
// 404); and one on a database that was never migrated (every database route answers 503).
#include "tests/e2e/http_client.h"

#include "ledger/store/checkpoint.h"
#include "ledger/store/digest.h"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <chrono>
#include <ctime>
#include <fstream>
#include <map>
#include <thread>
#include <string>
#include <vector>

using namespace mqledger;
using namespace mqledger::test;
namespace json = boost::json;

namespace {

const std::string source_dir = MQLEDGER_SOURCE_DIR;
const std::string python = "/usr/bin/python3";   // Debian's, with python3-yaml and python3-jsonschema

// One token per role; the tokens file holds their digests.
const std::map<std::string, std::string> tokens = {
    {"admin", "tok-admin-0f3a"}, {"operator", "tok-operator-9c1d"}, {"billing", "tok-billing-77e2"},
    {"auditor", "tok-auditor-4b08"}};

std::string tokens_file_text() {
    std::string out;
    for (const auto& [role, token] : tokens) out += role + " " + role + "-1 " + sha256_hex(token) + "\n";
    return out;
}

std::vector<std::string> serve_args(std::uint16_t port, const std::string& db, const std::string& tokens_file,
                                    std::vector<std::string> extra = {}) {
    std::vector<std::string> a{"serve",        "--listen",         "127.0.0.1:" + std::to_string(port),
                               "--database-url", db,               "--tokens",
                               tokens_file,    "--clock",          "manual",
                               "--clock-start", "2026-03-13T06:00:00Z", "--checkpoint-interval",
                               "86400",        "--checkpoint-origin", "test.example/ledger",
                               "--log-format", "json"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

std::string js(const json::value& v) { return json::serialize(v); }

/// Calls a daemon and records every exchange for the checker.
class recorder {
public:
    recorder(http_client c, json::array& log) : c_(c), log_(log) {}

    /// A request as `role` (admin, operator, billing, auditor; "none" sends no token, "bad" an
    /// unknown one). `expect` = "request_invalid": the documented requestBody schema must refuse
    /// the body (it is one the daemon refuses).
    http_result call(std::string_view method, const std::string& target, const std::string& body = "",
                     const std::string& role = "admin", const header_list& extra = {}, std::string_view expect = {}) {
        header_list h;
        if (role == "bad") h.emplace_back("Authorization", "Bearer not-a-token");
        else if (const auto it = tokens.find(role); it != tokens.end())
            h.emplace_back("Authorization", "Bearer " + it->second);
        h.insert(h.end(), extra.begin(), extra.end());
        auto r = c_.request(method, target, body, h);

        json::object sent;
        // What http_client sends: JSON unless the caller names another type.
        if (!body.empty() || method == "POST") sent["Content-Type"] = "application/json";
        for (const auto& [k, v] : extra) sent[k] = v;
        json::object got;
        for (const auto& [k, v] : r.headers) got[k] = v;
        json::object x{{"method", method},
                       {"target", target},
                       {"role", role},
                       {"request_headers", std::move(sent)},
                       {"request_body", body},
                       {"status", r.status},
                       {"content_type", r.header("Content-Type")},
                       {"response_headers", std::move(got)},
                       {"body", r.body}};
        if (!expect.empty()) x["expect"] = expect;
        log_.push_back(std::move(x));
        return r;
    }

    /// The same, checking the status (CHECK: a wrong one is reported, the test goes on).
    http_result want(int status, std::string_view method, const std::string& target, const std::string& body = "",
                     const std::string& role = "admin", const header_list& extra = {}, std::string_view expect = {}) {
        auto r = call(method, target, body, role, extra, expect);
        INFO(method << " " << target << " " << body.substr(0, 300) << " as " << role << " -> " << r.status << " "
                    << r.body.substr(0, 600));
        CHECK(r.status == status);
        return r;
    }

    /// A step the rest depends on (REQUIRE); answers the JSON body.
    json::value must(int status, std::string_view method, const std::string& target, const std::string& body = "",
                     const std::string& role = "admin", const header_list& extra = {}) {
        auto r = call(method, target, body, role, extra);
        INFO(method << " " << target << " " << body.substr(0, 300) << " as " << role << " -> " << r.status << " "
                    << r.body.substr(0, 600));
        REQUIRE(r.status == status);
        return r.json;
    }

    /// The refusals every command shares: 401 without or with a bad token, 403 for a role that may
    /// not, 400 for a bad If-Match (and for a body with an unknown key when the command has a
    /// body), 412 for another version, 413 for a body over the limit (not for DELETE), 422 for an
    /// Idempotency-Key used before with another request.
    void command_refusals(std::string_view method, const std::string& target, const std::string& body,
                          const std::string& forbidden_role, bool has_body = true) {
        want(401, method, target, body, "none");
        want(401, method, target, body, "bad");
        if (!forbidden_role.empty()) want(403, method, target, body, forbidden_role);
        want(400, method, target, body, "admin", {{"If-Match", "seven"}});
        want(400, method, target, body, "admin", {{"Idempotency-Key", std::string(300, 'k')}});
        if (has_body) {
            want(400, method, target, R"({"zz_unknown_key": 1})", "admin", {}, "request_invalid");
            want(400, method, target, R"({"not json)", "admin");
        }
        want(412, method, target, body, "admin", {{"If-Match", "\"9999\""}});
        if (method != "DELETE") want(413, method, target, std::string(64 * 1024 + 1, ' '));
        want(422, method, target, body, "admin", {{"Idempotency-Key", "idem-first"}});
    }

    /// The refusals every read shares: 400 for bad percent-encoding in the query, 401.
    void read_refusals(const std::string& path, bool secured = true) {
        want(400, "GET", path + "?%zz=1", "", secured ? "admin" : "none");
        if (secured) {
            want(401, "GET", path, "", "none");
            want(401, "GET", path, "", "bad");
        }
    }

private:
    http_client c_;
    json::array& log_;
};

std::string purchase(const std::string& id, const std::string& account, const std::string& product,
                     const std::string& billing, json::object price, json::object extra = {}) {
    json::object o{{"instance_id", id}, {"account_id", account}, {"product", product}, {"billing", billing},
                   {"price", std::move(price)}};
    for (const auto& kv : extra) o[kv.key()] = kv.value();
    return js(o);
}

json::object rocketmq_config(std::string_view edition = "standard", std::string_view sub = "cluster", int tps = 1000) {
    return {{"edition", edition}, {"sub_category", sub}, {"tps", tps}, {"internet_access", false}, {"bandwidth_mbps", 0}};
}

} // namespace

TEST_CASE("openapi: every operation of docs/openapi.yaml, called on the real daemon, answers as the document says, "
          "and the daemon serves the document",
          "[e2e][openapi]") {
    const auto started = std::chrono::steady_clock::now();
    temp_dir dir;
    const auto tokens_path = dir.write("tokens", tokens_file_text()).string();
    const auto log_key = checkpoint::private_key::generate();
    const auto witness_key = checkpoint::private_key::generate();
    const auto log_key_path = dir.write("log.pem", log_key.to_pem()).string();
    const auto witness_pub_path =
        dir.write("witness.pub.pem", store::digest_signer(witness_key.to_pem()).public_key_pem()).string();

    scratch_database db("mqledger_openapi");
    {
        const auto m = run_mqledger({"migrate", "--database-url", db.url()});
        INFO(m.err);
        REQUIRE(m.exit_code == 0);
    }
    const auto port = free_port();
    // A policy file that changes the table: the daemon appends policy.changed (version 2) at start.
    const auto policy_path = dir.write("policy.json", R"({"rabbitmq/subscription": {"grace_days": 10}})").string();
    daemon_process d(serve_args(port, db.url(), tokens_path,
                                {"--digest-key", log_key_path, "--witness-key", "w1=" + witness_pub_path, "--policy",
                                 policy_path}),
                     port);
    json::array log;
    recorder r(d.client(), log);

    // ---- operations and documentation: no token needed ----
    r.want(200, "GET", "/healthz", "", "none");
    r.read_refusals("/healthz", false);
    // Ready once the first database check ran (a second at most).
    for (int i = 0; i < 100 && d.client().get("/readyz").status != 200; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    r.want(200, "GET", "/readyz", "", "none");
    r.read_refusals("/readyz", false);
    r.want(200, "GET", "/metrics", "", "none");
    r.read_refusals("/metrics", false);
    const auto served = r.must(200, "GET", "/v1/openapi.json", "", "none");
    r.want(200, "GET", "/v1/openapi.json", "", "auditor");
    // Every documented path with a method no route has: 405, whose Allow lists every method the
    // daemon serves there (the checker compares it with the document's).
    for (const auto& kv : served.at("paths").as_object()) {
        std::string path(kv.key());
        for (const auto& [param, value] : {std::pair<std::string, std::string>{"{id}", "kp-1"}, {"{name}", "orders"}})
            if (const auto at = path.find(param); at != std::string::npos) path.replace(at, param.size(), value);
        r.want(405, "OPTIONS", path, "", "none");
    }
    r.read_refusals("/v1/openapi.json", false);

    // ---- what no operation covers: unknown routes (404), other methods (405 with Allow) ----
    r.want(404, "GET", "/v1/nope", "", "none");
    r.want(404, "POST", "/v1/instances/k-1/actions/fly", "{}");
    r.want(404, "GET", "/v1/instances/k-1/events/extra");
    r.want(405, "PUT", "/v1/accounts", "{}");
    r.want(405, "DELETE", "/v1/clock");
    r.want(405, "POST", "/healthz", "", "none");
    r.want(405, "GET", "/v1/instances/k-1/actions/deploy");
    r.want(405, "PATCH", "/v1/instances/k-1", "{}");
    r.want(400, "GET", "/v1/accounts/%zz");

    // ---- accounts ----
    r.must(201, "POST", "/v1/accounts", R"({"account_id":"acc-1","currency":"CNY"})", "admin",
           {{"Idempotency-Key", "idem-first"}, {"X-Correlation-Id", "corr-1"}});
    r.want(201, "POST", "/v1/accounts", R"({"account_id":"acc-1","currency":"CNY"})", "admin",
           {{"Idempotency-Key", "idem-first"}});   // a repeat by the same caller: the first answer again
    for (const char* acc : {"acc-2", "acc-3", "acc-poor"})
        r.must(201, "POST", "/v1/accounts", js(json::object{{"account_id", acc}, {"currency", "CNY"}}), "billing");
    r.want(409, "POST", "/v1/accounts", R"({"account_id":"acc-1","currency":"CNY"})");
    r.want(422, "POST", "/v1/accounts", R"({"account_id":"acc-x","currency":"cny"})", "admin", {}, "request_invalid");
    r.want(422, "POST", "/v1/accounts", R"({"account_id":"bad id!","currency":"CNY"})", "admin", {}, "request_invalid");
    r.command_refusals("POST", "/v1/accounts", R"({"account_id":"acc-x","currency":"CNY"})", "operator");

    r.must(200, "POST", "/v1/accounts/acc-1/funds", R"({"amount":100000000,"reference":"wire-1"})", "billing");
    r.must(200, "POST", "/v1/accounts/acc-3/funds", R"({"amount":1000})", "admin", {{"If-Match", "\"1\""}});
    r.must(200, "POST", "/v1/accounts/acc-poor/funds", R"({"amount":100,"reference":null})");
    r.want(404, "POST", "/v1/accounts/no-acc/funds", R"({"amount":1})");
    r.want(404, "POST", "/v1/accounts/bad%20id/funds", R"({"amount":1})");
    r.want(422, "POST", "/v1/accounts/acc-1/funds", R"({"amount":0})", "admin", {}, "request_invalid");
    r.want(400, "POST", "/v1/accounts/acc-1/funds", R"({"amount":"ten"})", "admin", {}, "request_invalid");
    r.command_refusals("POST", "/v1/accounts/acc-1/funds", R"({"amount":5})", "auditor");

    r.must(200, "POST", "/v1/accounts/acc-1/charges",
           R"({"amount":500,"instance_id":"k-1","reason":"support","reference":"t-1"})", "billing");
    r.must(200, "POST", "/v1/accounts/acc-1/charges", R"({"amount":1})");
    r.want(402, "POST", "/v1/accounts/acc-2/charges", R"({"amount":100})");
    r.want(404, "POST", "/v1/accounts/no-acc/charges", R"({"amount":100})");
    r.want(422, "POST", "/v1/accounts/acc-1/charges", R"({"amount":100,"reason":"settlement"})", "admin", {},
           "request_invalid");
    r.command_refusals("POST", "/v1/accounts/acc-1/charges", R"({"amount":5})", "operator");

    r.must(200, "GET", "/v1/accounts/acc-1", "", "auditor");
    r.want(404, "GET", "/v1/accounts/no-acc");
    r.read_refusals("/v1/accounts/acc-1");

    // ---- instances: purchase and import ----
    r.must(201, "POST", "/v1/instances",
           purchase("k-1", "acc-1", "kafka", "subscription", {{"monthly", 30000}},
                    {{"term_months", 1}, {"timezone", "Asia/Shanghai"}, {"auto_renew", json::object{{"enabled", false}}}}),
           "operator");
    for (const char* id : {"kp-1", "kp-2"})
        r.must(201, "POST", "/v1/instances", purchase(id, "acc-1", "kafka", "payg", {{"hourly", 120}}));
    r.must(201, "POST", "/v1/instances",
           purchase("ku-1", "acc-1", "kafka", "payg",
                    {{"hourly", 120}, {"per_unit", json::object{{"storage_gb_hours", 2}}}}));
    r.must(201, "POST", "/v1/instances",
           purchase("r-1", "acc-1", "rocketmq", "payg", {{"hourly", 200}}, {{"config", rocketmq_config()}}));
    r.must(201, "POST", "/v1/instances",
           purchase("rq-s", "acc-3", "rocketmq", "subscription", {{"monthly", 1000}},
                    {{"term_months", 1}, {"config", rocketmq_config()}}));
    r.must(201, "POST", "/v1/instances",
           purchase("rb-1", "acc-1", "rabbitmq", "subscription", {{"monthly", 20000}},
                    {{"term_months", 1}, {"auto_renew", json::object{{"enabled", true}, {"days_before", 3}}}}));
    r.must(201, "POST", "/v1/instances", purchase("kp-poor", "acc-poor", "kafka", "payg", {{"hourly", 120}}));
    r.want(402, "POST", "/v1/instances",
           purchase("k-2", "acc-2", "kafka", "subscription", {{"monthly", 30000}}, {{"term_months", 1}}));
    r.want(409, "POST", "/v1/instances", purchase("kp-1", "acc-1", "kafka", "payg", {{"hourly", 120}}));
    r.want(404, "POST", "/v1/instances", purchase("k-9", "no-acc", "kafka", "payg", {{"hourly", 120}}));
    r.want(422, "POST", "/v1/instances", purchase("k-9", "acc-1", "redis", "payg", {{"hourly", 120}}), "admin", {},
           "request_invalid");
    r.want(422, "POST", "/v1/instances",
           purchase("k-9", "acc-1", "kafka", "payg", {{"hourly", 120}}, {{"timezone", "Mars/Olympus"}}));
    r.want(422, "POST", "/v1/instances", purchase("k-9", "acc-1", "kafka", "payg", {{"hourly", 1}, {"daily", 1}}),
           "admin", {}, "request_invalid");
    r.command_refusals("POST", "/v1/instances", purchase("k-9", "acc-1", "kafka", "payg", {{"hourly", 120}}), "billing");

    const auto import_body = [](const std::string& id, const std::string& account, const std::string& since) {
        return js(json::object{{"instance_id", id},      {"account_id", account}, {"product", "mqtt"},
                               {"billing", "payg"},      {"price", json::object{{"daily", 900}}},
                               {"state", "running"},     {"state_since", since}});
    };
    r.must(201, "POST", "/v1/instances/import", import_body("m-1", "acc-1", "2026-01-01T00:00:00Z"), "operator");
    r.want(409, "POST", "/v1/instances/import", import_body("m-1", "acc-1", "2026-01-01T00:00:00Z"));
    r.want(404, "POST", "/v1/instances/import", import_body("m-9", "no-acc", "2026-01-01T00:00:00Z"));
    r.want(422, "POST", "/v1/instances/import", import_body("m-9", "acc-1", "2027-01-01T00:00:00+08:00"));
    r.want(422, "POST", "/v1/instances/import", import_body("m-9", "acc-1", "yesterday"), "admin", {},
           "request_invalid");
    r.command_refusals("POST", "/v1/instances/import", import_body("m-9", "acc-1", "2026-01-01T00:00:00Z"), "billing");

    // ---- instance actions ----
    for (const char* id : {"k-1", "kp-1", "kp-2", "ku-1", "kp-poor"})
        r.must(200, "POST", std::string("/v1/instances/") + id + "/actions/deploy", "", "operator");
    r.want(409, "POST", "/v1/instances/k-1/actions/deploy", "{}");
    r.want(404, "POST", "/v1/instances/no-inst/actions/deploy");
    r.command_refusals("POST", "/v1/instances/k-1/actions/deploy", "{}", "billing");

    // topics and groups (kp-2 gets its own before it stops)
    for (const char* kind : {"topics", "groups"}) {
        const std::string k = kind;
        r.must(201, "POST", "/v1/instances/kp-1/" + k, R"({"name":"orders"})");
        r.must(201, "POST", "/v1/instances/kp-2/" + k, R"({"name":"t2"})");
        r.want(409, "POST", "/v1/instances/kp-1/" + k, R"({"name":"orders"})");
        r.want(404, "POST", "/v1/instances/no-inst/" + k, R"({"name":"orders"})");
        r.want(422, "POST", "/v1/instances/kp-1/" + k, R"({"name":""})", "admin", {}, "request_invalid");
        r.command_refusals("POST", "/v1/instances/kp-1/" + k, R"({"name":"other"})", "auditor");
        r.must(201, "POST", "/v1/instances/kp-1/" + k, R"({"name":"to delete"})");
    }

    r.must(200, "POST", "/v1/instances/kp-2/actions/stop");
    r.want(409, "POST", "/v1/instances/k-1/actions/stop");
    r.want(404, "POST", "/v1/instances/no-inst/actions/stop");
    r.command_refusals("POST", "/v1/instances/kp-1/actions/stop", "", "billing");

    r.must(200, "POST", "/v1/instances/kp-1/actions/stop");
    r.must(200, "POST", "/v1/instances/kp-1/actions/enable", "{}");
    r.want(409, "POST", "/v1/instances/k-1/actions/enable");
    r.want(404, "POST", "/v1/instances/no-inst/actions/enable");
    r.command_refusals("POST", "/v1/instances/kp-2/actions/enable", "", "auditor");

    for (const char* kind : {"topics", "groups"}) {
        const std::string k = kind;
        r.must(200, "DELETE", "/v1/instances/kp-1/" + k + "/to%20delete");
        r.want(404, "DELETE", "/v1/instances/kp-1/" + k + "/to%20delete");
        r.want(404, "DELETE", "/v1/instances/no-inst/" + k + "/orders");
        r.want(409, "DELETE", "/v1/instances/kp-2/" + k + "/t2");   // stopped: topics and groups are frozen
        r.want(422, "DELETE", "/v1/instances/kp-1/" + k + "/" + std::string(256, 'n'));
        r.command_refusals("DELETE", "/v1/instances/kp-1/" + k + "/orders", "", "billing", false);
    }

    r.must(200, "POST", "/v1/instances/rb-1/actions/renew", R"({"months":1})", "operator");
    r.must(200, "POST", "/v1/instances/rb-1/actions/renew", "");
    r.want(402, "POST", "/v1/instances/rq-s/actions/renew", R"({"months":1})");
    r.want(409, "POST", "/v1/instances/kp-1/actions/renew", R"({"months":1})");
    r.want(422, "POST", "/v1/instances/rb-1/actions/renew", R"({"months":0})", "admin", {}, "request_invalid");
    r.want(404, "POST", "/v1/instances/no-inst/actions/renew", R"({"months":1})");
    r.command_refusals("POST", "/v1/instances/rb-1/actions/renew", R"({"months":2})", "billing");

    r.must(200, "POST", "/v1/instances/rb-1/actions/auto-renew", R"({"enabled":true,"days_before":3})");
    r.must(200, "POST", "/v1/instances/k-1/actions/auto-renew", R"({"enabled":false})");
    r.want(409, "POST", "/v1/instances/kp-1/actions/auto-renew", R"({"enabled":true})");
    r.want(422, "POST", "/v1/instances/rb-1/actions/auto-renew", R"({"enabled":true,"days_before":0})");
    r.want(404, "POST", "/v1/instances/no-inst/actions/auto-renew", R"({"enabled":true})");
    r.want(400, "POST", "/v1/instances/rb-1/actions/auto-renew", R"({"enabled":"yes"})", "admin", {}, "request_invalid");
    r.command_refusals("POST", "/v1/instances/rb-1/actions/auto-renew", R"({"enabled":false})", "auditor");

    const auto change = [](json::object config, json::object price) {
        return js(json::object{{"config", std::move(config)}, {"price", std::move(price)}});
    };
    r.must(200, "POST", "/v1/instances/r-1/actions/change-config",
           change(rocketmq_config("professional", "cluster", 2000), {{"hourly", 240}}), "operator");
    r.want(409, "POST", "/v1/instances/r-1/actions/change-config",
           change(rocketmq_config("professional", "cluster", 3000), {{"hourly", 300}}));
    r.want(402, "POST", "/v1/instances/rq-s/actions/change-config",
           change(rocketmq_config("professional"), {{"monthly", 2000}}));
    r.want(422, "POST", "/v1/instances/rq-s/actions/change-config",
           change(rocketmq_config("standard", "standalone"), {{"monthly", 1000}}));
    r.want(404, "POST", "/v1/instances/no-inst/actions/change-config",
           change(rocketmq_config("professional"), {{"monthly", 2000}}));
    r.command_refusals("POST", "/v1/instances/rq-s/actions/change-config",
                       change(rocketmq_config("professional"), {{"monthly", 1000}}), "billing");
    // A subscription's downgrade refunds the prorated difference (account.refunded).
    r.must(200, "POST", "/v1/instances/rq-s/actions/change-config",
           change(rocketmq_config("standard", "cluster", 500), {{"monthly", 500}}));

    // ---- the clock: an hour passes; the hourly bills settle, kp-poor's leaves acc-poor owing ----
    r.must(200, "GET", "/v1/clock", "", "auditor");
    r.read_refusals("/v1/clock");
    r.must(200, "POST", "/v1/clock", R"({"advance_seconds":3600})");
    r.want(422, "POST", "/v1/clock", R"({"now":"2026-01-01T00:00:00Z"})");
    r.want(422, "POST", "/v1/clock", R"({"advance_seconds":-5})", "admin", {}, "request_invalid");
    r.want(400, "POST", "/v1/clock", R"({"now":"2026-03-14T00:00:00Z","advance_seconds":1})", "admin", {},
           "request_invalid");
    r.want(400, "POST", "/v1/clock", R"({"advance_seconds":"soon"})", "admin", {}, "request_invalid");
    r.want(400, "POST", "/v1/clock", "[]", "admin", {}, "request_invalid");
    r.want(403, "POST", "/v1/clock", R"({"advance_seconds":1})", "operator");
    r.want(401, "POST", "/v1/clock", R"({"advance_seconds":1})", "none");
    r.want(413, "POST", "/v1/clock", std::string(64 * 1024 + 1, ' '));
    r.want(400, "POST", "/v1/clock?%zz", R"({"advance_seconds":1})");

    // ---- usage records (kafka payg: storage_gb_hours) ----
    const auto usage = [](const std::string& rid, int quantity, const std::string& start, const std::string& end,
                          const std::string& metric = "storage_gb_hours") {
        return js(json::object{{"record_id", rid}, {"metric", metric}, {"quantity", quantity}, {"start", start}, {"end", end}});
    };
    const auto u1 = usage("u-1", 10, "2026-03-13T06:10:00Z", "2026-03-13T06:40:00Z");
    const auto first = r.must(200, "POST", "/v1/instances/ku-1/usage", u1, "operator");
    CHECK(first.at("duplicate") == false);
    const auto again = r.must(200, "POST", "/v1/instances/ku-1/usage", u1);
    CHECK(again.at("duplicate") == true);
    r.must(200, "POST", "/v1/instances/ku-1/usage", usage("u-2", 3, "2026-03-13T06:50:00+00:00", "2026-03-13T07:00:00+00:00"));
    r.want(409, "POST", "/v1/instances/ku-1/usage", usage("u-1", 11, "2026-03-13T06:10:00Z", "2026-03-13T06:40:00Z"));
    r.want(409, "POST", "/v1/instances/kp-2/usage", usage("u-3", 1, "2026-03-13T06:10:00Z", "2026-03-13T06:20:00Z"));
    r.want(422, "POST", "/v1/instances/ku-1/usage", usage("u-4", 1, "2026-03-13T06:10:00Z", "2026-03-13T09:00:00Z"));
    r.want(422, "POST", "/v1/instances/ku-1/usage",
           usage("u-5", 1, "2026-03-13T06:10:00Z", "2026-03-13T06:20:00Z", "messages"));
    r.want(422, "POST", "/v1/instances/ku-1/usage", usage("u-6", -1, "2026-03-13T06:10:00Z", "2026-03-13T06:20:00Z"),
           "admin", {}, "request_invalid");
    r.want(422, "POST", "/v1/instances/k-1/usage", usage("u-7", 1, "2026-03-13T06:10:00Z", "2026-03-13T06:20:00Z"));
    r.want(400, "POST", "/v1/instances/ku-1/usage",
           R"({"record_id":"u-8","metric":"storage_gb_hours","quantity":"one","start":"2026-03-13T06:10:00Z","end":"2026-03-13T06:20:00Z"})",
           "admin", {}, "request_invalid");
    r.want(404, "POST", "/v1/instances/no-inst/usage", usage("u-9", 1, "2026-03-13T06:10:00Z", "2026-03-13T06:20:00Z"));
    r.command_refusals("POST", "/v1/instances/ku-1/usage",
                       usage("u-10", 1, "2026-03-13T06:10:00Z", "2026-03-13T06:20:00Z"), "billing");
    // Another hour: ku-1's settlement bills the usage (instance.settled with `usage`).
    r.must(200, "POST", "/v1/clock", R"({"now":"2026-03-13T08:00:00Z"})");

    // ---- add-funds on an overdue payg instance; then a subscription's end ----
    const auto poor = r.must(200, "GET", "/v1/instances/kp-poor");
    {
        INFO(js(poor));
        REQUIRE(poor.at("state") == "expired");
    }
    r.want(409, "POST", "/v1/instances/kp-1/actions/add-funds", R"({"amount":5000})", "billing");
    r.want(404, "POST", "/v1/instances/no-inst/actions/add-funds", R"({"amount":5000})", "billing");
    r.command_refusals("POST", "/v1/instances/kp-poor/actions/add-funds", R"({"amount":5000})", "operator");
    r.must(200, "POST", "/v1/instances/kp-poor/actions/add-funds", R"({"amount":5000,"reference":"wire-9"})", "billing");

    r.must(200, "POST", "/v1/instances/k-1/actions/unsubscribe", "", "operator");
    r.want(409, "POST", "/v1/instances/kp-1/actions/unsubscribe");
    r.want(404, "POST", "/v1/instances/no-inst/actions/unsubscribe");
    r.command_refusals("POST", "/v1/instances/rb-1/actions/unsubscribe", "", "billing");

    r.want(409, "POST", "/v1/instances/kp-1/actions/force-delete");
    r.want(404, "POST", "/v1/instances/no-inst/actions/force-delete");
    r.command_refusals("POST", "/v1/instances/k-1/actions/force-delete", "", "billing");
    r.must(200, "POST", "/v1/instances/k-1/actions/force-delete");

    r.want(409, "POST", "/v1/instances/kp-1/actions/delete");
    r.want(404, "POST", "/v1/instances/no-inst/actions/delete");
    r.command_refusals("POST", "/v1/instances/k-1/actions/delete", "", "auditor");
    r.must(200, "POST", "/v1/instances/k-1/actions/delete");

    // ---- reads ----
    r.must(200, "GET", "/v1/instances/kp-1", "", "billing");
    r.must(200, "GET", "/v1/instances/r-1?as_of=2026-03-13T14:01:00%2B08:00");
    r.must(200, "GET", "/v1/instances/kp-2?as_of=2026-03-13T06:00:00Z");
    r.want(404, "GET", "/v1/instances/no-inst");
    r.want(422, "GET", "/v1/instances/kp-1?as_of=noon");
    r.read_refusals("/v1/instances/kp-1");

    r.must(200, "GET", "/v1/instances", "", "operator");
    r.must(200, "GET", "/v1/instances?state=deleted");
    const auto page = r.must(200, "GET", "/v1/instances?limit=2");
    REQUIRE(page.at("next_cursor").is_string());
    r.must(200, "GET", "/v1/instances?limit=2&cursor=" + std::string(page.at("next_cursor").as_string()));
    r.must(200, "GET", "/v1/instances?state=running&product=kafka&billing=payg&account_id=acc-1&limit=1000");
    r.want(422, "GET", "/v1/instances?state=sleeping");
    r.want(422, "GET", "/v1/instances?limit=0");
    r.read_refusals("/v1/instances");

    r.must(200, "GET", "/v1/instances/ku-1/events");
    r.must(200, "GET", "/v1/instances/ku-1/events?after=1&limit=2");
    r.must(200, "GET", "/v1/instances/ku-1/events?proofs=true");
    r.must(200, "GET", "/v1/instances/ku-1/events?proofs=false");
    r.want(404, "GET", "/v1/instances/no-inst/events");
    r.want(422, "GET", "/v1/instances/ku-1/events?proofs=yes");
    r.want(422, "GET", "/v1/instances/ku-1/events?limit=0");
    r.read_refusals("/v1/instances/ku-1/events");

    const auto all = r.must(200, "GET", "/v1/events?after=0&limit=10000", "", "auditor");
    r.must(200, "GET", "/v1/events?after=3&limit=5");
    r.want(422, "GET", "/v1/events?limit=10001");
    r.read_refusals("/v1/events");

    r.must(200, "GET", "/v1/releases/pending");
    r.must(200, "GET", "/v1/releases/pending?before=2026-12-01T00:00:00Z&limit=10");
    r.want(422, "GET", "/v1/releases/pending?before=soon");
    r.read_refusals("/v1/releases/pending");

    r.must(200, "GET", "/v1/ledger/head");
    r.read_refusals("/v1/ledger/head");

    r.must(200, "GET", "/v1/policy", "", "auditor");
    {
        // The version the events were decided under: the policy file's, recorded first.
        const auto& first_event = all.at("items").as_array().at(0);
        CHECK(first_event.at("type") == "policy.changed");
        const auto version = first_event.at("metadata").at("policy_version").as_int64();
        CHECK(version == 2);
        CHECK(r.must(200, "GET", "/v1/policy?version=" + std::to_string(version)).at("in_force") == true);
    }
    const auto built_in = r.must(200, "GET", "/v1/policy?version=1");
    CHECK(built_in.at("in_force") == false);
    r.want(404, "GET", "/v1/policy?version=999");
    r.want(422, "GET", "/v1/policy?version=0");
    r.want(422, "GET", "/v1/policy?version=latest");
    r.read_refusals("/v1/policy");

    // ---- transparency: the clock moves signed checkpoints; a witness co-signs the newest ----
    const auto cp = r.call("GET", "/v1/ledger/checkpoint");
    REQUIRE(cp.status == 200);
    const auto note = checkpoint::parse(cp.body);
    REQUIRE(note);
    REQUIRE(note->size > 10);
    const auto size = std::to_string(note->size);
    r.must(200, "GET", "/v1/ledger/checkpoint?tree_size=" + size);
    r.want(404, "GET", "/v1/ledger/checkpoint?tree_size=99999");
    r.want(422, "GET", "/v1/ledger/checkpoint?tree_size=big");
    r.read_refusals("/v1/ledger/checkpoint");

    const auto line = checkpoint::format_signature_line(
        checkpoint::cosign(*note, "w1", witness_key, static_cast<std::uint64_t>(std::time(nullptr))));
    const header_list text{{"Content-Type", "text/plain"}};
    r.must(200, "POST", "/v1/ledger/checkpoint/cosignatures?tree_size=" + size, line, "auditor", text);
    r.want(404, "POST", "/v1/ledger/checkpoint/cosignatures?tree_size=99999", line, "admin", text);
    r.want(422, "POST", "/v1/ledger/checkpoint/cosignatures?tree_size=" + size, "not a signature line", "admin", text,
           "request_invalid");
    r.want(422, "POST", "/v1/ledger/checkpoint/cosignatures", line, "admin", text);
    r.want(413, "POST", "/v1/ledger/checkpoint/cosignatures?tree_size=" + size, std::string(64 * 1024 + 1, 'x'),
           "admin", text);
    r.want(401, "POST", "/v1/ledger/checkpoint/cosignatures?tree_size=" + size, line, "none", text);
    r.want(400, "POST", "/v1/ledger/checkpoint/cosignatures?tree_size=%zz", line, "admin", text);
    r.must(200, "GET", "/v1/ledger/checkpoint");   // now with the co-signature line

    r.must(200, "GET", "/v1/proofs/inclusion?position=1");
    r.must(200, "GET", "/v1/proofs/inclusion?position=3&tree_size=" + size, "", "billing");
    r.want(422, "GET", "/v1/proofs/inclusion?position=0");
    r.want(422, "GET", "/v1/proofs/inclusion");
    r.want(422, "GET", "/v1/proofs/inclusion?position=" + std::to_string(note->size + 1) + "&tree_size=" + size);
    r.read_refusals("/v1/proofs/inclusion");

    r.must(200, "GET", "/v1/proofs/consistency?from=1&to=" + size);
    r.must(200, "GET", "/v1/proofs/consistency?from=" + size + "&to=" + size);
    r.want(422, "GET", "/v1/proofs/consistency?from=5&to=4");
    r.want(422, "GET", "/v1/proofs/consistency?from=1");
    r.want(422, "GET", "/v1/proofs/consistency?from=1&to=999999");
    r.read_refusals("/v1/proofs/consistency");

    // ---- a daemon without a checkpoint: the proofs' 404 ----
    {
        scratch_database bare_db("mqledger_openapi_bare");
        REQUIRE(run_mqledger({"migrate", "--database-url", bare_db.url()}).exit_code == 0);
        const auto bare_port = free_port();
        daemon_process bare(serve_args(bare_port, bare_db.url(), tokens_path), bare_port);
        recorder b(bare.client(), log);
        b.want(404, "GET", "/v1/proofs/inclusion?position=1");
        b.want(404, "GET", "/v1/ledger/checkpoint");
        // An auto-renewal the balance cannot pay (instance.auto_renew_failed): the term's price
        // takes the whole balance, and the attempt comes 3 days before the term ends.
        b.must(201, "POST", "/v1/accounts", R"({"account_id":"acc-a","currency":"CNY"})");
        b.must(200, "POST", "/v1/accounts/acc-a/funds", R"({"amount":20000})");
        b.must(201, "POST", "/v1/instances",
               purchase("rb-a", "acc-a", "rabbitmq", "subscription", {{"monthly", 20000}},
                        {{"term_months", 1}, {"auto_renew", json::object{{"enabled", true}, {"days_before", 3}}}}));
        b.must(200, "POST", "/v1/clock", R"({"now":"2026-04-11T00:00:00Z"})");
        const auto evs = b.must(200, "GET", "/v1/instances/rb-a/events");
        bool failed = false;
        for (const auto& e : evs.at("items").as_array()) failed = failed || e.at("type") == "instance.auto_renew_failed";
        CHECK(failed);
    }

    // ---- a daemon whose database was never migrated: 503 from every route that reads or writes it ----
    {
        scratch_database raw_db("mqledger_openapi_raw");
        const auto raw_port = free_port();
        daemon_process raw(serve_args(raw_port, raw_db.url(), tokens_path, {"--witness-key", "w1=" + witness_pub_path}),
                           raw_port);
        recorder x(raw.client(), log);
        x.want(503, "GET", "/readyz", "", "none");
        for (const char* path :
             {"/v1/accounts/acc-1", "/v1/instances", "/v1/instances/kp-1", "/v1/instances/kp-1/events", "/v1/events",
              "/v1/releases/pending", "/v1/ledger/head", "/v1/ledger/checkpoint", "/v1/proofs/inclusion?position=1",
              "/v1/proofs/consistency?from=1&to=1"})
            x.want(503, "GET", path);
        const std::vector<std::pair<std::string, std::string>> commands{
            {"/v1/accounts", R"({"account_id":"acc-1","currency":"CNY"})"},
            {"/v1/accounts/acc-1/funds", R"({"amount":1})"},
            {"/v1/accounts/acc-1/charges", R"({"amount":1})"},
            {"/v1/instances", purchase("kp-1", "acc-1", "kafka", "payg", {{"hourly", 120}})},
            {"/v1/instances/import", import_body("m-1", "acc-1", "2026-01-01T00:00:00Z")},
            {"/v1/instances/kp-1/actions/deploy", ""},
            {"/v1/instances/kp-1/actions/stop", ""},
            {"/v1/instances/kp-1/actions/enable", ""},
            {"/v1/instances/kp-1/actions/unsubscribe", ""},
            {"/v1/instances/kp-1/actions/force-delete", ""},
            {"/v1/instances/kp-1/actions/delete", ""},
            {"/v1/instances/kp-1/actions/renew", R"({"months":1})"},
            {"/v1/instances/kp-1/actions/auto-renew", R"({"enabled":false})"},
            {"/v1/instances/kp-1/actions/change-config", change(rocketmq_config(), {{"hourly", 1}})},
            {"/v1/instances/kp-1/actions/add-funds", R"({"amount":1})"},
            {"/v1/instances/kp-1/topics", R"({"name":"a"})"},
            {"/v1/instances/kp-1/groups", R"({"name":"a"})"},
            {"/v1/instances/kp-1/usage", usage("u-1", 1, "2026-03-13T06:10:00Z", "2026-03-13T06:20:00Z")},
            {"/v1/ledger/checkpoint/cosignatures?tree_size=1", line},
            {"/v1/clock", R"({"advance_seconds":60})"}};
        for (const auto& [path, body] : commands)
            x.want(503, "POST", path, body, "admin",
                   path.starts_with("/v1/ledger/checkpoint") ? text : header_list{});
        x.want(503, "DELETE", "/v1/instances/kp-1/topics/a");
        x.want(503, "DELETE", "/v1/instances/kp-1/groups/a");
    }

    // ---- every exchange against the document ----
    const auto exchanges = dir.path() / "exchanges.json";
    {
        std::ofstream out(exchanges);
        out << json::serialize(log);
    }
    // Keep a copy for whoever debugs a failure.
    std::filesystem::copy_file(exchanges, std::filesystem::temp_directory_path() / "mqledger-openapi-exchanges.json",
                               std::filesystem::copy_options::overwrite_existing);
    const auto checked = run_program(python,
                                     {source_dir + "/tests/e2e/openapi_check.py", source_dir + "/docs/openapi.yaml",
                                      exchanges.string(), "--mutations"},
                                     {}, std::chrono::seconds(600));
    INFO("openapi_check.py (exchanges kept in " << (std::filesystem::temp_directory_path() /
                                                    "mqledger-openapi-exchanges.json").string()
                                                << "):\n"
                                                << checked.out << checked.err);
    CHECK(checked.exit_code == 0);
    WARN(checked.out << "(" << log.size() << " exchanges, "
                     << std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started).count()
                     << " s)");
}
