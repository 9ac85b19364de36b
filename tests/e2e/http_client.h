// End-to-end test helpers: a small blocking HTTP client (Boost.Beast, inside http_client.cpp),
// a RAII handle on a real `mqledger` process, and a scratch PostgreSQL database. Reusable by
// every e2e test of the API.
#pragma once

#include "ledger/store/conninfo.h"
#include <boost/json/value.hpp>

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mqledger::test {

using header_list = std::vector<std::pair<std::string, std::string>>;

struct http_result {
    int status = 0;
    header_list headers;
    std::string body;
    boost::json::value json;   // the parsed body; null when it is not JSON

    /// The first header called `name` (case-insensitive); empty when absent.
    [[nodiscard]] std::string header(std::string_view name) const;
    /// json["error"]["code"] or "" — the API.md error code.
    [[nodiscard]] std::string error_code() const;
};

/// One request per connection, blocking, with a 10 s socket timeout. Throws std::runtime_error
/// when the daemon cannot be reached or answers garbage.
class http_client {
public:
    explicit http_client(std::uint16_t port, std::string host = "127.0.0.1") : host_(std::move(host)), port_(port) {}

    [[nodiscard]] http_result get(const std::string& path, const header_list& headers = {}) const;
    [[nodiscard]] http_result post(const std::string& path, const boost::json::value& body,
                                   const header_list& headers = {}) const;
    [[nodiscard]] http_result del(const std::string& path, const header_list& headers = {}) const;
    /// Any method, any body (sent as application/json unless headers say otherwise).
    [[nodiscard]] http_result request(std::string_view method, const std::string& path, std::string body,
                                      const header_list& headers = {}) const;

    /// {"Authorization", "Bearer TOKEN"}.
    [[nodiscard]] static header_list bearer(const std::string& token);

private:
    std::string host_;
    std::uint16_t port_;
};

/// A port that was free a moment ago (bind to 0, read it, close).
[[nodiscard]] std::uint16_t free_port();

/// Environment changes for a child: a value sets the variable, nullopt removes it.
using env_changes = std::vector<std::pair<std::string, std::optional<std::string>>>;

/// The result of running `mqledger ARGS…` to completion.
struct run_result {
    int exit_code = -1;
    std::string out;
    std::string err;
};

/// Runs `program` (a path, or a name looked up in PATH) with `args`, stdin from /dev/null, and
/// waits (at most `timeout`; then it is killed and this throws).
[[nodiscard]] run_result run_program(const std::string& program, const std::vector<std::string>& args,
                                     const env_changes& env = {},
                                     std::chrono::seconds timeout = std::chrono::seconds(60));

/// Runs the real binary (MQLEDGER_BINARY) with `args` and waits (at most `timeout`).
[[nodiscard]] run_result run_mqledger(const std::vector<std::string>& args, const env_changes& env = {},
                                      std::chrono::seconds timeout = std::chrono::seconds(60));

/// A running `mqledger` process. Starts it with `args` (e.g. {"serve", "--listen", …}), stdout
/// and stderr captured to files, and waits until GET /healthz on `port` answers 200 (throws
/// with the captured stderr when it exits or does not answer in time). On destruction: SIGTERM,
/// wait, SIGKILL if it will not stop.
class daemon_process {
public:
    daemon_process(std::vector<std::string> args, std::uint16_t port, env_changes env = {},
                   bool wait_until_healthy = true);
    ~daemon_process();
    daemon_process(const daemon_process&) = delete;
    daemon_process& operator=(const daemon_process&) = delete;

    /// Sends `signo` and waits for the exit; returns the exit code (128 + signal if killed by
    /// one). Idempotent: later calls return the same code.
    int stop(int signo = 15, std::chrono::seconds timeout = std::chrono::seconds(20));
    /// SIGKILL and reap: a crash, as far as the daemon can tell.
    void kill9();
    /// Stops (SIGTERM) if running, then starts again with the same arguments and waits healthy.
    void restart();
    /// Waits until the process exits by itself (at most `timeout`); the exit code, or nullopt.
    std::optional<int> wait_exit(std::chrono::seconds timeout);

    [[nodiscard]] bool running();
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
    [[nodiscard]] http_client client() const { return http_client(port_); }
    [[nodiscard]] std::string stderr_text() const;
    [[nodiscard]] std::string stdout_text() const;

private:
    void spawn();
    void wait_healthy();

    std::vector<std::string> args_;
    std::uint16_t port_;
    env_changes env_;
    std::filesystem::path dir_;
    pid_t pid_ = -1;
    std::optional<int> exit_code_;
};

/// A fresh, empty database created on the server named by MQLEDGER_TEST_DATABASE_URL (an admin
/// connection, user postgres) and dropped on destruction. Throws with a clear message when the
/// variable is unset.
class scratch_database {
public:
    explicit scratch_database(std::string_view prefix = "mqledger_e2e");
    ~scratch_database();
    scratch_database(const scratch_database&) = delete;
    scratch_database& operator=(const scratch_database&) = delete;

    /// A connection string for the scratch database (admin user).
    [[nodiscard]] const std::string& url() const noexcept { return url_; }
    [[nodiscard]] const std::string& name() const noexcept { return name_; }

private:
    std::string admin_url_;
    std::string name_;
    std::string url_;
};

/// The admin URL from MQLEDGER_TEST_DATABASE_URL; throws when unset.
[[nodiscard]] std::string test_database_url();

using store::with_database;

/// A private temporary directory for one test, removed on destruction.
class temp_dir {
public:
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
    /// Writes `text` to path()/name and returns the full path.
    std::filesystem::path write(const std::string& name, std::string_view text) const;

private:
    std::filesystem::path path_;
};

/// A JSON value as text: a string's contents, anything else serialised.
[[nodiscard]] std::string str(const boost::json::value& v);
/// A JSON number as an integer (doubles truncated); throws std::runtime_error otherwise.
[[nodiscard]] std::int64_t num(const boost::json::value& v);
/// A JSON array as texts (str of each element); empty for a non-array.
[[nodiscard]] std::vector<std::string> strings(const boost::json::value& v);

/// Lower-case hex SHA-256 of `token`: what a tokens file holds.
[[nodiscard]] std::string sha256_hex(std::string_view token);

/// A PostgreSQL cluster run by the project's own deploy/pg.sh under `var` on `port`
/// (MQLEDGER_PG_VAR, MQLEDGER_PG_PORT, plus `extra` variables), stopped on destruction: for tests
/// that stop and start a server, or need a replica, without disturbing the shared one.
struct pg_cluster {
    std::filesystem::path var;
    std::uint16_t port;
    env_changes extra = {};

    /// `deploy/pg.sh VERB`, whatever its outcome.
    [[nodiscard]] run_result run(const std::string& verb) const;
    /// `deploy/pg.sh VERB`'s output without its trailing newlines; throws std::runtime_error with
    /// the script's output when it fails.
    std::string pg(const std::string& verb) const;
    ~pg_cluster();
};

} // namespace mqledger::test
