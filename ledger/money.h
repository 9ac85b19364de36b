// Money arithmetic (RULES.md "Vocabulary: Money", "Accounts and payments", "RocketMQ
// configuration changes"): int64 minor units, overflow reported as an empty optional (never UB),
// half-up rounding of every division, proration by remaining calendar months, and settlement
// amounts of a billing cycle. No floating point. Every function here is pure and thread-safe.
#pragma once

#include "ledger/types.h"

#include <optional>
#include <vector>

namespace date {
class time_zone;
}

namespace mqledger {

/// a + b, or nothing on overflow. Thread-safe.
[[nodiscard]] std::optional<money> checked_add(money a, money b) noexcept;
/// a - b, or nothing on overflow. Thread-safe.
[[nodiscard]] std::optional<money> checked_sub(money a, money b) noexcept;
/// a × b, or nothing on overflow. Thread-safe.
[[nodiscard]] std::optional<money> checked_mul(money a, std::int64_t b) noexcept;
/// a × b / c rounded half-up (halves away from zero, so a refund mirrors its charge), computed
/// without intermediate overflow; nothing when c is 0 or the result leaves int64. Thread-safe.
[[nodiscard]] std::optional<money> mul_div_half_up(money a, std::int64_t b, std::int64_t c) noexcept;

/// The remaining months of a term from `now` to `expires_at`: whole calendar months counted
/// forward from `now` in local time, plus the partial last month as elapsed-time numerator and
/// denominator (RULES.md "RocketMQ configuration changes": "whole calendar months plus the
/// fraction of the last partial month by elapsed time"). Nothing remains (all zero) when either
/// time is outside `supported_time` or the zone is null. Thread-safe.
struct remaining_months {
    std::int64_t whole = 0;
    std::int64_t partial_num = 0;   // microseconds of the partial month left
    std::int64_t partial_den = 1;   // microseconds in that calendar month
};
[[nodiscard]] remaining_months remaining_term(time_point now, time_point expires_at, const date::time_zone* zone);

/// (new − old monthly price) × remaining months, half-up; negative is a refund (Q: "2 months
/// bought, upgraded after 1 month pays 1 month's difference"). Nothing on overflow. Thread-safe.
[[nodiscard]] std::optional<money> prorate_difference(money monthly_difference, time_point now,
                                                      time_point expires_at, const date::time_zone* zone);

/// True when one billing cycle of `longest_cycle` at `rate` per cycle-unit is representable
/// exactly: rate × the cycle's length in microseconds (the bill's numerator before its one
/// rounding division) fits int64, and so does the bill itself. decide refuses a price that fails
/// this (API.md 422 `invalid`, field `price`) at purchase, import and change-config, so a
/// settlement can never overflow and never records a wrong amount (RULES.md "Money"). Negative
/// rates never fit. Thread-safe.
[[nodiscard]] bool rate_fits_cycle(money rate, duration longest_cycle) noexcept;

/// A point in an instance's billing history: from `at` on, the instance is `billable` at `rate`
/// (per cycle-unit: hourly for hourly cycles, daily for day cycles).
struct billing_mark {
    time_point at;
    bool billable = false;
    money rate = 0;
    friend bool operator==(const billing_mark&, const billing_mark&) = default;
};

/// The bill of the cycle [start, end) from the marks (sorted by `at`; the last one extends to
/// infinity; marks before `start` give the state at `start`). Pay-as-you-go: Σ rate × billable
/// time / cycle length, time-weighted when the rate changes inside the cycle; serverless
/// (`highest_rate`): the highest rate used in the cycle × billable time / cycle length (RULES.md
/// "Accounts and payments", Q). Half-up, nothing on overflow. Thread-safe.
[[nodiscard]] std::optional<money> cycle_amount(const std::vector<billing_mark>& marks, time_point start,
                                                time_point end, bool highest_rate);

} // namespace mqledger
