// Units of work (ledger/unit.h) and their replay (ledger/replay.h), example by example. The
// generated fleets of unit_property_test.cpp check the same properties at random.
#include "tests/support/fleet.h"

#include "ledger/codec.h"
#include "ledger/local_time.h"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <catch2/catch.hpp>

using namespace mqledger;
using namespace std::chrono_literals;
namespace cmd = mqledger::commands;
namespace ev = mqledger::events;

namespace {

time_point utc(std::string_view text) { return parse_local(text, find_zone("UTC")); }

cmd::purchase payg(std::string id, money hourly, product p = product::kafka) {
    cmd::purchase c;
    c.instance_id = std::move(id);
    c.account_id = "acc-1";
    c.prod = p;
    c.bill = billing::payg;
    c.timezone = "Asia/Shanghai";
    c.rate = price{price::unit::hourly, hourly};
    if (p == product::rocketmq) c.config = instance_config{"standard", "cluster", 1000, false, 0};
    return c;
}

void must(test::fleet& f, const unit_command& c, time_point at) {
    const auto o = f.run(c, at);
    if (!o.ok()) FAIL("refused: " << o.refused->message);
}

void open(test::fleet& f, money funds, time_point at) {
    must(f, account_command{"acc-1", cmd::open_account{"CNY"}}, at);
    if (funds > 0) must(f, account_command{"acc-1", cmd::add_funds{funds, "seed"}}, at);
}

std::vector<std::string> types(const std::vector<pending_event>& events) {
    std::vector<std::string> out;
    for (const auto& e : events) out.emplace_back(ev::type_name(e.data));
    return out;
}

template <typename E>
std::vector<pending_event> of(const test::fleet& f) {
    std::vector<pending_event> out;
    for (const auto& u : f.log)
        for (const auto& e : u.events)
            if (std::holds_alternative<E>(e.data)) out.push_back(e);
    return out;
}

// The scenario of issue 12: one account, a RabbitMQ subscription in Asia/Kolkata (UTC+05:30)
// whose auto-renewal attempt is at 03:00 local on 2025-03-03 = 2025-03-02T21:30Z, and a Kafka
// payg instance running from 21:00Z whose first hourly bill is at 22:00Z. The balance covers the
// renewal only if the renewal is decided before the bill.
test::fleet renewal_before_bill() {
    test::fleet f;
    open(f, 1050, utc("2025-03-01 00:00"));
    cmd::import_instance r;
    r.details.instance_id = "r-1";
    r.details.account_id = "acc-1";
    r.details.prod = product::rabbitmq;
    r.details.bill = billing::subscription;
    r.details.timezone = "Asia/Kolkata";
    r.details.rate = price{price::unit::monthly, 1000};
    r.details.term_months = 1;
    r.details.auto_renew = auto_renew_setting{true, 7};
    r.in_state = state::running;
    r.state_since = utc("2025-02-10 04:30");
    r.expires_at = utc("2025-03-10 04:30");   // 10:00 in Kolkata
    must(f, instance_command{"r-1", r}, utc("2025-03-01 00:00"));
    must(f, instance_command{"k-1", payg("k-1", 100)}, utc("2025-03-02 20:00"));
    must(f, instance_command{"k-1", cmd::deploy{}}, utc("2025-03-02 21:00"));
    return f;
}

} // namespace

TEST_CASE("units: an account's timers fire merged in due order across its instances, so an auto-renewal at "
          "03:00 Asia/Kolkata (21:30Z) is decided before the 22:00Z hourly bill, late as on time "
          "(RULES.md Time-driven events, R auto-renewal, E hourly settlement)") {
    auto on_time = renewal_before_bill();
    auto late = renewal_before_bill();
    on_time.fire_until(utc("2025-03-02 23:00"));
    // Late: nothing fired until a command on the account comes at 23:00Z.
    must(late, instance_command{"r-1", cmd::create_topic{"orders"}}, utc("2025-03-02 23:00"));

    for (auto* f : {&on_time, &late}) {
        const auto renewed = of<ev::renewed>(*f);
        REQUIRE(renewed.size() == 1);
        CHECK(renewed[0].effective_at == utc("2025-03-02 21:30"));
        CHECK(of<ev::auto_renew_failed>(*f).empty());
        // The bill then leaves the account owing 50, which starts k-1's overdue path at 22:00Z.
        const auto expired = of<ev::expired>(*f);
        REQUIRE(expired.size() == 1);
        CHECK(expired[0].stream == instance_stream("k-1"));
        CHECK(expired[0].effective_at == utc("2025-03-02 22:00"));
        CHECK(f->view.account("acc-1")->balance == -50);
    }
    // The late unit: the renewal, then the bill and its effect, then the command.
    CHECK(types(late.log.back().events) ==
          std::vector<std::string>{"instance.renewed", "account.charged", "instance.settled", "account.charged",
                                   "instance.expired", "instance.topic_created"});
    std::vector<pending_event> a, b;
    for (const auto& u : on_time.log) a.insert(a.end(), u.events.begin(), u.events.end());
    for (const auto& u : late.log) b.insert(b.end(), u.events.begin(), u.events.end());
    a.erase(std::remove_if(a.begin(), a.end(), [](const pending_event& e) { return std::holds_alternative<ev::topic_created>(e.data); }), a.end());
    b.erase(std::remove_if(b.begin(), b.end(), [](const pending_event& e) { return std::holds_alternative<ev::topic_created>(e.data); }), b.end());
    CHECK(a == b);
    const policy_registry registry;
    CHECK_FALSE(on_time.verify(registry));
    CHECK_FALSE(late.verify(registry));
}

TEST_CASE("units: a bill that leaves the account owing starts the overdue path of the account's running payg "
          "instances in the same unit, after their own bills due then (RULES.md Accounts and payments, E)") {
    test::fleet f;
    open(f, 100, utc("2025-01-01 00:00"));
    must(f, instance_command{"a", payg("a", 80, product::rocketmq)}, utc("2025-01-01 09:00"));
    must(f, instance_command{"b", payg("b", 60, product::rocketmq)}, utc("2025-01-01 09:00"));
    must(f, instance_command{"c", payg("c", 10, product::kafka)}, utc("2025-01-01 09:00"));
    must(f, instance_command{"c", cmd::deploy{}}, utc("2025-01-01 09:30"));
    f.fire_until(utc("2025-01-01 10:00"));
    // One unit at 10:00, timers in instance order: a's bill (80) leaves 20; b's (60) leaves -40,
    // which stops b (RocketMQ's overdue state) at once; c's bill (5) is due at the same instant,
    // so it comes before the notice, and leaving the account owing it expires c (Kafka's overdue
    // state). Then the notice reaches a, still running: stopped.
    const auto& u = f.log.back();
    CHECK(types(u.events) == std::vector<std::string>{"instance.settled", "account.charged", "instance.settled",
                                                       "account.charged", "instance.stopped", "instance.settled",
                                                       "account.charged", "instance.expired", "instance.stopped"});
    CHECK(u.events[7].stream == instance_stream("c"));
    CHECK(u.events[8].stream == instance_stream("a"));
    for (const auto& e : u.events) CHECK(e.effective_at == utc("2025-01-01 10:00"));
    CHECK_FALSE(f.verify(policy_registry{}));
}

TEST_CASE("units: a payment that clears the debt restores every instance on an overdue path in its own unit "
          "(RULES.md Accounts and payments, K: add funds within 7 days)") {
    test::fleet f;
    open(f, 100, utc("2025-01-01 00:00"));
    must(f, instance_command{"a", payg("a", 80, product::rocketmq)}, utc("2025-01-01 09:00"));
    must(f, instance_command{"b", payg("b", 60, product::rocketmq)}, utc("2025-01-01 09:00"));
    f.fire_until(utc("2025-01-01 12:00"));
    CHECK(f.view.instance("a").current == state::stopped);
    CHECK(f.view.instance("b").current == state::stopped);
    must(f, account_command{"acc-1", cmd::add_funds{1000, "wire"}}, utc("2025-01-02 12:00"));
    CHECK(types(f.log.back().events) == std::vector<std::string>{"account.funds_added", "instance.restored", "instance.restored"});
    CHECK(f.view.instance("a").current == state::running);
    CHECK(f.view.instance("b").current == state::running);
    CHECK_FALSE(f.verify(policy_registry{}));
}

TEST_CASE("units: an imported instance on its overdue path is restored when the account pays, what it owes is "
          "charged at import (issue 12 (a), seed K: Expired | Add funds | Within 7 days)") {
    const auto now = utc("2025-01-05 00:00");
    cmd::import_instance imp;
    imp.details = payg("m-1", 0);
    imp.details.prod = product::kafka;
    imp.in_state = state::expired;
    imp.state_since = utc("2025-01-03 00:00");
    SECTION("with what it owes: the import makes the account owe it, and paying it off restores") {
        test::fleet f;
        open(f, 0, now);
        imp.owed = 700;
        must(f, instance_command{"m-1", imp}, now);
        CHECK(types(f.log.back().events) == std::vector<std::string>{"instance.imported", "account.charged"});
        const auto& charge = std::get<ev::charged>(f.log.back().events[1].data);
        CHECK(charge == ev::charged{700, "owed", "m-1", ""});
        CHECK(f.view.account("acc-1")->owed() == 700);
        must(f, account_command{"acc-1", cmd::add_funds{500, "part"}}, now + 1h);
        CHECK(f.view.instance("m-1").current == state::expired);   // still owing 200
        must(f, account_command{"acc-1", cmd::add_funds{200, "rest"}}, now + 2h);
        CHECK(f.view.instance("m-1").current == state::running);
        CHECK(types(f.log.back().events) == std::vector<std::string>{"account.funds_added", "instance.restored"});
        CHECK_FALSE(f.verify(policy_registry{}));
    }
    SECTION("without: any payment restores it, since the account owes nothing after it") {
        test::fleet f;
        open(f, 0, now);
        must(f, instance_command{"m-1", imp}, now);
        must(f, account_command{"acc-1", cmd::add_funds{1, "ping"}}, now + 1h);
        CHECK(f.view.instance("m-1").current == state::running);
        CHECK_FALSE(f.verify(policy_registry{}));
    }
    SECTION("after the release deadline, paying does not bring it back") {
        test::fleet f;
        open(f, 0, now);
        imp.owed = 10;
        must(f, instance_command{"m-1", imp}, now);
        f.fire_until(utc("2025-01-10 00:00"));   // expired 01-03 + 7 days
        CHECK(f.view.instance("m-1").current == state::released);
        must(f, account_command{"acc-1", cmd::add_funds{10, "late"}}, utc("2025-01-11 00:00"));
        CHECK(f.view.instance("m-1").current == state::released);
    }
    SECTION("an instance that is not on an overdue path cannot owe") {
        test::fleet f;
        open(f, 0, now);
        imp.in_state = state::running;
        imp.owed = 10;
        const auto o = f.run(instance_command{"m-1", imp}, now);
        REQUIRE_FALSE(o.ok());
        CHECK(o.refused->code == refusal_code::invalid);
        CHECK(o.refused->field == "owed");
    }
}

TEST_CASE("units: a manual charge may not use a reason the ledger's own charges use, so an auditor can tell them "
          "apart (API.md charges)") {
    for (const char* reason : {"purchase", "renewal", "upgrade", "settlement", "owed"}) {
        test::fleet f;
        open(f, 1000, utc("2025-01-01 00:00"));
        const auto o = f.run(account_command{"acc-1", cmd::charge{10, "", reason, ""}}, utc("2025-01-01 01:00"));
        REQUIRE_FALSE(o.ok());
        CHECK(o.refused->field == "reason");
    }
}

TEST_CASE("units: a refused command writes nothing, not even the timers it fired first, the timer service fires "
          "them in their own unit") {
    test::fleet f;
    open(f, 1000, utc("2025-01-01 00:00"));
    must(f, instance_command{"k", payg("k", 10)}, utc("2025-01-01 09:00"));
    must(f, instance_command{"k", cmd::deploy{}}, utc("2025-01-01 09:00"));
    const auto units = f.log.size();
    const auto o = f.run(instance_command{"k", cmd::renew{1}}, utc("2025-01-01 15:00"));   // payg: no renewal
    REQUIRE_FALSE(o.ok());
    CHECK(o.refused->code == refusal_code::invalid_transition);
    CHECK(f.log.size() == units);
    CHECK(f.fire_until(utc("2025-01-01 15:00")) == 6);
}

TEST_CASE("units: a unit is refused unless it is a client command on its target, and timers never fire before "
          "they are due") {
    test::fleet f;
    open(f, 1000, utc("2025-01-01 00:00"));
    const auto t = utc("2025-01-01 01:00");
    CHECK(decide_unit(f.view, instance_command{"k", cmd::tick{}}, t, f.policies).refused->field == "command");
    CHECK(decide_unit(f.view, instance_command{"k", cmd::add_funds{1, ""}}, t, f.policies).refused->field == "command");
    CHECK(decide_unit(f.view, account_command{"acc-1", cmd::deploy{}}, t, f.policies).refused->field == "command");
    CHECK(decide_unit(f.view, instance_command{"k", payg("other", 1)}, t, f.policies).refused->field == "instance_id");
    CHECK(decide_unit(f.view, fire_timers{"acc-1", t + 1s}, t, f.policies).refused->field == "up_to");
}

// ---------------------------------------------------------------- the unit record

TEST_CASE("unit records: every client command round-trips through its JSON, keys in a fixed order") {
    cmd::import_instance imp;
    imp.details = payg("i-1", 120);
    imp.details.auto_renew = auto_renew_setting{true, 9};
    imp.in_state = state::stopped;
    imp.state_since = utc("2025-01-01 00:00");
    imp.overdue_since = utc("2025-01-02 00:00");
    imp.owed = 77;
    const std::vector<unit_command> commands{
        instance_command{"i-1", payg("i-1", 120, product::rocketmq)},
        instance_command{"i-1", imp},
        instance_command{"i-1", cmd::deploy{}},
        instance_command{"i-1", cmd::stop{}},
        instance_command{"i-1", cmd::enable{}},
        instance_command{"i-1", cmd::renew{3}},
        instance_command{"i-1", cmd::unsubscribe{}},
        instance_command{"i-1", cmd::force_delete{}},
        instance_command{"i-1", cmd::remove{}},
        instance_command{"i-1", cmd::change_config{instance_config{"professional", "cluster", 2000, true, 5}, price{price::unit::hourly, 9}}},
        instance_command{"i-1", cmd::set_auto_renew{true, 30}},
        instance_command{"i-1", cmd::create_topic{"orders"}},
        instance_command{"i-1", cmd::delete_topic{"orders"}},
        instance_command{"i-1", cmd::create_group{"g"}},
        instance_command{"i-1", cmd::delete_group{"g"}},
        account_command{"acc-1", cmd::open_account{"CNY"}},
        account_command{"acc-1", cmd::add_funds{100, "wire \"7\""}},
        account_command{"acc-1", cmd::charge{5, "i-1", "usage", "u-1"}},
        fire_timers{"acc-1", utc("2025-01-01 10:00")},
    };
    for (const auto& c : commands) {
        const unit_record u{c, utc("2025-01-01 10:00:00") + 123456us, 3};
        const auto json = encode_unit(u);
        const auto text = boost::json::serialize(json);
        CAPTURE(text);
        std::string error;
        const auto back = decode_unit(boost::json::parse(text), error);
        REQUIRE(back);
        CHECK(*back == u);
        CHECK(boost::json::serialize(encode_unit(*back)) == text);
    }
    CHECK(boost::json::serialize(encode_unit({instance_command{"i-1", cmd::renew{2}}, utc("2025-01-01 10:00"), 2})) ==
          R"({"instance_id":"i-1","command":{"type":"renew","months":2},"at":"2025-01-01T10:00:00Z","events":2})");
}

TEST_CASE("unit records: decoding is strict and names the field") {
    const auto refused = [](std::string_view text) {
        std::string error;
        const auto u = decode_unit(boost::json::parse(text), error);
        CAPTURE(text);
        CHECK_FALSE(u);
        return error;
    };
    CHECK(refused(R"([])").find("not an object") != std::string::npos);
    CHECK(refused(R"({"command":{"type":"deploy"},"at":"2025-01-01T00:00:00Z","events":1})").find("instance_id") != std::string::npos);
    CHECK(refused(R"({"instance_id":"i","command":{"type":"deploy"},"at":"yesterday","events":1})").find("unit.at") != std::string::npos);
    CHECK(refused(R"({"instance_id":"i","command":{"type":"deploy"},"at":"2025-01-01T00:00:00Z","events":0})").find("unit.events") != std::string::npos);
    CHECK(refused(R"({"instance_id":"i","command":{"type":"deploy"},"at":"2025-01-01T00:00:00Z","events":1,"x":1})").find("exactly") != std::string::npos);
    CHECK(refused(R"({"instance_id":"i","command":{"type":"tick"},"at":"2025-01-01T00:00:00Z","events":1})").find("unknown command") != std::string::npos);
    CHECK(refused(R"({"instance_id":"i","command":{"type":"renew","months":"2"},"at":"2025-01-01T00:00:00Z","events":1})").find("unit.command.months") != std::string::npos);
    CHECK(refused(R"({"instance_id":"i","command":{"type":"renew","months":2,"why":1},"at":"2025-01-01T00:00:00Z","events":1})").find("unit.command.why") != std::string::npos);
    CHECK(refused(R"({"account_id":"a","command":{"type":"fire_timers"},"at":"2025-01-01T00:00:00Z","events":1})").find("up_to") != std::string::npos);
}

// ---------------------------------------------------------------- replay

TEST_CASE("replay: each kind of finding names its position (API.md verify)") {
    test::fleet f;
    open(f, 1000, utc("2025-01-01 00:00"));
    must(f, instance_command{"k", payg("k", 10)}, utc("2025-01-01 09:00"));
    must(f, instance_command{"k", cmd::deploy{}}, utc("2025-01-01 09:00"));
    f.fire_until(utc("2025-01-01 12:00"));
    const policy_registry registry;
    const auto log = f.to_log();
    REQUIRE_FALSE(test::fleet::replay_log(registry, log));

    SECTION("an event without a unit record") {
        auto m = log;
        m[4].unit = nullptr;
        const auto bad = test::fleet::replay_log(registry, m);
        REQUIRE(bad);
        CHECK(bad->position == 5);
        CHECK(bad->reason.find("belongs to no unit") != std::string::npos);
    }
    SECTION("a unit written before it was decided") {
        auto m = log;
        m[4].recorded_at = m[4].effective_at - 1s;
        const auto bad = test::fleet::replay_log(registry, m);
        REQUIRE(bad);
        CHECK(bad->position == 5);
        CHECK(bad->reason.find("before its unit was decided") != std::string::npos);
    }
    SECTION("a stream version out of step") {
        auto m = log;
        m.back().stream_version += 1;
        const auto bad = test::fleet::replay_log(registry, m);
        REQUIRE(bad);
        CHECK(bad->position == m.back().position);
        CHECK(bad->reason.find("stream_version") != std::string::npos);
    }
    SECTION("the log ends inside a unit") {
        auto m = log;
        m.pop_back();
        const auto bad = test::fleet::replay_log(registry, m);
        REQUIRE(bad);
        CHECK(bad->position == log.back().position);
        CHECK(bad->reason.find("account.charged") != std::string::npos);
    }
    SECTION("an unknown policy version") {
        auto m = log;
        for (auto& e : m) e.policy = 99;
        const auto bad = test::fleet::replay_log(registry, m);
        REQUIRE(bad);
        CHECK(bad->position == 1);
    }
}

TEST_CASE("units: an outcome names the sets of the account's instances the unit took as complete (due by its "
          "time, each notice it delivered), which the append checks against instances created meanwhile "
          "(RULES.md Time-driven events, Accounts and payments)") {
    test::fleet f;
    open(f, 100, utc("2025-01-01 00:00"));
    must(f, instance_command{"a", payg("a", 80, product::rocketmq)}, utc("2025-01-01 09:00"));
    must(f, instance_command{"b", payg("b", 60, product::rocketmq)}, utc("2025-01-01 09:00"));
    const auto bill = f.run(fire_timers{"acc-1", utc("2025-01-01 10:00")}, utc("2025-01-01 10:00"));
    REQUIRE(bill.ok());
    REQUIRE(bill.sets_read.size() == 1);
    CHECK(bill.sets_read.at("acc-1") == account_sets_read{utc("2025-01-01 10:00"), {account_notice::overdue}});
    const auto pay = f.run(account_command{"acc-1", cmd::add_funds{1000, "wire"}}, utc("2025-01-02 12:00"));
    REQUIRE(pay.ok());
    CHECK(pay.sets_read.at("acc-1") == account_sets_read{utc("2025-01-02 12:00"), {account_notice::paid}});
    const auto topic = f.run(instance_command{"a", cmd::create_topic{"t"}}, utc("2025-01-02 12:10"));
    REQUIRE(topic.ok());
    CHECK(topic.sets_read.at("acc-1") == account_sets_read{utc("2025-01-02 12:10"), {}});
}
