// The projections' snapshot codec (projections/snapshot.h) for the facts the rules core folds
// beyond the events' own fields. No database needed; it lives here because the snapshot codec is
// part of the projections library.
#include "ledger/instance.h"
#include "ledger/local_time.h"
#include "projections/snapshot.h"

#include <boost/json.hpp>
#include <catch2/catch.hpp>

#include <string>

using namespace mqledger;
namespace proj = mqledger::projections;

TEST_CASE("snapshot: K's deployed fact round-trips, and a snapshot without it is refused (strict)", "[projections]") {
    instance_state s;
    s.exists = true;
    s.id = "ks-1";
    s.account_id = "acc-1";
    s.prod = product::kafka;
    s.bill = billing::subscription;
    s.timezone = "Asia/Shanghai";
    s.current = state::not_deployed;
    s.state_since = parse_local("2026-04-15 14:00", find_zone("Asia/Shanghai"));
    s.expires_at = parse_local("2026-05-13 14:00", find_zone("Asia/Shanghai"));
    s.rate = price{price::unit::monthly, 30000};
    s.term_months = 1;
    for (const bool deployed : {false, true}) {
        s.deployed = deployed;
        std::string error;
        const auto encoded = proj::encode_snapshot(s);
        CHECK(encoded.at("deployed") == deployed);
        const auto back = proj::decode_instance_snapshot(boost::json::value(encoded), error);
        REQUIRE(back);
        CHECK(*back == s);
    }
    auto without = proj::encode_snapshot(s);
    without.erase("deployed");
    std::string error;
    CHECK_FALSE(proj::decode_instance_snapshot(boost::json::value(without), error));
    CHECK(error == "deployed: missing");
}

TEST_CASE("snapshot: usage state (issue 15) round-trips: per-unit rates of the price and of each mark, pending "
          "records, seen record ids, a snapshot without them (written before) reads as none",
          "[projections][usage]") {
    const auto t = parse_local("2026-04-15 14:00", find_zone("Asia/Shanghai"));
    instance_state s;
    s.exists = true;
    s.id = "r-1";
    s.account_id = "acc-1";
    s.prod = product::rocketmq;
    s.bill = billing::payg;
    s.timezone = "Asia/Shanghai";
    s.current = state::running;
    s.rate = price{price::unit::hourly, 500};
    const auto plain = proj::encode_snapshot(s);
    CHECK_FALSE(plain.at("price").as_object().contains("per_unit"));
    CHECK_FALSE(plain.contains("usage_pending"));
    CHECK_FALSE(plain.contains("usage_seen"));

    s.rate.per_unit = {{"storage_gb_hours", 4}};
    s.marks = {{t, state::running, 500, {{"storage_gb_hours", 4}}}, {t + std::chrono::hours(1), state::stopped, 500, {}}};
    s.usage_pending = {{"u-1", "storage_gb_hours", 250, t, t + std::chrono::minutes(45), 4, t + std::chrono::minutes(50)}};
    s.usage_seen = {{"u-1", {"storage_gb_hours", 250, t, t + std::chrono::minutes(45)}},
                    {"u.0 weird id", {"storage_gb_hours", 1, t, t + std::chrono::minutes(1)}}};
    std::string error;
    const auto encoded = proj::encode_snapshot(s);
    const auto back = proj::decode_instance_snapshot(boost::json::value(encoded), error);
    INFO(error);
    REQUIRE(back);
    CHECK(*back == s);
    auto bad = encoded;
    bad["usage_pending"].as_array()[0].as_object()["zzz"] = 1;
    CHECK_FALSE(proj::decode_instance_snapshot(boost::json::value(bad), error));
    CHECK(error == "usage_pending[0].zzz: unexpected key");
}
