#include "daemon/api_parse.h"

#include "ledger/codec.h"

#include <boost/json.hpp>

#include <algorithm>
#include <initializer_list>
#include <limits>

namespace mqledger::api {
namespace json = boost::json;
namespace cmd = commands;
using http::api_error;

namespace {

[[noreturn]] void malformed(const std::string& message) { throw api_error(400, "malformed", message); }
[[noreturn]] void invalid(std::string_view field, const std::string& message) {
    throw api_error(422, "invalid", message, {{"field", field}});
}

// A JSON object whose keys are all in `known`.
const json::object& object_of(const json::value& v, std::string_view what, std::initializer_list<std::string_view> known) {
    const auto* o = v.if_object();
    if (o == nullptr) malformed(std::string(what) + " must be a JSON object");
    for (const auto& kv : *o) {
        bool ok = false;
        for (auto k : known) ok = ok || kv.key() == k;
        if (!ok) malformed("unknown field \"" + std::string(kv.key()) + "\" in " + std::string(what));
    }
    return *o;
}

const json::value* field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return (v == nullptr || v->is_null()) ? nullptr : v;
}

std::string get_string(const json::object& o, std::string_view key, bool required) {
    const auto* v = field(o, key);
    if (v == nullptr) {
        if (required) invalid(key, "\"" + std::string(key) + "\" is required");
        return {};
    }
    if (!v->is_string()) malformed("\"" + std::string(key) + "\" must be a string");
    return std::string(v->get_string());
}

std::optional<std::int64_t> get_int(const json::object& o, std::string_view key) {
    const auto* v = field(o, key);
    if (v == nullptr) return std::nullopt;
    if (v->is_int64()) return v->get_int64();
    if (v->is_uint64()) invalid(key, "\"" + std::string(key) + "\" is out of range");
    if (v->is_double()) {
        const double d = v->get_double();
        // 1e3 and 1000.0 are integers written another way; 1.5 is not.
        if (d >= -9.2e18 && d <= 9.2e18 && d == static_cast<double>(static_cast<std::int64_t>(d)))
            return static_cast<std::int64_t>(d);
        malformed("\"" + std::string(key) + "\" must be an integer");
    }
    malformed("\"" + std::string(key) + "\" must be an integer");
}

std::int32_t get_int32(const json::object& o, std::string_view key, std::int32_t fallback) {
    const auto v = get_int(o, key);
    if (!v) return fallback;
    if (*v < std::numeric_limits<std::int32_t>::min() || *v > std::numeric_limits<std::int32_t>::max())
        invalid(key, "\"" + std::string(key) + "\" is out of range");
    return static_cast<std::int32_t>(*v);
}

std::optional<bool> get_bool(const json::object& o, std::string_view key) {
    const auto* v = field(o, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_bool()) malformed("\"" + std::string(key) + "\" must be true or false");
    return v->get_bool();
}

std::optional<time_point> get_time(const json::object& o, std::string_view key) {
    const auto* v = field(o, key);
    if (v == nullptr) return std::nullopt;
    if (!v->is_string()) malformed("\"" + std::string(key) + "\" must be an RFC 3339 time string");
    const auto t = codec::parse_time(v->get_string());
    if (!t) invalid(key, "\"" + std::string(key) + "\" is not an RFC 3339 time");
    return t;
}

bool text_ok(std::string_view s) {
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return false;
    return true;
}

// Free text stored in events (references, reasons, currency): printable, bounded.
std::string get_text(const json::object& o, std::string_view key, bool required, std::size_t max = 256) {
    auto s = get_string(o, key, required);
    if (s.size() > max || !text_ok(s))
        invalid(key, "\"" + std::string(key) + "\" must be at most " + std::to_string(max) +
                         " bytes without control characters");
    return s;
}

price get_price(const json::object& o, std::string_view key, bool required) {
    const auto* v = field(o, key);
    if (v == nullptr) {
        if (required) invalid(key, "\"" + std::string(key) + "\" is required");
        return price{};
    }
    const auto& p = object_of(*v, key, {"monthly", "hourly", "daily", "per_unit"});
    const auto* per_unit = p.if_contains("per_unit");
    if (p.size() != (per_unit != nullptr ? 2U : 1U)) invalid(key, "give exactly one of monthly, hourly, daily");
    price out;
    for (const auto& kv : p) {
        if (kv.key() == "per_unit") continue;
        const auto unit = parse_price_unit(kv.key());
        const auto amount = get_int(p, kv.key());
        if (!unit || !amount) invalid(key, "give exactly one of monthly, hourly, daily");
        if (*amount < 0) invalid(key, "the price must not be negative");
        out.per = *unit;
        out.amount = *amount;
    }
    // Issue 15: metric → non-negative integer minor units per unit. Which metrics the instance's
    // policy meters (and so may carry a rate) is the core's to judge.
    if (per_unit != nullptr && !per_unit->is_null()) {
        const auto* rates = per_unit->if_object();
        if (rates == nullptr) malformed("\"" + std::string(key) + ".per_unit\" must be an object of metric names to integers");
        for (const auto& kv : *rates) {
            const std::string metric(kv.key());
            const auto field_name = std::string(key) + ".per_unit." + metric;
            if (metric.empty() || metric.size() > 64 || !text_ok(metric))
                invalid(std::string(key) + ".per_unit", "a metric name is 1 to 64 bytes without control characters");
            if (kv.value().is_uint64()) invalid(field_name, "the per-unit rate is out of range");
            const auto rate = get_int(*rates, metric);
            if (!rate) malformed("\"" + field_name + "\" must be an integer");
            if (*rate < 0) invalid(field_name, "a per-unit rate must not be negative");
            out.per_unit.emplace(metric, *rate);
        }
    }
    return out;
}

std::optional<instance_config> get_config(const json::object& o) {
    const auto* v = field(o, "config");
    if (v == nullptr) return std::nullopt;
    const auto& c = object_of(*v, "config", {"edition", "sub_category", "tps", "internet_access", "bandwidth_mbps"});
    instance_config out;
    if (auto s = get_string(c, "edition", false); !s.empty()) out.edition = s;
    if (auto s = get_string(c, "sub_category", false); !s.empty()) out.sub_category = s;
    if (auto t = get_int(c, "tps")) out.tps = *t;
    if (auto b = get_bool(c, "internet_access")) out.internet_access = *b;
    if (auto b = get_int(c, "bandwidth_mbps")) out.bandwidth_mbps = *b;
    return out;
}

auto_renew_setting get_auto_renew_fields(const json::object& a) {
    auto_renew_setting out;
    if (auto e = get_bool(a, "enabled")) out.enabled = *e;
    else invalid("enabled", "\"enabled\" is required");
    out.days_before = get_int32(a, "days_before", out.days_before);
    return out;
}

cmd::purchase purchase_fields(const json::object& o) {
    cmd::purchase p;
    p.instance_id = get_string(o, "instance_id", true);
    check_id(p.instance_id, "instance_id");
    p.account_id = get_string(o, "account_id", true);
    check_id(p.account_id, "account_id");
    const auto prod = parse_product(get_string(o, "product", true));
    if (!prod) invalid("product", "unknown product (kafka, rabbitmq, rocketmq, mqtt)");
    p.prod = *prod;
    const auto bill = parse_billing(get_string(o, "billing", true));
    if (!bill) invalid("billing", "unknown billing model (subscription, payg, serverless)");
    p.bill = *bill;
    p.timezone = get_text(o, "timezone", false, 64);
    p.rate = get_price(o, "price", true);
    p.term_months = get_int32(o, "term_months", 0);
    p.config = get_config(o);
    if (const auto* a = field(o, "auto_renew")) p.auto_renew = get_auto_renew_fields(object_of(*a, "auto_renew", {"enabled", "days_before"}));
    return p;
}

json::object empty_object;

const json::object& body_object(const http::request_context& ctx, std::string_view what,
                                std::initializer_list<std::string_view> known) {
    // Actions without fields accept an empty body as well as {}.
    if (ctx.req.body.find_first_not_of(" \t\r\n") == std::string::npos) return empty_object;
    static thread_local json::value body;
    body = ctx.json_body();
    return object_of(body, what, known);
}

} // namespace

void check_id(std::string_view id, std::string_view field_name) {
    if (id.empty() || id.size() > 128) invalid(field_name, std::string(field_name) + " must be 1 to 128 characters");
    for (char c : id) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                        c == '_' || c == '.' || c == ':' || c == '@';
        if (!ok) invalid(field_name, std::string(field_name) + " may hold only letters, digits and - _ . : @");
    }
}

cmd::purchase parse_purchase(const json::value& body) {
    const auto& o = object_of(body, "the purchase", {"instance_id", "account_id", "product", "billing", "timezone",
                                                     "price", "term_months", "config", "auto_renew"});
    return purchase_fields(o);
}

cmd::import_instance parse_import(const json::value& body) {
    const auto& o = object_of(body, "the import", {"instance_id", "account_id", "product", "billing", "timezone", "price",
                                                   "term_months", "config", "auto_renew", "state", "state_since",
                                                   "expires_at", "overdue_since", "owed"});
    cmd::import_instance c;
    c.details = purchase_fields(o);
    const auto st = parse_state(get_string(o, "state", true));
    if (!st) invalid("state", "unknown state");
    c.in_state = *st;
    const auto since = get_time(o, "state_since");
    if (!since) invalid("state_since", "\"state_since\" is required");
    c.state_since = *since;
    c.expires_at = get_time(o, "expires_at");
    c.overdue_since = get_time(o, "overdue_since");
    c.owed = get_int(o, "owed").value_or(0);
    return c;
}

cmd::command parse_action(std::string_view action, const http::request_context& ctx) {
    if (action == "deploy") return (void)body_object(ctx, "the body", {}), cmd::command{cmd::deploy{}};
    if (action == "stop") return (void)body_object(ctx, "the body", {}), cmd::command{cmd::stop{}};
    if (action == "enable") return (void)body_object(ctx, "the body", {}), cmd::command{cmd::enable{}};
    if (action == "unsubscribe") return (void)body_object(ctx, "the body", {}), cmd::command{cmd::unsubscribe{}};
    if (action == "force-delete") return (void)body_object(ctx, "the body", {}), cmd::command{cmd::force_delete{}};
    if (action == "delete") return (void)body_object(ctx, "the body", {}), cmd::command{cmd::remove{}};
    if (action == "renew") {
        const auto& o = body_object(ctx, "the renewal", {"months"});
        return cmd::renew{get_int32(o, "months", 1)};
    }
    if (action == "change-config") {
        const auto& o = body_object(ctx, "the change", {"config", "price"});
        cmd::change_config c;
        c.config = get_config(o);
        c.rate = get_price(o, "price", true);
        return c;
    }
    if (action == "auto-renew") {
        const auto& o = body_object(ctx, "the auto-renew setting", {"enabled", "days_before"});
        const auto s = get_auto_renew_fields(o);
        return cmd::set_auto_renew{s.enabled, s.days_before};
    }
    throw api_error(404, "not_found", "no such action: " + std::string(action));
}

std::string parse_name(const json::value& body) {
    const auto& o = object_of(body, "the body", {"name"});
    return get_text(o, "name", true, 255);
}

open_account_body parse_open_account(const json::value& body) {
    const auto& o = object_of(body, "the account", {"account_id", "currency"});
    open_account_body out;
    out.account_id = get_string(o, "account_id", true);
    check_id(out.account_id, "account_id");
    out.currency = get_text(o, "currency", true, 16);
    return out;
}

cmd::add_funds parse_funds(const json::value& body) {
    const auto& o = object_of(body, "the funds", {"amount", "reference"});
    cmd::add_funds c;
    const auto amount = get_int(o, "amount");
    if (!amount) invalid("amount", "\"amount\" is required");
    c.amount = *amount;
    c.reference = get_text(o, "reference", false);
    return c;
}

cmd::record_usage parse_usage(const json::value& body) {
    const auto& o = object_of(body, "the usage record", {"record_id", "metric", "quantity", "start", "end"});
    cmd::record_usage c;
    c.record_id = get_string(o, "record_id", true);
    if (c.record_id.empty() || c.record_id.size() > 128 ||
        !std::all_of(c.record_id.begin(), c.record_id.end(), [](char ch) { return ch >= 0x20 && ch <= 0x7e; }))
        invalid("record_id", "record_id must be 1 to 128 printable ASCII characters");
    c.metric = get_text(o, "metric", true, 64);
    if (c.metric.empty()) invalid("metric", "\"metric\" is required");
    // An integer of int64; a number that is not one (1.5, 1e30, 2^64) is an invalid quantity
    // rather than a malformed body: the JSON is well-formed, the value is not a count.
    const auto* q = field(o, "quantity");
    if (q == nullptr) invalid("quantity", "\"quantity\" is required");
    if (q->is_int64()) c.quantity = q->get_int64();
    else if (q->is_uint64()) invalid("quantity", "\"quantity\" is out of range (at most 9223372036854775807)");
    else if (q->is_double()) {
        const double d = q->get_double();
        if (!(d >= -9.2e18 && d <= 9.2e18) || d != static_cast<double>(static_cast<std::int64_t>(d)))
            invalid("quantity", "\"quantity\" must be an integer of at most 9223372036854775807");
        c.quantity = static_cast<std::int64_t>(d);
    } else malformed("\"quantity\" must be an integer");
    if (c.quantity < 0) invalid("quantity", "the quantity must not be negative");
    const auto start = get_time(o, "start");
    if (!start) invalid("start", "\"start\" is required");
    const auto end = get_time(o, "end");
    if (!end) invalid("end", "\"end\" is required");
    c.start = *start;
    c.end = *end;
    return c;
}

cmd::charge parse_charge(const json::value& body) {
    const auto& o = object_of(body, "the charge", {"amount", "instance_id", "reason", "reference"});
    cmd::charge c;
    const auto amount = get_int(o, "amount");
    if (!amount) invalid("amount", "\"amount\" is required");
    c.amount = *amount;
    c.instance_id = get_text(o, "instance_id", false, 128);
    // A reason the ledger's own charges use is refused by the core (is_reserved_charge_reason).
    c.reason = get_text(o, "reason", false);
    c.reference = get_text(o, "reference", false);
    return c;
}

} // namespace mqledger::api
