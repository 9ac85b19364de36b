// Local wall-clock rules (RULES.md "Vocabulary: Local time", "Terms"): "08:00 local N days after",
// "03:00 on the calendar day N days before expiry", calendar-month terms clamped to the month's
// end. Times are UTC instants in, UTC instants out; the IANA zone comes from the system tzdata.
// A local time that does not exist (DST gap) moves forward to the first instant that exists; an
// ambiguous one takes the earlier instant. Every function here is pure and thread-safe.
#pragma once

#include "ledger/types.h"

#include <cstdint>
#include <string_view>

namespace date {
class time_zone;
}

namespace mqledger {

/// The zone used when a purchase names none (RULES.md "Local time", a decision: the seeds' GMT+08:00).
inline constexpr std::string_view default_timezone = "Asia/Shanghai";

/// The instants the core accepts from outside (command times, imported facts, `now`): years 1900
/// to 9999 UTC. Every local-time and month computation stays far inside what int64 microseconds
/// and date/tz's civil calendar represent, so no arithmetic on an accepted time can overflow
/// (RULES.md "Local time"; a decision, not a seed rule). Thread-safe.
[[nodiscard]] bool supported_time(time_point t) noexcept;

/// The IANA zone, or nullptr when the name is unknown (API.md 422 "bad time zone"). Thread-safe.
[[nodiscard]] const date::time_zone* find_zone(std::string_view name) noexcept;

/// True when `name` is a known IANA zone. Thread-safe.
[[nodiscard]] bool valid_timezone(std::string_view name) noexcept;

/// The instant of a local date and time of day in `zone`, gaps forward, ambiguity to the earlier
/// instant (RULES.md "Local time"). Thread-safe.
[[nodiscard]] time_point local_to_utc(const date::time_zone* zone, std::chrono::sys_days local_day,
                                      std::chrono::microseconds time_of_day);

/// The local calendar day (as a day count) of the instant `t` in `zone`. Thread-safe.
[[nodiscard]] std::chrono::sys_days local_day_of(const date::time_zone* zone, time_point t);

/// `hour`:00 local on the calendar day `days` days after the local day of `t` (K: "8:00 two days
/// after entering the Stopped state": stopped 2023-10-13 14:00 → 2023-10-15 08:00). Thread-safe.
[[nodiscard]] time_point local_hour_days_after(time_point t, const date::time_zone* zone, int days, int hour);

/// `hour`:00 local on the calendar day `days` days before the local day of `t` (R: the first
/// auto-renew attempt at 03:00 seven days before expiry). Thread-safe.
[[nodiscard]] time_point local_hour_days_before(time_point t, const date::time_zone* zone, int days, int hour);

/// The first `hour`:00 local at or after `from` (R: "one more attempt at 03:00 every day").
/// Thread-safe.
[[nodiscard]] time_point next_local_hour(time_point from, const date::time_zone* zone, int hour);

/// `t` plus `months` calendar months at the same local time, clamped to the month's last day
/// (RULES.md "Terms": 2024-01-31 10:00 + 1 month = 2024-02-29 10:00). Thread-safe.
[[nodiscard]] time_point add_months_local(time_point t, const date::time_zone* zone, int months);

/// The fewest calendar days a term of `months` calendar months can last (RULES.md "Terms"): the
/// smallest sum of `months` consecutive month lengths in a common year: 28 for 1 month
/// (February), 59 for 2, 89 for 3, 181 for 6, 365 for 12; 0 for `months` < 1. A leap day only
/// lengthens a term, and a term clamped to a shorter month's end (01-31 + 1 month = 02-28) is
/// never shorter than the months that follow its start, so no term of `months` months is
/// shorter. R's auto-renewal lead must stay below it (decide.cpp). Pure; thread-safe.
[[nodiscard]] constexpr std::int64_t shortest_term_days(std::int64_t months) noexcept {
    if (months < 1) return 0;
    constexpr int lengths[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const std::int64_t rest = months % 12;
    std::int64_t shortest = rest == 0 ? 0 : 366;
    for (int start = 0; rest != 0 && start < 12; ++start) {
        std::int64_t days = 0;
        for (std::int64_t k = 0; k < rest; ++k) days += lengths[(start + k) % 12];
        if (days < shortest) shortest = days;
    }
    return 365 * (months / 12) + shortest;
}

/// The start (local midnight) of the local calendar day containing `t`. Thread-safe.
[[nodiscard]] time_point local_day_start(time_point t, const date::time_zone* zone);

/// Convenience: the UTC instant of a local wall-clock reading "YYYY-MM-DD hh:mm[:ss]" in `zone`,
/// for tests and imports. Returns the epoch when the text does not parse. Thread-safe.
[[nodiscard]] time_point parse_local(std::string_view text, const date::time_zone* zone);

} // namespace mqledger
