// libFuzzer harness: the HTTP command parsers of daemon/api_parse.h, every entry point.
//
// Input: the first byte chooses the entry point by its value modulo 16 (so the seeds can start
// with a readable digit '0'..'9' or one of ":;<=>?"), the rest is the request body:
//   0 parse_purchase   1 parse_import   2 parse_name   3 parse_open_account   4 parse_funds
//   5 parse_charge     6..14 parse_action with deploy, stop, enable, unsubscribe, force-delete,
//   delete, renew, change-config, auto-renew    15 parse_action with an unknown action.
// The body goes through request_context::json_body() exactly as the routes do (parse_action
// reads the raw body itself, so an empty body is tried too).
//
// Properties:
//  - the only exception is http::api_error, and only 400 "malformed", 422 "invalid" with a
//    non-empty string "field" in its extra, or (unknown action only) 404 "not_found"; anything
//    else escapes and libFuzzer reports it;
//  - an accepted command holds values within API.md's limits: ids pass check_id, free text is
//    bounded and free of control characters, prices are not negative, times are RFC 3339 instants;
//  - an accepted command round-trips: written back as the documented body shape and parsed again
//    it yields the same command.
#include "daemon/api_parse.h"
#include "daemon/router.h"
#include "ledger/canonical_json.h"
#include "ledger/codec.h"
#include "tests/fuzz/fuzz_support.h"

#include <boost/json.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

using namespace mqledger;
namespace json = boost::json;
namespace cmd = mqledger::commands;
using mqledger::fuzz::printable;

namespace {

constexpr std::array<std::string_view, 10> actions{"deploy", "stop", "enable", "unsubscribe", "force-delete",
                                                    "delete", "renew", "change-config", "auto-renew", "hibernate"};

bool text_ok(std::string_view s, std::size_t max) {
    if (s.size() > max || !valid_utf8(s)) return false;
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f) return false;
    return true;
}

bool id_ok(std::string_view id) {
    try {
        api::check_id(id, "id");
        return true;
    } catch (const http::api_error&) {
        return false;
    }
}

// ---- commands back to the documented body shape (API.md "Instances", "Accounts") ----

json::object price_json(const price& p) {
    const auto unit = to_string(p.per);
    json::object o{{json::string_view(unit.data(), unit.size()), p.amount}};
    if (!p.per_unit.empty()) {
        json::object rates;
        for (const auto& [metric, rate] : p.per_unit) rates[metric] = rate;
        o["per_unit"] = std::move(rates);
    }
    return o;
}

json::object config_json(const instance_config& c) {
    return {{"edition", c.edition},       {"sub_category", c.sub_category},       {"tps", c.tps},
            {"internet_access", c.internet_access}, {"bandwidth_mbps", c.bandwidth_mbps}};
}

json::object purchase_json(const cmd::purchase& p) {
    json::object o{{"instance_id", p.instance_id},
                   {"account_id", p.account_id},
                   {"product", to_string(p.prod)},
                   {"billing", to_string(p.bill)},
                   {"timezone", p.timezone},
                   {"price", price_json(p.rate)},
                   {"term_months", p.term_months}};
    if (p.config) o["config"] = config_json(*p.config);
    if (p.auto_renew) o["auto_renew"] = json::object{{"enabled", p.auto_renew->enabled}, {"days_before", p.auto_renew->days_before}};
    return o;
}

bool same(const cmd::purchase& a, const cmd::purchase& b) {
    return a.instance_id == b.instance_id && a.account_id == b.account_id && a.prod == b.prod && a.bill == b.bill &&
           a.timezone == b.timezone && a.rate == b.rate && a.term_months == b.term_months && a.config == b.config &&
           a.auto_renew == b.auto_renew;
}

void check_purchase(const cmd::purchase& p, const std::string& in) {
    FUZZ_CHECK(id_ok(p.instance_id), "instance_id accepted but not an id: " + printable(in));
    FUZZ_CHECK(id_ok(p.account_id), "account_id accepted but not an id: " + printable(in));
    FUZZ_CHECK(text_ok(p.timezone, 64), "timezone accepted beyond 64 bytes or with controls: " + printable(in));
    FUZZ_CHECK(p.rate.amount >= 0, "a negative price was accepted: " + printable(in));
    for (const auto& [metric, rate] : p.rate.per_unit) {
        FUZZ_CHECK(rate >= 0, "a negative per-unit rate was accepted: " + printable(in));
        FUZZ_CHECK(!metric.empty() && text_ok(metric, 64), "a per-unit metric name with controls: " + printable(in));
    }
    if (p.config) {
        FUZZ_CHECK(valid_utf8(p.config->edition) && valid_utf8(p.config->sub_category), printable(in));
        FUZZ_CHECK(!p.config->edition.empty() && !p.config->sub_category.empty(), "empty edition/sub_category: " + printable(in));
    }
}

http::request request_of(std::string body) {
    http::request req;
    req.method = "POST";
    req.target = "/v1/fuzz";
    req.body = std::move(body);
    return req;
}

// The same call as the routes make: the body parsed by json_body() (400 when not JSON).
template <class F>
auto through_json_body(const std::string& body, F&& parse) {
    const auto req = request_of(body);
    const http::request_context ctx{req, req.target, {}, {}, std::nullopt};
    return parse(ctx.json_body());
}

cmd::command action_again(std::string_view action, const json::object& body) {
    const auto req = request_of(json::serialize(body));
    const http::request_context ctx{req, req.target, {}, {}, std::nullopt};
    return api::parse_action(action, ctx);
}

void run(unsigned selector, const std::string& body) {
    switch (selector) {
    case 0: {
        const auto p = through_json_body(body, api::parse_purchase);
        check_purchase(p, body);
        const auto again = api::parse_purchase(purchase_json(p));
        FUZZ_CHECK(same(p, again), "purchase does not round-trip: " + printable(body));
        return;
    }
    case 1: {
        const auto c = through_json_body(body, api::parse_import);
        check_purchase(c.details, body);
        FUZZ_CHECK(parse_state(to_string(c.in_state)) == c.in_state, printable(body));
        auto o = purchase_json(c.details);
        o["state"] = to_string(c.in_state);
        o["state_since"] = codec::format_time(c.state_since);
        if (c.expires_at) o["expires_at"] = codec::format_time(*c.expires_at);
        if (c.overdue_since) o["overdue_since"] = codec::format_time(*c.overdue_since);
        for (const auto t : {std::optional(c.state_since), c.expires_at, c.overdue_since})
            if (t) FUZZ_CHECK(codec::parse_time(codec::format_time(*t)) == t, "an accepted time has no RFC 3339 form: " + printable(body));
        const auto again = api::parse_import(o);
        FUZZ_CHECK(same(c.details, again.details) && c.in_state == again.in_state && c.state_since == again.state_since &&
                       c.expires_at == again.expires_at && c.overdue_since == again.overdue_since,
                   "import does not round-trip: " + printable(body));
        return;
    }
    case 2: {
        const auto n = through_json_body(body, api::parse_name);
        // An empty name is the core's to refuse (decide.cpp valid_name), as 422 all the same.
        FUZZ_CHECK(text_ok(n, 255), "name accepted beyond 255 bytes or with controls: " + printable(body));
        FUZZ_CHECK(api::parse_name(json::object{{"name", n}}) == n, printable(body));
        return;
    }
    case 3: {
        const auto a = through_json_body(body, api::parse_open_account);
        FUZZ_CHECK(id_ok(a.account_id), "account_id accepted but not an id: " + printable(body));
        // Whether it is an ISO 4217 code is the core's to decide (decide.cpp, open_account).
        FUZZ_CHECK(text_ok(a.currency, 16), "currency accepted beyond 16 bytes or with controls: " + printable(body));
        const auto again = api::parse_open_account(json::object{{"account_id", a.account_id}, {"currency", a.currency}});
        FUZZ_CHECK(again.account_id == a.account_id && again.currency == a.currency, printable(body));
        return;
    }
    case 4: {
        const auto f = through_json_body(body, api::parse_funds);
        FUZZ_CHECK(text_ok(f.reference, 256), "reference beyond 256 bytes or with controls: " + printable(body));
        const auto again = api::parse_funds(json::object{{"amount", f.amount}, {"reference", f.reference}});
        FUZZ_CHECK(again.amount == f.amount && again.reference == f.reference, printable(body));
        return;
    }
    case 5: {
        const auto c = through_json_body(body, api::parse_charge);
        FUZZ_CHECK(text_ok(c.reference, 256) && text_ok(c.reason, 256) && text_ok(c.instance_id, 128),
                   "charge text beyond its bound or with controls: " + printable(body));
        // A reason the ledger's own charges use ("settlement", ...) is the core's to refuse
        // (decide.cpp is_reserved_charge_reason), as 422 all the same: the parser lets it through.
        const auto again = api::parse_charge(json::object{
            {"amount", c.amount}, {"instance_id", c.instance_id}, {"reason", c.reason}, {"reference", c.reference}});
        FUZZ_CHECK(again.amount == c.amount && again.instance_id == c.instance_id && again.reason == c.reason &&
                       again.reference == c.reference,
                   printable(body));
        return;
    }
    default: break;
    }

    const std::string_view action = actions[selector - 6];
    const auto req = request_of(body);
    const http::request_context ctx{req, req.target, {}, {}, std::nullopt};
    const auto c = api::parse_action(action, ctx);
    FUZZ_CHECK(action != "hibernate", "an unknown action was accepted");
    // The command matches the action, and its fields round-trip.
    if (action == "renew") {
        const auto* r = std::get_if<cmd::renew>(&c);
        FUZZ_CHECK(r != nullptr, "renew gave another command");
        const auto again = action_again(action, {{"months", r->months}});
        FUZZ_CHECK(std::get<cmd::renew>(again).months == r->months, printable(body));
    } else if (action == "change-config") {
        const auto* r = std::get_if<cmd::change_config>(&c);
        FUZZ_CHECK(r != nullptr, "change-config gave another command");
        FUZZ_CHECK(r->rate.amount >= 0, "a negative price was accepted: " + printable(body));
        json::object o{{"price", price_json(r->rate)}};
        if (r->config) o["config"] = config_json(*r->config);
        const auto again = std::get<cmd::change_config>(action_again(action, o));
        FUZZ_CHECK(again.config == r->config && again.rate == r->rate, "change-config does not round-trip: " + printable(body));
    } else if (action == "auto-renew") {
        const auto* r = std::get_if<cmd::set_auto_renew>(&c);
        FUZZ_CHECK(r != nullptr, "auto-renew gave another command");
        const auto again = std::get<cmd::set_auto_renew>(action_again(action, {{"enabled", r->enabled}, {"days_before", r->days_before}}));
        FUZZ_CHECK(again.enabled == r->enabled && again.days_before == r->days_before, printable(body));
    } else {
        // Actions without fields accept only an empty body or an empty object.
        FUZZ_CHECK(body.find_first_not_of(" \t\r\n") == std::string::npos || json::parse(body).as_object().empty(),
                   std::string(action) + " accepted fields: " + printable(body));
    }
}

void check_refusal(const http::api_error& e, unsigned selector, const std::string& body) {
    const std::string what = std::to_string(e.status) + " " + e.code + " (" + e.what() + ") for " + printable(body);
    if (e.status == 400) {
        FUZZ_CHECK(e.code == "malformed", what);
    } else if (e.status == 422) {
        FUZZ_CHECK(e.code == "invalid", what);
        const auto* f = e.extra.if_contains("field");
        FUZZ_CHECK(f != nullptr && f->is_string() && !f->get_string().empty(), "a 422 names no field: " + what);
    } else {
        FUZZ_CHECK(e.status == 404 && e.code == "not_found" && selector == 15, "unexpected status: " + what);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const unsigned selector = data[0] % 16u;
    const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
    try {
        run(selector, body);
    } catch (const http::api_error& e) {
        check_refusal(e, selector, body);
    }
    // Any other exception propagates: libFuzzer reports it as a crash.
    return 0;
}
