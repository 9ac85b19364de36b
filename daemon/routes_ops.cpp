#include "daemon/metrics.h"
#include "daemon/readiness.h"
#include "daemon/routes.h"

namespace mqledger {

void add_ops_routes(http::router& r, const readiness_monitor& readiness, const metrics& m,
                    std::function<bool()> caught_up, run_blocking_fn run) {
    r.add("GET", "/healthz", route_kind::open, [](const http::request_context&) {
        return http::json_response(200, boost::json::object{{"status", "ok"}});
    });

    r.add("GET", "/readyz", route_kind::open, [&readiness, caught_up](const http::request_context&) {
        const auto state = readiness.current();
        if (!state) return http::error_response(503, "unavailable", "database not checked yet");
        switch (*state) {
        case store::readiness::ready:
            if (caught_up && !caught_up())
                return http::error_response(503, "unavailable", "firing the timers that came due while down");
            return http::json_response(200, boost::json::object{{"status", "ready"}});
        case store::readiness::not_migrated: return http::error_response(503, "unavailable", "database not migrated");
        case store::readiness::unreachable: break;
        }
        return http::error_response(503, "unavailable", "database unreachable");
    });

    r.add_async("GET", "/metrics", route_kind::open, [&m, run](const http::request_context&, http::responder done) {
        auto answer = [&m, done = std::move(done)]() mutable {
            http::response res;
            res.content_type = "text/plain; version=0.0.4; charset=utf-8";
            try {
                res.body = m.exposition();
            } catch (const std::exception& e) {
                res = http::error_response(500, "internal", "internal error");
                res.internal_error = e.what();
            }
            done(std::move(res));
        };
        if (run) run(std::move(answer));
        else answer();
    });
}

} // namespace mqledger
