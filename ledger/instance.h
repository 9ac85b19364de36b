// An instance's state folded from its stream (RULES.md all product sections, "Time-driven
// events", "Import of existing instances"): `evolve` is the pure fold, `deadlines` the timers the
// state implies, and the view helpers what API.md's instance view shows. All pure, thread-safe.
#pragma once

#include "ledger/events.h"
#include "ledger/money.h"
#include "ledger/policy.h"
#include "ledger/types.h"

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mqledger {

/// How far back usage may be recorded (issue 15; decision): a record starting more than 35 days
/// before the decision is refused (422, field `start`). 35 days cover a monthly metering export
/// with a few days of slack. The bound is what keeps an instance's state bounded: the billing
/// history (`marks`) is kept back to it, so the core can tell whether the instance was billable
/// when a late record's usage happened, and record ids are remembered for duplicate detection
/// only while a record with that start could still be accepted. A record id is therefore unique
/// per instance within the lookback; reused after it, it is a new record.
inline constexpr duration usage_lookback = std::chrono::days{35};

/// Everything the rules and API.md's instance view need about one instance.
struct instance_state {
    bool exists = false;
    std::string id;                          // set by the caller from the stream name: events carry no id
    std::string account_id;
    product prod = product::kafka;
    billing bill = billing::subscription;
    std::string timezone;
    state current = state::not_deployed;
    time_point state_since{};
    // K: only Deploy leads to Running. True once the instance has ever run: deployed, purchased
    // into `running` (every product but Kafka) or imported in any state but `not_deployed`. A
    // renewal after expiry restores `running` only then, `not_deployed` otherwise.
    bool deployed = false;
    time_point created_at{};
    time_point last_effective_at{};          // effective_at of the newest folded event

    std::int32_t term_months = 0;            // subscription term length, renewed by auto-renew
    std::optional<time_point> expires_at;    // subscription only
    std::optional<time_point> overdue_since; // start of the overdue path (payg/serverless)

    price rate;
    std::optional<instance_config> config;   // RocketMQ only

    auto_renew_setting auto_renew;
    time_point auto_renew_not_before{};      // next attempt at or after this (set, last attempt)
    std::int32_t auto_renew_failures = 0;    // consecutive failed attempts

    bool force_delete_pending = false;
    std::optional<time_point> force_delete_requested_at;
    std::optional<time_point> config_change_started_at;  // a change in progress since then (Q)

    std::vector<std::string> topics;
    std::vector<std::string> groups;

    // Settlement (payg/serverless): from `at` on the instance is in `in_state` at `rate`, with the
    // price's per-unit rates `per_unit`; kept from the last settled cycle end or the usage
    // lookback before the last settlement, whichever is earlier. The policy says which states
    // are billable.
    struct mark {
        time_point at{};
        state in_state = state::running;
        money rate = 0;
        std::map<std::string, money> per_unit{};
        friend bool operator==(const mark&, const mark&) = default;
    };
    std::vector<mark> marks;
    std::optional<time_point> settled_until; // end of the last settled cycle
    money billed_total = 0;                  // sum of settled amounts (flat and usage)

    // Usage records (issue 15). `usage_pending`: recorded and not yet billed, in recording order;
    // each is billed by the settlement of its cycle or, recorded after that cycle was settled,
    // by the instance's next settlement. `usage_seen`: the content of every record id whose
    // start is within `usage_lookback` of the newest folded usage or settlement event (older
    // ones can no longer be recorded, so their ids are forgotten): a repeat with the same
    // content is a duplicate, with other content a conflict.
    struct usage_record {
        std::string record_id;
        std::string metric;
        std::int64_t quantity = 0;
        time_point start{};
        time_point end{};
        money rate = 0;
        time_point recorded_at{};            // effective_at of its usage_recorded event
        friend bool operator==(const usage_record&, const usage_record&) = default;
    };
    std::vector<usage_record> usage_pending;
    struct usage_content {
        std::string metric;
        std::int64_t quantity = 0;
        time_point start{};
        time_point end{};
        friend bool operator==(const usage_content&, const usage_content&) = default;
    };
    std::map<std::string, usage_content> usage_seen;

    std::int64_t version = 0;                // number of events folded
    policy_version policy = current_policy_version;

    // The lapse terms of the table in force when the instance entered its current lapse path
    // (issue 15, docs/rules.md "Policy changes at run time"): a change of the table never moves a
    // deadline already announced. Pinned when the instance enters a state, kept from a lapse
    // path's first state into its second; none when folded without a table (then the policy's
    // own terms apply).
    struct phase_terms {
        duration first_for{};
        duration second_for{};
        std::int32_t stopped_release_days = 0;
        std::int32_t stopped_release_hour = 0;
        policy_version version = current_policy_version;
        friend bool operator==(const phase_terms&, const phase_terms&) = default;
    };
    std::optional<phase_terms> phase;

    friend bool operator==(const instance_state&, const instance_state&) = default;
};

/// Folds one instance event into the state (RULES.md "Time-driven events": `effective_at` is
/// when it took effect under the rules). Account events are ignored. Pure; thread-safe.
[[nodiscard]] instance_state evolve(instance_state s, const events::event& e, time_point effective_at);

/// As above, under the table `table` the event was decided by (the version in its metadata):
/// records that version, and when the event moves the instance into another state pins that
/// table's lapse terms (`phase`; not on a lapse path's step from its first state into its
/// second). Pure; thread-safe.
[[nodiscard]] instance_state evolve(instance_state s, const events::event& e, time_point effective_at,
                                    const policy_set& table);

/// The terms of `p` an instance entering a state under it is pinned to. Thread-safe.
[[nodiscard]] instance_state::phase_terms phase_terms_of(const policy& p, policy_version version);

/// The billing history as billable marks under policy `p` (input of `cycle_amount`). Thread-safe.
[[nodiscard]] std::vector<billing_mark> billing_marks(const instance_state& s, const policy& p);

/// When a change in progress completes (Q; decision: 5 minutes after it started). Thread-safe.
[[nodiscard]] std::optional<time_point> config_change_until(const instance_state& s, const policy& p);

/// Timer kinds (RULES.md "Time-driven events").
enum class timer_kind {
    expiry,                   // subscription term end → expired
    release,                  // auto-release (expired/stopped/suspended → released)
    grace_end,                // RabbitMQ grace end → frozen
    retention_end,            // RabbitMQ retention end → released
    suspension,               // MQTT grace end → suspended
    auto_renew_attempt,       // R: 03:00 local attempts
    settlement,               // end of a billing cycle (+ issue delay)
    config_change_completion, // Q: change in progress ends
    force_delete,             // K: the force-delete task
};
/// The stable snake_case name of a timer kind (the timers projection stores it). Thread-safe.
[[nodiscard]] std::string_view to_string(timer_kind k) noexcept;
/// The timer kind of a stored name, or nothing. Thread-safe.
[[nodiscard]] std::optional<timer_kind> parse_timer_kind(std::string_view s) noexcept;

struct timer {
    timer_kind kind = timer_kind::expiry;
    time_point due_at{};
    friend bool operator==(const timer&, const timer&) = default;
};

/// Every timer the state implies, soonest first; a due time in the past means "fire now"
/// (RULES.md "Import"). A state transition's due time is never before the state began.
/// Pure; thread-safe.
[[nodiscard]] std::vector<timer> deadlines(const instance_state& s, const policy& p);

/// The next billing cycle to settle, [start, end) (RULES.md "Accounts and payments"): the first
/// cycle after the last settled one with billable time in it, or, when earlier, the cycle a
/// pending usage record makes due (issue 15): its own cycle, or for a record of a cycle already
/// settled (recorded late) the cycle it was recorded in, so late usage is billed even when the
/// instance has no billable time left. Pure; thread-safe.
struct cycle {
    time_point start{};
    time_point end{};
    friend bool operator==(const cycle&, const cycle&) = default;
};
[[nodiscard]] std::optional<cycle> next_unsettled_cycle(const instance_state& s, const policy& p);

/// The longest billing cycle policy `p` can cut, for bounding prices (`rate_fits_cycle`): an hour
/// for hourly cycles; for local days two days, more than any local day of any IANA zone since
/// 1900 (DST days are 23 or 25 hours). Zero when the policy has no cycles. Thread-safe.
[[nodiscard]] duration longest_cycle(const policy& p) noexcept;

/// The cycle of policy `p` containing `t`. Pure; thread-safe.
[[nodiscard]] cycle cycle_containing(time_point t, const policy& p, std::string_view timezone);

/// The first instant of [start, end) at which the instance was billable under `p` (issue 15:
/// usage is billed only for billable time), with the billing mark in force then (its per-unit
/// rates are the price in force); nothing when it was not billable at any instant of it. Reads
/// the marks, which reach back to `usage_lookback` before the last settlement. Thread-safe.
struct billable_instant {
    time_point at{};
    const instance_state::mark* in_force = nullptr;
};
[[nodiscard]] std::optional<billable_instant> first_billable_instant(const instance_state& s, const policy& p,
                                                                     time_point start, time_point end);

/// The largest flat (time-based) part one cycle's bill of policy `p` can have: every rate
/// `rate_fits_cycle` accepts is at most this, and a cycle's flat part is at most its highest
/// rate. Usage is refused when the bill it joins could overflow with it. Thread-safe.
[[nodiscard]] money max_flat_bill(const policy& p) noexcept;

/// When the force-delete task runs (K: at once for a subscription; for payg/serverless at the
/// next settlement time, when the final bill is generated). Pure; thread-safe.
[[nodiscard]] std::optional<time_point> force_delete_due(const instance_state& s, const policy& p);

/// The next auto-renew attempt (R: 03:00 local on the day N days before expiry, or the next
/// 03:00 after enabling or after a failed attempt; only before expiry). Pure; thread-safe.
[[nodiscard]] std::optional<time_point> next_auto_renew_attempt(const instance_state& s, const policy& p);

/// True when the instance is on its overdue path (payg/serverless bill not covered). Thread-safe.
[[nodiscard]] bool on_overdue_path(const instance_state& s, const policy& p);

/// The account notices of a unit of work (RULES.md "Accounts and payments"; ledger/unit.h).
enum class account_notice {
    overdue,   // a bill left the account owing: a running payg/serverless instance starts its overdue path
    paid,      // a payment left the account owing nothing: an instance on its overdue path is restored
};
/// The stable name of a notice ("overdue", "paid"), as the projections store it. Thread-safe.
[[nodiscard]] std::string_view to_string(account_notice n) noexcept;

/// Which account notice the instance acts on now, if any: `overdue` for a running pay-as-you-go
/// or serverless instance whose policy has an overdue path; `paid` for one on its overdue path
/// with no force deletion pending (K: funds added do not restore it then). `decide` refines
/// `paid` (a release deadline that passed). Pure; thread-safe.
[[nodiscard]] std::optional<account_notice> notice_of(const instance_state& s, const policy& p);

// ---- view helpers (API.md "GET /v1/instances/{id}") ----

/// API.md's `deadlines` object: each key only when it applies. `release_at` is the projected
/// release (for RabbitMQ/MQTT in their first lapse state: after both phases, unless paid or
/// renewed), also for a pending force deletion.
struct deadline_view {
    std::optional<time_point> release_at;
    std::optional<time_point> suspend_at;
    std::optional<time_point> freeze_at;
    std::optional<time_point> next_auto_renew_at;
    std::optional<time_point> next_settlement_at;
    std::optional<time_point> config_change_until;
    friend bool operator==(const deadline_view&, const deadline_view&) = default;
};
/// The deadlines of the instance view (RULES.md "Time-driven events"). Pure; thread-safe.
[[nodiscard]] deadline_view view_deadlines(const instance_state& s, const policy& p);

/// The product's name for the current state ("Frozen", "Grace period", "Service suspension").
[[nodiscard]] std::string display_state(const instance_state& s, const policy& p);
/// The flags of the current state (RULES.md "Vocabulary"). Thread-safe.
[[nodiscard]] const state_policy& state_flags(const instance_state& s, const policy& p);
/// The actions available now: the console's Actions column for the state, plus unsubscribe,
/// change-config and auto-renew where they apply, minus what a pending force deletion or a
/// change in progress forbids. Pure; thread-safe.
[[nodiscard]] std::vector<std::string> allowed_actions(const instance_state& s, const policy& p, time_point now);

} // namespace mqledger
