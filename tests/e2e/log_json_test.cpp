// JSON log lines stay JSON (and UTF-8) whatever they quote (daemon/logging.cpp, README.md
// "Logging"): the UTF-8 sanitizer on its own, log_line in this process, and the real daemon
// answering raw requests whose targets hold every byte 0x80-0xFF, quotes, backslashes and control
// characters, with every line of its log parsed by boost::json::parse and checked to be UTF-8.
#include "tests/e2e/http_client.h"

#include "daemon/logging.h"
#include "daemon/utf8_sanitize.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>
#include <thread>

using namespace mqledger;
using namespace mqledger::test;
namespace json = boost::json;

namespace {

// RFC 3629 written out independently of the code under test: code points, not byte ranges.
bool strict_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t n;
        std::uint32_t cp;
        if (c < 0x80) { ++i; continue; }
        if ((c & 0xE0) == 0xC0) { n = 2; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 3; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 4; cp = c & 0x07; }
        else return false;
        if (i + n > s.size()) return false;
        for (std::size_t k = 1; k < n; ++k) {
            const auto b = static_cast<unsigned char>(s[i + k]);
            if ((b & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (b & 0x3F);
        }
        const std::uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
        i += n;
    }
    return true;
}

const std::string fffd = "\xEF\xBF\xBD";

// The bytes of `s` in hex, for messages.
std::string hex(std::string_view s) {
    std::string out;
    char buf[4];
    for (unsigned char c : s) {
        std::snprintf(buf, sizeof buf, "%02x ", c);
        out += buf;
    }
    return out;
}

std::string repeat(const std::string& s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) out += s;
    return out;
}

std::string high_bytes() {
    std::string s;
    for (int b = 0x80; b <= 0xFF; ++b) s += static_cast<char>(b);
    return s;
}

// Every line of `text` parses as a JSON object and is UTF-8; returns them.
std::vector<json::object> parse_lines(const std::string& text) {
    std::vector<json::object> out;
    std::istringstream in(text);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) {
        ++n;
        INFO("line " << n << ": " << line);
        REQUIRE(strict_utf8(line));
        boost::system::error_code ec;
        auto v = json::parse(line, ec);
        REQUIRE_FALSE(ec);
        REQUIRE(v.is_object());
        out.push_back(v.as_object());
    }
    REQUIRE(text.empty() == out.empty());
    REQUIRE((text.empty() || text.back() == '\n'));
    return out;
}

// One raw request on a fresh connection; the status code of the answer (0 when the daemon closed
// the connection without one).
int raw_request(std::uint16_t port, const std::string& bytes) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;
        sent += static_cast<std::size_t>(n);
    }
    std::string answer;
    char buf[4096];
    for (;;) {
        const auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        answer.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    INFO(answer);
    if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12) return 0;
    return std::stoi(answer.substr(9, 3));
}

std::string get(const std::string& target) {
    return "GET " + target + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
}

// Runs `fn` with this process's stdout going to a file; returns what was written.
template <typename F>
std::string capture_stdout(F fn) {
    temp_dir dir;
    const auto path = dir.path() / "stdout";
    std::fflush(stdout);
    const int saved = ::dup(STDOUT_FILENO);
    REQUIRE(saved >= 0);
    std::FILE* f = std::fopen(path.c_str(), "w");
    REQUIRE(f);
    ::dup2(::fileno(f), STDOUT_FILENO);
    try {
        fn();
    } catch (...) {
        std::fflush(stdout);
        ::dup2(saved, STDOUT_FILENO);
        ::close(saved);
        std::fclose(f);
        throw;
    }
    std::fflush(stdout);
    ::dup2(saved, STDOUT_FILENO);
    ::close(saved);
    std::fclose(f);
    std::ifstream in(path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

} // namespace

TEST_CASE("logs: sanitize_utf8 keeps valid UTF-8 and replaces each maximal ill-formed subpart with U+FFFD",
          "[daemon][logs]") {
    // Valid text, control characters and the extremes of each length are kept.
    for (const std::string& ok : {std::string(), std::string("plain ascii"), std::string("\x00\x01\x1f\x7f", 4),
                                 std::string("\xC2\x80 \xDF\xBF \xE0\xA0\x80 \xED\x9F\xBF \xEE\x80\x80 \xEF\xBF\xBF"),
                                 std::string("\xF0\x90\x80\x80 \xF4\x8F\xBF\xBF \xC3\xA9t\xC3\xA9 \xE2\x82\xAC")}) {
        INFO(ok);
        CHECK(sanitize_utf8(ok) == ok);
    }
    const std::vector<std::pair<std::string, std::string>> cases{
        {"\x80", fffd},                                      // a stray continuation byte
        {"a\xBF" "b", "a" + fffd + "b"},
        {"\xC0\xAF", fffd + fffd},                           // C0, C1: never lead bytes (overlong)
        {"\xC1\xBF", fffd + fffd},
        {"\xE0\x80\x80", repeat(fffd, 3)},                   // overlong 3-byte form
        {"\xED\xA0\x80", repeat(fffd, 3)},                   // a surrogate (U+D800)
        {"\xF0\x8F\xBF\xBF", repeat(fffd, 4)},               // overlong 4-byte form
        {"\xF4\x90\x80\x80", repeat(fffd, 4)},               // above U+10FFFF
        {"\xF5\x80", fffd + fffd},
        {"\xFF\xFE", fffd + fffd},
        {"\xE2\x82", fffd},                                  // truncated at the end: one subpart
        {"\xE2\x82" "A", fffd + "A"},                        // the byte that breaks it is read again
        {"\xF0\x9F\x98" "x", fffd + "x"},
        {"\xC3\xC3\xA9", fffd + "\xC3\xA9"},
        // The Unicode Standard's example (3.9, table 3-8): 61 F1 80 80 E1 80 C2 62 80 63 80 BF 64.
        {"\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64",
         "a" + fffd + fffd + fffd + "b" + fffd + "c" + fffd + fffd + "d"},
    };
    for (const auto& [in, want] : cases) {
        INFO(hex(in));
        CHECK(sanitize_utf8(in) == want);
    }
    // Every string of one and two bytes, and random longer ones: the result is UTF-8, and valid
    // input comes back unchanged.
    const auto check = [](const std::string& in) {
        const auto out = sanitize_utf8(in);
        if (!strict_utf8(out) || (strict_utf8(in) && out != in)) {
            FAIL_CHECK("sanitize_utf8 of " << hex(in));
            return false;
        }
        return true;
    };
    for (int a = 0; a < 256; ++a) {
        check(std::string(1, static_cast<char>(a)));
        for (int b = 0; b < 256; ++b)
            if (!check(std::string{static_cast<char>(a), static_cast<char>(b)})) return;
    }
    std::mt19937 rng(20261202);
    std::uniform_int_distribution<int> byte(0, 255), hi(0x80, 0xFF), len(1, 12);
    for (int i = 0; i < 200000; ++i) {
        std::string s;
        const int n = len(rng);
        for (int k = 0; k < n; ++k) s += static_cast<char>(k % 3 == 0 ? byte(rng) : hi(rng));
        if (!check(s)) return;
    }
    CHECK(sanitize_utf8(high_bytes()) != high_bytes());
}

TEST_CASE("logs: every JSON line is one object written by Boost.JSON: invalid UTF-8, control characters, quotes, "
          "non-finite numbers and clashing keys cannot break it",
          "[daemon][logs]") {
    const auto nasty = std::string("q\"b\\s/n\nr\rt\t\x01\x1f\x7f nul:") + std::string(1, '\0') + " hi:" + high_bytes();
    const auto out = capture_stdout([&] {
        setup_logging(log_format::json, "debug");
        log_line(log_level::info, nasty,
                 {{"target", std::string_view(nasty)},
                  {"msg", "a field called msg"},
                  {"ts", "a field called ts"},
                  {"msg", "and another"},
                  {"inf", std::numeric_limits<double>::infinity()},
                  {"nan", std::nan("")},
                  {"ms", 1.5},
                  {"n", std::int64_t{-42}},
                  {"yes", true},
                  {"k\"e\xFFy", "v"}});
        log_request("G\xC3\x28T", "/v1/\xC3\x28\"\\" + high_bytes(), "unmatched", 404, 0.001, 12, "");
        log_request("GET", "/boom", "/boom", 500, 0.5, 10, "thrown: \xE2\x82 \x02");
        log_line(log_level::debug, "debug line");
    });
    setup_logging(log_format::text, "info");   // leave a logger behind that does not need this file
    INFO(out);
    const auto lines = parse_lines(out);
    REQUIRE(lines.size() == 4);

    const auto& first = lines[0];
    CHECK(first.at("level") == "info");
    CHECK(first.at("ts").is_string());
    const auto sanitized = sanitize_utf8(nasty);
    CHECK(first.at("msg").as_string() == sanitized);
    CHECK(first.at("target").as_string() == sanitized);
    CHECK(first.at("msg_").as_string() == "a field called msg");
    CHECK(first.at("ts_").as_string() == "a field called ts");
    CHECK(first.at("msg__").as_string() == "and another");
    CHECK(first.at("inf").is_null());
    CHECK(first.at("nan").is_null());
    CHECK(first.at("ms").as_double() == 1.5);
    CHECK(first.at("n").as_int64() == -42);
    CHECK(first.at("yes") == true);
    CHECK(first.at("k\"e" + fffd + "y").as_string() == "v");
    // The keys in the order given, after ts and level.
    std::vector<std::string> keys;
    for (const auto& kv : first) keys.emplace_back(kv.key());
    CHECK(keys == std::vector<std::string>{"ts", "level", "msg", "target", "msg_", "ts_", "msg__", "inf", "nan", "ms",
                                           "n", "yes", "k\"e" + fffd + "y"});

    CHECK(lines[1].at("msg") == "request");
    CHECK(lines[1].at("method").as_string() == "G" + fffd + "(T");
    CHECK(lines[1].at("target").as_string() == sanitize_utf8("/v1/\xC3\x28\"\\" + high_bytes()));
    CHECK(lines[1].at("status").as_int64() == 404);
    CHECK(lines[2].at("level") == "error");
    CHECK(lines[2].at("error").as_string() == "thrown: " + fffd + " \x02");
    CHECK(lines[3].at("msg") == "debug line");
    CHECK(lines[3].at("level") == "debug");
}

TEST_CASE("logs: the daemon answers requests whose targets hold bytes 0x80-0xFF, quotes, backslashes and control "
          "characters, and every line it logs is JSON and UTF-8",
          "[e2e][logs]") {
    scratch_database db{"mqledger_logjson"};
    REQUIRE(run_mqledger({"migrate", "--database-url", db.url()}).exit_code == 0);
    const auto port = free_port();
    daemon_process d({"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db.url(),
                      "--insecure-no-auth", "--log-format", "json", "--clock", "manual", "--clock-start",
                      "2026-03-13T06:00:00Z"},
                     port);

    const auto high = high_bytes();
    // Decodes to invalid UTF-8: 400 malformed, the raw target logged.
    CHECK(raw_request(port, get("/v1/instances/" + high + "\"\\")) == 400);
    // A valid path with no route, the bytes in the query: 404, the target quoted in the answer.
    CHECK(raw_request(port, get("/v1/nowhere\"\\?q=" + high + "&r=%00%01%22%5C")) == 404);
    // Bad percent-encoding next to the raw bytes.
    CHECK(raw_request(port, get("/v1/%zz" + high)) == 400);
    // The bytes in an existing route's query value: refused as invalid UTF-8.
    CHECK(raw_request(port, get("/v1/releases/pending?before=" + high)) == 400);
    // Control characters and a raw quote/backslash where HTTP allows none: Beast refuses the request line.
    for (const std::string& ctl : {std::string("\x01\x02\x1b[31m"), std::string("\x7f"), std::string(1, '\0')}) {
        const auto status = raw_request(port, get("/v1/instances/a" + ctl + high + "\"\\"));
        CHECK((status == 400 || status == 0));
    }
    // A method that is not a token, with the bytes.
    const auto status = raw_request(port, "G\xFF\xFE" "T /v1/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    CHECK((status == 400 || status == 0));

    // Still serving.
    CHECK(d.client().get("/healthz").status == 200);
    CHECK(d.running());

    // The request lines are written as the answers go out; wait for the last one.
    std::string log;
    for (int i = 0; i < 100; ++i) {
        log = d.stdout_text();
        if (log.find("\"target\":\"/healthz\"") != std::string::npos) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    INFO(log);
    const auto lines = parse_lines(log);
    std::vector<json::object> requests;
    for (const auto& l : lines) {
        CHECK(l.at("ts").is_string());
        CHECK(l.at("level").is_string());
        CHECK(l.at("msg").is_string());
        if (l.at("msg") == "request") requests.push_back(l);
    }
    REQUIRE(requests.size() >= 5);
    // The logged targets are the raw ones with each invalid byte replaced by U+FFFD; quotes and
    // backslashes come back exactly.
    const auto logged = [&](const std::string& raw) {
        const auto want = sanitize_utf8(raw);
        for (const auto& r : requests)
            if (r.at("target").as_string() == want) return r;
        FAIL("no request line with target " << want);
        return json::object{};
    };
    auto r = logged("/v1/instances/" + high + "\"\\");
    CHECK(r.at("status").as_int64() == 400);
    CHECK(std::string(r.at("target").as_string()).find(fffd) != std::string::npos);
    CHECK(std::string(r.at("target").as_string()).ends_with("\"\\"));
    r = logged("/v1/nowhere\"\\?q=" + high + "&r=%00%01%22%5C");
    CHECK(r.at("status").as_int64() == 404);
    CHECK(logged("/v1/%zz" + high).at("status").as_int64() == 400);
    CHECK(logged("/v1/releases/pending?before=" + high).at("route") == "/v1/releases/pending");
    CHECK(d.stop() == 0);
}
