#include "ledger/decide.h"

#include "ledger/codec.h"
#include "ledger/local_time.h"
#include "ledger/money.h"

#include <algorithm>
#include <array>
#include <iterator>
#include <limits>
#include <type_traits>
#include <utility>

namespace mqledger {
namespace {

using std::chrono::microseconds;
using codec::format_time;
namespace ev = events;
namespace cmd = commands;

constexpr std::size_t max_name_length = 255;
constexpr int max_catch_up_cycles = 100000;

refusal make_refusal(refusal_code code, std::string message) {
    refusal r;
    r.code = code;
    r.message = std::move(message);
    return r;
}

decision refuse(refusal r) { return decision{{}, std::move(r)}; }

decision invalid(std::string field, std::string message) {
    auto r = make_refusal(refusal_code::invalid, std::move(message));
    r.field = std::move(field);
    return refuse(std::move(r));
}

decision conflict(std::string reason, std::string message) {
    auto r = make_refusal(refusal_code::conflict, std::move(message));
    r.reason = std::move(reason);
    return refuse(std::move(r));
}

decision not_found(std::string message) { return refuse(make_refusal(refusal_code::not_found, std::move(message))); }

decision insufficient(money balance, money required) {
    auto r = make_refusal(refusal_code::insufficient_balance, "the balance does not cover the charge");
    r.balance = balance;
    r.required = required;
    return refuse(std::move(r));
}

bool valid_config(const instance_config& c) {
    static constexpr std::array<std::string_view, 3> editions{"standard", "professional", "enterprise_platinum"};
    const bool edition_ok = std::find(editions.begin(), editions.end(), c.edition) != editions.end();
    const bool sub_ok = c.sub_category == "standalone" || c.sub_category == "cluster";
    return edition_ok && sub_ok && c.tps >= 0 && c.bandwidth_mbps >= 0;
}

int edition_rank(const std::string& e) {
    if (e == "standard") return 0;
    if (e == "professional") return 1;
    return 2;
}

bool valid_name(const std::string& n) { return !n.empty() && n.size() <= max_name_length; }

// R: "You can change this deduction date as required": any lead of at least a day that is
// shorter than the shortest possible term of `term_months` months. A lead as long as the term
// would put the next attempt before a success's own day, so one success would trigger the next
// at once; shorter, the renewed expiry's attempt day always comes after it (one attempt a day).
// The policy may cap it further (`auto_renew_max_days_before`, unset by default).
bool valid_days_before(std::int32_t days_before, std::int32_t term_months, const policy& p) {
    if (days_before < 1 || days_before >= shortest_term_days(std::max<std::int32_t>(1, term_months))) return false;
    return !p.auto_renew_max_days_before || days_before <= *p.auto_renew_max_days_before;
}

// Issue 15: the per-unit rates of a price: each for a usage metric of the policy, none negative.
// The field names the metric (`price.per_unit.METRIC`).
std::optional<decision> validate_per_unit(const price& rate, const policy& p) {
    for (const auto& [metric, amount] : rate.per_unit) {
        const auto field = "price.per_unit." + metric;
        if (!p.has_metric(metric))
            return invalid(field, "\"" + metric + "\" is not a usage metric of " + std::string(to_string(p.prod)) + " " +
                                      std::string(to_string(p.bill)));
        if (amount < 0) return invalid(field, "a per-unit rate must not be negative");
    }
    return std::nullopt;
}

// A usage record id: 1 to 128 printable ASCII characters (API `POST /v1/instances/{id}/usage`).
bool valid_record_id(const std::string& id) {
    if (id.empty() || id.size() > 128) return false;
    return std::all_of(id.begin(), id.end(), [](char c) { return c >= 0x20 && c <= 0x7e; });
}

// ---- stage 1: the command alone ----

// The policy table is indexed by product and billing: a value outside the enums (a caller that
// did not come through the codec) is refused before it can index anything.
std::optional<decision> validate_enums(const cmd::purchase& c) {
    if (to_string(c.prod) == "?") return invalid("product", "unknown product");
    if (to_string(c.bill) == "?") return invalid("billing", "unknown billing model");
    if (to_string(c.rate.per) == "?") return invalid("price", "unknown price unit");
    return std::nullopt;
}

std::optional<decision> validate_purchase_fields(const cmd::purchase& c, const policy& p) {
    if (c.instance_id.empty()) return invalid("instance_id", "instance_id is required");
    if (c.account_id.empty()) return invalid("account_id", "account_id is required");
    if (!c.timezone.empty() && !valid_timezone(c.timezone)) return invalid("timezone", "unknown time zone");
    if (c.rate.per != p.price_unit || c.rate.amount < 0)
        return invalid("price", std::string{"price must be a non-negative "} + std::string{to_string(p.price_unit)} +
                                    " amount");
    // RULES.md "Money": a settlement must never overflow, so a rate whose one-cycle bill could
    // not be computed exactly is refused here rather than billed wrongly later.
    if (p.cycle != cycle_kind::none && !rate_fits_cycle(c.rate.amount, longest_cycle(p)))
        return invalid("price", "the price is too large: a billing cycle's bill would overflow");
    if (auto bad = validate_per_unit(c.rate, p)) return bad;
    if (c.bill == billing::subscription && (c.term_months < 1 || c.term_months > p.max_term_months))
        return invalid("term_months", "term_months out of range");
    if (c.bill != billing::subscription && c.term_months != 0)
        return invalid("term_months", "term_months applies to subscriptions only");
    // The term's cost (and every automatic renewal of the same term) must be representable.
    if (c.bill == billing::subscription && !checked_mul(c.rate.amount, c.term_months))
        return invalid("price", "price × term overflows");
    if (p.config.allowed && (!c.config || !valid_config(*c.config)))
        return invalid("config", "a valid configuration is required");
    if (c.auto_renew && c.auto_renew->enabled) {
        if (c.bill != billing::subscription || !p.auto_renew_allowed)
            return invalid("auto_renew", "auto-renewal applies to subscriptions only");
        if (!valid_days_before(c.auto_renew->days_before, c.term_months, p))
            return invalid("auto_renew", "days_before must be at least 1 and shorter than the term");
    }
    return std::nullopt;
}

ev::purchased purchase_event(const cmd::purchase& c, const policy& p, std::optional<time_point> expires_at) {
    ev::purchased e;
    e.prod = c.prod;
    e.bill = c.bill;
    e.account_id = c.account_id;
    e.timezone = c.timezone.empty() ? std::string{default_timezone} : c.timezone;
    e.rate = c.rate;
    e.term_months = c.bill == billing::subscription ? c.term_months : 0;
    e.expires_at = expires_at;
    if (p.config.allowed) e.config = c.config;
    e.auto_renew = c.auto_renew.value_or(auto_renew_setting{false, p.auto_renew_days_before});
    return e;
}

// ---- stages 2 and 3: against the state, then the events ----

struct instance_decider {
    const instance_state& s;
    time_point now;
    const decide_context& ctx;
    const policy* p = nullptr;   // the instance's policy (null before purchase)

    std::string stream() const { return instance_stream(ctx.instance_id); }
    std::string account() const { return account_stream(s.account_id); }
    money balance() const { return ctx.account ? ctx.account->balance : 0; }
    const date::time_zone* zone() const {
        const auto* z = find_zone(s.timezone);
        return z != nullptr ? z : find_zone(default_timezone);
    }

    decision bad_transition(std::string message) const {
        auto r = make_refusal(refusal_code::invalid_transition, std::move(message));
        r.current = s.current;
        if (p != nullptr) r.allowed_actions = allowed_actions(s, *p, now);
        return refuse(std::move(r));
    }

    bool allows(std::string_view a) const {
        const auto list = allowed_actions(s, *p, now);
        return std::find(list.begin(), list.end(), a) != list.end();
    }

    decision emit(std::vector<pending_event> events) const { return decision{std::move(events), std::nullopt}; }

    pending_event on_instance(time_point at, ev::event e) const { return {stream(), at, std::move(e)}; }
    pending_event on_account(time_point at, ev::event e) const { return {account(), at, std::move(e)}; }

    // K, E: a release deletes the topics, the groups and the configuration, and lists them.
    ev::released release_event(ev::release_cause cause) const { return ev::released{cause, s.topics, s.groups, s.config}; }

    // The event that puts a running instance on its overdue path (RULES.md "Accounts and payments").
    std::optional<ev::event> overdue_entry() const {
        if (notice_of(s, *p) != account_notice::overdue) return std::nullopt;
        switch (p->lapse->first) {
        case state::stopped: return ev::event{ev::stopped{}};
        case state::suspended: return ev::event{ev::suspended{}};
        case state::frozen: return ev::event{ev::frozen{}};
        default: return ev::event{ev::expired{ev::expiry_cause::overdue}};
        }
    }

    // ---- purchase and import ----
    decision operator()(const cmd::purchase& c) const {
        if (auto bad = validate_enums(c)) return std::move(*bad);
        const auto& pp = ctx.policies->get(c.prod, c.bill);
        if (!pp.purchase_allowed)
            return invalid("billing", pp.purchase_refusal.empty() ? "this product is not sold with this billing model"
                                                                   : pp.purchase_refusal);
        if (auto bad = validate_purchase_fields(c, pp)) return std::move(*bad);
        if (s.exists) return conflict("duplicate_id", "an instance with this id exists");
        if (!ctx.account) return not_found("unknown account");
        const auto id = instance_stream(c.instance_id);
        if (c.bill != billing::subscription) {
            if (pp.purchase_requires_no_debt && ctx.account->balance < 0) return insufficient(ctx.account->balance, 0);
            return emit({{id, now, purchase_event(c, pp, std::nullopt)}});
        }
        const auto cost = checked_mul(c.rate.amount, c.term_months);
        if (!cost) return invalid("price", "price × term overflows");
        if (ctx.account->balance < *cost) return insufficient(ctx.account->balance, *cost);
        const auto* z = find_zone(c.timezone.empty() ? default_timezone : std::string_view{c.timezone});
        const auto expiry = add_months_local(now, z, c.term_months);
        if (!supported_time(expiry)) return invalid("term_months", "the term ends beyond the supported range");
        std::vector<pending_event> out{{id, now, purchase_event(c, pp, expiry)}};
        if (*cost > 0)
            out.push_back({account_stream(c.account_id), now, ev::charged{*cost, "purchase", c.instance_id, ""}});
        return emit(std::move(out));
    }

    decision operator()(const cmd::import_instance& c) const {
        const auto& d = c.details;
        if (auto bad = validate_enums(d)) return std::move(*bad);
        if (to_string(c.in_state) == "?") return invalid("state", "unknown state");
        const auto& pp = ctx.policies->get(d.prod, d.bill);
        if (!pp.import_allowed) return invalid("billing", "this product and billing model cannot be imported");
        if (auto bad = validate_purchase_fields(d, pp)) return std::move(*bad);
        if (!pp.at(c.in_state).valid) return invalid("state", "the state does not exist for this product and billing");
        if (!supported_time(c.state_since)) return invalid("state_since", "state_since is out of the supported range");
        if (c.expires_at && !supported_time(*c.expires_at)) return invalid("expires_at", "expires_at is out of the supported range");
        if (c.overdue_since && !supported_time(*c.overdue_since))
            return invalid("overdue_since", "overdue_since is out of the supported range");
        if (c.state_since > now) return invalid("state_since", "state_since is in the future");
        if (d.bill == billing::subscription && !c.expires_at) return invalid("expires_at", "expires_at is required");
        if (c.overdue_since && *c.overdue_since > now) return invalid("overdue_since", "overdue_since is in the future");
        if (c.owed < 0) return invalid("owed", "owed must not be negative");
        if (s.exists) return conflict("duplicate_id", "an instance with this id exists");
        if (!ctx.account) return not_found("unknown account");
        ev::imported e;
        e.purchase = purchase_event(d, pp, d.bill == billing::subscription ? c.expires_at : std::nullopt);
        e.in_state = c.in_state;
        e.state_since = c.state_since;
        e.overdue_since = d.bill == billing::subscription ? std::nullopt : c.overdue_since;
        // RULES.md "Import": what the account owes for an instance on its overdue path is charged
        // at import (may take the balance below zero, like the bill it stands for), so paying it
        // restores the instance like any other (seed K: "Expired | Add funds | Within 7 days").
        if (c.owed > 0) {
            const auto folded = evolve(instance_state{}, e, now);
            if (!on_overdue_path(folded, pp)) return invalid("owed", "only an instance on its overdue path can owe");
            if (!checked_sub(ctx.account->balance, c.owed)) return invalid("owed", "owed is too large");
        }
        std::vector<pending_event> out{{instance_stream(d.instance_id), now, std::move(e)}};
        if (c.owed > 0) out.push_back({account_stream(d.account_id), now, ev::charged{c.owed, "owed", d.instance_id, ""}});
        return emit(std::move(out));
    }

    // ---- lifecycle actions ----
    decision simple_action(std::string_view a, ev::event e) const {
        if (!allows(a)) return bad_transition(std::string{a} + " is not available in this state");
        return emit({on_instance(now, std::move(e))});
    }
    decision operator()(const cmd::deploy&) const { return simple_action(action::deploy, ev::deployed{}); }
    decision operator()(const cmd::stop&) const { return simple_action(action::stop, ev::stopped{}); }
    decision operator()(const cmd::enable&) const {
        if (s.force_delete_pending && s.current == state::stopped)
            return conflict("force_deletion_pending", "a force deletion is pending");
        return simple_action(action::enable, ev::enabled{});
    }
    decision operator()(const cmd::remove&) const { return simple_action(action::remove, ev::deleted{}); }

    decision operator()(const cmd::renew& c) const {
        if (c.months < 1 || c.months > p->max_term_months) return invalid("months", "months out of range");
        if (s.force_delete_pending) return conflict("force_deletion_pending", "a force deletion is pending");
        if (!allows(action::renew) || !s.expires_at) return bad_transition("renew is not available in this state");
        const auto cost = checked_mul(s.rate.amount, c.months);
        if (!cost) return invalid("months", "price × months overflows");
        // RULES.md "Terms": the renewed term starts at the current expiry, also after expiring.
        const auto expiry = add_months_local(*s.expires_at, zone(), c.months);
        if (expiry <= now) return invalid("months", "the renewed term would already have ended");
        if (!supported_time(expiry)) return invalid("months", "the renewed term ends beyond the supported range");
        if (balance() < *cost) return insufficient(balance(), *cost);
        std::vector<pending_event> out{on_instance(now, ev::renewed{c.months, *cost, expiry, false})};
        if (*cost > 0) out.push_back(on_account(now, ev::charged{*cost, "renewal", ctx.instance_id, ""}));
        // A lapsed term is restored (to running, or to not_deployed for a Kafka subscription never
        // deployed: K, only Deploy leads to Running); a term still running needs no restoring.
        if (s.current != state::running && s.current != state::not_deployed)
            out.push_back(on_instance(now, ev::restored{"renewed"}));
        return emit(std::move(out));
    }

    decision operator()(const cmd::unsubscribe&) const {
        if (!allows(action::unsubscribe)) return bad_transition("unsubscribe is not available in this state");
        return emit({on_instance(now, ev::unsubscribed{}),
                     on_instance(now, ev::expired{ev::expiry_cause::unsubscribed})});
    }

    decision operator()(const cmd::force_delete&) const {
        if (s.force_delete_pending) return conflict("force_deletion_pending", "a force deletion is already pending");
        if (!allows(action::force_delete)) return bad_transition("force-delete is not available in this state");
        std::vector<pending_event> out{on_instance(now, ev::force_delete_requested{})};
        // K: the task releases a subscription at once; payg/serverless wait for the final bill.
        if (s.bill == billing::subscription) out.push_back(on_instance(now, release_event(ev::release_cause::force_delete)));
        return emit(std::move(out));
    }

    decision operator()(const cmd::change_config& c) const {
        const auto& rules = p->config;
        if (!rules.allowed) return bad_transition("configuration changes are not available for this product");
        if (s.config_change_started_at) return conflict("change_in_progress", "a configuration change is in progress");
        if (!allows(action::change_config)) return bad_transition("change-config is not available in this state");
        if (!c.config || !valid_config(*c.config)) return invalid("config", "a valid configuration is required");
        if (c.rate.per != s.rate.per || c.rate.amount < 0) return invalid("price", "the price unit must not change");
        // RULES.md "Money": as at purchase, a new rate must keep every later bill representable:
        // one cycle's settlement, and a renewal (automatic or not) of the instance's term.
        if (p->cycle != cycle_kind::none && !rate_fits_cycle(c.rate.amount, longest_cycle(*p)))
            return invalid("price", "the price is too large: a billing cycle's bill would overflow");
        if (auto bad = validate_per_unit(c.rate, *p)) return std::move(*bad);
        if (s.bill == billing::subscription && !checked_mul(c.rate.amount, std::max<std::int32_t>(1, s.term_months)))
            return invalid("price", "price × term overflows");
        const auto& from = s.config.value_or(instance_config{});
        const auto& to = *c.config;
        if (to == from) return invalid("config", "the change changes nothing");
        if (to.sub_category != from.sub_category) return invalid("config.sub_category", "the sub-category never changes");
        if (to.edition != from.edition) {
            const int a = edition_rank(from.edition);
            const int b = edition_rank(to.edition);
            const bool ok = rules.edition == edition_rule::upgrade_only ? b > a
                            : rules.edition == edition_rule::standard_professional_both_ways ? a <= 1 && b <= 1
                                                                                               : false;
            if (!ok) return invalid("config.edition", "this edition change is not allowed");
        }
        if (to.tps != from.tps && !rules.tps) return invalid("config.tps", "the computing specification cannot change");
        if (to.internet_access != from.internet_access && !rules.internet_access)
            return invalid("config.internet_access", "Internet access cannot change");
        if (to.bandwidth_mbps != from.bandwidth_mbps && !rules.bandwidth)
            return invalid("config.bandwidth_mbps", "the bandwidth cannot change");
        money amount = 0;
        if (s.bill == billing::subscription) {
            if (!s.expires_at || *s.expires_at <= now) return bad_transition("the term has ended");
            const auto diff = checked_sub(c.rate.amount, s.rate.amount);
            const auto prorated = diff ? prorate_difference(*diff, now, *s.expires_at, zone()) : std::nullopt;
            if (!prorated) return invalid("price", "the price difference overflows");
            amount = *prorated;
            if (amount > 0 && balance() < amount) return insufficient(balance(), amount);
        } else if (c.rate.amount > s.rate.amount && p->upgrade_requires_no_debt && balance() < 0) {
            // E: with a balance below what is required "you cannot ... upgrade existing
            // instances"; Q (payg, serverless): "Make sure your account has a sufficient balance".
            // Such an upgrade charges nothing up front, so the balance is insufficient exactly
            // while the account owes: refused with required 0, as a payg purchase is. Q's "Same as
            // upgrade" in the Downgrade column describes the billing effect (no difference, no
            // refund), not this check: a downgrade lowers what the owing account runs up, so it
            // stays allowed.
            return insufficient(balance(), 0);
        }
        ev::config_change_started e{ev::config_snapshot{s.config, s.rate}, ev::config_snapshot{to, c.rate}, amount};
        std::vector<pending_event> out{on_instance(now, std::move(e))};
        if (amount > 0) out.push_back(on_account(now, ev::charged{amount, "upgrade", ctx.instance_id, ""}));
        if (amount < 0) out.push_back(on_account(now, ev::refunded{-amount, ctx.instance_id}));
        return emit(std::move(out));
    }

    decision operator()(const cmd::set_auto_renew& c) const {
        if (!allows(action::auto_renew)) return bad_transition("auto-renew is not available in this state");
        if (c.enabled && !valid_days_before(c.days_before, s.term_months, *p))
            return invalid("days_before", "days_before must be at least 1 and shorter than the term");
        const auto days = c.enabled ? c.days_before : s.auto_renew.days_before;
        return emit({on_instance(now, ev::auto_renew_set{c.enabled, days})});
    }

    // ---- topics and groups (E: refused while console/API are disabled; Q: during a change) ----
    template <typename Event>
    decision resource_op(const std::string& name, const std::vector<std::string>& existing, bool create) const {
        if (!valid_name(name)) return invalid("name", "a name of 1 to 255 characters is required");
        const auto& flags = p->at(s.current);
        if (!flags.service_available || !flags.console_api_enabled)
            return bad_transition("topics and groups cannot be changed in this state");
        if (s.config_change_started_at) return conflict("change_in_progress", "a configuration change is in progress");
        const bool present = std::find(existing.begin(), existing.end(), name) != existing.end();
        if (create && present) return conflict("duplicate_name", "the name exists");
        if (!create && !present) return not_found("no such name");
        return emit({on_instance(now, Event{name})});
    }
    decision operator()(const cmd::create_topic& c) const { return resource_op<ev::topic_created>(c.name, s.topics, true); }
    decision operator()(const cmd::delete_topic& c) const { return resource_op<ev::topic_deleted>(c.name, s.topics, false); }
    decision operator()(const cmd::create_group& c) const { return resource_op<ev::group_created>(c.name, s.groups, true); }
    decision operator()(const cmd::delete_group& c) const { return resource_op<ev::group_deleted>(c.name, s.groups, false); }

    // ---- usage (issue 15) ----
    // Metered usage of [start, end): checked alone, then for a repeat of its id, then against the
    // policy, the instance's cycles, its billing history and the price in force, and recorded
    // with the per-unit rate in force at its first billable instant, so its bill is reproducible
    // from the event. Billed by `settle`.
    decision operator()(const cmd::record_usage& c) const {
        if (!valid_record_id(c.record_id))
            return invalid("record_id", "record_id must be 1 to 128 printable ASCII characters");
        if (c.metric.empty() || c.metric.size() > 64) return invalid("metric", "metric must be 1 to 64 characters");
        if (c.quantity < 0) return invalid("quantity", "the quantity must not be negative");
        if (!supported_time(c.start)) return invalid("start", "start is out of the supported range");
        if (!supported_time(c.end)) return invalid("end", "end is out of the supported range");
        if (c.end <= c.start) return invalid("end", "end must be after start");
        if (c.end > now)
            return invalid("end", "usage cannot be measured in the future: end is after now (" + format_time(now) + ")");
        if (c.start < now - usage_lookback)
            return invalid("start", "the record starts before " + format_time(now - usage_lookback) + ": older than the " +
                                        std::to_string(usage_lookback / std::chrono::days{1}) +
                                        "-day lookback, it can no longer be billed");
        if (const auto seen = s.usage_seen.find(c.record_id); seen != s.usage_seen.end()) {
            const instance_state::usage_content content{c.metric, c.quantity, c.start, c.end};
            if (seen->second == content) return emit({});   // a repeat: recorded already
            return conflict("record_id_reused", "record_id \"" + c.record_id +
                                                    "\" was recorded with another metric, quantity, start or end");
        }
        if (!p->has_metric(c.metric) || s.bill == billing::subscription || p->cycle == cycle_kind::none)
            return invalid("metric", "\"" + c.metric + "\" is not a usage metric of " + std::string(to_string(s.prod)) +
                                         " " + std::string(to_string(s.bill)));
        const auto own = cycle_containing(c.start, *p, s.timezone);
        if (c.end > own.end)
            return invalid("end", "the record spans the billing cycle boundary at " + format_time(own.end) +
                                      ": split the record there");
        const auto billable = first_billable_instant(s, *p, c.start, c.end);
        if (!billable)
            return conflict("not_billable", "the instance was not billable at any time from " + format_time(c.start) +
                                                " to " + format_time(c.end));
        const auto rate = billable->in_force->per_unit.find(c.metric);
        if (rate == billable->in_force->per_unit.end())
            return invalid("metric", "the price in force at " + format_time(billable->at) + " has no per-unit rate for \"" +
                                         c.metric + "\"");
        const auto amount = checked_mul(rate->second, c.quantity);
        if (!amount) return invalid("quantity", "quantity × the per-unit rate " + std::to_string(rate->second) + " overflows");
        // The bill this record joins (its cycle's, or the next one) must stay representable: the
        // usage not billed yet, this record, and the largest time-based part a cycle can have.
        std::optional<money> unbilled = checked_add(*amount, max_flat_bill(*p));
        for (const auto& r : s.usage_pending) {
            const auto a = checked_mul(r.rate, r.quantity);
            unbilled = a && unbilled ? checked_add(*unbilled, *a) : std::nullopt;
        }
        if (!unbilled) return invalid("quantity", "with the usage not billed yet, the next bill would overflow");
        return emit({on_instance(now, ev::usage_recorded{c.record_id, c.metric, c.quantity, c.start, c.end, rate->second})});
    }

    // ---- cross-stream ----
    decision operator()(const cmd::account_overdue& c) const {
        if (!supported_time(c.since)) return invalid("since", "the overdue time is out of the supported range");
        const auto entry = overdue_entry();
        if (!entry) return emit({});
        return emit({on_instance(std::max(c.since, s.last_effective_at), *entry)});
    }

    decision operator()(const cmd::account_paid& c) const {
        if (!supported_time(c.at)) return invalid("at", "the payment time is out of the supported range");
        if (notice_of(s, *p) != account_notice::paid) return emit({});
        if (ctx.account && ctx.account->balance < 0) return emit({});
        const auto at = std::max(c.at, s.last_effective_at);
        for (const auto& t : deadlines(s, *p))
            if ((t.kind == timer_kind::release || t.kind == timer_kind::retention_end) && t.due_at <= at) return emit({});
        return emit({on_instance(at, ev::restored{"paid"})});
    }

    // ---- timers ----
    // The bill of cycle `c`, effective at `at` (RULES.md "Accounts and payments"), or nothing when
    // the bill or the balance after it cannot be represented. Prices are bounded at purchase,
    // import and change-config (`rate_fits_cycle`) so that cannot happen; should it anyway (a
    // hand-written log), the settlement is refused rather than recorded with a wrong amount.
    // Issue 15: the bill is the time-based part (`flat`) plus every pending usage record of this
    // cycle or an earlier one (recorded late), each quantity × its recorded rate, itemised with
    // the cycle it belongs to. The account is charged the total.
    std::optional<std::vector<pending_event>> settle(const instance_state& st, const cycle& c, time_point at,
                                                     money& bal) const {
        const auto flat = cycle_amount(billing_marks(st, *p), c.start, c.end, p->highest_rate_in_cycle);
        if (!flat || *flat < 0) return std::nullopt;
        ev::settled bill{c.start, c.end, *flat, *flat, {}};
        for (const auto& r : st.usage_pending) {
            if (r.start >= c.end) continue;   // a later cycle's
            const auto amount = checked_mul(r.rate, r.quantity);
            const auto total = amount ? checked_add(bill.amount, *amount) : std::nullopt;
            if (!total || *amount < 0) return std::nullopt;
            const auto own = cycle_containing(r.start, *p, st.timezone);
            bill.usage.push_back({r.record_id, r.metric, r.quantity, r.rate, *amount, own.start, own.end});
            bill.amount = *total;
        }
        const money amount = bill.amount;
        std::vector<pending_event> out{on_instance(at, std::move(bill))};
        if (amount > 0) {
            const auto after = checked_sub(bal, amount);
            if (!after) return std::nullopt;
            out.push_back(on_account(at, ev::charged{amount, "settlement", ctx.instance_id, ""}));
            bal = *after;
        }
        return out;
    }
    static decision unrepresentable_bill() {
        return invalid("price", "the cycle's bill or the balance after it overflows; nothing was settled");
    }

    decision operator()(const cmd::tick& t) const {
        if (t.due_at > now) return invalid("due_at", "a timer cannot fire before it is due");
        const auto timers = deadlines(s, *p);
        const bool live = std::any_of(timers.begin(), timers.end(),
                                      [&](const timer& x) { return x.kind == t.kind && x.due_at == t.due_at; });
        if (!live) return emit({});
        const auto at = t.due_at;
        switch (t.kind) {
        case timer_kind::expiry: return emit({on_instance(at, ev::expired{ev::expiry_cause::term_ended})});
        case timer_kind::grace_end: return emit({on_instance(at, ev::frozen{})});
        case timer_kind::suspension: return emit({on_instance(at, ev::suspended{})});
        case timer_kind::release:
        case timer_kind::retention_end: return emit({on_instance(at, release_event(ev::release_cause::deadline))});
        case timer_kind::config_change_completion: return emit({on_instance(at, ev::config_change_completed{})});
        case timer_kind::auto_renew_attempt: {
            const std::int32_t months = std::max<std::int32_t>(1, s.term_months);
            // Bounded at purchase, import and change-config; never record a made-up amount.
            const auto price_of_term = checked_mul(s.rate.amount, months);
            if (!price_of_term) return invalid("price", "price × term overflows");
            const money cost = *price_of_term;
            if (!ctx.account || ctx.account->balance < cost)
                return emit({on_instance(at, ev::auto_renew_failed{cost, balance()})});
            const auto expiry = add_months_local(*s.expires_at, zone(), months);
            std::vector<pending_event> out{on_instance(at, ev::renewed{months, cost, expiry, true})};
            if (cost > 0) out.push_back(on_account(at, ev::charged{cost, "renewal", ctx.instance_id, ""}));
            return emit(std::move(out));
        }
        case timer_kind::settlement: {
            if (!ctx.account) return not_found("unknown account");
            const auto c = next_unsettled_cycle(s, *p);
            money bal = ctx.account->balance;
            auto bill = settle(s, *c, at, bal);
            if (!bill) return unrepresentable_bill();
            auto out = std::move(*bill);
            // A bill that leaves the account owing starts this instance's overdue path at once;
            // the caller tells the account's other instances (command account_overdue).
            if (bal < 0)
                if (const auto entry = overdue_entry()) out.push_back(on_instance(at, *entry));
            return emit(std::move(out));
        }
        case timer_kind::force_delete: {
            money bal = balance();
            std::vector<pending_event> out;
            auto st = s;
            // The final bill: every cycle that ends by the task's time.
            for (int i = 0; i < max_catch_up_cycles; ++i) {
                const auto c = next_unsettled_cycle(st, *p);
                if (!c || c->end + p->issue_delay > at) break;
                auto bill = settle(st, *c, at, bal);
                if (!bill) return unrepresentable_bill();
                st = evolve(std::move(st), bill->front().data, at);
                std::move(bill->begin(), bill->end(), std::back_inserter(out));
            }
            out.push_back(on_instance(at, release_event(ev::release_cause::force_delete)));
            return emit(std::move(out));
        }
        }
        return emit({});
    }

    // Account commands never reach an instance.
    decision operator()(const cmd::open_account&) const { return invalid("command", "an account command"); }
    decision operator()(const cmd::add_funds&) const { return invalid("command", "an account command"); }
    decision operator()(const cmd::charge&) const { return invalid("command", "an account command"); }
};

bool is_creation(const cmd::command& c) {
    return std::holds_alternative<cmd::purchase>(c) || std::holds_alternative<cmd::import_instance>(c);
}

bool is_timer_or_cross_stream(const cmd::command& c) {
    return std::holds_alternative<cmd::tick>(c) || std::holds_alternative<cmd::account_overdue>(c) ||
           std::holds_alternative<cmd::account_paid>(c);
}

} // namespace

bool reads_account(const commands::command& c) noexcept {
    return std::holds_alternative<cmd::purchase>(c) || std::holds_alternative<cmd::import_instance>(c) ||
           std::holds_alternative<cmd::renew>(c) || std::holds_alternative<cmd::change_config>(c) ||
           std::holds_alternative<cmd::tick>(c) || std::holds_alternative<cmd::account_paid>(c);
}

bool is_reserved_charge_reason(std::string_view reason) noexcept {
    for (const std::string_view r : {"purchase", "renewal", "upgrade", "settlement", "owed"})
        if (reason == r) return true;
    return false;
}

std::string_view to_string(refusal_code c) noexcept {
    switch (c) {
    case refusal_code::invalid_transition: return "invalid_transition";
    case refusal_code::insufficient_balance: return "insufficient_balance";
    case refusal_code::invalid: return "invalid";
    case refusal_code::conflict: return "conflict";
    case refusal_code::not_found: return "not_found";
    }
    return "invalid";
}

decision decide(const instance_state& s, const commands::command& c, time_point now, const decide_context& ctx) {
    if (ctx.policies == nullptr) return invalid("policy", "no policy in force");
    if (commands::is_account_command(c)) return invalid("command", "an account command");
    if (!supported_time(now)) return invalid("now", "the time is out of the supported range");
    if (!s.exists && !is_creation(c)) {
        if (is_timer_or_cross_stream(c)) return decision{};
        return not_found("unknown instance");
    }
    if (ctx.instance_id.empty() && !s.id.empty()) {
        auto with_id = ctx;
        with_id.instance_id = s.id;
        return decide(s, c, now, with_id);
    }
    instance_decider d{s, now, ctx, s.exists ? &ctx.policies->get(s.prod, s.bill) : nullptr};
    if (s.exists && !is_creation(c)) {
        if (s.current == state::deleted && !is_timer_or_cross_stream(c))
            return d.bad_transition("the instance is deleted");
        // A release whose deadline passed has taken effect under the rules even if its timer has
        // not run yet: nothing but timers may act on the instance any more.
        if (!is_timer_or_cross_stream(c)) {
            for (const auto& t : deadlines(s, *d.p))
                if ((t.kind == timer_kind::release || t.kind == timer_kind::retention_end) && t.due_at <= now)
                    return d.bad_transition("the release deadline has passed");
        }
    }
    if (std::holds_alternative<cmd::purchase>(c) || std::holds_alternative<cmd::import_instance>(c)) {
        auto copy = ctx;
        copy.instance_id = std::holds_alternative<cmd::purchase>(c) ? std::get<cmd::purchase>(c).instance_id
                                                                    : std::get<cmd::import_instance>(c).details.instance_id;
        return std::visit(instance_decider{s, now, copy, nullptr}, c);
    }
    return std::visit(d, c);
}

decision decide(const account_state& a, const commands::command& c, time_point now, std::string_view account_id) {
    const auto stream = account_stream(account_id);
    if (const auto* o = std::get_if<cmd::open_account>(&c)) {
        const bool ok = o->currency.size() == 3 &&
                        std::all_of(o->currency.begin(), o->currency.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; });
        if (account_id.empty()) return invalid("account_id", "account_id is required");
        if (!ok) return invalid("currency", "an ISO 4217 currency code is required");
        if (a.exists) return conflict("duplicate_id", "an account with this id exists");
        return decision{{{stream, now, ev::account_opened{o->currency}}}, std::nullopt};
    }
    if (const auto* f = std::get_if<cmd::add_funds>(&c)) {
        if (f->amount <= 0) return invalid("amount", "the amount must be positive");
        if (!a.exists) return not_found("unknown account");
        if (!checked_add(a.balance, f->amount) || !checked_add(a.total_added, f->amount))
            return invalid("amount", "the amount is too large");
        return decision{{{stream, now, ev::funds_added{f->amount, f->reference}}}, std::nullopt};
    }
    if (const auto* ch = std::get_if<cmd::charge>(&c)) {
        if (ch->amount <= 0) return invalid("amount", "the amount must be positive");
        if (is_reserved_charge_reason(ch->reason))
            return invalid("reason", "\"" + ch->reason + "\" is reserved for the charges the ledger makes itself");
        if (!a.exists) return not_found("unknown account");
        if (a.balance < ch->amount) return insufficient(a.balance, ch->amount);
        if (!checked_add(a.total_charged, ch->amount)) return invalid("amount", "the amount is too large");
        return decision{{{stream, now, ev::charged{ch->amount, ch->reason.empty() ? "usage" : ch->reason,
                                                  ch->instance_id, ch->reference}}},
                        std::nullopt};
    }
    return invalid("command", "not an account command");
}

} // namespace mqledger
