#include "ledger/instance.h"

#include "ledger/local_time.h"
#include "ledger/money.h"

#include <algorithm>
#include <array>
#include <limits>
#include <utility>

namespace mqledger {
namespace {

using std::chrono::microseconds;

const date::time_zone* zone_of(const instance_state& s) {
    if (const auto* z = find_zone(s.timezone)) return z;
    return find_zone(default_timezone);
}

void add_mark(instance_state& s, time_point at) {
    if (s.bill == billing::subscription) return;
    if (!s.marks.empty() && s.marks.back().at >= at) {
        // Same instant: the later event wins; never let history run backwards.
        s.marks.back() = instance_state::mark{s.marks.back().at, s.current, s.rate.amount, s.rate.per_unit};
        return;
    }
    s.marks.push_back({at, s.current, s.rate.amount, s.rate.per_unit});
}

// Keeps the billing history from `from` on: the mark in force at `from` (moved to it) and every
// later one.
void trim_marks(instance_state& s, time_point from) {
    std::vector<instance_state::mark> kept;
    for (std::size_t i = 0; i < s.marks.size(); ++i) {
        const bool last_before =
            s.marks[i].at < from && (i + 1 == s.marks.size() || s.marks[i + 1].at > from);
        if (s.marks[i].at >= from) kept.push_back(s.marks[i]);
        else if (last_before) {
            kept.push_back(s.marks[i]);
            kept.back().at = from;
        }
    }
    s.marks = std::move(kept);
}

// Forgets the ids of records that start before the lookback from `at`: no record starting then
// can be accepted any more (decide refuses it before looking for duplicates).
void forget_old_usage_ids(instance_state& s, time_point at) {
    const auto horizon = at - usage_lookback;
    std::erase_if(s.usage_seen, [&](const auto& kv) { return kv.second.start < horizon; });
}

void enter(instance_state& s, state to, time_point at) {
    s.current = to;
    s.state_since = at;
    add_mark(s, at);
}

void apply_purchase(instance_state& s, const events::purchased& e, time_point at) {
    s.exists = true;
    s.account_id = e.account_id;
    s.prod = e.prod;
    s.bill = e.bill;
    s.timezone = e.timezone;
    s.rate = e.rate;
    s.term_months = e.term_months;
    s.expires_at = e.expires_at;
    s.config = e.config;
    s.auto_renew = e.auto_renew;
    s.auto_renew_not_before = at;
    s.created_at = at;
}

struct folder {
    instance_state& s;
    time_point at;

    void operator()(const events::purchased& e) {
        apply_purchase(s, e, at);
        s.deployed = starting_state_of(e.prod) == state::running;
        enter(s, starting_state_of(e.prod), at);
    }
    void operator()(const events::imported& e) {
        apply_purchase(s, e.purchase, at);
        s.current = e.in_state;
        s.state_since = e.state_since;
        // An instance imported in any state past `not_deployed` has run (K: only Deploy leads there).
        s.deployed = e.in_state != state::not_deployed;
        s.overdue_since = e.overdue_since;
        if (!s.overdue_since && e.purchase.bill != billing::subscription &&
            (e.in_state == state::expired || e.in_state == state::frozen || e.in_state == state::suspended ||
             (e.in_state == state::stopped && !stop_is_manual(e.purchase.prod))))
            s.overdue_since = e.state_since;
        // Decision: billing of an imported instance starts at its import, not before.
        add_mark(s, at);
    }
    void operator()(const events::deployed&) {
        s.deployed = true;
        enter(s, state::running, at);
    }
    void operator()(const events::stopped&) {
        if (!stop_is_manual(s.prod)) s.overdue_since = at;
        enter(s, state::stopped, at);
    }
    void operator()(const events::enabled&) { enter(s, state::running, at); }
    void operator()(const events::renewed& e) {
        s.expires_at = e.expires_at;
        s.auto_renew_not_before = at + microseconds{1};
        s.auto_renew_failures = 0;
    }
    void operator()(const events::auto_renew_set& e) {
        s.auto_renew = auto_renew_setting{e.enabled, e.days_before};
        s.auto_renew_not_before = at;
        s.auto_renew_failures = 0;
    }
    void operator()(const events::auto_renew_failed&) {
        s.auto_renew_not_before = at + microseconds{1};
        ++s.auto_renew_failures;
    }
    void operator()(const events::unsubscribed&) { s.expires_at = at; }
    void operator()(const events::expired& e) {
        if (e.cause == events::expiry_cause::overdue) s.overdue_since = at;
        enter(s, state::expired, at);
    }
    void operator()(const events::restored&) {
        s.overdue_since.reset();
        // K: only Deploy leads to Running: a subscription that expired before it was ever
        // deployed and is renewed goes back to where it was, with its term running again.
        enter(s, s.deployed ? state::running : state::not_deployed, at);
    }
    void operator()(const events::suspended&) { enter(s, state::suspended, at); }
    void operator()(const events::frozen&) { enter(s, state::frozen, at); }
    void operator()(const events::force_delete_requested&) {
        s.force_delete_pending = true;
        s.force_delete_requested_at = at;
    }
    void operator()(const events::released&) {
        // K: "All data -- including topics, consumer groups, and configurations -- is
        // permanently deleted"; E: "All metadata deleted".
        s.topics.clear();
        s.groups.clear();
        s.config.reset();
        s.force_delete_pending = false;
        s.config_change_started_at.reset();
        enter(s, state::released, at);
    }
    void operator()(const events::deleted&) { enter(s, state::deleted, at); }
    void operator()(const events::settled& e) {
        s.settled_until = e.cycle_end;
        // A running total for the view: saturates instead of overflowing (each bill is checked
        // when decided; their sum over an instance's life is not bounded by any one check).
        const auto total = checked_add(s.billed_total, e.amount);
        s.billed_total = total ? *total
                               : (e.amount > 0 ? std::numeric_limits<money>::max() : std::numeric_limits<money>::min());
        // The usage it billed is no longer pending.
        std::erase_if(s.usage_pending, [&](const instance_state::usage_record& r) {
            return std::any_of(e.usage.begin(), e.usage.end(),
                               [&](const events::usage_item& i) { return i.record_id == r.record_id; });
        });
        // Keep the state in force at the cycle end and everything after it, and as far back as
        // a late usage record may still reach (usage_lookback before now).
        trim_marks(s, std::min(e.cycle_end, at - usage_lookback));
        forget_old_usage_ids(s, at);
    }
    void operator()(const events::usage_recorded& e) {
        s.usage_pending.push_back({e.record_id, e.metric, e.quantity, e.start, e.end, e.rate, at});
        s.usage_seen.insert_or_assign(e.record_id, instance_state::usage_content{e.metric, e.quantity, e.start, e.end});
        forget_old_usage_ids(s, at);
    }
    void operator()(const events::config_change_started& e) {
        if (e.to.config) s.config = e.to.config;
        s.rate = e.to.rate;
        s.config_change_started_at = at;
        add_mark(s, at);
    }
    void operator()(const events::config_change_completed&) { s.config_change_started_at.reset(); }
    void operator()(const events::topic_created& e) { s.topics.push_back(e.name); }
    void operator()(const events::topic_deleted& e) { std::erase(s.topics, e.name); }
    void operator()(const events::group_created& e) { s.groups.push_back(e.name); }
    void operator()(const events::group_deleted& e) { std::erase(s.groups, e.name); }
    // Account events belong to the account stream.
    void operator()(const events::account_opened&) {}
    void operator()(const events::funds_added&) {}
    void operator()(const events::charged&) {}
    void operator()(const events::refunded&) {}
};

bool is_account_event(const events::event& e) {
    return std::holds_alternative<events::account_opened>(e) || std::holds_alternative<events::funds_added>(e) ||
           std::holds_alternative<events::charged>(e) || std::holds_alternative<events::refunded>(e);
}

constexpr std::array<std::pair<timer_kind, std::string_view>, 9> timer_names{{
    {timer_kind::expiry, "expiry"},
    {timer_kind::release, "release"},
    {timer_kind::grace_end, "grace_end"},
    {timer_kind::retention_end, "retention_end"},
    {timer_kind::suspension, "suspension"},
    {timer_kind::auto_renew_attempt, "auto_renew_attempt"},
    {timer_kind::settlement, "settlement"},
    {timer_kind::config_change_completion, "config_change_completion"},
    {timer_kind::force_delete, "force_delete"},
}};

} // namespace

instance_state evolve(instance_state s, const events::event& e, time_point effective_at) {
    if (is_account_event(e)) return s;
    std::visit(folder{s, effective_at}, e);
    ++s.version;
    s.last_effective_at = std::max(s.last_effective_at, effective_at);
    return s;
}

instance_state::phase_terms phase_terms_of(const policy& p, policy_version version) {
    instance_state::phase_terms t;
    if (p.lapse) {
        t.first_for = p.lapse->first_for;
        t.second_for = p.lapse->second_for;
    }
    t.stopped_release_days = p.stopped_release_days;
    t.stopped_release_hour = p.stopped_release_hour;
    t.version = version;
    return t;
}

instance_state evolve(instance_state s, const events::event& e, time_point effective_at, const policy_set& table) {
    if (is_account_event(e)) return s;
    const bool existed = s.exists;
    const state before = s.current;
    const time_point before_since = s.state_since;
    s = evolve(std::move(s), e, effective_at);
    s.policy = table.version();
    if (!s.exists) return s;
    const auto& p = table.get(s.prod, s.bill);
    const bool entered = !existed || s.current != before || s.state_since != before_since;
    const bool lapse_step = existed && p.lapse && p.lapse->second && before == p.lapse->first &&
                            s.current == *p.lapse->second && s.phase;
    if (entered && !lapse_step) s.phase = phase_terms_of(p, table.version());
    return s;
}

std::string_view to_string(timer_kind k) noexcept {
    for (const auto& [kind, name] : timer_names)
        if (kind == k) return name;
    return "?";
}

std::optional<timer_kind> parse_timer_kind(std::string_view s) noexcept {
    for (const auto& [kind, name] : timer_names)
        if (name == s) return kind;
    return std::nullopt;
}

std::vector<billing_mark> billing_marks(const instance_state& s, const policy& p) {
    std::vector<billing_mark> out;
    out.reserve(s.marks.size());
    for (const auto& m : s.marks) out.push_back({m.at, p.billable(m.in_state), m.rate});
    return out;
}

std::optional<time_point> config_change_until(const instance_state& s, const policy& p) {
    if (!s.config_change_started_at) return std::nullopt;
    return *s.config_change_started_at + p.change_in_progress;
}

duration longest_cycle(const policy& p) noexcept {
    switch (p.cycle) {
    case cycle_kind::hourly: return std::chrono::hours{1};
    case cycle_kind::local_day: return std::chrono::hours{48};
    case cycle_kind::none: break;
    }
    return duration{0};
}

cycle cycle_containing(time_point t, const policy& p, std::string_view timezone) {
    if (p.cycle == cycle_kind::local_day) {
        const auto* z = find_zone(timezone);
        if (z == nullptr) z = find_zone(default_timezone);
        const auto day = local_day_of(z, t);
        return {local_to_utc(z, day, microseconds{0}), local_to_utc(z, day + std::chrono::days{1}, microseconds{0})};
    }
    const auto start = std::chrono::floor<std::chrono::hours>(t);
    return {start, start + std::chrono::hours{1}};
}

std::optional<cycle> next_unsettled_cycle(const instance_state& s, const policy& p) {
    if (s.bill == billing::subscription || p.cycle == cycle_kind::none) return std::nullopt;
    std::optional<cycle> next;
    for (std::size_t i = 0; i < s.marks.size(); ++i) {
        if (!p.billable(s.marks[i].in_state)) continue;
        auto from = s.marks[i].at;
        if (s.settled_until) from = std::max(from, *s.settled_until);
        if (i + 1 < s.marks.size() && s.marks[i + 1].at <= from) continue;
        next = cycle_containing(from, p, s.timezone);
        break;
    }
    // Issue 15: pending usage makes its cycle due; usage of a settled cycle (recorded late) is
    // billed by the next settlement, at the latest the one of the cycle it was recorded in.
    for (const auto& r : s.usage_pending) {
        auto t = r.start;
        if (s.settled_until && t < *s.settled_until) t = std::max(r.recorded_at, *s.settled_until);
        const auto c = cycle_containing(t, p, s.timezone);
        if (!next || c.start < next->start) next = c;
    }
    return next;
}

std::optional<billable_instant> first_billable_instant(const instance_state& s, const policy& p, time_point start,
                                                       time_point end) {
    for (std::size_t i = 0; i < s.marks.size(); ++i) {
        if (!p.billable(s.marks[i].in_state)) continue;
        const auto from = std::max(s.marks[i].at, start);
        const auto to = i + 1 < s.marks.size() ? std::min(s.marks[i + 1].at, end) : end;
        if (from < to) return billable_instant{from, &s.marks[i]};
    }
    return std::nullopt;
}

money max_flat_bill(const policy& p) noexcept {
    const auto longest = longest_cycle(p).count();
    return longest > 0 ? std::numeric_limits<money>::max() / longest : 0;
}

std::optional<time_point> force_delete_due(const instance_state& s, const policy& p) {
    if (!s.force_delete_pending || !s.force_delete_requested_at) return std::nullopt;
    const auto requested = *s.force_delete_requested_at;
    if (s.bill == billing::subscription || p.cycle == cycle_kind::none) return requested;
    if (const auto c = next_unsettled_cycle(s, p)) return std::max(c->end + p.issue_delay, requested);
    return cycle_containing(requested, p, s.timezone).end + p.issue_delay;
}

std::optional<time_point> next_auto_renew_attempt(const instance_state& s, const policy& p) {
    if (s.bill != billing::subscription || !p.auto_renew_allowed || !s.auto_renew.enabled || !s.expires_at)
        return std::nullopt;
    if (s.current != state::running && s.current != state::not_deployed) return std::nullopt;
    const auto* z = zone_of(s);
    auto at = local_hour_days_before(*s.expires_at, z, s.auto_renew.days_before, p.auto_renew_hour);
    if (at < s.auto_renew_not_before) at = next_local_hour(s.auto_renew_not_before, z, p.auto_renew_hour);
    if (at >= *s.expires_at) return std::nullopt;
    return at;
}

bool on_overdue_path(const instance_state& s, const policy& p) {
    if (s.bill == billing::subscription || !p.lapse || !s.exists) return false;
    if (s.current == p.lapse->first)
        return s.overdue_since.has_value() || (s.current == state::stopped && !stop_is_manual(s.prod));
    return p.lapse->second && s.current == *p.lapse->second;
}

std::string_view to_string(account_notice n) noexcept {
    return n == account_notice::overdue ? "overdue" : "paid";
}

std::optional<account_notice> notice_of(const instance_state& s, const policy& p) {
    if (!s.exists || s.bill == billing::subscription || !p.lapse) return std::nullopt;
    if (s.current == state::running) return account_notice::overdue;
    if (on_overdue_path(s, p) && !s.force_delete_pending) return account_notice::paid;
    return std::nullopt;
}

namespace {

// The lapse terms an instance's deadlines use: those pinned when it entered its state, else the
// policy's own.
instance_state::phase_terms terms_of(const instance_state& s, const policy& p) {
    return s.phase ? *s.phase : phase_terms_of(p, s.policy);
}

} // namespace

std::vector<timer> deadlines(const instance_state& s, const policy& p) {
    std::vector<timer> out;
    if (!s.exists) return out;
    if (s.current == state::released || s.current == state::deleted) {
        // Issue 15: usage recorded late, for time before the release, is still billed.
        if (!s.usage_pending.empty())
            if (const auto c = next_unsettled_cycle(s, p)) out.push_back({timer_kind::settlement, c->end + p.issue_delay});
        return out;
    }
    const auto transition = [&](timer_kind k, time_point t) { out.push_back({k, std::max(t, s.state_since)}); };

    if (s.bill == billing::subscription && s.expires_at &&
        (s.current == state::running || s.current == state::not_deployed)) {
        transition(timer_kind::expiry, *s.expires_at);
        if (const auto a = next_auto_renew_attempt(s, p)) out.push_back({timer_kind::auto_renew_attempt, *a});
    }
    const auto terms = terms_of(s, p);
    if (p.lapse) {
        const auto& l = *p.lapse;
        const bool on_path = s.bill == billing::subscription ? s.current == l.first : on_overdue_path(s, p);
        if (on_path && s.current == l.first) {
            const auto kind = !l.second ? timer_kind::release
                              : *l.second == state::frozen ? timer_kind::grace_end
                                                           : timer_kind::suspension;
            transition(kind, s.state_since + terms.first_for);
        } else if (l.second && s.current == *l.second) {
            transition(*l.second == state::frozen ? timer_kind::retention_end : timer_kind::release,
                       s.state_since + terms.second_for);
        }
    }
    if (p.manual_stop && stop_is_manual(s.prod) && s.current == state::stopped)
        transition(timer_kind::release, local_hour_days_after(s.state_since, zone_of(s), terms.stopped_release_days,
                                                              terms.stopped_release_hour));
    if (const auto c = next_unsettled_cycle(s, p)) out.push_back({timer_kind::settlement, c->end + p.issue_delay});
    if (const auto u = config_change_until(s, p)) out.push_back({timer_kind::config_change_completion, *u});
    if (const auto f = force_delete_due(s, p)) out.push_back({timer_kind::force_delete, *f});
    std::sort(out.begin(), out.end(), [](const timer& a, const timer& b) {
        return a.due_at != b.due_at ? a.due_at < b.due_at : a.kind < b.kind;
    });
    return out;
}

deadline_view view_deadlines(const instance_state& s, const policy& p) {
    deadline_view v;
    const auto keep_min = [](std::optional<time_point>& slot, time_point t) {
        if (!slot || t < *slot) slot = t;
    };
    for (const auto& t : deadlines(s, p)) {
        switch (t.kind) {
        case timer_kind::release:
        case timer_kind::retention_end:
        case timer_kind::force_delete: keep_min(v.release_at, t.due_at); break;
        case timer_kind::grace_end:
            keep_min(v.freeze_at, t.due_at);
            if (p.lapse) keep_min(v.release_at, t.due_at + terms_of(s, p).second_for);
            break;
        case timer_kind::suspension:
            keep_min(v.suspend_at, t.due_at);
            if (p.lapse) keep_min(v.release_at, t.due_at + terms_of(s, p).second_for);
            break;
        case timer_kind::auto_renew_attempt: keep_min(v.next_auto_renew_at, t.due_at); break;
        case timer_kind::settlement: keep_min(v.next_settlement_at, t.due_at); break;
        case timer_kind::config_change_completion: keep_min(v.config_change_until, t.due_at); break;
        case timer_kind::expiry: break;
        }
    }
    return v;
}

std::string display_state(const instance_state& s, const policy& p) { return p.at(s.current).display_name; }

const state_policy& state_flags(const instance_state& s, const policy& p) { return p.at(s.current); }

std::vector<std::string> allowed_actions(const instance_state& s, const policy& p, time_point now) {
    std::vector<std::string> out;
    if (!s.exists) return out;
    const auto timers = deadlines(s, p);
    // A release whose deadline has passed has taken effect under the rules even if its timer has
    // not run yet (K: "enable before 08:00 on the third day").
    const bool release_due = std::any_of(timers.begin(), timers.end(), [&](const timer& t) {
        return (t.kind == timer_kind::release || t.kind == timer_kind::retention_end) && t.due_at <= now;
    });
    if (release_due) return out;
    for (const auto& a : p.at(s.current).actions) {
        if (s.force_delete_pending &&
            (a == action::renew || a == action::enable || a == action::add_funds || a == action::force_delete))
            continue;
        out.push_back(a);
    }
    const bool term_runs = s.current == state::running || s.current == state::not_deployed;
    if (s.current == state::running && p.unsubscribe_allowed && s.bill == billing::subscription)
        out.emplace_back(action::unsubscribe);
    if (s.current == state::running && p.config.allowed && !s.config_change_started_at)
        out.emplace_back(action::change_config);
    if (term_runs && s.bill == billing::subscription && p.auto_renew_allowed) out.emplace_back(action::auto_renew);
    return out;
}

} // namespace mqledger
