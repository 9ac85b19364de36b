#include "daemon/metrics.h"
#include "daemon/readiness.h"
#include "daemon/routes.h"

namespace mqledger {

void add_ops_routes(http::router& r, const readiness_monitor& readiness, const metrics& m) {
    r.add("GET", "/healthz", route_kind::open, [](const http::request_context&) {
        return http::json_response(200, boost::json::object{{"status", "ok"}});
    });

    r.add("GET", "/readyz", route_kind::open, [&readiness](const http::request_context&) {
        const auto state = readiness.current();
        if (!state) return http::error_response(503, "unavailable", "database not checked yet");
        switch (*state) {
        case store::readiness::ready: return http::json_response(200, boost::json::object{{"status", "ready"}});
        case store::readiness::not_migrated: return http::error_response(503, "unavailable", "database not migrated");
        case store::readiness::unreachable: break;
        }
        return http::error_response(503, "unavailable", "database unreachable");
    });

    r.add("GET", "/metrics", route_kind::open, [&m](const http::request_context&) {
        http::response res;
        res.content_type = "text/plain; version=0.0.4; charset=utf-8";
        res.body = m.exposition();
        return res;
    });
}

} // namespace mqledger
