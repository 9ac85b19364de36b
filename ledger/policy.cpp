#include "ledger/policy.h"

#include <boost/json.hpp>

#include <mutex>
#include <string_view>

namespace mqledger {

namespace json = boost::json;

namespace {

using namespace std::chrono_literals;
constexpr auto day = std::chrono::hours{24};

state_policy sp(std::string name, bool service, bool data, bool console, std::vector<std::string> actions) {
    return state_policy{true, std::move(name), service, data, console, std::move(actions)};
}

policy kafka(billing b) {
    policy p;
    p.prod = product::kafka;
    p.bill = b;
    const bool sub = b == billing::subscription;
    p.price_unit = sub ? price::unit::monthly : price::unit::hourly;
    p.lapse = lapse_path{state::expired, 7 * day, std::nullopt, {}};  // K: released 7 days after expiry
    p.manual_stop = !sub;                                             // K
    p.unsubscribe_allowed = sub;                                      // K: by ticket
    p.force_delete_allowed = true;                                    // K
    p.auto_renew_allowed = sub;                                       // decision: R's auto-renewal for every subscription
    p.cycle = sub ? cycle_kind::none : cycle_kind::hourly;            // E's hourly settlement; decision for Kafka
    p.highest_rate_in_cycle = b == billing::serverless;
    p.at(state::not_deployed) = sp("Not Deployed", false, false, true, {action::deploy});
    if (sub) {
        p.at(state::running) = sp("Running", true, true, true, {action::renew});
        p.at(state::expired) = sp("Expired", false, true, true, {action::renew, action::force_delete}); // decision: service off
    } else {
        p.at(state::running) = sp("Running", true, true, true, {action::stop});
        p.at(state::expired) = sp("Expired", false, true, true, {action::add_funds, action::force_delete});
        p.at(state::stopped) = sp("Stopped", false, true, true, {action::enable, action::force_delete});
    }
    p.at(state::released) = sp("Released", false, false, true, {action::remove});
    p.at(state::deleted) = sp("Deleted", false, false, false, {});
    if (!sub) p.usage_metrics = {"storage_gb_hours"};                 // decision: storage by usage
    return p;
}

policy rabbitmq(billing b) {
    policy p;
    p.prod = product::rabbitmq;
    p.bill = b;
    const bool sub = b == billing::subscription;
    p.price_unit = sub ? price::unit::monthly : price::unit::hourly;
    if (b == billing::serverless) {
        p.purchase_allowed = false;                                   // R: not offered
        p.import_allowed = false;
        p.purchase_refusal = "RabbitMQ is not offered with serverless billing";
        return p;
    }
    // Huawei's billing rules: grace 15 days (usable), retention 15 days (frozen), then deleted.
    p.lapse = lapse_path{state::expired, 15 * day, state::frozen, 15 * day};
    p.auto_renew_allowed = sub;
    p.cycle = sub ? cycle_kind::none : cycle_kind::hourly;            // decision: hourly
    p.at(state::running) = sp("Running", true, true, true, sub ? std::vector<std::string>{action::renew}
                                                                  : std::vector<std::string>{});
    // R: "Yearly/Monthly RabbitMQ instances cannot run after their subscription expires" and
    // "Pay-per-use RabbitMQ instances can run as long as you have sufficient account balance".
    // RULES.md's decision (usable in grace, after Huawei's general billing rules) contradicts the
    // seed, and the seed wins: the service is unavailable from expiry (or the overdue moment) on;
    // data is retained and renewal / payment restores it. Overridable like every flag.
    p.at(state::expired) = sp("Expired", false, true, true, {sub ? action::renew : action::add_funds});
    p.at(state::frozen) = sp("Frozen", false, true, true, {sub ? action::renew : action::add_funds});
    p.at(state::released) = sp("Released", false, false, true, {action::remove});
    p.at(state::deleted) = sp("Deleted", false, false, false, {});
    return p;
}

policy rocketmq(billing b) {
    policy p;
    p.prod = product::rocketmq;
    p.bill = b;
    const bool sub = b == billing::subscription;
    p.price_unit = sub ? price::unit::monthly : price::unit::hourly;
    p.auto_renew_allowed = sub;
    p.cycle = sub ? cycle_kind::none : cycle_kind::hourly;            // E
    p.highest_rate_in_cycle = b == billing::serverless;               // Q
    p.change_in_progress = 5min;                                      // decision
    p.config.allowed = true;
    if (b == billing::serverless) {
        p.config.edition = edition_rule::standard_professional_both_ways;
    } else {
        p.config.edition = edition_rule::upgrade_only;
        p.config.tps = p.config.internet_access = p.config.bandwidth = true;
    }
    p.at(state::running) = sp("Running", true, true, true, sub ? std::vector<std::string>{action::renew}
                                                                  : std::vector<std::string>{});
    if (sub) {
        p.lapse = lapse_path{state::expired, 7 * day, std::nullopt, {}};  // E
        p.at(state::expired) = sp("Grace period", false, true, false, {action::renew});
    } else {
        p.lapse = lapse_path{state::stopped, 7 * day, std::nullopt, {}};  // E
        p.at(state::stopped) = sp("Stopped", false, true, false, {action::add_funds});
    }
    p.at(state::released) = sp("Released", false, false, true, {action::remove});
    p.at(state::deleted) = sp("Deleted", false, false, false, {});
    if (!sub) p.usage_metrics = {"storage_gb_hours"};                 // Q: storage "Billed on a pay-as-you-go basis"
    return p;
}

policy mqtt(billing b) {
    policy p;
    p.prod = product::mqtt;
    p.bill = b;
    const bool sub = b == billing::subscription;
    p.price_unit = sub ? price::unit::monthly : price::unit::daily;
    if (b == billing::payg) {
        p.purchase_allowed = false;                                   // M: no longer sold; import allowed
        p.purchase_refusal = "MQTT pay-as-you-go instances are no longer sold";
        p.cycle = cycle_kind::local_day;
        p.issue_delay = std::chrono::hours{9};                        // decision: within M's 8-10 h
        p.billable_in_overdue_grace = true;                           // M: runs normally in grace
        p.lapse = lapse_path{state::expired, 24h, state::suspended, 7 * day};
        p.usage_metrics = {"messages"};                               // M: "measures the previous day's usage"
    } else if (b == billing::serverless) {
        p.purchase_allowed = false;                                   // decision: M offers no serverless
        p.import_allowed = false;
        p.purchase_refusal = "MQTT is not offered with serverless billing";
        return p;
    } else {
        p.lapse = lapse_path{state::expired, 15 * day, state::suspended, 15 * day};  // M
        p.auto_renew_allowed = true;
    }
    p.at(state::running) = sp("Running", true, true, true, sub ? std::vector<std::string>{action::renew}
                                                                  : std::vector<std::string>{});
    p.at(state::expired) = sp("Grace period", true, true, true, {sub ? action::renew : action::add_funds});
    p.at(state::suspended) = sp("Service suspension", false, true, true, {sub ? action::renew : action::add_funds});
    p.at(state::released) = sp("Released", false, false, true, {action::remove});
    p.at(state::deleted) = sp("Deleted", false, false, false, {});
    return p;
}

bool set_int(const boost::json::value& v, std::int32_t& out) {
    if (!v.is_int64() || v.as_int64() < 0 || v.as_int64() > 100000) return false;
    out = static_cast<std::int32_t>(v.as_int64());
    return true;
}

bool set_bool(const boost::json::value& v, bool& out) {
    if (!v.is_bool()) return false;
    out = v.as_bool();
    return true;
}

// A metric name: 1..64 of [a-z0-9_], starting with a letter.
bool valid_metric_name(std::string_view m) {
    if (m.empty() || m.size() > 64 || m.front() < 'a' || m.front() > 'z') return false;
    for (const char c : m)
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    return true;
}

bool apply_state(const boost::json::object& o, state_policy& s, std::string& error) {
    for (const auto& [key, v] : o) {
        const std::string_view k = key;
        bool ok = false;
        if (k == "display_name") { ok = v.is_string(); if (ok) s.display_name = std::string(v.as_string()); }
        else if (k == "service_available") ok = set_bool(v, s.service_available);
        else if (k == "data_retained") ok = set_bool(v, s.data_retained);
        else if (k == "console_api_enabled") ok = set_bool(v, s.console_api_enabled);
        else if (k == "actions" && v.is_array()) {
            ok = true;
            s.actions.clear();
            for (const auto& a : v.as_array()) {
                if (!a.is_string()) { ok = false; break; }
                s.actions.emplace_back(a.as_string());
            }
        }
        if (!ok) { error = "bad state field: " + std::string(k); return false; }
    }
    return true;
}

bool apply(const boost::json::object& o, policy& p, std::string& error) {
    for (const auto& [key, v] : o) {
        const std::string_view k = key;
        std::int32_t n = 0;
        bool ok = true;
        if (k == "purchase_allowed") ok = set_bool(v, p.purchase_allowed);
        else if (k == "purchase_refusal") { ok = v.is_string(); if (ok) p.purchase_refusal = std::string(v.as_string()); }
        else if (k == "import_allowed") ok = set_bool(v, p.import_allowed);
        else if (k == "purchase_requires_no_debt") ok = set_bool(v, p.purchase_requires_no_debt);
        else if (k == "upgrade_requires_no_debt") ok = set_bool(v, p.upgrade_requires_no_debt);
        else if (k == "auto_renew_allowed") ok = set_bool(v, p.auto_renew_allowed);
        else if (k == "max_term_months") ok = set_int(v, p.max_term_months);
        else if (k == "stopped_release_days") ok = set_int(v, p.stopped_release_days);
        else if (k == "stopped_release_hour") ok = set_int(v, p.stopped_release_hour) && p.stopped_release_hour < 24;
        else if (k == "auto_renew_days_before") ok = set_int(v, p.auto_renew_days_before);
        else if (k == "auto_renew_max_days_before") { ok = set_int(v, n); if (ok) p.auto_renew_max_days_before = n; }
        else if (k == "auto_renew_hour") ok = set_int(v, p.auto_renew_hour) && p.auto_renew_hour < 24;
        else if (k == "issue_delay_hours") { ok = set_int(v, n); p.issue_delay = std::chrono::hours{n}; }
        else if (k == "change_in_progress_minutes") { ok = set_int(v, n); p.change_in_progress = std::chrono::minutes{n}; }
        else if (k == "grace_days" || k == "grace_hours") {
            ok = set_int(v, n) && p.lapse.has_value();
            if (ok) p.lapse->first_for = k == "grace_days" ? duration{n * day} : duration{std::chrono::hours{n}};
        } else if (k == "retention_days" || k == "suspension_days" || k == "second_phase_hours") {
            ok = set_int(v, n) && p.lapse.has_value() && p.lapse->second.has_value();
            if (ok) p.lapse->second_for = k == "second_phase_hours" ? duration{std::chrono::hours{n}} : duration{n * day};
        } else if (k == "usage_metrics" && v.is_array()) {
            std::vector<std::string> metrics;
            for (const auto& m : v.as_array()) {
                if (!m.is_string() || !valid_metric_name(m.as_string())) { ok = false; break; }
                metrics.emplace_back(m.as_string());
            }
            if (ok) p.usage_metrics = std::move(metrics);
        } else if (k == "states" && v.is_object()) {
            for (const auto& [sname, sv] : v.as_object()) {
                const auto s = parse_state(sname);
                if (!s || !sv.is_object()) { error = "unknown state: " + std::string(sname); return false; }
                if (!apply_state(sv.as_object(), p.at(*s), error)) return false;
                p.at(*s).valid = true;
            }
        } else ok = false;
        if (!ok) { error = "bad policy field: " + std::string(k); return false; }
    }
    return true;
}

} // namespace

policy_set policy_set::defaults(policy_version version) {
    policy_set s;
    s.version_ = version;
    for (auto b : {billing::subscription, billing::payg, billing::serverless}) {
        s.get(product::kafka, b) = kafka(b);
        s.get(product::rabbitmq, b) = rabbitmq(b);
        s.get(product::rocketmq, b) = rocketmq(b);
        s.get(product::mqtt, b) = mqtt(b);
    }
    return s;
}

std::optional<policy_set> policy_set::with_overrides(const boost::json::value& overrides, std::string& error) const {
    if (!overrides.is_object()) { error = "policy overrides must be an object"; return std::nullopt; }
    policy_set out = *this;
    for (const auto& [key, v] : overrides.as_object()) {
        const std::string_view k = key;
        const auto slash = k.find('/');
        const auto p = slash == std::string_view::npos ? std::nullopt : parse_product(k.substr(0, slash));
        const auto b = slash == std::string_view::npos ? std::nullopt : parse_billing(k.substr(slash + 1));
        if (!p || !b || !v.is_object()) { error = "unknown policy key: " + std::string(k); return std::nullopt; }
        if (!apply(v.as_object(), out.get(*p, *b), error)) return std::nullopt;
    }
    return out;
}

namespace {

json::array string_array(const std::vector<std::string>& v) {
    json::array a;
    for (const auto& s : v) a.emplace_back(s);
    return a;
}

// A duration as whole days when it is one, else whole hours (the override keys take both).
void put_duration(json::object& o, const char* days_key, const char* hours_key, duration d) {
    const auto hours = std::chrono::duration_cast<std::chrono::hours>(d).count();
    if (hours % 24 == 0 && days_key != nullptr) o[days_key] = hours / 24;
    else o[hours_key] = hours;
}

json::object policy_json(const policy& p) {
    json::object o;
    o["purchase_allowed"] = p.purchase_allowed;
    o["purchase_refusal"] = p.purchase_refusal;
    o["import_allowed"] = p.import_allowed;
    o["max_term_months"] = p.max_term_months;
    o["purchase_requires_no_debt"] = p.purchase_requires_no_debt;
    o["upgrade_requires_no_debt"] = p.upgrade_requires_no_debt;
    if (p.lapse) {
        put_duration(o, "grace_days", "grace_hours", p.lapse->first_for);
        if (p.lapse->second)
            put_duration(o, *p.lapse->second == state::frozen ? "retention_days" : "suspension_days", "second_phase_hours",
                         p.lapse->second_for);
    }
    o["stopped_release_days"] = p.stopped_release_days;
    o["stopped_release_hour"] = p.stopped_release_hour;
    o["auto_renew_allowed"] = p.auto_renew_allowed;
    o["auto_renew_days_before"] = p.auto_renew_days_before;
    if (p.auto_renew_max_days_before) o["auto_renew_max_days_before"] = *p.auto_renew_max_days_before;
    o["auto_renew_hour"] = p.auto_renew_hour;
    o["issue_delay_hours"] = std::chrono::duration_cast<std::chrono::hours>(p.issue_delay).count();
    o["change_in_progress_minutes"] = std::chrono::duration_cast<std::chrono::minutes>(p.change_in_progress).count();
    o["usage_metrics"] = string_array(p.usage_metrics);
    json::object states;
    for (std::size_t i = 0; i < p.states.size(); ++i) {
        const auto& st = p.states[i];
        if (!st.valid) continue;
        states[to_string(static_cast<state>(i))] = json::object{
            {"display_name", st.display_name}, {"service_available", st.service_available},
            {"data_retained", st.data_retained}, {"console_api_enabled", st.console_api_enabled},
            {"actions", string_array(st.actions)}};
    }
    o["states"] = std::move(states);
    return o;
}

} // namespace

json::object table_json(const policy_set& set) {
    json::object out;
    for (auto p : {product::kafka, product::rabbitmq, product::rocketmq, product::mqtt})
        for (auto b : {billing::subscription, billing::payg, billing::serverless})
            out[std::string(to_string(p)) + "/" + std::string(to_string(b))] = policy_json(set.get(p, b));
    return out;
}

std::optional<policy_set> table_from_json(const json::value& table, policy_version version, std::string& error) {
    auto set = policy_set::defaults(version).with_overrides(table, error);
    if (set) set->set_version(version);
    return set;
}

policy_registry::policy_registry() { add(policy_set::defaults()); }

policy_registry::policy_registry(const policy_registry& other) {
    std::shared_lock lock(other.mutex_);
    sets_ = other.sets_;
}

policy_registry& policy_registry::operator=(const policy_registry& other) {
    if (this == &other) return *this;
    std::scoped_lock lock(mutex_, other.mutex_);
    sets_ = other.sets_;
    return *this;
}

void policy_registry::add(policy_set set) {
    auto p = std::make_shared<const policy_set>(std::move(set));
    std::unique_lock lock(mutex_);
    sets_.insert_or_assign(p->version(), std::move(p));
}

void policy_registry::add_missing(const policy_registry& other) {
    if (&other == this) return;
    std::map<policy_version, std::shared_ptr<const policy_set>> theirs;
    {
        std::shared_lock lock(other.mutex_);
        theirs = other.sets_;
    }
    std::unique_lock lock(mutex_);
    for (auto& [v, set] : theirs) sets_.emplace(v, std::move(set));   // emplace keeps what is held
}

const policy_set* policy_registry::find(policy_version version) const {
    std::shared_lock lock(mutex_);
    const auto it = sets_.find(version);
    return it == sets_.end() ? nullptr : it->second.get();
}

const policy_set& policy_registry::current() const {
    std::shared_lock lock(mutex_);
    return *sets_.rbegin()->second;
}

std::vector<policy_version> policy_registry::versions() const {
    std::shared_lock lock(mutex_);
    std::vector<policy_version> out;
    for (const auto& [v, set] : sets_) out.push_back(v);
    return out;
}

} // namespace mqledger
