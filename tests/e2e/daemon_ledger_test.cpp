// The daemon as the system of record, end to end (real binary, real HTTP, real PostgreSQL):
// timers across a restart (DESIGN.md "Timers": catch-up), metrics against the projections,
// concurrency (optimistic retries, If-Match, idempotent repeats) and SIGTERM under load
// (DESIGN.md "Reliability": no acknowledged request lost).
#include "tests/e2e/http_client.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <csignal>
#include <atomic>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

using namespace mqledger::test;
namespace json = boost::json;

namespace {

struct ledger_db {
    scratch_database db;
    ledger_db() { REQUIRE(run_mqledger({"migrate", "--database-url", db.url()}).exit_code == 0); }
};

std::vector<std::string> serve_args(std::uint16_t port, const std::string& db, const std::string& start) {
    std::vector<std::string> args{"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db,
                                  "--insecure-no-auth", "--log-format", "json"};
    if (!start.empty()) {
        args.insert(args.end(), {"--clock", "manual", "--clock-start", start});
    }
    return args;
}

void open_account(const http_client& c, const std::string& id, std::int64_t funds) {
    REQUIRE(c.post("/v1/accounts", json::object{{"account_id", id}, {"currency", "CNY"}}).status == 201);
    if (funds > 0)
        REQUIRE(c.post("/v1/accounts/" + id + "/funds", json::object{{"amount", funds}, {"reference", "seed"}}).status ==
                200);
}

json::object kafka(const std::string& id, const std::string& account, const std::string& billing) {
    json::object o{{"instance_id", id}, {"account_id", account}, {"product", "kafka"}, {"billing", billing},
                   {"timezone", "Asia/Shanghai"}};
    if (billing == "subscription") {
        o["price"] = json::object{{"monthly", 30000}};
        o["term_months"] = 1;
    } else {
        o["price"] = json::object{{"hourly", 120}};
    }
    return o;
}

std::vector<json::object> events_of(const http_client& c, const std::string& id) {
    const auto r = c.get("/v1/instances/" + id + "/events");
    REQUIRE(r.status == 200);
    std::vector<json::object> out;
    for (const auto& e : r.json.at("items").as_array()) out.push_back(e.as_object());
    return out;
}

const json::object* find_event(const std::vector<json::object>& evs, std::string_view type) {
    for (const auto& e : evs)
        if (e.at("type").as_string() == type) return &e;
    return nullptr;
}

std::int64_t head_position(const http_client& c) { return c.get("/v1/ledger/head").json.at("position").as_int64(); }

} // namespace

TEST_CASE("timers after downtime: a restart past the deadlines fires every missed event once, effective at its "
          "deadline (K: expiry at term end, release 7 days later)",
          "[e2e][timers]") {
    ledger_db db;
    const auto port = free_port();
    {
        daemon_process d(serve_args(port, db.db.url(), "2026-03-13T06:00:00Z"), port);
        const auto c = d.client();
        open_account(c, "acc-1", 100000);
        REQUIRE(c.post("/v1/instances", kafka("k-1", "acc-1", "subscription")).status == 201);
        REQUIRE(c.post("/v1/instances/k-1/actions/deploy", json::object{}).status == 200);
        CHECK(c.get("/v1/instances/k-1").json.at("expires_at") == "2026-04-13T06:00:00Z");
    }
    // Down for two months; the daemon comes back long after both deadlines.
    daemon_process d(serve_args(port, db.db.url(), "2026-06-01T00:00:00Z"), port);
    const auto c = d.client();
    // The catch-up runs at start, in the background of the first requests: wait for it.
    std::string state;
    for (int i = 0; i < 100 && state != "released"; ++i) {
        state = c.get("/v1/instances/k-1").json.at("state").as_string().c_str();
        if (state != "released") std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE(state == "released");
    const auto evs = events_of(c, "k-1");
    const auto* expired = find_event(evs, "instance.expired");
    const auto* released = find_event(evs, "instance.released");
    REQUIRE(expired != nullptr);
    REQUIRE(released != nullptr);
    CHECK(expired->at("effective_at") == "2026-04-13T06:00:00Z");
    CHECK(expired->at("data").at("cause") == "term_ended");
    CHECK(expired->at("metadata").at("actor") == "timer");
    // K: "released 7 days after expiry" for a lapsed subscription.
    CHECK(released->at("effective_at") == "2026-04-20T06:00:00Z");
    CHECK(released->at("data").at("cause") == "deadline");
    // Once: a second restart fires nothing more.
    const auto before = head_position(c);
    d.restart();
    CHECK(d.client().post("/v1/clock", json::object{{"advance_seconds", 86400}}).json.at("fired") == 0);
    CHECK(head_position(d.client()) == before);
}

TEST_CASE("timers under the system clock: an imported instance whose deadline has passed is released at once "
          "(RULES.md Import, K: 08:00 two days after stopping)",
          "[e2e][timers]") {
    ledger_db db;
    const auto port = free_port();
    daemon_process d(serve_args(port, db.db.url(), ""), port);
    const auto c = d.client();
    open_account(c, "acc-1", 0);
    auto body = kafka("k-old", "acc-1", "payg");
    body["state"] = "stopped";
    body["state_since"] = "2020-01-13T06:00:00Z";   // 14:00 in Shanghai
    REQUIRE(c.post("/v1/instances/import", body).status == 201);
    std::string state;
    for (int i = 0; i < 100 && state != "released"; ++i) {
        state = c.get("/v1/instances/k-old").json.at("state").as_string().c_str();
        if (state != "released") std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE(state == "released");
    const auto evs = events_of(c, "k-old");
    const auto* released = find_event(evs, "instance.released");
    REQUIRE(released != nullptr);
    CHECK(released->at("effective_at") == "2020-01-15T00:00:00Z");   // 08:00 local, two days later
}

TEST_CASE("metrics: mqledger_instances equals the instances per product, billing and state", "[e2e][metrics]") {
    ledger_db db;
    const auto port = free_port();
    daemon_process d(serve_args(port, db.db.url(), "2026-03-13T06:00:00Z"), port);
    const auto c = d.client();
    open_account(c, "acc-1", 1000000);
    for (int i = 0; i < 5; ++i) REQUIRE(c.post("/v1/instances", kafka("s-" + std::to_string(i), "acc-1", "subscription")).status == 201);
    for (int i = 0; i < 3; ++i) REQUIRE(c.post("/v1/instances", kafka("p-" + std::to_string(i), "acc-1", "payg")).status == 201);
    for (int i = 0; i < 3; ++i) REQUIRE(c.post("/v1/instances/s-" + std::to_string(i) + "/actions/deploy", json::object{}).status == 200);
    REQUIRE(c.post("/v1/instances/p-0/actions/deploy", json::object{}).status == 200);
    REQUIRE(c.post("/v1/instances/p-0/actions/stop", json::object{}).status == 200);

    std::map<std::string, int> expected;
    const auto list = c.get("/v1/instances?limit=1000");
    REQUIRE(list.status == 200);
    for (const auto& i : list.json.at("items").as_array()) {
        const auto& o = i.as_object();
        ++expected[std::string(o.at("product").as_string()) + "/" + std::string(o.at("billing").as_string()) + "/" +
                   std::string(o.at("state").as_string())];
    }
    CHECK(expected.size() == 4);
    const auto text = c.get("/metrics").body;
    const std::regex line(R"re(mqledger_instances\{billing="(\w+)",product="(\w+)",state="(\w+)"\} (\d+))re");
    std::map<std::string, int> seen;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), line); it != std::sregex_iterator(); ++it) {
        const int n = std::stoi((*it)[4]);
        if (n > 0) seen[(*it)[2].str() + "/" + (*it)[1].str() + "/" + (*it)[3].str()] = n;
    }
    CHECK(seen == expected);
    CHECK(text.find("mqledger_events_appended_total{type=\"instance.purchased\"} 8") != std::string::npos);
}

TEST_CASE("concurrency: parallel commands on one instance all land (retried on conflict), with one If-Match "
          "exactly one wins and the rest get 412",
          "[e2e][concurrency]") {
    ledger_db db;
    const auto port = free_port();
    daemon_process d(serve_args(port, db.db.url(), "2026-03-13T06:00:00Z"), port);
    const auto c = d.client();
    open_account(c, "acc-1", 0);
    REQUIRE(c.post("/v1/instances", kafka("k-1", "acc-1", "payg")).status == 201);
    REQUIRE(c.post("/v1/instances/k-1/actions/deploy", json::object{}).status == 200);

    constexpr int n = 16;
    std::vector<std::thread> threads;
    std::atomic<int> created{0};
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            if (c.post("/v1/instances/k-1/topics", json::object{{"name", "t-" + std::to_string(i)}}).status == 201) ++created;
        });
    for (auto& t : threads) t.join();
    threads.clear();
    CHECK(created == n);
    const auto view = c.get("/v1/instances/k-1").json.as_object();
    CHECK(view.at("topics").as_array().size() == static_cast<std::size_t>(n));
    const auto version = view.at("version").as_int64();
    CHECK(version == 2 + n);

    std::atomic<int> won{0}, mismatched{0};
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            const auto r = c.post("/v1/instances/k-1/groups", json::object{{"name", "g-" + std::to_string(i)}},
                                  {{"If-Match", "\"" + std::to_string(version) + "\""}});
            if (r.status == 201) ++won;
            if (r.status == 412 && r.error_code() == "version_mismatch" && r.json.at("error").at("version").as_int64() > version)
                ++mismatched;
        });
    for (auto& t : threads) t.join();
    threads.clear();
    CHECK(won == 1);
    CHECK(mismatched == n - 1);

    // The same Idempotency-Key sent concurrently: one append, every answer the same.
    const auto head = head_position(c);
    std::mutex m;
    std::set<std::string> bodies;
    std::atomic<int> ok{0};
    for (int i = 0; i < 8; ++i)
        threads.emplace_back([&] {
            const auto r = c.post("/v1/instances/k-1/topics", json::object{{"name", "once"}}, {{"Idempotency-Key", "k-once"}});
            if (r.status == 201) ++ok;
            std::lock_guard lock(m);
            bodies.insert(r.body);
        });
    for (auto& t : threads) t.join();
    CHECK(ok == 8);
    CHECK(bodies.size() == 1);
    CHECK(head_position(c) == head + 1);
}

TEST_CASE("SIGTERM under load: every acknowledged command is in the ledger after restart, and the daemon exits 0",
          "[e2e][shutdown]") {
    ledger_db db;
    const auto port = free_port();
    daemon_process d(serve_args(port, db.db.url(), "2026-03-13T06:00:00Z"), port);
    const auto c = d.client();
    open_account(c, "acc-1", 0);
    constexpr int writers = 8;
    for (int w = 0; w < writers; ++w) {
        REQUIRE(c.post("/v1/instances", kafka("k-" + std::to_string(w), "acc-1", "payg")).status == 201);
        REQUIRE(c.post("/v1/instances/k-" + std::to_string(w) + "/actions/deploy", json::object{}).status == 200);
    }
    std::mutex m;
    std::map<int, std::vector<std::string>> acknowledged;
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w)
        threads.emplace_back([&, w] {
            for (int i = 0; !stop; ++i) {
                const auto name = "t-" + std::to_string(i);
                try {
                    const auto r = c.post("/v1/instances/k-" + std::to_string(w) + "/topics", json::object{{"name", name}});
                    if (r.status == 201) {
                        std::lock_guard lock(m);
                        acknowledged[w].push_back(name);
                    }
                } catch (const std::exception&) {
                    return;   // the daemon is gone: no answer, nothing acknowledged
                }
            }
        });
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    CHECK(d.stop(SIGTERM) == 0);
    stop = true;
    for (auto& t : threads) t.join();

    std::size_t total = 0;
    for (const auto& [w, names] : acknowledged) total += names.size();
    CHECK(total > 0);
    d.restart();
    const auto c2 = d.client();
    for (const auto& [w, names] : acknowledged) {
        const auto view = c2.get("/v1/instances/k-" + std::to_string(w)).json.as_object();
        std::set<std::string> topics;
        for (const auto& t : view.at("topics").as_array()) topics.insert(std::string(t.as_string()));
        for (const auto& n : names) CHECK(topics.count(n) == 1);
    }
}

TEST_CASE("auditor's commands: verify passes, history and as-of match the API, export has every event with its "
          "hash, rebuild keeps the projections equal, a changed row is reported with its position",
          "[e2e][audit]") {
    ledger_db db;
    const auto port = free_port();
    daemon_process d(serve_args(port, db.db.url(), "2026-03-13T06:00:00Z"), port);
    const auto c = d.client();
    open_account(c, "acc-1", 100000);
    REQUIRE(c.post("/v1/instances", kafka("k-1", "acc-1", "payg")).status == 201);
    REQUIRE(c.post("/v1/instances/k-1/actions/deploy", json::object{}).status == 200);
    const auto running_view = c.get("/v1/instances/k-1").body;
    REQUIRE(c.post("/v1/clock", json::object{{"now", "2026-03-13T09:30:00Z"}}).status == 200);   // 3 settlements
    REQUIRE(c.post("/v1/instances/k-1/actions/stop", json::object{}).status == 200);
    const auto head = head_position(c);
    const std::vector<std::string> url{"--database-url", db.db.url()};
    auto with_url = [&](std::vector<std::string> args) {
        args.insert(args.end(), url.begin(), url.end());
        return run_mqledger(args);
    };

    auto v = with_url({"verify"});
    CHECK(v.exit_code == 0);
    CHECK(v.out.find("chain:       ok (" + std::to_string(head) + " events") != std::string::npos);
    CHECK(v.out.find("projections: ok") != std::string::npos);

    // As of a time: the same answer as GET ?as_of=.
    const auto as_of = c.get("/v1/instances/k-1?as_of=2026-03-13T06:00:00Z");
    REQUIRE(as_of.status == 200);
    CHECK(as_of.json.at("state") == "running");
    const auto h = with_url({"history", "k-1", "--as-of", "2026-03-13T06:00:00Z", "--format", "json"});
    REQUIRE(h.exit_code == 0);
    CHECK(json::parse(h.out) == as_of.json);
    CHECK(json::parse(h.out) == json::parse(running_view));

    const auto timeline = with_url({"history", "k-1", "--format", "json"});
    REQUIRE(timeline.exit_code == 0);
    const auto rows = json::parse(timeline.out).as_array();
    REQUIRE(rows.size() == events_of(c, "k-1").size());
    CHECK(rows.front().at("type") == "instance.purchased");
    CHECK(rows.back().at("type") == "instance.stopped");
    CHECK(rows.back().at("state") == "stopped");
    CHECK(with_url({"history", "k-1"}).out.find("instance.settled") != std::string::npos);
    CHECK(with_url({"history", "nope"}).exit_code == 1);

    const auto jsonl = with_url({"export"});
    REQUIRE(jsonl.exit_code == 0);
    std::int64_t lines = 0, last = 0;
    std::string prev = std::string(64, '0');
    for (std::size_t at = 0, nl; (nl = jsonl.out.find('\n', at)) != std::string::npos; at = nl + 1) {
        const auto e = json::parse(jsonl.out.substr(at, nl - at)).as_object();
        ++lines;
        CHECK(e.at("position").as_int64() == last + 1);
        CHECK(e.at("prev_hash") == prev.c_str());   // the export chains by itself
        last = e.at("position").as_int64();
        prev = std::string(e.at("hash").as_string());
    }
    CHECK(lines == head);
    const auto csv = with_url({"export", "--format", "csv", "--stream", "account-"});
    REQUIRE(csv.exit_code == 0);
    CHECK(csv.out.rfind("position,stream,stream_version,type,effective_at,recorded_at,data,metadata,prev_hash,hash\n", 0) == 0);
    CHECK(csv.out.find("instance-k-1") == std::string::npos);
    CHECK(csv.out.find("account.charged") != std::string::npos);

    const auto rb = with_url({"rebuild"});
    CHECK(rb.exit_code == 0);
    CHECK(rb.out.find("rebuilt up to position " + std::to_string(head)) != std::string::npos);
    CHECK(with_url({"verify"}).exit_code == 0);
    CHECK(head_position(c) == head);   // a rebuild writes no event

    // Tampering: the superuser switches the guard off and edits one amount.
    d.stop();
    {
        pqxx::connection conn(db.db.url());
        pqxx::work w(conn);
        w.exec("ALTER TABLE events DISABLE TRIGGER USER");
        w.exec("UPDATE events SET data = jsonb_set(data, '{amount}', '1') WHERE position = 2");
        w.exec("ALTER TABLE events ENABLE TRIGGER USER");
        w.commit();
    }
    v = with_url({"verify"});
    CHECK(v.exit_code == 1);
    CHECK(v.out.find("first bad position: 2") != std::string::npos);
}

TEST_CASE("concurrency: 48 purchases charging one account at once all land, the balance is exact, nothing "
          "deadlocks (more workers than read connections)",
          "[e2e][concurrency]") {
    ledger_db db;
    const auto port = free_port();
    daemon_process d(serve_args(port, db.db.url(), "2026-03-13T06:00:00Z"), port);
    const auto c = d.client();
    open_account(c, "acc-1", 48 * 30000);
    constexpr int n = 48;
    std::atomic<int> created{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < n; ++i)
        threads.emplace_back([&, i] {
            if (c.post("/v1/instances", kafka("s-" + std::to_string(i), "acc-1", "subscription")).status == 201) ++created;
        });
    for (auto& t : threads) t.join();
    CHECK(created == n);
    const auto a = c.get("/v1/accounts/acc-1").json;
    CHECK(a.at("balance") == 0);
    CHECK(a.at("version") == 2 + n);
    // One more is refused for want of funds, and writes nothing.
    const auto head = head_position(c);
    const auto r = c.post("/v1/instances", kafka("s-extra", "acc-1", "subscription"));
    CHECK(r.status == 402);
    CHECK(head_position(c) == head);
}

namespace {

// A fresh Ed25519 key pair as PEM (private, public), made with OpenSSL's libcrypto.
std::pair<std::string, std::string> ed25519_pair() {
    EVP_PKEY* key = nullptr;
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr);
    REQUIRE(ctx != nullptr);
    REQUIRE(EVP_PKEY_keygen_init(ctx) == 1);
    REQUIRE(EVP_PKEY_keygen(ctx, &key) == 1);
    EVP_PKEY_CTX_free(ctx);
    auto pem = [&](bool priv) {
        BIO* bio = BIO_new(BIO_s_mem());
        if (priv) PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
        else PEM_write_bio_PUBKEY(bio, key);
        char* data = nullptr;
        const long n = BIO_get_mem_data(bio, &data);
        std::string out(data, static_cast<std::size_t>(n));
        BIO_free(bio);
        return out;
    };
    auto out = std::make_pair(pem(true), pem(false));
    EVP_PKEY_free(key);
    return out;
}

} // namespace

TEST_CASE("digests: verify --since-digest holds for a kept head, fails for a rewritten or cut history and for a "
          "forged signature (issue 5: the auditor's digest outside the database)",
          "[e2e][audit]") {
    ledger_db db;
    temp_dir dir;
    const auto [priv, pub] = ed25519_pair();
    const auto key = dir.write("digest.key", priv);
    const auto pubkey = dir.write("digest.pub", pub);
    const auto other_pub = dir.write("other.pub", ed25519_pair().second);
    const auto port = free_port();
    auto args = serve_args(port, db.db.url(), "2026-03-13T06:00:00Z");
    args.insert(args.end(), {"--digest-key", key.string()});
    daemon_process d(args, port);
    const auto c = d.client();
    open_account(c, "acc-1", 100000);
    REQUIRE(c.post("/v1/instances", kafka("k-1", "acc-1", "payg")).status == 201);
    const auto head = c.get("/v1/ledger/head").json.as_object();
    const std::string kept = head.at("digest").as_string().c_str();
    CHECK(head.at("signature").as_string().size() == 128);
    REQUIRE(c.post("/v1/instances/k-1/actions/deploy", json::object{}).status == 200);   // the ledger grows on

    auto verify = [&](std::vector<std::string> extra) {
        std::vector<std::string> a{"verify", "--database-url", db.db.url()};
        a.insert(a.end(), extra.begin(), extra.end());
        return run_mqledger(a);
    };
    auto r = verify({"--since-digest", kept, "--public-key", pubkey.string()});
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("digest:      ok") != std::string::npos);
    CHECK(r.out.find("signature valid") != std::string::npos);

    // A digest signed by someone else's key is refused.
    CHECK(verify({"--since-digest", kept, "--public-key", other_pub.string()}).exit_code == 1);
    // A made-up hash at that position: history before it was rewritten.
    const auto colon = kept.find(':');
    const auto forged = kept.substr(0, colon) + ":" + std::string(64, 'a');
    r = verify({"--since-digest", forged});
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("does not match the digest") != std::string::npos);
    CHECK(verify({"--since-digest", "garbage"}).exit_code == 2);

    // The tail after the kept digest cut off by a superuser: the chain alone still verifies,
    // the digest does not.
    d.stop();
    const auto kept_position = std::stoll(kept.substr(0, colon));
    {
        pqxx::connection conn(db.db.url());
        pqxx::work w(conn);
        w.exec("ALTER TABLE events DISABLE TRIGGER USER");
        w.exec_params("DELETE FROM events WHERE position >= $1", kept_position);
        w.exec("ALTER TABLE events ENABLE TRIGGER USER");
        w.commit();
    }
    r = verify({"--since-digest", kept});
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("chain:       ok") != std::string::npos);
    CHECK(r.out.find("events were removed") != std::string::npos);
}

TEST_CASE("an instance's events page by stream version (after, limit, next_after) and together are its whole "
          "stream in order",
          "[e2e][ledger]") {
    ledger_db db;
    const auto port = free_port();
    daemon_process d(serve_args(port, db.db.url(), "2026-03-13T06:00:00Z"), port);
    const auto c = d.client();
    open_account(c, "acc-1", 0);
    REQUIRE(c.post("/v1/instances", kafka("k-1", "acc-1", "payg")).status == 201);
    REQUIRE(c.post("/v1/instances/k-1/actions/deploy", json::object{}).status == 200);
    for (int i = 0; i < 10; ++i)
        REQUIRE(c.post("/v1/instances/k-1/topics", json::object{{"name", "t-" + std::to_string(i)}}).status == 201);
    const auto version = c.get("/v1/instances/k-1").json.at("version").as_int64();
    REQUIRE(version == 12);

    std::vector<std::int64_t> seen;
    std::string path = "/v1/instances/k-1/events?limit=5";
    for (int pages = 0; pages < 10; ++pages) {
        const auto r = c.get(path);
        REQUIRE(r.status == 200);
        for (const auto& e : r.json.at("items").as_array()) seen.push_back(e.at("stream_version").as_int64());
        const auto& next = r.json.at("next_after");
        if (next.is_null()) break;
        path = "/v1/instances/k-1/events?limit=5&after=" + std::to_string(next.as_int64());
    }
    REQUIRE(seen.size() == static_cast<std::size_t>(version));
    for (std::size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == static_cast<std::int64_t>(i + 1));
    CHECK(c.get("/v1/instances/k-1/events?limit=0").status == 422);
    CHECK(c.get("/v1/instances/nope/events").status == 404);
}

TEST_CASE("rebuild while the daemon serves commands: nothing is lost or written by the rebuild, and verify "
          "finds the projections equal to the log (issue 5)",
          "[e2e][audit]") {
    ledger_db db;
    const auto port = free_port();
    daemon_process d(serve_args(port, db.db.url(), "2026-03-13T06:00:00Z"), port);
    const auto c = d.client();
    open_account(c, "acc-1", 0);
    constexpr int writers = 4;
    for (int w = 0; w < writers; ++w) {
        REQUIRE(c.post("/v1/instances", kafka("k-" + std::to_string(w), "acc-1", "payg")).status == 201);
        REQUIRE(c.post("/v1/instances/k-" + std::to_string(w) + "/actions/deploy", json::object{}).status == 200);
    }
    std::atomic<bool> stop{false};
    std::atomic<int> acknowledged{0}, failed{0};
    std::mutex first_failure_mutex;
    std::string first_failure;   // the first refused command's answer, or a failed rebuild's output
    const auto remember_failure = [&](const std::string& what) {
        std::lock_guard lock(first_failure_mutex);
        if (first_failure.empty()) first_failure = what;
    };
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w)
        threads.emplace_back([&, w] {
            for (int i = 0; !stop; ++i) {
                const auto r = c.post("/v1/instances/k-" + std::to_string(w) + "/topics",
                                      json::object{{"name", "t-" + std::to_string(i)}});
                if (r.status == 201) {
                    ++acknowledged;
                } else {
                    ++failed;
                    remember_failure(std::to_string(r.status) + " " + r.body);
                }
            }
        });
    const std::vector<std::string> url{"--database-url", db.db.url()};
    int rebuilds_ok = 0;
    for (int i = 0; i < 3; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
        const auto rebuilt = run_mqledger({"rebuild", url[0], url[1]});
        if (rebuilt.exit_code == 0) ++rebuilds_ok;
        else remember_failure("rebuild: " + rebuilt.out + rebuilt.err);
    }
    stop = true;
    for (auto& t : threads) t.join();
    INFO(first_failure);
    CHECK(rebuilds_ok == 3);
    CHECK(failed == 0);
    CHECK(acknowledged > 0);
    // Every acknowledged topic is in the projections, and the log holds exactly what was asked.
    std::size_t topics = 0;
    for (int w = 0; w < writers; ++w)
        topics += c.get("/v1/instances/k-" + std::to_string(w)).json.at("topics").as_array().size();
    CHECK(topics == static_cast<std::size_t>(acknowledged.load()));
    CHECK(head_position(c) == 1 + 2 * writers + acknowledged.load());   // opened, purchase+deploy each, topics
    const auto v = run_mqledger({"verify", url[0], url[1]});
    INFO(v.out << v.err);
    CHECK(v.exit_code == 0);
}
