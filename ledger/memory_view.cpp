#include "ledger/memory_view.h"

namespace mqledger {

instance_state memory_view::instance(const std::string& id) const {
    if (const auto it = instances_.find(id); it != instances_.end()) return it->second;
    instance_state s;
    s.id = id;
    return s;
}

std::optional<account_state> memory_view::account(const std::string& id) const {
    if (const auto it = accounts_.find(id); it != accounts_.end()) return it->second;
    return std::nullopt;
}

std::vector<std::string> memory_view::due_instances(const std::string& account_id, time_point up_to) const {
    std::vector<std::string> out;
    const auto it = by_account_.find(account_id);
    if (it == by_account_.end()) return out;
    for (const auto& [due, id] : it->second.due) {
        if (due > up_to) break;
        out.push_back(id);
    }
    return out;
}

std::vector<std::string> memory_view::notice_targets(const std::string& account_id, account_notice kind) const {
    const auto it = by_account_.find(account_id);
    if (it == by_account_.end()) return {};
    const auto& ids = kind == account_notice::overdue ? it->second.overdue : it->second.paid;
    return {ids.begin(), ids.end()};
}

void memory_view::unindex(const std::string& id) {
    const auto it = indexed_.find(id);
    if (it == indexed_.end()) return;
    auto& ix = by_account_[it->second.account_id];
    if (it->second.due) {
        ix.due.erase({*it->second.due, id});
        due_.erase({*it->second.due, id});
    }
    if (it->second.notice) (*it->second.notice == account_notice::overdue ? ix.overdue : ix.paid).erase(id);
    indexed_.erase(it);
}

void memory_view::put(const instance_state& s, const policy_set& policies) {
    unindex(s.id);
    instances_.insert_or_assign(s.id, s);
    if (!s.exists) return;
    const auto& p = policies.get(s.prod, s.bill);
    indexed entry{s.account_id, std::nullopt, notice_of(s, p)};
    if (const auto timers = deadlines(s, p); !timers.empty()) entry.due = timers.front().due_at;
    auto& ix = by_account_[s.account_id];
    if (entry.due) {
        ix.due.insert({*entry.due, s.id});
        due_.insert({*entry.due, s.id});
    }
    if (entry.notice) (*entry.notice == account_notice::overdue ? ix.overdue : ix.paid).insert(s.id);
    indexed_.insert_or_assign(s.id, std::move(entry));
}

void memory_view::put(const std::string& account_id, const account_state& a) { accounts_.insert_or_assign(account_id, a); }

void memory_view::absorb(const unit_outcome& o, const policy_set& policies) {
    for (const auto& [id, s] : o.instances) {
        // A state the unit only read is unchanged: its version tells (every event counts once).
        if (const auto it = instances_.find(id); it != instances_.end() && it->second.version == s.version &&
                                                 it->second.exists == s.exists)
            continue;
        if (s.exists) put(s, policies);
    }
    for (const auto& [id, a] : o.accounts) put(id, a);
}

std::optional<time_point> memory_view::earliest_due(std::optional<time_point> after) const {
    for (auto it = after ? due_.lower_bound({*after, std::string()}) : due_.begin(); it != due_.end(); ++it)
        if (!after || it->first > *after) return it->first;
    return std::nullopt;
}

std::vector<std::string> memory_view::accounts_due_at(time_point at) const {
    std::set<std::string> accounts;
    for (auto it = due_.lower_bound({at, std::string()}); it != due_.end() && it->first == at; ++it)
        accounts.insert(indexed_.at(it->second).account_id);
    return {accounts.begin(), accounts.end()};
}

std::vector<std::string> memory_view::accounts_due_by(time_point t) const {
    std::set<std::string> accounts;
    for (auto it = due_.begin(); it != due_.end() && it->first <= t; ++it) accounts.insert(indexed_.at(it->second).account_id);
    return {accounts.begin(), accounts.end()};
}

} // namespace mqledger
