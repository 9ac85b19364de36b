// Helpers shared by the benchmarks that run a real `mqledger serve` as a child process
// (bench_timers, bench_instances): scratch databases, a minimal blocking HTTP/1.1 GET over
// loopback, the child's resident memory from /proc, and the machine-readable result lines that
// bench/run collects. Header-only (bench/CMakeLists.txt makes one executable per bench/*.cpp).
#pragma once

#include "daemon/engine.h"

#include "ledger/codec.h"
#include "ledger/decide.h"
#include "ledger/memory_view.h"
#include "ledger/unit.h"
#include "ledger/events.h"
#include "ledger/store/event_store.h"

#include <pqxx/pqxx>

#include <arpa/inet.h>
#include <csignal>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace mqledger::bench {

inline double since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

inline void exec_on(const std::string& url, const std::string& sql) {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    tx.exec(sql);
}

/// `result: NAME VALUE`: one figure per line for bench/run (the human lines stay as they are).
inline void result(const char* name, double value) {
    std::printf("result: %s %.10g\n", name, value);
    std::fflush(stdout);
}

/// Decides commands as units of work (ledger/unit.h) against an in-memory view, as the daemon
/// decides them against its projections, and appends each exactly as the engine does
/// (`append_of`: the unit record in its metadata, so `verify` can replay it), with at most
/// `in_flight` appends outstanding. With `keep_instances` false only accounts are kept in the
/// view (for populating millions of independent instances in little memory).
class unit_writer {
public:
    unit_writer(store::event_store& st, const policy_set& policies, std::size_t in_flight, bool keep_instances = true)
        : st_(st), policies_(policies), in_flight_(in_flight), keep_instances_(keep_instances) {}
    ~unit_writer() { drain(); }
    unit_writer(const unit_writer&) = delete;
    unit_writer& operator=(const unit_writer&) = delete;

    /// Decides `c` at `at` and queues its append; exits the process on a refusal (a bench bug).
    void run(const unit_command& c, time_point at) {
        const auto o = decide_unit(view, c, at, policies_);
        if (!o.ok()) {
            std::fprintf(stderr, "refused: %s\n", o.refused->message.c_str());
            std::exit(1);
        }
        if (o.events.empty()) return;
        events_ += static_cast<std::int64_t>(o.events.size());
        pending_.push_back(st_.append_async(append_of(o, c, at, request_meta{"bench", {}, {}, {}, {}}, policies_.version())));
        if (keep_instances_) {
            view.absorb(o, policies_);
        } else {
            for (const auto& [id, a] : o.accounts) view.put(id, a);
        }
        if (pending_.size() >= in_flight_) drain();
    }
    /// Waits for every queued append; throws when one failed.
    void drain() {
        for (auto& f : pending_)
            if (const auto r = f.get(); !r.ok()) throw std::runtime_error("append failed: " + r.message);
        pending_.clear();
    }
    [[nodiscard]] std::int64_t events() const noexcept { return events_; }

    memory_view view;

private:
    store::event_store& st_;
    const policy_set& policies_;
    std::size_t in_flight_;
    bool keep_instances_;
    std::vector<std::future<store::append_result>> pending_;
    std::int64_t events_ = 0;
};

/// Writes `n` running Kafka subscriptions as real decided import units through `st` (accounts
/// `acc-K` of 1,000 instances each, ids `ID_PREFIX-i`, running since `now - running_for`,
/// expiring at `expires_at(i)`), with at most `in_flight` appends outstanding. Returns the
/// number of events written; throws when an append fails.
template <class ExpiresAt>
std::int64_t import_subscriptions(store::event_store& st, const policy_registry& policies, time_point now, long n,
                                  const std::string& id_prefix, duration running_for, ExpiresAt expires_at,
                                  std::size_t in_flight) {
    constexpr long per_account = 1000;
    unit_writer w(st, policies.current(), in_flight, false);
    for (long i = 0; i < n; ++i) {
        const std::string acc = "acc-" + std::to_string(i / per_account);
        if (i % per_account == 0) w.run(account_command{acc, commands::open_account{"CNY"}}, now);
        const std::string id = id_prefix + "-" + std::to_string(i);
        commands::import_instance c;
        c.details.instance_id = id;
        c.details.account_id = acc;
        c.details.prod = product::kafka;
        c.details.bill = billing::subscription;
        c.details.timezone = "Asia/Shanghai";
        c.details.rate = price{price::unit::monthly, 30000};
        c.details.term_months = 1;
        c.details.auto_renew = auto_renew_setting{false, 7};
        c.in_state = state::running;
        c.state_since = now - running_for;
        c.expires_at = expires_at(i);
        w.run(instance_command{id, c}, now);
    }
    w.drain();
    return w.events();
}

/// Status code and body of `GET path` on 127.0.0.1:port; 0 when the connection failed.
inline int http_get(int port, const std::string& path, std::string* body = nullptr, int timeout_ms = 10000) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return 0;
    }
    const std::string req = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) {
        ::close(fd);
        return 0;
    }
    std::string all;
    char buf[65536];
    for (;;) {
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        all.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    if (all.rfind("HTTP/1.", 0) != 0 || all.size() < 12) return 0;
    if (body) {
        const auto p = all.find("\r\n\r\n");
        *body = p == std::string::npos ? std::string() : all.substr(p + 4);
        // The daemon answers /metrics with a length; a chunked body would need decoding.
    }
    return std::atoi(all.c_str() + 9);
}

/// A `/proc/PID/status` field in kB (VmRSS, VmHWM), or -1.
inline long proc_kb(pid_t pid, const char* field) {
    std::FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/status").c_str(), "r");
    if (!f) return -1;
    char line[256];
    long v = -1;
    const auto len = std::strlen(field);
    while (std::fgets(line, sizeof line, f))
        if (std::strncmp(line, field, len) == 0 && line[len] == ':') v = std::atol(line + len + 1);
    std::fclose(f);
    return v;
}

/// `mqledger serve` as a child process (stdout and stderr to `log`), stopped by the destructor.
class daemon_process {
public:
    daemon_process(const std::string& binary, const std::string& url, int port, const std::string& log,
                   const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args{binary, "serve", "--listen", "127.0.0.1:" + std::to_string(port),
                                      "--database-url", url, "--insecure-no-auth"};
        args.insert(args.end(), extra.begin(), extra.end());
        std::fflush(nullptr);
        pid_ = ::fork();
        if (pid_ == 0) {
            const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
            if (out >= 0) {
                ::dup2(out, STDOUT_FILENO);
                ::dup2(out, STDERR_FILENO);
            }
            std::vector<char*> argv;
            for (auto& s : args) argv.push_back(s.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            ::_exit(127);
        }
        if (pid_ < 0) throw std::runtime_error("fork failed");
    }
    ~daemon_process() { stop(); }
    daemon_process(const daemon_process&) = delete;
    daemon_process& operator=(const daemon_process&) = delete;

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] bool alive() {
        if (pid_ <= 0) return false;
        int st = 0;
        if (::waitpid(pid_, &st, WNOHANG) == pid_) {
            pid_ = -1;
            return false;
        }
        return true;
    }
    /// SIGTERM, then SIGKILL after 15 s.
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        for (int i = 0; i < 1500; ++i) {
            int st = 0;
            if (::waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, nullptr, 0);
        pid_ = -1;
    }

private:
    pid_t pid_ = -1;
};

/// Seconds until GET /readyz answers 200 (polled every 2 ms), or nothing after `limit_s` or
/// when the daemon exits.
inline std::optional<double> wait_ready(daemon_process& d, int port, double limit_s,
                                        std::chrono::steady_clock::time_point t0) {
    while (since(t0) < limit_s) {
        if (http_get(port, "/readyz", nullptr, 2000) == 200) return since(t0);
        if (!d.alive()) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return std::nullopt;
}

inline bool port_free(int port) { return http_get(port, "/healthz", nullptr, 500) == 0; }

/// Arguments `--key value` into the variable named by the key; unknown keys are an error.
inline std::optional<std::string> arg_of(int argc, char** argv, const std::string& key) {
    for (int i = 1; i + 1 < argc; ++i)
        if (argv[i] == key) return std::string(argv[i + 1]);
    return std::nullopt;
}

} // namespace mqledger::bench
