#include "ledger/money.h"

#include "ledger/local_time.h"

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
    if (expires_at <= now) { r.partial_num = 0; return r; }
    // Months are counted from `now` each time (not step by step) so clamping to a short month
    // does not drift the later anchors.
    std::int64_t k = 0;
    while (add_months_local(now, zone, static_cast<int>(k + 1)) <= expires_at) ++k;
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
