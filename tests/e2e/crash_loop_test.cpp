// Crash loop (DESIGN.md "Reliability": kill -9 under load, repeatedly): the real daemon on the
// system clock serves several client threads while it is SIGKILLed at random moments and
// restarted. Afterwards every acknowledged request's events are in the log exactly once, no
// request was applied twice (also when the client retried with the same Idempotency-Key after
// an unknown outcome), every timer that came due during the loop fired once at its deadline,
// the balances equal the sums of their events, and `mqledger verify` (chain, conformance,
// projections == a rebuild) passes on the state the last kill left behind.
//
// MQLEDGER_CRASH_KILLS (default 5, the CI form; 20 for the full run) sets the number of kills,
// MQLEDGER_CRASH_SEED replays a schedule (kill moments, downtime, the clients' choice of
// commands; the threads' interleaving is not reproducible). The seed is printed.
#include "tests/e2e/http_client.h"

#include "ledger/codec.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace mqledger::test;
namespace json = boost::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr int account_count = 4;
constexpr int worker_count = 6;
constexpr int import_count = 300;
constexpr std::int64_t opening_funds = 1'000'000'000;   // never runs out: no request is refused for want of funds
// The imported instances expire between these offsets from the end of the set-up, so their
// timers come due while the kills happen (the kill schedule spans about the same window).
constexpr auto first_expiry = 4s;
constexpr auto expiry_window = 14s;

int kills_from_env() {
    const char* v = std::getenv("MQLEDGER_CRASH_KILLS");
    if (!v || !*v) return 5;
    const int n = std::atoi(v);
    return n > 0 ? n : 5;
}

std::uint64_t seed_from_env() {
    if (const char* v = std::getenv("MQLEDGER_CRASH_SEED"); v && *v) return std::strtoull(v, nullptr, 10);
    return std::random_device{}();
}

std::string account_id(int k) { return "acc-" + std::to_string(k); }
std::string import_id(int i) { return "imp-" + std::to_string(i); }

std::vector<std::string> serve_args(std::uint16_t port, const std::string& db) {
    return {"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db, "--insecure-no-auth",
            "--log-format", "json"};
}

json::object kafka(const std::string& id, const std::string& account, const std::string& billing) {
    json::object o{{"instance_id", id}, {"account_id", account}, {"product", "kafka"}, {"billing", billing},
                   {"timezone", "Asia/Shanghai"}};
    if (billing == "subscription") {
        o["price"] = json::object{{"monthly", 30000}};
        o["term_months"] = 1;
        // Explicitly off: an auto-renew attempt would be one more timer in the imported streams.
        o["auto_renew"] = json::object{{"enabled", false}, {"days_before", 7}};
    } else {
        o["price"] = json::object{{"hourly", 120}};
    }
    return o;
}

mqledger::time_point now_ms() {
    return std::chrono::time_point_cast<std::chrono::microseconds>(
        std::chrono::floor<std::chrono::milliseconds>(std::chrono::system_clock::now()));
}

// One event each request must have written. Timers that came due on the same instance or
// account fire in the same append and carry the same key (an hourly settlement's
// account.charged, say), so an event is also matched on a data field the request chose.
struct expected_event {
    std::string stream;
    std::string type;
    std::string field;   // "" or a key of data that must equal `value`
    std::string value;
};

// One request as a client thread sent it, and how it ended.
struct sent_request {
    std::string key;
    std::string method;
    std::string path;
    std::string body;   // serialised once: a retry must send the same bytes (the key's fingerprint)
    std::vector<expected_event> events;
    std::string account;       // funds (+amount) and charges (-amount): the balance check
    std::int64_t amount = 0;
    bool acknowledged = false;
    int unknown_outcomes = 0;   // no answer (daemon killed): retried with the same key
    int unavailable = 0;        // 503 or contention: nothing written, retried with the same key
    int status = 0;             // the last answer (0: none)
    std::string detail;         // the last answer's body or transport error
    std::chrono::system_clock::time_point last_attempt;   // when the last attempt was sent
};

// What a client thread knows about its own instances; changed only by acknowledged requests.
struct worker {
    int w = 0;
    std::mt19937_64 rng;
    std::string account;
    std::string topic_instance;    // running: topics are created and deleted on it
    std::string toggle_instance;   // stopped and enabled in turn
    bool toggle_running = true;
    std::deque<std::string> topics;
    int next = 0;
    std::vector<sent_request> sent;
};

struct control {
    std::atomic<bool> stop{false};      // finish the request in flight (to a definite answer), then stop
    std::atomic<bool> abandon{false};   // stop now (the test is failing anyway)
    std::atomic<long> acknowledged{0};
};

// Sends `s` until a definite answer: a 2xx, or an error status other than 503 (nothing was
// written) and "contention". Without an answer the outcome is unknown, so the same request is
// sent again with the same key: it must then be applied at most once.
void send_until_answered(const http_client& c, sent_request& s, const control& ctl) {
    const auto give_up = steady::now() + 120s;
    for (;;) {
        if (ctl.abandon || steady::now() > give_up) return;
        http_result r;
        s.last_attempt = std::chrono::system_clock::now();
        try {
            r = c.request(s.method, s.path, s.body, {{"Idempotency-Key", s.key}});
        } catch (const std::exception& e) {
            ++s.unknown_outcomes;
            s.status = 0;
            s.detail = e.what();
            std::this_thread::sleep_for(20ms);
            continue;
        }
        s.status = r.status;
        if (r.status >= 200 && r.status < 300) {
            s.acknowledged = true;
            return;
        }
        bool contention = false;   // the engine's optimistic retries ran out: nothing written
        if (r.status == 409 && r.error_code() == "conflict")
            if (const auto* reason = r.json.at("error").as_object().if_contains("reason"))
                contention = str(*reason) == "contention";
        if (r.status == 503 || contention) {
            ++s.unavailable;
            std::this_thread::sleep_for(20ms);
            continue;
        }
        s.detail = r.body;
        return;   // refused: a definite answer that the checks report (no request here should be refused)
    }
}

// The next request of worker `wk`, chosen at random among the commands a client of this
// ledger sends; on_ack updates what the worker knows once the daemon acknowledged it.
sent_request next_request(worker& wk, std::function<void()>& on_ack) {
    sent_request s;
    s.key = "crash-" + std::to_string(wk.w) + "-" + std::to_string(wk.next++);
    const auto acc_stream = "account-" + wk.account;
    std::uniform_int_distribution<int> pick(0, 99);
    std::uniform_int_distribution<std::int64_t> amount(1, 5000);
    const int p = pick(wk.rng);
    on_ack = [] {};
    if (p < 20) {
        s.method = "POST";
        s.path = "/v1/accounts/" + wk.account + "/funds";
        s.account = wk.account;
        s.amount = amount(wk.rng);
        s.body = json::serialize(json::object{{"amount", s.amount}, {"reference", s.key}});
        s.events = {{acc_stream, "account.funds_added", "reference", s.key}};
    } else if (p < 35) {
        s.method = "POST";
        s.path = "/v1/accounts/" + wk.account + "/charges";
        s.account = wk.account;
        const auto a = amount(wk.rng);
        s.amount = -a;
        s.body = json::serialize(json::object{
            {"amount", a}, {"instance_id", wk.topic_instance}, {"reason", "usage"}, {"reference", s.key}});
        s.events = {{acc_stream, "account.charged", "reference", s.key}};
    } else if (p < 45 && !wk.topics.empty()) {
        const auto name = wk.topics.front();
        s.method = "DELETE";
        s.path = "/v1/instances/" + wk.topic_instance + "/topics/" + name;
        s.events = {{"instance-" + wk.topic_instance, "instance.topic_deleted", "name", name}};
        on_ack = [&wk] { wk.topics.pop_front(); };
    } else if (p < 70) {
        const auto name = "t-" + s.key;
        s.method = "POST";
        s.path = "/v1/instances/" + wk.topic_instance + "/topics";
        s.body = json::serialize(json::object{{"name", name}});
        s.events = {{"instance-" + wk.topic_instance, "instance.topic_created", "name", name}};
        on_ack = [&wk, name] { wk.topics.push_back(name); };
    } else if (p < 85) {
        const bool running = wk.toggle_running;
        s.method = "POST";
        s.path = "/v1/instances/" + wk.toggle_instance + "/actions/" + (running ? "stop" : "enable");
        s.body = "{}";
        s.events = {{"instance-" + wk.toggle_instance, running ? "instance.stopped" : "instance.enabled", "", ""}};
        on_ack = [&wk] { wk.toggle_running = !wk.toggle_running; };
    } else {
        // A subscription purchase: two streams in one append (the instance and the charge).
        const auto id = "sub-" + s.key;
        s.method = "POST";
        s.path = "/v1/instances";
        s.body = json::serialize(kafka(id, wk.account, "subscription"));
        s.events = {{"instance-" + id, "instance.purchased", "", ""}, {acc_stream, "account.charged", "instance_id", id}};
    }
    return s;
}

void run_worker(worker& wk, const http_client& c, control& ctl) {
    while (!ctl.stop && !ctl.abandon) {
        std::function<void()> on_ack;
        auto s = next_request(wk, on_ack);
        send_until_answered(c, s, ctl);
        if (s.acknowledged) {
            on_ack();
            ++ctl.acknowledged;
        }
        wk.sent.push_back(std::move(s));
    }
}

// Stops and joins the client threads however the test body is left.
struct thread_guard {
    control& ctl;
    std::vector<std::thread>& threads;
    ~thread_guard() {
        ctl.abandon = true;
        for (auto& t : threads)
            if (t.joinable()) t.join();
    }
};

struct logged_event {
    std::int64_t position = 0;
    std::string stream;
    std::string type;
    std::string effective_at;
    std::string recorded_at;
    json::object data;
    std::string key;   // metadata.idempotency_key, "" when absent
};

} // namespace

TEST_CASE("crash loop: kill -9 under load, repeatedly (DESIGN.md Reliability): every acknowledged request's events "
          "are in the log exactly once, none applied twice, every due timer fired once at its deadline, balances "
          "equal their events, verify passes",
          "[e2e][crash][reliability]") {
    const int kills = kills_from_env();
    const auto seed = seed_from_env();
    std::printf("crash loop: %d kills, seed %llu (replay with MQLEDGER_CRASH_SEED=%llu)\n", kills,
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
    std::fflush(stdout);
    const auto started = steady::now();
    std::mt19937_64 rng(seed);

    scratch_database db("mqledger_crash");
    REQUIRE(run_mqledger({"migrate", "--database-url", db.url()}).exit_code == 0);
    const auto port = free_port();
    daemon_process d(serve_args(port, db.url()), port);
    const auto c = d.client();

    // Set-up, without keys: accounts, and each worker's two payg instances, running.
    std::vector<worker> workers(worker_count);
    for (int k = 0; k < account_count; ++k) {
        REQUIRE(c.post("/v1/accounts", json::object{{"account_id", account_id(k)}, {"currency", "CNY"}}).status == 201);
        REQUIRE(c.post("/v1/accounts/" + account_id(k) + "/funds",
                       json::object{{"amount", opening_funds}, {"reference", "opening"}})
                    .status == 200);
    }
    REQUIRE(c.post("/v1/accounts", json::object{{"account_id", "acc-imp"}, {"currency", "CNY"}}).status == 201);
    for (int w = 0; w < worker_count; ++w) {
        auto& wk = workers[static_cast<std::size_t>(w)];
        wk.w = w;
        wk.rng.seed(seed + 1 + static_cast<std::uint64_t>(w));
        wk.account = account_id(w % account_count);
        wk.topic_instance = "tp-" + std::to_string(w);
        wk.toggle_instance = "tg-" + std::to_string(w);
        for (const auto& id : {wk.topic_instance, wk.toggle_instance}) {
            REQUIRE(c.post("/v1/instances", kafka(id, wk.account, "payg")).status == 201);
            REQUIRE(c.post("/v1/instances/" + id + "/actions/deploy", json::object{}).status == 200);
        }
    }

    // Imported subscriptions, running, expiring over the next seconds: their expiry timers come
    // due while the daemon is being killed. Three share each instant (one append per account
    // for timers due together).
    const auto base = now_ms() + std::chrono::duration_cast<std::chrono::microseconds>(first_expiry);
    const auto state_since = mqledger::codec::format_time(base - std::chrono::hours(24 * 10));
    std::vector<mqledger::time_point> expiry(import_count);
    for (int i = 0; i < import_count; ++i)
        expiry[static_cast<std::size_t>(i)] =
            base + std::chrono::duration_cast<std::chrono::microseconds>(expiry_window) / (import_count / 3) * (i / 3);
    {
        std::mutex m;
        std::vector<std::string> failures;
        std::vector<std::thread> importers;
        for (int t = 0; t < 4; ++t)
            importers.emplace_back([&, t] {
                for (int i = t; i < import_count; i += 4) {
                    auto body = kafka(import_id(i), "acc-imp", "subscription");
                    body["state"] = "running";
                    body["state_since"] = state_since;
                    body["expires_at"] = mqledger::codec::format_time(expiry[static_cast<std::size_t>(i)]);
                    try {
                        const auto r = c.post("/v1/instances/import", body);
                        if (r.status != 201) {
                            std::lock_guard lock(m);
                            failures.push_back(import_id(i) + ": " + std::to_string(r.status) + " " + r.body);
                        }
                    } catch (const std::exception& e) {
                        std::lock_guard lock(m);
                        failures.push_back(import_id(i) + ": " + e.what());
                    }
                }
            });
        for (auto& t : importers) t.join();
        INFO((failures.empty() ? std::string() : failures.front()));
        REQUIRE(failures.empty());
    }
    const auto last_expiry = expiry.back();
    const auto set_up_done = steady::now();

    // Every incarnation's log, kept in a file only when something is wrong.
    std::string daemon_logs;
    auto keep_logs = [&](const std::string& title) {
        daemon_logs += "===== " + title + " =====\n" + d.stdout_text() + d.stderr_text();
    };

    control ctl;
    std::vector<std::thread> threads;
    thread_guard guard{ctl, threads};
    for (auto& wk : workers) threads.emplace_back([&wk, &c, &ctl] { run_worker(wk, c, ctl); });

    // The kill schedule spans about the expiry window whatever the number of kills.
    const int max_gap_ms = std::max(300, static_cast<int>(2 * std::chrono::milliseconds(expiry_window).count() / kills));
    std::uniform_int_distribution<int> gap_ms(150, max_gap_ms);
    std::uniform_int_distribution<int> down_ms(0, 400);   // requests meet a closed port meanwhile
    std::vector<long> acks_per_incarnation;
    long acks_before = 0;
    for (int k = 0; k < kills; ++k) {
        std::this_thread::sleep_for(std::chrono::milliseconds(gap_ms(rng)));
        d.kill9();
        const long acks = ctl.acknowledged.load();
        acks_per_incarnation.push_back(acks - acks_before);
        acks_before = acks;
        keep_logs("incarnation " + std::to_string(k) + " (pid " + std::to_string(d.pid()) + "), killed");
        std::this_thread::sleep_for(std::chrono::milliseconds(down_ms(rng)));
        try {
            d.restart();
        } catch (...) {
            keep_logs("restart " + std::to_string(k + 1) + " failed");
            const auto path = "/tmp/mqledger-crash-loop-" + std::to_string(seed) + ".log";
            std::ofstream(path) << daemon_logs;
            std::printf("crash loop: the daemon did not come back after kill %d; logs in %s\n", k + 1, path.c_str());
            throw;
        }
    }
    const auto loop_done = steady::now();

    // The load goes on until every imported instance has expired (at most 30 s after the last
    // deadline), then every worker finishes its request in flight.
    auto expired_count = [&] {
        int n = 0;
        std::string cursor;
        for (int pages = 0; pages < 100; ++pages) {
            const auto r = c.get("/v1/instances?state=expired&limit=500" + (cursor.empty() ? "" : "&cursor=" + cursor));
            if (r.status != 200) return -1;
            for (const auto& i : r.json.at("items").as_array())
                if (str(i.at("instance_id")).rfind("imp-", 0) == 0) ++n;
            const auto& next = r.json.at("next_cursor");
            if (next.is_null()) break;
            cursor = str(next);
        }
        return n;
    };
    const auto wait_until = std::chrono::system_clock::now() + (last_expiry - now_ms()) + 30s;
    int expired_seen = -1;
    while (std::chrono::system_clock::now() < wait_until) {
        try {
            expired_seen = expired_count();
        } catch (const std::exception&) {
            expired_seen = -1;
        }
        if (expired_seen == import_count) break;
        std::this_thread::sleep_for(200ms);
    }
    ctl.stop = true;
    for (auto& t : threads) t.join();
    const long acks_last = ctl.acknowledged.load() - acks_before;

    // The balances as the daemon serves them, before the last kill.
    std::map<std::string, std::pair<std::int64_t, std::int64_t>> served;   // account → balance, version
    for (int k = 0; k < account_count; ++k) {
        const auto r = c.get("/v1/accounts/" + account_id(k));
        REQUIRE(r.status == 200);
        served[account_id(k)] = {num(r.json.at("balance")), num(r.json.at("version"))};
    }
    // A last kill with nothing restarted afterwards: verify then judges the state a crash
    // leaves, not one a restart's catch-up may have repaired.
    d.kill9();
    keep_logs("last incarnation, killed");

    const std::vector<std::string> url{"--database-url", db.url()};
    const auto exported = run_mqledger({"export", "--format", "jsonl", url[0], url[1]});
    REQUIRE(exported.exit_code == 0);
    std::vector<logged_event> log;
    for (std::size_t at = 0, nl; (nl = exported.out.find('\n', at)) != std::string::npos; at = nl + 1) {
        const auto e = json::parse(exported.out.substr(at, nl - at)).as_object();
        logged_event le;
        le.position = num(e.at("position"));
        le.stream = str(e.at("stream"));
        le.type = str(e.at("type"));
        le.effective_at = str(e.at("effective_at"));
        le.recorded_at = str(e.at("recorded_at"));
        le.data = e.at("data").as_object();
        if (const auto* k = e.at("metadata").as_object().if_contains("idempotency_key"); k && k->is_string())
            le.key = str(*k);
        log.push_back(std::move(le));
    }
    const auto verify = run_mqledger({"verify", url[0], url[1]}, {}, std::chrono::seconds(120));

    // ---- The checks. Each problem is one line; the daemons' logs are kept when there is any.
    std::vector<std::string> problems;
    auto problem = [&](const std::string& p) {
        if (problems.size() < 50) problems.push_back(p);
        else if (problems.size() == 50) problems.push_back("... (more)");
    };

    for (std::size_t i = 0; i < log.size(); ++i)
        if (log[i].position != static_cast<std::int64_t>(i + 1))
            problem("export: position " + std::to_string(log[i].position) + " at line " + std::to_string(i + 1));

    std::map<std::string, std::vector<const logged_event*>> by_key;
    std::map<std::string, std::vector<const logged_event*>> by_stream;
    for (const auto& e : log) {
        if (!e.key.empty()) by_key[e.key].push_back(&e);
        by_stream[e.stream].push_back(&e);
    }

    // Every request: its events exactly once if acknowledged; a definite refusal never happens
    // here (each command is legal when sent) and is reported as such.
    std::map<std::string, const sent_request*> sent_by_key;
    std::map<std::string, std::int64_t> acked_money;   // account → Σ acknowledged funds − charges
    long acknowledged = 0, retried_unknown = 0, retried_unavailable = 0, total_sent = 0;
    long replayed = 0;   // retried after an unknown outcome, and committed by an earlier attempt
    for (const auto& wk : workers)
        for (const auto& s : wk.sent) {
            ++total_sent;
            sent_by_key[s.key] = &s;
            if (s.unknown_outcomes > 0) ++retried_unknown;
            if (s.unavailable > 0) ++retried_unavailable;
            if (!s.acknowledged) {
                problem(s.key + " " + s.method + " " + s.path + ": no acknowledgement; last answer " +
                        std::to_string(s.status) + " " + s.detail.substr(0, 300));
                continue;
            }
            ++acknowledged;
            if (s.amount != 0) acked_money[s.account] += s.amount;
            const auto it = by_key.find(s.key);
            // Recorded (daemon's clock, same host) before the last attempt was sent: an earlier
            // attempt committed, and the last one was answered from the idempotency record.
            if (s.unknown_outcomes > 0 && it != by_key.end())
                if (const auto rec = mqledger::codec::parse_time(it->second.front()->recorded_at);
                    rec && *rec < std::chrono::time_point_cast<std::chrono::microseconds>(s.last_attempt))
                    ++replayed;
            for (const auto& ex : s.events) {
                int n = 0;
                if (it != by_key.end())
                    for (const auto* e : it->second)
                        n += e->stream == ex.stream && e->type == ex.type &&
                             (ex.field.empty() ||
                              (e->data.contains(ex.field) && str(e->data.at(ex.field)) == ex.value));
                if (n != 1)
                    problem(s.key + " " + s.method + " " + s.path + " (acknowledged, " +
                            std::to_string(s.unknown_outcomes) + " unknown outcomes): " + ex.type + " on " +
                            ex.stream + " found " + std::to_string(n) + " times");
            }
        }
    // Every key in the log is a request of ours, and its events are one append: consecutive
    // positions (a second application would land apart from the first).
    for (const auto& [key, evs] : by_key) {
        if (!sent_by_key.count(key)) problem("key " + key + " in the log was never sent");
        for (std::size_t i = 1; i < evs.size(); ++i)
            if (evs[i]->position != evs[i - 1]->position + 1)
                problem("key " + key + ": events at positions " + std::to_string(evs[i - 1]->position) + " and " +
                        std::to_string(evs[i]->position) + " (applied twice?)");
    }

    // Money: the acknowledged funds and charges are the keyed account events; the balance the
    // daemon served is the sum of every event of the account, its version their number.
    for (int k = 0; k < account_count; ++k) {
        const auto acc = account_id(k);
        const auto stream = "account-" + acc;
        std::int64_t keyed = 0, balance = 0;
        for (const auto* e : by_stream[stream]) {
            std::int64_t delta = 0;
            if (e->type == "account.funds_added" || e->type == "account.refunded") delta = num(e->data.at("amount"));
            else if (e->type == "account.charged") delta = -num(e->data.at("amount"));
            balance += delta;
            // The request's own event names its key as reference (a settlement in the same append does not).
            const auto* ref = e->data.if_contains("reference");
            if (!e->key.empty() && ref && str(*ref) == e->key) keyed += delta;
        }
        if (keyed != acked_money[acc])
            problem(acc + ": acknowledged funds - charges " + std::to_string(acked_money[acc]) + ", keyed events " +
                    std::to_string(keyed));
        if (served[acc].first != balance)
            problem(acc + ": balance served " + std::to_string(served[acc].first) + ", sum of its events " +
                    std::to_string(balance));
        if (served[acc].second != static_cast<std::int64_t>(by_stream[stream].size()))
            problem(acc + ": version served " + std::to_string(served[acc].second) + ", events in its stream " +
                    std::to_string(by_stream[stream].size()));
    }

    // Timers: each imported instance expired exactly once, effective at its expires_at, and
    // nothing else happened to it.
    double max_lateness_s = 0;
    for (int i = 0; i < import_count; ++i) {
        const auto& evs = by_stream["instance-" + import_id(i)];
        const auto want = mqledger::codec::format_time(expiry[static_cast<std::size_t>(i)]);
        int expired = 0;
        for (const auto* e : evs) {
            if (e->type == "instance.imported") continue;
            if (e->type != "instance.expired") {
                problem(import_id(i) + ": unexpected " + e->type + " at position " + std::to_string(e->position));
                continue;
            }
            ++expired;
            if (e->effective_at != want)
                problem(import_id(i) + ": expired effective " + e->effective_at + ", expires_at " + want);
            if (str(e->data.at("cause")) != "term_ended")
                problem(import_id(i) + ": expired with cause " + str(e->data.at("cause")));
            if (const auto rec = mqledger::codec::parse_time(e->recorded_at))
                max_lateness_s = std::max(
                    max_lateness_s, std::chrono::duration<double>(*rec - expiry[static_cast<std::size_t>(i)]).count());
        }
        if (expired != 1) problem(import_id(i) + ": expired " + std::to_string(expired) + " times (want once)");
    }

    const auto elapsed = [](steady::time_point a, steady::time_point b) {
        return std::chrono::duration<double>(b - a).count();
    };
    std::string per_incarnation;
    for (const auto n : acks_per_incarnation) per_incarnation += std::to_string(n) + " ";
    std::printf("crash loop: seed %llu, %d kills in %.1f s (set-up %.1f s, whole test %.1f s); %ld requests sent, "
                "%ld acknowledged (per incarnation: %s+ %ld after the loop), %ld retried with the same key after an "
                "unknown outcome (%ld of them already committed by an earlier attempt), %ld after a 503; %zu events; %d/%d imported instances expired by the end of the "
                "load, latest expiry recorded %.2f s after its deadline\n",
                static_cast<unsigned long long>(seed), kills, elapsed(set_up_done, loop_done),
                elapsed(started, set_up_done), elapsed(started, steady::now()), total_sent, acknowledged,
                per_incarnation.c_str(), acks_last, retried_unknown, replayed, retried_unavailable, log.size(), expired_seen,
                import_count, max_lateness_s);
    std::fflush(stdout);

    if (!problems.empty() || verify.exit_code != 0) {
        const auto path = "/tmp/mqledger-crash-loop-" + std::to_string(seed) + ".log";
        std::ofstream(path) << daemon_logs << "===== verify (exit " << verify.exit_code << ") =====\n"
                            << verify.out << verify.err;
        std::printf("crash loop: FAILED with seed %llu; the daemons' logs and verify's report are in %s\n",
                    static_cast<unsigned long long>(seed), path.c_str());
    }
    std::string report;
    for (const auto& p : problems) report += p + "\n";
    INFO("seed " << seed << "\n" << report);
    CHECK(problems.empty());
    CHECK(acknowledged > 0);
    CHECK(retried_unknown + retried_unavailable > 0);   // the kills did meet requests in flight
    INFO("verify:\n" << verify.out << verify.err);
    CHECK(verify.exit_code == 0);
    CHECK(verify.out.find("projections: ok") != std::string::npos);
}
