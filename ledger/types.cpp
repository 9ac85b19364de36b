#include "ledger/types.h"

#include <array>
#include <utility>

namespace mqledger {
namespace {

template <typename E, std::size_t N>
std::optional<E> parse_from(const std::array<std::pair<E, std::string_view>, N>& names, std::string_view s) noexcept {
    for (const auto& [value, name] : names)
        if (name == s) return value;
    return std::nullopt;
}

template <typename E, std::size_t N>
std::string_view name_of(const std::array<std::pair<E, std::string_view>, N>& names, E v) noexcept {
    for (const auto& [value, name] : names)
        if (value == v) return name;
    return "?";
}

constexpr std::array<std::pair<product, std::string_view>, 4> product_names{{
    {product::kafka, "kafka"}, {product::rabbitmq, "rabbitmq"}, {product::rocketmq, "rocketmq"}, {product::mqtt, "mqtt"}}};
constexpr std::array<std::pair<billing, std::string_view>, 3> billing_names{{
    {billing::subscription, "subscription"}, {billing::payg, "payg"}, {billing::serverless, "serverless"}}};
constexpr std::array<std::pair<state, std::string_view>, 8> state_names{{
    {state::not_deployed, "not_deployed"}, {state::running, "running"}, {state::expired, "expired"},
    {state::stopped, "stopped"}, {state::suspended, "suspended"}, {state::frozen, "frozen"},
    {state::released, "released"}, {state::deleted, "deleted"}}};
constexpr std::array<std::pair<price::unit, std::string_view>, 3> unit_names{{
    {price::unit::monthly, "monthly"}, {price::unit::hourly, "hourly"}, {price::unit::daily, "daily"}}};

} // namespace

std::string_view to_string(product p) noexcept { return name_of(product_names, p); }
std::string_view to_string(billing b) noexcept { return name_of(billing_names, b); }
std::string_view to_string(state s) noexcept { return name_of(state_names, s); }
std::string_view to_string(price::unit u) noexcept { return name_of(unit_names, u); }
std::optional<product> parse_product(std::string_view s) noexcept { return parse_from(product_names, s); }
std::optional<billing> parse_billing(std::string_view s) noexcept { return parse_from(billing_names, s); }
std::optional<state> parse_state(std::string_view s) noexcept { return parse_from(state_names, s); }
std::optional<price::unit> parse_price_unit(std::string_view s) noexcept { return parse_from(unit_names, s); }

} // namespace mqledger
