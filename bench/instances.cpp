// bench_instances: the daemon's memory and start-up time with a large fleet (bench/README.md
// "Targets": daemon memory with 1,000,000 instances <= 200 MB RSS; start-up to ready <= 2 s).
//
//   build/bench/bench_instances --database-url ADMIN_URL [--app-url APP_URL] [--instances N]
//       [--starts 3] [--port 18482] [--populate observer|rebuild] [--log FILE] [--keep-database yes]
//
// On a scratch database of the embedded cluster it writes N Kafka subscription instances as real
// events decided by the rules core (one `account.opened` per 1,000 instances, one
// `instance.imported` per instance: running, term ending 30-37 days ahead, auto-renew off, so no
// timer is due while the daemon runs), through the store with the projector as its batch observer:
// the daemon's own append path, instance_state, timers, accounts and counts written in every
// append transaction (requests of 500 instances, 64 in flight, so batches of up to 20,000
// events). `--populate rebuild` appends without projections and then runs
// `projections::rebuild` (what `mqledger rebuild` does; it folds every instance in memory, so
// it needs ~1 GB more for 1,000,000 and was not faster on the 2-core machine). Then VACUUM
// ANALYZE, as autovacuum would have done on a long-lived database.
//
// Then it starts `mqledger serve` (system clock, the daemon's role APP_URL, default ADMIN_URL)
// `--starts` times, each time timing fork+exec to the first `GET /readyz` 200 (polled every
// 2 ms), reading VmRSS once ready, scraping /metrics (which also reads the projection counts)
// and reading VmRSS and VmHWM again, then SIGTERM. Prints human lines and `result:` lines.
#include "bench/bench_util.h"

#include "ledger/clock.h"
#include "ledger/store/conninfo.h"
#include "ledger/store/migrate.h"
#include "projections/projector.h"
#include "projections/rebuild.h"

#include <algorithm>
#include <future>

using namespace mqledger;
using namespace mqledger::bench;

#ifndef MQLEDGER_BINARY
#define MQLEDGER_BINARY "mqledger"
#endif

namespace {

// Sum of the mqledger_instances gauge series in a /metrics text.
long long instances_in_metrics(const std::string& text) {
    long long sum = 0;
    std::size_t p = 0;
    while ((p = text.find("\nmqledger_instances{", p)) != std::string::npos) {
        const auto eol = text.find('\n', p + 1);
        const auto line = text.substr(p + 1, eol - p - 1);
        const auto sp = line.rfind(' ');
        if (sp != std::string::npos) sum += static_cast<long long>(std::atof(line.c_str() + sp + 1));
        p = eol == std::string::npos ? text.size() : eol;
    }
    return sum;
}

} // namespace

int main(int argc, char** argv) {
    const std::string admin = arg_of(argc, argv, "--database-url").value_or("");
    const std::string app = arg_of(argc, argv, "--app-url").value_or(admin);
    const long n = std::atol(arg_of(argc, argv, "--instances").value_or("1000000").c_str());
    const int starts = std::max(1, std::atoi(arg_of(argc, argv, "--starts").value_or("3").c_str()));
    const int port = std::atoi(arg_of(argc, argv, "--port").value_or("18482").c_str());
    const std::string populate = arg_of(argc, argv, "--populate").value_or("observer");
    const bool keep = arg_of(argc, argv, "--keep-database").value_or("no") == "yes";
    const std::string db = "bench_instances_" + std::to_string(::getpid());
    const std::string log = arg_of(argc, argv, "--log").value_or("/tmp/" + db + ".daemon.log");
    if (admin.empty() || n <= 0 || (populate != "rebuild" && populate != "observer")) {
        std::fprintf(stderr, "usage: bench_instances --database-url ADMIN_URL [--app-url APP_URL] [--instances N]\n"
                             "         [--starts 3] [--port 18482] [--populate observer|rebuild] [--log FILE]\n"
                             "         [--keep-database yes]\n");
        return 2;
    }
    if (!port_free(port)) {
        std::fprintf(stderr, "bench_instances: 127.0.0.1:%d is in use (--port)\n", port);
        return 1;
    }
    const auto url = store::with_database(admin, db);
    int rc = 0;
    try {
        exec_on(admin, "CREATE DATABASE " + db + " TEMPLATE template0 ENCODING 'UTF8'");
        store::migrate(url);
        std::printf("bench_instances: %ld instances, database %s, populate by %s\n", n, db.c_str(), populate.c_str());
        std::fflush(stdout);

        // ---- N instances as real events ----
        const policy_registry policies;
        const projections::projector projector(policies);
        system_clock_source clk;
        auto t0 = std::chrono::steady_clock::now();
        std::int64_t events = 0;
        {
            store::store_options opts;
            if (populate == "observer") opts.observer = projector.observer();
            store::event_store st(url, clk, opts);
            const auto now = clk.now();
            events = import_subscriptions(
                st, policies, now, n, "i", std::chrono::hours(24 * 10),
                [now](long i) { return now + std::chrono::hours(24 * 30) + std::chrono::minutes(i % 10080); }, 64);
        }
        const double append_s = since(t0);
        std::printf("populate: %lld events in %.1f s (%.0f events/s%s)\n", static_cast<long long>(events), append_s,
                    static_cast<double>(events) / append_s, populate == "observer" ? ", with projections" : ", no projections");
        std::fflush(stdout);
        if (populate == "rebuild") {
            t0 = std::chrono::steady_clock::now();
            const auto rb = projections::rebuild(url, policies);
            std::printf("rebuild: %zu instances, %zu accounts, %zu timers in %.1f s\n", rb.instances, rb.accounts,
                        rb.timers, since(t0));
        }
        exec_on(url, "VACUUM ANALYZE");
        result("instances_populated", static_cast<double>(n));

        // ---- the daemon, started `starts` times ----
        std::vector<double> startup;
        long rss_ready_max = 0, rss_metrics_max = 0, hwm_max = 0;
        long long seen = -1;
        for (int k = 0; k < starts; ++k) {
            const auto s0 = std::chrono::steady_clock::now();
            daemon_process d(MQLEDGER_BINARY, store::with_database(app, db), port, log);
            const auto ready = wait_ready(d, port, 120, s0);
            if (!ready) throw std::runtime_error("the daemon did not become ready within 120 s (log " + log + ")");
            const long rss_ready = proc_kb(d.pid(), "VmRSS");
            std::string metrics;
            const auto m0 = std::chrono::steady_clock::now();
            const int st = http_get(port, "/metrics", &metrics, 60000);
            const double metrics_s = since(m0);
            if (st != 200) throw std::runtime_error("GET /metrics answered " + std::to_string(st));
            seen = instances_in_metrics(metrics);
            const long rss_metrics = proc_kb(d.pid(), "VmRSS");
            const long hwm = proc_kb(d.pid(), "VmHWM");
            std::printf("start %d: ready in %.3f s; VmRSS %.1f MB ready, %.1f MB after /metrics (%.2f s, %lld instances"
                        " counted), VmHWM %.1f MB\n",
                        k + 1, *ready, rss_ready / 1024.0, rss_metrics / 1024.0, metrics_s, seen, hwm / 1024.0);
            std::fflush(stdout);
            startup.push_back(*ready);
            rss_ready_max = std::max(rss_ready_max, rss_ready);
            rss_metrics_max = std::max(rss_metrics_max, rss_metrics);
            hwm_max = std::max(hwm_max, hwm);
            d.stop();
        }
        if (seen != n) std::printf("WARNING: /metrics counts %lld instances, %ld written\n", seen, n);
        const double worst = *std::max_element(startup.begin(), startup.end());
        std::sort(startup.begin(), startup.end());
        const double median = startup[startup.size() / 2];
        std::printf("target (bench/README.md Targets) with 1,000,000 instances: start-up to ready <= 2 s: %s (max %.3f s, median %.3f s"
                    " over %d starts); RSS <= 200 MB: %s (%.1f MB after /metrics, peak %.1f MB); N = %ld\n",
                    worst <= 2 ? "PASS" : "SHORT", worst, median, starts, rss_metrics_max <= 200 * 1024 ? "PASS" : "SHORT",
                    rss_metrics_max / 1024.0, hwm_max / 1024.0, n);
        result("startup_max_s", worst);
        result("startup_median_s", median);
        result("rss_ready_mb", rss_ready_max / 1024.0);
        result("rss_metrics_mb", rss_metrics_max / 1024.0);
        result("rss_peak_mb", hwm_max / 1024.0);
        result("instances_counted", static_cast<double>(seen));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_instances: %s\n", e.what());
        rc = 1;
    }
    try {
        if (keep) std::printf("kept database %s\n", db.c_str());
        else exec_on(admin, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    } catch (...) {
    }
    return rc;
}
