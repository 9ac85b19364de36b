#include "ledger/account.h"
#include "ledger/decide.h"

#include "ledger_test_support.h"

#include <catch2/catch.hpp>

using namespace mqledger;
using namespace mqledger::test;

TEST_CASE("accounts: funds_added raises, charged lowers, refunded raises the balance") {
    account_state a;
    const auto t = utc("2024-01-01 00:00");
    a = evolve(a, events::account_opened{"CNY"}, t);
    a = evolve(a, events::funds_added{1000, "wire"}, t);
    a = evolve(a, events::charged{300, "usage", "", ""}, t);
    a = evolve(a, events::refunded{50, "i-1"}, t);
    CHECK(a.balance == 750);
    CHECK(a.owed() == 0);
    CHECK(a.version == 4);
}

TEST_CASE("accounts: a balance below zero is owed and overdue from that moment until paid back to zero") {
    account_state a;
    const auto t = utc("2024-01-01 00:00");
    a = evolve(a, events::account_opened{"CNY"}, t);
    const auto before = a;
    a = evolve(a, events::charged{300, "settlement", "i-1", ""}, t + std::chrono::hours{1});
    CHECK(a.owed() == 300);
    CHECK(a.overdue_since == t + std::chrono::hours{1});
    CHECK(became_overdue(before, a));
    const auto owing = a;
    a = evolve(a, events::charged{100, "settlement", "i-1", ""}, t + std::chrono::hours{2});
    CHECK(a.overdue_since == t + std::chrono::hours{1});
    CHECK_FALSE(became_overdue(owing, a));
    const auto still = a;
    a = evolve(a, events::funds_added{400, "wire"}, t + std::chrono::hours{3});
    CHECK(a.balance == 0);
    CHECK_FALSE(a.overdue_since);
    CHECK(overdue_cleared(still, a));
}

TEST_CASE("accounts: open, add funds and charge decisions and their refusals") {
    account_state a;
    const auto t = utc("2024-01-01 00:00");
    auto d = decide(a, cmd::add_funds{100, "x"}, t, "acc-1");
    CHECK(d.refused->code == refusal_code::not_found);
    d = decide(a, cmd::open_account{"cny"}, t, "acc-1");
    CHECK(d.refused->field == "currency");
    d = decide(a, cmd::open_account{"CNY"}, t, "acc-1");
    REQUIRE(d.ok());
    CHECK(d.events.front().stream == "account-acc-1");
    a = evolve(a, d.events.front().data, t);
    CHECK(decide(a, cmd::open_account{"CNY"}, t, "acc-1").refused->reason == "duplicate_id");
    CHECK(decide(a, cmd::add_funds{0, "x"}, t, "acc-1").refused->field == "amount");
    CHECK(decide(a, cmd::add_funds{-5, "x"}, t, "acc-1").refused->field == "amount");
    d = decide(a, cmd::charge{500, "i-1", "usage", "r"}, t, "acc-1");
    REQUIRE_FALSE(d.ok());
    CHECK(d.refused->code == refusal_code::insufficient_balance);
    CHECK(d.refused->balance == 0);
    CHECK(d.refused->required == 500);
}

TEST_CASE("accounts: adding funds that would overflow the balance is refused, not wrapped") {
    account_state a;
    const auto t = utc("2024-01-01 00:00");
    a = evolve(a, events::account_opened{"CNY"}, t);
    a = evolve(a, events::funds_added{std::numeric_limits<money>::max(), "x"}, t);
    CHECK(decide(a, cmd::add_funds{1, "y"}, t, "acc-1").refused->field == "amount");
}

TEST_CASE("accounts: instance commands sent to an account decide are refused as invalid") {
    account_state a;
    CHECK(decide(a, cmd::deploy{}, utc("2024-01-01 00:00"), "acc-1").refused->field == "command");
}
