#include "projections/conformance.h"

#include "projections/queries.h"

#include <algorithm>

namespace mqledger::projections {

std::optional<replay_finding> conformance_checker::check(const store::recorded_event& e) {
    if (e.stream == policy_stream) {
        try {
            auto set = read_policy_changed(e);
            if (policies_.find(set.version()) == nullptr) policies_.add(std::move(set));
        } catch (const std::exception& x) {
            return replay_finding{e.position, std::string("policy.changed: ") + x.what()};
        }
        return std::nullopt;
    }
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

incremental_report check_conformance_since(pqxx::connection& c, const policy_registry& policies, std::int64_t after) {
    incremental_report out;
    memory_view before;
    {
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
        // A tree size may fall inside a unit: start at the unit holding position after + 1.
        const auto start = store::unit_start_at_or_before(tx, after + 1);
        out.replayed_from = start > 0 ? start : 1;
        auto streams = store::streams_written_since(tx, out.replayed_from);
        for (auto& s : instance_streams_of_accounts_touching(tx, streams)) streams.push_back(std::move(s));
        std::sort(streams.begin(), streams.end());
        streams.erase(std::unique(streams.begin(), streams.end()), streams.end());
        streams.erase(std::remove_if(streams.begin(), streams.end(),
                                     [](const std::string& s) { return !instance_id_of(s) && !account_id_of(s); }),
                      streams.end());
        // The accounts of the instances too (an instance's unit reads its account).
        projection_set set;
        for (const auto& e : store::read_streams_before(tx, streams, out.replayed_from)) {
            fold(set, e, policies);
            ++out.events_folded;
        }
        for (auto& [id, st] : set.instances) {
            st.id = id;
            const policy_set* ps = policies.find(st.policy);
            before.put(st, ps ? *ps : policies.current());
        }
        for (const auto& [id, a] : set.accounts) before.put(id, a);
        out.streams_loaded = static_cast<std::int64_t>(streams.size());
    }
    conformance_checker checker(policies, std::move(before));
    std::optional<replay_finding> bad;
    store::for_each_page(c, out.replayed_from - 1, 2000, [&](const std::vector<store::recorded_event>& page) {
        for (const auto& e : page)
            if ((bad = checker.check(e))) return false;
        return true;
    });
    if (!bad) bad = checker.finish();
    out.conformance.conforming = checker.conforming();
    out.conformance.units = checker.units();
    if (bad) {
        out.conformance.bad_position = bad->position;
        out.conformance.reason = std::move(bad->reason);
    }
    return out;
}

} // namespace mqledger::projections
