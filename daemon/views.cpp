#include "daemon/views.h"

#include "ledger/codec.h"

#include <boost/json.hpp>

namespace mqledger::views {
namespace json = boost::json;

namespace {

json::value time_or_null(const std::optional<time_point>& t) {
    return t ? json::value(codec::format_time(*t)) : json::value(nullptr);
}

void put_time(json::object& o, std::string_view key, const std::optional<time_point>& t) {
    if (t) o[key] = codec::format_time(*t);
}

} // namespace

json::object instance(const instance_state& s, const policy& p, time_point now) {
    // The purchase event's encoding is the one JSON shape of price, config and auto-renewal.
    events::purchased shape;
    shape.rate = s.rate;
    shape.config = s.config;
    shape.auto_renew = s.auto_renew;
    auto encoded = codec::encode(shape);

    const auto& flags = state_flags(s, p);
    json::array actions;
    for (const auto& a : allowed_actions(s, p, now)) actions.emplace_back(a);
    const auto dl = view_deadlines(s, p);
    json::object deadlines;
    put_time(deadlines, "release_at", dl.release_at);
    put_time(deadlines, "suspend_at", dl.suspend_at);
    put_time(deadlines, "freeze_at", dl.freeze_at);
    put_time(deadlines, "next_auto_renew_at", dl.next_auto_renew_at);
    put_time(deadlines, "next_settlement_at", dl.next_settlement_at);
    json::value change = nullptr;
    if (s.config_change_started_at) {
        change = json::object{{"started_at", codec::format_time(*s.config_change_started_at)},
                              {"until", time_or_null(dl.config_change_until)}};
    }
    json::array topics, groups;
    for (const auto& t : s.topics) topics.emplace_back(t);
    for (const auto& g : s.groups) groups.emplace_back(g);

    json::object o;
    o["instance_id"] = s.id;
    o["account_id"] = s.account_id;
    o["product"] = to_string(s.prod);
    o["billing"] = to_string(s.bill);
    o["timezone"] = s.timezone;
    o["state"] = to_string(s.current);
    o["display_state"] = display_state(s, p);
    o["service_available"] = flags.service_available;
    o["data_retained"] = flags.data_retained;
    o["actions"] = std::move(actions);
    o["state_since"] = codec::format_time(s.state_since);
    o["expires_at"] = time_or_null(s.expires_at);
    o["overdue_since"] = time_or_null(s.overdue_since);
    o["deadlines"] = std::move(deadlines);
    o["pending"] = json::object{{"force_delete", s.force_delete_pending}, {"config_change", std::move(change)}};
    o["config"] = encoded.contains("config") ? encoded["config"] : json::value(nullptr);
    o["price"] = encoded["price"];
    o["term_months"] = s.term_months;
    o["auto_renew"] = encoded["auto_renew"];
    o["topics"] = std::move(topics);
    o["groups"] = std::move(groups);
    o["billed_total"] = s.billed_total;
    o["version"] = s.version;
    return o;
}

json::object account(const std::string& id, const account_state& a) {
    return json::object{{"account_id", id},
                        {"currency", a.currency},
                        {"balance", a.balance},
                        {"owed", a.owed()},
                        {"overdue_since", time_or_null(a.overdue_since)},
                        {"version", a.version}};
}

json::object event(const store::recorded_event& e) {
    return json::object{{"position", e.position},
                        {"stream", e.stream},
                        {"stream_version", e.stream_version},
                        {"type", e.type},
                        {"effective_at", codec::format_time(e.effective_at)},
                        {"recorded_at", codec::format_time(e.recorded_at)},
                        {"data", e.data},
                        {"metadata", e.metadata},
                        {"prev_hash", e.prev_hash},
                        {"hash", e.hash}};
}

} // namespace mqledger::views
