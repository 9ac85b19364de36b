// What the libFuzzer harnesses of tests/fuzz/ found in the daemon's parsers, one test per
// finding, with the input that found it (its crash file is also in the seed corpus).
#include "daemon/auth.h"
#include "daemon/router.h"
#include "ledger/canonical_json.h"

#include "tests/e2e/http_client.h"

#include <boost/json/parse.hpp>

#include <catch2/catch.hpp>

#include <string>

using namespace mqledger;

namespace {

std::string tokens_error_of(const std::string& text) {
    try {
        (void)token_table::parse(text, "tokens.txt");
    } catch (const tokens_error& e) {
        return e.what();
    }
    return "no error";
}

http::request request(std::string method, std::string target) {
    http::request r;
    r.method = std::move(method);
    r.target = std::move(target);
    return r;
}

// The body is JSON (so also UTF-8) with the error code expected.
void check_error_body(const http::response& res, int status, const std::string& code) {
    INFO(res.body);
    CHECK(res.status == status);
    CHECK(valid_utf8(res.body));
    boost::system::error_code ec;
    const auto v = boost::json::parse(res.body, ec);
    REQUIRE_FALSE(ec);
    CHECK(v.at("error").at("code") == code.c_str());
}

} // namespace

// tokens_fuzz: crash-e0a2531871a75d03640cf1864f891a259a542f96. A name that is not UTF-8 was
// accepted; it is recorded as the actor in the jsonb metadata of every event, which the store
// refuses, so the token authenticated but every command it made failed.
TEST_CASE("fuzz regression: a token name must be UTF-8 without control characters", "[daemon][fuzz]") {
    const auto digest = test::sha256_hex("tok");
    CHECK(tokens_error_of("operator \xe5os\xc3\xa9 " + digest + "\n") ==
          "tokens.txt line 1: the name must be UTF-8 text without control characters");
    CHECK(tokens_error_of("# x\nadmin a\x0b" "b " + digest).find("line 2: the name must be UTF-8") != std::string::npos);
    CHECK(tokens_error_of("admin a\x7f " + digest).find("line 1: the name must be UTF-8") != std::string::npos);
    CHECK(tokens_error_of("admin a\rb " + digest).find("line 1: the name must be UTF-8") != std::string::npos);

    const auto table = token_table::parse("operator jos\xc3\xa9 " + digest + "\r\n", "tokens.txt");
    REQUIRE(table.find("tok"));
    CHECK(table.find("tok")->name == "jos\xc3\xa9");
}

// router_fuzz: crash-4901efe0025bbe58beacccc611db20caa81f56b8. Beast lets bytes 0x80-0xFF
// through in the request target; the 404 and 405 messages quoted the raw target, so the
// answer was not UTF-8 and not JSON.
TEST_CASE("fuzz regression: errors that quote the request target stay JSON", "[daemon][fuzz]") {
    http::router r(nullptr);
    r.add("GET", "/v1/instances/{id}", route_kind::read,
          [](const http::request_context&) { return http::json_response(200, boost::json::object{}); });

    auto res = r.handle(request("GET", "\x88stances/rs-1"));
    check_error_body(res, 404, "not_found");
    CHECK(res.body.find("no route for GET %88stances/rs-1") != std::string::npos);

    // Decodes to a valid id ("é"), so it matches the route, but the raw text is not UTF-8.
    res = r.handle(request("POST", "/v1/instances/\xc3%A9"));
    check_error_body(res, 405, "method_not_allowed");
    CHECK(res.body.find("POST is not allowed on /v1/instances/%C3%A9") != std::string::npos);

    res = r.handle(request("GET", "/v1/\xc3%A9/x"));
    check_error_body(res, 404, "not_found");

    // ASCII targets are quoted as before.
    res = r.handle(request("GET", "/v1/nothing"));
    check_error_body(res, 404, "not_found");
    CHECK(res.body.find("no route for GET /v1/nothing") != std::string::npos);
}
