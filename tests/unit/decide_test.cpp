#include "ledger/decide.h"

#include "ledger_test_support.h"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <limits>
#include <set>

using namespace mqledger;
using namespace mqledger::test;
using namespace std::chrono_literals;

namespace {

world make(product p, billing b, money funds, time_point t, money amount, std::int32_t term = 1,
           std::string tz = "Asia/Shanghai") {
    world w;
    w.now = t - 1h;
    w.open(funds);
    w.buy(p, b, t, amount, term, std::move(tz));
    return w;
}

state st(const world& w) { return w.inst.current; }

refusal_code code(const decision& d) { return d.refused ? d.refused->code : refusal_code{}; }

instance_config rmq(std::string edition, std::int64_t tps = 1000, bool internet = false, std::int64_t bw = 0,
                    std::string sub = "cluster") {
    return instance_config{std::move(edition), std::move(sub), tps, internet, bw};
}

} // namespace

// ---------------------------------------------------------------- Kafka (K)

TEST_CASE("kafka: purchase → not_deployed for every billing model, no resources yet") {
    for (auto b : {billing::subscription, billing::payg, billing::serverless}) {
        auto w = make(product::kafka, b, 100000, at("2024-01-10 10:00"), b == billing::subscription ? 30000 : 120);
        CHECK(st(w) == state::not_deployed);
        const auto expected = b == billing::subscription ? std::vector<std::string>{"deploy", "auto-renew"}
                                                         : std::vector<std::string>{"deploy"};
        CHECK(allowed_actions(w.inst, w.pol(), w.now) == expected);
    }
}

TEST_CASE("kafka subscription: purchase charges monthly price × months up-front and expires N calendar months later") {
    auto w = make(product::kafka, billing::subscription, 100000, at("2024-01-31 10:00"), 30000, 1);
    CHECK(w.acct.balance == 70000);
    REQUIRE(w.of<events::charged>().size() == 1);
    CHECK(std::get<events::charged>(w.of<events::charged>()[0].data).reason == "purchase");
    CHECK(w.inst.expires_at == at("2024-02-29 10:00"));
}

TEST_CASE("kafka subscription: purchase without the balance is refused with insufficient_balance and writes nothing") {
    world w;
    w.open(1000);
    const auto d = w.run(cmd::purchase{"i-1", "acc-1", product::kafka, billing::subscription, "", price{price::unit::monthly, 30000}, 2, {}, {}},
                         at("2024-01-10 10:00"));
    REQUIRE_FALSE(d.ok());
    CHECK(d.refused->code == refusal_code::insufficient_balance);
    CHECK(d.refused->balance == 1000);
    CHECK(d.refused->required == 60000);
    CHECK(d.events.empty());
    CHECK_FALSE(w.inst.exists);
}

TEST_CASE("kafka: not_deployed → deploy → running") {
    auto w = make(product::kafka, billing::payg, 1000, at("2024-01-10 10:00"), 120);
    w.must(cmd::deploy{}, at("2024-01-10 10:30"));
    CHECK(st(w) == state::running);
    CHECK(w.inst.state_since == at("2024-01-10 10:30"));
}

TEST_CASE("kafka payg: billing starts when the instance starts running, settled hourly") {
    auto w = make(product::kafka, billing::payg, 10000, at("2024-01-10 10:00"), 120);
    CHECK_FALSE(w.due(timer_kind::settlement));
    w.must(cmd::deploy{}, at("2024-01-10 10:30"));
    CHECK(w.due(timer_kind::settlement) == at("2024-01-10 11:00"));
    w.advance_to(at("2024-01-10 12:00"));
    const auto bills = w.of<events::settled>();
    REQUIRE(bills.size() == 2);
    CHECK(std::get<events::settled>(bills[0].data).amount == 60);
    CHECK(std::get<events::settled>(bills[1].data).amount == 120);
    CHECK(w.acct.balance == 10000 - 180);
}

TEST_CASE("kafka payg: running → stop (manual) → stopped") {
    auto w = make(product::kafka, billing::payg, 10000, at("2023-10-13 09:00"), 120);
    w.must(cmd::deploy{}, at("2023-10-13 09:00"));
    w.must(cmd::stop{}, at("2023-10-13 14:00"));
    CHECK(st(w) == state::stopped);
    CHECK(allowed_actions(w.inst, w.pol(), w.now) == std::vector<std::string>{"enable", "force-delete"});
}

TEST_CASE("kafka payg: stopped 2023-10-13 14:00 is released 2023-10-15 08:00 local") {
    auto w = make(product::kafka, billing::payg, 10000, at("2023-10-13 09:00"), 120);
    w.must(cmd::deploy{}, at("2023-10-13 09:00"));
    w.must(cmd::stop{}, at("2023-10-13 14:00"));
    CHECK(w.due(timer_kind::release) == at("2023-10-15 08:00"));
    w.advance_to(at("2023-10-16 00:00"));
    CHECK(st(w) == state::released);
    CHECK(w.inst.state_since == at("2023-10-15 08:00"));
    CHECK(std::get<events::released>(w.of<events::released>().at(0).data).cause == events::release_cause::deadline);
}

TEST_CASE("kafka payg: stopped 14:00 day 1 can be enabled until 07:59:59 on day 3, not at 08:00") {
    auto w = make(product::kafka, billing::serverless, 10000, at("2023-10-13 09:00"), 120);
    w.must(cmd::deploy{}, at("2023-10-13 09:00"));
    w.must(cmd::stop{}, at("2023-10-13 14:00"));
    auto late = w;
    CHECK(w.run(cmd::enable{}, at("2023-10-15 07:59:59")).ok());
    CHECK(st(w) == state::running);
    // Judged purely: the release deadline has passed even if its timer has not run yet.
    const auto d = decide(late.inst, cmd::enable{}, at("2023-10-15 08:00"), late.context());
    CHECK(code(d) == refusal_code::invalid_transition);
    CHECK(d.refused->allowed_actions.empty());
}

TEST_CASE("kafka subscription: running → renew → running with the term extended and charged") {
    auto w = make(product::kafka, billing::subscription, 100000, at("2024-01-10 10:00"), 30000, 1);
    w.must(cmd::deploy{}, at("2024-01-10 11:00"));
    w.must(cmd::renew{2}, at("2024-01-20 10:00"));
    CHECK(st(w) == state::running);
    CHECK(w.inst.expires_at == at("2024-04-10 10:00"));
    CHECK(w.acct.balance == 100000 - 30000 - 60000);
}

TEST_CASE("kafka subscription: term ends, not renewed → expired") {
    auto w = make(product::kafka, billing::subscription, 100000, at("2024-01-10 10:00"), 30000, 1);
    w.must(cmd::deploy{}, at("2024-01-10 11:00"));
    w.advance_to(at("2024-02-10 10:00"));
    CHECK(st(w) == state::expired);
    CHECK(std::get<events::expired>(w.of<events::expired>().at(0).data).cause == events::expiry_cause::term_ended);
}

TEST_CASE("kafka subscription: running → unsubscribe (by ticket) → expired, released 7 days later") {
    auto w = make(product::kafka, billing::subscription, 100000, at("2024-01-10 10:00"), 30000, 3);
    w.must(cmd::deploy{}, at("2024-01-10 11:00"));
    w.must(cmd::unsubscribe{}, at("2024-01-20 10:00"));
    CHECK(st(w) == state::expired);
    CHECK(std::get<events::expired>(w.of<events::expired>().at(0).data).cause == events::expiry_cause::unsubscribed);
    CHECK(w.due(timer_kind::release) == at("2024-01-27 10:00"));
}

TEST_CASE("kafka payg: running, bill not covered → expired (overdue)") {
    auto w = make(product::kafka, billing::payg, 100, at("2024-01-10 10:00"), 120);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    w.advance_to(at("2024-01-10 11:00"));
    CHECK(st(w) == state::expired);
    CHECK(w.acct.balance == -20);
    CHECK(w.inst.overdue_since == at("2024-01-10 11:00"));
    CHECK(allowed_actions(w.inst, w.pol(), w.now) == std::vector<std::string>{"add-funds", "force-delete"});
}

TEST_CASE("kafka subscription: expired → renew within 7 days → running, the renewed term starting at the old expiry") {
    auto w = make(product::kafka, billing::subscription, 100000, at("2024-01-10 10:00"), 30000, 1);
    w.must(cmd::deploy{}, at("2024-01-10 11:00"));
    w.must(cmd::renew{1}, at("2024-02-15 10:00"));
    CHECK(st(w) == state::running);
    CHECK(w.inst.expires_at == at("2024-03-10 10:00"));
    CHECK(std::get<events::restored>(w.of<events::restored>().at(0).data).cause == "renewed");
}

TEST_CASE("kafka subscription: expired before it was ever deployed, renewed within 7 days → not_deployed (K: only "
          "Deploy leads to Running), the term keeps running, deploy → running") {
    auto w = make(product::kafka, billing::subscription, 100000, at("2024-01-10 10:00"), 30000, 1);
    CHECK_FALSE(w.inst.deployed);
    w.advance_to(at("2024-02-12 10:00"));
    CHECK(st(w) == state::expired);
    w.must(cmd::renew{1}, at("2024-02-12 10:00"));
    CHECK(st(w) == state::not_deployed);
    CHECK(w.inst.state_since == at("2024-02-12 10:00"));
    CHECK(std::get<events::restored>(w.of<events::restored>().at(0).data).cause == "renewed");
    CHECK(w.inst.expires_at == at("2024-03-10 10:00"));
    CHECK(w.acct.balance == 100000 - 60000);
    // Not deployed, with its term running: the expiry applies, no release, Deploy is offered.
    CHECK(w.due(timer_kind::expiry) == at("2024-03-10 10:00"));
    CHECK_FALSE(w.due(timer_kind::release));
    CHECK(allowed_actions(w.inst, w.pol(), w.now) == std::vector<std::string>{"deploy", "auto-renew"});
    CHECK(code(w.run(cmd::create_topic{"t"}, at("2024-02-12 11:00"))) == refusal_code::invalid_transition);
    w.must(cmd::deploy{}, at("2024-02-13 10:00"));
    CHECK(st(w) == state::running);
    CHECK(w.inst.deployed);
    CHECK(w.transitions == std::vector<std::pair<state, state>>{{state::not_deployed, state::expired},
                                                                {state::expired, state::not_deployed},
                                                                {state::not_deployed, state::running}});
    // Once it has run, a renewal after expiry restores running.
    w.advance_to(at("2024-03-11 10:00"));
    CHECK(st(w) == state::expired);
    w.must(cmd::renew{1}, at("2024-03-11 10:00"));
    CHECK(st(w) == state::running);
}

TEST_CASE("kafka subscription: a deployed subscription renewed after expiry → running, never deployed → not_deployed "
          "also when imported (K)") {
    auto w = make(product::kafka, billing::subscription, 100000, at("2024-01-10 10:00"), 30000, 1);
    w.must(cmd::deploy{}, at("2024-01-10 11:00"));
    w.advance_to(at("2024-02-11 10:00"));
    CHECK(st(w) == state::expired);
    w.must(cmd::renew{1}, at("2024-02-11 10:00"));
    CHECK(st(w) == state::running);

    // Imported: `expired` means it ran; `not_deployed` means it never did.
    for (const auto in : {state::expired, state::not_deployed}) {
        world i;
        i.open(100000);
        const cmd::purchase d{"i-1", "acc-1", product::kafka, billing::subscription, "",
                              price{price::unit::monthly, 30000}, 1, {}, {}};
        const auto since = at("2024-02-10 10:00");
        i.must(cmd::import_instance{d, in, since, since, std::nullopt}, at("2024-02-11 10:00"));
        CHECK(i.inst.deployed == (in != state::not_deployed));
        i.advance_to(at("2024-02-11 10:00"));
        CHECK(st(i) == state::expired);   // a not-deployed import past its expiry expires at once
        i.must(cmd::renew{1}, at("2024-02-12 10:00"));
        CHECK(st(i) == (in == state::expired ? state::running : state::not_deployed));
    }
}

TEST_CASE("rabbitmq, rocketmq, mqtt subscriptions: they start running, so a renewal after expiry restores running") {
    for (auto p : {product::rabbitmq, product::rocketmq, product::mqtt}) {
        auto w = make(p, billing::subscription, 100000, at("2024-01-10 10:00"), 30000, 1);
        CHECK(w.inst.deployed);
        w.advance_to(at("2024-02-11 10:00"));
        CHECK(st(w) == state::expired);
        w.must(cmd::renew{1}, at("2024-02-11 10:00"));
        CHECK(st(w) == state::running);
    }
}

TEST_CASE("kafka subscription: renew after the 7 days is refused (released)") {
    auto w = make(product::kafka, billing::subscription, 100000, at("2024-01-10 10:00"), 30000, 1);
    w.must(cmd::deploy{}, at("2024-01-10 11:00"));
    const auto d = w.run(cmd::renew{1}, at("2024-02-17 10:00"));
    CHECK(code(d) == refusal_code::invalid_transition);
    CHECK(st(w) == state::released);
}

TEST_CASE("kafka payg: expired → funds added clearing the owed amount → running within 7 days") {
    auto w = make(product::kafka, billing::payg, 100, at("2024-01-10 10:00"), 120);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    w.advance_to(at("2024-01-10 11:00"));
    REQUIRE(st(w) == state::expired);
    w.must(cmd::add_funds{10, "part"}, at("2024-01-11 10:00"));
    CHECK(st(w) == state::expired);  // still owing
    w.must(cmd::add_funds{1000, "wire"}, at("2024-01-12 10:00"));
    CHECK(st(w) == state::running);
    CHECK(std::get<events::restored>(w.of<events::restored>().at(0).data).cause == "paid");
    CHECK_FALSE(w.inst.overdue_since);
}

TEST_CASE("kafka: expired → 7 days pass → released, for every billing model") {
    for (auto b : {billing::subscription, billing::payg, billing::serverless}) {
        const bool sub = b == billing::subscription;
        auto w = make(product::kafka, b, sub ? 30000 : 100, at("2024-01-10 10:00"), sub ? 30000 : 120, 1);
        w.must(cmd::deploy{}, at("2024-01-10 10:00"));
        w.advance_to(sub ? at("2024-02-10 10:00") : at("2024-01-10 11:00"));
        REQUIRE(st(w) == state::expired);
        const auto since = w.inst.state_since;
        w.advance_to(since + std::chrono::days{7} - 1us);
        CHECK(st(w) == state::expired);
        w.advance_to(since + std::chrono::days{7});
        CHECK(st(w) == state::released);
        CHECK(w.inst.state_since == since + std::chrono::days{7});
    }
}

TEST_CASE("kafka subscription: force delete from expired releases at once") {
    auto w = make(product::kafka, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    w.advance_to(at("2024-02-11 10:00"));
    w.must(cmd::force_delete{}, at("2024-02-11 10:00"));
    CHECK(st(w) == state::released);
    CHECK(std::get<events::released>(w.of<events::released>().at(0).data).cause == events::release_cause::force_delete);
}

TEST_CASE("kafka payg: force delete from stopped releases at the next settlement time with the final bill") {
    auto w = make(product::kafka, billing::payg, 10000, at("2024-01-10 10:00"), 120);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    w.must(cmd::stop{}, at("2024-01-10 12:30"));
    w.must(cmd::force_delete{}, at("2024-01-10 12:40"));
    CHECK(st(w) == state::stopped);
    CHECK(w.inst.force_delete_pending);
    CHECK(w.due(timer_kind::force_delete) == at("2024-01-10 13:00"));
    w.advance_to(at("2024-01-10 13:00"));
    CHECK(st(w) == state::released);
    const auto bills = w.of<events::settled>();
    REQUIRE(bills.size() == 3);
    CHECK(std::get<events::settled>(bills[2].data).amount == 60);
    CHECK(w.acct.balance == 10000 - 300);
}

TEST_CASE("kafka payg: while a force deletion is pending, added funds do not restore and enable/renew are refused") {
    auto w = make(product::kafka, billing::payg, 100, at("2024-01-10 10:00"), 120);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    w.advance_to(at("2024-01-10 11:00"));
    REQUIRE(st(w) == state::expired);
    w.must(cmd::force_delete{}, at("2024-01-10 11:10"));
    w.must(cmd::add_funds{5000, "late"}, at("2024-01-10 11:20"));
    CHECK(st(w) == state::expired);
    CHECK(w.of<events::restored>().empty());
    CHECK(w.run(cmd::force_delete{}, at("2024-01-10 11:30")).refused->reason == "force_deletion_pending");
    w.advance_to(at("2024-01-10 12:00"));
    CHECK(st(w) == state::released);

    auto s = make(product::kafka, billing::payg, 10000, at("2024-01-10 10:00"), 120);
    s.must(cmd::deploy{}, at("2024-01-10 10:00"));
    s.must(cmd::stop{}, at("2024-01-10 10:30"));
    s.must(cmd::force_delete{}, at("2024-01-10 10:40"));
    const auto d = s.run(cmd::enable{}, at("2024-01-10 10:50"));
    CHECK(code(d) == refusal_code::conflict);
    CHECK(d.refused->reason == "force_deletion_pending");
}

TEST_CASE("kafka subscription: renew is refused while a force deletion is pending") {
    world w = make(product::kafka, billing::subscription, 100000, at("2024-01-10 10:00"), 30000, 1);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    w.advance_to(at("2024-02-10 10:00"));
    auto s = w.inst;
    s = evolve(s, events::force_delete_requested{}, at("2024-02-10 11:00"));
    const auto d = decide(s, cmd::renew{1}, at("2024-02-10 11:30"), w.context());
    CHECK(code(d) == refusal_code::conflict);
    CHECK(d.refused->reason == "force_deletion_pending");
}

TEST_CASE("kafka: released → delete → deleted, nothing is accepted after deleted") {
    auto w = make(product::kafka, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    w.advance_to(at("2024-02-20 10:00"));
    REQUIRE(st(w) == state::released);
    w.must(cmd::remove{}, at("2024-02-20 11:00"));
    CHECK(st(w) == state::deleted);
    CHECK(deadlines(w.inst, w.pol()).empty());
    for (const cmd::command& c : {cmd::command{cmd::remove{}}, cmd::command{cmd::renew{1}}, cmd::command{cmd::deploy{}},
                                  cmd::command{cmd::create_topic{"t"}}})
        CHECK(code(w.run(c, at("2024-02-21 10:00"))) == refusal_code::invalid_transition);
}

TEST_CASE("kafka: release deletes topics, groups and configuration and lists what was destroyed") {
    auto w = make(product::kafka, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    w.must(cmd::create_topic{"orders"}, at("2024-01-11 10:00"));
    w.must(cmd::create_group{"billing"}, at("2024-01-11 10:00"));
    w.advance_to(at("2024-02-20 10:00"));
    const auto r = std::get<events::released>(w.of<events::released>().at(0).data);
    CHECK(r.topics == std::vector<std::string>{"orders"});
    CHECK(r.groups == std::vector<std::string>{"billing"});
    CHECK(w.inst.topics.empty());
}

TEST_CASE("rocketmq E: release deletes all metadata: topics, groups and the configuration, each listed in the event") {
    for (auto b : {billing::subscription, billing::payg}) {
        INFO(to_string(b));
        auto w = make(product::rocketmq, b, b == billing::subscription ? 30000 : 100, at("2024-01-10 10:00"),
                      b == billing::subscription ? 30000 : 120, 1);
        const auto config = w.inst.config;
        REQUIRE(config);
        w.must(cmd::create_topic{"orders"}, at("2024-01-10 10:10"));
        w.must(cmd::create_group{"g1"}, at("2024-01-10 10:10"));
        w.advance_to(at("2024-03-01 10:00"));
        REQUIRE(st(w) == state::released);
        const auto r = std::get<events::released>(w.of<events::released>().at(0).data);
        CHECK(r.topics == std::vector<std::string>{"orders"});
        CHECK(r.groups == std::vector<std::string>{"g1"});
        CHECK(r.config == config);
        CHECK_FALSE(w.inst.config);
        CHECK(w.inst.topics.empty());
        CHECK(w.inst.groups.empty());
    }
    // Products without a configuration release none.
    auto k = make(product::kafka, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    k.advance_to(at("2024-03-01 10:00"));
    CHECK_FALSE(std::get<events::released>(k.of<events::released>().at(0).data).config);
}

TEST_CASE("kafka: topic operations need a running instance, duplicates conflict and unknown names are not found") {
    auto w = make(product::kafka, billing::payg, 10000, at("2024-01-10 10:00"), 120);
    CHECK(code(w.run(cmd::create_topic{"t"}, at("2024-01-10 10:01"))) == refusal_code::invalid_transition);
    w.must(cmd::deploy{}, at("2024-01-10 10:02"));
    w.must(cmd::create_topic{"t"}, at("2024-01-10 10:03"));
    CHECK(w.run(cmd::create_topic{"t"}, at("2024-01-10 10:04")).refused->reason == "duplicate_name");
    CHECK(code(w.run(cmd::delete_topic{"nope"}, at("2024-01-10 10:05"))) == refusal_code::not_found);
    CHECK(w.run(cmd::create_group{""}, at("2024-01-10 10:06")).refused->field == "name");
    w.must(cmd::delete_topic{"t"}, at("2024-01-10 10:07"));
    CHECK(w.inst.topics.empty());
}

// ---------------------------------------------------------------- RabbitMQ (R)

TEST_CASE("rabbitmq: starts running at purchase") {
    auto w = make(product::rabbitmq, billing::subscription, 100000, at("2024-01-10 10:00"), 30000, 1);
    CHECK(st(w) == state::running);
}

TEST_CASE("rabbitmq subscription: expired (grace 15 d, cannot run per R) → frozen (retention 15 d) → released") {
    auto w = make(product::rabbitmq, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    w.advance_to(at("2024-02-10 10:00"));
    CHECK(st(w) == state::expired);
    CHECK_FALSE(state_flags(w.inst, w.pol()).service_available);  // R: "cannot run after their subscription expires"
    CHECK(state_flags(w.inst, w.pol()).data_retained);
    CHECK(w.due(timer_kind::grace_end) == at("2024-02-25 10:00"));
    w.advance_to(at("2024-02-25 10:00"));
    CHECK(st(w) == state::frozen);
    CHECK(display_state(w.inst, w.pol()) == "Frozen");
    CHECK_FALSE(state_flags(w.inst, w.pol()).service_available);
    CHECK(state_flags(w.inst, w.pol()).data_retained);
    CHECK(w.due(timer_kind::retention_end) == at("2024-03-11 10:00"));
    w.advance_to(at("2024-03-11 10:00"));
    CHECK(st(w) == state::released);
}

TEST_CASE("rabbitmq subscription: manual renewal in frozen returns to running, the term starts at the old expiry") {
    auto w = make(product::rabbitmq, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    w.advance_to(at("2024-03-01 10:00"));
    REQUIRE(st(w) == state::frozen);
    w.must(cmd::add_funds{100000, "wire"}, at("2024-03-01 10:00"));
    w.must(cmd::renew{2}, at("2024-03-01 10:00"));
    CHECK(st(w) == state::running);
    CHECK(w.inst.expires_at == at("2024-04-10 10:00"));
}

TEST_CASE("rabbitmq subscription: auto-renew first attempt at 03:00 local seven days before expiry renews for the term") {
    world w;
    w.open(100000);
    w.must(cmd::purchase{"i-1", "acc-1", product::rabbitmq, billing::subscription, "", price{price::unit::monthly, 30000},
                         1, {}, auto_renew_setting{true, 7}},
           at("2024-01-20 10:00"));
    CHECK(w.due(timer_kind::auto_renew_attempt) == at("2024-02-13 03:00"));
    w.advance_to(at("2024-02-13 03:00"));
    const auto renewals = w.of<events::renewed>();
    REQUIRE(renewals.size() == 1);
    const auto& r = std::get<events::renewed>(renewals[0].data);
    CHECK(r.automatic);
    CHECK(r.months == 1);
    CHECK(r.expires_at == at("2024-03-20 10:00"));
    CHECK(renewals[0].effective_at == at("2024-02-13 03:00"));
    CHECK(w.due(timer_kind::auto_renew_attempt) == at("2024-03-13 03:00"));
}

TEST_CASE("rabbitmq subscription: a failed auto-renew is retried daily at 03:00 until expiry, each failure an event") {
    world w;
    w.open(30000);
    w.must(cmd::purchase{"i-1", "acc-1", product::rabbitmq, billing::subscription, "", price{price::unit::monthly, 30000},
                         1, {}, auto_renew_setting{true, 7}},
           at("2024-01-20 10:00"));
    w.advance_to(at("2024-02-20 10:00"));
    const auto fails = w.of<events::auto_renew_failed>();
    REQUIRE(fails.size() == 8);  // 13th … 20th at 03:00 (expiry 10:00 on the 20th)
    CHECK(fails.front().effective_at == at("2024-02-13 03:00"));
    CHECK(fails.back().effective_at == at("2024-02-20 03:00"));
    CHECK(std::get<events::auto_renew_failed>(fails[0].data).required == 30000);
    CHECK(std::get<events::auto_renew_failed>(fails[0].data).balance == 0);
    CHECK(st(w) == state::expired);
}

TEST_CASE("rabbitmq subscription: a failed attempt then funds → the next 03:00 attempt succeeds") {
    world w;
    w.open(30000);
    w.must(cmd::purchase{"i-1", "acc-1", product::rabbitmq, billing::subscription, "", price{price::unit::monthly, 30000},
                         1, {}, auto_renew_setting{true, 7}},
           at("2024-01-20 10:00"));
    w.advance_to(at("2024-02-14 12:00"));
    CHECK(w.of<events::auto_renew_failed>().size() == 2);
    w.must(cmd::add_funds{30000, "wire"}, at("2024-02-14 12:00"));
    w.advance_to(at("2024-02-15 03:00"));
    REQUIRE(w.of<events::renewed>().size() == 1);
    CHECK(w.of<events::renewed>()[0].effective_at == at("2024-02-15 03:00"));
    CHECK(w.inst.expires_at == at("2024-03-20 10:00"));
}

TEST_CASE("rabbitmq subscription: auto-renew enabled after the first attempt's time tries at the next 03:00") {
    auto w = make(product::rabbitmq, billing::subscription, 100000, at("2024-01-20 10:00"), 30000, 1);
    CHECK_FALSE(w.due(timer_kind::auto_renew_attempt));
    w.must(cmd::set_auto_renew{true, 7}, at("2024-02-16 15:00"));
    CHECK(w.due(timer_kind::auto_renew_attempt) == at("2024-02-17 03:00"));
    w.must(cmd::set_auto_renew{false, 7}, at("2024-02-16 16:00"));
    CHECK_FALSE(w.due(timer_kind::auto_renew_attempt));
}

TEST_CASE("rabbitmq subscription: the deduction date can be changed per instance") {
    auto w = make(product::rabbitmq, billing::subscription, 100000, at("2024-01-20 10:00"), 30000, 1);
    w.must(cmd::set_auto_renew{true, 3}, at("2024-01-21 10:00"));
    CHECK(w.due(timer_kind::auto_renew_attempt) == at("2024-02-17 03:00"));
    CHECK(w.run(cmd::set_auto_renew{true, 0}, at("2024-01-21 10:00")).refused->field == "days_before");
    CHECK(w.run(cmd::set_auto_renew{true, 40}, at("2024-01-21 10:00")).refused->field == "days_before");
}

TEST_CASE("auto-renew R: days_before accepts any lead shorter than the term, 1 <= days_before < the shortest term "
          "(28 days for 1 month, 59 for 2, 365 for 12) at purchase, import and set_auto_renew") {
    world w;
    w.open(10000000);
    const auto t = at("2024-01-20 10:00");
    const auto buy = [&](std::string id, std::int32_t months, std::int32_t days) {
        return cmd::purchase{std::move(id), "acc-1", product::rabbitmq, billing::subscription, "",
                             price{price::unit::monthly, 1000}, months, {}, auto_renew_setting{true, days}};
    };
    CHECK(w.run(buy("i-1", 1, 28), t).refused->field == "auto_renew");
    CHECK(w.run(buy("i-1", 12, 365), t).refused->field == "auto_renew");
    CHECK(w.run(buy("i-1", 12, 0), t).refused->field == "auto_renew");
    w.must(buy("i-1", 12, 364), t);
    CHECK(w.inst.auto_renew == auto_renew_setting{true, 364});
    // set_auto_renew judges by the instance's term.
    w.must(cmd::set_auto_renew{true, 300}, t + 1h);
    CHECK(w.inst.auto_renew.days_before == 300);
    CHECK(w.run(cmd::set_auto_renew{true, 365}, t + 1h).refused->field == "days_before");
    // A term of 1 month keeps the old bound: 27 is the longest lead (February has 28 days).
    world m;
    m.open(10000000);
    m.must(buy("i-1", 1, 27), t);
    CHECK(m.run(cmd::set_auto_renew{true, 28}, t + 1h).refused->field == "days_before");
    // Import, with the command's term: 2 months allow 58 days, not 59.
    world i;
    i.open(1000);
    auto imp = cmd::import_instance{buy("i-1", 2, 59), state::running, t, t + std::chrono::days{50}, std::nullopt};
    CHECK(i.run(imp, t).refused->field == "auto_renew");
    imp.details.auto_renew = auto_renew_setting{true, 58};
    i.must(imp, t);
    CHECK(i.inst.auto_renew.days_before == 58);
}

TEST_CASE("auto-renew R: the policy key auto_renew_max_days_before still caps the lead when set (no cap by default)") {
    CHECK_FALSE(policy_set::defaults().get(product::rabbitmq, billing::subscription).auto_renew_max_days_before);
    std::string error;
    auto capped = policy_set::defaults().with_overrides(
        boost::json::parse(R"({"rabbitmq/subscription": {"auto_renew_max_days_before": 27}})"), error);
    REQUIRE(capped);
    world w;
    w.policies = *capped;
    w.open(100000);
    w.buy(product::rabbitmq, billing::subscription, at("2024-01-20 10:00"), 1000, 12);
    CHECK(w.run(cmd::set_auto_renew{true, 28}, at("2024-01-21 10:00")).refused->field == "days_before");
    w.must(cmd::set_auto_renew{true, 27}, at("2024-01-21 10:00"));
}

TEST_CASE("auto-renew R: a 12-month term with days_before 300 attempts once a day at 03:00 local from 300 days "
          "before expiry, a success renews and the next attempt is in the next term's window, never at once") {
    world w;
    w.now = at("2024-01-20 09:00");
    w.open(12000);
    w.must(cmd::purchase{"i-1", "acc-1", product::rabbitmq, billing::subscription, "", price{price::unit::monthly, 1000},
                         12, {}, auto_renew_setting{true, 300}},
           at("2024-01-20 10:00"));
    CHECK(w.acct.balance == 0);
    CHECK(w.inst.expires_at == at("2025-01-20 10:00"));
    // 300 days before 2025-01-20 is 2024-03-26.
    CHECK(w.due(timer_kind::auto_renew_attempt) == at("2024-03-26 03:00"));
    w.advance_to(at("2024-03-28 12:00"));
    const auto fails = w.of<events::auto_renew_failed>();
    REQUIRE(fails.size() == 3);
    CHECK(fails[0].effective_at == at("2024-03-26 03:00"));
    CHECK(fails[1].effective_at == at("2024-03-27 03:00"));
    CHECK(fails[2].effective_at == at("2024-03-28 03:00"));
    CHECK(std::get<events::auto_renew_failed>(fails[0].data).required == 12000);

    w.must(cmd::add_funds{12000, "wire"}, at("2024-03-28 12:00"));
    w.advance_to(at("2024-03-29 03:00"));
    const auto renewals = w.of<events::renewed>();
    REQUIRE(renewals.size() == 1);
    CHECK(renewals[0].effective_at == at("2024-03-29 03:00"));
    CHECK(std::get<events::renewed>(renewals[0].data).automatic);
    CHECK(std::get<events::renewed>(renewals[0].data).months == 12);
    CHECK(w.inst.expires_at == at("2026-01-20 10:00"));
    // The next window opens 300 days before the new expiry, not at the next 03:00.
    CHECK(w.due(timer_kind::auto_renew_attempt) == at("2025-03-26 03:00"));
    w.advance_to(at("2025-03-26 02:59"));
    CHECK(w.of<events::auto_renew_failed>().size() == 3);
    CHECK(w.of<events::renewed>().size() == 1);
    // In it, one attempt a day again (the balance is 0: each fails).
    w.advance_to(at("2025-03-27 12:00"));
    REQUIRE(w.of<events::auto_renew_failed>().size() == 5);
    CHECK(w.of<events::auto_renew_failed>()[3].effective_at == at("2025-03-26 03:00"));
    CHECK(w.of<events::auto_renew_failed>()[4].effective_at == at("2025-03-27 03:00"));

    // Never two attempts on one local day, every one at 03:00 local.
    std::set<std::chrono::sys_days> days;
    std::size_t attempts = 0;
    for (const auto& e : w.history) {
        const auto* r = std::get_if<events::renewed>(&e.data);
        if (!std::holds_alternative<events::auto_renew_failed>(e.data) && !(r && r->automatic)) continue;
        ++attempts;
        const auto day = local_day_of(zone("Asia/Shanghai"), e.effective_at);
        CHECK(e.effective_at == local_to_utc(zone("Asia/Shanghai"), day, std::chrono::hours{3}));
        days.insert(day);
    }
    CHECK(attempts == 6);
    CHECK(days.size() == attempts);
}

TEST_CASE("rabbitmq subscription: auto-renewal cannot be changed after expiry") {
    auto w = make(product::rabbitmq, billing::subscription, 30000, at("2024-01-20 10:00"), 30000, 1);
    w.advance_to(at("2024-02-21 10:00"));
    REQUIRE(st(w) == state::expired);
    CHECK(code(w.run(cmd::set_auto_renew{true, 7}, at("2024-02-21 10:00"))) == refusal_code::invalid_transition);
}

TEST_CASE("rabbitmq payg: uncovered bill → expired 15 d → frozen 15 d → released, timed from the overdue moment") {
    auto w = make(product::rabbitmq, billing::payg, 100, at("2024-01-10 10:00"), 120);
    w.advance_to(at("2024-01-10 11:00"));
    CHECK(st(w) == state::expired);
    CHECK(w.inst.overdue_since == at("2024-01-10 11:00"));
    w.advance_to(at("2024-01-25 11:00"));
    CHECK(st(w) == state::frozen);
    w.advance_to(at("2024-02-09 11:00"));
    CHECK(st(w) == state::released);
}

TEST_CASE("rabbitmq payg: paying what is owed restores running from frozen") {
    auto w = make(product::rabbitmq, billing::payg, 100, at("2024-01-10 10:00"), 120);
    w.advance_to(at("2024-01-30 11:00"));
    REQUIRE(st(w) == state::frozen);
    w.must(cmd::add_funds{1000, "wire"}, at("2024-01-30 11:00"));
    CHECK(st(w) == state::running);
}

TEST_CASE("rabbitmq serverless: purchase is refused") {
    world w;
    w.open(1000);
    const auto d = w.run(cmd::purchase{"i-1", "acc-1", product::rabbitmq, billing::serverless, "", price{price::unit::hourly, 1}, 0, {}, {}},
                         at("2024-01-10 10:00"));
    CHECK(code(d) == refusal_code::invalid);
    CHECK(d.refused->field == "billing");
}

// ---------------------------------------------------------------- RocketMQ expiry (E)

TEST_CASE("rocketmq subscription: expired is a 7-day grace period, unavailable, console disabled, then released") {
    auto w = make(product::rocketmq, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    w.must(cmd::create_topic{"orders"}, at("2024-01-11 10:00"));
    w.advance_to(at("2024-02-10 10:00"));
    CHECK(st(w) == state::expired);
    CHECK(display_state(w.inst, w.pol()) == "Grace period");
    CHECK_FALSE(state_flags(w.inst, w.pol()).service_available);
    CHECK_FALSE(state_flags(w.inst, w.pol()).console_api_enabled);
    CHECK(w.inst.topics == std::vector<std::string>{"orders"});
    CHECK(code(w.run(cmd::create_topic{"more"}, at("2024-02-11 10:00"))) == refusal_code::invalid_transition);
    CHECK(code(w.run(cmd::delete_group{"g"}, at("2024-02-11 10:00"))) == refusal_code::invalid_transition);
    w.advance_to(at("2024-02-17 10:00"));
    CHECK(st(w) == state::released);
}

TEST_CASE("rocketmq subscription: renewing within the grace period restores service") {
    auto w = make(product::rocketmq, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    w.advance_to(at("2024-02-12 10:00"));
    w.must(cmd::add_funds{30000, "wire"}, at("2024-02-12 10:00"));
    w.must(cmd::renew{1}, at("2024-02-12 10:00"));
    CHECK(st(w) == state::running);
}

TEST_CASE("rocketmq subscription: runs to its expiry regardless of the account balance") {
    auto w = make(product::rocketmq, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    CHECK(code(w.run(cmd::charge{1, "", "usage", ""}, at("2024-01-11 10:00"))) == refusal_code::insufficient_balance);
    CHECK(st(w) == state::running);
    w.advance_to(at("2024-02-10 09:59"));
    CHECK(st(w) == state::running);
}

TEST_CASE("rocketmq payg: a bill not covered → stopped (console disabled) → released 7 days later") {
    for (auto b : {billing::payg, billing::serverless}) {
        auto w = make(product::rocketmq, b, 100, at("2024-01-10 10:00"), 120);
        w.advance_to(at("2024-01-10 11:00"));
        CHECK(st(w) == state::stopped);
        CHECK_FALSE(state_flags(w.inst, w.pol()).console_api_enabled);
        CHECK(w.due(timer_kind::release) == at("2024-01-17 11:00"));
        w.advance_to(at("2024-01-17 11:00"));
        CHECK(st(w) == state::released);
    }
}

TEST_CASE("rocketmq payg: paying what is owed restores a stopped instance to running") {
    auto w = make(product::rocketmq, billing::payg, 100, at("2024-01-10 10:00"), 120);
    w.advance_to(at("2024-01-12 11:00"));
    REQUIRE(st(w) == state::stopped);
    w.must(cmd::add_funds{20, "exact"}, at("2024-01-12 11:00"));
    CHECK(w.acct.balance == 0);
    CHECK(st(w) == state::running);
}

// ---------------------------------------------------------------- RocketMQ configuration changes (Q)

TEST_CASE("rocketmq Q: subscription/payg edition is upgrade-only") {
    for (auto b : {billing::subscription, billing::payg}) {
        auto w = make(product::rocketmq, b, 1000000, at("2024-01-10 10:00"), b == billing::subscription ? 30000 : 120, 2);
        const auto unit = w.inst.rate.per;
        const auto d = w.run(cmd::change_config{rmq("professional"), price{unit, w.inst.rate.amount * 2}}, at("2024-01-11 10:00"));
        REQUIRE(d.ok());
        CHECK(w.inst.config->edition == "professional");
        const auto back = w.run(cmd::change_config{rmq("standard"), price{unit, w.inst.rate.amount}}, at("2024-01-12 10:00"));
        CHECK(code(back) == refusal_code::invalid);
        CHECK(back.refused->field == "config.edition");
    }
}

TEST_CASE("rocketmq Q: the sub-category never changes") {
    auto w = make(product::rocketmq, billing::payg, 100000, at("2024-01-10 10:00"), 120);
    const auto d = w.run(cmd::change_config{rmq("standard", 1000, false, 0, "standalone"), price{price::unit::hourly, 120}},
                         at("2024-01-11 10:00"));
    CHECK(d.refused->field == "config.sub_category");
}

TEST_CASE("rocketmq Q: compute spec up or down, Internet on/off, bandwidth up or down (subscription/payg)") {
    auto w = make(product::rocketmq, billing::payg, 100000, at("2024-01-10 10:00"), 120);
    auto t = at("2024-01-11 10:00");
    for (const auto& c : {rmq("standard", 2000), rmq("standard", 500), rmq("standard", 500, true, 10),
                          rmq("standard", 500, true, 5), rmq("standard", 500, false, 0)}) {
        CHECK(w.run(cmd::change_config{c, price{price::unit::hourly, 120}}, t).ok());
        t += 10min;
    }
    CHECK(w.inst.config == rmq("standard", 500, false, 0));
}

TEST_CASE("rocketmq Q: serverless changes only standard ↔ professional, both ways, nothing else") {
    auto w = make(product::rocketmq, billing::serverless, 100000, at("2024-01-10 10:00"), 120);
    CHECK(w.run(cmd::change_config{rmq("professional"), price{price::unit::hourly, 200}}, at("2024-01-11 10:00")).ok());
    CHECK(w.run(cmd::change_config{rmq("standard"), price{price::unit::hourly, 120}}, at("2024-01-11 11:00")).ok());
    CHECK(w.run(cmd::change_config{rmq("enterprise_platinum"), price{price::unit::hourly, 900}}, at("2024-01-11 12:00"))
              .refused->field == "config.edition");
    CHECK(w.run(cmd::change_config{rmq("standard", 2000), price{price::unit::hourly, 300}}, at("2024-01-11 12:00"))
              .refused->field == "config.tps");
    CHECK(w.run(cmd::change_config{rmq("standard", 1000, true), price{price::unit::hourly, 300}}, at("2024-01-11 12:00"))
              .refused->field == "config.internet_access");
    CHECK(w.run(cmd::change_config{rmq("standard", 1000, false, 5), price{price::unit::hourly, 300}}, at("2024-01-11 12:00"))
              .refused->field == "config.bandwidth_mbps");
}

TEST_CASE("rocketmq Q: a change of nothing is refused") {
    auto w = make(product::rocketmq, billing::payg, 100000, at("2024-01-10 10:00"), 120);
    const auto d = w.run(cmd::change_config{rmq("standard"), price{price::unit::hourly, 150}}, at("2024-01-11 10:00"));
    CHECK(code(d) == refusal_code::invalid);
    CHECK(d.refused->field == "config");
}

TEST_CASE("rocketmq Q seed: 1000 TPS bought for two months, upgraded to 2000 after one month pays one month's difference") {
    auto w = make(product::rocketmq, billing::subscription, 100000, at("2024-01-10 10:00"), 20000, 2);
    CHECK(w.acct.balance == 60000);
    w.must(cmd::change_config{rmq("standard", 2000), price{price::unit::monthly, 35000}}, at("2024-02-10 10:00"));
    const auto e = std::get<events::config_change_started>(w.of<events::config_change_started>().at(0).data);
    CHECK(e.amount == 15000);
    CHECK(w.acct.balance == 45000);
    CHECK(std::get<events::charged>(w.of<events::charged>().back().data).reason == "upgrade");
}

TEST_CASE("rocketmq Q: a subscription downgrade refunds the difference for the remaining time") {
    auto w = make(product::rocketmq, billing::subscription, 100000, at("2024-01-10 10:00"), 20000, 3);
    w.must(cmd::change_config{rmq("standard", 500), price{price::unit::monthly, 10000}}, at("2024-02-10 10:00"));
    REQUIRE(w.of<events::refunded>().size() == 1);
    CHECK(std::get<events::refunded>(w.of<events::refunded>()[0].data).amount == 20000);
    CHECK(w.acct.balance == 100000 - 60000 + 20000);
}

TEST_CASE("rocketmq Q: an upgrade needs the balance to cover the charge") {
    auto w = make(product::rocketmq, billing::subscription, 40000, at("2024-01-10 10:00"), 20000, 2);
    const auto d = w.run(cmd::change_config{rmq("standard", 2000), price{price::unit::monthly, 35000}}, at("2024-02-10 10:00"));
    CHECK(code(d) == refusal_code::insufficient_balance);
    CHECK(d.refused->required == 15000);
    CHECK(d.refused->balance == 0);
    CHECK(w.inst.config->tps == 1000);
}

TEST_CASE("rocketmq Q: pay-as-you-go: no difference, the new rate applies immediately (time-weighted)") {
    auto w = make(product::rocketmq, billing::payg, 100000, at("2024-01-10 10:00"), 100);
    w.must(cmd::change_config{rmq("standard", 2000), price{price::unit::hourly, 200}}, at("2024-01-10 10:30"));
    CHECK(w.of<events::charged>().empty());
    w.advance_to(at("2024-01-10 12:00"));
    const auto bills = w.of<events::settled>();
    REQUIRE(bills.size() == 2);
    CHECK(std::get<events::settled>(bills[0].data).amount == 150);
    CHECK(std::get<events::settled>(bills[1].data).amount == 200);
}

TEST_CASE("rocketmq Q: serverless: the current cycle is charged at the highest rate, the new rate from the next cycle") {
    auto w = make(product::rocketmq, billing::serverless, 100000, at("2024-01-10 10:00"), 200);
    w.must(cmd::change_config{rmq("professional"), price{price::unit::hourly, 100}}, at("2024-01-10 10:30"));
    w.advance_to(at("2024-01-10 12:00"));
    const auto bills = w.of<events::settled>();
    REQUIRE(bills.size() == 2);
    CHECK(std::get<events::settled>(bills[0].data).amount == 200);
    CHECK(std::get<events::settled>(bills[1].data).amount == 100);
}

TEST_CASE("rocketmq Q: a change is in progress for 5 minutes: topic/group operations and another change are refused") {
    auto w = make(product::rocketmq, billing::payg, 100000, at("2024-01-10 10:00"), 100);
    w.must(cmd::change_config{rmq("standard", 2000), price{price::unit::hourly, 200}}, at("2024-01-10 10:30"));
    CHECK(w.due(timer_kind::config_change_completion) == at("2024-01-10 10:35"));
    CHECK(w.run(cmd::create_topic{"t"}, at("2024-01-10 10:31")).refused->reason == "change_in_progress");
    CHECK(w.run(cmd::create_group{"g"}, at("2024-01-10 10:31")).refused->reason == "change_in_progress");
    CHECK(w.run(cmd::change_config{rmq("standard", 3000), price{price::unit::hourly, 300}}, at("2024-01-10 10:34:59"))
              .refused->reason == "change_in_progress");
    CHECK(w.run(cmd::create_topic{"t"}, at("2024-01-10 10:35")).ok());
    CHECK(w.of<events::config_change_completed>().size() == 1);
}

TEST_CASE("rocketmq Q: configuration changes are refused for other products") {
    auto w = make(product::kafka, billing::payg, 100000, at("2024-01-10 10:00"), 100);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    CHECK(code(w.run(cmd::change_config{rmq("professional"), price{price::unit::hourly, 200}}, at("2024-01-10 10:30"))) ==
          refusal_code::invalid_transition);
}

// ---------------------------------------------------------------- MQTT (M)

TEST_CASE("mqtt subscription: expired runs normally 15 days → suspended from day 16 → released after day 30") {
    auto w = make(product::mqtt, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    w.advance_to(at("2024-02-10 10:00"));
    CHECK(st(w) == state::expired);
    CHECK(state_flags(w.inst, w.pol()).service_available);
    CHECK(w.due(timer_kind::suspension) == at("2024-02-25 10:00"));
    w.advance_to(at("2024-02-25 10:00"));
    CHECK(st(w) == state::suspended);
    CHECK(display_state(w.inst, w.pol()) == "Service suspension");
    CHECK_FALSE(state_flags(w.inst, w.pol()).service_available);
    CHECK(state_flags(w.inst, w.pol()).data_retained);
    w.advance_to(at("2024-03-11 09:59"));
    CHECK(st(w) == state::suspended);
    w.advance_to(at("2024-03-11 10:00"));
    CHECK(st(w) == state::released);
}

TEST_CASE("mqtt subscription: renewal during grace or suspension restores running") {
    auto w = make(product::mqtt, billing::subscription, 100000, at("2024-01-10 10:00"), 30000, 1);
    w.advance_to(at("2024-02-28 10:00"));
    REQUIRE(st(w) == state::suspended);
    w.must(cmd::renew{1}, at("2024-02-28 10:00"));
    CHECK(st(w) == state::running);
    CHECK(w.inst.expires_at == at("2024-03-10 10:00"));
}

TEST_CASE("mqtt payg: purchase is refused (no longer sold), import is allowed") {
    world w;
    w.open(10000);
    const auto d = w.run(cmd::purchase{"i-1", "acc-1", product::mqtt, billing::payg, "", price{price::unit::daily, 900}, 0, {}, {}},
                         at("2024-01-10 10:00"));
    CHECK(code(d) == refusal_code::invalid);
    CHECK(d.refused->message.find("no longer sold") != std::string::npos);
    cmd::import_instance imp{{"i-1", "acc-1", product::mqtt, billing::payg, "", price{price::unit::daily, 900}, 0, {}, {}},
                             state::running, at("2023-06-01 10:00"), {}, {}};
    w.must(imp, at("2024-01-10 10:00"));
    CHECK(st(w) == state::running);
}

TEST_CASE("mqtt payg: 24-hour cycles, the bill issued 9 hours after the cycle ends") {
    world w;
    w.open(10000);
    w.must(cmd::import_instance{{"i-1", "acc-1", product::mqtt, billing::payg, "", price{price::unit::daily, 900}, 0, {}, {}},
                                state::running, at("2023-06-01 10:00"), {}, {}},
           at("2024-01-10 00:00"));
    CHECK(w.due(timer_kind::settlement) == at("2024-01-11 09:00"));
    w.advance_to(at("2024-01-12 09:00"));
    const auto bills = w.of<events::settled>();
    REQUIRE(bills.size() == 2);
    CHECK(std::get<events::settled>(bills[0].data).cycle_start == at("2024-01-10 00:00"));
    CHECK(std::get<events::settled>(bills[0].data).cycle_end == at("2024-01-11 00:00"));
    CHECK(std::get<events::settled>(bills[0].data).amount == 900);
    CHECK(bills[0].effective_at == at("2024-01-11 09:00"));
}

TEST_CASE("mqtt payg: uncovered bill → grace 24 h running normally → suspended at hour 25 → released after day 8") {
    world w;
    w.open(500);
    w.must(cmd::import_instance{{"i-1", "acc-1", product::mqtt, billing::payg, "", price{price::unit::daily, 900}, 0, {}, {}},
                                state::running, at("2023-06-01 10:00"), {}, {}},
           at("2024-01-10 00:00"));
    w.advance_to(at("2024-01-11 09:00"));
    CHECK(st(w) == state::expired);
    const auto overdue = at("2024-01-11 09:00");
    CHECK(w.inst.overdue_since == overdue);
    CHECK(state_flags(w.inst, w.pol()).service_available);
    CHECK(w.due(timer_kind::suspension) == overdue + 24h);
    w.advance_to(overdue + 24h);
    CHECK(st(w) == state::suspended);
    CHECK(w.due(timer_kind::release) == overdue + std::chrono::days{8});
    w.advance_to(overdue + std::chrono::days{8});
    CHECK(st(w) == state::released);
    // The grace day was billed (it runs normally).
    CHECK(std::get<events::settled>(w.of<events::settled>().at(1).data).amount == 900);
    CHECK(std::get<events::settled>(w.of<events::settled>().at(2).data).amount == 338);  // 9 of 24 h, half-up
}

TEST_CASE("mqtt payg: paying what is owed during suspension restores running") {
    world w;
    w.open(500);
    w.must(cmd::import_instance{{"i-1", "acc-1", product::mqtt, billing::payg, "", price{price::unit::daily, 900}, 0, {}, {}},
                                state::running, at("2023-06-01 10:00"), {}, {}},
           at("2024-01-10 00:00"));
    w.advance_to(at("2024-01-13 09:00"));
    REQUIRE(st(w) == state::suspended);
    w.must(cmd::add_funds{100000, "wire"}, at("2024-01-13 09:00"));
    CHECK(st(w) == state::running);
}

// ---------------------------------------------------------------- accounts and payments across streams

TEST_CASE("payments: a settlement is charged in full even below zero") {
    auto w = make(product::kafka, billing::payg, 50, at("2024-01-10 10:00"), 120);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    w.advance_to(at("2024-01-10 11:00"));
    CHECK(w.acct.balance == -70);
    CHECK(w.acct.owed() == 70);
    CHECK(std::get<events::charged>(w.of<events::charged>().back().data).reason == "settlement");
}

TEST_CASE("payments: an account going overdue starts the overdue path of a running payg instance") {
    auto w = make(product::rocketmq, billing::payg, 10000, at("2024-01-10 10:00"), 120);
    w.must(cmd::charge{10000, "", "usage", "other bill"}, at("2024-01-10 10:30"));
    CHECK(st(w) == state::running);  // balance 0: not owing
    w.advance_to(at("2024-01-10 11:00"));
    CHECK(st(w) == state::stopped);
    // A notice for an instance that is not running decides nothing.
    auto d = decide(w.inst, cmd::account_overdue{at("2024-01-10 11:00")}, at("2024-01-10 11:00"), w.context());
    CHECK(d.ok());
    CHECK(d.events.empty());
}

TEST_CASE("payments: a notice that the account is overdue moves a running payg instance onto its path") {
    auto w = make(product::kafka, billing::payg, 10000, at("2024-01-10 10:00"), 120);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    auto d = decide(w.inst, cmd::account_overdue{at("2024-01-10 10:20")}, at("2024-01-10 10:20"), w.context());
    REQUIRE(d.ok());
    REQUIRE(d.events.size() == 1);
    CHECK(std::get<events::expired>(d.events[0].data).cause == events::expiry_cause::overdue);
    CHECK(d.events[0].effective_at == at("2024-01-10 10:20"));
}

TEST_CASE("payments: subscription instances are not affected by the account going overdue") {
    auto w = make(product::kafka, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    auto d = decide(w.inst, cmd::account_overdue{at("2024-01-10 10:20")}, at("2024-01-10 10:20"), w.context());
    CHECK(d.ok());
    CHECK(d.events.empty());
}

TEST_CASE("payments: a payg purchase is refused while the account owes") {
    auto w = make(product::kafka, billing::payg, 50, at("2024-01-10 10:00"), 120);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    w.advance_to(at("2024-01-10 11:00"));
    w.instance_id = "i-2";
    const auto d = decide(instance_state{}, cmd::purchase{"i-2", "acc-1", product::kafka, billing::payg, "", price{price::unit::hourly, 1}, 0, {}, {}},
                          at("2024-01-10 11:00"), w.context());
    CHECK(code(d) == refusal_code::insufficient_balance);
}

TEST_CASE("payments: renewal needs the balance to cover price × months") {
    auto w = make(product::rabbitmq, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    const auto d = w.run(cmd::renew{1}, at("2024-01-20 10:00"));
    CHECK(code(d) == refusal_code::insufficient_balance);
    CHECK(d.refused->required == 30000);
}

// ---------------------------------------------------------------- timers

TEST_CASE("timers: a tick made moot by a later event decides nothing") {
    auto w = make(product::kafka, billing::payg, 10000, at("2023-10-13 09:00"), 120);
    w.must(cmd::deploy{}, at("2023-10-13 09:00"));
    w.must(cmd::stop{}, at("2023-10-13 14:00"));
    const auto release = *w.due(timer_kind::release);
    w.must(cmd::enable{}, at("2023-10-14 10:00"));
    const auto d = decide(w.inst, cmd::tick{timer_kind::release, release}, release, w.context());
    CHECK(d.ok());
    CHECK(d.events.empty());
}

TEST_CASE("timers: a tick before its due time is refused") {
    auto w = make(product::kafka, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    const auto d = decide(w.inst, cmd::tick{timer_kind::expiry, at("2024-02-10 10:00")}, at("2024-02-01 10:00"), w.context());
    CHECK(code(d) == refusal_code::invalid);
    CHECK(d.refused->field == "due_at");
}

TEST_CASE("timers: a late tick is effective at its deadline and later deadlines follow from it") {
    auto on_time = make(product::rabbitmq, billing::subscription, 30000, at("2024-01-10 10:00"), 30000, 1);
    auto late = on_time;
    on_time.advance_to(at("2024-03-20 10:00"));
    late.advance_to(at("2024-03-20 10:00"), true);
    CHECK(late.history == on_time.history);
    CHECK(late.inst == on_time.inst);
    CHECK(late.of<events::frozen>().at(0).effective_at == at("2024-02-25 10:00"));
}

TEST_CASE("timers: catching up settlements after downtime gives the same bills as running through") {
    auto on_time = make(product::kafka, billing::payg, 100000, at("2024-01-10 10:00"), 120);
    on_time.must(cmd::deploy{}, at("2024-01-10 10:17"));
    auto late = on_time;
    on_time.advance_to(at("2024-01-11 10:00"));
    late.advance_to(at("2024-01-11 10:00"), true);
    CHECK(late.history == on_time.history);
    CHECK(late.acct == on_time.acct);
    CHECK(on_time.of<events::settled>().size() == 24);
}

TEST_CASE("timers: deadlines are sorted and never before the state began") {
    auto w = make(product::kafka, billing::payg, 10000, at("2023-10-13 09:00"), 120);
    w.must(cmd::deploy{}, at("2023-10-13 09:00"));
    w.must(cmd::stop{}, at("2023-10-13 14:30"));
    w.must(cmd::force_delete{}, at("2023-10-13 14:40"));
    const auto ts = deadlines(w.inst, w.pol());
    for (const auto& x : ts) UNSCOPED_INFO(to_string(x.kind) << " " << x.due_at.time_since_epoch().count());
    REQUIRE(ts.size() == 3);
    CHECK(std::is_sorted(ts.begin(), ts.end(), [](const timer& a, const timer& b) { return a.due_at < b.due_at; }));
    for (const auto& t : ts) CHECK(t.due_at >= w.inst.state_since);
}

// ---------------------------------------------------------------- import

TEST_CASE("import: an instance in any state keeps its facts, deadlines in the past fire at once, effective at the deadline") {
    world w;
    w.open(0);
    cmd::import_instance imp{{"i-1", "acc-1", product::kafka, billing::subscription, "", price{price::unit::monthly, 30000}, 1, {}, {}},
                             state::expired, at("2024-01-01 10:00"), at("2024-01-01 10:00"), {}};
    w.must(imp, at("2024-01-20 10:00"));
    // The release deadline (expired + 7 days) had passed at the import: it fires in the import's
    // own unit of work, effective at the deadline.
    CHECK(st(w) == state::released);
    const auto rel = w.of<events::released>();
    REQUIRE(rel.size() == 1);
    CHECK(rel[0].effective_at == at("2024-01-08 10:00"));
    REQUIRE(w.driver.log.size() == 2);   // [opened], [imported, released]
    CHECK(w.driver.log.back().events.size() == 2);
}

TEST_CASE("import: a frozen RabbitMQ payg instance follows the retention deadline from its state_since") {
    world w;
    w.open(0);
    cmd::import_instance imp{{"i-1", "acc-1", product::rabbitmq, billing::payg, "", price{price::unit::hourly, 10}, 0, {}, {}},
                             state::frozen, at("2024-01-01 10:00"), {}, at("2023-12-17 10:00")};
    w.must(imp, at("2024-01-05 10:00"));
    CHECK(st(w) == state::frozen);
    CHECK(w.inst.overdue_since == at("2023-12-17 10:00"));
    CHECK(w.due(timer_kind::retention_end) == at("2024-01-16 10:00"));
}

TEST_CASE("import: refusals for a state the product has not, a future state_since, a missing expiry") {
    world w;
    w.open(0);
    const auto base = cmd::purchase{"i-1", "acc-1", product::rabbitmq, billing::subscription, "", price{price::unit::monthly, 1}, 1, {}, {}};
    CHECK(w.run(cmd::import_instance{base, state::stopped, at("2024-01-01 10:00"), at("2024-01-01 10:00"), {}}, at("2024-01-05 10:00"))
              .refused->field == "state");
    CHECK(w.run(cmd::import_instance{base, state::running, at("2024-02-01 10:00"), at("2024-03-01 10:00"), {}}, at("2024-01-05 10:00"))
              .refused->field == "state_since");
    CHECK(w.run(cmd::import_instance{base, state::running, at("2024-01-01 10:00"), {}, {}}, at("2024-01-05 10:00"))
              .refused->field == "expires_at");
}

// ---------------------------------------------------------------- validation

TEST_CASE("purchase: field refusals (time zone, price unit, term, configuration, auto-renew)") {
    world w;
    w.open(1000000);
    const auto t = at("2024-01-10 10:00");
    auto p = cmd::purchase{"i-1", "acc-1", product::kafka, billing::subscription, "Mars/Base", price{price::unit::monthly, 1}, 1, {}, {}};
    CHECK(w.run(p, t).refused->field == "timezone");
    p.timezone = "Europe/Berlin";
    p.rate.per = price::unit::hourly;
    CHECK(w.run(p, t).refused->field == "price");
    p.rate = price{price::unit::monthly, -1};
    CHECK(w.run(p, t).refused->field == "price");
    p.rate.amount = 1;
    p.term_months = 0;
    CHECK(w.run(p, t).refused->field == "term_months");
    p.term_months = 61;
    CHECK(w.run(p, t).refused->field == "term_months");
    p.term_months = 1;
    p.auto_renew = auto_renew_setting{true, 99};
    CHECK(w.run(p, t).refused->field == "auto_renew");
    auto r = cmd::purchase{"i-1", "acc-1", product::rocketmq, billing::payg, "", price{price::unit::hourly, 1}, 0, {}, {}};
    CHECK(w.run(r, t).refused->field == "config");
    r.config = rmq("gold");
    CHECK(w.run(r, t).refused->field == "config");
    CHECK(w.run(cmd::purchase{"", "acc-1", product::kafka, billing::payg, "", price{price::unit::hourly, 1}, 0, {}, {}}, t)
              .refused->field == "instance_id");
}

TEST_CASE("purchase: a duplicate id is a conflict and an unknown account is not found") {
    auto w = make(product::kafka, billing::payg, 1000, at("2024-01-10 10:00"), 120);
    const auto again = cmd::purchase{"i-1", "acc-1", product::kafka, billing::payg, "", price{price::unit::hourly, 1}, 0, {}, {}};
    const auto d = w.run(again, at("2024-01-10 11:00"));
    CHECK(code(d) == refusal_code::conflict);
    CHECK(d.refused->reason == "duplicate_id");
    decide_context ctx = w.context();
    ctx.account.reset();
    CHECK(code(decide(instance_state{}, again, at("2024-01-10 11:00"), ctx)) == refusal_code::not_found);
}

TEST_CASE("purchase: the default time zone is Asia/Shanghai") {
    auto w = make(product::kafka, billing::subscription, 100000, at("2024-01-10 10:00"), 1, 1, "");
    CHECK(w.inst.timezone == "Asia/Shanghai");
}

TEST_CASE("commands on an unknown instance are not found, timers for it decide nothing") {
    world w;
    w.open(0);
    CHECK(code(w.run(cmd::deploy{}, at("2024-01-10 10:00"))) == refusal_code::not_found);
    const auto d = decide(instance_state{}, cmd::tick{timer_kind::release, at("2024-01-10 10:00")}, at("2024-01-10 10:00"), w.context());
    CHECK(d.ok());
    CHECK(d.events.empty());
}

TEST_CASE("renew: months out of range, or a renewed term that would already have ended, are invalid") {
    auto w = make(product::rabbitmq, billing::subscription, 1000000, at("2024-01-31 10:00"), 100, 1);
    CHECK(w.run(cmd::renew{0}, at("2024-02-01 10:00")).refused->field == "months");
    CHECK(w.run(cmd::renew{61}, at("2024-02-01 10:00")).refused->field == "months");
    // Expired 02-29, frozen 03-15, renewing one month on 03-29 11:00 would end 03-29 10:00: already past.
    w.advance_to(at("2024-03-29 11:00"));
    REQUIRE(st(w) == state::frozen);
    CHECK(w.run(cmd::renew{1}, at("2024-03-29 11:00")).refused->field == "months");
    CHECK(w.run(cmd::renew{2}, at("2024-03-29 11:00")).ok());
}

// ---------------------------------------------------------------- DST zones

TEST_CASE("dst Europe/Berlin: kafka stopped before the spring change is released 08:00 CEST two days later") {
    auto w = make(product::kafka, billing::payg, 100000, at("2024-03-29 09:00", "Europe/Berlin"), 120, 1, "Europe/Berlin");
    w.must(cmd::deploy{}, at("2024-03-29 09:00", "Europe/Berlin"));
    w.must(cmd::stop{}, at("2024-03-29 14:00", "Europe/Berlin"));
    CHECK(w.due(timer_kind::release) == utc("2024-03-31 06:00"));
    CHECK(w.run(cmd::enable{}, utc("2024-03-31 05:59:59")).ok());
}

TEST_CASE("dst Europe/Berlin: kafka stopped before the autumn change is released 08:00 CET two days later") {
    auto w = make(product::kafka, billing::payg, 100000, at("2024-10-25 09:00", "Europe/Berlin"), 120, 1, "Europe/Berlin");
    w.must(cmd::deploy{}, at("2024-10-25 09:00", "Europe/Berlin"));
    w.must(cmd::stop{}, at("2024-10-25 14:00", "Europe/Berlin"));
    CHECK(w.due(timer_kind::release) == utc("2024-10-27 07:00"));
    w.advance_to(utc("2024-10-27 07:00"));
    CHECK(st(w) == state::released);
}

TEST_CASE("dst America/New_York: kafka stop released 08:00 local across spring and autumn changes") {
    auto w = make(product::kafka, billing::payg, 100000, at("2024-03-08 09:00", "America/New_York"), 120, 1, "America/New_York");
    w.must(cmd::deploy{}, at("2024-03-08 09:00", "America/New_York"));
    w.must(cmd::stop{}, at("2024-03-08 14:00", "America/New_York"));
    CHECK(w.due(timer_kind::release) == utc("2024-03-10 12:00"));  // 08:00 EDT
    auto a = make(product::kafka, billing::payg, 100000, at("2024-11-01 09:00", "America/New_York"), 120, 1, "America/New_York");
    a.must(cmd::deploy{}, at("2024-11-01 09:00", "America/New_York"));
    a.must(cmd::stop{}, at("2024-11-01 14:00", "America/New_York"));
    CHECK(a.due(timer_kind::release) == utc("2024-11-03 13:00"));  // 08:00 EST
}

TEST_CASE("dst Europe/Berlin: rabbitmq auto-renew attempts at 03:00 local on both sides of the spring change") {
    world w;
    w.open(100);
    w.must(cmd::purchase{"i-1", "acc-1", product::rabbitmq, billing::subscription, "Europe/Berlin", price{price::unit::monthly, 100},
                         1, {}, auto_renew_setting{true, 7}},
           at("2024-03-03 10:00", "Europe/Berlin"));
    w.advance_to(at("2024-04-03 10:00", "Europe/Berlin"));
    const auto fails = w.of<events::auto_renew_failed>();
    REQUIRE(fails.size() == 8);  // 27 Mar … 3 Apr
    CHECK(fails[0].effective_at == utc("2024-03-27 02:00"));   // 03:00 CET
    CHECK(fails[4].effective_at == utc("2024-03-31 01:00"));   // 03:00 CEST, the day of the change
    CHECK(fails[7].effective_at == utc("2024-04-03 01:00"));
}

TEST_CASE("dst America/New_York: an auto-renew hour inside the spring gap moves forward to the first existing instant") {
    world w;
    std::string error;
    w.policies = *policy_set::defaults().with_overrides(
        boost::json::parse(R"({"rabbitmq/subscription": {"auto_renew_hour": 2}})"), error);
    w.open(100);
    w.must(cmd::purchase{"i-1", "acc-1", product::rabbitmq, billing::subscription, "America/New_York", price{price::unit::monthly, 100},
                         1, {}, auto_renew_setting{true, 7}},
           at("2024-02-17 10:00", "America/New_York"));
    CHECK(w.due(timer_kind::auto_renew_attempt) == utc("2024-03-10 07:00"));  // 02:00 does not exist: 03:00 EDT
}

TEST_CASE("dst America/New_York: a subscription term keeps the local time across the autumn change") {
    auto w = make(product::mqtt, billing::subscription, 100000, at("2024-10-15 10:00", "America/New_York"), 100, 1, "America/New_York");
    CHECK(w.inst.expires_at == utc("2024-11-15 15:00"));
    w.advance_to(utc("2024-11-15 15:00"));
    CHECK(st(w) == state::expired);
    CHECK(w.due(timer_kind::suspension) == utc("2024-11-30 15:00"));
}

TEST_CASE("dst Europe/Berlin: an MQTT payg day cycle over the autumn change is 25 hours and billed at the daily rate") {
    world w;
    w.open(100000);
    w.must(cmd::import_instance{{"i-1", "acc-1", product::mqtt, billing::payg, "Europe/Berlin", price{price::unit::daily, 2400}, 0, {}, {}},
                                state::running, at("2024-01-01 00:00", "Europe/Berlin"), {}, {}},
           at("2024-10-27 00:00", "Europe/Berlin"));
    w.advance_to(at("2024-10-28 09:00", "Europe/Berlin"));
    const auto bills = w.of<events::settled>();
    REQUIRE(bills.size() == 1);
    const auto& s = std::get<events::settled>(bills[0].data);
    CHECK((s.cycle_end - s.cycle_start) == std::chrono::microseconds{25h});
    CHECK(s.amount == 2400);
}

// ---------------------------------------------------------------- starting states and policy overrides

TEST_CASE("starting state: RocketMQ and MQTT subscriptions start running at purchase (decision)") {
    for (auto p : {product::rocketmq, product::mqtt}) {
        auto w = make(p, billing::subscription, 100000, at("2024-01-10 10:00"), 100, 1);
        CHECK(st(w) == state::running);
        CHECK(w.inst.state_since == at("2024-01-10 10:00"));
    }
}

TEST_CASE("starting state: RocketMQ payg and serverless bill from purchase because they start running") {
    for (auto b : {billing::payg, billing::serverless}) {
        auto w = make(product::rocketmq, b, 100000, at("2024-01-10 10:30"), 120);
        CHECK(w.due(timer_kind::settlement) == at("2024-01-10 11:00"));
    }
}

TEST_CASE("policy overrides reach decide: RabbitMQ grace of 10 days freezes 10 days after expiry") {
    world w;
    std::string error;
    w.policies = *policy_set::defaults().with_overrides(
        boost::json::parse(R"({"rabbitmq/subscription": {"grace_days": 10, "retention_days": 5}})"), error);
    w.open(30000);
    w.buy(product::rabbitmq, billing::subscription, at("2024-01-10 10:00"), 30000, 1);
    w.advance_to(at("2024-02-20 10:00"));
    CHECK(st(w) == state::frozen);
    CHECK(w.inst.state_since == at("2024-02-20 10:00"));
    w.advance_to(at("2024-02-25 10:00"));
    CHECK(st(w) == state::released);
}

TEST_CASE("policy overrides reach decide: a purchase refused by policy gives its configured message") {
    world w;
    std::string error;
    w.policies = *policy_set::defaults().with_overrides(
        boost::json::parse(R"({"kafka/serverless": {"purchase_allowed": false, "purchase_refusal": "paused"}})"), error);
    w.open(1000);
    const auto d = w.run(cmd::purchase{"i-1", "acc-1", product::kafka, billing::serverless, "", price{price::unit::hourly, 1}, 0, {}, {}},
                         at("2024-01-10 10:00"));
    CHECK(d.refused->message == "paused");
    CHECK(d.refused->field == "billing");
}

TEST_CASE("terms: a three-month subscription bought on the 31st ends on the 30th of a 30-day month, same local time") {
    auto w = make(product::rabbitmq, billing::subscription, 100000, at("2024-01-31 23:30"), 100, 3);
    CHECK(w.inst.expires_at == at("2024-04-30 23:30"));
}

TEST_CASE("rocketmq Q/E: a payg or serverless upgrade (a higher price) is refused with insufficient_balance, "
          "required 0, while the account owes, a downgrade stays allowed") {
    for (auto b : {billing::payg, billing::serverless}) {
        INFO(to_string(b));
        auto w = make(product::rocketmq, b, 100000, at("2024-01-10 10:00"), 120);
        // The account facts decide receives: owing 20 since the last bill.
        auto owing = w.context();
        owing.account = account_facts{-20, at("2024-01-10 10:00")};
        auto even = owing;
        even.account->balance = 0;
        const auto t = at("2024-01-10 10:30");
        const cmd::change_config up{rmq("professional"), price{price::unit::hourly, 240}};
        const auto d = decide(w.inst, up, t, owing);
        REQUIRE(code(d) == refusal_code::insufficient_balance);
        CHECK(d.refused->balance == -20);
        CHECK(d.refused->required == 0);
        CHECK(d.events.empty());
        CHECK(decide(w.inst, up, t, even).ok());   // a balance of 0 owes nothing

        // A downgrade while owing: payg lowers the computing specification; serverless goes
        // back from professional to standard after an upgrade made while it could pay.
        cmd::change_config down{rmq("standard", 500), price{price::unit::hourly, 60}};
        if (b == billing::serverless) {
            w.must(up, t);
            w.advance_to(t + 10min);
            down = cmd::change_config{rmq("standard"), price{price::unit::hourly, 120}};
        }
        const auto ok = decide(w.inst, down, t + 10min, owing);
        REQUIRE(ok.ok());
        CHECK(std::get<events::config_change_started>(ok.events.at(0).data).amount == 0);
    }
}

TEST_CASE("rocketmq Q/E: the refusal of upgrades while owing is the policy's upgrade_requires_no_debt (default on)") {
    CHECK(policy_set::defaults().get(product::rocketmq, billing::payg).upgrade_requires_no_debt);
    std::string error;
    auto lenient = policy_set::defaults().with_overrides(
        boost::json::parse(R"({"rocketmq/payg": {"upgrade_requires_no_debt": false}})"), error);
    REQUIRE(lenient);
    world w;
    w.policies = *lenient;
    w.now = at("2024-01-10 09:00");
    w.open(100000);
    w.buy(product::rocketmq, billing::payg, at("2024-01-10 10:00"), 120);
    auto owing = w.context();
    owing.account = account_facts{-20, at("2024-01-10 10:00")};
    CHECK(decide(w.inst, cmd::change_config{rmq("professional"), price{price::unit::hourly, 240}}, at("2024-01-10 10:30"),
                 owing)
              .ok());
}

TEST_CASE("rocketmq payg: an upgrade needs no up-front charge and the change is recorded with amount 0") {
    auto w = make(product::rocketmq, billing::payg, 0, at("2024-01-10 10:00"), 100);
    w.must(cmd::change_config{rmq("professional"), price{price::unit::hourly, 300}}, at("2024-01-10 10:10"));
    CHECK(std::get<events::config_change_started>(w.of<events::config_change_started>().at(0).data).amount == 0);
    CHECK(w.of<events::charged>().empty());
}

// ---------------------------------------------------------------- adversarial inputs (purity: no exception, no UB, no hang)

namespace {

constexpr money money_max = std::numeric_limits<money>::max();
const time_point time_min{duration{std::numeric_limits<std::int64_t>::min()}};
const time_point time_max{duration{std::numeric_limits<std::int64_t>::max()}};

// Every instance command against `s` at `now`; decide must return a value for each.
void decide_everything(const world& w, time_point now) {
    const std::vector<cmd::command> all{
        cmd::deploy{}, cmd::stop{}, cmd::enable{}, cmd::renew{1}, cmd::renew{std::numeric_limits<std::int32_t>::max()},
        cmd::renew{std::numeric_limits<std::int32_t>::min()}, cmd::unsubscribe{}, cmd::force_delete{}, cmd::remove{},
        cmd::change_config{rmq("professional", std::numeric_limits<std::int64_t>::max()), price{price::unit::monthly, money_max}},
        cmd::change_config{rmq("standard", 2000), price{price::unit::hourly, money_max}},
        cmd::set_auto_renew{true, std::numeric_limits<std::int32_t>::max()}, cmd::set_auto_renew{true, -1},
        cmd::create_topic{std::string(10000, 'x')}, cmd::delete_group{""},
        cmd::account_overdue{time_min}, cmd::account_overdue{time_max}, cmd::account_paid{time_max},
        cmd::add_funds{money_max, ""}};
    for (const auto& c : all) {
        CAPTURE(commands::name_of(c));
        decision d;
        CHECK_NOTHROW(d = decide(w.inst, c, now, w.context()));
    }
    for (int k = 0; k <= static_cast<int>(timer_kind::force_delete); ++k)
        for (auto due : {time_min, now, time_max}) {
            decision d;
            CHECK_NOTHROW(d = decide(w.inst, cmd::tick{static_cast<timer_kind>(k), due}, now, w.context()));
        }
}

} // namespace

TEST_CASE("adversarial: unknown or hostile time zone names are refused as invalid, never thrown") {
    world w;
    w.open(1000000);
    for (const std::string& tz : std::vector<std::string>{"Mars/Base", "../../../../etc/passwd", "/etc/localtime", std::string(5000, 'A'),
                                 std::string("Asia/Shang\0hai", 14), "asia/shanghai", " UTC"}) {
        CAPTURE(tz);
        decision d;
        REQUIRE_NOTHROW(d = decide(w.inst, cmd::purchase{"i-1", "acc-1", product::kafka, billing::payg, tz, price{price::unit::hourly, 1}, 0, {}, {}},
                                   at("2024-01-10 10:00"), w.context()));
        REQUIRE_FALSE(d.ok());
        CHECK(d.refused->field == "timezone");
    }
}

TEST_CASE("adversarial: INT64 extremes of time and money never throw out of decide") {
    for (auto p : {product::kafka, product::rabbitmq, product::rocketmq, product::mqtt})
        for (auto b : {billing::subscription, billing::payg}) {
            CAPTURE(to_string(p), to_string(b));
            world w;
            w.open(money_max);
            const auto& pol = w.policies.get(p, b);
            cmd::purchase d{"i-1", "acc-1", p, b, "America/New_York", price{pol.price_unit, 1}, b == billing::subscription ? 1 : 0,
                            std::nullopt, std::nullopt};
            if (pol.config.allowed) d.config = rmq("standard");
            for (auto t : {time_min, time_max, time_point{}}) {
                for (auto since : {time_min, time_max}) {
                    decision r;
                    CHECK_NOTHROW(r = decide(w.inst, cmd::import_instance{d, state::running, since, since, since}, t, w.context()));
                    CHECK_NOTHROW(r = decide(w.inst, cmd::import_instance{d, state::running, since, time_max, since}, t, w.context()));
                }
                decision r;
                CHECK_NOTHROW(r = decide(w.inst, d, t, w.context()));
            }
            if (pol.purchase_allowed) w.must(d, at("2024-01-10 10:00"));
            else w.must(cmd::import_instance{d, state::running, at("2024-01-01 10:00"), std::nullopt, std::nullopt}, at("2024-01-10 10:00"));
            decide_everything(w, at("2024-01-10 11:00"));
            decide_everything(w, time_max);
            decide_everything(w, time_min);
        }
}

// ---------------------------------------------------------------- money: overflow is refused at the input, never billed wrongly

TEST_CASE("money: a payg/serverless rate whose hourly bill could overflow is refused at purchase and import (invalid price)") {
    const money too_large = money_max / std::chrono::duration_cast<duration>(std::chrono::hours{1}).count() + 1;
    for (auto p : {product::kafka, product::rocketmq, product::rabbitmq}) {
        world w;
        w.open(1000);
        cmd::purchase d{"i-1", "acc-1", p, billing::payg, "", price{price::unit::hourly, too_large}, 0, rmq("standard"), {}};
        if (p != product::rocketmq) d.config.reset();
        CAPTURE(to_string(p));
        const auto bought = w.run(d, at("2024-01-10 10:00"));
        CHECK(code(bought) == refusal_code::invalid);
        CHECK(bought.refused->field == "price");
        const auto imported = w.run(cmd::import_instance{d, state::running, at("2024-01-01 10:00"), {}, {}}, at("2024-01-10 10:00"));
        CHECK(code(imported) == refusal_code::invalid);
        CHECK(imported.refused->field == "price");
        d.rate.amount = too_large - 1;  // the largest rate that fits is accepted
        CHECK(w.run(d, at("2024-01-10 10:00")).ok());
    }
    // MQTT payg (import only): a daily rate over a day cycle (bounded by two days for DST days).
    world m;
    m.open(0);
    const auto imp = cmd::import_instance{{"i-1", "acc-1", product::mqtt, billing::payg, "", price{price::unit::daily, money_max / 1000}, 0, {}, {}},
                                          state::running, at("2024-01-01 10:00"), {}, {}};
    CHECK(m.run(imp, at("2024-01-10 10:00")).refused->field == "price");
}

TEST_CASE("money: a subscription whose price × term overflows is refused at import as at purchase (invalid price)") {
    world w;
    w.open(0);
    const auto imp = cmd::import_instance{{"i-1", "acc-1", product::rabbitmq, billing::subscription, "", price{price::unit::monthly, money_max / 2}, 3, {}, {}},
                                          state::running, at("2024-01-01 10:00"), at("2024-04-01 10:00"), {}};
    const auto d = w.run(imp, at("2024-01-10 10:00"));
    CHECK(code(d) == refusal_code::invalid);
    CHECK(d.refused->field == "price");
}

TEST_CASE("money: change-config to a rate whose bill or renewal could overflow is refused (invalid price)") {
    auto w = make(product::rocketmq, billing::payg, 100000, at("2024-01-10 10:00"), 120);
    const auto d = w.run(cmd::change_config{rmq("standard", 2000), price{price::unit::hourly, money_max}}, at("2024-01-10 10:30"));
    CHECK(code(d) == refusal_code::invalid);
    CHECK(d.refused->field == "price");
    CHECK(w.inst.rate.amount == 120);
    // Subscription: the new monthly price × the term (what an automatic renewal charges) must fit.
    auto s = make(product::rocketmq, billing::subscription, 1000000, at("2024-01-10 10:00"), 100, 3);
    const auto u = s.run(cmd::change_config{rmq("standard", 2000), price{price::unit::monthly, money_max / 2}}, at("2024-03-09 10:00"));
    CHECK(code(u) == refusal_code::invalid);
    CHECK(u.refused->field == "price");
}

TEST_CASE("money: a settlement that cannot be represented is refused and writes nothing, never recorded as 0 or saturated") {
    auto w = make(product::kafka, billing::payg, 0, at("2024-01-10 10:00"), 120);
    w.must(cmd::deploy{}, at("2024-01-10 10:00"));
    // A hand-written account at the very bottom of int64: the bill of 120 cannot be subtracted.
    auto ctx = w.context();
    ctx.account->balance = std::numeric_limits<money>::min() + 1;
    const auto due = *w.due(timer_kind::settlement);
    const auto d = decide(w.inst, cmd::tick{timer_kind::settlement, due}, due, ctx);
    REQUIRE_FALSE(d.ok());
    CHECK(d.refused->code == refusal_code::invalid);
    CHECK(d.refused->field == "price");
    CHECK(d.events.empty());
    // With a representable balance the same tick bills the exact amount.
    const auto ok = decide(w.inst, cmd::tick{timer_kind::settlement, due}, due, w.context());
    REQUIRE(ok.ok());
    CHECK(std::get<events::settled>(ok.events.at(0).data).amount == 120);
}

// ---------------------------------------------------------------- time: the supported range

TEST_CASE("time: imported facts and command times outside 1900–9999 are refused as invalid, never overflowed") {
    world w;
    w.open(0);
    const auto base = cmd::purchase{"i-1", "acc-1", product::kafka, billing::subscription, "America/New_York", price{price::unit::monthly, 1}, 1, {}, {}};
    const auto t = at("2024-01-10 10:00");
    CHECK(w.run(cmd::import_instance{base, state::expired, time_min, at("2024-01-01 10:00"), {}}, t).refused->field == "state_since");
    CHECK(w.run(cmd::import_instance{base, state::running, at("2024-01-01 10:00"), time_max, {}}, t).refused->field == "expires_at");
    CHECK(w.run(cmd::import_instance{base, state::running, at("1899-12-31 23:59"), at("2024-02-01 10:00"), {}}, t).refused->field ==
          "state_since");
    const auto d = decide(w.inst, base, time_max, w.context());
    CHECK(code(d) == refusal_code::invalid);
    CHECK(d.refused->field == "now");
    w.must(cmd::import_instance{base, state::running, utc("1900-01-01 00:00"), at("2024-02-01 10:00"), {}}, t);
    CHECK(decide(w.inst, cmd::account_paid{time_max}, t, w.context()).refused->field == "at");
    CHECK(decide(w.inst, cmd::account_overdue{time_min}, t, w.context()).refused->field == "since");
}

TEST_CASE("time: a renewal or purchase whose term would end after 9999 is refused (invalid)") {
    world w;
    std::string error;
    w.policies = *policy_set::defaults().with_overrides(boost::json::parse(R"({"rabbitmq/subscription": {"max_term_months": 100000}})"), error);
    w.open(1000000);
    auto p = cmd::purchase{"i-1", "acc-1", product::rabbitmq, billing::subscription, "", price{price::unit::monthly, 1}, 100000, {}, {}};
    CHECK(w.run(p, at("2024-01-10 10:00")).refused->field == "term_months");
    p.term_months = 1;
    w.must(p, at("2024-01-10 10:00"));
    CHECK(w.run(cmd::renew{100000}, at("2024-01-11 10:00")).refused->field == "months");
    CHECK(w.run(cmd::renew{12}, at("2024-01-11 10:00")).ok());
}

TEST_CASE("adversarial: enum values outside the vocabulary are refused as invalid, never used as a table index") {
    world w;
    w.open(1000);
    auto p = cmd::purchase{"i-1", "acc-1", static_cast<product>(77), billing::payg, "", price{price::unit::hourly, 1}, 0, {}, {}};
    CHECK(w.run(p, at("2024-01-10 10:00")).refused->field == "product");
    p.prod = product::kafka;
    p.bill = static_cast<billing>(9);
    CHECK(w.run(p, at("2024-01-10 10:00")).refused->field == "billing");
    p.bill = billing::payg;
    p.rate.per = static_cast<price::unit>(5);
    CHECK(w.run(p, at("2024-01-10 10:00")).refused->field == "price");
    p.rate.per = price::unit::hourly;
    CHECK(w.run(cmd::import_instance{p, static_cast<state>(42), at("2024-01-01 10:00"), {}, {}}, at("2024-01-10 10:00"))
              .refused->field == "state");
    w.must(p, at("2024-01-10 10:00"));
    const auto d = decide(w.inst, cmd::tick{static_cast<timer_kind>(99), at("2024-01-10 10:00")}, at("2024-01-10 10:30"), w.context());
    CHECK(d.ok());
    CHECK(d.events.empty());
}
