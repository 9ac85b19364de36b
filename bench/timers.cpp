// bench_timers: timer lateness on the system clock (bench/README.md "Targets": p99 <= 100 ms).
//
//   build/bench/bench_timers --database-url ADMIN_URL [--app-url APP_URL] [--timers 1000]
//       [--window 10] [--lead 10] [--port 18483] [--log FILE] [--keep-database yes]
//
// On a scratch database of the embedded cluster it writes, through the store with the
// projector as batch observer (the daemon's own append path, projections in the same
// transaction), one account per 1,000 instances and `--timers` Kafka subscription instances
// imported running with auto-renew off, whose terms end (`expires_at`) evenly spread over
// `--window` seconds starting `--lead` seconds after the bench started. It then starts `mqledger
// serve` on the system clock (the daemon's role APP_URL, default ADMIN_URL), waits until every
// instance has its `instance.expired` event (the expiry timer fired), and reports the lateness
// of each: `recorded_at - effective_at` of the event (effective_at is the deadline; recorded_at
// is stamped by the daemon's writer when the batch carrying it is appended, so this includes the
// timer service's wake-up, the decision and the wait for the group commit). It also prints the
// daemon's own `mqledger_timer_lateness_seconds` histogram (count and mean) as a cross-check.
#include "bench/bench_util.h"

#include "ledger/clock.h"
#include "ledger/store/conninfo.h"
#include "ledger/store/migrate.h"
#include "projections/projector.h"

#include <algorithm>
#include <cmath>

using namespace mqledger;
using namespace mqledger::bench;

#ifndef MQLEDGER_BINARY
#define MQLEDGER_BINARY "mqledger"
#endif

namespace {

double percentile(const std::vector<double>& sorted, double q) {
    if (sorted.empty()) return 0;
    const auto i = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size()))) - 1;
    return sorted[std::min(i, sorted.size() - 1)];
}

// The value of the first metrics line starting with `prefix` (label order as the daemon prints).
std::optional<double> metric(const std::string& text, const std::string& prefix) {
    std::size_t p = 0;
    while ((p = text.find(prefix, p)) != std::string::npos) {
        if (p == 0 || text[p - 1] == '\n') {
            const auto eol = text.find('\n', p);
            const auto line = text.substr(p, eol - p);
            return std::atof(line.c_str() + line.rfind(' ') + 1);
        }
        ++p;
    }
    return std::nullopt;
}

} // namespace

int main(int argc, char** argv) {
    const std::string admin = arg_of(argc, argv, "--database-url").value_or("");
    const std::string app = arg_of(argc, argv, "--app-url").value_or(admin);
    const long n = std::atol(arg_of(argc, argv, "--timers").value_or("1000").c_str());
    const double window = std::atof(arg_of(argc, argv, "--window").value_or("10").c_str());
    const double lead = std::atof(arg_of(argc, argv, "--lead").value_or("10").c_str());
    const int port = std::atoi(arg_of(argc, argv, "--port").value_or("18483").c_str());
    const bool keep = arg_of(argc, argv, "--keep-database").value_or("no") == "yes";
    const std::string db = "bench_timers_" + std::to_string(::getpid());
    const std::string log = arg_of(argc, argv, "--log").value_or("/tmp/" + db + ".daemon.log");
    if (admin.empty() || n <= 0 || window < 0 || lead <= 0) {
        std::fprintf(stderr, "usage: bench_timers --database-url ADMIN_URL [--app-url APP_URL] [--timers 1000]\n"
                             "         [--window 10] [--lead 10] [--port 18483] [--log FILE] [--keep-database yes]\n");
        return 2;
    }
    if (!port_free(port)) {
        std::fprintf(stderr, "bench_timers: 127.0.0.1:%d is in use (--port)\n", port);
        return 1;
    }
    const auto url = store::with_database(admin, db);
    int rc = 0;
    try {
        const policy_registry policies;
        const projections::projector projector(policies);
        system_clock_source clk;
        const auto start = clk.now();
        const auto first_due = start + std::chrono::duration_cast<duration>(std::chrono::duration<double>(lead));
        const auto spacing = std::chrono::duration_cast<duration>(std::chrono::duration<double>(window)) / std::max(1L, n);

        exec_on(admin, "CREATE DATABASE " + db + " TEMPLATE template0 ENCODING 'UTF8'");
        store::migrate(url);
        std::printf("bench_timers: %ld expiry timers due from %s over %g s, database %s\n", n,
                    codec::format_time(first_due).c_str(), window, db.c_str());
        std::fflush(stdout);

        auto t0 = std::chrono::steady_clock::now();
        {
            store::event_store st(url, clk, store::observed_by(projector.observer()));
            import_subscriptions(st, policies, clk.now(), n, "t", std::chrono::hours(24 * 20),
                                 [&](long i) { return first_due + spacing * i; }, 1);
        }
        std::printf("populate: %ld instances with projections in %.1f s\n", n, since(t0));
        std::fflush(stdout);

        t0 = std::chrono::steady_clock::now();
        daemon_process d(MQLEDGER_BINARY, store::with_database(app, db), port, log);
        const auto ready = wait_ready(d, port, 60, t0);
        if (!ready) throw std::runtime_error("the daemon did not become ready (log " + log + ")");
        const double margin = std::chrono::duration<double>(first_due - clk.now()).count();
        std::printf("daemon ready in %.2f s; first timer due in %.2f s\n", *ready, margin);
        std::fflush(stdout);
        if (margin < 0.5)
            throw std::runtime_error("the first timer came due before the daemon was ready: raise --lead");

        // Wait for the window to pass, then for every expiry to be recorded.
        pqxx::connection c(url);
        const auto last_due = first_due + spacing * (n - 1);
        std::this_thread::sleep_for(last_due - clk.now() + std::chrono::seconds(1));
        long long expired = 0;
        const auto wait0 = std::chrono::steady_clock::now();
        for (;;) {
            pqxx::nontransaction tx(c);
            expired = tx.exec("SELECT count(*) FROM events WHERE type = 'instance.expired'")[0][0].as<long long>();
            if (expired >= n || since(wait0) > 120 || !d.alive()) break;
            std::this_thread::sleep_for(std::chrono::milliseconds(200));
        }
        std::vector<double> late;
        {
            pqxx::nontransaction tx(c);
            for (const auto& row : tx.exec("SELECT extract(epoch FROM recorded_at - effective_at)::float8 FROM events"
                                           " WHERE type = 'instance.expired'"))
                late.push_back(row[0].as<double>());
        }
        std::sort(late.begin(), late.end());
        std::string metrics;
        double m_count = 0, m_sum = 0;
        if (http_get(port, "/metrics", &metrics, 30000) == 200) {
            m_count = metric(metrics, "mqledger_timer_lateness_seconds_count{kind=\"expiry\"}").value_or(0);
            m_sum = metric(metrics, "mqledger_timer_lateness_seconds_sum{kind=\"expiry\"}").value_or(0);
        }
        d.stop();
        const double p50 = percentile(late, 0.50) * 1000, p90 = percentile(late, 0.90) * 1000,
                     p99 = percentile(late, 0.99) * 1000, mx = late.empty() ? 0 : late.back() * 1000;
        std::printf("expiry timers fired: %lld of %ld (%.0f due per second)\n", expired, n,
                    window > 0 ? static_cast<double>(n) / window : 0.0);
        std::printf("lateness (recorded_at - effective_at) ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", p50, p90, p99, mx);
        std::printf("daemon histogram mqledger_timer_lateness_seconds{kind=\"expiry\"}: count %.0f, mean %.1f ms\n",
                    m_count, m_count > 0 ? m_sum / m_count * 1000 : 0.0);
        const bool complete = expired == n;
        std::printf("target (bench/README.md Targets): timer lateness p99 <= 100 ms on the system clock: %s (p99 %.1f ms)\n",
                    complete && p99 <= 100 ? "PASS" : "SHORT", p99);
        if (!complete) {
            std::printf("MISMATCH: %lld expiries for %ld timers\n", expired, n);
            rc = 1;
        }
        result("timers", static_cast<double>(n));
        result("timers_fired", static_cast<double>(expired));
        result("lateness_p50_ms", p50);
        result("lateness_p90_ms", p90);
        result("lateness_p99_ms", p99);
        result("lateness_max_ms", mx);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_timers: %s\n", e.what());
        rc = 1;
    }
    try {
        if (keep) std::printf("kept database %s\n", db.c_str());
        else exec_on(admin, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    } catch (...) {
    }
    return rc;
}
