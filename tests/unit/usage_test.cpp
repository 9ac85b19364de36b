// Usage records and usage-priced bills (issue 15), decided by the core's units of work exactly
// as the daemon runs them (tests/support/fleet.h): every refusal of a record, duplicates, the
// itemised settlement (flat + usage), late records billed by the next settlement, bounds
// (overflow, the 35-day lookback), per-unit rates in prices, and MQTT's local-day cycles in a
// DST zone. Each test names the rule it checks; each ends with the log replayed by `verify`'s
// replay (every unit decided again).
#include "ledger/codec.h"

#include "ledger_test_support.h"

#include <catch2/catch.hpp>

#include <functional>
#include <limits>
#include <map>

using namespace mqledger;
using namespace mqledger::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* storage = "storage_gb_hours";

price priced(price::unit u, money amount, std::map<std::string, money> per_unit = {}) {
    price p{u, amount};
    p.per_unit = std::move(per_unit);
    return p;
}

cmd::record_usage rec(std::string id, std::string metric, std::int64_t quantity, time_point start, time_point end) {
    return cmd::record_usage{std::move(id), std::move(metric), quantity, start, end};
}

// Kafka pay-as-you-go at 120/h and `rates`, bought 09:30 and deployed 10:00 on 2024-01-10
// (Asia/Shanghai, whose hours are UTC hours: the hourly cycles are whole local hours).
world kafka(std::map<std::string, money> rates = {{storage, 2}}, money funds = 1000000) {
    world w;
    w.now = at("2024-01-10 09:00");
    w.open(funds);
    w.must(cmd::purchase{"i-1", "acc-1", product::kafka, billing::payg, "", priced(price::unit::hourly, 120, rates), 0,
                         {}, {}},
           at("2024-01-10 09:30"));
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    return w;
}

// MQTT pay-as-you-go (import only) in `tz` at 900/day and 3 per message, imported running at `t`.
world mqtt(std::string tz, time_point t, money funds = 1000000) {
    world w;
    w.now = t - 1h;
    w.open(funds);
    w.must(cmd::import_instance{{"i-1", "acc-1", product::mqtt, billing::payg, std::move(tz),
                                 priced(price::unit::daily, 900, {{"messages", 3}}), 0, {}, {}},
                                state::running, t - std::chrono::days{30}, {}, {}, 0},
           t);
    return w;
}

events::settled bill(const pending_event& e) { return std::get<events::settled>(e.data); }

void verified(const world& w) {
    policy_registry registry;
    registry.add(w.policies);
    const auto finding = w.driver.verify(registry);
    INFO((finding ? finding->reason : std::string()));
    CHECK_FALSE(finding.has_value());
}

} // namespace

TEST_CASE("usage refusals: each names its code and field or reason, and nothing is written (issue 15, the usage "
          "route's refusals)",
          "[usage]") {
    struct row {
        std::string rule;
        std::function<void(world&)> setup;   // before the record
        cmd::record_usage record;
        time_point when;
        refusal_code code;
        std::string field_or_reason;
        std::string mentions;
    };
    const auto t10 = at("2024-01-10 10:00");
    const auto now = at("2024-01-10 10:45");
    const auto none = [](world&) {};
    const std::vector<row> rows{
        {"a negative quantity is invalid", none, rec("r", storage, -1, t10, t10 + 30min), now, refusal_code::invalid,
         "quantity", "negative"},
        {"end at start is invalid (end)", none, rec("r", storage, 1, t10, t10), now, refusal_code::invalid, "end",
         "after start"},
        {"end before start is invalid (end)", none, rec("r", storage, 1, t10 + 10min, t10), now, refusal_code::invalid,
         "end", "after start"},
        {"usage cannot be measured in the future (end after now)", none, rec("r", storage, 1, t10, now + 1s), now,
         refusal_code::invalid, "end", "future"},
        {"older than the 35-day lookback (start)", none, rec("r", storage, 1, now - usage_lookback - 1s, now - 10min),
         now, refusal_code::invalid, "start", "35-day lookback"},
        {"a metric not in the policy's usage_metrics", none, rec("r", "messages", 1, t10, t10 + 10min), now,
         refusal_code::invalid, "metric", "not a usage metric"},
        {"a record spanning two cycles names the boundary to split at", none,
         rec("r", storage, 1, t10 + 30min, t10 + 70min), at("2024-01-10 11:30"), refusal_code::invalid, "end",
         "boundary at 2024-01-10T03:00:00Z"},
        {"not billable: Kafka before its deploy (not_deployed)", none,
         rec("r", storage, 1, t10 - 30min, t10 - 10min), now, refusal_code::conflict, "not_billable", "not billable"},
        {"not billable: a stopped Kafka payg instance",
         [&](world& w) { w.must(cmd::stop{}, t10 + 5min); },
         rec("r", storage, 1, t10 + 10min, t10 + 20min), now, refusal_code::conflict, "not_billable", "not billable"},
        {"quantity × rate overflowing int64 is invalid (quantity)", none,
         rec("r", storage, std::numeric_limits<std::int64_t>::max(), t10, t10 + 10min), now, refusal_code::invalid,
         "quantity", "overflows"},
        {"a record id reused with other content is a conflict",
         [&](world& w) { w.must(rec("r", storage, 5, t10, t10 + 10min), now - 5min); },
         rec("r", storage, 6, t10, t10 + 10min), now, refusal_code::conflict, "record_id_reused", "another"},
        {"an empty record id is invalid", none, rec("", storage, 1, t10, t10 + 10min), now, refusal_code::invalid,
         "record_id", "printable"},
        {"a record id with a control character is invalid", none, rec("a\nb", storage, 1, t10, t10 + 10min), now,
         refusal_code::invalid, "record_id", "printable"},
        {"a record id of 129 characters is invalid", none, rec(std::string(129, 'x'), storage, 1, t10, t10 + 10min),
         now, refusal_code::invalid, "record_id", "128"},
    };
    for (const auto& r : rows) {
        SECTION(r.rule) {
            auto w = kafka();
            r.setup(w);
            w.advance_to(r.when);
            const auto before = w.driver.log.size();
            const auto d = w.run(r.record, r.when);
            INFO(r.rule);
            REQUIRE_FALSE(d.ok());
            CHECK(d.refused->code == r.code);
            CHECK((r.code == refusal_code::invalid ? d.refused->field : d.refused->reason) == r.field_or_reason);
            INFO(d.refused->message);
            CHECK(d.refused->message.find(r.mentions) != std::string::npos);
            CHECK(w.driver.log.size() == before);
            verified(w);
        }
    }
}

TEST_CASE("usage refusals: a price without a per-unit rate for the metric is 422 metric (decision: invalid, not "
          "conflict), the unbilled usage of the next bill must stay representable (quantity)",
          "[usage]") {
    const auto t10 = at("2024-01-10 10:00");
    {
        auto w = kafka({});
        const auto d = w.run(rec("r", storage, 1, t10, t10 + 10min), t10 + 20min);
        REQUIRE_FALSE(d.ok());
        CHECK(d.refused->code == refusal_code::invalid);
        CHECK(d.refused->field == "metric");
        CHECK(d.refused->message.find("no per-unit rate") != std::string::npos);
    }
    {
        auto w = kafka({{storage, 1}});
        const auto half = std::numeric_limits<std::int64_t>::max() / 2;
        w.must(rec("a", storage, half, t10, t10 + 10min), t10 + 20min);
        const auto d = w.run(rec("b", storage, half, t10 + 10min, t10 + 20min), t10 + 25min);
        REQUIRE_FALSE(d.ok());
        CHECK(d.refused->field == "quantity");
        CHECK(d.refused->message.find("next bill would overflow") != std::string::npos);
        // The first one is billed, with the flat part, and the balance goes negative exactly.
        w.advance_to(at("2024-01-10 11:00"));
        const auto bills = w.of<events::settled>();
        REQUIRE(bills.size() == 1);
        CHECK(bill(bills[0]).amount == 120 + half);
        CHECK(w.acct.balance == 1000000 - 120 - half);
        verified(w);
    }
}

TEST_CASE("usage: per-unit rates of a price are checked at purchase, import and change-config: only the policy's "
          "metrics, never negative (field price.per_unit.METRIC)",
          "[usage]") {
    world w;
    w.now = at("2024-01-10 09:00");
    w.open(100000);
    const auto buy = [&](product p, billing b, price rate, std::optional<instance_config> config = std::nullopt) {
        return w.run(cmd::purchase{"i-1", "acc-1", p, b, "", std::move(rate), b == billing::subscription ? 1 : 0,
                                   std::move(config), {}},
                     at("2024-01-10 09:30"));
    };
    auto d = buy(product::kafka, billing::payg, priced(price::unit::hourly, 120, {{"messages", 1}}));
    REQUIRE_FALSE(d.ok());
    CHECK(d.refused->field == "price.per_unit.messages");
    d = buy(product::kafka, billing::payg, priced(price::unit::hourly, 120, {{storage, -1}}));
    REQUIRE_FALSE(d.ok());
    CHECK(d.refused->field == "price.per_unit.storage_gb_hours");
    d = buy(product::kafka, billing::subscription, priced(price::unit::monthly, 3000, {{storage, 1}}));
    REQUIRE_FALSE(d.ok());
    CHECK(d.refused->field == "price.per_unit.storage_gb_hours");
    d = buy(product::rabbitmq, billing::payg, priced(price::unit::hourly, 10, {{storage, 1}}));
    REQUIRE_FALSE(d.ok());
    CHECK(d.refused->field == "price.per_unit.storage_gb_hours");
    const auto imp = w.run(cmd::import_instance{{"i-1", "acc-1", product::mqtt, billing::payg, "",
                                                 priced(price::unit::daily, 900, {{storage, 1}}), 0, {}, {}},
                                                state::running, at("2024-01-01 00:00"), {}, {}, 0},
                           at("2024-01-10 09:30"));
    REQUIRE_FALSE(imp.ok());
    CHECK(imp.refused->field == "price.per_unit.storage_gb_hours");
    // RocketMQ: accepted with storage, then a change-config may change the rate but not add another metric.
    const instance_config cfg{"standard", "cluster", 1000, false, 0};
    REQUIRE(buy(product::rocketmq, billing::payg, priced(price::unit::hourly, 500, {{storage, 4}}), cfg).ok());
    const auto bigger = instance_config{"professional", "cluster", 2000, false, 0};
    const auto bad = w.run(cmd::change_config{bigger, priced(price::unit::hourly, 700, {{"messages", 1}})},
                           at("2024-01-10 09:40"));
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.refused->field == "price.per_unit.messages");
    verified(w);
}

TEST_CASE("usage: a repeat of a record id with the same content is a duplicate: accepted, nothing written, also "
          "after the record was billed (issue 15, duplicates)",
          "[usage]") {
    auto w = kafka();
    const auto t10 = at("2024-01-10 10:00");
    const auto r = rec("r-1", storage, 50, t10, t10 + 30min);
    w.must(r, t10 + 35min);
    REQUIRE(w.of<events::usage_recorded>().size() == 1);
    const auto size = w.driver.log.size();
    const auto again = w.run(r, t10 + 40min);
    REQUIRE(again.ok());
    CHECK(again.events.empty());
    CHECK(w.driver.log.size() == size);
    CHECK(w.inst.usage_pending.size() == 1);
    w.advance_to(at("2024-01-10 12:30"));
    CHECK(w.inst.usage_pending.empty());
    const auto size2 = w.driver.log.size();
    const auto after_bill = w.run(r, at("2024-01-10 12:30"));
    REQUIRE(after_bill.ok());
    CHECK(w.driver.log.size() == size2);
    CHECK(w.of<events::usage_recorded>().size() == 1);
    verified(w);
}

TEST_CASE("usage settlement: the cycle's bill is flat + every record of the cycle, itemised with quantity, rate, "
          "amount and the cycle, the account is charged the total (issue 15, settlement)",
          "[usage]") {
    auto w = kafka({{storage, 3}});
    const auto t10 = at("2024-01-10 10:00");
    w.must(rec("a", storage, 100, t10, t10 + 30min), t10 + 31min);
    w.must(rec("b", storage, 7, t10 + 30min, t10 + 55min), t10 + 58min);
    // This hour's record waits for its own cycle.
    w.must(rec("c", storage, 10, t10 + 60min, t10 + 61min), t10 + 62min);
    const auto recorded = w.of<events::usage_recorded>();
    REQUIRE(recorded.size() == 3);
    CHECK(recorded[0].effective_at == t10 + 31min);
    CHECK(std::get<events::usage_recorded>(recorded[0].data) ==
          events::usage_recorded{"a", storage, 100, t10, t10 + 30min, 3});
    const auto bills = w.of<events::settled>();
    REQUIRE(bills.size() == 1);
    const auto& b = bill(bills[0]);
    CHECK(bills[0].effective_at == t10 + 1h);
    CHECK(b.cycle_start == t10);
    CHECK(b.flat == 120);
    REQUIRE(b.usage.size() == 2);
    CHECK(b.usage[0] == events::usage_item{"a", storage, 100, 3, 300, t10, t10 + 1h});
    CHECK(b.usage[1] == events::usage_item{"b", storage, 7, 3, 21, t10, t10 + 1h});
    CHECK(b.amount == 120 + 300 + 21);
    const auto charges = w.of<events::charged>();
    REQUIRE_FALSE(charges.empty());
    CHECK(std::get<events::charged>(charges.back().data).amount == 441);
    CHECK(w.inst.usage_pending.size() == 1);
    CHECK(w.inst.billed_total == 441);
    w.advance_to(t10 + 2h);
    const auto& next = bill(w.of<events::settled>().at(1));
    CHECK(next.flat == 120);
    REQUIRE(next.usage.size() == 1);
    CHECK(next.usage[0].record_id == "c");
    CHECK(next.amount == 150);
    CHECK(w.acct.balance == 1000000 - 441 - 150);
    verified(w);
}

TEST_CASE("usage: a record overlapping billable time is accepted (decision: refused only when the instance was "
          "billable at no instant of it), at the rate in force at its first billable instant",
          "[usage]") {
    auto w = kafka({{storage, 2}});
    const auto t10 = at("2024-01-10 10:00");
    w.must(cmd::stop{}, t10 + 30min);
    // Running until 10:30: a record reaching past the stop is accepted, one after it is not.
    w.must(rec("b", storage, 10, t10 + 20min, t10 + 50min), t10 + 55min);
    const auto after = w.run(rec("c", storage, 10, t10 + 35min, t10 + 50min), t10 + 55min);
    REQUIRE_FALSE(after.ok());
    CHECK(after.refused->reason == "not_billable");
    w.advance_to(t10 + 1h);
    const auto& b = bill(w.of<events::settled>().at(0));
    CHECK(b.flat == 60);
    REQUIRE(b.usage.size() == 1);
    CHECK(b.amount == 60 + 20);
    verified(w);
}

TEST_CASE("usage: the rate is the per-unit rate in force then: a RocketMQ change-config changes it for later usage, "
          "not for usage before it",
          "[usage]") {
    world w;
    w.now = at("2024-01-10 09:00");
    w.open(1000000);
    const instance_config cfg{"standard", "cluster", 1000, false, 0};
    w.instance_id = "r-1";
    w.must(cmd::purchase{"r-1", "acc-1", product::rocketmq, billing::payg, "",
                         priced(price::unit::hourly, 500, {{storage, 4}}), 0, cfg, {}},
           at("2024-01-10 10:00"));
    w.must(cmd::change_config{instance_config{"professional", "cluster", 2000, false, 0},
                              priced(price::unit::hourly, 700, {{storage, 9}})},
           at("2024-01-10 10:30"));
    const auto t10 = at("2024-01-10 10:00");
    w.must(rec("before", storage, 10, t10, t10 + 30min), t10 + 40min);
    w.must(rec("after", storage, 10, t10 + 30min, t10 + 40min), t10 + 45min);
    const auto recorded = w.of<events::usage_recorded>();
    REQUIRE(recorded.size() == 2);
    CHECK(std::get<events::usage_recorded>(recorded[0].data).rate == 4);
    CHECK(std::get<events::usage_recorded>(recorded[1].data).rate == 9);
    w.advance_to(t10 + 1h);
    const auto& b = bill(w.of<events::settled>().at(0));
    CHECK(b.flat == 600);   // 500 for half an hour, 700 for the other half
    CHECK(b.amount == 600 + 40 + 90);
    verified(w);
}

TEST_CASE("usage recorded late (its cycle already settled) goes into the next settlement, its item naming its own "
          "cycle (issue 15, late usage)",
          "[usage]") {
    auto w = kafka({{storage, 2}});
    const auto t10 = at("2024-01-10 10:00");
    w.advance_to(t10 + 90min);   // [10, 11) is settled at 11:00
    REQUIRE(w.of<events::settled>().size() == 1);
    const auto r = w.run(rec("late", storage, 30, t10, t10 + 30min), t10 + 90min);
    REQUIRE(r.ok());
    w.advance_to(t10 + 2h);
    const auto bills = w.of<events::settled>();
    REQUIRE(bills.size() == 2);
    const auto& b = bill(bills[1]);
    CHECK(b.cycle_start == t10 + 1h);
    CHECK(b.flat == 120);
    REQUIRE(b.usage.size() == 1);
    CHECK(b.usage[0] == events::usage_item{"late", storage, 30, 2, 60, t10, t10 + 1h});
    CHECK(b.amount == 180);
    verified(w);
}

TEST_CASE("usage recorded late for an instance no longer billable is still billed: the settlement of the cycle it "
          "was recorded in, flat 0, is due at that cycle's end (decision, issue 15)",
          "[usage]") {
    auto w = kafka({{storage, 2}});
    const auto t10 = at("2024-01-10 10:00");
    w.must(cmd::stop{}, t10 + 30min);
    w.advance_to(t10 + 2h + 15min);
    REQUIRE(w.of<events::settled>().size() == 1);   // [10, 11): half an hour
    CHECK_FALSE(w.due(timer_kind::settlement));
    w.must(rec("late", storage, 30, t10, t10 + 30min), t10 + 2h + 15min);
    CHECK(w.due(timer_kind::settlement) == t10 + 3h);
    CHECK(view_deadlines(w.inst, w.pol()).next_settlement_at == t10 + 3h);
    w.advance_to(t10 + 3h);
    const auto bills = w.of<events::settled>();
    REQUIRE(bills.size() == 2);
    const auto& b = bill(bills[1]);
    CHECK(b.cycle_start == t10 + 2h);
    CHECK(b.cycle_end == t10 + 3h);
    CHECK(b.flat == 0);
    REQUIRE(b.usage.size() == 1);
    CHECK(b.usage[0].cycle_start == t10);
    CHECK(b.amount == 60);
    CHECK(std::get<events::charged>(w.of<events::charged>().back().data).amount == 60);
    CHECK_FALSE(w.due(timer_kind::settlement));
    verified(w);
}

TEST_CASE("usage recorded late after the release (K: stopped → released 08:00 on the third day) is billed by a "
          "settlement of the released instance (decision)",
          "[usage]") {
    auto w = kafka({{storage, 2}});
    const auto t10 = at("2024-01-10 10:00");
    w.must(cmd::stop{}, t10 + 30min);
    w.advance_to(at("2024-01-12 09:00"));
    REQUIRE(w.inst.current == state::released);
    w.must(rec("late", storage, 5, t10 + 10min, t10 + 20min), at("2024-01-12 09:10"));
    CHECK(w.due(timer_kind::settlement) == at("2024-01-12 10:00"));
    w.advance_to(at("2024-01-12 10:00"));
    const auto& b = bill(w.of<events::settled>().back());
    CHECK(b.flat == 0);
    CHECK(b.amount == 10);
    CHECK(w.inst.current == state::released);
    CHECK(deadlines(w.inst, w.pol()).empty());
    verified(w);
}

TEST_CASE("usage: the final bill of a force deletion bills the pending usage (K: the final bill at the next "
          "settlement time)",
          "[usage]") {
    auto w = kafka({{storage, 2}});
    const auto t10 = at("2024-01-10 10:00");
    w.must(cmd::stop{}, t10 + 30min);
    w.must(rec("u", storage, 5, t10, t10 + 20min), t10 + 40min);
    w.must(cmd::force_delete{}, t10 + 45min);
    w.advance_to(t10 + 1h);
    CHECK(w.inst.current == state::released);
    const auto& b = bill(w.of<events::settled>().back());
    CHECK(b.flat == 60);
    CHECK(b.amount == 70);
    CHECK(w.inst.usage_pending.empty());
    verified(w);
}

TEST_CASE("usage: MQTT pay-as-you-go bills a local day's usage with the day, 9 hours after it ends, in a DST zone "
          "(M: the next day measures the previous day's usage, a 23-hour day is one cycle)",
          "[usage]") {
    const auto ny = "America/New_York";
    auto w = mqtt(ny, at("2024-03-09 00:00", ny));
    const auto day = at("2024-03-10 00:00", ny);       // spring forward: 23 hours
    const auto next_day = at("2024-03-11 00:00", ny);
    REQUIRE(next_day - day == 23h);
    // A record across the local midnight is refused, naming the boundary.
    const auto across = w.run(rec("x", "messages", 1, day + 12h, next_day + 1h), next_day + 2h);
    REQUIRE_FALSE(across.ok());
    CHECK(across.refused->field == "end");
    CHECK(across.refused->message.find(codec::format_time(next_day)) != std::string::npos);
    // The whole (short) day in one record, recorded the next morning before the bill.
    w.must(rec("d-10", "messages", 1000, day, next_day), next_day + 5h);
    CHECK(w.due(timer_kind::settlement) == next_day + 9h);
    w.advance_to(next_day + 9h);
    const auto bills = w.of<events::settled>();
    REQUIRE(bills.size() == 2);   // the 9th and the 10th
    const auto& b = bill(bills[1]);
    CHECK(bills[1].effective_at == at("2024-03-11 09:00", ny));
    CHECK(b.cycle_start == day);
    CHECK(b.cycle_end == next_day);
    CHECK(b.flat == 900);
    REQUIRE(b.usage.size() == 1);
    CHECK(b.usage[0] == events::usage_item{"d-10", "messages", 1000, 3, 3000, day, next_day});
    CHECK(b.amount == 3900);
    verified(w);
}

TEST_CASE("usage: MQTT late usage (a day already billed) goes into the next day's bill, usage in the 24 h overdue "
          "grace is billable (M: payg runs normally in grace)",
          "[usage]") {
    auto w = mqtt("Asia/Shanghai", at("2024-01-08 00:00"), 1000);
    // The 8th is billed 09:00 on the 9th (900 leaves 100); the 9th at 09:00 on the 10th leaves the
    // account owing: expired (grace, still billable) from then.
    w.advance_to(at("2024-01-10 09:00"));
    REQUIRE(w.inst.current == state::expired);
    // In grace, recorded for the grace itself: accepted.
    w.must(rec("grace", "messages", 10, at("2024-01-10 09:00"), at("2024-01-10 10:00")), at("2024-01-10 11:00"));
    // The 8th was billed already: late, billed with the 10th.
    w.must(rec("late", "messages", 20, at("2024-01-08 01:00"), at("2024-01-08 02:00")), at("2024-01-10 11:05"));
    w.advance_to(at("2024-01-11 09:00"));
    const auto& b = bill(w.of<events::settled>().back());
    CHECK(b.cycle_start == at("2024-01-10 00:00"));
    REQUIRE(b.usage.size() == 2);
    CHECK(b.usage[0].record_id == "grace");
    CHECK(b.usage[1] == events::usage_item{"late", "messages", 20, 3, 60, at("2024-01-08 00:00"), at("2024-01-09 00:00")});
    CHECK(b.amount == b.flat + 30 + 60);
    // Suspended (not billable) from 09:00 on the 11th.
    w.advance_to(at("2024-01-11 10:00"));
    REQUIRE(w.inst.current == state::suspended);
    const auto d = w.run(rec("susp", "messages", 1, at("2024-01-11 09:10"), at("2024-01-11 09:50")), at("2024-01-11 10:00"));
    REQUIRE_FALSE(d.ok());
    CHECK(d.refused->reason == "not_billable");
    verified(w);
}

TEST_CASE("usage bounds: record ids are remembered within the 35-day lookback and forgotten after it, the billing "
          "history is kept back to it (state stays bounded)",
          "[usage]") {
    auto w = kafka({{storage, 1}});
    const auto t10 = at("2024-01-10 10:00");
    w.must(rec("old", storage, 1, t10, t10 + 10min), t10 + 20min);
    CHECK(w.inst.usage_seen.count("old") == 1);
    // A record 36 days later: the first record's start is beyond the lookback, its id is forgotten.
    const auto later = t10 + std::chrono::days{36};
    w.must(rec("new", storage, 1, later, later + 10min), later + 20min);
    CHECK(w.inst.usage_seen.count("old") == 0);
    CHECK(w.inst.usage_seen.count("new") == 1);
    // A repeat of the old record is too old to be billed (not a duplicate answer: nothing remembers it).
    const auto d = w.run(rec("old", storage, 1, t10, t10 + 10min), later + 30min);
    REQUIRE_FALSE(d.ok());
    CHECK(d.refused->field == "start");
    // The id may be used again for a new record.
    w.must(rec("old", storage, 2, later + 10min, later + 20min), later + 30min);
    // The marks reach back no further than the lookback (the deploy's mark moved to it).
    REQUIRE_FALSE(w.inst.marks.empty());
    CHECK(w.inst.marks.front().at >= later - usage_lookback);
    verified(w);
}

TEST_CASE("usage: the core's state round-trips its usage through evolve alone (pending until settled, seen ids)",
          "[usage]") {
    instance_state s;
    const auto t = utc("2024-01-01 10:00");
    events::purchased p;
    p.prod = product::kafka;
    p.bill = billing::payg;
    p.rate = priced(price::unit::hourly, 60, {{storage, 2}});
    s = evolve(s, p, t);
    s = evolve(s, events::deployed{}, t);
    REQUIRE(s.marks.size() == 1);
    CHECK(s.marks[0].per_unit == std::map<std::string, money>{{storage, 2}});
    s = evolve(s, events::usage_recorded{"a", storage, 5, t, t + 10min, 2}, t + 20min);
    s = evolve(s, events::usage_recorded{"b", storage, 5, t + 1h, t + 70min, 2}, t + 80min);
    REQUIRE(s.usage_pending.size() == 2);
    CHECK(s.usage_pending[0].recorded_at == t + 20min);
    events::settled st{t, t + 1h, 70, 60, {events::usage_item{"a", storage, 5, 2, 10, t, t + 1h}}};
    s = evolve(s, st, t + 1h);
    REQUIRE(s.usage_pending.size() == 1);
    CHECK(s.usage_pending[0].record_id == "b");
    CHECK(s.usage_seen.size() == 2);
    CHECK(s.billed_total == 70);
    // Pending "b" makes its own cycle due.
    const auto c = next_unsettled_cycle(s, policy_set::defaults().get(product::kafka, billing::payg));
    REQUIRE(c);
    CHECK(c->start == t + 1h);
}
