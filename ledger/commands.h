// Commands: what a client, the billing system or the timer service asks of the core (API.md
// "Instances", "Accounts"; RULES.md "Time-driven events"). Plain values.
#pragma once

#include "ledger/instance.h"
#include "ledger/types.h"

#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace mqledger::commands {

// ---- instance commands ----
struct purchase {
    std::string instance_id;
    std::string account_id;
    product prod = product::kafka;
    billing bill = billing::subscription;
    std::string timezone;                      // empty: the default zone (a decision)
    price rate;
    std::int32_t term_months = 0;              // subscription only
    std::optional<instance_config> config;     // RocketMQ only
    std::optional<auto_renew_setting> auto_renew;
};
/// Import of an instance that exists elsewhere, in any state (RULES.md "Import").
struct import_instance {
    purchase details;
    state in_state = state::running;
    time_point state_since{};
    std::optional<time_point> expires_at;      // subscription
    std::optional<time_point> overdue_since;   // instances on an overdue path
    money owed = 0;                            // what the account owes for it, charged at import
};
struct deploy {};
struct stop {};
struct enable {};
struct renew { std::int32_t months = 1; };
struct unsubscribe {};
struct force_delete {};
/// API action "delete": removes a released instance from the list.
struct remove {};
struct change_config { std::optional<instance_config> config; price rate; };
struct set_auto_renew { bool enabled = false; std::int32_t days_before = 7; };
struct create_topic { std::string name; };
struct delete_topic { std::string name; };
struct create_group { std::string name; };
struct delete_group { std::string name; };
/// A timer delivered by the daemon (RULES.md "Time-driven events").
struct tick { timer_kind kind = timer_kind::expiry; time_point due_at{}; };
/// Cross-stream: the instance's account just became overdue at `since` (a bill left it owing).
struct account_overdue { time_point since{}; };
/// Cross-stream: the account's owed amount was cleared at `at`.
struct account_paid { time_point at{}; };

/// Metered usage of [start, end) (issue 15; API `POST /v1/instances/{id}/usage`).
struct record_usage {
    std::string record_id;
    std::string metric;
    std::int64_t quantity = 0;
    time_point start{};
    time_point end{};
};

// ---- account commands ----
struct open_account { std::string currency; };
struct add_funds { money amount = 0; std::string reference; };
struct charge { money amount = 0; std::string instance_id; std::string reason; std::string reference; };

using command = std::variant<purchase, import_instance, deploy, stop, enable, renew, unsubscribe, force_delete,
                             remove, change_config, set_auto_renew, create_topic, delete_topic, create_group,
                             delete_group, tick, account_overdue, account_paid, open_account, add_funds, charge,
                             record_usage>;

/// A short stable name of the command ("renew", "tick", "add_funds"), for logs and metrics.
/// Thread-safe.
[[nodiscard]] std::string_view name_of(const command& c) noexcept;

/// True for the commands addressed to an account stream. Thread-safe.
[[nodiscard]] bool is_account_command(const command& c) noexcept;

} // namespace mqledger::commands
