// The daemon's Prometheus metrics (DESIGN.md "Metrics"): one registry, served as text by the
// HTTP server's /metrics route (prometheus-cpp's own civetweb exposer is deliberately unused).
// Names: `mqledger_` prefix, `_total` on counters, seconds as the unit, bounded labels only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>
#include <string>
#include <string_view>

namespace prometheus {
class Registry;
} // namespace prometheus

namespace mqledger {

struct unit_outcome;

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
    /// Timer leadership of this daemon (mqledger_timer_leader).
    void set_timer_leader(bool leading);
    /// The policy table version in force (issue 15). Thread-safe.
    void set_policy_version(std::int32_t version);

    /// Events appended by one append (counted by type; releases also by cause) and its duration.
    void observe_append(const std::vector<std::pair<std::string, std::string>>& type_and_release_cause,
                        double seconds);

    /// A timer fired `late_seconds` after its deadline (0 or more).
    void observe_timer(std::string_view kind, double late_seconds);

    /// Usage billing (issue 15), from a unit this daemon appended: every usage record it
    /// recorded (mqledger_usage_records_total) and every usage item its settlements billed
    /// (mqledger_usage_billed_minor_total, in minor units), by the instance's product and the
    /// metric. Counted where the append happens, so summing over daemons counts each once.
    /// Meant for engine_hooks::unit_written. The series of the default policy table's metrics
    /// exist from the start, at zero.
    void observe_unit(const unit_outcome& o);

    /// Gauges that mirror the projections, refreshed before each scrape.
    struct projection_figures {
        struct count { std::string product, billing, state; std::int64_t n = 0; };
        std::vector<count> instances;
        std::int64_t timers_pending = 0;
        std::int64_t releases_next_24h = 0;
        std::int64_t releases_next_7d = 0;
        std::int64_t accounts_overdue = 0;
        std::int64_t head_position = 0;
    };
    void set_projection_figures(const projection_figures& f);

    /// The engine's state cache and the writer's queue, refreshed before each scrape.
    struct runtime_figures {
        std::uint64_t cache_hits = 0, cache_misses = 0;   // since start
        std::size_t cache_entries = 0, cache_capacity = 0;
        std::size_t queued_events = 0, queued_bytes = 0;
    };
    void set_runtime_figures(const runtime_figures& f);

    /// The Merkle tree and the newest checkpoint, refreshed before each scrape (issue 14).
    struct transparency_figures {
        std::int64_t tree_size = 0;
        std::int64_t checkpoint_size = -1;        // -1: no checkpoint yet
        double checkpoint_age_seconds = -1;       // by the daemon's clock; -1: no checkpoint yet
        std::vector<std::pair<std::string, bool>> cosigned;   // per configured witness: on the newest checkpoint?
    };
    void set_transparency_figures(const transparency_figures& f);
    /// Creates the co-signature counters of these witnesses (and of "unknown") at zero.
    void declare_witnesses(const std::vector<std::string>& names);
    /// A co-signature POSTed by `witness` (a configured name, or "unknown"): accepted or refused.
    void observe_cosignature(std::string_view witness, bool accepted);

    /// Called at the start of every exposition (to refresh the projection gauges); set before
    /// serving.
    void on_scrape(std::function<void()> fn);

    /// The Prometheus text exposition of everything registered.
    [[nodiscard]] std::string exposition() const;

    [[nodiscard]] prometheus::Registry& registry() noexcept;

private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

} // namespace mqledger
