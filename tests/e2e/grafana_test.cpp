// The Grafana dashboard against a real Prometheus (DESIGN.md "Metrics", grafana/README.md): Debian's
// /usr/bin/prometheus scrapes a real daemon every second while traffic runs through the lifecycle
// paths the panels show, then every PromQL query of grafana/dashboards/mqledger.json is run through
// Prometheus' HTTP API. A query naming a metric or a label the daemon does not export, or a label
// value it never uses, is not an error in Grafana: the panel is just empty. This is where it shows.
// The daemon signs checkpoints (--digest-key) and the test co-signs each one as a witness would
// (--witness-key), so the Transparency row has data too.
#include "tests/e2e/http_client.h"

#include "ledger/codec.h"
#include "ledger/store/checkpoint.h"
#include "ledger/store/digest.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace mqledger::test;
namespace json = boost::json;
namespace fs = std::filesystem;
using std::chrono::steady_clock;

namespace {

constexpr const char* prometheus_binary = "/usr/bin/prometheus";
// What $__rate_interval becomes. Prometheus holds only this test's few seconds of samples; 30 s
// still spans many of its 1 s scrapes, as Grafana's rule (at least 4 scrapes) wants.
constexpr const char* rate_window = "30s";

// No CMake definition needed: CMake compiles sources by absolute path, so __FILE__ locates the
// checkout this test was built from (tests/e2e/grafana_test.cpp → the repository root).
fs::path repository_root() { return fs::path(__FILE__).parent_path().parent_path().parent_path(); }

std::string read_text(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::string url_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    for (const unsigned char ch : s) {
        if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
            out += static_cast<char>(ch);
        } else {
            out += '%';
            out += hex[ch >> 4];
            out += hex[ch & 15];
        }
    }
    return out;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
    for (auto at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size()))
        s.replace(at, from.size(), to);
}

/// Debian's Prometheus on a private port and a private TSDB. Stopped by the destructor, so also when
/// a REQUIRE throws; PR_SET_PDEATHSIG kills it if the test process itself dies, so a killed test run
/// leaves no server scraping behind.
class prometheus_process {
public:
    prometheus_process(const fs::path& dir, std::uint16_t port, const std::string& config)
        : port_(port), log_(dir / "prometheus.log") {
        const auto config_file = dir / "prometheus.yml";
        std::ofstream(config_file) << config;
        fs::create_directories(dir / "tsdb");
        std::vector<std::string> args{prometheus_binary,
                                      "--config.file=" + config_file.string(),
                                      "--storage.tsdb.path=" + (dir / "tsdb").string(),
                                      "--web.listen-address=127.0.0.1:" + std::to_string(port),
                                      "--log.level=warn"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        const std::string log_path = log_.string();
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ < 0) throw std::runtime_error("fork failed");
        if (pid_ == 0) {
            // Only async-signal-safe calls between fork and exec: the test process has threads.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);
            const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            const int null = ::open("/dev/null", O_RDONLY);
            if (log < 0 || null < 0) ::_exit(127);
            ::dup2(null, 0);
            ::dup2(log, 1);
            ::dup2(log, 2);
            ::execv(prometheus_binary, argv.data());
            ::_exit(127);
        }
    }

    ~prometheus_process() { stop(); }
    prometheus_process(const prometheus_process&) = delete;
    prometheus_process& operator=(const prometheus_process&) = delete;

    void stop() {
        if (exited_) return;
        ::kill(pid_, SIGTERM);
        if (!wait_exit(std::chrono::seconds(5))) {
            ::kill(pid_, SIGKILL);
            wait_exit(std::chrono::seconds(5));
        }
    }

    [[nodiscard]] http_client client() const { return http_client(port_); }
    [[nodiscard]] std::string log() const { return read_text(log_); }

    /// Waits until /-/ready answers 200; throws with the server's log if it exits or takes too long.
    void wait_ready(steady_clock::time_point deadline) {
        std::string last;
        while (steady_clock::now() < deadline) {
            if (wait_exit(std::chrono::milliseconds(0)))
                throw std::runtime_error("prometheus exited with status " + std::to_string(status_) + ":\n" + log());
            try {
                if (client().get("/-/ready").status == 200) return;
            } catch (const std::exception& e) {
                last = e.what();
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        throw std::runtime_error("prometheus not ready in time (" + last + "):\n" + log());
    }

private:
    bool wait_exit(std::chrono::milliseconds timeout) {
        const auto until = steady_clock::now() + timeout;
        for (;;) {
            int st = 0;
            const pid_t r = ::waitpid(pid_, &st, WNOHANG);
            if (r == pid_ || r < 0) {
                exited_ = true;
                status_ = r < 0 ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                return true;
            }
            if (steady_clock::now() >= until) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    std::uint16_t port_;
    fs::path log_;
    pid_t pid_ = -1;
    bool exited_ = false;
    int status_ = 0;
};

/// Prometheus' answer to one instant query.
struct query_answer {
    std::string status;   // "success" or "error"
    std::string body;
    std::vector<double> values;   // one per series of the result vector

    [[nodiscard]] bool has_positive_value() const {
        for (const double v : values)
            if (std::isfinite(v) && v > 0) return true;
        return false;
    }
};

query_answer instant_query(const http_client& prometheus, const std::string& expr) {
    const auto r = prometheus.get("/api/v1/query?query=" + url_encode(expr));
    query_answer a;
    a.body = r.body;
    if (!r.json.is_object()) return a;
    const auto& o = r.json.as_object();
    if (const auto* s = o.if_contains("status"); s && s->is_string()) a.status = s->as_string().c_str();
    const auto* data = o.if_contains("data");
    if (!data || !data->is_object()) return a;
    const auto* result = data->as_object().if_contains("result");
    if (!result || !result->is_array()) return a;
    for (const auto& series : result->as_array()) {
        // A sample is [unix_time, "value"]; the value is text so that NaN and ±Inf survive JSON.
        const auto& sample = series.at("value").as_array();
        a.values.push_back(std::stod(std::string(sample.at(1).as_string())));
    }
    return a;
}

/// Metrics the dashboard shows that the daemon does not serve, and the process that does. This test
/// runs only daemons, so a query on these is checked for valid PromQL, not for data, and it is not
/// filtered by the `instance` variable (which lists daemons).
struct foreign_metric {
    const char* name;
    const char* served_by;
};
constexpr foreign_metric foreign_metrics[] = {
    {"mqledger_witness_forks_total", "mqledger witness --metrics-listen"},
};

const foreign_metric* foreign_metric_in(const std::string& expr) {
    for (const auto& m : foreign_metrics)
        if (expr.find(m.name) != std::string::npos) return &m;
    return nullptr;
}

/// Every panel target, with the datasource each one names. Rows nest panels (collapsed rows keep
/// theirs inside), so the whole document is walked rather than only the top-level list.
struct dashboard_target {
    std::string panel;
    std::string expr;
    std::string datasource_uid;
};

void collect_targets(const json::value& v, std::vector<dashboard_target>& out) {
    if (v.is_array()) {
        for (const auto& e : v.as_array()) collect_targets(e, out);
        return;
    }
    if (!v.is_object()) return;
    const auto& o = v.as_object();
    if (const auto* targets = o.if_contains("targets"); targets && targets->is_array()) {
        const auto* title = o.if_contains("title");
        for (const auto& t : targets->as_array()) {
            dashboard_target d;
            d.panel = title && title->is_string() ? std::string(title->as_string()) : "?";
            if (const auto* e = t.as_object().if_contains("expr"); e && e->is_string()) d.expr = e->as_string().c_str();
            const auto* ds = t.as_object().if_contains("datasource");
            if (!ds) ds = o.if_contains("datasource");
            if (ds && ds->is_object())
                if (const auto* uid = ds->as_object().if_contains("uid"); uid && uid->is_string())
                    d.datasource_uid = uid->as_string().c_str();
            out.push_back(std::move(d));
        }
    }
    for (const auto& [key, child] : o)
        if (key != "targets") collect_targets(child, out);
}

/// What Grafana substitutes before sending a query, with windows fit for a short-lived Prometheus.
std::string as_grafana_sends_it(std::string expr) {
    replace_all(expr, "${__rate_interval}", rate_window);
    replace_all(expr, "$__rate_interval", rate_window);
    replace_all(expr, "${__interval}", "5s");
    replace_all(expr, "$__interval", "5s");
    replace_all(expr, "${__range}", "1m");
    replace_all(expr, "$__range", "1m");
    replace_all(expr, "${instance:regex}", ".*");   // the variable's allValue
    replace_all(expr, "${instance}", ".*");
    replace_all(expr, "$instance", ".*");
    return expr;
}

json::object kafka_payg(const std::string& id, const std::string& account) {
    return json::object{{"instance_id", id},     {"account_id", account}, {"product", "kafka"},
                        {"billing", "payg"},     {"timezone", "Asia/Shanghai"},
                        {"price", json::object{{"hourly", 120}, {"per_unit", json::object{{"storage_gb_hours", 3}}}}}};
}

} // namespace

TEST_CASE("grafana: Debian's prometheus scrapes a running daemon and every PromQL query of the dashboard returns "
          "data (DESIGN.md Metrics)",
          "[e2e][metrics][grafana]") {
    if (!fs::exists(prometheus_binary))
        FAIL(prometheus_binary << " is missing: install the Debian package `prometheus` (DESIGN.md lists it for "
                                  "the tests); the dashboard's queries are checked against the real server");
    const auto dashboard_file = repository_root() / "grafana" / "dashboards" / "mqledger.json";
    INFO("dashboard: " << dashboard_file);
    REQUIRE(fs::exists(dashboard_file));
    const auto dashboard = json::parse(read_text(dashboard_file));

    std::vector<dashboard_target> targets;
    collect_targets(dashboard.at("panels"), targets);
    REQUIRE(targets.size() >= 15);
    std::vector<std::string> queries;
    std::vector<std::pair<std::string, const foreign_metric*>> foreign_queries;   // no data here: foreign_metrics
    std::set<std::string> seen;
    for (const auto& t : targets) {
        INFO("panel \"" << t.panel << "\": " << t.expr);
        CHECK_FALSE(t.expr.empty());
        // Hard-coded datasources or a missing daemon filter make a panel ignore the variables (the
        // daemon filter does not apply to another process's metrics).
        CHECK(t.datasource_uid == "${datasource}");
        const auto* foreign = foreign_metric_in(t.expr);
        CHECK((foreign != nullptr || t.expr.find("instance=~\"$instance\"") != std::string::npos));
        auto q = as_grafana_sends_it(t.expr);
        CHECK(q.find('$') == std::string::npos);   // a Grafana variable this test does not know
        if (!seen.insert(q).second) continue;
        if (foreign) foreign_queries.emplace_back(std::move(q), foreign);
        else queries.push_back(std::move(q));
    }
    // The `instance` variable's own query: label_values(METRIC, LABEL) is, in PromQL, the label
    // values of the series `group by (LABEL) (METRIC)` returns.
    bool has_instance_variable = false;
    for (const auto& var : dashboard.at("templating").at("list").as_array()) {
        if (var.at("name") != "instance") continue;
        has_instance_variable = true;
        REQUIRE(var.at("definition") == "label_values(mqledger_build_info, instance)");
        queries.push_back("group by (instance) (mqledger_build_info)");
    }
    REQUIRE(has_instance_variable);

    // The releases panels promise both causes (README.md "Metrics"): each must have moved, which
    // also takes a deadline release on two different manual days, since a counter's first value
    // is not an increase to Prometheus.
    for (const char* cause : {"deadline", "force_delete"})
        queries.push_back(std::string("sum(rate(mqledger_releases_total{cause=\"") + cause + "\"}[" + rate_window +
                          "]))");

    const auto test_deadline = steady_clock::now() + std::chrono::seconds(55);
    temp_dir dir;

    scratch_database db("mqledger_grafana");
    {
        const auto migrated = run_mqledger({"migrate", "--database-url", db.url()});
        INFO("migrate: " << migrated.err);
        REQUIRE(migrated.exit_code == 0);
    }
    // The log's key signs checkpoints; the witness's co-signs them. Only clock moves sign one
    // (--checkpoint-interval is a day), so each lags the head and ages until the next.
    const auto log_key = mqledger::checkpoint::private_key::generate();
    const auto witness_key = mqledger::checkpoint::private_key::generate();
    const auto log_key_file = dir.write("log.pem", log_key.to_pem());
    const auto witness_pub_file =
        dir.write("witness.pub.pem", mqledger::store::digest_signer(witness_key.to_pem()).public_key_pem());
    const auto port = free_port();
    daemon_process daemon({"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db.url(),
                           "--insecure-no-auth", "--clock", "manual", "--clock-start", "2026-03-13T06:00:00Z",
                           "--digest-key", log_key_file.string(), "--checkpoint-interval", "86400", "--witness-key",
                           "w1=" + witness_pub_file.string()},
                          port);
    const auto c = daemon.client();
    const auto ok = [&](const http_result& r, int status, const std::string& what) {
        INFO(what << " → " << r.status << " " << r.body);
        REQUIRE(r.status == status);
    };
    const auto post = [&](const std::string& path, const json::value& body, int status = 200) {
        ok(c.post(path, body), status, "POST " + path + " " + json::serialize(body));
    };

    // Standing population: a product per billing model, an hourly-billed instance that keeps
    // settlement timers firing (RocketMQ runs from purchase, Q), and an account whose first hourly
    // bill (120) exceeds its funds (100), so it goes overdue at 07:00 and its instance is on the
    // overdue release path (K).
    post("/v1/accounts", json::object{{"account_id", "acc-rich"}, {"currency", "CNY"}}, 201);
    post("/v1/accounts/acc-rich/funds", json::object{{"amount", 100000000}, {"reference", "seed"}});
    post("/v1/accounts", json::object{{"account_id", "acc-poor"}, {"currency", "CNY"}}, 201);
    post("/v1/accounts/acc-poor/funds", json::object{{"amount", 100}, {"reference", "seed"}});
    post("/v1/instances",
         json::object{{"instance_id", "rmq-1"}, {"account_id", "acc-rich"}, {"product", "rabbitmq"},
                      {"billing", "subscription"}, {"price", json::object{{"monthly", 30000}}}, {"term_months", 1}},
         201);
    post("/v1/instances",
         json::object{{"instance_id", "rq-1"},
                      {"account_id", "acc-rich"},
                      {"product", "rocketmq"},
                      {"billing", "payg"},
                      {"price", json::object{{"hourly", 200}}},
                      {"config", json::object{{"edition", "standard"}, {"sub_category", "cluster"}, {"tps", 1000},
                                              {"internet_access", false}, {"bandwidth_mbps", 0}}}},
         201);
    post("/v1/instances", kafka_payg("kp-poor", "acc-poor"), 201);
    post("/v1/instances/kp-poor/actions/deploy", json::object{});

    const auto prometheus_port = free_port();
    std::ostringstream config;
    config << "global:\n"
              "  scrape_interval: 1s\n"
              "  scrape_timeout: 1s\n"
              "  evaluation_interval: 1s\n"
              "scrape_configs:\n"
              "  - job_name: mqledger\n"
              "    static_configs:\n"
              "      - targets: ['127.0.0.1:"
           << port << "']\n";
    prometheus_process prometheus(dir.path(), prometheus_port, config.str());
    prometheus.wait_ready(steady_clock::now() + std::chrono::seconds(20));
    const auto p = prometheus.client();
    const auto targets_health = [&] { return p.get("/api/v1/targets?state=active").body; };
    {
        // Traffic before the first scrape would only ever be seen as a series' starting value.
        bool scraped = false;
        while (!scraped && steady_clock::now() < test_deadline) {
            const auto up = instant_query(p, "up{job=\"mqledger\"} == 1");
            scraped = up.status == "success" && !up.values.empty();
            if (!scraped) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        INFO("targets: " << targets_health() << "\nprometheus log:\n" << prometheus.log());
        REQUIRE(scraped);
    }

    // What a witness does with the newest checkpoint (mqledger witness): co-sign it and send the line.
    const auto cosign_newest = [&] {
        const auto r = c.get("/v1/ledger/checkpoint");
        ok(r, 200, "GET checkpoint");
        const auto note = mqledger::checkpoint::parse(r.body);
        REQUIRE(note);
        const auto line = mqledger::checkpoint::format_signature_line(mqledger::checkpoint::cosign(
            *note, "w1", witness_key, static_cast<std::uint64_t>(std::time(nullptr))));
        ok(c.request("POST", "/v1/ledger/checkpoint/cosignatures?tree_size=" + std::to_string(note->size), line,
                     {{"Content-Type", "text/plain"}}),
           200, "POST co-signature");
    };

    // Each step buys and deploys a pay-as-you-go Kafka instance, stops the previous one (released at
    // 08:00 local on the third day, K) or also force-deletes it (released at the next settlement),
    // reads a few routes (one of them a 404), and moves the clock 6 h, so that settlements, stop
    // releases, overdue releases and force deletions fire between scrapes and every counter keeps
    // growing. That move signs a checkpoint, which the witness co-signs; a minute later (nothing is
    // due then, so no checkpoint) a payment leaves it aged and lagging the head until the next step's
    // move. It goes on until Prometheus has data for every query, or the deadline.
    std::vector<std::string> failing = queries;
    // About 12 steps (10 s) suffice; the cap keeps a failing run, which steps until it, under a minute.
    const auto step_deadline = std::min(test_deadline - std::chrono::seconds(10),
                                        steady_clock::now() + std::chrono::seconds(30));
    int step = 0;
    for (; steady_clock::now() < step_deadline; ++step) {
        const auto id = "k-" + std::to_string(step);
        post("/v1/instances", kafka_payg(id, "acc-rich"), 201);
        post("/v1/instances/" + id + "/actions/deploy", json::object{});
        if (step > 0) {
            const auto previous = "k-" + std::to_string(step - 1);
            // A second of storage an hour after it started running, recorded late (that hour is
            // settled): billed by its next settlement, at the next clock move (the Usage row).
            const auto since = c.get("/v1/instances/" + previous);
            ok(since, 200, "GET previous instance");
            const auto from = *mqledger::codec::parse_time(str(since.json.at("state_since"))) + std::chrono::hours(1);
            post("/v1/instances/" + previous + "/usage",
                 json::object{{"record_id", "storage-" + std::to_string(step)}, {"metric", "storage_gb_hours"},
                              {"quantity", 100}, {"start", mqledger::codec::format_time(from)},
                              {"end", mqledger::codec::format_time(from + std::chrono::seconds(1))}});
            post("/v1/instances/" + previous + "/actions/stop", json::object{});
            if (step % 2 == 0) post("/v1/instances/" + previous + "/actions/force-delete", json::object{});
        }
        ok(c.get("/v1/instances/" + id), 200, "GET instance");
        ok(c.get("/v1/instances/no-such-instance"), 404, "GET unknown instance");
        ok(c.get("/v1/instances?limit=5"), 200, "GET instances");
        ok(c.get("/v1/releases/pending"), 200, "GET pending releases");
        ok(c.get("/v1/accounts/acc-poor"), 200, "GET account");
        ok(c.get("/v1/ledger/head"), 200, "GET head");
        ok(c.get("/v1/events?after=0&limit=5"), 200, "GET events");
        post("/v1/clock", json::object{{"advance_seconds", 6 * 3600}});
        cosign_newest();
        post("/v1/clock", json::object{{"advance_seconds", 60}});
        post("/v1/accounts/acc-rich/funds",
             json::object{{"amount", 100}, {"reference", "top-up-" + std::to_string(step)}});

        // Nothing can pass before the second day of deadline releases (10 steps in): the first is
        // two manual days away, and a rate needs a counter to grow between two scrapes.
        if (step >= 10 && step % 2 == 0) {
            std::vector<std::string> still;
            for (const auto& q : failing) {
                const auto a = instant_query(p, q);
                if (a.status != "success" || !a.has_positive_value()) still.push_back(q);
            }
            failing = std::move(still);
            if (failing.empty()) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    INFO("traffic steps: " << step << "; targets: " << targets_health());

    // Every query, each named on failure: CHECK rather than REQUIRE so that one run lists every
    // panel that would be empty, not just the first.
    for (const auto& q : queries) {
        const auto a = instant_query(p, q);
        INFO("query: " << q << "\nPrometheus answered: " << a.body);
        CHECK(a.status == "success");
        CHECK_FALSE(a.values.empty());
        // An empty-looking panel also comes from series that exist but never move (a rate of 0,
        // a quantile of no observations: NaN); the traffic above gives each one a positive value.
        CHECK(a.has_positive_value());
    }
    // Another process's metric: the query must be valid PromQL (its data is that process's test's).
    for (const auto& [q, metric] : foreign_queries) {
        const auto a = instant_query(p, q);
        INFO("query: " << q << " (" << metric->name << " is served by " << metric->served_by
                       << ")\nPrometheus answered: " << a.body);
        CHECK(a.status == "success");
    }
}
