// decide: state + command + now → events or a typed refusal (RULES.md, every section; API.md
// "Errors"). Staged like a transaction: the command is validated alone, then checked against the
// state (read-only), then its events are produced. Pure: no I/O, no clock reads; thread-safe.
#pragma once

#include "ledger/account.h"
#include "ledger/commands.h"
#include "ledger/events.h"
#include "ledger/instance.h"
#include "ledger/policy.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mqledger {

/// Stable refusal codes, 1:1 with API.md's error codes. Never renumber.
enum class refusal_code {
    invalid_transition = 1,    // 409: action not available now
    insufficient_balance = 2,  // 402
    invalid = 3,               // 422: a field is wrong
    conflict = 4,              // 409: duplicate id, change in progress, force deletion pending
    not_found = 5,             // 404
};
/// The API error code string ("invalid_transition", …). Thread-safe.
[[nodiscard]] std::string_view to_string(refusal_code c) noexcept;

/// Why a command was refused; only the fields of its code are meaningful.
struct [[nodiscard]] refusal {
    refusal_code code = refusal_code::invalid;
    std::string message;
    state current = state::not_deployed;        // invalid_transition
    std::vector<std::string> allowed_actions;   // invalid_transition
    money balance = 0;                          // insufficient_balance
    money required = 0;                         // insufficient_balance
    std::string field;                          // invalid
    std::string reason;                         // conflict: duplicate_id | change_in_progress |
                                                //   force_deletion_pending | duplicate_name
    friend bool operator==(const refusal&, const refusal&) = default;
};

/// The outcome of decide: events to append (possibly none: a moot tick) or a refusal.
struct [[nodiscard]] decision {
    std::vector<pending_event> events;
    std::optional<refusal> refused;
    [[nodiscard]] bool ok() const noexcept { return !refused.has_value(); }
};

/// What decide may know about the instance's account: only values, never the store.
struct account_facts {
    money balance = 0;
    std::optional<time_point> overdue_since;
};

/// The values an instance decision needs beyond the state.
struct decide_context {
    const policy_set* policies = nullptr;   // the version in force (current for new events)
    std::string instance_id;                // the stream's id (for purchase: the command's id wins)
    std::optional<account_facts> account;   // nothing: the account does not exist
};

/// True when deciding `c` on an instance reads its account's facts (`decide_context::account`):
/// purchase, import, renew, change-config, timers and a payment notice. The others are decided
/// without them, so a caller need not load the account for them. Thread-safe.
[[nodiscard]] bool reads_account(const commands::command& c) noexcept;

/// The charge reasons the ledger's own decisions use (purchase, renewal, upgrade, settlement, and
/// `owed` at an import): a manual charge may not pose as one, so an auditor can always tell a
/// decided charge from a hand-made one. Thread-safe.
[[nodiscard]] bool is_reserved_charge_reason(std::string_view reason) noexcept;

/// Decides an instance command (RULES.md: product sections, "Accounts and payments",
/// "Time-driven events", "Import"). Events may touch the instance stream and its account's stream
/// (charges, refunds). A tick made moot by later events decides nothing; a tick's events are
/// effective at its due time, never `now`. Pure; thread-safe.
[[nodiscard]] decision decide(const instance_state& s, const commands::command& c, time_point now,
                              const decide_context& ctx);

/// Decides an account command (RULES.md "Accounts and payments": open, add funds, charge; a manual
/// charge needs the balance to cover it). Pure; thread-safe.
[[nodiscard]] decision decide(const account_state& a, const commands::command& c, time_point now,
                              std::string_view account_id);

} // namespace mqledger
