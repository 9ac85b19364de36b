// bench_http: drives a RUNNING daemon over HTTP/1.1 keep-alive connections (Boost.Beast, one
// io_context on 1-2 threads, one coroutine per connection, no thread per connection).
//
//   bench_http --url http://127.0.0.1:PORT [--token T] [--connections 64] [--seconds 10]
//              [--warmup 2] [--threads 1] [--instances 1] [--accounts A] [--prefix ID]
//       Setup: funded accounts (default one per connection) and one payg Kafka instance per
//       connection, deployed. Measure: every connection sends `POST /v1/instances/{id}/topics`
//       with a new name back to back (closed loop: one request in flight per connection); each
//       is one event append. Prints commands/s, latency percentiles, non-2xx by status and the
//       target (>= 10,000/s at p99 <= 25 ms; bench/README.md "Targets"). --instances K gives
//       each connection K instances and spreads its topics over them round robin (fewer topics
//       per instance); --accounts 1 bills every instance to one account (commands then share
//       its lock).
//
//   bench_http --url ... --rate R [--duration S] [--report-every 10] [--connections 64] [--instances 1]
//       Open loop at a steady R requests/s (bench/soak.sh): the same set-up, then request n of
//       connection i is sent at t0 + (n * connections + i) / R, alternately
//       `POST /v1/instances/{id}/topics {"name": X}` and `DELETE /v1/instances/{id}/topics/X`,
//       so the instances do not grow however long it runs (the log does: one event each).
//       Latency is measured from the scheduled send time, so a stall also delays and counts the
//       requests queued behind it. Every --report-every seconds one line:
//         steady interval=I end_s=T answered=N ok=N ok_per_s=X p50_ms=X p99_ms=X max_ms=X non_2xx=N
//       then the whole run's figures. --duration defaults to --seconds.
//
//   bench_http --url ... --get /healthz
//       GET PATH instead of commands, no setup: the load generator's own ceiling on this machine.
//
//   bench_http --url ... --settlement N [--connections 64] [--accounts A]
//       For a daemon started with `--clock manual` (at a whole hour, e.g. --clock-start
//       2026-01-05T00:00:00Z): creates and deploys N payg Kafka instances (default one account
//       per 1,000 instances, instance k on account k mod A), then times one
//       `POST /v1/clock {"advance_seconds": 3600}` (it answers once every due timer fired: one
//       hourly settlement per instance) and counts the `instance.settled` events of these
//       instances in `GET /v1/events`. Target (bench/README.md "Targets"): <= 5 s for 100,000
//       instances.
//
// Ids start with --prefix (default bench-<pid>-<unix time>), so runs against the same database
// never collide. bench/run_http.sh starts a daemon on a scratch database and runs both modes.
// Not a test: it prints figures; bench/README.md records them. Exit status 1 on a setup error
// or a settlement count that does not match; a missed target alone is not an error.
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace json = boost::json;
using asio::awaitable;
using asio::use_awaitable;
using asio::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

struct options {
    std::string url;
    std::string token;
    int connections = 64;
    double seconds = 10;
    double warmup = 2;
    int threads = 1;
    int instances_per_connection = 1;   // --instances K: topics go round-robin over K instances
    long accounts = 0;                  // --accounts A; 0: one per connection, or per 1,000 for --settlement
    long settlement = 0;   // 0: throughput mode
    std::string get_path;  // --get PATH: GET PATH instead of commands, no setup (the generator's own ceiling)
    double rate = 0;          // --rate R: open loop at R requests/s (0: closed loop)
    double duration = 0;      // --duration S for --rate; 0: --seconds
    double report_every = 10; // --report-every S for --rate
    std::string prefix;
};

struct target {
    std::string host;      // for the Host header
    std::string port;
    std::vector<tcp::endpoint> endpoints;
    std::string token;
};

// "http://HOST:PORT[/]" → host, port. Only plain HTTP: the daemon serves no TLS.
target parse_url(const std::string& url) {
    const std::string scheme = "http://";
    if (url.rfind(scheme, 0) != 0) throw std::runtime_error("--url must start with http:// (got " + url + ")");
    std::string rest = url.substr(scheme.size());
    if (const auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
    target t;
    std::string host = rest, port = "80";
    if (!rest.empty() && rest.front() == '[') {   // [::1]:8080
        const auto close = rest.find(']');
        if (close == std::string::npos) throw std::runtime_error("bad --url " + url);
        host = rest.substr(1, close - 1);
        if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
    } else if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    if (host.empty() || port.empty()) throw std::runtime_error("bad --url " + url);
    t.host = rest;
    t.port = port;
    asio::io_context ioc;
    tcp::resolver resolver(ioc);
    for (const auto& e : resolver.resolve(host, port)) t.endpoints.push_back(e.endpoint());
    if (t.endpoints.empty()) throw std::runtime_error("cannot resolve " + host);
    return t;
}

struct reply {
    unsigned status = 0;
    std::string body;
};

[[noreturn]] void fail(const std::string& what, const reply& r) {
    throw std::runtime_error(what + ": HTTP " + std::to_string(r.status) + " " + r.body.substr(0, 500));
}

json::value parse_body(const std::string& what, const reply& r) {
    boost::system::error_code ec;
    auto v = json::parse(r.body, ec);
    if (ec) fail(what + ": response is not JSON", r);
    return v;
}

std::string string_at(const json::value& v, const char* key) {
    if (const auto* o = v.if_object())
        if (const auto* s = o->if_contains(key); s && s->is_string()) return std::string(s->get_string());
    return {};
}

std::int64_t int_at(const json::value& v, const char* key, std::int64_t otherwise = -1) {
    if (const auto* o = v.if_object())
        if (const auto* n = o->if_contains(key); n && n->is_number()) return n->to_number<std::int64_t>();
    return otherwise;
}

// One keep-alive HTTP/1.1 connection, used by one coroutine at a time. Reconnects on the next
// call after an error or a `Connection: close`.
class client {
public:
    client(asio::any_io_executor ex, const target& t) : stream_(std::move(ex)), t_(t) {}

    awaitable<reply> call(bhttp::verb verb, const std::string& path, std::string body,
                          std::chrono::seconds timeout = std::chrono::seconds(30)) {
        try {
            if (!open_) {
                stream_.expires_after(std::chrono::seconds(10));
                co_await stream_.async_connect(t_.endpoints, use_awaitable);
                stream_.socket().set_option(tcp::no_delay(true));
                open_ = true;
            }
            bhttp::request<bhttp::string_body> req{verb, path, 11};
            req.set(bhttp::field::host, t_.host);
            req.set(bhttp::field::user_agent, "mqledger-bench_http");
            req.keep_alive(true);
            if (!t_.token.empty()) req.set(bhttp::field::authorization, "Bearer " + t_.token);
            if (verb == bhttp::verb::post) {
                req.set(bhttp::field::content_type, "application/json");
                req.body() = std::move(body);
            }
            req.prepare_payload();
            stream_.expires_after(timeout);
            co_await bhttp::async_write(stream_, req, use_awaitable);
            bhttp::response_parser<bhttp::string_body> parser;
            parser.body_limit(256u << 20);   // event pages
            co_await bhttp::async_read(stream_, buffer_, parser, use_awaitable);
            stream_.expires_never();
            auto& res = parser.get();
            reply out{res.result_int(), std::move(res.body())};
            if (!res.keep_alive()) close();
            co_return out;
        } catch (const boost::system::system_error& e) {
            close();
            throw std::runtime_error(std::string(bhttp::to_string(verb)) + " " + path + ": " + e.code().message());
        } catch (...) {
            close();
            throw;
        }
    }

    void close() {
        beast::error_code ignored;
        stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream_.socket().close(ignored);
        buffer_.clear();
        open_ = false;
    }

private:
    beast::tcp_stream stream_;
    beast::flat_buffer buffer_;
    const target& t_;
    bool open_ = false;
};

// Set when a coroutine of the current run_on_connections failed: the others stop at their next
// request instead of going on (each finishes the request it has in flight).
std::atomic<bool> failed{false};

// Runs `body(connection_index, client)` on `connections` coroutines over one io_context on
// `threads` threads; rethrows the first exception once all have finished.
template <class Body>
void run_on_connections(const target& t, int connections, int threads, Body body) {
    asio::io_context ioc(threads);
    std::vector<std::unique_ptr<client>> clients;
    std::mutex m;
    std::exception_ptr first;
    failed = false;
    for (int i = 0; i < connections; ++i) {
        clients.push_back(std::make_unique<client>(ioc.get_executor(), t));
        asio::co_spawn(ioc, body(i, *clients.back()), [&](std::exception_ptr e) {
            if (!e) return;
            failed = true;
            std::lock_guard lock(m);
            if (!first) first = e;
        });
    }
    std::vector<std::thread> pool;
    for (int i = 1; i < threads; ++i) pool.emplace_back([&] { ioc.run(); });
    ioc.run();
    for (auto& th : pool) th.join();
    if (first) std::rethrow_exception(first);
}

constexpr long settlement_instances_per_account = 1000;
constexpr std::int64_t account_funds = 1'000'000'000;   // 120 minor units/h × 1,000 instances: 8,000+ hours

std::string account_id(const options& o, long k) { return o.prefix + "-a" + std::to_string(k); }
std::string instance_id(const options& o, long k) { return o.prefix + "-i" + std::to_string(k); }

// Request bodies are built outside the coroutines: GCC 12 rejects braced JSON initialisers
// (arrays of string literals) inside a coroutine body ("array used as initializer").
std::string account_body(const std::string& id) {
    return json::serialize(json::object{{"account_id", id}, {"currency", "CNY"}});
}
std::string topic_body(const std::string& name) { return json::serialize(json::object{{"name", name}}); }
std::string funds_body() { return json::serialize(json::object{{"amount", account_funds}, {"reference", "bench"}}); }
std::string instance_body(const options& o, long k, long accounts) {
    return json::serialize(json::object{{"instance_id", instance_id(o, k)},
                                        {"account_id", account_id(o, k % accounts)},
                                        {"product", "kafka"},
                                        {"billing", "payg"},
                                        {"timezone", "Asia/Shanghai"},
                                        {"price", {{"hourly", 120}}}});
}

// Creates and funds `accounts` accounts, then creates n payg Kafka instances (instance k billed
// to account k mod accounts, so that concurrent purchases mostly touch different accounts) and
// deploys those not already running, over all connections in parallel. Returns the seconds taken.
double set_up(const target& t, const options& o, long n, long accounts) {
    const auto start = steady::now();
    std::atomic<long> next{0};
    run_on_connections(t, o.connections, o.threads, [&](int, client& c) -> awaitable<void> {
        for (long k = next++; k < accounts && !failed; k = next++) {
            const auto id = account_id(o, k);
            auto r = co_await c.call(bhttp::verb::post, "/v1/accounts", account_body(id));
            if (r.status != 201) fail("POST /v1/accounts " + id, r);
            r = co_await c.call(bhttp::verb::post, "/v1/accounts/" + id + "/funds",
                                funds_body());
            if (r.status != 200) fail("POST /v1/accounts/" + id + "/funds", r);
        }
    });
    next = 0;
    std::atomic<long> done{0};
    const bool progress = n >= 10000;
    run_on_connections(t, o.connections, o.threads, [&](int, client& c) -> awaitable<void> {
        for (long k = next++; k < n && !failed; k = next++) {
            const auto id = instance_id(o, k);
            auto r = co_await c.call(bhttp::verb::post, "/v1/instances", instance_body(o, k, accounts));
            if (r.status != 201) fail("POST /v1/instances " + id, r);
            if (string_at(parse_body("POST /v1/instances " + id, r), "state") != "running") {
                const auto path = "/v1/instances/" + id + "/actions/deploy";
                r = co_await c.call(bhttp::verb::post, path, "{}");
                if (r.status != 200) fail("POST " + path, r);
                const auto state = string_at(parse_body("POST " + path, r), "state");
                if (state != "running") fail("POST " + path + ": state is \"" + state + "\", not running", r);
            }
            const long d = ++done;
            if (progress && d % 10000 == 0) {
                std::printf("  %ld instances ready (%.0f s)\n", d,
                            std::chrono::duration<double>(steady::now() - start).count());
                std::fflush(stdout);
            }
        }
    });
    return std::chrono::duration<double>(steady::now() - start).count();
}

struct conn_stats {
    std::vector<std::uint32_t> latency_us;   // requests completed inside the window
    std::map<unsigned, std::uint64_t> non_2xx;  // status → count; 0 = transport error
    std::uint64_t ok = 0;
    std::uint64_t sent = 0;
    std::vector<std::uint32_t> ok_per_second;  // 2xx answers completed in each second of the window
};

double percentile(const std::vector<std::uint32_t>& sorted, double q) {
    if (sorted.empty()) return 0;
    const auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(sorted.size())));
    return sorted[std::min(sorted.size() - 1, rank == 0 ? 0 : rank - 1)] / 1000.0;
}

int throughput(const target& t, const options& o) {
    const bool commands = o.get_path.empty();
    if (commands) {
        std::printf("setup: %d payg Kafka instance(s) per connection...\n", o.instances_per_connection);
        std::fflush(stdout);
        const long instances = static_cast<long>(o.connections) * o.instances_per_connection;
        const long accounts = std::min(instances, o.accounts > 0 ? o.accounts : o.connections);
        const double setup_s = set_up(t, o, instances, accounts);
        std::printf("setup: %ld payg Kafka instances on %ld account(s) created and running in %.1f s\n", instances,
                    accounts, setup_s);
    }
    std::printf("measure: %d connections (closed loop), %g s warm-up, %g s measured, %d client thread(s)\n",
                o.connections, o.warmup, o.seconds, o.threads);
    std::fflush(stdout);

    std::vector<conn_stats> stats(static_cast<std::size_t>(o.connections));
    const auto t0 = steady::now() + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.warmup));
    const auto t1 = t0 + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(o.seconds));
    run_on_connections(t, o.connections, o.threads, [&](int i, client& c) -> awaitable<void> {
        auto& s = stats[static_cast<std::size_t>(i)];
        s.latency_us.reserve(static_cast<std::size_t>(o.seconds * 1000));
        s.ok_per_second.assign(static_cast<std::size_t>(std::ceil(o.seconds)), 0);
        std::vector<std::string> paths;   // this connection's instances: i, i + connections, ...
        for (int k = 0; k < o.instances_per_connection; ++k)
            paths.push_back(commands ? "/v1/instances/" + instance_id(o, i + static_cast<long>(k) * o.connections) + "/topics"
                                     : o.get_path);
        for (std::uint64_t n = 0; steady::now() < t1; ++n) {
            const auto& path = paths[n % paths.size()];
            const auto begin = steady::now();
            unsigned status = 0;
            try {
                status = commands ? (co_await c.call(bhttp::verb::post, path, R"({"name":"t-)" + std::to_string(n) + "\"}")).status
                                  : (co_await c.call(bhttp::verb::get, path, "")).status;
            } catch (const std::exception&) {
                status = 0;   // transport error or timeout: counted; the next call reconnects
            }
            const auto end = steady::now();
            if (status == 0) {   // do not spin on a refused connection
                asio::steady_timer pause(co_await asio::this_coro::executor, std::chrono::milliseconds(10));
                co_await pause.async_wait(use_awaitable);
            }
            if (end < t0 || end >= t1) continue;
            ++s.sent;
            s.latency_us.push_back(static_cast<std::uint32_t>(
                std::chrono::duration_cast<std::chrono::microseconds>(end - begin).count()));
            if (status >= 200 && status < 300) {
                ++s.ok;
                ++s.ok_per_second[std::min(s.ok_per_second.size() - 1,
                                           static_cast<std::size_t>(std::chrono::duration<double>(end - t0).count()))];
            } else {
                ++s.non_2xx[status];
            }
        }
    });

    std::vector<std::uint32_t> all;
    std::map<unsigned, std::uint64_t> non_2xx;
    std::uint64_t ok = 0, sent = 0;
    std::vector<std::uint64_t> per_second(static_cast<std::size_t>(std::ceil(o.seconds)), 0);
    for (auto& s : stats) {
        for (std::size_t k = 0; k < per_second.size(); ++k) per_second[k] += s.ok_per_second[k];
        all.insert(all.end(), s.latency_us.begin(), s.latency_us.end());
        for (const auto& [k, v] : s.non_2xx) non_2xx[k] += v;
        ok += s.ok;
        sent += s.sent;
    }
    std::sort(all.begin(), all.end());
    const double rate = static_cast<double>(ok) / o.seconds;
    const double p99 = percentile(all, 0.99);
    if (commands)
        std::printf("commands (POST /v1/instances/{id}/topics, one event each), %d connections, %d instance(s) each:\n",
                    o.connections, o.instances_per_connection);
    else
        std::printf("GET %s (not a command: the load generator's own ceiling), %d connections:\n", o.get_path.c_str(),
                    o.connections);
    std::printf("  %9.0f %s/s (2xx)  %llu answered in %g s, %llu 2xx\n", rate, commands ? "commands" : "requests",
                static_cast<unsigned long long>(sent), o.seconds, static_cast<unsigned long long>(ok));
    std::printf("  latency ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f  (all answers in the window)\n",
                percentile(all, 0.50), percentile(all, 0.90), p99, all.empty() ? 0.0 : all.back() / 1000.0);
    std::printf("  2xx per second of the window:");
    for (const auto v : per_second) std::printf(" %llu", static_cast<unsigned long long>(v));
    std::printf("%s\n", commands ? "  (every command adds a topic to its instance)" : "");
    if (non_2xx.empty()) {
        std::printf("  non-2xx: none\n");
    } else {
        std::printf("  non-2xx:");
        for (const auto& [k, v] : non_2xx)
            std::printf(" %s=%llu", k == 0 ? "transport-error" : std::to_string(k).c_str(),
                        static_cast<unsigned long long>(v));
        std::printf("\n");
    }
    if (!commands) return 0;
    const bool pass = rate >= 10000 && p99 <= 25 && non_2xx.empty();
    std::printf("target (bench/README.md Targets): >= 10,000 commands/s with 64 connections at p99 <= 25 ms: %s"
                " (%.0f/s = %.0f%% of the rate; p99 %.1f ms)\n",
                pass ? "PASS" : "SHORT", rate, rate / 100.0, p99);
    return 0;
}

// Latencies and answers of the requests that completed inside one reporting interval.
struct interval_stats {
    std::vector<std::uint32_t> latency_us;
    std::uint64_t ok = 0;
    std::map<unsigned, std::uint64_t> non_2xx;   // status → count; 0 = transport error
};

std::uint64_t count_of(const std::map<unsigned, std::uint64_t>& m) {
    std::uint64_t n = 0;
    for (const auto& [k, v] : m) n += v;
    return n;
}

void print_non_2xx(const std::map<unsigned, std::uint64_t>& m) {
    for (const auto& [k, v] : m)
        std::printf(" %s=%llu", k == 0 ? "transport-error" : std::to_string(k).c_str(), static_cast<unsigned long long>(v));
}

// --rate: a steady open-loop load (see the header). Each connection keeps its own schedule; a
// reporter coroutine prints each interval once it is over.
int steady_rate(const target& t, const options& o) {
    std::printf("setup: %d payg Kafka instance(s) per connection...\n", o.instances_per_connection);
    std::fflush(stdout);
    const long instances = static_cast<long>(o.connections) * o.instances_per_connection;
    const long accounts = std::min(instances, o.accounts > 0 ? o.accounts : o.connections);
    const double setup_s = set_up(t, o, instances, accounts);
    const double duration = o.duration > 0 ? o.duration : o.seconds;
    const auto intervals = static_cast<std::size_t>(std::ceil(duration / o.report_every));
    std::printf("setup: %ld payg Kafka instances on %ld account(s) created and running in %.1f s\n", instances,
                accounts, setup_s);
    std::printf("steady: %g requests/s over %d connections for %g s (open loop; latency from the scheduled send "
                "time), topic create/delete pairs, a report every %g s\n",
                o.rate, o.connections, duration, o.report_every);
    std::fflush(stdout);

    auto secs = [](double s) { return std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(s)); };
    std::vector<interval_stats> buckets(intervals);
    std::mutex m;
    const auto t0 = steady::now() + std::chrono::milliseconds(200);
    const auto t1 = t0 + secs(duration);
    const double every = o.report_every;
    auto record = [&](steady::time_point due, steady::time_point end, unsigned status) {
        const auto idx = std::min(intervals - 1, static_cast<std::size_t>(std::max(
                                                     0.0, std::chrono::duration<double>(end - t0).count() / every)));
        const auto us = std::chrono::duration_cast<std::chrono::microseconds>(end - due).count();
        std::lock_guard lock(m);
        auto& b = buckets[idx];
        b.latency_us.push_back(static_cast<std::uint32_t>(std::min<std::int64_t>(us, UINT32_MAX)));
        if (status >= 200 && status < 300) ++b.ok;
        else ++b.non_2xx[status];
    };
    auto report = [&](std::size_t j) {
        std::lock_guard lock(m);
        auto& b = buckets[j];
        std::sort(b.latency_us.begin(), b.latency_us.end());
        const double span = std::min(every, duration - static_cast<double>(j) * every);
        std::printf("steady interval=%zu end_s=%.0f answered=%zu ok=%llu ok_per_s=%.1f p50_ms=%.2f p99_ms=%.2f "
                    "max_ms=%.2f non_2xx=%llu\n",
                    j, static_cast<double>(j) * every + span, b.latency_us.size(), static_cast<unsigned long long>(b.ok),
                    static_cast<double>(b.ok) / span, percentile(b.latency_us, 0.50), percentile(b.latency_us, 0.99),
                    b.latency_us.empty() ? 0.0 : b.latency_us.back() / 1000.0,
                    static_cast<unsigned long long>(count_of(b.non_2xx)));
        std::fflush(stdout);
    };

    // Named, and alive until ioc.run() returns: a coroutine lambda's captures live in the lambda
    // object, not in the coroutine frame (only parameters are copied there).
    auto connection = [&](int i, client& c) -> awaitable<void> {
        asio::steady_timer wait(co_await asio::this_coro::executor);
        for (std::uint64_t n = 0;; ++n) {
            const auto due = t0 + secs(static_cast<double>(n * static_cast<std::uint64_t>(o.connections) +
                                                           static_cast<std::uint64_t>(i)) / o.rate);
            if (due >= t1) break;
            if (steady::now() < due) {
                wait.expires_at(due);
                co_await wait.async_wait(use_awaitable);
            }
            // Pair n/2 creates a topic and then deletes it, on the connection's instances in turn.
            const auto pair = n / 2;
            const auto id = instance_id(o, i + static_cast<long>(pair % static_cast<std::uint64_t>(
                                                   o.instances_per_connection)) * o.connections);
            const auto name = "s-" + std::to_string(pair);
            unsigned status = 0;
            try {
                if (n % 2 == 0)
                    status = (co_await c.call(bhttp::verb::post, "/v1/instances/" + id + "/topics",
                                              topic_body(name))).status;
                else
                    status = (co_await c.call(bhttp::verb::delete_, "/v1/instances/" + id + "/topics/" + name,
                                              "")).status;
            } catch (const std::exception&) {
                status = 0;   // transport error or timeout: counted; the next call reconnects
            }
            record(due, steady::now(), status);
        }
    };
    auto reporter = [&]() -> awaitable<void> {
        asio::steady_timer wait(co_await asio::this_coro::executor);
        for (std::size_t j = 0; j < intervals; ++j) {
            // A little after the interval's end: every request that completed in it is counted.
            wait.expires_at(std::min(t0 + secs(static_cast<double>(j + 1) * every), t1) + std::chrono::milliseconds(100));
            co_await wait.async_wait(use_awaitable);
            report(j);
        }
    };
    asio::io_context ioc(o.threads);
    std::vector<std::unique_ptr<client>> clients;
    std::exception_ptr first;
    for (int i = 0; i < o.connections; ++i) {
        clients.push_back(std::make_unique<client>(ioc.get_executor(), t));
        asio::co_spawn(ioc, connection(i, *clients.back()), [&](std::exception_ptr e) {
            std::lock_guard lock(m);
            if (e && !first) first = e;
        });
    }
    asio::co_spawn(ioc, reporter(), asio::detached);
    std::vector<std::thread> pool;
    for (int i = 1; i < o.threads; ++i) pool.emplace_back([&] { ioc.run(); });
    ioc.run();
    for (auto& th : pool) th.join();
    if (first) std::rethrow_exception(first);

    std::vector<std::uint32_t> all;
    std::map<unsigned, std::uint64_t> non_2xx;
    std::uint64_t ok = 0;
    for (const auto& b : buckets) {
        all.insert(all.end(), b.latency_us.begin(), b.latency_us.end());
        ok += b.ok;
        for (const auto& [k, v] : b.non_2xx) non_2xx[k] += v;
    }
    std::sort(all.begin(), all.end());
    std::printf("steady total: %zu answered in %g s, %llu 2xx (%.1f/s of %g/s asked), latency ms p50 %.2f p99 %.2f "
                "max %.2f, non-2xx %llu",
                all.size(), duration, static_cast<unsigned long long>(ok), static_cast<double>(ok) / duration, o.rate,
                percentile(all, 0.50), percentile(all, 0.99), all.empty() ? 0.0 : all.back() / 1000.0,
                static_cast<unsigned long long>(count_of(non_2xx)));
    print_non_2xx(non_2xx);
    std::printf("\n");
    return 0;
}

int settlement(const target& t, const options& o) {
    const long n = o.settlement;
    {   // The clock routes exist only with --clock manual.
        int status = 0;
        std::string now;
        run_on_connections(t, 1, 1, [&](int, client& c) -> awaitable<void> {
            const auto r = co_await c.call(bhttp::verb::get, "/v1/clock", "");
            status = static_cast<int>(r.status);
            if (r.status == 200) now = string_at(parse_body("GET /v1/clock", r), "now");
        });
        if (status != 200)
            throw std::runtime_error("GET /v1/clock answered " + std::to_string(status) +
                                     ": start the daemon with --clock manual --clock-start TIME");
        std::printf("daemon clock (manual): %s\n", now.c_str());
    }
    const long accounts =
        std::min(n, o.accounts > 0 ? o.accounts : (n + settlement_instances_per_account - 1) / settlement_instances_per_account);
    std::printf("setup: %ld payg Kafka instances (hourly 120) over %d connections, %ld account(s)...\n", n,
                o.connections, accounts);
    std::fflush(stdout);
    const double setup_s = set_up(t, o, n, accounts);
    std::printf("setup: %ld instances created and deployed in %.1f s (%.0f instances/s, 2 commands each)\n", n,
                setup_s, static_cast<double>(n) / setup_s);
    std::fflush(stdout);

    std::int64_t head_before = -1, fired = -1, settled = 0, other = 0, pages = 0;
    std::string next_settlement, now_after;
    double seconds = 0, count_s = 0;
    run_on_connections(t, 1, 1, [&](int, client& c) -> awaitable<void> {
        auto r = co_await c.call(bhttp::verb::get, "/v1/instances/" + instance_id(o, 0), "");
        if (r.status != 200) fail("GET /v1/instances/" + instance_id(o, 0), r);
        const auto instance = parse_body("GET instance", r);
        if (const auto* d = instance.as_object().if_contains("deadlines")) next_settlement = string_at(*d, "next_settlement_at");
        r = co_await c.call(bhttp::verb::get, "/v1/ledger/head", "");
        if (r.status != 200) fail("GET /v1/ledger/head", r);
        head_before = int_at(parse_body("GET /v1/ledger/head", r), "position");

        const auto start = steady::now();
        r = co_await c.call(bhttp::verb::post, "/v1/clock", R"({"advance_seconds":3600})", std::chrono::seconds(3600));
        seconds = std::chrono::duration<double>(steady::now() - start).count();
        if (r.status != 200) fail("POST /v1/clock", r);
        const auto body = parse_body("POST /v1/clock", r);
        fired = int_at(body, "fired");
        now_after = string_at(body, "now");

        // Count this run's settlements in the feed written by the advance.
        const auto count_start = steady::now();
        const std::string mine = "instance-" + o.prefix + "-i";
        for (std::int64_t after = head_before;;) {
            r = co_await c.call(bhttp::verb::get, "/v1/events?after=" + std::to_string(after) + "&limit=5000", "");
            if (r.status != 200) fail("GET /v1/events", r);
            const auto page = parse_body("GET /v1/events", r);
            const auto* items = page.as_object().if_contains("items");
            if (!items || !items->is_array() || items->as_array().empty()) break;
            ++pages;
            for (const auto& e : items->as_array()) {
                after = std::max(after, int_at(e, "position"));
                if (string_at(e, "type") == "instance.settled" && string_at(e, "stream").rfind(mine, 0) == 0) ++settled;
                else ++other;
            }
        }
        count_s = std::chrono::duration<double>(steady::now() - count_start).count();
    });
    std::printf("first instance's next_settlement_at before the advance: %s\n",
                next_settlement.empty() ? "(none)" : next_settlement.c_str());
    std::printf("POST /v1/clock {\"advance_seconds\": 3600}: %.2f s, fired %lld, clock now %s\n", seconds,
                static_cast<long long>(fired), now_after.c_str());
    std::printf("events after position %lld: %lld instance.settled of these %ld instances, %lld other"
                " (%lld pages read in %.1f s)\n",
                static_cast<long long>(head_before), static_cast<long long>(settled), n,
                static_cast<long long>(other), static_cast<long long>(pages), count_s);
    const bool complete = settled == n;
    if (!complete) std::printf("MISMATCH: %lld settlements for %ld instances\n", static_cast<long long>(settled), n);
    char extrapolated[96];
    std::snprintf(extrapolated, sizeof extrapolated, ", linear extrapolation to 100,000: %.1f s",
                  seconds * 100000.0 / static_cast<double>(n));
    std::printf("target (bench/README.md Targets): hourly settlement of 100,000 payg instances <= 5 s: %s (%.2f s for %ld, %.0f"
                " settlements/s%s)\n",
                n < 100000 ? "n/a, N < 100,000" : (seconds <= 5 && complete ? "PASS" : "SHORT"), seconds, n,
                static_cast<double>(settled) / seconds,
                n < 100000 ? extrapolated : "");
    return complete ? 0 : 1;
}

void usage() {
    std::fprintf(stderr,
                 "usage: bench_http --url http://127.0.0.1:PORT [--token T] [--connections 64] [--seconds 10]\n"
                 "                  [--warmup 2] [--threads 1] [--instances 1] [--accounts A]\n"
                 "                  [--prefix ID] [--settlement N | --get PATH |\n"
                 "                   --rate R [--duration S] [--report-every S]]\n");
}

} // namespace

int main(int argc, char** argv) {
    options o;
    o.prefix = "bench-" + std::to_string(::getpid()) + "-" +
               std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                                  std::chrono::system_clock::now().time_since_epoch()).count());
    if (const char* tok = std::getenv("MQLEDGER_TOKEN")) o.token = tok;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--help" || a == "-h") { usage(); return 0; }
        if (i + 1 >= argc) { usage(); return 2; }
        const std::string v = argv[++i];
        if (a == "--url") o.url = v;
        else if (a == "--token") o.token = v;
        else if (a == "--connections") o.connections = std::atoi(v.c_str());
        else if (a == "--seconds") o.seconds = std::atof(v.c_str());
        else if (a == "--warmup") o.warmup = std::atof(v.c_str());
        else if (a == "--threads") o.threads = std::atoi(v.c_str());
        else if (a == "--instances") o.instances_per_connection = std::atoi(v.c_str());
        else if (a == "--accounts") o.accounts = std::atol(v.c_str());
        else if (a == "--settlement") o.settlement = std::atol(v.c_str());
        else if (a == "--prefix") o.prefix = v;
        else if (a == "--get") o.get_path = v;
        else if (a == "--rate") o.rate = std::atof(v.c_str());
        else if (a == "--duration") o.duration = std::atof(v.c_str());
        else if (a == "--report-every") o.report_every = std::atof(v.c_str());
        else { usage(); return 2; }
    }
    if (o.url.empty() || o.connections < 1 || o.seconds <= 0 || o.warmup < 0 || o.threads < 1 || o.settlement < 0 ||
        o.instances_per_connection < 1 || o.accounts < 0 || o.rate < 0 || o.duration < 0 || o.report_every <= 0 ||
        (o.rate > 0 && (o.settlement > 0 || !o.get_path.empty()))) {
        usage();
        return 2;
    }
    try {
        const auto t = [&] { auto x = parse_url(o.url); x.token = o.token; return x; }();
        std::printf("bench_http: %s (%s), prefix %s\n", o.url.c_str(),
                    t.endpoints.front().address().to_string().c_str(), o.prefix.c_str());
        std::fflush(stdout);
        if (o.rate > 0) return steady_rate(t, o);
        return o.settlement > 0 ? settlement(t, o) : throughput(t, o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_http: %s\n", e.what());
        return 1;
    }
}
