// The policy table (RULES.md, every section): per (product, billing) what is sold, how an
// instance starts, every duration of the lifecycle, per state the flags and the actions the
// console shows, and which configuration changes are allowed. It is data: every RULES.md
// **decision** is a default here, marked `// decision`, and any field can be overridden from a
// JSON object. A policy set carries a version; events record it in metadata, and a
// `policy_registry` keeps every version so a replay judges an old event by the rules in force
// when it was written.
//
// Override format (JSON object; keys "product/billing", values objects of fields; unknown keys
// are an error so a typo never silently keeps a default):
//   {"rabbitmq/subscription": {"grace_days": 10, "retention_days": 20},
//    "mqtt/payg": {"grace_hours": 24, "suspension_days": 7, "issue_delay_hours": 9},
//    "kafka/payg": {"stopped_release_days": 2, "stopped_release_hour": 8,
//                   "states": {"stopped": {"display_name": "Stopped", "service_available": false,
//                                          "data_retained": true, "console_api_enabled": true,
//                                          "actions": ["enable", "force-delete"]}}}}
// Fields: purchase_allowed (bool), purchase_refusal (string), import_allowed (bool),
// max_term_months, grace_days | grace_hours (first lapse phase), retention_days |
// suspension_days | second_phase_hours (second lapse phase), stopped_release_days,
// stopped_release_hour, auto_renew_allowed (bool), auto_renew_days_before,
// auto_renew_max_days_before (an extra cap; none by default), auto_renew_hour, issue_delay_hours, change_in_progress_minutes,
// purchase_requires_no_debt (bool), upgrade_requires_no_debt (bool), usage_metrics (array of
// metric names), states (as above; any subset of the flags).
// `table_json` writes a whole table in this same format (every overridable field), so
// `defaults().with_overrides(table_json(t))` gives `t` back: what `policy.changed` records.
#pragma once

#include "ledger/types.h"

#include <boost/json/value.hpp>

#include <array>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string_view>
#include <optional>
#include <string>
#include <vector>

namespace mqledger {

/// Console action names, as API.md's `actions` list and `POST .../actions/{action}` use them.
namespace action {
inline constexpr const char* deploy = "deploy";
inline constexpr const char* stop = "stop";
inline constexpr const char* enable = "enable";
inline constexpr const char* renew = "renew";
inline constexpr const char* add_funds = "add-funds";
inline constexpr const char* unsubscribe = "unsubscribe";
inline constexpr const char* force_delete = "force-delete";
inline constexpr const char* remove = "delete";
inline constexpr const char* change_config = "change-config";
inline constexpr const char* auto_renew = "auto-renew";
} // namespace action

/// What a state means for one product and billing model (RULES.md "Vocabulary": flags, display
/// name, and the actions exactly as the console's Actions column shows them).
struct state_policy {
    bool valid = false;                // the state exists on this product's path
    std::string display_name;
    bool service_available = false;
    bool data_retained = false;
    bool console_api_enabled = false;
    std::vector<std::string> actions;  // K's Actions column (API action names)
};

/// How the primary edition may change (RULES.md "RocketMQ configuration changes").
enum class edition_rule { not_changeable, upgrade_only, standard_professional_both_ways };

/// Which configuration items may change (Q's table).
struct config_change_policy {
    bool allowed = false;
    edition_rule edition = edition_rule::not_changeable;
    bool sub_category = false;
    bool tps = false;
    bool internet_access = false;
    bool bandwidth = false;
};

/// The path after a subscription's term ends or a payg/serverless bill is not covered: the first
/// state for `first_for`, then optionally a second state for `second_for`, then `released`.
struct lapse_path {
    state first = state::expired;
    duration first_for{};
    std::optional<state> second;
    duration second_for{};
};

/// How billing cycles are cut: hourly (UTC hours: "at the start of each hour", E) or local
/// calendar days (MQTT: "the next day … measures the previous day's usage", M).
enum class cycle_kind { none, hourly, local_day };

/// The rules for one (product, billing).
struct policy {
    product prod = product::kafka;
    billing bill = billing::subscription;

    bool purchase_allowed = true;
    std::string purchase_refusal;            // the message when purchase is refused
    bool import_allowed = true;
    price::unit price_unit = price::unit::monthly;
    std::int32_t max_term_months = 60;       // decision: terms and renewals of 1..60 months
    bool purchase_requires_no_debt = true;   // decision: payg/serverless purchase refused while the account owes
    bool upgrade_requires_no_debt = true;    // Q, E: payg/serverless upgrade refused while the account owes

    std::optional<lapse_path> lapse;         // expiry path (subscription) or overdue path (payg/serverless)

    bool manual_stop = false;                // K: stop/enable for payg and serverless
    std::int32_t stopped_release_days = 2;   // K: released 08:00 local two days after stopping
    std::int32_t stopped_release_hour = 8;
    bool unsubscribe_allowed = false;        // K: unsubscribe by ticket
    bool force_delete_allowed = false;       // K: force delete from expired/stopped

    bool auto_renew_allowed = false;         // R; decision: every subscription product
    std::int32_t auto_renew_days_before = 7; // R
    // R: "You can change this deduction date as required": any lead shorter than the term is
    // accepted (decide: 1 <= days_before < shortest_term_days(term_months), so one success can
    // never trigger the next attempt at once). This optional cap on top of that is kept so that
    // an override file written for the old fixed bound (27) still loads and still caps; unset by
    // default: no extra cap.
    std::optional<std::int32_t> auto_renew_max_days_before;
    std::int32_t auto_renew_hour = 3;        // R

    cycle_kind cycle = cycle_kind::none;
    duration issue_delay{};                  // M: bill issued 8-10 h after the cycle; decision 9 h
    bool highest_rate_in_cycle = false;      // Q: serverless pays the highest rate used in the cycle
    bool billable_in_overdue_grace = false;  // M: payg runs (and is billed) in its 24 h grace

    duration change_in_progress{};           // Q; decision: 5 minutes
    config_change_policy config;

    // Usage-based billing (issue 15): the metrics a price may carry per-unit rates for and usage
    // records may report. Decisions: RocketMQ and Kafka pay-as-you-go/serverless
    // `storage_gb_hours` (Q: storage "Billed on a pay-as-you-go basis"), MQTT pay-as-you-go
    // `messages` (M: "measures the previous day's usage"); none for subscriptions, which have no
    // billing cycles to settle usage in.
    std::vector<std::string> usage_metrics;
    /// True when `metric` is one of `usage_metrics`. Thread-safe when const.
    [[nodiscard]] bool has_metric(std::string_view metric) const {
        for (const auto& m : usage_metrics)
            if (m == metric) return true;
        return false;
    }

    std::array<state_policy, 8> states{};

    /// The flags, name and actions of state `s`. Thread-safe when const.
    [[nodiscard]] const state_policy& at(state s) const { return states[static_cast<std::size_t>(s)]; }
    /// As above, for building a table. Not thread-safe.
    [[nodiscard]] state_policy& at(state s) { return states[static_cast<std::size_t>(s)]; }
    /// True when time in state `s` is billed (running; MQTT payg also in its overdue grace).
    [[nodiscard]] bool billable(state s) const {
        return s == state::running || (billable_in_overdue_grace && s == state::expired);
    }
};

/// K: a Kafka `stopped` is a manual stop; any other product's `stopped` is its overdue path (E).
/// A structural fact of the event vocabulary, not a tunable. Thread-safe.
[[nodiscard]] constexpr bool stop_is_manual(product p) noexcept { return p == product::kafka; }

/// K: Kafka instances start `not_deployed`; the others `running` at purchase (R; a decision for
/// E and M). Structural (the purchase event does not record it), so not overridable. Thread-safe.
[[nodiscard]] constexpr state starting_state_of(product p) noexcept {
    return p == product::kafka ? state::not_deployed : state::running;
}

/// The policy version recorded in event metadata (`policy_version`).
using policy_version = std::int32_t;
inline constexpr policy_version current_policy_version = 1;

/// The whole table for one version: one policy per (product, billing).
class policy_set {
public:
    /// RULES.md's table with every decision at its default (RULES.md, all sections). Thread-safe.
    [[nodiscard]] static policy_set defaults(policy_version version = current_policy_version);

    /// A copy with the overrides of `overrides` applied (format in this header's comment); on an
    /// unknown key or a wrong type returns nothing and sets `error`. Thread-safe.
    [[nodiscard]] std::optional<policy_set> with_overrides(const boost::json::value& overrides,
                                                           std::string& error) const;

    /// The policy of (p, b). Thread-safe when const.
    [[nodiscard]] const policy& get(product p, billing b) const {
        return table_[static_cast<std::size_t>(p) * 3 + static_cast<std::size_t>(b)];
    }
    /// The policy of (p, b), for building a table. Not thread-safe.
    [[nodiscard]] policy& get(product p, billing b) {
        return table_[static_cast<std::size_t>(p) * 3 + static_cast<std::size_t>(b)];
    }
    /// The version events decided under this table record in metadata. Thread-safe.
    [[nodiscard]] policy_version version() const noexcept { return version_; }
    /// Sets the version (a new table derived by overrides needs its own). Not thread-safe.
    void set_version(policy_version v) noexcept { version_ = v; }

private:
    std::array<policy, 12> table_{};
    policy_version version_ = current_policy_version;
};

/// The whole table in the override format, every overridable field of every (product, billing)
/// written out; keys sorted by Boost.JSON's insertion order, which is fixed. Thread-safe.
[[nodiscard]] boost::json::object table_json(const policy_set& set);

/// The table of a `policy.changed` event's `table` (issue 15): `defaults(version)` with `table`
/// applied as overrides; nothing (and `error`) when it does not parse. Thread-safe.
[[nodiscard]] std::optional<policy_set> table_from_json(const boost::json::value& table, policy_version version,
                                                         std::string& error);

/// Every policy version ever in force, so a replay judges an event by the version in its
/// metadata. Versions are only added, never removed, so a reference from `find` or `current`
/// stays valid while the registry lives. All members are thread-safe (a daemon adds a version
/// on SIGHUP while requests read).
class policy_registry {
public:
    /// A registry holding `defaults()` as version `current_policy_version`.
    policy_registry();
    policy_registry(const policy_registry& other);
    policy_registry& operator=(const policy_registry& other);
    /// Adds (or replaces) a version and makes the newest version current. A daemon only ever
    /// adds new versions: replacing one that a reader holds is for building tables in tests.
    void add(policy_set set);
    /// Adds every version of `other` that this registry does not hold (the versions the log
    /// holds, some of them appended by another daemon); never replaces one it holds.
    void add_missing(const policy_registry& other);
    /// The set of `version`, or nullptr when unknown.
    [[nodiscard]] const policy_set* find(policy_version version) const;
    /// The newest version: what new events are judged by.
    [[nodiscard]] const policy_set& current() const;
    /// Every version held, oldest first.
    [[nodiscard]] std::vector<policy_version> versions() const;

private:
    mutable std::shared_mutex mutex_;
    std::map<policy_version, std::shared_ptr<const policy_set>> sets_;
};

} // namespace mqledger
