#include "daemon/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <sstream>

namespace mqledger {

struct metrics::impl {
    std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
    prometheus::Family<prometheus::Counter>* requests = nullptr;
    prometheus::Family<prometheus::Histogram>* durations = nullptr;
    prometheus::Gauge* database_up = nullptr;
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
}

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

std::string metrics::exposition() const {
    std::ostringstream out;
    prometheus::TextSerializer().Serialize(out, impl_->registry->Collect());
    return out.str();
}

prometheus::Registry& metrics::registry() noexcept { return *impl_->registry; }

} // namespace mqledger
