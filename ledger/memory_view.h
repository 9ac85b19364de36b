// A `unit_view` over states held in memory (ledger/unit.h), with the two indexes a unit asks
// for: each account's instances by their soonest timer, and by the account notice they act on.
// `verify`'s replay (ledger/replay.h) and the tests decide units against it and absorb each
// outcome. Not thread-safe to modify; const use is thread-safe.
#pragma once

#include "ledger/unit.h"

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace mqledger {

class memory_view final : public unit_view {
public:
    [[nodiscard]] instance_state instance(const std::string& id) const override;
    [[nodiscard]] std::optional<account_state> account(const std::string& id) const override;
    [[nodiscard]] std::vector<std::string> due_instances(const std::string& account_id, time_point up_to) const override;
    [[nodiscard]] std::vector<std::string> notice_targets(const std::string& account_id,
                                                          account_notice kind) const override;

    /// Takes in every state a unit's outcome holds; `policies` (the table the unit was decided
    /// under) gives their timers and notices.
    void absorb(const unit_outcome& o, const policy_set& policies);
    /// Puts one instance state (its `id` names it) or one account state.
    void put(const instance_state& s, const policy_set& policies);
    void put(const std::string& account_id, const account_state& a);

    [[nodiscard]] const std::map<std::string, instance_state>& instances() const noexcept { return instances_; }
    [[nodiscard]] const std::map<std::string, account_state>& accounts() const noexcept { return accounts_; }

    /// The soonest due time of any instance's timer (after `after`, when given), or nothing:
    /// what a timer service arms.
    [[nodiscard]] std::optional<time_point> earliest_due(std::optional<time_point> after = std::nullopt) const;
    /// The accounts with a timer due exactly at `at`, in id order (one timer round).
    [[nodiscard]] std::vector<std::string> accounts_due_at(time_point at) const;
    /// The accounts with a timer due at or before `t`, in id order.
    [[nodiscard]] std::vector<std::string> accounts_due_by(time_point t) const;

private:
    struct indexed {
        std::string account_id;
        std::optional<time_point> due;
        std::optional<account_notice> notice;
    };
    struct account_index {
        std::set<std::pair<time_point, std::string>> due;
        std::set<std::string> overdue;
        std::set<std::string> paid;
    };
    void unindex(const std::string& id);

    std::map<std::string, instance_state> instances_;
    std::map<std::string, account_state> accounts_;
    std::map<std::string, indexed> indexed_;
    std::map<std::string, account_index> by_account_;
    std::set<std::pair<time_point, std::string>> due_;   // (soonest due, instance id), every account
};

} // namespace mqledger
