#include "ledger/instance.h"
#include "ledger/policy.h"
#include "tests/unit/ledger_test_support.h"

#include <boost/json/parse.hpp>
#include <catch2/catch.hpp>

#include <algorithm>

using namespace mqledger;
using namespace std::chrono_literals;
using mqledger::test::utc;

namespace {
const policy_set table = policy_set::defaults();
std::vector<std::string> actions(product p, billing b, state s) { return table.get(p, b).at(s).actions; }
using list = std::vector<std::string>;
} // namespace

TEST_CASE("policy: K table row not_deployed shows Deploy for every billing model") {
    for (auto b : {billing::subscription, billing::payg, billing::serverless})
        CHECK(actions(product::kafka, b, state::not_deployed) == list{"deploy"});
    CHECK(starting_state_of(product::kafka) == state::not_deployed);
}

TEST_CASE("policy: K table row running shows Stop for payg/serverless and Renew for subscription") {
    CHECK(actions(product::kafka, billing::subscription, state::running) == list{"renew"});
    CHECK(actions(product::kafka, billing::payg, state::running) == list{"stop"});
    CHECK(actions(product::kafka, billing::serverless, state::running) == list{"stop"});
}

TEST_CASE("policy: K table row expired shows Renew or Add funds, and Forcibly delete") {
    CHECK(actions(product::kafka, billing::subscription, state::expired) == list{"renew", "force-delete"});
    CHECK(actions(product::kafka, billing::payg, state::expired) == list{"add-funds", "force-delete"});
    CHECK(actions(product::kafka, billing::serverless, state::expired) == list{"add-funds", "force-delete"});
}

TEST_CASE("policy: K table row stopped shows Enable and Forcibly delete (payg/serverless only)") {
    CHECK(actions(product::kafka, billing::payg, state::stopped) == list{"enable", "force-delete"});
    CHECK(actions(product::kafka, billing::serverless, state::stopped) == list{"enable", "force-delete"});
    CHECK_FALSE(table.get(product::kafka, billing::subscription).at(state::stopped).valid);
}

TEST_CASE("policy: K table row released shows Delete") {
    for (auto p : {product::kafka, product::rabbitmq, product::rocketmq, product::mqtt})
        CHECK(actions(p, billing::subscription, state::released) == list{"delete"});
}

TEST_CASE("policy: K auto-release deadlines: expired 7 days, stopped 08:00 two days after") {
    const auto& sub = table.get(product::kafka, billing::subscription);
    REQUIRE(sub.lapse);
    CHECK(sub.lapse->first == state::expired);
    CHECK(sub.lapse->first_for == std::chrono::days{7});
    CHECK_FALSE(sub.lapse->second);
    const auto& payg = table.get(product::kafka, billing::payg);
    CHECK(payg.lapse->first_for == std::chrono::days{7});
    CHECK(payg.stopped_release_days == 2);
    CHECK(payg.stopped_release_hour == 8);
    CHECK(payg.cycle == cycle_kind::hourly);
}

TEST_CASE("policy: R durations: grace 15 days then frozen 15 days, serverless refused") {
    const auto& sub = table.get(product::rabbitmq, billing::subscription);
    CHECK(sub.lapse->first == state::expired);
    CHECK(sub.lapse->first_for == std::chrono::days{15});
    CHECK(sub.lapse->second == state::frozen);
    CHECK(sub.lapse->second_for == std::chrono::days{15});
    CHECK(sub.at(state::frozen).display_name == "Frozen");
    CHECK_FALSE(sub.at(state::frozen).service_available);
    CHECK(sub.at(state::frozen).data_retained);
    CHECK(sub.auto_renew_days_before == 7);
    CHECK(sub.auto_renew_hour == 3);
    CHECK_FALSE(table.get(product::rabbitmq, billing::serverless).purchase_allowed);
}

TEST_CASE("policy: E flags: grace period and stopped are unavailable with console and API disabled") {
    const auto& sub = table.get(product::rocketmq, billing::subscription);
    CHECK(sub.at(state::expired).display_name == "Grace period");
    CHECK_FALSE(sub.at(state::expired).service_available);
    CHECK_FALSE(sub.at(state::expired).console_api_enabled);
    CHECK(sub.at(state::expired).data_retained);
    CHECK(sub.lapse->first_for == std::chrono::days{7});
    for (auto b : {billing::payg, billing::serverless}) {
        const auto& p = table.get(product::rocketmq, b);
        CHECK(p.lapse->first == state::stopped);
        CHECK(p.lapse->first_for == std::chrono::days{7});
        CHECK_FALSE(p.at(state::stopped).console_api_enabled);
        CHECK(p.cycle == cycle_kind::hourly);
    }
}

TEST_CASE("policy: Q table: subscription/payg edition upgrade only, serverless standard↔professional only") {
    for (auto b : {billing::subscription, billing::payg}) {
        const auto& c = table.get(product::rocketmq, b).config;
        CHECK(c.allowed);
        CHECK(c.edition == edition_rule::upgrade_only);
        CHECK_FALSE(c.sub_category);
        CHECK(c.tps);
        CHECK(c.internet_access);
        CHECK(c.bandwidth);
    }
    const auto& s = table.get(product::rocketmq, billing::serverless).config;
    CHECK(s.edition == edition_rule::standard_professional_both_ways);
    CHECK_FALSE(s.sub_category);
    CHECK_FALSE(s.tps);
    CHECK_FALSE(s.internet_access);
    CHECK_FALSE(s.bandwidth);
    CHECK(table.get(product::rocketmq, billing::payg).change_in_progress == 5min);
    CHECK_FALSE(table.get(product::kafka, billing::payg).config.allowed);
}

TEST_CASE("policy: M: subscription 15 days grace running normally, suspended 15 days, payg no longer sold") {
    const auto& sub = table.get(product::mqtt, billing::subscription);
    CHECK(sub.lapse->first_for == std::chrono::days{15});
    CHECK(sub.lapse->second == state::suspended);
    CHECK(sub.lapse->second_for == std::chrono::days{15});
    CHECK(sub.at(state::expired).service_available);
    CHECK(sub.at(state::suspended).display_name == "Service suspension");
    CHECK_FALSE(sub.at(state::suspended).service_available);
    const auto& payg = table.get(product::mqtt, billing::payg);
    CHECK_FALSE(payg.purchase_allowed);
    CHECK(payg.import_allowed);
    CHECK(payg.purchase_refusal.find("no longer sold") != std::string::npos);
    CHECK(payg.lapse->first_for == 24h);
    CHECK(payg.lapse->second_for == std::chrono::days{7});
    CHECK(payg.issue_delay == 9h);
    CHECK(payg.cycle == cycle_kind::local_day);
    CHECK(payg.price_unit == price::unit::daily);
}

TEST_CASE("policy: overrides from JSON change the named fields only") {
    std::string error;
    const auto o = table.with_overrides(boost::json::parse(R"({"rabbitmq/subscription": {"grace_days": 10},
        "kafka/payg": {"stopped_release_hour": 9, "states": {"stopped": {"display_name": "Paused"}}}})"), error);
    REQUIRE(o);
    CHECK(o->get(product::rabbitmq, billing::subscription).lapse->first_for == std::chrono::days{10});
    CHECK(o->get(product::rabbitmq, billing::subscription).lapse->second_for == std::chrono::days{15});
    CHECK(o->get(product::kafka, billing::payg).stopped_release_hour == 9);
    CHECK(o->get(product::kafka, billing::payg).at(state::stopped).display_name == "Paused");
    CHECK(o->get(product::kafka, billing::payg).at(state::stopped).actions == list{"enable", "force-delete"});
    CHECK(table.get(product::rabbitmq, billing::subscription).lapse->first_for == std::chrono::days{15});
}

TEST_CASE("policy: an override with an unknown key or a wrong type is an error") {
    std::string error;
    CHECK_FALSE(table.with_overrides(boost::json::parse(R"({"rabbitmq/subscription": {"grace_dayz": 10}})"), error));
    CHECK(error.find("grace_dayz") != std::string::npos);
    CHECK_FALSE(table.with_overrides(boost::json::parse(R"({"nats/payg": {}})"), error));
    CHECK_FALSE(table.with_overrides(boost::json::parse(R"({"kafka/payg": {"issue_delay_hours": "9"}})"), error));
    CHECK_FALSE(table.with_overrides(boost::json::parse(R"([1])"), error));
}

TEST_CASE("policy: the registry keeps every version so old events are judged by their own rules") {
    policy_registry reg;
    REQUIRE(reg.find(current_policy_version) != nullptr);
    std::string error;
    auto v2 = reg.current().with_overrides(boost::json::parse(R"({"kafka/subscription": {"grace_days": 3}})"), error);
    REQUIRE(v2);
    v2->set_version(current_policy_version + 1);
    reg.add(*v2);
    CHECK(reg.current().version() == current_policy_version + 1);
    CHECK(reg.find(current_policy_version)->get(product::kafka, billing::subscription).lapse->first_for ==
          std::chrono::days{7});
    CHECK(reg.find(current_policy_version + 1)->get(product::kafka, billing::subscription).lapse->first_for ==
          std::chrono::days{3});
    CHECK(reg.find(99) == nullptr);
}

TEST_CASE("policy: a registry takes in the versions another one holds (logged by another daemon) and never "
          "replaces a version it holds, so a table once used keeps judging its events") {
    std::string error;
    const auto version = [&](const char* overrides, policy_version v) {
        auto set = policy_set::defaults().with_overrides(boost::json::parse(overrides), error);
        REQUIRE(set);
        set->set_version(v);
        return *set;
    };
    policy_registry mine, logged;
    mine.add(version(R"({"kafka/subscription": {"grace_days": 3}})", current_policy_version + 1));
    logged.add(version(R"({"kafka/subscription": {"grace_days": 4}})", current_policy_version + 1));
    logged.add(version(R"({"kafka/subscription": {"grace_days": 5}})", current_policy_version + 2));
    mine.add_missing(logged);
    CHECK(mine.versions() == std::vector<policy_version>{current_policy_version, current_policy_version + 1,
                                                         current_policy_version + 2});
    CHECK(mine.find(current_policy_version + 1)->get(product::kafka, billing::subscription).lapse->first_for ==
          std::chrono::days{3});
    CHECK(mine.current().get(product::kafka, billing::subscription).lapse->first_for == std::chrono::days{5});
    mine.add_missing(mine);
    CHECK(mine.versions().size() == 3);
}

TEST_CASE("policy: every product and billing model has a price unit per API.md") {
    CHECK(table.get(product::kafka, billing::subscription).price_unit == price::unit::monthly);
    CHECK(table.get(product::kafka, billing::payg).price_unit == price::unit::hourly);
    CHECK(table.get(product::rocketmq, billing::serverless).price_unit == price::unit::hourly);
    CHECK(table.get(product::rabbitmq, billing::payg).price_unit == price::unit::hourly);
    CHECK(table.get(product::mqtt, billing::payg).price_unit == price::unit::daily);
}

TEST_CASE("policy: R seed: a RabbitMQ instance cannot run once expired (subscription) or overdue (payg), data retained") {
    // R: "Yearly/Monthly RabbitMQ instances cannot run after their subscription expires";
    // "Pay-per-use RabbitMQ instances can run as long as you have sufficient account balance".
    // RULES.md's decision (usable in grace) disagrees with the seed, and the seed wins.
    for (auto b : {billing::subscription, billing::payg}) {
        const auto& p = table.get(product::rabbitmq, b);
        CHECK_FALSE(p.at(state::expired).service_available);
        CHECK(p.at(state::expired).data_retained);
        CHECK(p.at(state::running).service_available);
    }
}

// ---- issue 15: the table as data, versions in force at run time ----

TEST_CASE("policy: table_json writes every overridable field, and reading it back gives the same table") {
    std::string error;
    auto changed = policy_set::defaults().with_overrides(
        boost::json::parse(R"({"rabbitmq/subscription": {"grace_days": 10, "retention_days": 20},
                               "mqtt/payg": {"grace_hours": 36, "usage_metrics": ["messages", "connections"]},
                               "kafka/payg": {"stopped_release_hour": 9, "auto_renew_max_days_before": 3,
                                              "states": {"stopped": {"display_name": "Paused"}}}})"),
        error);
    REQUIRE(changed);
    for (const auto& set : {policy_set::defaults(), *changed}) {
        const auto json = table_json(set);
        CHECK(json.size() == 12);   // every product/billing
        const auto back = table_from_json(json, 5, error);
        INFO(error);
        REQUIRE(back);
        CHECK(back->version() == 5);
        CHECK(table_json(*back) == json);
    }
    const auto t = table_json(*changed);
    CHECK(t.at("rabbitmq/subscription").at("grace_days") == 10);
    CHECK(t.at("rabbitmq/subscription").at("retention_days") == 20);
    CHECK(t.at("mqtt/payg").at("grace_hours") == 36);          // not whole days: hours
    CHECK(t.at("mqtt/payg").at("suspension_days") == 7);
    CHECK(t.at("kafka/payg").at("states").at("stopped").at("display_name") == "Paused");
    CHECK(table_json(policy_set::defaults()) != t);
}

TEST_CASE("policy: usage metrics per product are data (issue 15 decisions) and a bad metric name is refused") {
    const auto d = policy_set::defaults();
    CHECK(d.get(product::rocketmq, billing::payg).has_metric("storage_gb_hours"));   // Q: storage by usage
    CHECK(d.get(product::mqtt, billing::payg).has_metric("messages"));               // M: previous day's usage
    CHECK(d.get(product::kafka, billing::serverless).has_metric("storage_gb_hours"));
    for (auto p : {product::kafka, product::rabbitmq, product::rocketmq, product::mqtt})
        CHECK(d.get(p, billing::subscription).usage_metrics.empty());   // no cycles to settle usage in
    std::string error;
    CHECK_FALSE(d.with_overrides(boost::json::parse(R"({"kafka/payg": {"usage_metrics": ["Storage GB"]}})"), error));
    CHECK_FALSE(d.with_overrides(boost::json::parse(R"({"kafka/payg": {"usage_metrics": [""]}})"), error));
    CHECK_FALSE(d.with_overrides(boost::json::parse(R"({"kafka/payg": {"usage_metrics": "x"}})"), error));
}

TEST_CASE("policy: an instance keeps the lapse terms of the table in force when it entered its lapse path, "
          "one entering it later gets the new terms (issue 15, R)") {
    using namespace std::chrono_literals;
    const auto v1 = policy_set::defaults(1);
    std::string error;
    const auto v2 = policy_set::defaults(2).with_overrides(
        boost::json::parse(R"({"rabbitmq/subscription": {"grace_days": 10, "retention_days": 5}})"), error);
    REQUIRE(v2);
    const auto& p2 = v2->get(product::rabbitmq, billing::subscription);
    const auto t0 = utc("2026-03-13 06:00");
    events::purchased buy;
    buy.prod = product::rabbitmq;
    buy.bill = billing::subscription;
    buy.account_id = "acc";
    buy.timezone = "UTC";
    buy.rate = price{price::unit::monthly, 100};
    buy.term_months = 1;
    buy.expires_at = t0 + 24h * 31;
    const auto grace_end = [&](const instance_state& s) {
        for (const auto& t : deadlines(s, p2))
            if (t.kind == timer_kind::grace_end) return t.due_at;
        FAIL("no grace_end timer");
        return time_point{};
    };

    // Expired under version 1, judged afterwards by version 2: keeps 15 days.
    auto early = evolve(instance_state{}, buy, t0, v1);
    early = evolve(std::move(early), events::expired{}, *buy.expires_at, v1);
    CHECK(grace_end(early) == *buy.expires_at + 15 * 24h);
    // A later event under version 2 that does not change the state moves nothing.
    early = evolve(std::move(early), events::topic_created{"t"}, *buy.expires_at + 1h, *v2);
    CHECK(early.policy == 2);
    CHECK(grace_end(early) == *buy.expires_at + 15 * 24h);
    // Into the second phase under version 2: the path's terms (retention 15 days) still hold.
    early = evolve(std::move(early), events::frozen{}, *buy.expires_at + 15 * 24h, *v2);
    const auto release = deadlines(early, p2);
    REQUIRE(release.size() == 1);
    CHECK(release[0].kind == timer_kind::retention_end);
    CHECK(release[0].due_at == *buy.expires_at + 30 * 24h);

    // Purchased under version 1, expired under version 2: 10 days grace, 5 days retention.
    auto late = evolve(instance_state{}, buy, t0, v1);
    late = evolve(std::move(late), events::expired{}, *buy.expires_at, *v2);
    CHECK(grace_end(late) == *buy.expires_at + 10 * 24h);
    CHECK(view_deadlines(late, p2).release_at == *buy.expires_at + 15 * 24h);
    REQUIRE(late.phase);
    CHECK(late.phase->version == 2);
}
