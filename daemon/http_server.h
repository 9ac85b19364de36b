// The HTTP/1.1 server (Boost.Beast advanced-server shape): a listener accepts onto a strand per
// connection; each session reads with a timeout and a body limit on every read, answers through
// the request handler, keeps the connection alive, and closes it on shutdown once its in-flight
// request is answered. No thread per connection: the io_context runs on a small fixed pool.
//
// Asio and Beast stay inside http_server.cpp; callers see only the daemon's own request and
// response types (router.h).
#pragma once

#include "daemon/config.h"
#include "daemon/router.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

namespace boost::asio {
class io_context;
} // namespace boost::asio

namespace mqledger::http {

struct server_options {
    listen_address listen;
    std::size_t body_limit = 65536;
    std::size_t header_limit = 16 * 1024;
    std::chrono::seconds read_timeout{30};   // to receive one whole request once it started
    std::chrono::seconds idle_timeout{60};   // between requests on a keep-alive connection
};

/// Answers one request by calling `done` exactly once, from any thread. Called on the
/// connection's strand; a handler that must wait (e.g. for a group commit) should call `done`
/// later instead of blocking the I/O thread.
using request_handler = std::function<void(request&& req, std::function<void(response&&)> done)>;

/// Told about every response written: for the request log line and the metrics.
using response_observer = std::function<void(std::string_view method, std::string_view target,
                                             const response& res, double seconds, std::size_t bytes)>;

struct server_state;   // http_server.cpp

/// Adapts a router to a request_handler; asynchronous routes answer once their work is done.
[[nodiscard]] request_handler routed(const router& r);

class server {
public:
    /// `route_label` names the route of requests rejected before the handler (413, 400) for
    /// the observer; usually router::route_of.
    server(boost::asio::io_context& ioc, server_options options, request_handler handler,
           std::function<std::string(std::string_view method, std::string_view target)> route_label,
           response_observer observer);
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Binds and starts accepting; returns the bound port (useful with port 0). Throws
    /// std::runtime_error naming the address when it cannot listen.
    std::uint16_t start();

    /// Graceful shutdown: stops accepting, closes idle connections, lets every request being
    /// read or handled finish and be answered, then closes its connection. `on_drained` runs on
    /// the io_context once no connection is left. Thread-safe; later calls are ignored.
    void stop(std::function<void()> on_drained);

    /// Connections currently open. Thread-safe.
    [[nodiscard]] std::size_t connections() const;

private:
    std::shared_ptr<server_state> state_;
};

} // namespace mqledger::http
