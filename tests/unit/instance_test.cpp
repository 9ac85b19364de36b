#include "ledger/instance.h"

#include "ledger_test_support.h"

#include <catch2/catch.hpp>

#include <algorithm>

using namespace mqledger;
using namespace mqledger::test;
using namespace std::chrono_literals;

namespace {

const policy_set table = policy_set::defaults();

struct action_case {
    std::string name;
    cmd::command command;
};

// Every console action as a command that would be accepted wherever the action is available.
std::vector<action_case> action_commands(const instance_state& s) {
    auto cfg = s.config.value_or(instance_config{});
    auto changed = cfg;
    if (s.bill == billing::serverless) changed.edition = cfg.edition == "standard" ? "professional" : "standard";
    else changed.tps = cfg.tps + 1000;
    return {{"deploy", cmd::deploy{}},
            {"stop", cmd::stop{}},
            {"enable", cmd::enable{}},
            {"renew", cmd::renew{1}},
            {"unsubscribe", cmd::unsubscribe{}},
            {"force-delete", cmd::force_delete{}},
            {"delete", cmd::remove{}},
            {"change-config", cmd::change_config{changed, price{s.rate.per, s.rate.amount + 10}}},
            {"auto-renew", cmd::set_auto_renew{true, 7}}};
}

// Imports an instance of (p, b) in state `in` one hour before `now`, with money to spare.
world imported(product p, billing b, state in, time_point now) {
    world w;
    w.now = now - 2h;
    w.open(100000000);
    const auto& pol = w.policies.get(p, b);
    cmd::purchase d{"i-1", "acc-1", p, b, "", price{pol.price_unit, 100}, b == billing::subscription ? 1 : 0,
                    std::nullopt, std::nullopt};
    if (pol.config.allowed) d.config = instance_config{"standard", "cluster", 1000, false, 0};
    const bool term_runs = in == state::running || in == state::not_deployed;
    const auto expiry = term_runs ? now + std::chrono::days{20} : now - 1h;
    w.must(cmd::import_instance{d, in, now - 1h, b == billing::subscription ? std::optional{expiry} : std::nullopt,
                                std::nullopt},
           now - 1h);
    return w;
}

void check_refusal_table(product p) {
    const auto now = at("2024-06-15 12:00");
    for (auto b : {billing::subscription, billing::payg, billing::serverless}) {
        const auto& pol = table.get(p, b);
        if (!pol.import_allowed) continue;
        for (auto in : {state::not_deployed, state::running, state::expired, state::stopped, state::suspended,
                        state::frozen, state::released, state::deleted}) {
            if (!pol.at(in).valid) continue;
            auto w = imported(p, b, in, now);
            const auto allowed = allowed_actions(w.inst, pol, now);
            for (const auto& [name, c] : action_commands(w.inst)) {
                CAPTURE(to_string(p), to_string(b), to_string(in), name);
                const auto d = decide(w.inst, c, now, w.context());
                const bool listed = std::find(allowed.begin(), allowed.end(), name) != allowed.end();
                if (listed) {
                    CHECK(d.ok());
                } else {
                    REQUIRE_FALSE(d.ok());
                    CHECK(d.refused->code == refusal_code::invalid_transition);
                    CHECK(d.refused->current == in);
                    CHECK(d.refused->allowed_actions == allowed);
                }
            }
        }
    }
}

} // namespace

TEST_CASE("refusals: kafka: every action in every state where it is not available, with the allowed list") {
    check_refusal_table(product::kafka);
}

TEST_CASE("refusals: rabbitmq: every action in every state where it is not available, with the allowed list") {
    check_refusal_table(product::rabbitmq);
}

TEST_CASE("refusals: rocketmq: every action in every state where it is not available, with the allowed list") {
    check_refusal_table(product::rocketmq);
}

TEST_CASE("refusals: mqtt: every action in every state where it is not available, with the allowed list") {
    check_refusal_table(product::mqtt);
}

TEST_CASE("view: display names per product (Frozen, Grace period, Service suspension)") {
    instance_state s;
    s.exists = true;
    s.current = state::frozen;
    CHECK(display_state(s, table.get(product::rabbitmq, billing::subscription)) == "Frozen");
    s.current = state::expired;
    CHECK(display_state(s, table.get(product::rocketmq, billing::subscription)) == "Grace period");
    s.current = state::suspended;
    CHECK(display_state(s, table.get(product::mqtt, billing::subscription)) == "Service suspension");
    s.current = state::not_deployed;
    CHECK(display_state(s, table.get(product::kafka, billing::payg)) == "Not Deployed");
}

TEST_CASE("view: auto-renew is offered for subscriptions while the term runs, unsubscribe for Kafka running") {
    instance_state s;
    s.exists = true;
    s.current = state::running;
    s.prod = product::kafka;
    s.bill = billing::subscription;
    s.expires_at = at("2030-01-01 00:00");
    CHECK(allowed_actions(s, table.get(product::kafka, billing::subscription), at("2024-01-01 00:00")) ==
          std::vector<std::string>{"renew", "unsubscribe", "auto-renew"});
    s.prod = product::rocketmq;
    CHECK(allowed_actions(s, table.get(product::rocketmq, billing::subscription), at("2024-01-01 00:00")) ==
          std::vector<std::string>{"renew", "change-config", "auto-renew"});
}

TEST_CASE("view: a pending force deletion hides renew, enable, add funds and force delete") {
    instance_state s;
    s.exists = true;
    s.prod = product::kafka;
    s.bill = billing::payg;
    s.current = state::stopped;
    s.state_since = at("2024-01-01 10:00");
    s.force_delete_pending = true;
    s.force_delete_requested_at = at("2024-01-01 10:10");
    CHECK(allowed_actions(s, table.get(product::kafka, billing::payg), at("2024-01-01 10:20")).empty());
}

TEST_CASE("evolve: every instance event counts one version and records the policy version, account events do not") {
    instance_state s;
    const auto t = at("2024-01-01 10:00");
    events::purchased p;
    p.prod = product::rabbitmq;
    p.bill = billing::payg;
    p.account_id = "acc-1";
    p.timezone = "Asia/Shanghai";
    p.rate = price{price::unit::hourly, 10};
    s = evolve(s, p, t, policy_set::defaults(7));
    s = evolve(s, events::charged{5, "usage", "", ""}, t);
    s = evolve(s, events::topic_created{"a"}, t + 1min);
    CHECK(s.version == 2);
    CHECK(s.policy == 7);
    CHECK(s.current == state::running);
    CHECK(s.topics == std::vector<std::string>{"a"});
    CHECK(s.last_effective_at == t + 1min);
}

TEST_CASE("evolve: a settled cycle keeps the billing history from its cycle end or the usage lookback before it, "
          "whichever is earlier (issue 15: late usage needs to know when the instance was billable)") {
    instance_state s;
    const auto t = utc("2024-01-01 10:00");
    events::purchased p;
    p.prod = product::kafka;
    p.bill = billing::payg;
    p.rate = price{price::unit::hourly, 60};
    s = evolve(s, p, t);
    s = evolve(s, events::deployed{}, t + 10min);
    s = evolve(s, events::stopped{}, t + 70min);
    s = evolve(s, events::settled{t, t + 1h, 50}, t + 1h);
    REQUIRE(s.marks.size() == 3);   // all of it is within the 35-day lookback
    const auto& pol = table.get(product::kafka, billing::payg);
    const auto c = next_unsettled_cycle(s, pol);
    REQUIRE(c);
    CHECK(c->start == t + 1h);
    CHECK(cycle_amount(billing_marks(s, pol), c->start, c->end, false) == 10);
    // Settled 40 days later: only the state in force at the cycle end and after it is kept.
    s = evolve(s, events::settled{t + 1h, t + 2h, 10}, t + std::chrono::days{40});
    REQUIRE(s.marks.size() == 1);
    CHECK(s.marks[0].at == t + 2h);
    CHECK(s.marks[0].in_state == state::stopped);
}

TEST_CASE("deadlines: none for an unknown, released or deleted instance") {
    const auto& pol = table.get(product::kafka, billing::subscription);
    instance_state s;
    CHECK(deadlines(s, pol).empty());
    s.exists = true;
    s.current = state::released;
    CHECK(deadlines(s, pol).empty());
    s.current = state::deleted;
    CHECK(deadlines(s, pol).empty());
}

TEST_CASE("deadlines: timer kinds round-trip through their names") {
    for (auto k : {timer_kind::expiry, timer_kind::release, timer_kind::grace_end, timer_kind::retention_end,
                   timer_kind::suspension, timer_kind::auto_renew_attempt, timer_kind::settlement,
                   timer_kind::config_change_completion, timer_kind::force_delete})
        CHECK(parse_timer_kind(to_string(k)) == k);
    CHECK_FALSE(parse_timer_kind("bogus"));
}

TEST_CASE("deadlines: a running subscription's expiry and auto-renew attempt, a not-deployed Kafka term still runs") {
    const auto& pol = table.get(product::kafka, billing::subscription);
    instance_state s;
    s.exists = true;
    s.prod = product::kafka;
    s.current = state::not_deployed;
    s.timezone = "Asia/Shanghai";
    s.state_since = at("2024-01-01 10:00");
    s.expires_at = at("2024-02-01 10:00");
    s.auto_renew = {true, 7};
    s.auto_renew_not_before = s.state_since;
    const auto ts = deadlines(s, pol);
    REQUIRE(ts.size() == 2);
    CHECK(ts[0] == timer{timer_kind::auto_renew_attempt, at("2024-01-25 03:00")});
    CHECK(ts[1] == timer{timer_kind::expiry, at("2024-02-01 10:00")});
}

TEST_CASE("view: deadlines of a RabbitMQ subscription in grace show the freeze and the projected release") {
    instance_state s;
    s.exists = true;
    s.prod = product::rabbitmq;
    s.current = state::expired;
    s.timezone = "Asia/Shanghai";
    s.state_since = at("2024-02-10 10:00");
    s.expires_at = s.state_since;
    const auto v = view_deadlines(s, table.get(product::rabbitmq, billing::subscription));
    CHECK(v.freeze_at == at("2024-02-25 10:00"));
    CHECK(v.release_at == at("2024-03-11 10:00"));
    CHECK_FALSE(v.suspend_at);
    CHECK_FALSE(v.next_settlement_at);
}

TEST_CASE("view: deadlines of a running MQTT payg instance show the next bill at 09:00 after the day") {
    instance_state s;
    s.exists = true;
    s.prod = product::mqtt;
    s.bill = billing::payg;
    s.current = state::running;
    s.timezone = "Asia/Shanghai";
    s.state_since = at("2024-02-10 10:00");
    s.rate = price{price::unit::daily, 900};
    s.marks.push_back({s.state_since, state::running, 900});
    const auto v = view_deadlines(s, table.get(product::mqtt, billing::payg));
    CHECK(v.next_settlement_at == at("2024-02-11 09:00"));
    CHECK_FALSE(v.release_at);
}
