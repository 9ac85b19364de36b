// The policy table changed while the daemon runs (issue 15; README.md "Policy table";
// docs/rules.md "Policy changes at run time"): `serve --policy FILE`, reloaded on SIGHUP; each
// change appends `policy.changed` to stream `policy`; an instance already on its lapse path
// keeps the durations it entered it with; `verify` judges every event under the version its
// metadata names. Real daemon, real HTTP, real PostgreSQL, manual clock.
#include "tests/e2e/http_client.h"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

using namespace mqledger::test;
namespace json = boost::json;

namespace {

constexpr const char* start_time = "2026-03-13T06:00:00Z";

void write_file(const std::filesystem::path& p, const std::string& text) {
    std::ofstream out(p, std::ios::trunc);
    out << text;
}

std::string deadline(const json::object& inst, std::string_view k) {
    const auto* d = inst.if_contains("deadlines");
    if (!d || !d->is_object()) return "";
    const auto* v = d->as_object().if_contains(k);
    return v && v->is_string() ? std::string(v->as_string()) : std::string();
}

// A migrated scratch database, a policy file in a scratch directory and a manual-clock daemon
// reading it.
struct policy_daemon {
    scratch_database db;
    std::filesystem::path dir;
    std::filesystem::path file;
    std::uint16_t port;
    std::unique_ptr<daemon_process> d;
    http_client c{0};

    explicit policy_daemon(const std::string& initial) {
        const auto r = run_mqledger({"migrate", "--database-url", db.url()});
        REQUIRE(r.exit_code == 0);
        dir = std::filesystem::temp_directory_path() / ("mqledger-policy-" + std::to_string(::getpid()) + "-" +
                                                        std::to_string(reinterpret_cast<std::uintptr_t>(this)));
        std::filesystem::create_directories(dir);
        file = dir / "policy.json";
        write_file(file, initial);
        port = free_port();
        d = std::make_unique<daemon_process>(args(), port);
        c = d->client();
    }
    ~policy_daemon() {
        d.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    [[nodiscard]] std::vector<std::string> args() const {
        return {"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db.url(),
                "--insecure-no-auth", "--clock", "manual", "--clock-start", start_time, "--policy", file.string()};
    }
    json::object get_ok(const std::string& path) const {
        const auto r = c.get(path);
        INFO("GET " << path << " → " << r.status << " " << r.body);
        REQUIRE(r.status == 200);
        return r.json.as_object();
    }
    void post_ok(const std::string& path, const json::value& body, int status = 200) const {
        const auto r = c.post(path, body);
        INFO("POST " << path << " " << json::serialize(body) << " → " << r.status << " " << r.body);
        REQUIRE(r.status == status);
    }
    void clock(const std::string& t) const { post_ok("/v1/clock", json::object{{"now", t}}); }
    void buy_rabbitmq(const std::string& id, int months) const {
        post_ok("/v1/instances",
                json::object{{"instance_id", id}, {"account_id", "acc-p"}, {"product", "rabbitmq"},
                             {"billing", "subscription"}, {"timezone", "Asia/Shanghai"},
                             {"price", json::object{{"monthly", 1000}}}, {"term_months", months}},
                201);
    }
    json::object inst(const std::string& id) const { return get_ok("/v1/instances/" + id); }
    std::int64_t policy_version() const { return num(get_ok("/v1/policy").at("policy_version")); }
    // SIGHUP, then waits until the version in force is `want` (the reload runs off the I/O
    // threads, so the answer to the signal is not synchronous).
    void reload_until(std::int64_t want) const {
        REQUIRE(::kill(d->pid(), SIGHUP) == 0);
        for (int i = 0; i < 200 && policy_version() != want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(25));
        REQUIRE(policy_version() == want);
    }
    // The policy.changed events, read from the database the way an auditor would.
    std::vector<json::object> policy_events() const {
        const auto r = c.get("/v1/events?limit=1000");
        REQUIRE(r.status == 200);
        std::vector<json::object> out;
        for (const auto& e : r.json.at("items").as_array())
            if (str(e.at("type")) == "policy.changed") out.push_back(e.as_object());
        return out;
    }
    void verify_ok() const {
        const auto r = run_mqledger({"verify", "--database-url", db.url()});
        INFO("verify: exit " << r.exit_code << "\n" << r.out << r.err);
        CHECK(r.exit_code == 0);
    }
};

} // namespace

TEST_CASE("policy at run time: RabbitMQ grace changed from 15 to 10 days by SIGHUP, an instance already in "
          "grace keeps 15, instances expiring afterwards get 10, verify passes over both (issue 15, R)",
          "[e2e][policy]") {
    policy_daemon p("{}\n");   // the built-in table: no policy.changed event for it
    CHECK(p.policy_version() == 1);
    CHECK(p.policy_events().empty());

    p.post_ok("/v1/accounts", json::object{{"account_id", "acc-p"}, {"currency", "CNY"}}, 201);
    p.post_ok("/v1/accounts/acc-p/funds", json::object{{"amount", 100000}, {"reference", "wire"}});
    p.buy_rabbitmq("rq-early", 1);   // expires 2026-04-13, before the change
    p.buy_rabbitmq("rq-late", 2);    // expires 2026-05-13, after it

    p.clock("2026-04-13T06:00:00Z");
    CHECK(str(p.inst("rq-early").at("state")) == "expired");
    CHECK(deadline(p.inst("rq-early"), "freeze_at") == "2026-04-28T06:00:00Z");   // 15 days (R)

    write_file(p.file, R"({"rabbitmq/subscription": {"grace_days": 10}})");
    p.reload_until(2);
    const auto v2 = p.get_ok("/v1/policy");
    CHECK(v2.at("in_force") == true);
    CHECK(num(v2.at("table").at("rabbitmq/subscription").at("grace_days")) == 10);
    CHECK(num(v2.at("table").at("rabbitmq/subscription").at("retention_days")) == 15);
    const auto v1 = p.get_ok("/v1/policy?version=1");
    CHECK(v1.at("in_force") == false);
    CHECK(num(v1.at("table").at("rabbitmq/subscription").at("grace_days")) == 15);
    CHECK(str(v1.at("hash")) != str(v2.at("hash")));

    // The change is in the ledger: the whole table, its hash, the new version.
    const auto changes = p.policy_events();
    REQUIRE(changes.size() == 1);
    CHECK(str(changes[0].at("stream")) == "policy");
    CHECK(num(changes[0].at("data").at("policy_version")) == 2);
    CHECK(str(changes[0].at("data").at("hash")) == str(v2.at("hash")));
    CHECK(changes[0].at("data").at("table") == v2.at("table"));

    // Decision (docs/rules.md): the instance already in grace keeps the deadline it was given.
    CHECK(deadline(p.inst("rq-early"), "freeze_at") == "2026-04-28T06:00:00Z");
    CHECK(deadline(p.inst("rq-early"), "release_at") == "2026-05-13T06:00:00Z");
    p.buy_rabbitmq("rq-new", 1);   // bought under version 2, expires 2026-05-13

    p.clock("2026-04-23T06:00:00Z");   // 10 days after rq-early's expiry: still in grace
    CHECK(str(p.inst("rq-early").at("state")) == "expired");
    p.clock("2026-04-28T06:00:00Z");
    CHECK(str(p.inst("rq-early").at("state")) == "frozen");

    p.clock("2026-05-13T06:00:00Z");
    CHECK(str(p.inst("rq-early").at("state")) == "released");
    for (const auto* id : {"rq-late", "rq-new"}) {
        INFO(id);
        const auto v = p.inst(id);
        CHECK(str(v.at("state")) == "expired");
        CHECK(deadline(v, "freeze_at") == "2026-05-23T06:00:00Z");    // 10 days
        CHECK(deadline(v, "release_at") == "2026-06-07T06:00:00Z");   // + 15 days retention
    }
    p.clock("2026-05-23T06:00:00Z");
    CHECK(str(p.inst("rq-late").at("state")) == "frozen");
    CHECK(str(p.inst("rq-new").at("state")) == "frozen");

    // A restart with the same file writes nothing new; the projections and every event's
    // legality check out under the version each was decided by.
    p.d->restart();
    CHECK(p.policy_version() == 2);
    CHECK(p.policy_events().size() == 1);
    p.verify_ok();
    const auto r = run_mqledger({"verify", "--database-url", p.db.url()});
    CHECK(r.out.find("policy:      ok (2 versions, newest 2") != std::string::npos);
    // A fresh rebuild of the projections gives the same deadlines (the pinned terms are a
    // function of the log).
    REQUIRE(run_mqledger({"rebuild", "--database-url", p.db.url()}).exit_code == 0);
    p.d->restart();
    CHECK(deadline(p.inst("rq-late"), "release_at") == "2026-06-07T06:00:00Z");
}

TEST_CASE("policy at run time: a bad file is refused at start (exit 2) and on SIGHUP keeps the table in force, "
          "GET /v1/policy refuses unknown and malformed versions (issue 15)",
          "[e2e][policy]") {
    policy_daemon p(R"({"mqtt/payg": {"issue_delay_hours": 10}})");
    CHECK(p.policy_version() == 2);   // differs from the built-in table: version 2 at start
    CHECK(num(p.get_ok("/v1/policy").at("table").at("mqtt/payg").at("issue_delay_hours")) == 10);

    for (const std::string bad : {R"({"mqtt/payg": {"grace_weeks": 1}})", R"({"kafka/barter": {}})", "{not json",
                                  R"({"rabbitmq/subscription": {"grace_days": -1}})"}) {
        INFO(bad);
        write_file(p.file, bad);
        const auto started = run_mqledger({"serve", "--listen", "127.0.0.1:" + std::to_string(free_port()),
                                           "--database-url", p.db.url(), "--insecure-no-auth", "--policy",
                                           p.file.string()});
        CHECK(started.exit_code == 2);
        CHECK(started.err.find(p.file.string()) != std::string::npos);
        REQUIRE(::kill(p.d->pid(), SIGHUP) == 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    CHECK(p.policy_version() == 2);
    CHECK(p.policy_events().size() == 1);
    CHECK((p.d->stdout_text() + p.d->stderr_text()).find("policy not reloaded") != std::string::npos);

    std::filesystem::remove(p.file);   // unreadable: refused the same way
    REQUIRE(::kill(p.d->pid(), SIGHUP) == 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    CHECK(p.policy_version() == 2);
    CHECK(p.d->running());

    // Back to the built-in table: a new version equal to version 1's table, not version 1 again.
    write_file(p.file, "{}");
    p.reload_until(3);
    CHECK(str(p.get_ok("/v1/policy").at("hash")) == str(p.get_ok("/v1/policy?version=1").at("hash")));

    CHECK(p.c.get("/v1/policy?version=4").status == 404);
    const auto bad = p.c.get("/v1/policy?version=two");
    CHECK(bad.status == 422);
    CHECK(str(bad.json.at("error").at("field")) == "version");
    p.verify_ok();
}

TEST_CASE("policy at run time: two daemons on one ledger, the version one appends on SIGHUP is the table in "
          "force for the other within seconds, and nothing is written twice (issue 15)",
          "[e2e][policy]") {
    policy_daemon a(R"({"kafka/payg": {"stopped_release_days": 3}})");
    REQUIRE(a.policy_version() == 2);
    // The second daemon reads the same file: equal to the newest version, so it writes nothing.
    const auto port_b = free_port();
    auto args_b = a.args();
    args_b[2] = "127.0.0.1:" + std::to_string(port_b);
    daemon_process b(args_b, port_b);
    const auto cb = b.client();
    CHECK(num(cb.get("/v1/policy").json.at("policy_version")) == 2);
    CHECK(a.policy_events().size() == 1);

    write_file(a.file, R"({"kafka/payg": {"stopped_release_days": 4}})");
    a.reload_until(3);
    std::int64_t seen = 0;
    for (int i = 0; i < 100 && seen != 3; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        seen = num(cb.get("/v1/policy").json.at("policy_version"));
    }
    CHECK(seen == 3);
    CHECK(num(cb.get("/v1/policy").json.at("table").at("kafka/payg").at("stopped_release_days")) == 4);
    CHECK(a.policy_events().size() == 2);
    a.verify_ok();
}
