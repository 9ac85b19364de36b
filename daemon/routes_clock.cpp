#include "daemon/routes.h"
#include "ledger/codec.h"

#include <cmath>

namespace mqledger {
namespace {

// About a century: more is a typo, and it keeps the microsecond arithmetic far from overflow.
constexpr double max_advance_seconds = 100.0 * 366 * 24 * 3600;

boost::json::object clock_body(time_point now) { return {{"now", codec::format_time(now)}}; }

} // namespace

void add_clock_routes(http::router& r, manual_clock& clock, fire_due_fn fire_due, run_blocking_fn run) {
    r.add("GET", "/v1/clock", route_kind::read,
          [&clock](const http::request_context&) { return http::json_response(200, clock_body(clock.now())); });

    r.add_async("POST", "/v1/clock", route_kind::admin_only,
                [&clock, fire_due = std::move(fire_due), run](const http::request_context& ctx, http::responder done) {
        const auto body = ctx.json_body();
        const auto* obj = body.if_object();
        if (!obj) throw http::api_error(400, "malformed", "expected an object {\"now\": TIME} or {\"advance_seconds\": N}");
        // Strict like every other body (API.md: an unknown key is 400): a misspelt key must not
        // be taken for a valid request that does something else.
        for (const auto& kv : *obj)
            if (kv.key() != "now" && kv.key() != "advance_seconds")
                throw http::api_error(400, "malformed", "unknown key \"" + std::string(kv.key()) + "\"");
        const auto* now_v = obj->if_contains("now");
        const auto* adv_v = obj->if_contains("advance_seconds");
        if ((now_v == nullptr) == (adv_v == nullptr))
            throw http::api_error(400, "malformed", "give exactly one of \"now\" and \"advance_seconds\"");

        const auto current = clock.now();
        const auto century = duration(static_cast<std::int64_t>(max_advance_seconds * 1e6));
        time_point target;
        if (now_v) {
            if (!now_v->is_string()) throw http::api_error(400, "malformed", "\"now\" must be a string");
            const auto parsed = codec::parse_time(now_v->get_string());
            if (!parsed) throw http::api_error(422, "invalid", "\"now\" is not an RFC 3339 time", {{"field", "now"}});
            target = *parsed;
            if (target < current)
                throw http::api_error(422, "invalid", "the clock only moves forward; it is " + codec::format_time(current),
                                      {{"field", "now"}});
            if (target - current > century)
                throw http::api_error(422, "invalid", "\"now\" is more than a century ahead", {{"field", "now"}});
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
        const bool by_now = now_v != nullptr;
        // Moving the clock and firing what came due reads and writes the database: off the
        // I/O thread.
        auto work = [&clock, &fire_due, target, by_now, done = std::move(done)]() mutable {
            http::response res;
            try {
                // Another request may have moved the clock meanwhile; forward-only still holds.
                if (!clock.advance_to(target))
                    throw http::api_error(422, "invalid",
                                          "the clock only moves forward; it is " + codec::format_time(clock.now()),
                                          {{"field", by_now ? "now" : "advance_seconds"}});
                const std::size_t fired = fire_due ? fire_due(target) : 0;
                auto out = clock_body(clock.now());
                out["fired"] = fired;
                res = http::json_response(200, out);
            } catch (const http::api_error& e) {
                res = http::error_response(e.status, e.code, e.what(), e.extra);
            } catch (const std::exception& e) {
                res = http::error_response(500, "internal", "internal error");
                res.internal_error = e.what();
            }
            done(std::move(res));
        };
        if (run) run(std::move(work));
        else work();
    });
}

} // namespace mqledger
