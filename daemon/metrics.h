// The daemon's Prometheus metrics (DESIGN.md "Metrics"): one registry, served as text by the
// HTTP server's /metrics route (prometheus-cpp's own civetweb exposer is deliberately unused).
// Names: `mqledger_` prefix, `_total` on counters, seconds as the unit, bounded labels only.
#pragma once

#include <memory>
#include <string>
#include <string_view>

namespace prometheus {
class Registry;
} // namespace prometheus

namespace mqledger {

/// Owns the registry and the HTTP and database families. Add further families (events
/// appended, timers, instances by state, …) to `registry()`. Thread-safe.
class metrics {
public:
    explicit metrics(std::string_view version);
    ~metrics();
    metrics(const metrics&) = delete;
    metrics& operator=(const metrics&) = delete;

    /// Counts one answered request. `route` must be a route pattern (never the raw path) and
    /// unknown methods are folded into "other", so the label sets stay bounded.
    void observe_request(std::string_view method, std::string_view route, int status, double seconds);

    /// mqledger_database_up: 1 when the last readiness probe reached the database.
    void set_database_up(bool up);

    /// The Prometheus text exposition of everything registered.
    [[nodiscard]] std::string exposition() const;

    [[nodiscard]] prometheus::Registry& registry() noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace mqledger
