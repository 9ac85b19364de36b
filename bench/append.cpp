// bench_append: durable append throughput of the event store (group commit) against plain
// PostgreSQL baselines, in the same run, on a scratch database of the embedded cluster.
//
//   build/bench/bench_append [--database-url ADMIN_URL] [--seconds N] [--keep-database yes]
//
// ADMIN_URL defaults to $MQLEDGER_TEST_DATABASE_URL (deploy/pg.sh admin-url). Not a test: it
// prints figures; bench/README.md records them. Lines `result: NAME VALUE` repeat each figure
// for bench/run.
#include "ledger/store/conninfo.h"
#include "ledger/clock.h"
#include "ledger/store/event_store.h"
#include "ledger/store/migrate.h"
#include "ledger/store/pg_text.h"
#include "ledger/store/verify.h"

#include <boost/json/serialize.hpp>
#include <pqxx/pqxx>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace mqledger;
using namespace mqledger::store;
using steady = std::chrono::steady_clock;

namespace {

void exec_on(const std::string& url, const std::string& sql) {
    pqxx::connection c(url);
    pqxx::nontransaction n(c);
    n.exec(sql);
}

boost::json::object sample_data(std::int64_t i) {
    return {{"amount", 120 + i % 7}, {"instance_id", "i-" + std::to_string(i % 1000)}, {"reason", "usage"},
            {"reference", "bench"}};
}

// Group commit: `producers` threads, each appending one event per request to its own stream
// with the correct expected version, waiting for each answer before the next.
double group_commit(const std::string& url, int producers, double seconds, std::uint64_t& batches) {
    system_clock_source clk;
    event_store store(url, clk);
    std::atomic<std::int64_t> total{0};
    std::atomic<int> failures{0};
    const auto deadline = steady::now() + std::chrono::duration<double>(seconds);
    const auto start = steady::now();
    std::vector<std::thread> ts;
    static std::atomic<int> run{0};
    const int run_id = run++;
    for (int p = 0; p < producers; ++p) {
        ts.emplace_back([&, p] {
            const auto stream = "account-bench-" + std::to_string(run_id) + "-" + std::to_string(p);
            std::int64_t version = 0;
            while (steady::now() < deadline) {
                append_request r;
                r.streams.push_back({stream, version, {{"account.charged", sample_data(version), clk.now()}}});
                r.metadata = {{"actor", "bench"}, {"correlation_id", std::to_string(version)}, {"policy_version", 1}};
                const auto res = store.append(std::move(r));
                if (!res.ok()) {
                    std::fprintf(stderr, "append failed: %s\n", res.message.c_str());
                    ++failures;
                    return;
                }
                ++version;
            }
            total += version;
        });
    }
    for (auto& t : ts) t.join();
    const double elapsed = std::chrono::duration<double>(steady::now() - start).count();
    batches = store.batches_committed();
    if (failures) std::exit(1);
    return static_cast<double>(total.load()) / elapsed;
}

// Open pipeline: `n` streams, each with one request always outstanding (the next is queued from
// the previous one's callback), so the writer always has `n` requests to batch: what the store
// takes when callers do not wait in line (bench/README.md "Targets": >= 1,024 outstanding
// requests).
double outstanding(const std::string& url, int n, double seconds, std::uint64_t& batches) {
    system_clock_source clk;
    event_store store(url, clk);
    std::atomic<std::int64_t> total{0};
    std::atomic<bool> stop{false};
    std::atomic<int> failures{0};
    std::mutex m;
    std::condition_variable cv;
    int live = n;
    static std::atomic<int> run{0};
    const int run_id = 1000 + run++;
    std::vector<std::int64_t> version(static_cast<std::size_t>(n), 0);
    std::function<void(int)> next = [&](int p) {
        if (stop) {
            std::lock_guard lock(m);
            if (--live == 0) cv.notify_all();
            return;
        }
        append_request r;
        auto& v = version[static_cast<std::size_t>(p)];
        r.streams.push_back({"account-open-" + std::to_string(run_id) + "-" + std::to_string(p), v,
                             {{"account.charged", sample_data(v), clk.now()}}});
        r.metadata = {{"actor", "bench"}, {"correlation_id", std::to_string(v)}, {"policy_version", 1}};
        store.append(std::move(r), [&, p](append_result res) {
            if (!res.ok()) {
                std::fprintf(stderr, "append failed: %s\n", res.message.c_str());
                ++failures;
                stop = true;
            } else {
                ++version[static_cast<std::size_t>(p)];
                ++total;
            }
            next(p);
        });
    };
    const auto start = steady::now();
    for (int p = 0; p < n; ++p) next(p);
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    const auto counted = total.load();
    const double elapsed = std::chrono::duration<double>(steady::now() - start).count();
    {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return live == 0; });
    }
    batches = store.batches_committed();
    if (failures) std::exit(1);
    return static_cast<double>(counted) / elapsed;
}

constexpr const char* plain_table =
    "CREATE TABLE plain_events (position bigserial PRIMARY KEY, stream text NOT NULL, stream_version bigint NOT NULL,"
    " type text NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL, effective_at timestamptz NOT NULL,"
    " recorded_at timestamptz NOT NULL, prev_hash text NOT NULL, hash text NOT NULL, UNIQUE (stream, stream_version))";

const std::string fake_hash(64, 'a');

// A plain single-row INSERT per transaction (autocommit), `clients` connections.
double plain_insert(const std::string& url, int clients, double seconds) {
    std::atomic<std::int64_t> total{0};
    const auto deadline = steady::now() + std::chrono::duration<double>(seconds);
    const auto start = steady::now();
    std::vector<std::thread> ts;
    for (int c = 0; c < clients; ++c) {
        ts.emplace_back([&, c] {
            pqxx::connection conn(url);
            conn.prepare("ins", "INSERT INTO plain_events (stream, stream_version, type, data, metadata, effective_at,"
                                " recorded_at, prev_hash, hash) VALUES ($1, $2, 'account.charged', $3::jsonb, $4::jsonb,"
                                " now(), now(), $5, $5)");
            const auto stream = "plain-" + std::to_string(c);
            std::int64_t n = 0;
            while (steady::now() < deadline) {
                pqxx::work w(conn);
                w.exec_prepared("ins", stream, n + 1, boost::json::serialize(sample_data(n)),
                                R"({"actor": "bench"})", fake_hash);
                w.commit();
                ++n;
            }
            total += n;
        });
    }
    for (auto& t : ts) t.join();
    return static_cast<double>(total.load()) / std::chrono::duration<double>(steady::now() - start).count();
}

// 1,000-row batched INSERT (unnest arrays, one transaction each), one client: the practical ceiling.
double batched_insert(const std::string& url, double seconds) {
    pqxx::connection conn(url);
    conn.prepare("ins", "INSERT INTO plain_events (stream, stream_version, type, data, metadata, effective_at,"
                        " recorded_at, prev_hash, hash) SELECT 'batched', v, 'account.charged', d::jsonb,"
                        " '{\"actor\": \"bench\"}', now(), now(), $3, $3 FROM unnest($1::bigint[], $2::text[]) AS u(v, d)");
    const auto deadline = steady::now() + std::chrono::duration<double>(seconds);
    const auto start = steady::now();
    std::int64_t n = 0;
    while (steady::now() < deadline) {
        std::string versions = "{", datas = "{";
        for (int i = 0; i < 1000; ++i) {
            if (i) { versions += ','; datas += ','; }
            versions += std::to_string(n + i + 1);
            detail::append_array_element(datas, boost::json::serialize(sample_data(n + i)));
        }
        versions += '}';
        datas += '}';
        pqxx::work w(conn);
        w.exec_prepared("ins", versions, datas, fake_hash);
        w.commit();
        n += 1000;
    }
    return static_cast<double>(n) / std::chrono::duration<double>(steady::now() - start).count();
}

// The chain check's speed (target for `verify`, bench/README.md "Targets": >= 300,000 events/s)
// over everything the runs above appended plus bulk appends of 1,000-event requests up to
// `at_least` events.
double verify_speed(const std::string& url, std::int64_t at_least, std::int64_t& events) {
    {
        system_clock_source clk;
        event_store store(url, clk);
        std::int64_t have = head(url).position;
        std::int64_t i = 0;
        while (have < at_least) {
            append_request r;
            r.streams.push_back({"account-verify-" + std::to_string(i++), 0, {}});
            for (int k = 0; k < 1000; ++k) r.streams[0].events.push_back({"account.charged", sample_data(k), clk.now()});
            r.metadata = {{"actor", "bench"}};
            if (!store.append(std::move(r)).ok()) std::exit(1);
            have += 1000;
        }
    }
    const auto start = steady::now();
    const auto rep = verify_chain(url);
    const double elapsed = std::chrono::duration<double>(steady::now() - start).count();
    if (!rep.ok) {
        std::fprintf(stderr, "chain broken at %lld: %s\n", static_cast<long long>(*rep.bad_position), rep.reason.c_str());
        std::exit(1);
    }
    events = rep.events;
    return static_cast<double>(rep.events) / elapsed;
}

} // namespace

int main(int argc, char** argv) {
    std::string admin = std::getenv("MQLEDGER_TEST_DATABASE_URL") ? std::getenv("MQLEDGER_TEST_DATABASE_URL") : "";
    double seconds = 5;
    bool keep = false;  // leave bench_<pid> behind for inspection (mqledger verify, psql)
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--database-url") admin = argv[i + 1];
        else if (a == "--seconds") seconds = std::atof(argv[i + 1]);
        else if (a == "--keep-database") keep = std::string(argv[i + 1]) == "yes";
    }
    if (admin.empty()) {
        std::fprintf(stderr, "usage: bench_append --database-url ADMIN_URL [--seconds N]\n"
                             "  (or set MQLEDGER_TEST_DATABASE_URL, e.g. from deploy/pg.sh admin-url)\n");
        return 2;
    }
    const std::string db = "bench_" + std::to_string(::getpid());
    try {
        exec_on(admin, "CREATE DATABASE " + db + " TEMPLATE template0 ENCODING 'UTF8'");
        const auto url = with_database(admin, db);
        migrate(url);
        exec_on(url, plain_table);
        {
            pqxx::connection c(url);
            pqxx::nontransaction n(c);
            std::printf("synchronous_commit=%s fsync=%s, %g s per run\n",
                        n.exec("SHOW synchronous_commit")[0][0].c_str(), n.exec("SHOW fsync")[0][0].c_str(), seconds);
        }

        double gc[3] = {};
        const int producers[3] = {1, 8, 64};
        for (int i = 0; i < 3; ++i) {
            std::uint64_t batches = 0;
            gc[i] = group_commit(url, producers[i], seconds, batches);
            std::printf("group commit, %2d producers:          %9.0f events/s  (%llu batches)\n", producers[i], gc[i],
                        static_cast<unsigned long long>(batches));
            std::printf("result: append_%d %.6g\n", producers[i], gc[i]);
            std::fflush(stdout);
        }
        const double plain = plain_insert(url, 8, seconds);
        std::printf("plain single-row INSERT, 8 clients:  %9.0f rows/s\n", plain);
        std::printf("result: plain_insert_8 %.6g\n", plain);
        std::fflush(stdout);
        const double batched = batched_insert(url, seconds);
        std::printf("1,000-row batched INSERT, 1 client:  %9.0f rows/s\n", batched);
        std::printf("result: batched_insert_1000 %.6g\n", batched);
        std::printf("ratios: group commit 64 / plain INSERT 8 = %.1fx; group commit 64 / batched INSERT = %.2f;"
                    " group commit 8 / plain INSERT 8 = %.1fx\n",
                    gc[2] / plain, gc[2] / batched, gc[1] / plain);
        std::printf("target: >= 50,000 events/s with 64 producers: %s\n", gc[2] >= 50000 ? "met" : "NOT met");
        {
            std::uint64_t batches = 0;
            const double open = outstanding(url, 1024, seconds, batches);
            std::printf("open pipeline, 1024 outstanding:    %9.0f events/s  (%llu batches)\n", open,
                        static_cast<unsigned long long>(batches));
            std::printf("result: append_1024 %.6g\n", open);
        }
        std::int64_t verified = 0;
        const double vs = verify_speed(url, 200000, verified);
        std::printf("verify_chain: %lld events at %.0f events/s\n", static_cast<long long>(verified), vs);
        std::printf("result: verify_chain %.6g\n", vs);
        if (keep) std::printf("kept database %s\n", db.c_str());
        else exec_on(admin, "DROP DATABASE " + db + " WITH (FORCE)");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_append: %s\n", e.what());
        try { exec_on(admin, "DROP DATABASE IF EXISTS " + db + " WITH (FORCE)"); } catch (...) {}
        return 1;
    }
    return 0;
}
