#include "ledger/local_time.h"

#include <date/date.h>
#include <date/tz.h>

#include <exception>
#include <sstream>
#include <string>

namespace mqledger {

using std::chrono::microseconds;

bool supported_time(time_point t) noexcept {
    static constexpr auto earliest = date::sys_days{date::year{1900} / 1 / 1};
    static constexpr auto latest = date::sys_days{date::year{10000} / 1 / 1};
    return t >= earliest && t < latest;
}

const date::time_zone* find_zone(std::string_view name) noexcept {
    if (name.empty()) return nullptr;
    try {
        return date::locate_zone(name);
    } catch (const std::exception&) {
        // date/tz signals an unknown zone by throwing; the core reports it as a value.
        return nullptr;
    }
}

bool valid_timezone(std::string_view name) noexcept { return find_zone(name) != nullptr; }

time_point local_to_utc(const date::time_zone* zone, std::chrono::sys_days local_day, microseconds time_of_day) {
    const date::local_time<microseconds> lt{(local_day.time_since_epoch() + time_of_day)};
    // choose::earliest: date/tz returns the transition instant for a gap (the first existing
    // instant after it) and the earlier offset for an ambiguous reading: exactly RULES.md.
    return std::chrono::time_point_cast<microseconds>(zone->to_sys(lt, date::choose::earliest));
}

std::chrono::sys_days local_day_of(const date::time_zone* zone, time_point t) {
    const auto lt = zone->to_local(t);
    return std::chrono::sys_days{date::floor<date::days>(lt).time_since_epoch()};
}

time_point local_hour_days_after(time_point t, const date::time_zone* zone, int days, int hour) {
    return local_to_utc(zone, local_day_of(zone, t) + date::days{days}, std::chrono::hours{hour});
}

time_point local_hour_days_before(time_point t, const date::time_zone* zone, int days, int hour) {
    return local_to_utc(zone, local_day_of(zone, t) - date::days{days}, std::chrono::hours{hour});
}

time_point next_local_hour(time_point from, const date::time_zone* zone, int hour) {
    const auto day = local_day_of(zone, from);
    for (int d = -1; d <= 2; ++d) {
        const auto candidate = local_to_utc(zone, day + date::days{d}, std::chrono::hours{hour});
        if (candidate >= from) return candidate;
    }
    return local_to_utc(zone, day + date::days{3}, std::chrono::hours{hour});
}

time_point add_months_local(time_point t, const date::time_zone* zone, int months) {
    const auto lt = zone->to_local(t);
    const auto day = date::floor<date::days>(lt);
    const auto tod = std::chrono::duration_cast<microseconds>(lt - day);
    const date::year_month_day ymd{day};
    auto ym = date::year_month{ymd.year(), ymd.month()} + date::months{months};
    const auto last = date::year_month_day_last{ym.year(), date::month_day_last{ym.month()}}.day();
    const auto d = ymd.day() > last ? last : ymd.day();
    const date::sys_days target{date::year_month_day{ym.year(), ym.month(), d}};
    return local_to_utc(zone, std::chrono::sys_days{target.time_since_epoch()}, tod);
}

time_point local_day_start(time_point t, const date::time_zone* zone) {
    return local_to_utc(zone, local_day_of(zone, t), microseconds{0});
}

time_point parse_local(std::string_view text, const date::time_zone* zone) {
    std::istringstream in{std::string{text}};
    date::local_time<std::chrono::seconds> lt;
    in >> date::parse(text.size() > 16 ? "%Y-%m-%d %H:%M:%S" : "%Y-%m-%d %H:%M", lt);
    if (in.fail() || zone == nullptr) return time_point{};
    const auto day = date::floor<date::days>(lt);
    return local_to_utc(zone, std::chrono::sys_days{day.time_since_epoch()},
                        std::chrono::duration_cast<microseconds>(lt - day));
}

} // namespace mqledger
