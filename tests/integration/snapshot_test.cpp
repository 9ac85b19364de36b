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
