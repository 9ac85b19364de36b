// Unit-by-unit replay of the log (API.md `mqledger verify`: "every event was a legal transition
// when it was written"; ledger/unit.h). Each append records its unit in the metadata `unit` of
// its first event (the command or timer instant, when it was decided, how many events it wrote:
// the record's event and the next `events - 1`). The replay groups the log into those units, decides each again with `decide_unit` from the state before
// it (an in-memory view of every stream folded so far) under the policy version the unit
// records, and requires the recorded events to equal the decided ones, one by one: stream, type,
// every data field and the effective time, and the stream versions. An extra event, a missing
// effect, another amount, another time and another order are all found, at their position.
// The replay holds no rule of its own. Pure; not thread-safe (one replay per thread).
#pragma once

#include "ledger/memory_view.h"
#include "ledger/policy.h"
#include "ledger/unit.h"

#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mqledger {

/// One event of the log in the core's terms (the caller decodes its data with the codec).
struct logged_event {
    std::int64_t position = 0;
    std::string stream;
    std::int64_t stream_version = 0;
    events::event data;
    time_point effective_at{};
    time_point recorded_at{};
    policy_version policy = current_policy_version;
    boost::json::value unit;   // metadata `unit` as stored: on a unit's first event, else null
};

/// Why the log is not what the rules decide, at which position.
struct replay_finding {
    std::int64_t position = 0;
    std::string reason;
};

class ledger_replay {
public:
    /// `policies` must outlive the replay.
    explicit ledger_replay(const policy_registry& policies) : policies_(policies) {}
    /// Goes on from `before`: the state of every stream the units to come read, as of the
    /// position before the first event fed (an incremental audit, `verify --since-checkpoint`).
    ledger_replay(const policy_registry& policies, memory_view before)
        : policies_(policies), view_(std::move(before)) {}

    /// Takes the next event of the log, in position order (events of streams that are neither
    /// `instance-` nor `account-` are not the rules' business: do not feed them). Nothing while
    /// the log conforms so far; else the first finding (stop feeding after one).
    [[nodiscard]] std::optional<replay_finding> feed(logged_event e);
    /// After the last event: a unit the log ends inside of.
    [[nodiscard]] std::optional<replay_finding> finish();

    /// Events replayed and found to be exactly what their unit decides.
    [[nodiscard]] std::int64_t conforming() const noexcept { return conforming_; }
    /// Units replayed.
    [[nodiscard]] std::int64_t units() const noexcept { return units_; }
    /// Every stream's state after the events replayed so far.
    [[nodiscard]] const memory_view& view() const noexcept { return view_; }

private:
    std::optional<replay_finding> replay_group();

    const policy_registry& policies_;
    memory_view view_;
    std::vector<logged_event> group_;   // the unit being assembled, from its record's event
    std::int64_t declared_ = 0;         // how many events it declares
    std::int64_t conforming_ = 0;
    std::int64_t units_ = 0;
};

} // namespace mqledger
