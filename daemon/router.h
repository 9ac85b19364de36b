// HTTP routing as a plain function of the request (STYLE.md: Beast's session shape with the
// router a pure function from request to response), so that most HTTP behaviour is tested
// without sockets. The types here are the daemon's own, not Beast's: handlers and their tests
// never include Beast or Asio (http_server.cpp converts at the edge).
#pragma once

#include "daemon/auth.h"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mqledger::http {

struct header {
    std::string name;
    std::string value;
};

struct request {
    std::string method;                 // as received, e.g. "GET"
    std::string target;                 // path and query, e.g. "/v1/instances?state=running"
    std::vector<header> headers;
    std::string body;

    /// The first header called `name` (case-insensitive); empty when absent.
    [[nodiscard]] std::string_view header_value(std::string_view name) const noexcept;
};

struct response {
    int status = 200;
    std::string content_type = "application/json";
    std::vector<header> headers;        // besides Content-Type, Content-Length, Connection
    std::string body;
    // Not sent to the client: what the server logs and counts.
    std::string route = "unmatched";    // the matched route pattern: the metrics label
    std::string internal_error;         // what a failed handler threw, for the log line
};

/// A JSON response; `v` is serialised as the body.
[[nodiscard]] response json_response(int status, const boost::json::value& v);

/// An API.md error: `{"error": {"code", "message", …extra}}`.
[[nodiscard]] response error_response(int status, std::string_view code, std::string_view message,
                                      const boost::json::object& extra = {});

/// Thrown by a handler to answer with an API.md error; the router turns it into the response.
/// Lets a handler leave from deep inside its body parsing with the documented error.
struct api_error : std::runtime_error {
    api_error(int status_, std::string code_, const std::string& message, boost::json::object extra_ = {})
        : std::runtime_error(message), status(status_), code(std::move(code_)), extra(std::move(extra_)) {}
    int status;
    std::string code;
    boost::json::object extra;
};

/// The request as a handler sees it: path parameters, query parameters and the caller.
struct request_context {
    const request& req;
    std::string_view path;                                     // decoded target path
    std::vector<std::pair<std::string, std::string>> params;   // from {name} segments, decoded
    std::vector<std::pair<std::string, std::string>> query;    // decoded, in order
    std::optional<principal> who;                              // nullopt on open routes

    /// The path parameter `{name}`; throws std::out_of_range for a name the pattern lacks.
    [[nodiscard]] const std::string& param(std::string_view name) const;
    /// The first query parameter `name`, if present.
    [[nodiscard]] std::optional<std::string> query_value(std::string_view name) const;
    /// The body as JSON; throws api_error 400 `malformed` when it is not JSON.
    [[nodiscard]] boost::json::value json_body() const;
};

using handler = std::function<response(const request_context&)>;

/// Answers later: must call `done` exactly once, from any thread, and may throw (api_error …)
/// only before it arranged for `done` to be called. The context is valid only during the call:
/// copy what the deferred work needs.
using responder = std::function<void(response&&)>;
using async_handler = std::function<void(const request_context&, responder done)>;

/// Request targets are parsed with Boost.URL (parse_path, parse_query): segments and query
/// parameters percent-decoded, '+' a space in the query only, a bad escape 400 `malformed`; a raw
/// byte that RFC 3986 does not allow unescaped (0x80-0xFF, '"', '\\', '{', …; Beast lets them
/// through) counts as its own percent-escape, so "/v1/instances/\xC3\xA9" and "%C3%A9" are one id.
/// Routes: `add("POST", "/v1/instances/{id}/actions/{action}", route_kind::instance_action, fn)`.
/// Matching: literal segments beat `{param}` segments (so `/v1/instances/import` wins over
/// `/v1/instances/{id}`); a path that matches with another method gets 405 with `Allow`; no
/// match gets 404 `not_found`. Authentication and the role check happen before the handler.
/// Register everything before serving; `handle` is then thread-safe.
class router {
public:
    /// `tokens` null means --insecure-no-auth: every caller is an admin named "anonymous".
    explicit router(const token_store* tokens) : tokens_(tokens) {}

    /// Registers a route; throws std::invalid_argument for a malformed pattern or a duplicate.
    void add(std::string_view method, std::string_view pattern, route_kind need, handler fn);
    /// Registers a route answered later (e.g. after a group commit), without blocking the caller.
    void add_async(std::string_view method, std::string_view pattern, route_kind need, async_handler fn);

    /// The whole HTTP behaviour of the API for one request. Never throws: a handler's exception
    /// becomes 500 `internal` (logged through response::internal_error). Thread-safe.
    /// An asynchronous route is waited for.
    [[nodiscard]] response handle(const request& req) const noexcept;
    /// The same, answering through `done` (once, possibly from another thread), so asynchronous
    /// routes never block the caller. Thread-safe.
    void handle(const request& req, responder done) const noexcept;

    /// The metrics label for a request rejected before routing (e.g. 413): its route pattern,
    /// or "unmatched".
    [[nodiscard]] std::string route_of(std::string_view method, std::string_view target) const;

private:
    struct segment {
        std::string text;   // literal text, or the parameter name
        bool is_param = false;
    };
    struct route {
        std::string method;
        std::string pattern;
        std::vector<segment> segments;
        route_kind need;
        handler fn;
        async_handler afn;   // set instead of fn for asynchronous routes
    };
    struct match {
        const route* r;
        std::vector<std::pair<std::string, std::string>> params;
    };

    response dispatch(const request& req, const responder* done, bool& deferred) const noexcept;
    std::vector<match> matches(const std::vector<std::string>& path_segments) const;
    static bool more_specific(const route& a, const route& b) noexcept;

    const token_store* tokens_;
    std::vector<route> routes_;
};

/// Percent-decodes `s` with Boost.URL (and `+` as space when `plus_is_space`); nullopt on a bad
/// escape ('%' not followed by two hex digits). Other bytes, 0x80-0xFF included, are kept.
[[nodiscard]] std::optional<std::string> percent_decode(std::string_view s, bool plus_is_space = false);

} // namespace mqledger::http
