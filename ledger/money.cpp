#include "ledger/money.h"

#include "ledger/local_time.h"

#include <date/tz.h>

#include <algorithm>
#include <limits>

namespace mqledger {
namespace {

// g++ accepts the 128-bit integer under -Wpedantic only as an extension; it is the simplest way
// to keep rate × microseconds exact before the one rounding division.
__extension__ using int128 = __int128;

std::optional<money> narrow(int128 v) noexcept {
    if (v > std::numeric_limits<money>::max() || v < std::numeric_limits<money>::min()) return std::nullopt;
    return static_cast<money>(v);
}

std::optional<money> div_half_up(int128 num, int128 den) noexcept {
    if (den == 0) return std::nullopt;
    if (den < 0) { num = -num; den = -den; }
    const bool negative = num < 0;
    const int128 mag = negative ? -num : num;
    // floor((2·mag + den) / (2·den)) is round-half-up of mag / den for every den, odd or even.
    const int128 q = (2 * mag + den) / (2 * den);
    return narrow(negative ? -q : q);
}

} // namespace

std::optional<money> checked_add(money a, money b) noexcept {
    money r = 0;
    if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
    return r;
}

std::optional<money> checked_sub(money a, money b) noexcept {
    money r = 0;
    if (__builtin_sub_overflow(a, b, &r)) return std::nullopt;
    return r;
}

std::optional<money> checked_mul(money a, std::int64_t b) noexcept {
    money r = 0;
    if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
    return r;
}

std::optional<money> mul_div_half_up(money a, std::int64_t b, std::int64_t c) noexcept {
    return div_half_up(static_cast<int128>(a) * b, c);
}

remaining_months remaining_term(time_point now, time_point expires_at, const date::time_zone* zone) {
    remaining_months r;
    // Outside the supported range the civil calendar is not exact; decide never gets there.
    if (expires_at <= now || zone == nullptr || !supported_time(now) || !supported_time(expires_at)) return r;
    // Months are counted from `now` each time (not step by step) so clamping to a short month
    // does not drift the later anchors. The calendar difference of the two local months is at
    // most one more than the answer, so the search below takes a few steps whatever the term
    // (it used to walk month by month from `now`, which a far expiry turned into a long loop).
    const auto local_ym = [zone](time_point t) {
        const date::year_month_day ymd{date::floor<date::days>(zone->to_local(t))};
        return static_cast<std::int64_t>(static_cast<int>(ymd.year())) * 12 +
               static_cast<std::int64_t>(static_cast<unsigned>(ymd.month()));
    };
    constexpr std::int64_t max_months = std::numeric_limits<int>::max() - 1;
    std::int64_t k = std::clamp<std::int64_t>(local_ym(expires_at) - local_ym(now) - 1, 0, max_months);
    while (k > 0 && add_months_local(now, zone, static_cast<int>(k)) > expires_at) --k;
    while (k < max_months && add_months_local(now, zone, static_cast<int>(k + 1)) <= expires_at) ++k;
    const auto from = add_months_local(now, zone, static_cast<int>(k));
    const auto to = add_months_local(now, zone, static_cast<int>(k + 1));
    r.whole = k;
    r.partial_num = (expires_at - from).count();
    r.partial_den = std::max<std::int64_t>(1, (to - from).count());
    return r;
}

std::optional<money> prorate_difference(money monthly_difference, time_point now, time_point expires_at,
                                        const date::time_zone* zone) {
    const auto r = remaining_term(now, expires_at, zone);
    const int128 months_num = static_cast<int128>(r.whole) * r.partial_den + r.partial_num;
    return div_half_up(static_cast<int128>(monthly_difference) * months_num, r.partial_den);
}

bool rate_fits_cycle(money rate, duration longest_cycle) noexcept {
    if (rate < 0 || longest_cycle.count() < 0) return false;
    return checked_mul(rate, longest_cycle.count()).has_value();
}

std::optional<money> cycle_amount(const std::vector<billing_mark>& marks, time_point start, time_point end,
                                  bool highest_rate) {
    if (end <= start) return money{0};
    int128 weighted = 0;
    int128 billable_us = 0;
    money highest = 0;
    for (std::size_t i = 0; i < marks.size(); ++i) {
        const auto seg_from = std::max(marks[i].at, start);
        const auto seg_to = i + 1 < marks.size() ? std::min(marks[i + 1].at, end) : end;
        if (seg_to <= seg_from || !marks[i].billable) continue;
        const auto len = (seg_to - seg_from).count();
        weighted += static_cast<int128>(marks[i].rate) * len;
        billable_us += len;
        highest = std::max(highest, marks[i].rate);
    }
    const int128 cycle_len = (end - start).count();
    if (highest_rate) return div_half_up(static_cast<int128>(highest) * billable_us, cycle_len);
    return div_half_up(weighted, cycle_len);
}

} // namespace mqledger
