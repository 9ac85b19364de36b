#include "daemon/routes.h"
#include "ledger/codec.h"

#include <cmath>

namespace mqledger {
namespace {

// About a century: more is a typo, and it keeps the microsecond arithmetic far from overflow.
constexpr double max_advance_seconds = 100.0 * 366 * 24 * 3600;

boost::json::object clock_body(time_point now) { return {{"now", codec::format_time(now)}}; }

} // namespace

void add_clock_routes(http::router& r, manual_clock& clock, fire_due_fn fire_due) {
    r.add("GET", "/v1/clock", route_kind::read,
          [&clock](const http::request_context&) { return http::json_response(200, clock_body(clock.now())); });

    r.add("POST", "/v1/clock", route_kind::admin_only,
          [&clock, fire_due = std::move(fire_due)](const http::request_context& ctx) {
              const auto body = ctx.json_body();
              const auto* obj = body.if_object();
              if (!obj) throw http::api_error(400, "malformed", "expected an object {\"now\": TIME} or {\"advance_seconds\": N}");
              const auto* now_v = obj->if_contains("now");
              const auto* adv_v = obj->if_contains("advance_seconds");
              if ((now_v == nullptr) == (adv_v == nullptr))
                  throw http::api_error(400, "malformed", "give exactly one of \"now\" and \"advance_seconds\"");

              const auto current = clock.now();
              time_point target;
              if (now_v) {
                  if (!now_v->is_string()) throw http::api_error(400, "malformed", "\"now\" must be a string");
                  const auto parsed = codec::parse_time(now_v->get_string());
                  if (!parsed)
                      throw http::api_error(422, "invalid", "\"now\" is not an RFC 3339 time", {{"field", "now"}});
                  target = *parsed;
                  if (target < current)
                      throw http::api_error(422, "invalid",
                                            "the clock only moves forward; it is " + codec::format_time(current),
                                            {{"field", "now"}});
              } else {
                  if (!adv_v->is_number()) throw http::api_error(400, "malformed", "\"advance_seconds\" must be a number");
                  const double secs = adv_v->to_number<double>();
                  if (!std::isfinite(secs) || secs < 0)
                      throw http::api_error(422, "invalid", "the clock only moves forward: advance_seconds must be >= 0",
                                            {{"field", "advance_seconds"}});
                  if (secs > max_advance_seconds)
                      throw http::api_error(422, "invalid", "advance_seconds is more than a century",
                                            {{"field", "advance_seconds"}});
                  target = current + duration(static_cast<std::int64_t>(std::llround(secs * 1e6)));
              }
              // Another request may have moved the clock meanwhile; forward-only still holds.
              if (!clock.advance_to(target))
                  throw http::api_error(422, "invalid",
                                        "the clock only moves forward; it is " + codec::format_time(clock.now()),
                                        {{"field", now_v ? "now" : "advance_seconds"}});
              const std::size_t fired = fire_due ? fire_due(target) : 0;
              auto out = clock_body(clock.now());
              out["fired"] = fired;
              return http::json_response(200, out);
          });
}

} // namespace mqledger
