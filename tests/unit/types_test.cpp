#include "ledger/events.h"
#include "ledger/types.h"

#include <catch2/catch.hpp>

using namespace mqledger;

TEST_CASE("vocabulary: every product, billing model and state round-trips through its API name") {
    for (auto p : {product::kafka, product::rabbitmq, product::rocketmq, product::mqtt})
        CHECK(parse_product(to_string(p)) == p);
    for (auto b : {billing::subscription, billing::payg, billing::serverless})
        CHECK(parse_billing(to_string(b)) == b);
    for (auto s : {state::not_deployed, state::running, state::expired, state::stopped, state::suspended,
                   state::frozen, state::released, state::deleted})
        CHECK(parse_state(to_string(s)) == s);
    CHECK_FALSE(parse_product("kafka ").has_value());
    CHECK_FALSE(parse_billing("Subscription").has_value());
}

TEST_CASE("vocabulary: event type names are the dotted names of API.md") {
    CHECK(events::type_name(events::released{}) == "instance.released");
    CHECK(events::type_name(events::funds_added{}) == "account.funds_added");
    CHECK(events::type_name(events::group_deleted{}) == "instance.group_deleted");
}
