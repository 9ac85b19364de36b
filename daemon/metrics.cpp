#include "daemon/metrics.h"

#include "ledger/events.h"
#include "ledger/instance.h"
#include "ledger/policy.h"
#include "ledger/unit.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <tuple>

namespace mqledger {

struct metrics::impl {
    std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
    prometheus::Family<prometheus::Counter>* requests = nullptr;
    prometheus::Family<prometheus::Histogram>* durations = nullptr;
    prometheus::Gauge* database_up = nullptr;
    prometheus::Gauge* timer_leader = nullptr;
    prometheus::Gauge* policy_version = nullptr;
    prometheus::Family<prometheus::Counter>* events = nullptr;
    prometheus::Family<prometheus::Counter>* releases = nullptr;
    prometheus::Histogram* append_seconds = nullptr;
    prometheus::Family<prometheus::Histogram>* lateness = nullptr;
    // Timer lateness: from milliseconds (the system clock's target is 100 ms) to a day (catch-up
    // after downtime, manual clock jumps).
    const prometheus::Histogram::BucketBoundaries late_buckets{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                               5,     60,    600,  3600,  21600, 86400};
    prometheus::Family<prometheus::Gauge>* instances = nullptr;
    prometheus::Gauge* timers_pending = nullptr;
    prometheus::Family<prometheus::Gauge>* pending_releases = nullptr;
    prometheus::Gauge* accounts_overdue = nullptr;
    prometheus::Gauge* head_position = nullptr;
    prometheus::Counter* cache_hits = nullptr;
    prometheus::Counter* cache_misses = nullptr;
    prometheus::Gauge* cache_entries = nullptr;
    prometheus::Gauge* cache_capacity = nullptr;
    prometheus::Gauge* queued_events = nullptr;
    prometheus::Gauge* queued_bytes = nullptr;
    prometheus::Gauge* tree_size = nullptr;
    prometheus::Gauge* checkpoint_size = nullptr;
    prometheus::Gauge* checkpoint_age = nullptr;
    prometheus::Family<prometheus::Gauge>* cosigned = nullptr;
    prometheus::Family<prometheus::Counter>* cosignatures = nullptr;
    prometheus::Family<prometheus::Counter>* usage_records = nullptr;
    prometheus::Family<prometheus::Counter>* usage_billed = nullptr;
    std::mutex scrape_mutex;
    std::function<void()> scrape_hook;
    std::set<std::tuple<std::string, std::string, std::string>> seen_counts;
    // From 0.5 ms (a cached read) to 10 s (a request stuck behind the database).
    const prometheus::Histogram::BucketBoundaries buckets{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};
};

metrics::metrics(std::string_view version) : impl_(std::make_unique<impl>()) {
    prometheus::BuildGauge()
        .Name("mqledger_build_info")
        .Help("Always 1; the labels say which build is running")
        .Register(*impl_->registry)
        .Add({{"version", std::string(version)}})
        .Set(1);
    impl_->requests = &prometheus::BuildCounter()
                           .Name("mqledger_http_requests_total")
                           .Help("HTTP requests answered, by method, route pattern and status")
                           .Register(*impl_->registry);
    impl_->durations = &prometheus::BuildHistogram()
                            .Name("mqledger_http_request_duration_seconds")
                            .Help("Time from a request fully read to its response fully written")
                            .Register(*impl_->registry);
    impl_->database_up = &prometheus::BuildGauge()
                              .Name("mqledger_database_up")
                              .Help("1 when the last readiness probe reached the database, else 0")
                              .Register(*impl_->registry)
                              .Add({});
    impl_->timer_leader = &prometheus::BuildGauge()
                               .Name("mqledger_timer_leader")
                               .Help("1 while this daemon fires the timers (holds the leader lock), else 0")
                               .Register(*impl_->registry)
                               .Add({});
    impl_->policy_version = &prometheus::BuildGauge()
                                 .Name("mqledger_policy_version")
                                 .Help("The policy table version in force in this daemon (0 until loaded)")
                                 .Register(*impl_->registry)
                                 .Add({});
    impl_->events = &prometheus::BuildCounter()
                         .Name("mqledger_events_appended_total")
                         .Help("Events appended to the ledger, by type")
                         .Register(*impl_->registry);
    impl_->releases = &prometheus::BuildCounter()
                           .Name("mqledger_releases_total")
                           .Help("Instances released, by cause (deadline or force_delete)")
                           .Register(*impl_->registry);
    impl_->append_seconds = &prometheus::BuildHistogram()
                                 .Name("mqledger_append_duration_seconds")
                                 .Help("Time from handing an append to the store to its batch committed")
                                 .Register(*impl_->registry)
                                 .Add({}, impl_->buckets);
    impl_->lateness = &prometheus::BuildHistogram()
                           .Name("mqledger_timer_lateness_seconds")
                           .Help("How long after its deadline a timer fired, by kind")
                           .Register(*impl_->registry);
    impl_->instances = &prometheus::BuildGauge()
                            .Name("mqledger_instances")
                            .Help("Instances per product, billing model and state (from the projections)")
                            .Register(*impl_->registry);
    impl_->timers_pending = &prometheus::BuildGauge()
                                 .Name("mqledger_timers_pending")
                                 .Help("Timers in the timers projection not yet fired")
                                 .Register(*impl_->registry)
                                 .Add({});
    impl_->pending_releases = &prometheus::BuildGauge()
                                   .Name("mqledger_pending_releases")
                                   .Help("Instances whose release falls within the window from now")
                                   .Register(*impl_->registry);
    impl_->accounts_overdue = &prometheus::BuildGauge()
                                   .Name("mqledger_accounts_overdue")
                                   .Help("Accounts that owe money")
                                   .Register(*impl_->registry)
                                   .Add({});
    impl_->head_position = &prometheus::BuildGauge()
                                .Name("mqledger_ledger_head_position")
                                .Help("Position of the last event in the ledger")
                                .Register(*impl_->registry)
                                .Add({});

    auto& lookups = prometheus::BuildCounter()
                        .Name("mqledger_state_cache_lookups_total")
                        .Help("Units' state lookups in the engine's cache, by result (hit or miss)")
                        .Register(*impl_->registry);
    impl_->cache_hits = &lookups.Add({{"result", "hit"}});
    impl_->cache_misses = &lookups.Add({{"result", "miss"}});
    impl_->cache_entries = &prometheus::BuildGauge()
                                .Name("mqledger_state_cache_entries")
                                .Help("Instance and account states in the engine's cache")
                                .Register(*impl_->registry)
                                .Add({});
    impl_->cache_capacity = &prometheus::BuildGauge()
                                 .Name("mqledger_state_cache_capacity")
                                 .Help("The cache's bound (--state-cache)")
                                 .Register(*impl_->registry)
                                 .Add({});
    impl_->queued_events = &prometheus::BuildGauge()
                                .Name("mqledger_writer_queue_events")
                                .Help("Events waiting for the writer (bounded by --queue-events)")
                                .Register(*impl_->registry)
                                .Add({});
    impl_->queued_bytes = &prometheus::BuildGauge()
                               .Name("mqledger_writer_queue_bytes")
                               .Help("Bytes of events waiting for the writer (bounded by --queue-bytes)")
                               .Register(*impl_->registry)
                               .Add({});

    impl_->tree_size = &prometheus::BuildGauge()
                            .Name("mqledger_merkle_tree_size")
                            .Help("Leaves (events) in the Merkle tree over the log")
                            .Register(*impl_->registry)
                            .Add({});
    impl_->checkpoint_size = &prometheus::BuildGauge()
                                  .Name("mqledger_checkpoint_tree_size")
                                  .Help("Tree size of the newest signed checkpoint (-1: none yet)")
                                  .Register(*impl_->registry)
                                  .Add({});
    impl_->checkpoint_size->Set(-1);
    impl_->checkpoint_age = &prometheus::BuildGauge()
                                 .Name("mqledger_checkpoint_age_seconds")
                                 .Help("Seconds since the newest checkpoint was signed (-1: none yet; it only "
                                       "changes when events were appended)")
                                 .Register(*impl_->registry)
                                 .Add({});
    impl_->checkpoint_age->Set(-1);
    impl_->cosigned = &prometheus::BuildGauge()
                           .Name("mqledger_checkpoint_cosigned")
                           .Help("1 when the newest checkpoint carries this witness's co-signature")
                           .Register(*impl_->registry);
    impl_->cosignatures = &prometheus::BuildCounter()
                               .Name("mqledger_cosignatures_total")
                               .Help("Witness co-signatures received, by witness and result (accepted, refused)")
                               .Register(*impl_->registry);

    impl_->usage_records = &prometheus::BuildCounter()
                                .Name("mqledger_usage_records_total")
                                .Help("Usage records recorded (POST /v1/instances/{id}/usage), by product and metric")
                                .Register(*impl_->registry);
    impl_->usage_billed = &prometheus::BuildCounter()
                               .Name("mqledger_usage_billed_minor_total")
                               .Help("Usage billed by settlements, in minor units, by product and metric")
                               .Register(*impl_->registry);
    {
        const auto table = policy_set::defaults();
        for (const auto p : {product::kafka, product::rabbitmq, product::rocketmq, product::mqtt})
            for (const auto b : {billing::subscription, billing::payg, billing::serverless})
                for (const auto& metric : table.get(p, b).usage_metrics) {
                    const std::map<std::string, std::string> labels{{"product", std::string(to_string(p))},
                                                                    {"metric", metric}};
                    impl_->usage_records->Add(labels);
                    impl_->usage_billed->Add(labels);
                }
    }

    // Every series of a counter or histogram exists from the start, at zero: Prometheus takes a
    // series' first sample as its baseline, so a series born at its first increment would hide
    // that increment from rate() and increase().
    for (const auto type : events::all_type_names()) impl_->events->Add({{"type", std::string(type)}});
    for (const auto cause : {events::release_cause::deadline, events::release_cause::force_delete})
        impl_->releases->Add({{"cause", std::string(events::to_string(cause))}});
    for (int k = 0; k <= static_cast<int>(timer_kind::force_delete); ++k)
        impl_->lateness->Add({{"kind", std::string(to_string(static_cast<timer_kind>(k)))}}, impl_->late_buckets);
}

void metrics::observe_append(const std::vector<std::pair<std::string, std::string>>& type_and_release_cause,
                             double seconds) {
    impl_->append_seconds->Observe(seconds);
    for (const auto& [type, cause] : type_and_release_cause) {
        impl_->events->Add({{"type", type}}).Increment();
        if (!cause.empty()) impl_->releases->Add({{"cause", cause}}).Increment();
    }
}

void metrics::observe_unit(const unit_outcome& o) {
    for (const auto& pe : o.events) {
        const auto* recorded = std::get_if<events::usage_recorded>(&pe.data);
        const auto* settled = std::get_if<events::settled>(&pe.data);
        if (recorded == nullptr && (settled == nullptr || settled->usage.empty())) continue;
        const auto id = instance_id_of(pe.stream);
        const auto it = id ? o.instances.find(*id) : o.instances.end();
        if (it == o.instances.end()) continue;
        const std::string prod(to_string(it->second.prod));
        if (recorded != nullptr) impl_->usage_records->Add({{"product", prod}, {"metric", recorded->metric}}).Increment();
        if (settled != nullptr)
            for (const auto& item : settled->usage)
                if (item.amount > 0)
                    impl_->usage_billed->Add({{"product", prod}, {"metric", item.metric}})
                        .Increment(static_cast<double>(item.amount));
    }
}

void metrics::observe_timer(std::string_view kind, double late_seconds) {
    impl_->lateness->Add({{"kind", std::string(kind)}}, impl_->late_buckets).Observe(late_seconds < 0 ? 0 : late_seconds);
}

void metrics::set_projection_figures(const projection_figures& f) {
    std::lock_guard lock(impl_->scrape_mutex);
    std::set<std::tuple<std::string, std::string, std::string>> now_seen;
    for (const auto& c : f.instances) {
        impl_->instances->Add({{"product", c.product}, {"billing", c.billing}, {"state", c.state}})
            .Set(static_cast<double>(c.n));
        now_seen.emplace(c.product, c.billing, c.state);
    }
    // A combination that emptied reads 0 rather than its last value.
    for (const auto& [p, b, st] : impl_->seen_counts)
        if (!now_seen.count({p, b, st})) impl_->instances->Add({{"product", p}, {"billing", b}, {"state", st}}).Set(0);
    impl_->seen_counts.insert(now_seen.begin(), now_seen.end());
    impl_->timers_pending->Set(static_cast<double>(f.timers_pending));
    impl_->pending_releases->Add({{"window", "24h"}}).Set(static_cast<double>(f.releases_next_24h));
    impl_->pending_releases->Add({{"window", "7d"}}).Set(static_cast<double>(f.releases_next_7d));
    impl_->accounts_overdue->Set(static_cast<double>(f.accounts_overdue));
    impl_->head_position->Set(static_cast<double>(f.head_position));
}

void metrics::set_runtime_figures(const runtime_figures& f) {
    std::lock_guard lock(impl_->scrape_mutex);
    // Counters move by the difference to the cumulative figures.
    const auto advance = [](prometheus::Counter* c, std::uint64_t total) {
        const double now = static_cast<double>(total);
        if (now > c->Value()) c->Increment(now - c->Value());
    };
    advance(impl_->cache_hits, f.cache_hits);
    advance(impl_->cache_misses, f.cache_misses);
    impl_->cache_entries->Set(static_cast<double>(f.cache_entries));
    impl_->cache_capacity->Set(static_cast<double>(f.cache_capacity));
    impl_->queued_events->Set(static_cast<double>(f.queued_events));
    impl_->queued_bytes->Set(static_cast<double>(f.queued_bytes));
}

void metrics::on_scrape(std::function<void()> fn) { impl_->scrape_hook = std::move(fn); }

metrics::~metrics() = default;

void metrics::observe_request(std::string_view method, std::string_view route, int status, double seconds) {
    static constexpr std::string_view known[] = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"};
    std::string m = "other";
    for (auto k : known)
        if (k == method) m = std::string(k);
    impl_->requests->Add({{"method", m}, {"route", std::string(route)}, {"status", std::to_string(status)}})
        .Increment();
    impl_->durations->Add({{"method", m}, {"route", std::string(route)}}, impl_->buckets).Observe(seconds);
}

void metrics::set_database_up(bool up) { impl_->database_up->Set(up ? 1 : 0); }
void metrics::set_timer_leader(bool leading) { impl_->timer_leader->Set(leading ? 1 : 0); }

void metrics::set_policy_version(std::int32_t version) { impl_->policy_version->Set(version); }

std::string metrics::exposition() const {
    if (impl_->scrape_hook) impl_->scrape_hook();
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, impl_->registry->Collect());
    return out.str();
}

prometheus::Registry& metrics::registry() noexcept { return *impl_->registry; }

void metrics::set_transparency_figures(const transparency_figures& f) {
    std::lock_guard lock(impl_->scrape_mutex);
    impl_->tree_size->Set(static_cast<double>(f.tree_size));
    impl_->checkpoint_size->Set(static_cast<double>(f.checkpoint_size));
    impl_->checkpoint_age->Set(f.checkpoint_age_seconds);
    for (const auto& [witness, yes] : f.cosigned) impl_->cosigned->Add({{"witness", witness}}).Set(yes ? 1 : 0);
}

void metrics::declare_witnesses(const std::vector<std::string>& names) {
    for (const auto& w : names)
        for (const char* result : {"accepted", "refused"}) impl_->cosignatures->Add({{"witness", w}, {"result", result}});
    impl_->cosignatures->Add({{"witness", "unknown"}, {"result", "refused"}});
}

void metrics::observe_cosignature(std::string_view witness, bool accepted) {
    impl_->cosignatures->Add({{"witness", std::string(witness)}, {"result", accepted ? "accepted" : "refused"}})
        .Increment();
}

} // namespace mqledger
