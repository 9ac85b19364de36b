// Conformance (API.md `mqledger verify`; issue 5): every event in the log is what the rules core
// would have allowed or produced at its effective_at, judged by the policy version it records.
//
// The checker folds the log in position order and judges each event against the state of its
// stream (and its account) just before it: it rebuilds the commands that could have produced it
// (the command its type names, rebuilt from its data; every timer of the state due exactly at
// its effective_at; the account's overdue and paid notices) and asks `decide` whether one of
// them yields this very event first. The rest of that decision (the charge of a renewal, the
// overdue entry after a settlement, a refund of a downgrade) is then expected next on its
// streams, so a charge is legal only where a decision produced it with that amount. An illegal
// transition, a timer event before its deadline, a charge that does not match the price, or a
// settlement for time that was not billable all fail with the position and the reason.
#pragma once

#include "ledger/policy.h"
#include "ledger/store/event_store.h"
#include "projections/projector.h"

#include <deque>
#include <optional>
#include <string>

namespace mqledger::projections {

class conformance_checker {
public:
    /// `policies` must outlive the checker.
    explicit conformance_checker(const policy_registry& policies) : policies_(policies) {}

    /// Judges `e` (the next event in position order) and folds it. Nothing when it conforms,
    /// else why not. Never throws but std::bad_alloc: an undecodable event is a failure too.
    [[nodiscard]] std::optional<std::string> check(const store::recorded_event& e);

    /// After the last event: a decision whose remaining events never came is a failure.
    [[nodiscard]] std::optional<std::string> finish() const;

    [[nodiscard]] std::int64_t checked() const noexcept { return checked_; }

private:
    std::optional<std::string> judge(const store::recorded_event& e, const decoded_event& d);

    const policy_registry& policies_;
    projection_set set_;
    // The events a judged decision produced after the one it was matched on: one decision is
    // one append, so they must follow at once, in this order.
    std::deque<pending_event> expected_;
    std::int64_t expected_since_ = 0;   // the position of the decision they belong to
    std::int64_t checked_ = 0;
};

/// The whole log judged by a conformance_checker: how many events conformed (all of them, or those
/// before the failure) and, when one fails (or the log ends inside a decision), its position and
/// why.
struct conformance_report {
    std::int64_t conforming = 0;
    std::optional<std::int64_t> bad_position;
    std::string reason;
};
/// One streaming pass over the log on `c` (a page in memory at a time). Throws pqxx exceptions.
[[nodiscard]] conformance_report check_conformance(pqxx::connection& c, const policy_registry& policies);

} // namespace mqledger::projections
