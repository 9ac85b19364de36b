// An account folded from its stream (RULES.md "Accounts and payments"): the balance, what it
// owes and since when it is overdue. Pure; thread-safe.
#pragma once

#include "ledger/events.h"
#include "ledger/types.h"

#include <optional>
#include <string>

namespace mqledger {

struct account_state {
    bool exists = false;
    std::string currency;
    money balance = 0;                       // may be negative: what it owes
    std::optional<time_point> overdue_since; // since the balance went below zero
    money total_added = 0;                   // Σ funds_added
    money total_charged = 0;                 // Σ charged
    money total_refunded = 0;                // Σ refunded
    std::int64_t version = 0;
    time_point last_effective_at{};

    /// What the account owes: max(0, −balance) (API.md account view).
    [[nodiscard]] money owed() const noexcept { return balance < 0 ? -balance : 0; }
    friend bool operator==(const account_state&, const account_state&) = default;
};

/// Folds one account event (RULES.md "Accounts and payments": funds_added raises the balance,
/// charged lowers it, refunded raises it; overdue from the moment it goes below zero until it is
/// back at zero or above). Instance events are ignored. Pure; thread-safe.
[[nodiscard]] account_state evolve(account_state a, const events::event& e, time_point effective_at);

/// True when folding took the account from not owing to owing: the caller tells every running
/// payg/serverless instance of the account (command `account_overdue`). Thread-safe.
[[nodiscard]] bool became_overdue(const account_state& before, const account_state& after) noexcept;

/// True when folding cleared what the account owed: the caller tells every instance on an
/// overdue path (command `account_paid`). Thread-safe.
[[nodiscard]] bool overdue_cleared(const account_state& before, const account_state& after) noexcept;

/// True when folding `e` took the account from `before` to `after` as a payment that ends its
/// overdue path (RULES.md "Accounts and payments": funds that bring the balance back to zero or
/// above restore the instances on an overdue path): the account owes nothing after it, and it
/// owed before or `e` is funds added (so paying also restores an instance imported on its overdue
/// path while the account owed nothing). Thread-safe.
[[nodiscard]] bool settles_debt(const account_state& before, const account_state& after, const events::event& e) noexcept;

} // namespace mqledger
