#include "ledger/account.h"

#include "ledger/money.h"

#include <type_traits>

namespace mqledger {
namespace {

// Balances are bounded by what can be represented; an event that would overflow was refused by
// decide, so saturating here only guards a hand-written log.
money saturating(std::optional<money> v, money fallback) { return v.value_or(fallback); }

} // namespace

account_state evolve(account_state a, const events::event& e, time_point effective_at) {
    bool counted = true;
    std::visit(
        [&](const auto& ev) {
            using T = std::decay_t<decltype(ev)>;
            if constexpr (std::is_same_v<T, events::account_opened>) {
                a.exists = true;
                a.currency = ev.currency;
            } else if constexpr (std::is_same_v<T, events::funds_added>) {
                a.balance = saturating(checked_add(a.balance, ev.amount), a.balance);
                a.total_added = saturating(checked_add(a.total_added, ev.amount), a.total_added);
            } else if constexpr (std::is_same_v<T, events::charged>) {
                a.balance = saturating(checked_sub(a.balance, ev.amount), a.balance);
                a.total_charged = saturating(checked_add(a.total_charged, ev.amount), a.total_charged);
            } else if constexpr (std::is_same_v<T, events::refunded>) {
                a.balance = saturating(checked_add(a.balance, ev.amount), a.balance);
                a.total_refunded = saturating(checked_add(a.total_refunded, ev.amount), a.total_refunded);
            } else {
                counted = false;
            }
        },
        e);
    if (!counted) return a;
    if (a.balance < 0 && !a.overdue_since) a.overdue_since = effective_at;
    if (a.balance >= 0) a.overdue_since.reset();
    ++a.version;
    if (effective_at > a.last_effective_at) a.last_effective_at = effective_at;
    return a;
}

bool became_overdue(const account_state& before, const account_state& after) noexcept {
    return before.balance >= 0 && after.balance < 0;
}

bool overdue_cleared(const account_state& before, const account_state& after) noexcept {
    return before.balance < 0 && after.balance >= 0;
}

bool settles_debt(const account_state& before, const account_state& after, const events::event& e) noexcept {
    return after.balance >= 0 && (overdue_cleared(before, after) || std::holds_alternative<events::funds_added>(e));
}

} // namespace mqledger
