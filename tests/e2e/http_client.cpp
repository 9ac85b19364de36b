#include "tests/e2e/http_client.h"

#include "daemon/auth.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>

#include <pqxx/pqxx>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

#ifndef MQLEDGER_BINARY
#error "MQLEDGER_BINARY must be defined by tests/CMakeLists.txt"
#endif

namespace mqledger::test {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
            return false;
    return true;
}

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::atomic<int> counter{0};

std::filesystem::path make_temp_dir(std::string_view prefix) {
    const auto base = std::filesystem::temp_directory_path();
    for (;;) {
        auto p = base / (std::string(prefix) + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        if (std::filesystem::create_directory(p)) return p;
    }
}

// The child's environment: ours with `changes` applied.
std::vector<std::string> child_environment(const env_changes& changes) {
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) {
        const std::string entry(*e);
        const auto name = entry.substr(0, entry.find('='));
        bool overridden = false;
        for (const auto& [k, v] : changes) overridden = overridden || k == name;
        if (!overridden) env.push_back(entry);
    }
    for (const auto& [k, v] : changes)
        if (v) env.push_back(k + "=" + *v);
    return env;
}

// Starts `program` (a path, or a name looked up in PATH) with `args`.
pid_t spawn_program(const std::string& program, const std::vector<std::string>& args, const env_changes& changes,
                    const std::filesystem::path& out, const std::filesystem::path& err) {
    std::vector<std::string> argv_s{program};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    auto env_s = child_environment(changes);
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid = -1;
    const int rc = posix_spawnp(&pid, argv_s[0].c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start " + argv_s[0] + ": " + std::strerror(rc));
    return pid;
}

int decode_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

// Waits for `pid` up to `timeout`; the exit code, or nullopt if it is still running.
std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return decode_status(status);
        if (r < 0) return -1;
        if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
}

} // namespace

std::string http_result::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return {};
}

std::string http_result::error_code() const {
    if (const auto* o = json.if_object())
        if (const auto* e = o->if_contains("error"))
            if (const auto* eo = e->if_object())
                if (const auto* c = eo->if_contains("code"))
                    if (c->is_string()) return std::string(c->get_string());
    return {};
}

header_list http_client::bearer(const std::string& token) { return {{"Authorization", "Bearer " + token}}; }

http_result http_client::get(const std::string& path, const header_list& headers) const {
    return request("GET", path, {}, headers);
}

http_result http_client::post(const std::string& path, const boost::json::value& body,
                              const header_list& headers) const {
    return request("POST", path, boost::json::serialize(body), headers);
}

http_result http_client::del(const std::string& path, const header_list& headers) const {
    return request("DELETE", path, {}, headers);
}

http_result http_client::request(std::string_view method, const std::string& path, std::string body,
                                 const header_list& headers) const {
    net::io_context ioc;
    tcp::socket socket(ioc);
    beast::error_code ec;
    socket.connect(tcp::endpoint(net::ip::make_address(host_), port_), ec);
    if (ec) throw std::runtime_error("cannot connect to " + host_ + ":" + std::to_string(port_) + ": " + ec.message());
    timeval tv{10, 0};
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);

    bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), path, 11};
    if (req.method() == bhttp::verb::unknown) req.method_string(method);
    req.set(bhttp::field::host, host_ + ":" + std::to_string(port_));
    req.set(bhttp::field::user_agent, "mqledger-e2e");
    const bool has_body = !body.empty() || method == "POST" || method == "PUT" || method == "PATCH";
    if (has_body) req.set(bhttp::field::content_type, "application/json");
    for (const auto& [k, v] : headers) req.set(k, v);
    req.body() = std::move(body);
    req.keep_alive(false);
    req.prepare_payload();
    // A refused request (413) may be answered before the whole body is sent; the answer is what
    // matters, so a failed write is only fatal if no response can be read either.
    bhttp::write(socket, req, ec);
    const auto write_error = ec;

    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.body_limit(64 * 1024 * 1024);
    bhttp::read(socket, buffer, parser, ec);
    if (ec)
        throw std::runtime_error(std::string(method) + " " + path + ": no response: " + ec.message() +
                                 (write_error ? " (write: " + write_error.message() + ")" : ""));
    auto res = parser.release();
    http_result out;
    out.status = static_cast<int>(res.result_int());
    for (const auto& f : res) out.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
    out.body = std::move(res.body());
    boost::system::error_code jec;
    auto parsed = boost::json::parse(out.body, jec);
    if (!jec) out.json = std::move(parsed);
    socket.shutdown(tcp::socket::shutdown_both, ec);
    return out;
}

std::uint16_t free_port() {
    net::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    return a.local_endpoint().port();
}

run_result run_program(const std::string& program, const std::vector<std::string>& args, const env_changes& env,
                       std::chrono::seconds timeout) {
    temp_dir dir;
    const auto out = dir.path() / "stdout", err = dir.path() / "stderr";
    const pid_t pid = spawn_program(program, args, env, out, err);
    auto code = wait_for(pid, timeout);
    if (!code) {
        ::kill(pid, SIGKILL);
        code = wait_for(pid, std::chrono::seconds(10));
        throw std::runtime_error(program + " did not finish in time; stderr: " + read_file(err));
    }
    return run_result{*code, read_file(out), read_file(err)};
}

run_result run_mqledger(const std::vector<std::string>& args, const env_changes& env, std::chrono::seconds timeout) {
    return run_program(MQLEDGER_BINARY, args, env, timeout);
}

daemon_process::daemon_process(std::vector<std::string> args, std::uint16_t port, env_changes env,
                               bool wait_until_healthy)
    : args_(std::move(args)), port_(port), env_(std::move(env)), dir_(make_temp_dir("mqledger-daemon")) {
    spawn();
    if (wait_until_healthy) {
        try {
            wait_healthy();
        } catch (...) {
            if (!exit_code_) stop(SIGKILL);
            std::filesystem::remove_all(dir_);
            throw;
        }
    }
}

daemon_process::~daemon_process() {
    try {
        stop();
    } catch (...) {
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
}

void daemon_process::spawn() {
    exit_code_.reset();
    pid_ = spawn_program(MQLEDGER_BINARY, args_, env_, dir_ / "stdout", dir_ / "stderr");
}

void daemon_process::wait_healthy() {
    // Generous: sanitizer builds start slowly.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::string last_error;
    while (std::chrono::steady_clock::now() < deadline) {
        if (auto code = wait_for(pid_, std::chrono::milliseconds(0))) {
            exit_code_ = code;
            throw std::runtime_error("mqledger exited with " + std::to_string(*code) +
                                     " before answering /healthz; stderr:\n" + stderr_text() + "\nstdout:\n" +
                                     stdout_text());
        }
        try {
            if (client().get("/healthz").status == 200) return;
        } catch (const std::exception& e) {
            last_error = e.what();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("mqledger did not answer /healthz within 30 s (" + last_error + "); stderr:\n" +
                             stderr_text());
}

int daemon_process::stop(int signo, std::chrono::seconds timeout) {
    if (exit_code_) return *exit_code_;
    ::kill(pid_, signo);
    auto code = wait_for(pid_, timeout);
    if (!code) {
        ::kill(pid_, SIGKILL);
        code = wait_for(pid_, std::chrono::seconds(10));
    }
    exit_code_ = code.value_or(-1);
    return *exit_code_;
}

void daemon_process::kill9() { stop(SIGKILL); }

void daemon_process::restart() {
    stop();
    spawn();
    wait_healthy();
}

std::optional<int> daemon_process::wait_exit(std::chrono::seconds timeout) {
    if (exit_code_) return exit_code_;
    exit_code_ = wait_for(pid_, timeout);
    return exit_code_;
}

bool daemon_process::running() {
    if (exit_code_) return false;
    exit_code_ = wait_for(pid_, std::chrono::milliseconds(0));
    return !exit_code_;
}

std::string daemon_process::stderr_text() const { return read_file(dir_ / "stderr"); }
std::string daemon_process::stdout_text() const { return read_file(dir_ / "stdout"); }

std::string test_database_url() {
    const char* url = std::getenv("MQLEDGER_TEST_DATABASE_URL");
    if (!url || !*url)
        throw std::runtime_error("MQLEDGER_TEST_DATABASE_URL is not set: the e2e tests need an admin connection "
                                 "(user postgres) to a PostgreSQL server, e.g. 'host=/work/main/var/run port=54329 "
                                 "user=postgres dbname=postgres'");
    return url;
}


scratch_database::scratch_database(std::string_view prefix)
    : admin_url_(test_database_url()),
      name_(std::string(prefix) + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)) {
    pqxx::connection c(admin_url_);
    pqxx::nontransaction tx(c);
    tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name_));
    tx.exec("CREATE DATABASE " + tx.quote_name(name_));
    url_ = with_database(admin_url_, name_);
}

scratch_database::~scratch_database() {
    try {
        pqxx::connection c(admin_url_);
        pqxx::nontransaction tx(c);
        tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name_) + " WITH (FORCE)");
    } catch (...) {
    }
}

temp_dir::temp_dir() : path_(make_temp_dir("mqledger-test")) {}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
}

std::filesystem::path temp_dir::write(const std::string& name, std::string_view text) const {
    const auto p = path_ / name;
    std::ofstream out(p, std::ios::binary);
    out << text;
    return p;
}

std::string sha256_hex(std::string_view token) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char b : sha256(token)) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

std::string str(const boost::json::value& v) {
    if (v.is_string()) return std::string(v.as_string());
    return boost::json::serialize(v);
}

std::int64_t num(const boost::json::value& v) {
    if (v.is_int64()) return v.as_int64();
    if (v.is_uint64()) return static_cast<std::int64_t>(v.as_uint64());
    if (v.is_double()) return static_cast<std::int64_t>(v.as_double());
    throw std::runtime_error("not a number: " + boost::json::serialize(v));
}

std::vector<std::string> strings(const boost::json::value& v) {
    std::vector<std::string> out;
    if (!v.is_array()) return out;
    for (const auto& e : v.as_array()) out.push_back(str(e));
    return out;
}

run_result pg_cluster::run(const std::string& verb) const {
    env_changes env{{"MQLEDGER_PG_VAR", var.string()}, {"MQLEDGER_PG_PORT", std::to_string(port)}};
    env.insert(env.end(), extra.begin(), extra.end());
    return run_program("bash", {(std::filesystem::path(MQLEDGER_SOURCE_DIR) / "deploy/pg.sh").string(), verb}, env,
                       std::chrono::seconds(120));
}

std::string pg_cluster::pg(const std::string& verb) const {
    const auto r = run(verb);
    if (r.exit_code != 0)
        throw std::runtime_error("deploy/pg.sh " + verb + " exited " + std::to_string(r.exit_code) + "\n" + r.out + r.err);
    auto out = r.out;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

pg_cluster::~pg_cluster() {
    try {
        (void)run("stop");
    } catch (...) {
    }
}

} // namespace mqledger::test
