// The router's request-target parsing is Boost.URL's (daemon/router.cpp): this checks that it
// decides exactly what the hand-written decoder before it decided (kept here as the reference
// model), on crafted targets and on many random ones: the same status, the same decoded path
// parameters and the same query pairs.
#include "daemon/router.h"
#include "daemon/routes.h"
#include "ledger/canonical_json.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <optional>
#include <random>
#include <string>
#include <vector>

using namespace mqledger;
namespace json = boost::json;

namespace {

// ---- the reference: the router's decoding before Boost.URL, verbatim in behaviour

std::optional<std::string> old_decode(std::string_view s, bool plus_is_space) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size()) return std::nullopt;
            const auto hex = [](char h) -> int {
                if (h >= '0' && h <= '9') return h - '0';
                if (h >= 'a' && h <= 'f') return h - 'a' + 10;
                if (h >= 'A' && h <= 'F') return h - 'A' + 10;
                return -1;
            };
            const int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
            if (hi < 0 || lo < 0) return std::nullopt;
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out += ' ';
        } else {
            out += c;
        }
    }
    return out;
}

bool clean(const std::string& s) {
    return valid_utf8(s) &&
           std::none_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

struct expected {
    int status = 0;
    std::vector<std::string> params;
    std::vector<std::pair<std::string, std::string>> query;
};

// What the old router answered for GET `target` with the routes /{a}, /{a}/{b}, /{a}/{b}/{c}.
expected reference(std::string_view target) {
    const auto qmark = target.find('?');
    const auto path = target.substr(0, qmark);
    if (path.empty() || path.front() != '/') return {404, {}, {}};
    std::vector<std::string> segs;
    std::size_t i = 1;
    while (true) {
        const auto slash = path.find('/', i);
        const auto raw = path.substr(i, slash == std::string_view::npos ? std::string_view::npos : slash - i);
        auto d = old_decode(raw, false);
        if (!d || !clean(*d)) return {400, {}, {}};
        segs.push_back(*d);
        if (slash == std::string_view::npos) break;
        i = slash + 1;
    }
    if (segs.empty() || segs.size() > 3 ||
        std::any_of(segs.begin(), segs.end(), [](const std::string& s) { return s.empty(); }))
        return {404, {}, {}};
    expected e{200, segs, {}};
    if (qmark != std::string_view::npos) {
        std::string_view q = target.substr(qmark + 1);
        while (!q.empty()) {
            const auto amp = q.find('&');
            const auto pair = q.substr(0, amp);
            q = amp == std::string_view::npos ? std::string_view() : q.substr(amp + 1);
            if (pair.empty()) continue;
            const auto eq = pair.find('=');
            auto k = old_decode(pair.substr(0, eq), true);
            auto v = old_decode(eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1), true);
            if (!k || !v || !clean(*k) || !clean(*v)) return {400, {}, {}};
            e.query.emplace_back(*k, *v);
        }
    }
    return e;
}

// ---- the router under test

http::router echo_router() {
    http::router r(nullptr);
    const auto echo = [](const http::request_context& c) {
        json::array params, query;
        for (const auto& [k, v] : c.params) params.emplace_back(v);
        for (const auto& [k, v] : c.query) query.push_back(json::array{json::string(k), json::string(v)});
        return http::json_response(200, json::object{{"params", std::move(params)}, {"query", std::move(query)}});
    };
    r.add("GET", "/{a}", route_kind::read, echo);
    r.add("GET", "/{a}/{b}", route_kind::read, echo);
    r.add("GET", "/{a}/{b}/{c}", route_kind::read, echo);
    return r;
}

// The answer as an `expected` (JSON strings are byte strings here: Boost.JSON keeps any bytes).
expected actual(const http::router& r, const std::string& target) {
    http::request req;
    req.method = "GET";
    req.target = target;
    const auto res = r.handle(req);
    expected e{res.status, {}, {}};
    if (res.status != 200) return e;
    const auto v = json::parse(res.body);
    for (const auto& p : v.at("params").as_array()) e.params.emplace_back(p.as_string());
    for (const auto& q : v.at("query").as_array())
        e.query.emplace_back(std::string(q.as_array()[0].as_string()), std::string(q.as_array()[1].as_string()));
    return e;
}

std::string hex(std::string_view s) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : s) {
        out += digits[c >> 4];
        out += digits[c & 15];
        out += ' ';
    }
    return out;
}

void same(const http::router& r, const std::string& target) {
    const auto want = reference(target);
    const auto got = actual(r, target);
    INFO("target " << hex(target));
    CHECK(got.status == want.status);
    if (got.status == want.status && want.status == 200) {
        CHECK(got.params == want.params);
        CHECK(got.query == want.query);
    }
}

} // namespace

TEST_CASE("router: Boost.URL decodes request targets exactly as the router did before (dot segments, raw bytes, "
          "'+', empty pairs, %2F, bad escapes)",
          "[daemon][router]") {
    const auto r = echo_router();
    for (const char* t :
         {"/", "//", "/a", "/a/", "/a//b", "//a", "/./a", "/.", "/./", "/.//a", "/..", "/a/../b", "/a/./b", "/%2E/a",
          "/a%2Fb/c", "/a%2fb", "/i%2D1?state=running&x=a+b", "/a?", "/a?&", "/a?&&k=v&&", "/a?=v", "/a?k", "/a?k=",
          "/a?a=b=c", "/a?k=%2B%20+", "/a?k=1&k=2", "/a+b", "/a%20b", "/%zz", "/a%4", "/a%", "/a?k=%zz", "/a?%4=1",
          "/a?k=%", "/\xC3\xA9t\xC3\xA9", "/%C3%A9t%C3%A9", "/\xC3%A9", "/x\xFF", "/x%FF", "/a?k=\xC3\xA9",
          "/a?k=\xFF", "/a\"b\\c", "/a{b}|c^`[d]", "/a#frag", "/a?k=v#frag", "/a?k=v?w/x", "/a;p=1", "/a:b@c!$&'()*,=",
          "/a%00", "/a?k=%00", "/a%0A", "/a%7F", "/a/b/c/d", "a/b", "", "?a=1", "/a?k=%C3", "/a%C0%AF"}) {
        same(r, t);
    }
    // A raw byte is its own percent-escape: the same instance either way.
    CHECK(actual(r, "/\xC3\xA9").params == actual(r, "/%C3%A9").params);
}

TEST_CASE("router: Boost.URL decodes random targets exactly as the router did before", "[daemon][router]") {
    const auto r = echo_router();
    static const std::vector<std::string> pieces{
        "/",  "/",   "/",    "%",   "%2",  "%2F", "%2f", "%zz", "%C3%A9", "%FF", "%00", "%25", "%2B", "+",   "=",
        "&",  "&",   "?",    "?",   ".",   "..",  "a",   "b",   "k=v",    "\xC3\xA9", "\xFF", "\x80", "\"", "\\",
        "#",  "{",   "}",    "[",   "]",   "|",   "^",   "`",   "<",      ">",   ":",   "@",   "!",   "$",   "'",
        "(",  ")",   "*",    ",",   ";",   "~",   "-",   "_",   "%2E",    "%7F", "%0A", "%E2%82", "\xE2\x82\xAC", " "};
    std::mt19937 rng(151);
    std::uniform_int_distribution<std::size_t> pick(0, pieces.size() - 1), len(0, 10);
    for (int i = 0; i < 30000; ++i) {
        std::string t = "/";
        const auto n = len(rng);
        for (std::size_t k = 0; k < n; ++k) t += pieces[pick(rng)];
        same(r, t);
    }
}
