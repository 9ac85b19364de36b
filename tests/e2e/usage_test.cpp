// Usage records and usage-priced bills (issue 15) against the real daemon over real HTTP and a
// real PostgreSQL, driven by the manual clock: POST /v1/instances/{id}/usage, the itemised
// settlement (flat + usage), late records, duplicates, every refusal, the metrics; each scenario
// ends with the real `mqledger verify` deciding every recorded unit again.
#include "tests/e2e/http_client.h"

#include "daemon/metrics.h"
#include "ledger/unit.h"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace mqledger::test;
namespace json = boost::json;

namespace {

bool migrated(const scratch_database& db) {
    const auto r = run_mqledger({"migrate", "--database-url", db.url()});
    if (r.exit_code != 0) throw std::runtime_error("mqledger migrate failed: " + r.err);
    return true;
}

// A migrated scratch database and a daemon on it with the manual clock starting at `start`.
class usage_daemon {
public:
    explicit usage_daemon(const std::string& start)
        : ok_(migrated(db_)), port_(free_port()),
          d_({"serve", "--listen", "127.0.0.1:" + std::to_string(port_), "--database-url", db_.url(),
              "--insecure-no-auth", "--clock", "manual", "--clock-start", start},
             port_),
          c(d_.client()) {}

    http_result post(const std::string& path, const json::value& body, const header_list& h = {}) const {
        return c.post(path, body, h);
    }
    json::object must(const std::string& path, const json::value& body, int status = 200) const {
        const auto r = post(path, body);
        INFO("POST " << path << " " << json::serialize(body) << " → " << r.status << " " << r.body);
        REQUIRE(r.status == status);
        return r.json.as_object();
    }
    json::object get(const std::string& path) const {
        const auto r = c.get(path);
        INFO("GET " << path << " → " << r.status << " " << r.body);
        REQUIRE(r.status == 200);
        return r.json.as_object();
    }
    void open(const std::string& acc, std::int64_t funds) const {
        must("/v1/accounts", json::object{{"account_id", acc}, {"currency", "CNY"}}, 201);
        must("/v1/accounts/" + acc + "/funds", json::object{{"amount", funds}, {"reference", "seed"}});
    }
    void clock(const std::string& t) const { must("/v1/clock", json::object{{"now", t}}); }
    http_result usage(const std::string& id, const std::string& record, const std::string& metric, json::value quantity,
                      const std::string& start, const std::string& end, const header_list& h = {}) const {
        return post("/v1/instances/" + id + "/usage",
                    json::object{{"record_id", record}, {"metric", metric}, {"quantity", std::move(quantity)},
                                 {"start", start}, {"end", end}},
                    h);
    }
    json::array events(const std::string& id) const { return get("/v1/instances/" + id + "/events").at("items").as_array(); }
    std::vector<json::object> of_type(const std::string& id, const std::string& type) const {
        std::vector<json::object> out;
        for (const auto& e : events(id))
            if (str(e.at("type")) == type) out.push_back(e.as_object());
        return out;
    }
    std::int64_t head() const { return num(get("/v1/events?after=0&limit=1").at("head")); }
    std::int64_t balance(const std::string& acc) const { return num(get("/v1/accounts/" + acc).at("balance")); }
    std::string metrics() const { return c.get("/metrics").body; }

    // The real `mqledger verify` on the daemon's database: every unit decided again.
    void verified() const {
        const auto v = run_mqledger({"verify", "--database-url", db_.url()});
        INFO(v.out << v.err);
        CHECK(v.exit_code == 0);
        CHECK(v.out.find("conformance: ok") != std::string::npos);
    }

private:
    scratch_database db_;
    bool ok_;
    std::uint16_t port_;
    daemon_process d_;

public:
    http_client c;
};

json::object payg(const std::string& id, const std::string& acc, const std::string& product, json::object price) {
    json::object o{{"instance_id", id}, {"account_id", acc},  {"product", product},
                   {"billing", "payg"}, {"timezone", "Asia/Shanghai"}, {"price", std::move(price)}};
    if (product == "rocketmq")
        o["config"] = json::object{{"edition", "standard"}, {"sub_category", "cluster"}, {"tps", 1000},
                                   {"internet_access", false}, {"bandwidth_mbps", 0}};
    return o;
}

void refused(const http_result& r, int status, const std::string& code, const std::string& key, const std::string& value) {
    INFO(r.status << " " << r.body);
    CHECK(r.status == status);
    CHECK(r.error_code() == code);
    if (!key.empty()) CHECK(str(r.json.at("error").at(key)) == value);
}

} // namespace

TEST_CASE("usage e2e: a day of MQTT pay-as-you-go usage (imported) is settled 9 h after the local day ends with "
          "flat + usage items, and verify passes (M: the next day measures the previous day's usage, issue 15)",
          "[e2e][usage]") {
    // 2026-03-13 00:00 in Asia/Shanghai.
    usage_daemon d("2026-03-12T16:00:00Z");
    d.open("acc-m", 100000);
    d.must("/v1/instances/import",
           json::object{{"instance_id", "m-1"}, {"account_id", "acc-m"}, {"product", "mqtt"}, {"billing", "payg"},
                        {"timezone", "Asia/Shanghai"},
                        {"price", json::object{{"daily", 900}, {"per_unit", json::object{{"messages", 3}}}}},
                        {"state", "running"}, {"state_since", "2026-03-01T00:00:00Z"}},
           201);
    CHECK(json::serialize(d.get("/v1/instances/m-1").at("price")) == R"({"daily":900,"per_unit":{"messages":3}})");
    d.clock("2026-03-13T20:00:00Z");   // 04:00 on the 14th: the 13th is not billed before 09:00
    const auto r = d.usage("m-1", "day-13", "messages", 1000, "2026-03-13T00:00:00+08:00", "2026-03-13T16:00:00Z");
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(r.json == json::parse(R"({"instance_id":"m-1","record_id":"day-13","metric":"messages","quantity":1000,)"
                                R"("start":"2026-03-12T16:00:00Z","end":"2026-03-13T16:00:00Z",)"
                                R"("cycle_start":"2026-03-12T16:00:00Z","cycle_end":"2026-03-13T16:00:00Z","duplicate":false})"));
    const auto recorded = d.of_type("m-1", "instance.usage_recorded");
    REQUIRE(recorded.size() == 1);
    CHECK(str(recorded[0].at("effective_at")) == "2026-03-13T20:00:00Z");
    CHECK(recorded[0].at("data") == json::parse(R"({"record_id":"day-13","metric":"messages","quantity":1000,)"
                                                R"("start":"2026-03-12T16:00:00Z","end":"2026-03-13T16:00:00Z","rate":3})"));
    CHECK(str(d.get("/v1/instances/m-1").at("deadlines").at("next_settlement_at")) == "2026-03-14T01:00:00Z");

    d.clock("2026-03-14T01:00:00Z");   // 09:00 on the 14th
    const auto bills = d.of_type("m-1", "instance.settled");
    REQUIRE(bills.size() == 1);
    CHECK(str(bills[0].at("effective_at")) == "2026-03-14T01:00:00Z");
    CHECK(bills[0].at("data") ==
          json::parse(R"({"cycle_start":"2026-03-12T16:00:00Z","cycle_end":"2026-03-13T16:00:00Z","amount":3900,)"
                      R"("flat":900,"usage":[{"record_id":"day-13","metric":"messages","quantity":1000,"rate":3,)"
                      R"("amount":3000,"cycle_start":"2026-03-12T16:00:00Z","cycle_end":"2026-03-13T16:00:00Z"}]})"));
    CHECK(num(bills[0].at("metadata").at("schema_version").at("instance.settled")) == 2);
    CHECK(d.balance("acc-m") == 100000 - 3900);
    CHECK(num(d.get("/v1/instances/m-1").at("billed_total")) == 3900);
    d.verified();
}

TEST_CASE("usage e2e: a storage-metered RocketMQ pay-as-you-go hour is billed flat + storage, a record for that hour "
          "arriving after its bill goes into the next bill, its item naming its own cycle, verify passes (Q: storage "
          "billed pay-as-you-go, issue 15: late usage)",
          "[e2e][usage]") {
    usage_daemon d("2026-03-13T06:00:00Z");
    d.open("acc-r", 100000);
    const auto view = d.must("/v1/instances",
                             payg("r-1", "acc-r", "rocketmq",
                                  json::object{{"hourly", 500}, {"per_unit", json::object{{"storage_gb_hours", 4}}}}),
                             201);
    CHECK(json::serialize(view.at("price")) == R"({"hourly":500,"per_unit":{"storage_gb_hours":4}})");
    d.clock("2026-03-13T06:50:00Z");
    auto r = d.usage("r-1", "s-1", "storage_gb_hours", 250, "2026-03-13T06:00:00Z", "2026-03-13T06:45:00Z");
    REQUIRE(r.status == 200);
    CHECK(str(r.json.at("cycle_start")) == "2026-03-13T06:00:00Z");
    CHECK(str(r.json.at("cycle_end")) == "2026-03-13T07:00:00Z");

    d.clock("2026-03-13T07:20:00Z");
    auto bills = d.of_type("r-1", "instance.settled");
    REQUIRE(bills.size() == 1);
    CHECK(bills[0].at("data") ==
          json::parse(R"({"cycle_start":"2026-03-13T06:00:00Z","cycle_end":"2026-03-13T07:00:00Z","amount":1500,)"
                      R"("flat":500,"usage":[{"record_id":"s-1","metric":"storage_gb_hours","quantity":250,"rate":4,)"
                      R"("amount":1000,"cycle_start":"2026-03-13T06:00:00Z","cycle_end":"2026-03-13T07:00:00Z"}]})"));
    CHECK(d.balance("acc-r") == 100000 - 1500);

    // Late: the 06:00 hour is settled; the record is billed with 07:00-08:00, naming 06:00-07:00.
    r = d.usage("r-1", "s-2", "storage_gb_hours", 10, "2026-03-13T06:45:00Z", "2026-03-13T06:50:00Z");
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(str(r.json.at("cycle_start")) == "2026-03-13T06:00:00Z");
    CHECK(r.json.at("duplicate") == false);
    d.clock("2026-03-13T08:00:00Z");
    bills = d.of_type("r-1", "instance.settled");
    REQUIRE(bills.size() == 2);
    CHECK(bills[1].at("data") ==
          json::parse(R"({"cycle_start":"2026-03-13T07:00:00Z","cycle_end":"2026-03-13T08:00:00Z","amount":540,)"
                      R"("flat":500,"usage":[{"record_id":"s-2","metric":"storage_gb_hours","quantity":10,"rate":4,)"
                      R"("amount":40,"cycle_start":"2026-03-13T06:00:00Z","cycle_end":"2026-03-13T07:00:00Z"}]})"));
    CHECK(d.balance("acc-r") == 100000 - 1500 - 540);

    // The metrics expose the usage series by product and metric.
    const auto text = d.metrics();
    CHECK(text.find("mqledger_usage_records_total{metric=\"storage_gb_hours\",product=\"rocketmq\"}") != std::string::npos);
    CHECK(text.find("mqledger_usage_billed_minor_total{metric=\"storage_gb_hours\",product=\"rocketmq\"}") !=
          std::string::npos);
    CHECK(text.find("mqledger_usage_records_total{metric=\"messages\",product=\"mqtt\"}") != std::string::npos);
    d.verified();
}

TEST_CASE("usage e2e: a late record for a stopped Kafka instance (no billable time left) is still billed, by a "
          "settlement with flat 0 at the end of the hour it was recorded in, verify passes (issue 15, decision)",
          "[e2e][usage]") {
    usage_daemon d("2026-03-13T06:00:00Z");
    d.open("acc-k", 100000);
    d.must("/v1/instances",
           payg("k-1", "acc-k", "kafka", json::object{{"hourly", 120}, {"per_unit", json::object{{"storage_gb_hours", 2}}}}),
           201);
    d.must("/v1/instances/k-1/actions/deploy", json::object{});
    d.clock("2026-03-13T06:30:00Z");
    d.must("/v1/instances/k-1/actions/stop", json::object{});
    d.clock("2026-03-13T08:15:00Z");
    REQUIRE(d.of_type("k-1", "instance.settled").size() == 1);
    CHECK_FALSE(d.get("/v1/instances/k-1").at("deadlines").as_object().contains("next_settlement_at"));
    const auto r = d.usage("k-1", "late", "storage_gb_hours", 30, "2026-03-13T06:00:00Z", "2026-03-13T06:30:00Z");
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(str(d.get("/v1/instances/k-1").at("deadlines").at("next_settlement_at")) == "2026-03-13T09:00:00Z");
    d.clock("2026-03-13T09:00:00Z");
    const auto bills = d.of_type("k-1", "instance.settled");
    REQUIRE(bills.size() == 2);
    CHECK(bills[1].at("data") ==
          json::parse(R"({"cycle_start":"2026-03-13T08:00:00Z","cycle_end":"2026-03-13T09:00:00Z","amount":60,)"
                      R"("flat":0,"usage":[{"record_id":"late","metric":"storage_gb_hours","quantity":30,"rate":2,)"
                      R"("amount":60,"cycle_start":"2026-03-13T06:00:00Z","cycle_end":"2026-03-13T07:00:00Z"}]})"));
    CHECK(d.balance("acc-k") == 100000 - 60 - 60);
    d.verified();
}

TEST_CASE("usage e2e: a repeated record is 200 duplicate true with one event, its id reused with other content is "
          "409, a repeat with the same Idempotency-Key answers as the first, verify passes (issue 15, duplicates)",
          "[e2e][usage]") {
    usage_daemon d("2026-03-13T06:00:00Z");
    d.open("acc-k", 100000);
    d.must("/v1/instances",
           payg("k-1", "acc-k", "kafka", json::object{{"hourly", 120}, {"per_unit", json::object{{"storage_gb_hours", 2}}}}),
           201);
    d.must("/v1/instances/k-1/actions/deploy", json::object{});
    d.clock("2026-03-13T06:40:00Z");
    auto r = d.usage("k-1", "d-1", "storage_gb_hours", 5, "2026-03-13T06:00:00Z", "2026-03-13T06:30:00Z");
    REQUIRE(r.status == 200);
    CHECK(r.json.at("duplicate") == false);
    const auto events = d.events("k-1").size();
    const auto head = d.head();
    r = d.usage("k-1", "d-1", "storage_gb_hours", 5, "2026-03-13T06:00:00Z", "2026-03-13T06:30:00Z");
    INFO(r.body);
    REQUIRE(r.status == 200);
    CHECK(r.json.at("duplicate") == true);
    CHECK(str(r.json.at("cycle_end")) == "2026-03-13T07:00:00Z");
    CHECK(d.events("k-1").size() == events);
    CHECK(d.head() == head);
    CHECK(d.of_type("k-1", "instance.usage_recorded").size() == 1);

    r = d.usage("k-1", "d-1", "storage_gb_hours", 6, "2026-03-13T06:00:00Z", "2026-03-13T06:30:00Z");
    refused(r, 409, "conflict", "reason", "record_id_reused");
    CHECK(d.head() == head);

    const header_list key{{"Idempotency-Key", "usage-key-1"}};
    r = d.usage("k-1", "d-2", "storage_gb_hours", 7, "2026-03-13T06:30:00Z", "2026-03-13T06:35:00Z", key);
    REQUIRE(r.status == 200);
    CHECK(r.json.at("duplicate") == false);
    const auto again = d.usage("k-1", "d-2", "storage_gb_hours", 7, "2026-03-13T06:30:00Z", "2026-03-13T06:35:00Z", key);
    CHECK(again.status == 200);
    CHECK(again.body == r.body);
    CHECK(d.of_type("k-1", "instance.usage_recorded").size() == 2);

    d.clock("2026-03-13T07:00:00Z");
    const auto bills = d.of_type("k-1", "instance.settled");
    REQUIRE(bills.size() == 1);
    CHECK(num(bills[0].at("data").at("amount")) == 120 + 10 + 14);
    CHECK(bills[0].at("data").at("usage").as_array().size() == 2);
    d.verified();
}

TEST_CASE("usage e2e: every refusal answers its exact status, code and field or reason, and writes nothing, verify "
          "passes (issue 15: the usage route's refusals)",
          "[e2e][usage]") {
    usage_daemon d("2026-03-13T06:00:00Z");
    d.open("acc-k", 100000);
    const json::object rates{{"hourly", 120}, {"per_unit", json::object{{"storage_gb_hours", 2}}}};
    d.must("/v1/instances", payg("k-run", "acc-k", "kafka", rates), 201);
    d.must("/v1/instances/k-run/actions/deploy", json::object{});
    d.must("/v1/instances", payg("k-stop", "acc-k", "kafka", rates), 201);
    d.must("/v1/instances/k-stop/actions/deploy", json::object{});
    d.must("/v1/instances", payg("k-plain", "acc-k", "kafka", json::object{{"hourly", 120}}), 201);
    d.must("/v1/instances/k-plain/actions/deploy", json::object{});
    d.clock("2026-03-13T06:30:00Z");
    d.must("/v1/instances/k-stop/actions/stop", json::object{});
    d.clock("2026-03-13T07:30:00Z");
    const auto head = d.head();
    const std::string m = "storage_gb_hours";

    refused(d.usage("k-run", "a", m, -1, "2026-03-13T07:00:00Z", "2026-03-13T07:10:00Z"), 422, "invalid", "field",
            "quantity");
    refused(d.usage("k-run", "a", m, json::value(std::uint64_t{9223372036854775808ULL}), "2026-03-13T07:00:00Z",
                    "2026-03-13T07:10:00Z"),
            422, "invalid", "field", "quantity");
    refused(d.usage("k-run", "a", m, 1.5, "2026-03-13T07:00:00Z", "2026-03-13T07:10:00Z"), 422, "invalid", "field",
            "quantity");
    refused(d.usage("k-run", "a", m, std::int64_t{9223372036854775807LL}, "2026-03-13T07:00:00Z", "2026-03-13T07:10:00Z"),
            422, "invalid", "field", "quantity");   // × 2 per unit overflows
    refused(d.usage("k-run", "a", m, 1, "2026-03-13T07:10:00Z", "2026-03-13T07:00:00Z"), 422, "invalid", "field", "end");
    refused(d.usage("k-run", "a", m, 1, "2026-03-13T07:10:00Z", "2026-03-13T07:10:00Z"), 422, "invalid", "field", "end");
    refused(d.usage("k-run", "a", m, 1, "2026-03-13T07:10:00Z", "2026-03-13T07:31:00Z"), 422, "invalid", "field", "end");
    refused(d.usage("k-run", "a", "messages", 1, "2026-03-13T07:00:00Z", "2026-03-13T07:10:00Z"), 422, "invalid",
            "field", "metric");
    {
        const auto r = d.usage("k-run", "a", m, 1, "2026-03-13T06:30:00Z", "2026-03-13T07:10:00Z");
        refused(r, 422, "invalid", "field", "end");
        CHECK(r.body.find("2026-03-13T07:00:00Z") != std::string::npos);   // where to split it
    }
    refused(d.usage("k-run", "a", m, 1, "2026-02-01T00:00:00Z", "2026-02-01T00:10:00Z"), 422, "invalid", "field", "start");
    refused(d.usage("k-stop", "a", m, 1, "2026-03-13T06:40:00Z", "2026-03-13T06:50:00Z"), 409, "conflict", "reason",
            "not_billable");
    refused(d.usage("k-plain", "a", m, 1, "2026-03-13T07:00:00Z", "2026-03-13T07:10:00Z"), 422, "invalid", "field",
            "metric");
    refused(d.usage("no-such", "a", m, 1, "2026-03-13T07:00:00Z", "2026-03-13T07:10:00Z"), 404, "not_found", "", "");
    refused(d.usage("k-run", "", m, 1, "2026-03-13T07:00:00Z", "2026-03-13T07:10:00Z"), 422, "invalid", "field",
            "record_id");
    refused(d.usage("k-run", "a", m, 1, "yesterday", "2026-03-13T07:10:00Z"), 422, "invalid", "field", "start");
    refused(d.post("/v1/instances/k-run/usage",
                   json::object{{"record_id", "a"}, {"metric", m}, {"quantity", 1}, {"start", "2026-03-13T07:00:00Z"},
                                {"end", "2026-03-13T07:10:00Z"}, {"rate", 5}}),
            400, "malformed", "", "");
    refused(d.post("/v1/instances/k-run/usage",
                   json::object{{"record_id", "a"}, {"metric", m}, {"quantity", "1"}, {"start", "2026-03-13T07:00:00Z"},
                                {"end", "2026-03-13T07:10:00Z"}}),
            400, "malformed", "", "");
    // Per-unit rates in a purchase: only the policy's metrics, never negative.
    refused(d.post("/v1/instances", payg("k-x", "acc-k", "kafka",
                                          json::object{{"hourly", 120}, {"per_unit", json::object{{"messages", 1}}}})),
            422, "invalid", "field", "price.per_unit.messages");
    refused(d.post("/v1/instances", payg("k-x", "acc-k", "kafka",
                                          json::object{{"hourly", 120}, {"per_unit", json::object{{m, -1}}}})),
            422, "invalid", "field", "price.per_unit.storage_gb_hours");
    CHECK(d.head() == head);
    d.verified();
}

TEST_CASE("usage metrics: a unit's usage records and the usage its settlements bill are counted by product and metric "
          "(mqledger_usage_records_total, mqledger_usage_billed_minor_total)",
          "[e2e][usage][metrics]") {
    using namespace mqledger;
    metrics m("9.9.9");
    // The default table's series exist at zero from the start.
    auto text = m.exposition();
    CHECK(text.find("mqledger_usage_records_total{metric=\"messages\",product=\"mqtt\"} 0") != std::string::npos);
    CHECK(text.find("mqledger_usage_billed_minor_total{metric=\"storage_gb_hours\",product=\"kafka\"} 0") !=
          std::string::npos);
    unit_outcome o;
    instance_state s;
    s.exists = true;
    s.prod = product::rocketmq;
    s.bill = billing::payg;
    o.instances.emplace("r-1", s);
    const time_point t{};
    o.events.push_back({instance_stream("r-1"), t, events::usage_recorded{"a", "storage_gb_hours", 5, t, t, 4}});
    o.events.push_back({instance_stream("r-1"), t,
                        events::settled{t, t, 520, 500, {events::usage_item{"a", "storage_gb_hours", 5, 4, 20, t, t}}}});
    m.observe_unit(o);
    m.observe_unit(o);
    text = m.exposition();
    CHECK(text.find("mqledger_usage_records_total{metric=\"storage_gb_hours\",product=\"rocketmq\"} 2") !=
          std::string::npos);
    CHECK(text.find("mqledger_usage_billed_minor_total{metric=\"storage_gb_hours\",product=\"rocketmq\"} 40") !=
          std::string::npos);
}
