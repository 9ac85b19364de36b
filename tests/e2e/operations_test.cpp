// Operations (issue 6): several daemons on one database with one timer leader, a database outage
// under load, and the deployment files (systemd unit, example config). Real binaries, real
// PostgreSQL (a private cluster where the test stops it), real HTTP.
#include "tests/e2e/http_client.h"

#include "daemon/config.h"
#include "ledger/codec.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstring>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

using namespace mqledger::test;
namespace json = boost::json;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

const std::filesystem::path source_dir = MQLEDGER_SOURCE_DIR;

std::vector<std::string> system_clock_args(std::uint16_t port, const std::string& db) {
    return {"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db, "--insecure-no-auth",
            "--log-format", "json"};
}

// The sum of every sample of `name` (all label sets) in a Prometheus text page; -1 when absent.
double metric_sum(const std::string& page, const std::string& name) {
    const std::regex line("^" + name + R"((\{[^}]*\})? ([-+0-9.eE]+|NaN)$)", std::regex::multiline);
    double sum = -1;
    for (auto it = std::sregex_iterator(page.begin(), page.end(), line); it != std::sregex_iterator(); ++it)
        sum = (sum < 0 ? 0 : sum) + std::stod((*it)[2].str());
    return sum;
}

double metric_of(const http_client& c, const std::string& name) {
    try {
        return metric_sum(c.get("/metrics").body, name);
    } catch (const std::exception&) {
        return -1;   // not answering (being killed, starting)
    }
}

// Polls `pred` every 50 ms until it holds or `limit` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit) {
    const auto until = steady::now() + limit;
    while (steady::now() < until) {
        if (pred()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return pred();
}

// The API's own rendering of an instant (ledger/codec.h), to compare effective_at exactly.
std::string rfc3339(std::chrono::system_clock::time_point t) {
    return mqledger::codec::format_time(std::chrono::time_point_cast<mqledger::duration>(t));
}

// Every event of the ledger, through the paged feed (API.md GET /v1/events).
std::vector<json::object> all_events(const http_client& c) {
    std::vector<json::object> out;
    std::int64_t after = 0;
    for (;;) {
        const auto r = c.get("/v1/events?after=" + std::to_string(after) + "&limit=5000");
        REQUIRE(r.status == 200);
        const auto& items = r.json.at("items").as_array();
        if (items.empty()) return out;
        for (const auto& e : items) out.push_back(e.as_object());
        after = num(out.back().at("position"));
    }
}


} // namespace

TEST_CASE("several daemons: two daemons on one database elect one timer leader, 1,000 timers each fire exactly "
          "once, also when the leader is killed -9 mid-way and the survivor takes over (issue 6, DESIGN.md "
          "Reliability: two daemons, every timer fires exactly once)",
          "[e2e][operations]") {
    scratch_database db;
    REQUIRE(run_mqledger({"migrate", "--database-url", db.url()}).exit_code == 0);
    const auto pa = free_port();
    const auto pb = free_port();
    daemon_process a(system_clock_args(pa, db.url()), pa);
    daemon_process b(system_clock_args(pb, db.url()), pb);
    const auto ca = a.client();
    const auto cb = b.client();

    // Exactly one leads.
    REQUIRE(eventually([&] { return metric_of(ca, "mqledger_timer_leader") + metric_of(cb, "mqledger_timer_leader") == 1; },
                       10s));
    const bool a_leads = metric_of(ca, "mqledger_timer_leader") == 1;
    daemon_process& leader = a_leads ? a : b;
    const http_client& cf = a_leads ? cb : ca;

    // 1,000 running subscriptions expiring 5 ms apart, the first 25 s from now: imported through
    // both daemons at once (25 s: the sanitizer build on a busy 2-core machine has taken over 10 s
    // to import them). RULES.md K: at the end of its term a subscription expires.
    constexpr int n = 1000;
    const auto base = std::chrono::system_clock::now() + 25s;
    std::map<std::string, std::string> expires;   // instance -> expires_at
    for (int i = 0; i < n; ++i) expires["t-" + std::to_string(i)] = rfc3339(base + i * 5ms);
    REQUIRE(ca.post("/v1/accounts", json::object{{"account_id", "acc-1"}, {"currency", "CNY"}}).status == 201);
    std::atomic<int> imported{0};
    {
        std::vector<std::thread> threads;
        for (int t = 0; t < 8; ++t)
            threads.emplace_back([&, t] {
                const auto& c = t % 2 == 0 ? ca : cb;
                for (int i = t; i < n; i += 8) {
                    const auto id = "t-" + std::to_string(i);
                    json::object body{{"instance_id", id}, {"account_id", "acc-1"}, {"product", "kafka"},
                                      {"billing", "subscription"}, {"timezone", "Asia/Shanghai"},
                                      {"price", json::object{{"monthly", 30000}}}, {"term_months", 1},
                                      {"state", "running"}, {"state_since", "2026-01-01T00:00:00Z"},
                                      {"expires_at", expires.at(id)}};
                    if (c.post("/v1/instances/import", body).status == 201) ++imported;
                }
            });
        for (auto& t : threads) t.join();
    }
    REQUIRE(imported == n);
    // The premise: every timer was created before any came due.
    REQUIRE(std::chrono::system_clock::now() < base);
    CHECK(metric_of(cf, "mqledger_timer_lateness_seconds_count") <= 0);

    // Kill the leader half-way through the 5 s over which the timers come due.
    std::this_thread::sleep_until(base + 2500ms);
    const double fired_by_follower_before = metric_of(cf, "mqledger_timer_lateness_seconds_count");
    leader.kill9();
    const auto killed_at = steady::now();
    const auto expired_at_kill = cf.get("/v1/instances?state=expired&limit=1000").json.at("items").as_array().size();
    INFO("expired when the leader was killed: " << expired_at_kill);
    REQUIRE(expired_at_kill > 0);    // it was firing ...
    REQUIRE(expired_at_kill < n);    // ... and had not finished
    CHECK(fired_by_follower_before <= 0);   // the follower fired nothing while the leader lived

    // The survivor takes the lock within seconds and fires the rest, catching up the missed ones.
    REQUIRE(eventually([&] { return metric_of(cf, "mqledger_timer_leader") == 1; }, 10s));
    const auto takeover = steady::now() - killed_at;
    CHECK(takeover < 5s);
    WARN("timer leadership taken over "
         << std::chrono::duration_cast<std::chrono::milliseconds>(takeover).count() << " ms after kill -9");
    REQUIRE(eventually(
        [&] { return cf.get("/v1/instances?state=expired&limit=1000").json.at("items").as_array().size() == n; }, 30s));
    const double fired_by_survivor = metric_of(cf, "mqledger_timer_lateness_seconds_count");
    CHECK(fired_by_survivor > 0);
    CHECK(fired_by_survivor < n);

    // Each timer's event exactly once, effective at its deadline, written by the timer.
    std::map<std::string, int> expired_events;
    for (const auto& e : all_events(cf)) {
        if (str(e.at("type")) != "instance.expired") continue;
        const auto& stream = str(e.at("stream"));
        const auto id = stream.substr(stream.find('-') + 1);   // instance-ID
        ++expired_events[id];
        CHECK(str(e.at("metadata").at("actor")) == "timer");
        REQUIRE(expires.count(id) == 1);
        CHECK(str(e.at("effective_at")) == expires.at(id));
    }
    CHECK(expired_events.size() == static_cast<std::size_t>(n));
    for (const auto& [id, count] : expired_events) {
        INFO(id);
        CHECK(count == 1);
    }
    const auto v = run_mqledger({"verify", "--database-url", db.url()});
    INFO(v.out << v.err);
    CHECK(v.exit_code == 0);
}

TEST_CASE("database outage: PostgreSQL stopped and started under load — writes get 503 and /readyz fails "
          "meanwhile, the daemon reconnects by itself, every acknowledged command is in the ledger exactly once "
          "and the chain verifies (issue 6, DESIGN.md Reliability: PostgreSQL restarted under load)",
          "[e2e][operations]") {
    temp_dir tmp;
    pg_cluster pgc{tmp.path() / "var", free_port()};
    pgc.pg("start");
    const auto admin_url = pgc.pg("admin-url");
    const auto app_url = pgc.pg("url");
    REQUIRE(run_mqledger({"migrate", "--database-url", admin_url}).exit_code == 0);

    const auto port = free_port();
    daemon_process d(system_clock_args(port, app_url), port);
    const auto c = d.client();
    const auto pid = d.pid();
    constexpr int threads_n = 8;
    for (int t = 0; t < threads_n; ++t)
        REQUIRE(c.post("/v1/accounts", json::object{{"account_id", "acc-" + std::to_string(t)}, {"currency", "CNY"}})
                    .status == 201);

    // Each thread adds funds with a fresh Idempotency-Key per request and remembers which were
    // acknowledged (200). A 503 or a dropped connection is not an acknowledgement.
    std::atomic<bool> stop{false};
    std::atomic<int> ok_n{0}, unavailable_n{0}, other_n{0};
    std::mutex mu;
    std::set<std::string> acknowledged;
    std::map<std::string, std::int64_t> acknowledged_funds;   // account -> sum acknowledged
    std::vector<std::thread> load;
    for (int t = 0; t < threads_n; ++t)
        load.emplace_back([&, t] {
            const auto acc = "acc-" + std::to_string(t);
            for (int i = 0; !stop; ++i) {
                const auto key = "k-" + std::to_string(t) + "-" + std::to_string(i);
                int status = 0;
                try {
                    status = c.post("/v1/accounts/" + acc + "/funds", json::object{{"amount", 100}, {"reference", key}},
                                    {{"Idempotency-Key", key}})
                                 .status;
                } catch (const std::exception&) {
                    status = -1;
                }
                if (status == 200) {
                    ++ok_n;
                    std::lock_guard lock(mu);
                    acknowledged.insert(key);
                    acknowledged_funds[acc] += 100;
                } else if (status == 503) {
                    ++unavailable_n;
                    std::this_thread::sleep_for(20ms);
                } else {
                    ++other_n;
                    std::this_thread::sleep_for(20ms);
                }
            }
        });

    std::this_thread::sleep_for(1500ms);
    const int ok_before = ok_n;
    CHECK(ok_before > 0);

    pgc.pg("stop");
    const int ok_at_stop = ok_n;
    std::this_thread::sleep_for(2s);
    CHECK(unavailable_n > 0);
    CHECK(c.get("/readyz").status == 503);
    CHECK(c.get("/healthz").status == 200);
    CHECK(eventually([&] { return metric_of(c, "mqledger_database_up") == 0; }, 5s));
    CHECK(ok_n - ok_at_stop <= threads_n);   // at most the requests already committing

    pgc.pg("start");
    const auto restarted = steady::now();
    const int ok_at_start = ok_n;
    REQUIRE(eventually([&] { return ok_n > ok_at_start + 50; }, 30s));
    const auto recovery = steady::now() - restarted;
    CHECK(recovery < 15s);
    WARN("503s during the outage: " << unavailable_n << "; writes succeeding again "
         << std::chrono::duration_cast<std::chrono::milliseconds>(recovery).count() << " ms after PostgreSQL started");
    CHECK(eventually([&] { return c.get("/readyz").status == 200; }, 10s));
    std::this_thread::sleep_for(1s);
    stop = true;
    for (auto& t : load) t.join();
    CHECK(other_n == 0);
    CHECK(d.running());
    CHECK(d.pid() == pid);   // recovered without a restart

    // Every acknowledged key exactly once; nothing else appended funds.
    std::map<std::string, int> seen;
    std::map<std::string, std::int64_t> funds;
    for (const auto& e : all_events(c)) {
        if (str(e.at("type")) != "account.funds_added") continue;
        const auto& meta = e.at("metadata").as_object();
        REQUIRE(meta.contains("idempotency_key"));
        ++seen[str(meta.at("idempotency_key"))];
        funds[str(e.at("stream")).substr(str(e.at("stream")).find('-') + 1)] += num(e.at("data").at("amount"));
    }
    for (const auto& key : acknowledged) {
        INFO(key);
        CHECK(seen[key] == 1);
    }
    for (const auto& [key, count] : seen) {
        INFO(key);
        CHECK(count == 1);
    }
    // A 503 after COMMIT was sent may still have written (the answer says so); the balance is
    // whatever the ledger holds, and at least every acknowledged amount.
    for (const auto& [acc, sum] : acknowledged_funds) {
        const auto r = c.get("/v1/accounts/" + acc);
        REQUIRE(r.status == 200);
        CHECK(num(r.json.at("balance")) == funds[acc]);
        CHECK(funds[acc] >= sum);
    }
    const auto v = run_mqledger({"verify", "--database-url", admin_url});
    INFO(v.out << v.err);
    CHECK(v.exit_code == 0);
}

TEST_CASE("systemd: deploy/mqledger.service passes systemd-analyze verify with no warning (issue 6)",
          "[e2e][operations]") {
    std::ifstream in(source_dir / "deploy/mqledger.service");
    REQUIRE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string unit = ss.str();
    // The checks that matter of the unit itself, so that verify is not vacuous.
    for (const char* line : {"Type=notify", "WatchdogSec=", "Restart=on-failure", "User=mqledger",
                             "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                             "CapabilityBoundingSet=\n", "RestrictAddressFamilies=", "ExecReload=/bin/kill -HUP $MAINPID",
                             "--config /etc/mqledger/mqledger.conf"}) {
        INFO(line);
        CHECK(unit.find(line) != std::string::npos);
    }
    // verify insists that ExecStart's binary exists: point it at the one just built.
    const std::string installed = "/usr/local/bin/mqledger";
    const auto at = unit.find("ExecStart=" + installed);
    REQUIRE(at != std::string::npos);
    unit.replace(at + 10, installed.size(), MQLEDGER_BINARY);
    temp_dir tmp;
    const auto path = tmp.write("mqledger.service", unit);
    const auto r = run_program("systemd-analyze", {"verify", path.string()});
    const auto out = r.out + r.err;
    INFO(out);
    CHECK(r.exit_code == 0);
    CHECK(out.find("mqledger.service") == std::string::npos);   // warnings name the unit
}

TEST_CASE("deploy: the example config file is accepted by `mqledger serve` as it ships (issue 6)", "[e2e][operations]") {
    using namespace mqledger;
    const auto path = (source_dir / "deploy/mqledger.conf").string();
    const auto r = parse_config(command_kind::serve, {"--config", path}, [](const std::string&) { return std::nullopt; },
                                disk_reader());
    INFO(r.text);
    REQUIRE(r.outcome == config_result::kind::run);
    CHECK(r.cfg.tokens_file == "/etc/mqledger/tokens");
    CHECK(r.cfg.workers == 64);
}

namespace {

// The receiving end of systemd's notify protocol: a datagram socket the daemon finds through
// NOTIFY_SOCKET, as systemd's would be.
class notify_socket {
public:
    explicit notify_socket(std::filesystem::path path) : path_(std::move(path)) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        REQUIRE(path_.string().size() < sizeof addr.sun_path);
        std::strncpy(addr.sun_path, path_.c_str(), sizeof addr.sun_path - 1);
        REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    }
    ~notify_socket() { ::close(fd_); }
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;

    /// Every message received within `window` (each may hold several NAME=VALUE lines).
    std::vector<std::string> receive(std::chrono::milliseconds window) const {
        std::vector<std::string> out;
        const auto until = steady::now() + window;
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - steady::now()).count();
            if (left <= 0) return out;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
            char buf[4096];
            const auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n > 0) out.emplace_back(buf, static_cast<std::size_t>(n));
        }
    }

private:
    std::filesystem::path path_;
    int fd_ = -1;
};

int count_of(const std::vector<std::string>& messages, const std::string& line) {
    int n = 0;
    for (const auto& m : messages) {
        std::istringstream in(m);
        for (std::string l; std::getline(in, l);) n += l == line;
    }
    return n;
}

} // namespace

TEST_CASE("systemd notify (Type=notify): WATCHDOG=1 every WatchdogSec/2 from the event loop, READY=1 once only "
          "when the database is reachable and migrated, STOPPING=1 on SIGTERM (issue 6)",
          "[e2e][operations]") {
    scratch_database db;   // not migrated yet
    temp_dir tmp;
    const notify_socket sock(tmp.path() / "notify");
    const auto port = free_port();
    daemon_process d(system_clock_args(port, db.url()), port,
                     {{"NOTIFY_SOCKET", (tmp.path() / "notify").string()}, {"WATCHDOG_USEC", "400000"}});

    // 1.5 s unmigrated: the watchdog is fed (every 200 ms), but no READY=1.
    const auto before = sock.receive(1500ms);
    CHECK(count_of(before, "WATCHDOG=1") >= 4);
    CHECK(count_of(before, "READY=1") == 0);
    CHECK(d.client().get("/readyz").status == 503);

    REQUIRE(run_mqledger({"migrate", "--database-url", db.url()}).exit_code == 0);
    const auto after = sock.receive(3000ms);
    CHECK(count_of(after, "READY=1") == 1);
    CHECK(count_of(after, "WATCHDOG=1") >= 8);

    CHECK(d.stop(SIGTERM) == 0);
    const auto last = sock.receive(300ms);
    CHECK(count_of(last, "STOPPING=1") == 1);
    CHECK(count_of(last, "READY=1") == 0);
}
