#include "projections/conformance.h"

namespace mqledger::projections {

std::optional<replay_finding> conformance_checker::check(const store::recorded_event& e) {
    // Streams other than instances and accounts are not the rules' business.
    if (!instance_id_of(e.stream) && !account_id_of(e.stream)) return std::nullopt;
    logged_event le;
    try {
        auto d = decode_recorded(e);
        le.data = std::move(d.data);
        le.effective_at = d.effective_at;
        le.policy = d.policy;
    } catch (const std::exception& x) {
        return replay_finding{e.position, std::string("undecodable: ") + x.what()};
    }
    le.position = e.position;
    le.stream = e.stream;
    le.stream_version = e.stream_version;
    le.recorded_at = e.recorded_at;
    if (const auto* u = e.metadata.if_contains("unit")) le.unit = *u;
    try {
        return replay_.feed(std::move(le));
    } catch (const std::exception& x) {
        return replay_finding{e.position, std::string("cannot be replayed: ") + x.what()};
    }
}

conformance_report check_conformance(pqxx::connection& c, const policy_registry& policies) {
    conformance_checker checker(policies);
    conformance_report report;
    std::optional<replay_finding> bad;
    store::for_each_page(c, 0, 2000, [&](const std::vector<store::recorded_event>& page) {
        for (const auto& e : page)
            if ((bad = checker.check(e))) return false;
        return true;
    });
    if (!bad) bad = checker.finish();
    report.conforming = checker.conforming();
    report.units = checker.units();
    if (bad) {
        report.bad_position = bad->position;
        report.reason = std::move(bad->reason);
    }
    return report;
}

} // namespace mqledger::projections
