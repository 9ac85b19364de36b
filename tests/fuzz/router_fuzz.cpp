// libFuzzer harness: the router (daemon/router.h) — path and query percent-decoding, route
// matching, the Authorization header — with the real clock routes (daemon/routes_clock.cpp)
// and stand-ins for the API routes that call the real body parsers (daemon/api_parse.h) the
// way routes_api.cpp does.
//
// Input: an HTTP request in a simplified text form:
//     METHOD SP TARGET LF
//     NAME ":" SP? VALUE LF        (zero or more headers)
//     LF
//     BODY
// Tokens in force (a temporary tokens file): "adm" (admin), "ops" (operator), "bil" (billing),
// "aud" (auditor).
//
// Properties:
//  - the answer is one of the documented statuses, never 500 (a 500 means a parser threw
//    something other than api_error), with a JSON body; an error body is
//    {"error": {"code", "message"}} and its code matches its status;
//  - a handler only ever sees path parameters and query keys/values that are non-empty (path
//    parameters), valid UTF-8 and free of control characters, and a caller that is allowed;
//  - route_of agrees with the route the answer was counted under;
//  - percent_decode inverts percent-encoding, and a decoded clock moves only forward, by at most
//    a century, and answers with the time it now shows.
#include "daemon/api_parse.h"
#include "daemon/auth.h"
#include "ledger/store/hash_chain.h"
#include "daemon/router.h"
#include "daemon/routes.h"
#include "ledger/canonical_json.h"
#include "ledger/codec.h"
#include "tests/fuzz/fuzz_support.h"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unistd.h>

using namespace mqledger;
namespace json = boost::json;
using mqledger::fuzz::printable;

namespace {

// A tokens-file line's digest: SHA-256 of the token, in the project's one hex encoding.
std::string digest_hex(std::string_view token) {
    const auto d = sha256(token);
    return store::to_hex(d.data(), d.size());
}

bool clean(std::string_view s) {
    return valid_utf8(s) && std::none_of(s.begin(), s.end(), [](char c) {
               return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
           });
}

// Checked inside every handler: what the router hands over.
void check_context(const http::request_context& ctx, route_kind need) {
    const std::string where = printable(ctx.req.method + " " + ctx.req.target);
    FUZZ_CHECK(!ctx.path.empty() && ctx.path.front() == '/', where);
    for (const auto& [k, v] : ctx.params)
        FUZZ_CHECK(!v.empty() && clean(v), "a path parameter with controls or invalid UTF-8: " + where);
    for (const auto& [k, v] : ctx.query)
        FUZZ_CHECK(clean(k) && clean(v), "a query parameter with controls or invalid UTF-8: " + where);
    if (need != route_kind::open) {
        FUZZ_CHECK(ctx.who.has_value(), "no caller on a protected route: " + where);
        FUZZ_CHECK(allowed(ctx.who->who, need), "a caller without the role got through: " + where);
    }
}

std::string path_id(const http::request_context& ctx) {
    auto id = ctx.param("id");
    try {
        api::check_id(id, "id");
    } catch (const http::api_error&) {
        throw http::api_error(404, "not_found", "no such thing");
    }
    return id;
}

// As routes_api.cpp's query_int and query_time.
void query_checks(const http::request_context& ctx) {
    for (std::string_view key : {"limit", "after", "before"})
        if (const auto v = ctx.query_value(key)) {
            std::int64_t n = 0;
            const auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
            if (ec != std::errc{} || p != v->data() + v->size() || n < 0 || n > 1000)
                throw http::api_error(422, "invalid", "bad integer", {{"field", key}});
        }
    for (std::string_view key : {"as_of", "since", "until"})
        if (const auto v = ctx.query_value(key); v && !codec::parse_time(*v))
            throw http::api_error(422, "invalid", "bad time", {{"field", key}});
}

http::response ok(const http::request_context& ctx) {
    json::object o;
    for (const auto& [k, v] : ctx.params) o[k] = v;
    return http::json_response(200, o);
}

struct fixture {
    std::string tokens_path;
    std::unique_ptr<token_store> tokens;
    std::unique_ptr<http::router> r;
    std::optional<manual_clock> clock;   // re-made for every input, the routes hold its address
    std::vector<std::pair<std::string, std::string>> route_list;

    fixture() {
        char name[] = "/tmp/mqledger-fuzz-tokens-XXXXXX";
        const int fd = mkstemp(name);
        if (fd < 0) std::abort();
        close(fd);
        tokens_path = name;
        std::ofstream(tokens_path) << "admin ada " << digest_hex("adm") << "\noperator olga " << digest_hex("ops")
                                   << "\nbilling bill " << digest_hex("bil") << "\nauditor audrey " << digest_hex("aud")
                                   << "\n";
        tokens = std::make_unique<token_store>(tokens_path);
        std::remove(tokens_path.c_str());
        r = std::make_unique<http::router>(tokens.get());
        clock.emplace(*codec::parse_time("2023-10-13T14:00:00Z"));

        const auto sync = [this](const char* method, const char* pattern, route_kind need,
                                 std::function<void(const http::request_context&)> body) {
            r->add(method, pattern, need, [need, body](const http::request_context& ctx) {
                check_context(ctx, need);
                body(ctx);
                return ok(ctx);
            });
        };
        // Asynchronous as in routes_api.cpp: the answer comes through `done`.
        const auto async = [this](const char* method, std::string pattern, route_kind need,
                                  std::function<void(const http::request_context&)> body) {
            r->add_async(method, pattern, need, [need, body](const http::request_context& ctx, http::responder done) {
                check_context(ctx, need);
                body(ctx);
                done(ok(ctx));
            });
        };
        using ctx_t = const http::request_context&;
        async("POST", "/v1/accounts", route_kind::account_write, [](ctx_t c) { (void)api::parse_open_account(c.json_body()); });
        async("POST", "/v1/accounts/{id}/funds", route_kind::account_write, [](ctx_t c) {
            (void)path_id(c);
            (void)api::parse_funds(c.json_body());
        });
        async("POST", "/v1/accounts/{id}/charges", route_kind::account_write, [](ctx_t c) {
            (void)path_id(c);
            (void)api::parse_charge(c.json_body());
        });
        async("GET", "/v1/accounts/{id}", route_kind::read, [](ctx_t c) { (void)path_id(c); });
        async("POST", "/v1/instances", route_kind::instance_action, [](ctx_t c) { (void)api::parse_purchase(c.json_body()); });
        async("POST", "/v1/instances/import", route_kind::admin_only, [](ctx_t c) { (void)api::parse_import(c.json_body()); });
        async("POST", "/v1/instances/{id}/actions/{action}", route_kind::instance_action, [](ctx_t c) {
            (void)path_id(c);
            (void)api::parse_action(c.param("action"), c);
        });
        for (std::string kind : {"topics", "groups"}) {
            async("POST", "/v1/instances/{id}/" + kind, route_kind::instance_action, [](ctx_t c) {
                (void)path_id(c);
                (void)api::parse_name(c.json_body());
            });
            async("DELETE", "/v1/instances/{id}/" + kind + "/{name}", route_kind::instance_action, [](ctx_t c) {
                (void)path_id(c);
                const auto& n = c.param("name");
                if (n.size() > 255) throw http::api_error(422, "invalid", "name too long", {{"field", "name"}});
            });
        }
        async("GET", "/v1/instances/{id}", route_kind::read, [](ctx_t c) {
            (void)path_id(c);
            query_checks(c);
        });
        async("GET", "/v1/instances", route_kind::read, [](ctx_t c) {
            for (const char* k : {"state", "product", "billing"}) {
                const auto v = c.query_value(k).value_or("");
                const bool good = v.empty() || (std::string_view(k) == "state"     ? parse_state(v).has_value()
                                                : std::string_view(k) == "product" ? parse_product(v).has_value()
                                                                                   : parse_billing(v).has_value());
                if (!good) throw http::api_error(422, "invalid", "unknown value", {{"field", k}});
            }
            query_checks(c);
        });
        async("GET", "/v1/instances/{id}/events", route_kind::read, [](ctx_t c) {
            (void)path_id(c);
            query_checks(c);
        });
        async("GET", "/v1/events", route_kind::read, query_checks);
        async("GET", "/v1/releases/pending", route_kind::read, query_checks);
        async("GET", "/v1/ledger/head", route_kind::read, [](ctx_t) {});
        sync("GET", "/healthz", route_kind::open, [](ctx_t) {});
        sync("GET", "/readyz", route_kind::open, [](ctx_t) {});
        sync("GET", "/metrics", route_kind::open, [](ctx_t) {});
        add_clock_routes(*r, *clock, {}, {});
    }
};

fixture& the_fixture() {
    static fixture f;
    return f;
}

http::request request_of(std::string_view in) {
    http::request req;
    auto line = [&in]() {
        const auto nl = in.find('\n');
        auto l = in.substr(0, nl);
        in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
        return l;
    };
    const auto first = line();
    const auto sp = first.find(' ');
    req.method = std::string(first.substr(0, sp));
    req.target = sp == std::string_view::npos ? std::string() : std::string(first.substr(sp + 1));
    while (!in.empty()) {
        const auto h = line();
        if (h.empty()) break;
        const auto colon = h.find(':');
        auto value = colon == std::string_view::npos ? std::string_view() : h.substr(colon + 1);
        if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
        req.headers.push_back({std::string(h.substr(0, colon)), std::string(value)});
    }
    req.body = std::string(in);
    return req;
}

std::string percent_encode(std::string_view s) {
    static constexpr char digits[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += digits[c >> 4];
            out += digits[c & 15];
        }
    }
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto& f = the_fixture();
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::string where = printable(input);

    // percent_decode inverts percent_encode, with and without '+' as space.
    FUZZ_CHECK(http::percent_decode(percent_encode(input)) == std::string(input), "percent_decode(encode(s)) != s: " + where);
    FUZZ_CHECK(http::percent_decode(percent_encode(input), true) == std::string(input), where);

    f.clock.emplace(*codec::parse_time("2023-10-13T14:00:00Z"));
    const auto before = f.clock->now();
    const auto req = request_of(input);
    const auto res = f.r->handle(req);

    FUZZ_CHECK(res.internal_error.empty() && res.status != 500,
               "500 internal error (" + res.internal_error + "): " + where);
    static constexpr int documented[] = {200, 400, 401, 403, 404, 405, 422};
    FUZZ_CHECK(std::find(std::begin(documented), std::end(documented), res.status) != std::end(documented),
               "status " + std::to_string(res.status) + ": " + where);

    boost::system::error_code ec;
    const auto body = json::parse(res.body, ec);
    FUZZ_CHECK(!ec && body.is_object(), "the answer is not a JSON object: " + printable(res.body) + " for " + where);
    if (res.status >= 400) {
        const auto* err = body.get_object().if_contains("error");
        FUZZ_CHECK(err && err->is_object(), "an error without {\"error\": …}: " + where);
        const auto* code = err->get_object().if_contains("code");
        const auto* message = err->get_object().if_contains("message");
        FUZZ_CHECK(code && code->is_string() && message && message->is_string(), "an error without code or message: " + where);
        const std::string_view c(code->get_string().data(), code->get_string().size());
        const bool matches = (res.status == 400 && c == "malformed") || (res.status == 401 && c == "unauthenticated") ||
                             (res.status == 403 && c == "forbidden") || (res.status == 404 && c == "not_found") ||
                             (res.status == 405 && c == "method_not_allowed") || (res.status == 422 && c == "invalid");
        FUZZ_CHECK(matches, "status " + std::to_string(res.status) + " with code " + std::string(c) + ": " + where);
    }
    if (res.route != "unmatched")
        FUZZ_CHECK(f.r->route_of(req.method, req.target) == res.route,
                   "route_of says " + f.r->route_of(req.method, req.target) + ", the answer " + res.route + ": " + where);

    // The clock: forward only, at most a century, and the answer shows the time it now holds.
    const auto after = f.clock->now();
    FUZZ_CHECK(after >= before && after - before <= std::chrono::hours(24 * 366 * 100 + 24), "the clock moved badly: " + where);
    if (after != before) {
        FUZZ_CHECK(res.status == 200 && res.route == "/v1/clock", "the clock moved on a refusal: " + where);
        const auto* now = body.get_object().if_contains("now");
        FUZZ_CHECK(now && now->is_string() && std::string_view(now->get_string()) == codec::format_time(after), "the clock answered another time: " + where);
    }
    return 0;
}
