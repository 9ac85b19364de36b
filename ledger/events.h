// The audit vocabulary (API.md "Ledger"): every event type with its data fields. Streams are
// `instance-{id}` and `account-{id}`. `effective_at`, `recorded_at`, positions and metadata live
// on the envelope, not in these structs. Adding a field to a type means bumping its schema
// version in the codec and writing an upcaster; never rename or drop a field.
#pragma once

#include "ledger/types.h"

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mqledger::events {

// ---- account stream ----
struct account_opened { std::string currency; friend bool operator==(const account_opened&, const account_opened&) = default; };
struct funds_added { money amount = 0; std::string reference; friend bool operator==(const funds_added&, const funds_added&) = default; };
/// reason: purchase | renewal | upgrade | settlement | usage | ... ; instance_id may be empty.
struct charged { money amount = 0; std::string reason; std::string instance_id; std::string reference; friend bool operator==(const charged&, const charged&) = default; };
struct refunded { money amount = 0; std::string instance_id; friend bool operator==(const refunded&, const refunded&) = default; };

// ---- instance stream ----
struct purchased {
    product prod = product::kafka;
    billing bill = billing::subscription;
    std::string account_id;
    std::string timezone;
    price rate;
    std::int32_t term_months = 0;          // subscription only, else 0
    std::optional<time_point> expires_at;  // subscription only
    std::optional<instance_config> config; // RocketMQ only
    auto_renew_setting auto_renew;
    friend bool operator==(const purchased&, const purchased&) = default;
};
struct imported {
    purchased purchase;                       // the purchase fields
    state in_state = state::running;          // state at import
    time_point state_since;                   // when it entered that state
    std::optional<time_point> overdue_since;  // for instances on an overdue path
    friend bool operator==(const imported&, const imported&) = default;
};
struct deployed { friend bool operator==(const deployed&, const deployed&) = default; };
struct stopped { friend bool operator==(const stopped&, const stopped&) = default; };
struct enabled { friend bool operator==(const enabled&, const enabled&) = default; };
struct renewed { std::int32_t months = 0; money amount = 0; time_point expires_at; bool automatic = false; // JSON "auto"
                 friend bool operator==(const renewed&, const renewed&) = default; };
struct auto_renew_set { bool enabled = false; std::int32_t days_before = 7; friend bool operator==(const auto_renew_set&, const auto_renew_set&) = default; };
struct auto_renew_failed { money required = 0; money balance = 0; friend bool operator==(const auto_renew_failed&, const auto_renew_failed&) = default; };
struct unsubscribed { friend bool operator==(const unsubscribed&, const unsubscribed&) = default; };
enum class expiry_cause { term_ended, unsubscribed, overdue };
struct expired { expiry_cause cause = expiry_cause::term_ended; friend bool operator==(const expired&, const expired&) = default; };
/// cause: "renewed" (subscription renewed after expiry) or "paid" (owed amount cleared).
struct restored { std::string cause; friend bool operator==(const restored&, const restored&) = default; };
struct suspended { friend bool operator==(const suspended&, const suspended&) = default; };
struct frozen { friend bool operator==(const frozen&, const frozen&) = default; };
struct force_delete_requested { friend bool operator==(const force_delete_requested&, const force_delete_requested&) = default; };
enum class release_cause { deadline, force_delete };
/// What the release destroyed (K: "topics, consumer groups, and configurations"; E: "all
/// metadata deleted"): the topics, the groups and the RocketMQ configuration (null for products
/// without one). Schema version 2; version 1 had no `config` and reads as null.
struct released { release_cause cause = release_cause::deadline; std::vector<std::string> topics; std::vector<std::string> groups;
                  std::optional<instance_config> config{};
                  friend bool operator==(const released&, const released&) = default; };
struct deleted { friend bool operator==(const deleted&, const deleted&) = default; };
/// One usage record billed by a settlement (issue 15): amount = quantity × rate; the cycle is the
/// one the record belongs to (earlier than the settled cycle for a record recorded late).
struct usage_item {
    std::string record_id;
    std::string metric;
    std::int64_t quantity = 0;
    money rate = 0;
    money amount = 0;
    time_point cycle_start;
    time_point cycle_end;
    friend bool operator==(const usage_item&, const usage_item&) = default;
};
/// The bill of one cycle: amount = flat (the time-based part) + Σ usage[].amount. Schema version
/// 2; version 1 had neither `flat` nor `usage` and reads as flat = amount, usage = [].
struct settled { time_point cycle_start; time_point cycle_end; money amount = 0; money flat = 0;
                 std::vector<usage_item> usage{};
                 friend bool operator==(const settled&, const settled&) = default; };
/// A snapshot of what a configuration change changes: the RocketMQ configuration and the price.
struct config_snapshot { std::optional<instance_config> config; price rate; friend bool operator==(const config_snapshot&, const config_snapshot&) = default; };
/// amount: > 0 charged (upgrade), < 0 refunded (downgrade), 0 for payg/serverless.
struct config_change_started { config_snapshot from; config_snapshot to; money amount = 0; friend bool operator==(const config_change_started&, const config_change_started&) = default; };
struct config_change_completed { friend bool operator==(const config_change_completed&, const config_change_completed&) = default; };
struct topic_created { std::string name; friend bool operator==(const topic_created&, const topic_created&) = default; };
struct topic_deleted { std::string name; friend bool operator==(const topic_deleted&, const topic_deleted&) = default; };
struct group_created { std::string name; friend bool operator==(const group_created&, const group_created&) = default; };
struct group_deleted { std::string name; friend bool operator==(const group_deleted&, const group_deleted&) = default; };
/// Metered usage of [start, end) (issue 15), billed at `rate` (the per-unit rate of `metric` in
/// force at the record's first billable instant) by the settlement of its cycle, or by the
/// instance's next settlement when that cycle was already settled. Effective at the decision.
struct usage_recorded {
    std::string record_id;
    std::string metric;
    std::int64_t quantity = 0;
    time_point start;
    time_point end;
    money rate = 0;
    friend bool operator==(const usage_recorded&, const usage_recorded&) = default;
};

using event = std::variant<
    account_opened, funds_added, charged, refunded,
    purchased, imported, deployed, stopped, enabled, renewed, auto_renew_set, auto_renew_failed,
    unsubscribed, expired, restored, suspended, frozen, force_delete_requested, released, deleted,
    settled, config_change_started, config_change_completed,
    topic_created, topic_deleted, group_created, group_deleted, usage_recorded>;

/// The dotted type name of an event ("instance.released", "account.funds_added").
[[nodiscard]] std::string_view type_name(const event& e) noexcept;
/// Every event type name, in the order of the `event` variant (e.g. to expose a metric series
/// per type at zero before the first one is appended). Thread-safe.
[[nodiscard]] std::vector<std::string_view> all_type_names();
[[nodiscard]] std::string_view to_string(expiry_cause c) noexcept;
[[nodiscard]] std::string_view to_string(release_cause c) noexcept;

} // namespace mqledger::events

namespace mqledger {

/// Stream names: `instance-{id}`, `account-{id}`.
[[nodiscard]] std::string instance_stream(std::string_view instance_id);
[[nodiscard]] std::string account_stream(std::string_view account_id);
/// The instance id of an `instance-{id}` stream, or nothing. Thread-safe.
[[nodiscard]] std::optional<std::string> instance_id_of(std::string_view stream);
/// The account id of an `account-{id}` stream, or nothing. Thread-safe.
[[nodiscard]] std::optional<std::string> account_id_of(std::string_view stream);

/// An event decided by the core, not yet appended: which stream, when it takes effect under the
/// rules (a deadline for timer events), and what happened.
struct pending_event {
    std::string stream;
    time_point effective_at;
    events::event data;
    friend bool operator==(const pending_event&, const pending_event&) = default;
};

} // namespace mqledger
