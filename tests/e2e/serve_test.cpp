// The real `mqledger` binary over real HTTP: command line, readiness against a real PostgreSQL
// (MQLEDGER_TEST_DATABASE_URL), limits, errors, authentication, the manual clock, shutdown.
#include "tests/e2e/http_client.h"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

using namespace mqledger::test;

namespace {

// A database URL nothing listens on: the socket directory does not exist.
const std::string unreachable_db = "host=/nonexistent-mqledger port=1 dbname=none user=none connect_timeout=2";

/// A raw TCP connection to 127.0.0.1:port, for tests that must control the bytes and the
/// connection's life themselves.
int connect_loopback(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    return fd;
}

std::string listen_arg(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }

// A scratch database with the migrations applied: the manual clock fires timers from it, so a
// daemon whose clock moves needs one.
struct migrated_db {
    scratch_database db;
    migrated_db() { REQUIRE(run_mqledger({"migrate", "--database-url", db.url()}).exit_code == 0); }
    [[nodiscard]] const std::string& url() const { return db.url(); }
};

// serve with no authentication on a free port, against `db`.
std::vector<std::string> serve_args(std::uint16_t port, const std::string& db, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"serve", "--listen", listen_arg(port), "--database-url", db, "--insecure-no-auth"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
}

// Polls GET /readyz until it answers `status` (readiness is probed once a second).
http_result wait_readyz(const http_client& c, int status, std::chrono::seconds timeout = std::chrono::seconds(15)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    auto r = c.get("/readyz");
    while (r.status != status && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        r = c.get("/readyz");
    }
    return r;
}

std::string message_of(const http_result& r) {
    return std::string(r.json.at("error").at("message").as_string());
}

} // namespace

TEST_CASE("cli: --help and COMMAND --help exit 0 and list commands and options", "[daemon][e2e]") {
    auto r = run_mqledger({"--help"});
    CHECK(r.exit_code == 0);
    for (const char* s : {"serve", "migrate", "verify", "rebuild", "history", "export"}) CHECK(r.out.find(s) != std::string::npos);

    r = run_mqledger({"serve", "--help"});
    CHECK(r.exit_code == 0);
    for (const char* s : {"--listen", "--database-url", "--tokens", "--insecure-no-auth", "--clock", "--clock-start",
                          "--threads", "--body-limit", "--read-timeout", "--idle-timeout", "--log-format",
                          "--log-level", "MQLEDGER_DATABASE_URL", "127.0.0.1:8080"})
        CHECK(r.out.find(s) != std::string::npos);

    CHECK(run_mqledger({"migrate", "--help"}).exit_code == 0);
}

TEST_CASE("cli: unknown commands and options are usage errors (exit 2)", "[daemon][e2e]") {
    auto r = run_mqledger({"serve", "--no-such-option"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("no-such-option") != std::string::npos);
    r = run_mqledger({"frobnicate"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("unknown command 'frobnicate'") != std::string::npos);
    CHECK(run_mqledger({}).exit_code == 2);
    CHECK(run_mqledger({"serve", "--insecure-no-auth", "--threads", "0"}).exit_code == 2);
}

TEST_CASE("cli: the auditor's commands exit 2 when the database cannot be reached", "[daemon][e2e]") {
    for (const char* cmd : {"verify", "rebuild", "export"}) {
        const auto r = run_mqledger({cmd, "--database-url", unreachable_db});
        CHECK(r.exit_code == (std::string(cmd) == "rebuild" ? 1 : 2));
        CHECK(r.err.find(std::string("mqledger ") + cmd + ":") == 0);
    }
    CHECK(run_mqledger({"history", "i-1", "--database-url", unreachable_db}).exit_code == 2);
    CHECK(run_mqledger({"history", "i-1", "--format", "yaml"}).exit_code == 2);
}

TEST_CASE("serve: --insecure-no-auth on a non-loopback address is refused with exit 2", "[daemon][e2e]") {
    const auto r = run_mqledger({"serve", "--insecure-no-auth", "--listen", "0.0.0.0:" + std::to_string(free_port()),
                                 "--database-url", unreachable_db});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--insecure-no-auth is refused") != std::string::npos);
}

TEST_CASE("serve: a bad tokens file refuses to start, naming the line", "[daemon][e2e]") {
    temp_dir dir;
    const auto tokens = dir.write("tokens", "# ok\nadmin alice " + sha256_hex("a") + "\nsuperuser bob " + sha256_hex("b") + "\n");
    const auto r = run_mqledger({"serve", "--tokens", tokens.string(), "--listen", listen_arg(free_port()),
                                 "--database-url", unreachable_db});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("line 3: unknown role 'superuser'") != std::string::npos);
}

TEST_CASE("serve: /healthz answers, /readyz is 503 with an unreachable database, SIGTERM exits 0", "[daemon][e2e]") {
    const auto port = free_port();
    daemon_process d(serve_args(port, unreachable_db), port);
    const auto c = d.client();
    const auto health = c.get("/healthz");
    CHECK(health.status == 200);
    CHECK(health.json.at("status") == "ok");
    CHECK(health.header("Content-Type") == "application/json");

    const auto ready = wait_readyz(c, 503);
    CHECK(ready.status == 503);
    CHECK(ready.error_code() == "unavailable");
    // "not checked yet" only until the first probe finished.
    const auto settled = [&] {
        auto r = c.get("/readyz");
        for (int i = 0; i < 100 && message_of(r) != "database unreachable"; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            r = c.get("/readyz");
        }
        return r;
    }();
    CHECK(message_of(settled) == "database unreachable");
    CHECK(c.get("/metrics").body.find("mqledger_database_up 0") != std::string::npos);

    CHECK(d.stop(SIGTERM) == 0);
    CHECK(d.stdout_text().find("\"msg\":\"stopped\"") != std::string::npos);
}

TEST_CASE("serve: /readyz is 503 on an unmigrated database and 200 after migrate, migrate twice is a no-op",
          "[daemon][e2e][db]") {
    scratch_database db;
    const auto port = free_port();
    daemon_process d(serve_args(port, db.url()), port);
    const auto c = d.client();

    auto r = c.get("/readyz");
    for (int i = 0; i < 100 && r.status == 503 && message_of(r) == "database not checked yet"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        r = c.get("/readyz");
    }
    CHECK(r.status == 503);
    CHECK(r.error_code() == "unavailable");
    CHECK(message_of(r) == "database not migrated");

    const auto first = run_mqledger({"migrate", "--database-url", db.url()});
    INFO(first.err);
    CHECK(first.exit_code == 0);
    CHECK(first.out.find("applied 0001_") != std::string::npos);

    r = wait_readyz(c, 200);
    CHECK(r.status == 200);
    CHECK(r.json.at("status") == "ready");
    CHECK(c.get("/metrics").body.find("mqledger_database_up 1") != std::string::npos);

    const auto second = run_mqledger({"migrate", "--database-url", db.url()});
    CHECK(second.exit_code == 0);
    CHECK(second.out.find("up to date") != std::string::npos);
    CHECK(second.out.find("applied 0") == std::string::npos);   // nothing newly applied
}

TEST_CASE("migrate: an unreachable database fails with exit 1 and a message", "[daemon][e2e]") {
    const auto r = run_mqledger({"migrate", "--database-url", unreachable_db});
    CHECK(r.exit_code == 1);
    CHECK(r.err.rfind("mqledger migrate: ", 0) == 0);
}

TEST_CASE("serve: a body over 64 KiB is 413 too_large JSON, unknown routes are 404 JSON", "[daemon][e2e]") {
    const auto port = free_port();
    daemon_process d(serve_args(port, unreachable_db, {"--clock", "manual"}), port);
    const auto c = d.client();

    const auto big = c.request("POST", "/v1/clock", std::string(64 * 1024 + 1, 'x'));
    CHECK(big.status == 413);
    CHECK(big.error_code() == "too_large");

    // Exactly at the limit is read (and then refused for what it is, not for its size).
    const auto at_limit = c.request("POST", "/v1/clock", std::string(64 * 1024, ' '));
    CHECK(at_limit.status == 400);
    CHECK(at_limit.error_code() == "malformed");

    const auto missing = c.get("/v1/no-such-thing");
    CHECK(missing.status == 404);
    CHECK(missing.error_code() == "not_found");
    CHECK(missing.header("Content-Type") == "application/json");

    // A request is counted once its response is written, so the client may see the answer a
    // moment before the count: poll briefly.
    std::string metrics;
    for (int i = 0; i < 50; ++i) {
        metrics = c.get("/metrics").body;
        if (metrics.find(R"(route="unmatched",status="404")") != std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(metrics.find(R"(mqledger_http_requests_total{method="POST",route="/v1/clock",status="413"} 1)") !=
          std::string::npos);
    CHECK(metrics.find(R"(route="unmatched",status="404")") != std::string::npos);
    CHECK(metrics.find("/v1/no-such-thing") == std::string::npos);   // never the raw path
}

TEST_CASE("serve: --body-limit is honoured", "[daemon][e2e]") {
    migrated_db mdb;
    const auto port = free_port();
    daemon_process d(serve_args(port, mdb.url(), {"--clock", "manual", "--body-limit", "100"}), port);
    CHECK(d.client().request("POST", "/v1/clock", std::string(101, ' ')).status == 413);
    CHECK(d.client().post("/v1/clock", {{"advance_seconds", 1}}).status == 200);
}

TEST_CASE("serve: no token is 401, the wrong role 403, the right role passes, probes need no token",
          "[daemon][e2e]") {
    migrated_db mdb;
    temp_dir dir;
    const auto tokens = dir.write("tokens", "admin ada " + sha256_hex("admin-secret") + "\nauditor aude " +
                                                sha256_hex("auditor-secret") + "\n");
    const auto port = free_port();
    daemon_process d({"serve", "--listen", listen_arg(port), "--database-url", mdb.url(), "--tokens",
                      tokens.string(), "--clock", "manual", "--clock-start", "2026-05-01T00:00:00Z"},
                     port);
    const auto c = d.client();

    CHECK(c.get("/healthz").status == 200);
    CHECK(c.get("/metrics").status == 200);
    CHECK(wait_readyz(c, 200).status == 200);

    auto r = c.get("/v1/clock");
    CHECK(r.status == 401);
    CHECK(r.error_code() == "unauthenticated");
    CHECK(c.get("/v1/clock", http_client::bearer("guess")).status == 401);

    r = c.get("/v1/clock", http_client::bearer("auditor-secret"));
    CHECK(r.status == 200);
    CHECK(r.json.at("now") == "2026-05-01T00:00:00Z");

    r = c.post("/v1/clock", {{"advance_seconds", 60}}, http_client::bearer("auditor-secret"));
    CHECK(r.status == 403);
    CHECK(r.error_code() == "forbidden");

    r = c.post("/v1/clock", {{"advance_seconds", 60}}, http_client::bearer("admin-secret"));
    CHECK(r.status == 200);
    CHECK(r.json.at("now") == "2026-05-01T00:01:00Z");
}

TEST_CASE("serve: SIGHUP reloads the tokens file", "[daemon][e2e]") {
    temp_dir dir;
    const auto tokens = dir.write("tokens", "admin ada " + sha256_hex("old") + "\n");
    const auto port = free_port();
    daemon_process d({"serve", "--listen", listen_arg(port), "--database-url", unreachable_db, "--tokens",
                      tokens.string(), "--clock", "manual"},
                     port);
    const auto c = d.client();
    CHECK(c.get("/v1/clock", http_client::bearer("old")).status == 200);
    dir.write("tokens", "admin ada " + sha256_hex("new") + "\n");
    ::kill(d.pid(), SIGHUP);
    bool reloaded = false;
    for (int i = 0; i < 100 && !reloaded; ++i) {
        reloaded = c.get("/v1/clock", http_client::bearer("new")).status == 200;
        if (!reloaded) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    CHECK(reloaded);
    CHECK(c.get("/v1/clock", http_client::bearer("old")).status == 401);
    CHECK(d.running());
}

TEST_CASE("serve: the manual clock moves only forward over HTTP, without it /v1/clock is 404", "[daemon][e2e]") {
    migrated_db mdb;
    const auto port = free_port();
    daemon_process d(serve_args(port, mdb.url(), {"--clock", "manual", "--clock-start", "2026-01-31T00:00:00Z"}),
                     port);
    const auto c = d.client();
    CHECK(c.get("/v1/clock").json.at("now") == "2026-01-31T00:00:00Z");

    auto r = c.post("/v1/clock", {{"now", "2026-02-01T00:00:00Z"}});
    CHECK(r.status == 200);
    CHECK(r.json.at("now") == "2026-02-01T00:00:00Z");
    CHECK(r.json.at("fired") == 0);

    r = c.post("/v1/clock", {{"advance_seconds", 3600}});
    CHECK(r.json.at("now") == "2026-02-01T01:00:00Z");

    r = c.post("/v1/clock", {{"now", "2026-01-01T00:00:00Z"}});
    CHECK(r.status == 422);
    CHECK(r.error_code() == "invalid");
    CHECK(r.json.at("error").at("field") == "now");
    CHECK(c.get("/v1/clock").json.at("now") == "2026-02-01T01:00:00Z");

    r = c.request("POST", "/v1/clock", "{\"now\": ");
    CHECK(r.status == 400);
    CHECK(r.error_code() == "malformed");

    const auto port2 = free_port();
    daemon_process system_clock(serve_args(port2, mdb.url()), port2);
    r = system_clock.client().get("/v1/clock");
    CHECK(r.status == 404);
    CHECK(r.error_code() == "not_found");
}

TEST_CASE("serve: options from the environment and a config file reach the process", "[daemon][e2e]") {
    temp_dir dir;
    const auto port = free_port();
    const auto file = dir.write("mqledger.conf", "# example\nclock = manual\nclock-start = 2030-01-01T00:00:00Z\n"
                                                  "insecure-no-auth = true\nlisten = 127.0.0.1:1\n");
    // The environment's listen beats the file's; the file's clock beats the default.
    daemon_process d({"serve", "--config", file.string()}, port,
                     {{"MQLEDGER_LISTEN", listen_arg(port)}, {"MQLEDGER_DATABASE_URL", unreachable_db}});
    CHECK(d.client().get("/v1/clock").json.at("now") == "2030-01-01T00:00:00Z");
}

TEST_CASE("serve: logs are JSON lines with one line per request when stdout is not a terminal", "[daemon][e2e]") {
    const auto port = free_port();
    daemon_process d(serve_args(port, unreachable_db), port);
    (void)d.client().get("/v1/nothing-here");
    CHECK(d.stop() == 0);
    const auto out = d.stdout_text();
    CHECK(out.rfind("{\"ts\":\"", 0) == 0);
    CHECK(out.find(R"("msg":"request","method":"GET","target":"/v1/nothing-here","route":"unmatched","status":404)") !=
          std::string::npos);
}

TEST_CASE("serve: IPv6 loopback listener", "[daemon][e2e]") {
    const auto port = free_port();
    // The health check goes to 127.0.0.1; probe [::1] by hand.
    daemon_process d({"serve", "--listen", "[::1]:" + std::to_string(port), "--database-url", unreachable_db,
                      "--insecure-no-auth"},
                     port, {}, false);
    http_result r;
    for (int i = 0; i < 200; ++i) {
        try {
            r = http_client(port, "::1").get("/healthz");
            break;
        } catch (const std::exception&) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
    }
    CHECK(r.status == 200);
}

TEST_CASE("serve: SIGTERM with an idle keep-alive connection open still exits 0 promptly", "[daemon][e2e]") {
    const auto port = free_port();
    daemon_process d(serve_args(port, unreachable_db, {"--idle-timeout", "600"}), port);

    const int fd = connect_loopback(port);
    const std::string req = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(::write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size()));
    char buf[1024];
    REQUIRE(::read(fd, buf, sizeof buf) > 0);   // answered; the connection stays open and idle

    const auto start = std::chrono::steady_clock::now();
    CHECK(d.stop(SIGTERM) == 0);
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
    CHECK(::read(fd, buf, sizeof buf) == 0);   // closed by the daemon
    ::close(fd);
}

TEST_CASE("serve: a request in flight at SIGTERM is still answered, then the daemon exits 0", "[daemon][e2e]") {
    migrated_db mdb;
    const auto port = free_port();
    daemon_process d(serve_args(port, mdb.url(), {"--clock", "manual"}), port);

    const int fd = connect_loopback(port);
    const std::string body = R"({"advance_seconds": 5})";
    const std::string head = "POST /v1/clock HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\n\r\n";
    REQUIRE(::write(fd, head.data(), head.size()) == static_cast<ssize_t>(head.size()));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));   // the daemon is now reading the body

    ::kill(d.pid(), SIGTERM);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    REQUIRE(::write(fd, body.data(), body.size()) == static_cast<ssize_t>(body.size()));
    std::string answer;
    char buf[4096];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) answer.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    CHECK(answer.rfind("HTTP/1.1 200 OK", 0) == 0);
    CHECK(answer.find("Connection: close") != std::string::npos);
    CHECK(answer.find("\"fired\":0") != std::string::npos);
    CHECK(d.wait_exit(std::chrono::seconds(10)) == 0);
}

TEST_CASE("serve: kill -9 and restart come back healthy", "[daemon][e2e]") {
    const auto port = free_port();
    daemon_process d(serve_args(port, unreachable_db), port);
    d.kill9();
    CHECK_FALSE(d.running());
    d.restart();
    CHECK(d.client().get("/healthz").status == 200);
}
