#include "ledger/money.h"

#include "ledger_test_support.h"

#include <catch2/catch.hpp>

#include <limits>

using namespace mqledger;
using namespace mqledger::test;

namespace {
constexpr money max_money = std::numeric_limits<money>::max();
constexpr money min_money = std::numeric_limits<money>::min();
} // namespace

TEST_CASE("money: checked add refuses overflow instead of wrapping") {
    CHECK(checked_add(1, 2) == 3);
    CHECK_FALSE(checked_add(max_money, 1).has_value());
    CHECK_FALSE(checked_add(min_money, -1).has_value());
}

TEST_CASE("money: checked sub refuses overflow instead of wrapping") {
    CHECK(checked_sub(1, 2) == -1);
    CHECK_FALSE(checked_sub(min_money, 1).has_value());
    CHECK_FALSE(checked_sub(0, min_money).has_value());
}

TEST_CASE("money: checked mul refuses overflow instead of wrapping") {
    CHECK(checked_mul(30000, 12) == 360000);
    CHECK_FALSE(checked_mul(max_money / 2 + 1, 2).has_value());
    CHECK_FALSE(checked_mul(min_money, -1).has_value());
}

TEST_CASE("money: a division rounds half-up to the minor unit") {
    CHECK(mul_div_half_up(5, 1, 2) == 3);
    CHECK(mul_div_half_up(4, 1, 3) == 1);
    CHECK(mul_div_half_up(5, 1, 3) == 2);
    CHECK(mul_div_half_up(-5, 1, 2) == -3);  // a refund mirrors its charge
    CHECK(mul_div_half_up(max_money, 3, 3) == max_money);  // no intermediate overflow
    CHECK_FALSE(mul_div_half_up(max_money, 3, 2).has_value());
    CHECK_FALSE(mul_div_half_up(1, 1, 0).has_value());
}

TEST_CASE("money: Q seed: two months bought, upgraded after one month pays one month's difference") {
    const auto z = zone("Asia/Shanghai");
    const auto bought = at("2024-01-10 10:00");
    const auto expires = add_months_local(bought, z, 2);
    const auto upgraded = add_months_local(bought, z, 1);
    CHECK(prorate_difference(20000 - 10000, upgraded, expires, z) == 10000);
    const auto r = remaining_term(upgraded, expires, z);
    CHECK(r.whole == 1);
    CHECK(r.partial_num == 0);
}

TEST_CASE("money: remaining months are whole calendar months plus the elapsed-time fraction of the partial month") {
    const auto z = zone("Asia/Shanghai");
    // From 2024-04-01 00:00 to 2024-05-16 00:00: one month, then 15 of May's 31 days... measured
    // against the month from 05-01 to 06-01 (31 days).
    const auto r = remaining_term(at("2024-04-01 00:00"), at("2024-05-16 00:00"), z);
    CHECK(r.whole == 1);
    CHECK(r.partial_num == std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::days{15}).count());
    CHECK(r.partial_den == std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::days{31}).count());
    // 3100 × (1 + 15/31) = 3100 + 1500
    CHECK(prorate_difference(3100, at("2024-04-01 00:00"), at("2024-05-16 00:00"), z) == 4600);
}

TEST_CASE("money: a downgrade refunds the same formula as an upgrade charges") {
    const auto z = zone("Asia/Shanghai");
    const auto now = at("2024-01-10 10:00");
    const auto expires = at("2024-03-10 10:00");
    CHECK(prorate_difference(-5000, now, expires, z) == -10000);
    CHECK(prorate_difference(5000, now, expires, z) == 10000);
}

TEST_CASE("money: half a partial month rounds half-up") {
    const auto z = zone("UTC");
    // 2024-04-01 → 2024-04-16 is 15 of April's 30 days: 1 × 15/30 = 0.5 → 1
    CHECK(prorate_difference(1, utc("2024-04-01 00:00"), utc("2024-04-16 00:00"), z) == 1);
    CHECK(prorate_difference(-1, utc("2024-04-01 00:00"), utc("2024-04-16 00:00"), z) == -1);
}

TEST_CASE("money: payg cycle charge is time-weighted when the rate changes inside the cycle") {
    const auto h = utc("2024-01-01 10:00");
    std::vector<billing_mark> marks{{h, true, 100}, {h + std::chrono::minutes{30}, true, 200}};
    CHECK(cycle_amount(marks, h, h + std::chrono::hours{1}, false) == 150);
}

TEST_CASE("money: serverless cycle charge uses the highest rate used in the cycle") {
    const auto h = utc("2024-01-01 10:00");
    std::vector<billing_mark> marks{{h, true, 200}, {h + std::chrono::minutes{30}, true, 100}};
    CHECK(cycle_amount(marks, h, h + std::chrono::hours{1}, true) == 200);
    // next cycle: only the new rate
    CHECK(cycle_amount(marks, h + std::chrono::hours{1}, h + std::chrono::hours{2}, true) == 100);
}

TEST_CASE("money: only billable time of the cycle is charged") {
    const auto h = utc("2024-01-01 10:00");
    std::vector<billing_mark> marks{{h - std::chrono::hours{3}, true, 100}, {h + std::chrono::minutes{15}, false, 100}};
    CHECK(cycle_amount(marks, h, h + std::chrono::hours{1}, false) == 25);
    CHECK(cycle_amount(marks, h + std::chrono::hours{1}, h + std::chrono::hours{2}, false) == 0);
    CHECK(cycle_amount({}, h, h + std::chrono::hours{1}, false) == 0);
}

TEST_CASE("money: a cycle charge rounds half-up and is never more than the highest rate, exactly even at INT64_MAX") {
    const auto h = utc("2024-01-01 10:00");
    std::vector<billing_mark> half{{h + std::chrono::minutes{30}, true, 1}};
    CHECK(cycle_amount(half, h, h + std::chrono::hours{1}, false) == 1);
    std::vector<billing_mark> huge{{h, true, max_money}};
    CHECK(cycle_amount(huge, h, h + std::chrono::hours{1}, false) == max_money);
    std::vector<billing_mark> over{{h - std::chrono::hours{1}, true, max_money}};
    CHECK(cycle_amount(over, h - std::chrono::hours{1}, h + std::chrono::hours{1}, false) == max_money);
}

TEST_CASE("money: a rate whose one-cycle bill could overflow int64 does not fit the cycle (RULES.md Money)") {
    const auto hour = std::chrono::duration_cast<duration>(std::chrono::hours{1});
    const money largest_hourly = max_money / hour.count();
    CHECK(rate_fits_cycle(0, hour));
    CHECK(rate_fits_cycle(120, hour));
    CHECK(rate_fits_cycle(largest_hourly, hour));
    CHECK_FALSE(rate_fits_cycle(largest_hourly + 1, hour));
    CHECK_FALSE(rate_fits_cycle(max_money, hour));
    CHECK_FALSE(rate_fits_cycle(-1, hour));
    // Whatever fits gives an exact bill no larger than the rate, even over the longest cycle.
    const auto h = utc("2024-01-01 10:00");
    std::vector<billing_mark> marks{{h, true, largest_hourly}};
    CHECK(cycle_amount(marks, h, h + std::chrono::hours{1}, false) == largest_hourly);
    CHECK(cycle_amount(marks, h, h + std::chrono::hours{1}, true) == largest_hourly);
}

TEST_CASE("money: remaining months of a far expiry are exact without walking month by month") {
    const auto z = zone("Asia/Shanghai");
    const auto now = at("2024-01-31 10:00");
    const auto r = remaining_term(now, at("9999-01-31 10:00"), z);
    CHECK(r.whole == (9999 - 2024) * 12);
    CHECK(r.partial_num == 0);
    // Clamped anchors: from 01-31, 1 month is 02-29 and 2 months 03-31; 03-30 is 1 month + 30 of 31 days.
    const auto q = remaining_term(now, at("2024-03-30 10:00"), z);
    CHECK(q.whole == 1);
    CHECK(q.partial_num == std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::days{30}).count());
    CHECK(q.partial_den == std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::days{31}).count());
    // Outside the supported range nothing remains rather than looping or overflowing.
    const auto end_of_time = time_point{duration{std::numeric_limits<std::int64_t>::max()}};
    CHECK(remaining_term(now, end_of_time, z).whole == 0);
}
