#include "ledger/local_time.h"

#include "ledger_test_support.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>

using namespace mqledger;
using namespace mqledger::test;

TEST_CASE("local time: stopped 2023-10-13 14:00 Asia/Shanghai → 08:00 local two days after is 2023-10-15 08:00") {
    const auto z = zone("Asia/Shanghai");
    CHECK(local_hour_days_after(at("2023-10-13 14:00"), z, 2, 8) == at("2023-10-15 08:00"));
    CHECK(local_hour_days_after(at("2023-10-13 00:00"), z, 2, 8) == at("2023-10-15 08:00"));
    CHECK(local_hour_days_after(at("2023-10-13 23:59:59"), z, 2, 8) == at("2023-10-15 08:00"));
}

TEST_CASE("local time: 03:00 on the calendar day seven days before expiry") {
    const auto z = zone("Asia/Shanghai");
    CHECK(local_hour_days_before(at("2024-05-20 10:00"), z, 7, 3) == at("2024-05-13 03:00"));
    CHECK(local_hour_days_before(at("2024-05-20 01:00"), z, 7, 3) == at("2024-05-13 03:00"));
    CHECK(local_hour_days_before(at("2024-03-03 10:00"), z, 7, 3) == at("2024-02-25 03:00"));
}

TEST_CASE("local time: 2024-01-31 10:00 + 1 month = 2024-02-29 10:00 (clamped to the month's end)") {
    const auto z = zone("Asia/Shanghai");
    CHECK(add_months_local(at("2024-01-31 10:00"), z, 1) == at("2024-02-29 10:00"));
    CHECK(add_months_local(at("2023-01-31 10:00"), z, 1) == at("2023-02-28 10:00"));
    CHECK(add_months_local(at("2024-01-31 10:00"), z, 2) == at("2024-03-31 10:00"));
}

TEST_CASE("local time: month addition crosses years and keeps the day when it exists") {
    const auto z = zone("Asia/Shanghai");
    CHECK(add_months_local(at("2023-12-15 09:30"), z, 1) == at("2024-01-15 09:30"));
    CHECK(add_months_local(at("2023-03-31 09:30"), z, 1) == at("2023-04-30 09:30"));
    CHECK(add_months_local(at("2023-05-10 09:30"), z, 12) == at("2024-05-10 09:30"));
    CHECK(add_months_local(at("2023-05-10 09:30"), z, 0) == at("2023-05-10 09:30"));
}

TEST_CASE("local time: Europe/Berlin spring gap 02:30 moves forward to 03:00 CEST") {
    const auto z = zone("Europe/Berlin");
    const auto t = local_to_utc(z, std::chrono::sys_days{std::chrono::year{2024} / 3 / 31}, std::chrono::minutes{150});
    CHECK(t == utc("2024-03-31 01:00"));
}

TEST_CASE("local time: Europe/Berlin autumn ambiguous 02:30 takes the earlier instant") {
    const auto z = zone("Europe/Berlin");
    const auto t = local_to_utc(z, std::chrono::sys_days{std::chrono::year{2024} / 10 / 27}, std::chrono::minutes{150});
    CHECK(t == utc("2024-10-27 00:30"));
}

TEST_CASE("local time: America/New_York spring gap 02:30 moves forward to 03:00 EDT") {
    const auto z = zone("America/New_York");
    const auto t = local_to_utc(z, std::chrono::sys_days{std::chrono::year{2024} / 3 / 10}, std::chrono::minutes{150});
    CHECK(t == utc("2024-03-10 07:00"));
}

TEST_CASE("local time: America/New_York autumn ambiguous 01:30 takes the earlier (EDT) instant") {
    const auto z = zone("America/New_York");
    const auto t = local_to_utc(z, std::chrono::sys_days{std::chrono::year{2024} / 11 / 3}, std::chrono::minutes{90});
    CHECK(t == utc("2024-11-03 05:30"));
}

TEST_CASE("local time: an unknown zone is invalid, IANA names are valid") {
    CHECK(valid_timezone("Asia/Shanghai"));
    CHECK(valid_timezone("Europe/Berlin"));
    CHECK(valid_timezone("America/New_York"));
    CHECK_FALSE(valid_timezone("Mars/Olympus_Mons"));
    CHECK_FALSE(valid_timezone(""));
    CHECK_FALSE(valid_timezone("GMT+08:00"));
}

TEST_CASE("local time: the next 03:00 is inclusive of 03:00 itself") {
    const auto z = zone("Asia/Shanghai");
    CHECK(next_local_hour(at("2024-05-13 03:00"), z, 3) == at("2024-05-13 03:00"));
    CHECK(next_local_hour(at("2024-05-13 03:00:01"), z, 3) == at("2024-05-14 03:00"));
    CHECK(next_local_hour(at("2024-05-13 02:00"), z, 3) == at("2024-05-13 03:00"));
}

TEST_CASE("local time: a month added across the Berlin spring change keeps the local time") {
    const auto z = zone("Europe/Berlin");
    CHECK(add_months_local(at("2024-03-01 10:00", "Europe/Berlin"), z, 1) == at("2024-04-01 10:00", "Europe/Berlin"));
    CHECK(add_months_local(at("2024-03-01 10:00", "Europe/Berlin"), z, 1) == utc("2024-04-01 08:00"));
}

TEST_CASE("local time: 08:00 two days after a Berlin stop across the spring change is 08:00 CEST") {
    const auto z = zone("Europe/Berlin");
    CHECK(local_hour_days_after(at("2024-03-29 14:00", "Europe/Berlin"), z, 2, 8) == utc("2024-03-31 06:00"));
    CHECK(local_hour_days_after(at("2024-10-25 14:00", "Europe/Berlin"), z, 2, 8) == utc("2024-10-27 07:00"));
}

TEST_CASE("local time: 03:00 local seven days before expiry across the New York autumn change") {
    const auto z = zone("America/New_York");
    // Expiry 2024-11-08 10:00 EST; seven days before is 2024-11-01, still EDT.
    CHECK(local_hour_days_before(at("2024-11-08 10:00", "America/New_York"), z, 7, 3) == utc("2024-11-01 07:00"));
}

TEST_CASE("local time: local day start is local midnight") {
    const auto z = zone("Asia/Shanghai");
    CHECK(local_day_start(at("2024-05-13 17:45"), z) == at("2024-05-13 00:00"));
    CHECK(local_day_start(at("2024-05-13 17:45"), z) == utc("2024-05-12 16:00"));
}

TEST_CASE("terms: the shortest term of N calendar months is 28 days for 1 (February), 59 for 2, 365 for 12") {
    static_assert(shortest_term_days(1) == 28);
    CHECK(shortest_term_days(0) == 0);
    CHECK(shortest_term_days(-3) == 0);
    CHECK(shortest_term_days(1) == 28);
    CHECK(shortest_term_days(2) == 59);
    CHECK(shortest_term_days(3) == 89);
    CHECK(shortest_term_days(6) == 181);
    CHECK(shortest_term_days(11) == 334);
    CHECK(shortest_term_days(12) == 365);
    CHECK(shortest_term_days(13) == 393);
    CHECK(shortest_term_days(24) == 730);
    CHECK(shortest_term_days(60) == 1825);
}

TEST_CASE("terms: no real term of N months is shorter than shortest_term_days(N), and some term is that short "
          "(every start day of 2023-2026, leap year and month ends clamped)") {
    const auto z = zone("Asia/Shanghai");   // no DST: a day is 24 hours
    for (int months : {1, 2, 3, 5, 12, 13}) {
        INFO(months << " months");
        std::int64_t shortest = std::numeric_limits<std::int64_t>::max();
        for (auto day = std::chrono::sys_days{std::chrono::year{2023} / 1 / 1};
             day < std::chrono::sys_days{std::chrono::year{2027} / 1 / 1}; day += std::chrono::days{1}) {
            const auto start = local_to_utc(z, day, std::chrono::hours{10});
            const auto end = add_months_local(start, z, months);
            const auto days = std::chrono::duration_cast<std::chrono::days>(end - start).count();
            CHECK(days >= shortest_term_days(months));
            shortest = std::min<std::int64_t>(shortest, days);
        }
        CHECK(shortest == shortest_term_days(months));
    }
}
