// bench_audit: the auditor's tools over a large log (issue 5; bench/README.md "Targets": rebuild and
// verify ≥ 300,000 events/s; export in constant memory).
//
//   build/bench/bench_audit --database-url ADMIN_URL [--events N] [--keep-database yes]
//
// On a scratch database of the embedded cluster it writes a legal history of about N events
// (default 1,000,000) decided by the rules core, one unit of work per command: accounts with
// funds, payg Kafka instances purchased and deployed, then topics created and deleted on each,
// appended through the store without projections. Then it times, each over the whole log:
//   rebuild      projections::rebuild (what `mqledger rebuild` runs)
//   chain        store::verify_chain (verify's first check)
//   conformance  the conformance checker over paged reads (verify's second check)
//   compare      projections::compare (verify's third check)
//   export       `mqledger export` as a child process to /dev/null: wall time and its peak RSS
// and prints events/s against the targets. Not a test: figures go to bench/README.md. Lines
// `result: NAME VALUE` repeat each figure for bench/run.
#include "bench/bench_util.h"
#include "ledger/clock.h"
#include "ledger/codec.h"
#include "ledger/decide.h"
#include "ledger/store/event_store.h"
#include "ledger/store/migrate.h"
#include "ledger/store/verify.h"
#include "ledger/store/conninfo.h"
#include "projections/conformance.h"
#include "projections/projector.h"
#include "projections/rebuild.h"

#include <pqxx/pqxx>

#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <string>
#include <vector>

using namespace mqledger;
namespace cmd = mqledger::commands;

namespace {

double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void exec_on(const std::string& url, const std::string& sql) {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    tx.exec(sql);
}

} // namespace

int main(int argc, char** argv) {
    std::string admin;
    std::int64_t target_events = 1000000;
    bool keep = false;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--database-url") admin = argv[i + 1];
        else if (a == "--events") target_events = std::atoll(argv[i + 1]);
        else if (a == "--keep-database") keep = std::string(argv[i + 1]) == "yes";
    }
    if (admin.empty() || target_events <= 0) {
        std::fprintf(stderr, "usage: bench_audit --database-url ADMIN_URL [--events N] [--keep-database yes]\n");
        return 2;
    }
    const std::string db = "bench_audit_" + std::to_string(::getpid());
    const auto url = store::with_database(admin, db);
    int rc = 0;
    try {
        exec_on(admin, "CREATE DATABASE " + db + " TEMPLATE template0 ENCODING 'UTF8'");
        store::migrate(url);
        policy_registry policies;
        // Time is the bench's own: a fixed start, advanced by hand (no system clock in the data).
        manual_clock clk(*codec::parse_time("2026-01-05T00:00:00Z"));
        std::printf("bench_audit: %lld events wanted, database %s\n", static_cast<long long>(target_events), db.c_str());

        // ---- a legal history, decided by the core ----
        auto t0 = std::chrono::steady_clock::now();
        {
            // Every command is a unit of work decided by the core and appended as the engine
            // appends it (unit records in the metadata: what verify's conformance replays).
            store::event_store st(url, clk);
            bench::unit_writer w(st, policies.current(), 256);
            const int per_instance_cycles = 24;   // 2 + 48 events per instance
            const int instances_per_account = 1000;
            const auto instances = static_cast<int>(target_events / (2 + 2 * per_instance_cycles)) + 1;
            const auto now = clk.now();
            for (int i = 0; i < instances; ++i) {
                const std::string acc = "acc-" + std::to_string(i / instances_per_account);
                if (i % instances_per_account == 0) {
                    w.run(account_command{acc, cmd::open_account{"CNY"}}, now);
                    w.run(account_command{acc, cmd::add_funds{1000000000, "seed"}}, now);
                }
                const std::string id = "i-" + std::to_string(i);
                cmd::purchase p;
                p.instance_id = id;
                p.account_id = acc;
                p.prod = product::kafka;
                p.bill = billing::payg;
                p.timezone = "Asia/Shanghai";
                p.rate = price{price::unit::hourly, 120};
                w.run(instance_command{id, p}, now);
                w.run(instance_command{id, cmd::deploy{}}, now);
                for (int k = 0; k < per_instance_cycles; ++k) {
                    w.run(instance_command{id, cmd::create_topic{"t-" + std::to_string(k)}}, now);
                    w.run(instance_command{id, cmd::delete_topic{"t-" + std::to_string(k)}}, now);
                }
            }
            w.drain();
            std::printf("populate: %lld events in %.1f s (%.0f events/s, one unit per command, no projections)\n",
                        static_cast<long long>(w.events()), since(t0), static_cast<double>(w.events()) / since(t0));
            std::printf("result: populate_eps %.6g\n", static_cast<double>(w.events()) / since(t0));
        }
        const auto total = store::head(url).position;
        std::printf("result: events %lld\n", static_cast<long long>(total));

        auto report = [&](const char* what, double secs, std::int64_t n, bool targeted) {
            const double rate = static_cast<double>(n) / secs;
            std::printf("%-12s %10lld events in %6.2f s = %9.0f events/s", what, static_cast<long long>(n), secs, rate);
            if (targeted) std::printf("   target >= 300,000/s: %s", rate >= 300000 ? "PASS" : "SHORT");
            std::printf("\nresult: %s_eps %.6g\nresult: %s_s %.6g\n", what, rate, what, secs);
            std::fflush(stdout);
        };

        t0 = std::chrono::steady_clock::now();
        const auto rb = projections::rebuild(url, policies);
        report("rebuild", since(t0), rb.position, true);

        t0 = std::chrono::steady_clock::now();
        const auto chain = store::verify_chain(url);
        report("chain", since(t0), chain.events, true);
        if (!chain.ok) throw std::runtime_error("chain failed at " + std::to_string(chain.bad_position.value_or(0)));

        t0 = std::chrono::steady_clock::now();
        {
            pqxx::connection c(url);
            const auto conf = projections::check_conformance(c, policies);
            if (conf.bad_position) throw std::runtime_error("conformance: " + conf.reason);
            report("conformance", since(t0), conf.conforming, true);
        }
        t0 = std::chrono::steady_clock::now();
        if (auto diff = projections::compare(url, policies)) throw std::runtime_error("compare: " + diff->table);
        report("compare", since(t0), total, false);

#ifdef MQLEDGER_BINARY
        t0 = std::chrono::steady_clock::now();
        const pid_t pid = ::fork();
        if (pid == 0) {
            const int null = ::open("/dev/null", O_WRONLY);
            ::dup2(null, STDOUT_FILENO);
            ::execl(MQLEDGER_BINARY, "mqledger", "export", "--database-url", url.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        // Sampled from /proc every 5 ms: the child's own ru_maxrss would count the image it
        // was forked from (this process) before its exec.
        int status = 0;
        long peak_kb = 0;
        for (;;) {
            if (::waitpid(pid, &status, WNOHANG) == pid) break;
            if (std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r")) {
                char line[256];
                bool execed = false;   // before exec the child is still a copy of this process
                while (std::fgets(line, sizeof line, f)) {
                    const std::string l(line);
                    if (l.rfind("Name:", 0) == 0) execed = l.find("mqledger") != std::string::npos;
                    if (execed && l.rfind("VmRSS:", 0) == 0) peak_kb = std::max(peak_kb, std::atol(line + 6));
                }
                std::fclose(f);
            }
            ::usleep(5000);
        }
        const double secs = since(t0);
        report("export", secs, total, false);
        std::printf("export peak RSS: %.1f MB (sampled; exit %d)\n", static_cast<double>(peak_kb) / 1024.0,
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        std::printf("result: export_rss_mb %.6g\n", static_cast<double>(peak_kb) / 1024.0);
#endif
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_audit: %s\n", e.what());
        rc = 1;
    }
    try {
        if (!keep) exec_on(admin, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)");
    } catch (...) {
    }
    return rc;
}
