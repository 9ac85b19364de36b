// Conformance (API.md `mqledger verify`: every event was what the rules decide when it was
// written). The log is read in position order, each event decoded with the codec, and handed to
// the core's unit-by-unit replay (ledger/replay.h), which decides every recorded unit again with
// `decide_unit` and requires the recorded events to equal the decided ones. This file only reads
// and decodes: it holds no rule.
#pragma once

#include "ledger/policy.h"
#include "ledger/replay.h"
#include "ledger/store/event_store.h"
#include "projections/projector.h"

#include <optional>
#include <string>

namespace mqledger::projections {

/// The core's replay fed from recorded events.
class conformance_checker {
public:
    /// Starts from a copy of `policies`; each `policy.changed` event met is added to it, so a
    /// version appended while the log is read is known before any event names it.
    explicit conformance_checker(const policy_registry& policies) : policies_(policies), replay_(policies_) {}
    /// Goes on from the states in `before` (see ledger_replay).
    conformance_checker(const policy_registry& policies, memory_view before)
        : policies_(policies), replay_(policies_, std::move(before)) {}

    /// Judges `e`, the next event in position order. Nothing while the log conforms so far, else
    /// the first finding, with its position. Never throws but std::bad_alloc: an undecodable
    /// event is a finding too.
    [[nodiscard]] std::optional<replay_finding> check(const store::recorded_event& e);

    /// After the last event: a unit the log ends inside of.
    [[nodiscard]] std::optional<replay_finding> finish() { return replay_.finish(); }

    /// Events found to be exactly what their unit decides, and units replayed.
    [[nodiscard]] std::int64_t conforming() const noexcept { return replay_.conforming(); }
    [[nodiscard]] std::int64_t units() const noexcept { return replay_.units(); }

private:
    policy_registry policies_;   // before replay_, which refers to it
    ledger_replay replay_;
};

/// The whole log judged by a conformance_checker: how many events conformed (all of them, or those
/// before the failure), in how many units, and the first finding.
struct conformance_report {
    std::int64_t conforming = 0;
    std::int64_t units = 0;
    std::optional<std::int64_t> bad_position;
    std::string reason;
};
/// One streaming pass over the log on `c` (a page in memory at a time). Throws pqxx exceptions.
[[nodiscard]] conformance_report check_conformance(pqxx::connection& c, const policy_registry& policies);

/// The events after position `after` judged unit by unit, without replaying what comes before
/// (`verify --since-checkpoint`: the old part was audited when the checkpoint was kept). The
/// replay starts at the unit that holds position `after + 1` (a tree size may fall inside a
/// unit), from the states of the streams those units read, folded from their events before it:
/// every stream written from there on, the accounts of its instances and every instance of
/// those accounts (found through instance_state.account_id). `report.units`/`conforming` count
/// what was replayed. Throws on database errors.
struct incremental_report {
    conformance_report conformance;
    std::int64_t replayed_from = 0;      // the first position replayed
    std::int64_t streams_loaded = 0;     // streams whose earlier events were folded
    std::int64_t events_folded = 0;      // earlier events folded (not judged)
};
[[nodiscard]] incremental_report check_conformance_since(pqxx::connection& c, const policy_registry& policies,
                                                         std::int64_t after);

} // namespace mqledger::projections
