// `mqledger status` against the real daemon (README.md "Command line"): every figure of
// `--format json` is what the API says (GET /v1/ledger/head, /v1/releases/pending, /v1/accounts,
// the instances' deadlines, /v1/ledger/checkpoint), the text format shows the same, the timer
// leader is the session holding the leader lock (daemon/leader_lock.h), the command works under
// a role that may only read in read-only transactions and changes nothing, and its exit codes.
#include "tests/e2e/http_client.h"

#include "daemon/leader_lock.h"
#include "ledger/codec.h"
#include "ledger/store/checkpoint.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <chrono>
#include <set>
#include <sstream>
#include <thread>

using namespace mqledger;
using namespace mqledger::test;
namespace json = boost::json;

namespace {

constexpr const char* start_time = "2026-03-13T06:00:00Z";   // 14:00 Asia/Shanghai

struct ledger_db {
    scratch_database db{"mqledger_status"};
    ledger_db() { REQUIRE(run_mqledger({"migrate", "--database-url", db.url()}).exit_code == 0); }
};

struct log_key {
    temp_dir dir;
    std::string priv;
    log_key() {
        priv = (dir.path() / "log.pem").string();
        REQUIRE(run_program("openssl", {"genpkey", "-algorithm", "ed25519", "-out", priv}).exit_code == 0);
    }
};

std::vector<std::string> serve_args(std::uint16_t port, const std::string& db, const std::string& key) {
    return {"serve",   "--listen",      "127.0.0.1:" + std::to_string(port), "--database-url", db,
            "--insecure-no-auth", "--log-format", "json", "--clock", "manual", "--clock-start", start_time,
            "--digest-key", key};
}

json::object ok(const http_result& r, int status = 200) {
    INFO(r.status << " " << r.body);
    REQUIRE(r.status == status);
    return r.json.is_object() ? r.json.as_object() : json::object{};
}

json::object purchase(const std::string& id, const std::string& acc, std::int64_t hourly) {
    return json::object{{"instance_id", id},       {"account_id", acc}, {"product", "kafka"},
                        {"billing", "payg"},       {"timezone", "Asia/Shanghai"},
                        {"price", json::object{{"hourly", hourly}}}};
}

void open_account(const http_client& c, const std::string& id, std::int64_t funds) {
    ok(c.post("/v1/accounts", json::object{{"account_id", id}, {"currency", "CNY"}}), 201);
    ok(c.post("/v1/accounts/" + id + "/funds", json::object{{"amount", funds}, {"reference", "seed"}}));
}

void act(const http_client& c, const std::string& id, const std::string& action) {
    ok(c.post("/v1/instances/" + id + "/actions/" + action, json::object{}));
}

void clock_to(const http_client& c, const std::string& t) { ok(c.post("/v1/clock", json::object{{"now", t}})); }

// `mqledger status ARGS --database-url URL`, which must exit 0 (and, with --format json, print one
// JSON object).
run_result status_ok(const std::string& url, std::vector<std::string> args) {
    args.insert(args.begin(), "status");
    args.push_back("--database-url");
    args.push_back(url);
    const auto r = run_mqledger(args, {{"MQLEDGER_FORMAT", std::nullopt}, {"MQLEDGER_NOW", std::nullopt}});
    INFO("status: exit " << r.exit_code << "\n" << r.out << r.err);
    REQUIRE(r.exit_code == 0);
    return r;
}

json::object status_json(const std::string& url, std::vector<std::string> args = {}) {
    args.push_back("--format");
    args.push_back("json");
    const auto r = status_ok(url, args);
    INFO(r.out);
    boost::system::error_code ec;
    auto v = json::parse(r.out, ec);
    REQUIRE_FALSE(ec);
    REQUIRE(v.is_object());
    return v.as_object();
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// The line that starts with `label` (the label column), REQUIRE'd to exist.
std::string line_starting(const std::vector<std::string>& lines, const std::string& label) {
    for (const auto& l : lines)
        if (l.rfind(label, 0) == 0) return l;
    INFO("no line starting with '" << label << "'");
    REQUIRE(false);
    return {};
}

std::string plus(const std::string& t, std::chrono::seconds d) {
    return codec::format_time(*codec::parse_time(t) + d);
}

// Every table's rows of the database in a stable order, as one text: a fingerprint that changes
// if anything is written.
std::string fingerprint(const std::string& url) {
    pqxx::connection c(url);
    pqxx::read_transaction tx(c);
    std::string out;
    for (const auto& t : tx.exec("SELECT quote_ident(table_name) FROM information_schema.tables "
                                 "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1")) {
        const std::string name = t[0].c_str();
        const auto r = tx.exec("SELECT coalesce(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM " + name + " x");
        out += "== " + name + "\n" + r[0][0].c_str() + "\n";
    }
    return out;
}

} // namespace

TEST_CASE("status: every figure of --format json is what the API says, and the text format shows them aligned",
          "[e2e][status]") {
    ledger_db l;
    log_key key;
    const auto port = free_port();
    daemon_process d(serve_args(port, l.db.url(), key.priv), port);
    const auto c = d.client();

    // At 06:00 on the 13th: a rich account and a poor one whose first hourly bill (120, at 07:00)
    // leaves it owing; a stopped instance released at 08:00 local on the 15th (00:00Z).
    open_account(c, "acc-rich", 1000000);
    open_account(c, "acc-poor", 100);
    ok(c.post("/v1/instances", purchase("st-run", "acc-rich", 10)), 201);
    act(c, "st-run", "deploy");
    ok(c.post("/v1/instances", purchase("st-stop", "acc-rich", 10)), 201);
    act(c, "st-stop", "deploy");
    act(c, "st-stop", "stop");
    ok(c.post("/v1/instances", purchase("st-poor", "acc-poor", 120)), 201);
    act(c, "st-poor", "deploy");
    // 19.5 hours later: st-stop's release is 22.5 h away, st-poor's (7 days after it expired) is not
    // within 24 h; a force deletion releases st-fd at the next settlement, 02:00Z.
    clock_to(c, "2026-03-14T01:30:00Z");
    ok(c.post("/v1/instances", purchase("st-fd", "acc-rich", 10)), 201);
    act(c, "st-fd", "deploy");
    act(c, "st-fd", "stop");
    act(c, "st-fd", "force-delete");
    // A clock move extends the tree and signs a checkpoint of everything written; the next one
    // writes nothing, so that checkpoint stays the newest and is 5 minutes old at 01:36.
    clock_to(c, "2026-03-14T01:31:00Z");
    clock_to(c, "2026-03-14T01:36:00Z");
    const std::string now = "2026-03-14T01:36:00Z";
    REQUIRE(str(ok(c.get("/v1/clock")).at("now")) == now);

    const auto s = status_json(l.db.url(), {"--now", now});
    INFO(json::serialize(s));
    CHECK(str(s.at("now")) == now);
    CHECK(str(s.at("now_source")) == "option");
    CHECK(s.at("hot_standby") == false);

    SECTION("head: GET /v1/ledger/head") {
        const auto head = ok(c.get("/v1/ledger/head"));
        CHECK(num(s.at("head").at("position")) == num(head.at("position")));
        CHECK(str(s.at("head").at("hash")) == str(head.at("hash")));
        CHECK(num(head.at("position")) > 10);
    }
    SECTION("releases within 24 h: GET /v1/releases/pending?before=now+24h, in its order") {
        const auto pending = ok(c.get("/v1/releases/pending?before=" + plus(now, std::chrono::hours(24))));
        const auto& want = pending.at("items").as_array();
        const auto& got = s.at("releases_within_24h").at("items").as_array();
        CHECK(num(s.at("releases_within_24h").at("count")) == static_cast<std::int64_t>(want.size()));
        REQUIRE(got.size() == want.size());
        for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == want[i]);
        REQUIRE(got.size() == 2);
        CHECK(str(got[0].at("instance_id")) == "st-fd");
        CHECK(str(got[0].at("release_at")) == "2026-03-14T02:00:00Z");
        CHECK(str(got[0].at("cause")) == "force_delete");
        CHECK(str(got[1].at("instance_id")) == "st-stop");
        CHECK(str(got[1].at("release_at")) == "2026-03-15T00:00:00Z");
        // st-poor's release is pending too, but not within 24 h.
        const auto all = ok(c.get("/v1/releases/pending")).at("items").as_array();
        CHECK(all.size() == 3);
    }
    SECTION("overdue accounts: the accounts that owe, as GET /v1/accounts/{id} shows them") {
        CHECK(num(s.at("overdue_accounts").at("count")) == 1);
        const auto& items = s.at("overdue_accounts").at("items").as_array();
        REQUIRE(items.size() == 1);
        const auto& a = items[0].as_object();
        const auto api = ok(c.get("/v1/accounts/acc-poor"));
        for (const char* k : {"account_id", "currency", "balance", "owed", "overdue_since"}) {
            INFO(k);
            CHECK(a.at(k) == api.at(k));
        }
        CHECK(num(api.at("owed")) > 0);
        CHECK(num(ok(c.get("/v1/accounts/acc-rich")).at("owed")) == 0);
    }
    SECTION("timers within the hour: the timers projection's rows due by now+1h, each a deadline of its "
            "instance's view") {
        pqxx::connection conn(l.db.url());
        pqxx::read_transaction tx(conn);
        const auto rows = tx.exec_params("SELECT instance_id, kind, due_at FROM timers "
                                         "WHERE due_at <= $1::timestamptz + interval '1 hour' "
                                         "ORDER BY due_at, instance_id, kind",
                                         now);
        CHECK(num(s.at("timers_within_hour").at("count")) == static_cast<std::int64_t>(rows.size()));
        CHECK(num(s.at("timers_within_hour").at("past_due")) == 0);
        const auto& items = s.at("timers_within_hour").at("items").as_array();
        REQUIRE(items.size() == std::min<std::size_t>(rows.size(), 5));
        std::set<std::string> instances;
        for (std::size_t i = 0; i < items.size(); ++i) {
            const auto& t = items[i].as_object();
            CHECK(str(t.at("instance_id")) == rows[i][0].c_str());
            CHECK(str(t.at("kind")) == rows[i][1].c_str());
            instances.insert(str(t.at("instance_id")));
            // The API's view of the instance has this deadline.
            const auto view = ok(c.get("/v1/instances/" + str(t.at("instance_id"))));
            bool found = false;
            for (const auto& kv : view.at("deadlines").as_object())
                found = found || (kv.value().is_string() && kv.value().as_string() == t.at("due_at").as_string());
            INFO(json::serialize(view));
            CHECK(found);
            CHECK(str(t.at("due_at")) <= plus(now, std::chrono::hours(1)));
            CHECK(str(t.at("due_at")) > now);
        }
        // The hourly settlements of the running instances and st-fd's release are due at 02:00.
        CHECK(instances.count("st-run") == 1);
        CHECK(instances.count("st-fd") == 1);
        CHECK(instances.count("st-stop") == 0);
    }
    SECTION("checkpoint: GET /v1/ledger/checkpoint's tree, 5 minutes old, covering the head") {
        const auto r = c.get("/v1/ledger/checkpoint");
        REQUIRE(r.status == 200);
        const auto note = checkpoint::parse(r.body);
        REQUIRE(note);
        const auto& cp = s.at("checkpoint").as_object();
        CHECK(num(cp.at("tree_size")) == note->size);
        CHECK(num(cp.at("tree_size")) == num(s.at("head").at("position")));
        CHECK(num(cp.at("events_after")) == 0);
        CHECK(str(cp.at("created_at")) == "2026-03-14T01:31:00Z");
        CHECK(num(cp.at("age_seconds")) == 300);
        CHECK(num(s.at("merkle_tree_size")) == note->size);
        CHECK(s.at("digest").at("stored") == false);
    }
    SECTION("timer leader: none under --clock manual; the session holding the leader lock when one does") {
        CHECK(str(s.at("timer_leader").at("state")) == "none");
        CHECK(s.at("timer_leader").at("pid").is_null());
        {
            // The daemons' own lock class, on a session named like a daemon would be in its URL.
            leader_lock lock(store::with_default(l.db.url(), "application_name", "mqledger-host-a"));
            REQUIRE(lock.check() == leader_lock::status::leader);
            const auto held = status_json(l.db.url(), {"--now", now});
            const auto& t = held.at("timer_leader").as_object();
            INFO(json::serialize(t));
            CHECK(str(t.at("state")) == "held");
            CHECK(str(t.at("application_name")) == "mqledger-host-a");
            CHECK(str(t.at("user")) == "postgres");
            CHECK(num(t.at("pid")) > 0);
            CHECK(t.at("session_start").is_string());
            // The text names it too.
            const auto text = lines_of(status_ok(l.db.url(), {"--now", now}).out);
            const auto line = line_starting(text, "timer leader       ");
            CHECK(line.find("pid " + std::to_string(num(t.at("pid")))) != std::string::npos);
            CHECK(line.find("application mqledger-host-a") != std::string::npos);
            lock.release();
        }
        CHECK(str(status_json(l.db.url(), {"--now", now}).at("timer_leader").at("state")) == "none");
    }
    SECTION("text: one aligned line per figure, the lists under them") {
        const auto out = status_ok(l.db.url(), {"--now", now}).out;
        INFO(out);
        const auto text = lines_of(out);
        const auto head = ok(c.get("/v1/ledger/head"));
        CHECK(line_starting(text, "now                ") == "now                " + now + " (--now)");
        CHECK(line_starting(text, "head               ") == "head               position " +
                                                               std::to_string(num(head.at("position"))) + ", hash " +
                                                               str(head.at("hash")));
        CHECK(line_starting(text, "timer leader       ").find("none: ") != std::string::npos);
        CHECK(line_starting(text, "timers within 1 h  ") ==
              "timers within 1 h  " + std::to_string(num(s.at("timers_within_hour").at("count"))));
        CHECK(line_starting(text, "overdue accounts   ") == "overdue accounts   1");
        CHECK(line_starting(text, "releases in 24 h   ") == "releases in 24 h   2");
        CHECK(line_starting(text, "checkpoint         ").find("tree size " + std::to_string(num(head.at("position"))) +
                                                          " (0 events after it), created 2026-03-14T01:31:00Z, 5 min ago") !=
              std::string::npos);
        CHECK(line_starting(text, "digest             ").find("not stored") != std::string::npos);
        // The list rows are indented to the value column, their columns aligned.
        const auto releases = std::find(text.begin(), text.end(), "releases in 24 h   2");
        REQUIRE(std::distance(releases, text.end()) > 2);
        CHECK(*(releases + 1) == "                   2026-03-14T02:00:00Z  st-fd    force_delete  (stopped)");
        CHECK(*(releases + 2) == "                   2026-03-15T00:00:00Z  st-stop  deadline      (stopped)");
        const auto overdue = std::find(text.begin(), text.end(), "overdue accounts   1");
        REQUIRE(std::distance(overdue, text.end()) > 1);
        CHECK((overdue + 1)->rfind("                   acc-poor  owes ", 0) == 0);
        for (const auto& line : text) {
            INFO(line);
            CHECK(line.size() > 19);
            CHECK((line[0] == ' ' ? line.substr(0, 19).find_first_not_of(' ') == std::string::npos : line[18] == ' '));
        }
    }
    SECTION("without --now: the database's now(), which is not the manual clock's") {
        const auto at_db = status_json(l.db.url());
        CHECK(str(at_db.at("now_source")) == "database");
        pqxx::connection conn(l.db.url());
        pqxx::nontransaction tx(conn);
        const auto db_now = tx.exec1("SELECT (extract(epoch FROM now()) * 1000000)::bigint")[0].as<std::int64_t>();
        const auto shown = codec::parse_time(str(at_db.at("now")));
        REQUIRE(shown);
        const auto diff = std::chrono::abs(shown->time_since_epoch() - duration(db_now));
        CHECK(diff < std::chrono::minutes(1));
        // The checkpoint's age follows that now, not --now.
        const auto cp_created = *codec::parse_time("2026-03-14T01:31:00Z");
        CHECK(num(at_db.at("checkpoint").at("age_seconds")) ==
              std::chrono::floor<std::chrono::seconds>(*shown - cp_created).count());
    }
}

TEST_CASE("status: works under a role that may only SELECT, in read-only transactions, and writes nothing",
          "[e2e][status]") {
    ledger_db l;
    log_key key;
    {
        const auto port = free_port();
        daemon_process d(serve_args(port, l.db.url(), key.priv), port);
        const auto c = d.client();
        open_account(c, "acc-ro", 100);
        ok(c.post("/v1/instances", purchase("ro-1", "acc-ro", 120)), 201);
        act(c, "ro-1", "deploy");
        clock_to(c, "2026-03-13T07:30:00Z");   // acc-ro owes from 07:00
        REQUIRE(d.stop() == 0);                // nothing else writes from here on
    }
    // A login role with SELECT only, whose sessions are read-only by default, and the URL asking
    // for read-only transactions too: what a hot standby allows.
    const std::string role = "mqledger_status_ro";
    {
        pqxx::connection admin(l.db.url());
        pqxx::nontransaction tx(admin);
        tx.exec("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '" + role +
                "') THEN CREATE ROLE " + role + " LOGIN; END IF; END $$");
        tx.exec("ALTER ROLE " + role + " SET default_transaction_read_only = on");
        tx.exec("GRANT SELECT ON ALL TABLES IN SCHEMA public TO " + role);
    }
    // l.db.url() names user=postgres: replace it.
    std::string url = l.db.url();
    const auto at = url.find("user=postgres");
    REQUIRE(at != std::string::npos);
    url.replace(at, std::string("user=postgres").size(), "user=" + role);
    url += "&options=-c%20default_transaction_read_only%3Don";

    {
        pqxx::connection probe(url);
        pqxx::nontransaction tx(probe);
        CHECK(tx.exec1("SELECT current_user")[0].as<std::string>() == role);
        CHECK(tx.exec1("SHOW default_transaction_read_only")[0].as<std::string>() == "on");
    }
    const auto before = fingerprint(l.db.url());
    const auto s = status_json(url, {"--now", "2026-03-13T07:30:00Z"});
    INFO(json::serialize(s));
    CHECK(num(s.at("overdue_accounts").at("count")) == 1);
    CHECK(num(s.at("head").at("position")) > 0);
    CHECK(str(s.at("timer_leader").at("state")) == "none");
    (void)status_ok(url, {});
    CHECK(fingerprint(l.db.url()) == before);

    // The app role of the deployment (MQLEDGER_TEST_APP_DATABASE_URL) can run it as well.
    const char* app = std::getenv("MQLEDGER_TEST_APP_DATABASE_URL");
    if (app && std::string_view(app).find("://") != std::string_view::npos) {
        auto app_url = with_database(app, l.db.name());
        app_url += (app_url.find('?') == std::string::npos ? "?" : "&");
        app_url += "options=-c%20default_transaction_read_only%3Don";
        CHECK(num(status_json(app_url).at("head").at("position")) == num(s.at("head").at("position")));
        CHECK(fingerprint(l.db.url()) == before);
    }
}

TEST_CASE("status: exit 2 with a usage message for a bad option, 1 with a clear message when the database "
          "cannot be reached or read",
          "[e2e][status]") {
    auto r = run_mqledger({"status", "--format", "yaml", "--database-url", "host=/nonexistent"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--format must be text or json, got 'yaml'") != std::string::npos);
    r = run_mqledger({"status", "--now", "yesterday"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--now must be an RFC 3339 time") != std::string::npos);
    r = run_mqledger({"status", "--frobnicate"});
    CHECK(r.exit_code == 2);

    r = run_mqledger({"status", "--help"});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("--format text|json") != std::string::npos);
    CHECK(r.out.find("--now TIME") != std::string::npos);
    CHECK(run_mqledger({"--help"}).out.find("  status    ") != std::string::npos);

    // Nothing listens on port 1.
    r = run_mqledger({"status", "--database-url", "postgresql://127.0.0.1:1/mqledger?user=mqledger"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.rfind("mqledger status: cannot connect to the database: ", 0) == 0);
    CHECK(r.out.empty());

    // A database that exists but was never migrated.
    scratch_database empty{"mqledger_status_empty"};
    r = run_mqledger({"status", "--database-url", empty.url()});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("mqledger status: cannot read the ledger's state") != std::string::npos);
}
