#include "projections/snapshot.h"

#include "ledger/codec.h"

#include <algorithm>
#include <limits>
#include <map>
#include <stdexcept>

namespace mqledger::projections {

namespace json = boost::json;

namespace {

json::value time_value(time_point t) { return json::value(codec::format_time(t)); }
json::value opt_time(const std::optional<time_point>& t) { return t ? time_value(*t) : json::value(nullptr); }

json::array strings(const std::vector<std::string>& v) {
    json::array a;
    a.reserve(v.size());
    for (const auto& s : v) a.emplace_back(s);
    return a;
}

// A refusal deep inside the reader; turned into the `error` out-parameter at the top.
struct refused : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// Reads one object strictly: every key must be taken exactly once, and `done` refuses leftovers.
class reader {
public:
    reader(const json::value& v, std::string path) : path_(std::move(path)) {
        if (!v.is_object()) fail(path_, "not an object");
        obj_ = &v.get_object();
    }
    const json::value& at(const char* key) {
        const auto* v = obj_->if_contains(key);
        if (v == nullptr) fail(child(key), "missing");
        taken_.push_back(key);
        return *v;
    }
    std::string child(const char* key) const { return path_.empty() ? std::string(key) : path_ + "." + key; }
    void done() const {
        if (taken_.size() == obj_->size()) return;
        for (const auto& kv : *obj_)
            if (std::find(taken_.begin(), taken_.end(), kv.key()) == taken_.end())
                fail(child(std::string(kv.key()).c_str()), "unexpected key");
    }
    [[noreturn]] static void fail(const std::string& path, const std::string& why) { throw refused(path + ": " + why); }

    bool boolean(const char* key) {
        const auto& v = at(key);
        if (!v.is_bool()) fail(child(key), "not a boolean");
        return v.get_bool();
    }
    std::int64_t int64(const char* key) {
        const auto& v = at(key);
        if (v.is_int64()) return v.get_int64();
        if (v.is_uint64()) fail(child(key), "out of range");
        fail(child(key), "not an integer");
    }
    std::int32_t int32(const char* key) {
        const auto n = int64(key);
        if (n < std::numeric_limits<std::int32_t>::min() || n > std::numeric_limits<std::int32_t>::max())
            fail(child(key), "out of range");
        return static_cast<std::int32_t>(n);
    }
    std::string string(const char* key) {
        const auto& v = at(key);
        if (!v.is_string()) fail(child(key), "not a string");
        return std::string(v.get_string());
    }
    time_point time(const char* key) { return parse_time_at(at(key), child(key)); }
    std::optional<time_point> opt_time(const char* key) {
        const auto& v = at(key);
        if (v.is_null()) return std::nullopt;
        return parse_time_at(v, child(key));
    }
    std::vector<std::string> strings(const char* key) {
        const auto& v = at(key);
        if (!v.is_array()) fail(child(key), "not an array");
        std::vector<std::string> out;
        std::size_t i = 0;
        for (const auto& e : v.get_array()) {
            if (!e.is_string()) fail(child(key) + "[" + std::to_string(i) + "]", "not a string");
            out.emplace_back(e.get_string());
            ++i;
        }
        return out;
    }
    template <class T, class Parse>
    T enumerated(const char* key, Parse parse) {
        const auto s = string(key);
        const auto v = parse(s);
        if (!v) fail(child(key), "unknown value \"" + s + "\"");
        return *v;
    }

private:
    static time_point parse_time_at(const json::value& v, const std::string& path) {
        if (!v.is_string()) fail(path, "not a time string");
        const auto t = codec::parse_time(v.get_string());
        if (!t) fail(path, "unparsable time");
        return *t;
    }

    const json::object* obj_ = nullptr;
    std::string path_;
    std::vector<std::string_view> taken_;
};

json::object encode_config(const instance_config& c) {
    return {{"edition", c.edition},
            {"sub_category", c.sub_category},
            {"tps", c.tps},
            {"internet_access", c.internet_access},
            {"bandwidth_mbps", c.bandwidth_mbps}};
}

// Per-unit rates (issue 15): written only when there are some, so snapshots without usage keep
// their shape; absent reads as none.
json::object encode_rates(const std::map<std::string, money>& rates) {
    json::object o;
    for (const auto& [metric, rate] : rates) o[metric] = rate;
    return o;
}

std::map<std::string, money> decode_rates(const json::value& v, const std::string& path) {
    if (!v.is_object()) reader::fail(path, "not an object");
    std::map<std::string, money> out;
    for (const auto& kv : v.get_object()) {
        const auto key = std::string(kv.key());
        if (!kv.value().is_int64()) reader::fail(path + "." + key, "not an integer");
        out.emplace(key, kv.value().get_int64());
    }
    return out;
}

instance_config decode_config(const json::value& v, const std::string& path) {
    reader r(v, path);
    instance_config c;
    c.edition = r.string("edition");
    c.sub_category = r.string("sub_category");
    c.tps = r.int64("tps");
    c.internet_access = r.boolean("internet_access");
    c.bandwidth_mbps = r.int64("bandwidth_mbps");
    r.done();
    return c;
}

} // namespace

json::object encode_snapshot(const instance_state& s) {
    json::object o;
    o["exists"] = s.exists;
    o["id"] = s.id;
    o["account_id"] = s.account_id;
    o["product"] = to_string(s.prod);
    o["billing"] = to_string(s.bill);
    o["timezone"] = s.timezone;
    o["state"] = to_string(s.current);
    o["state_since"] = time_value(s.state_since);
    o["deployed"] = s.deployed;
    o["created_at"] = time_value(s.created_at);
    o["last_effective_at"] = time_value(s.last_effective_at);
    o["term_months"] = s.term_months;
    o["expires_at"] = opt_time(s.expires_at);
    o["overdue_since"] = opt_time(s.overdue_since);
    o["price"] = json::object{{"per", to_string(s.rate.per)}, {"amount", s.rate.amount}};
    if (!s.rate.per_unit.empty()) o["price"].as_object()["per_unit"] = encode_rates(s.rate.per_unit);
    o["config"] = s.config ? json::value(encode_config(*s.config)) : json::value(nullptr);
    o["auto_renew"] = json::object{{"enabled", s.auto_renew.enabled}, {"days_before", s.auto_renew.days_before}};
    o["auto_renew_not_before"] = time_value(s.auto_renew_not_before);
    o["auto_renew_failures"] = s.auto_renew_failures;
    o["force_delete_pending"] = s.force_delete_pending;
    o["force_delete_requested_at"] = opt_time(s.force_delete_requested_at);
    o["config_change_started_at"] = opt_time(s.config_change_started_at);
    o["topics"] = strings(s.topics);
    o["groups"] = strings(s.groups);
    json::array marks;
    marks.reserve(s.marks.size());
    for (const auto& m : s.marks) {
        json::object mo{{"at", time_value(m.at)}, {"in_state", to_string(m.in_state)}, {"rate", m.rate}};
        if (!m.per_unit.empty()) mo["per_unit"] = encode_rates(m.per_unit);
        marks.emplace_back(std::move(mo));
    }
    o["marks"] = std::move(marks);
    o["settled_until"] = opt_time(s.settled_until);
    o["billed_total"] = s.billed_total;
    // Usage (issue 15): only when there is some, absent in snapshots written before.
    if (!s.usage_pending.empty()) {
        json::array pending;
        for (const auto& r : s.usage_pending)
            pending.emplace_back(json::object{{"record_id", r.record_id}, {"metric", r.metric}, {"quantity", r.quantity},
                                              {"start", time_value(r.start)}, {"end", time_value(r.end)},
                                              {"rate", r.rate}, {"recorded_at", time_value(r.recorded_at)}});
        o["usage_pending"] = std::move(pending);
    }
    if (!s.usage_seen.empty()) {
        json::object seen;
        for (const auto& [id, c] : s.usage_seen)
            seen[id] = json::object{{"metric", c.metric}, {"quantity", c.quantity}, {"start", time_value(c.start)},
                                    {"end", time_value(c.end)}};
        o["usage_seen"] = std::move(seen);
    }
    o["version"] = s.version;
    o["policy_version"] = s.policy;
    if (s.phase) {
        const auto us = [](duration d) { return std::chrono::duration_cast<std::chrono::microseconds>(d).count(); };
        o["phase"] = json::object{{"first_for_us", us(s.phase->first_for)}, {"second_for_us", us(s.phase->second_for)},
                                  {"stopped_release_days", s.phase->stopped_release_days},
                                  {"stopped_release_hour", s.phase->stopped_release_hour},
                                  {"policy_version", s.phase->version}};
    }
    return o;
}

json::object encode_snapshot(const account_state& a) {
    json::object o;
    o["exists"] = a.exists;
    o["currency"] = a.currency;
    o["balance"] = a.balance;
    o["overdue_since"] = opt_time(a.overdue_since);
    o["total_added"] = a.total_added;
    o["total_charged"] = a.total_charged;
    o["total_refunded"] = a.total_refunded;
    o["version"] = a.version;
    o["last_effective_at"] = time_value(a.last_effective_at);
    return o;
}

std::optional<instance_state> decode_instance_snapshot(const json::value& v, std::string& error) {
    try {
        reader r(v, "");
        instance_state s;
        s.exists = r.boolean("exists");
        s.id = r.string("id");
        s.account_id = r.string("account_id");
        s.prod = r.enumerated<product>("product", parse_product);
        s.bill = r.enumerated<billing>("billing", parse_billing);
        s.timezone = r.string("timezone");
        s.current = r.enumerated<state>("state", parse_state);
        s.state_since = r.time("state_since");
        s.deployed = r.boolean("deployed");
        s.created_at = r.time("created_at");
        s.last_effective_at = r.time("last_effective_at");
        s.term_months = r.int32("term_months");
        s.expires_at = r.opt_time("expires_at");
        s.overdue_since = r.opt_time("overdue_since");
        {
            const auto& pv = r.at("price");
            reader p(pv, "price");
            s.rate.per = p.enumerated<price::unit>("per", parse_price_unit);
            s.rate.amount = p.int64("amount");
            if (pv.get_object().contains("per_unit")) s.rate.per_unit = decode_rates(p.at("per_unit"), "price.per_unit");
            p.done();
        }
        if (const auto& c = r.at("config"); !c.is_null()) s.config = decode_config(c, "config");
        {
            reader a(r.at("auto_renew"), "auto_renew");
            s.auto_renew.enabled = a.boolean("enabled");
            s.auto_renew.days_before = a.int32("days_before");
            a.done();
        }
        s.auto_renew_not_before = r.time("auto_renew_not_before");
        s.auto_renew_failures = r.int32("auto_renew_failures");
        s.force_delete_pending = r.boolean("force_delete_pending");
        s.force_delete_requested_at = r.opt_time("force_delete_requested_at");
        s.config_change_started_at = r.opt_time("config_change_started_at");
        s.topics = r.strings("topics");
        s.groups = r.strings("groups");
        {
            const auto& m = r.at("marks");
            if (!m.is_array()) reader::fail("marks", "not an array");
            std::size_t i = 0;
            for (const auto& e : m.get_array()) {
                const auto path = "marks[" + std::to_string(i++) + "]";
                reader mr(e, path);
                instance_state::mark mk;
                mk.at = mr.time("at");
                mk.in_state = mr.enumerated<state>("in_state", parse_state);
                mk.rate = mr.int64("rate");
                if (e.get_object().contains("per_unit")) mk.per_unit = decode_rates(mr.at("per_unit"), path + ".per_unit");
                mr.done();
                s.marks.push_back(mk);
            }
        }
        s.settled_until = r.opt_time("settled_until");
        s.billed_total = r.int64("billed_total");
        if (v.get_object().contains("usage_pending")) {
            const auto& u = r.at("usage_pending");
            if (!u.is_array()) reader::fail("usage_pending", "not an array");
            std::size_t i = 0;
            for (const auto& e : u.get_array()) {
                reader ur(e, "usage_pending[" + std::to_string(i++) + "]");
                instance_state::usage_record rec;
                rec.record_id = ur.string("record_id");
                rec.metric = ur.string("metric");
                rec.quantity = ur.int64("quantity");
                rec.start = ur.time("start");
                rec.end = ur.time("end");
                rec.rate = ur.int64("rate");
                rec.recorded_at = ur.time("recorded_at");
                ur.done();
                s.usage_pending.push_back(std::move(rec));
            }
        }
        if (v.get_object().contains("usage_seen")) {
            const auto& u = r.at("usage_seen");
            if (!u.is_object()) reader::fail("usage_seen", "not an object");
            for (const auto& kv : u.get_object()) {
                const auto id = std::string(kv.key());
                reader ur(kv.value(), "usage_seen." + id);
                instance_state::usage_content c;
                c.metric = ur.string("metric");
                c.quantity = ur.int64("quantity");
                c.start = ur.time("start");
                c.end = ur.time("end");
                ur.done();
                s.usage_seen.emplace(id, std::move(c));
            }
        }
        s.version = r.int64("version");
        s.policy = r.int32("policy_version");
        if (v.get_object().contains("phase")) {   // absent in snapshots written before issue 15
            reader pr(r.at("phase"), "phase");
            instance_state::phase_terms t;
            t.first_for = std::chrono::microseconds{pr.int64("first_for_us")};
            t.second_for = std::chrono::microseconds{pr.int64("second_for_us")};
            t.stopped_release_days = pr.int32("stopped_release_days");
            t.stopped_release_hour = pr.int32("stopped_release_hour");
            t.version = pr.int32("policy_version");
            pr.done();
            s.phase = t;
        }
        r.done();
        return s;
    } catch (const refused& e) {
        error = e.what();
        return std::nullopt;
    }
}

std::optional<account_state> decode_account_snapshot(const json::value& v, std::string& error) {
    try {
        reader r(v, "");
        account_state a;
        a.exists = r.boolean("exists");
        a.currency = r.string("currency");
        a.balance = r.int64("balance");
        a.overdue_since = r.opt_time("overdue_since");
        a.total_added = r.int64("total_added");
        a.total_charged = r.int64("total_charged");
        a.total_refunded = r.int64("total_refunded");
        a.version = r.int64("version");
        a.last_effective_at = r.time("last_effective_at");
        r.done();
        return a;
    } catch (const refused& e) {
        error = e.what();
        return std::nullopt;
    }
}

} // namespace mqledger::projections
