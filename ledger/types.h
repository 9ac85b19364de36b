// The vocabulary of mqledger (RULES.md "Vocabulary"): products, billing models, canonical states,
// prices, RocketMQ configuration, times and money. Plain values; thread-safe to share when const.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace mqledger {

/// Money is an integer number of minor units (RULES.md "Money"). Never a floating point.
using money = std::int64_t;

/// An instant in UTC with microsecond resolution. Local wall-clock rules convert through date/tz.
using time_point = std::chrono::sys_time<std::chrono::microseconds>;
using duration = std::chrono::microseconds;

enum class product { kafka, rabbitmq, rocketmq, mqtt };
enum class billing { subscription, payg, serverless };
enum class state { not_deployed, running, expired, stopped, suspended, frozen, released, deleted };

/// Stable lower-case names used in the API, the events and the database.
[[nodiscard]] std::string_view to_string(product p) noexcept;
[[nodiscard]] std::string_view to_string(billing b) noexcept;
[[nodiscard]] std::string_view to_string(state s) noexcept;
[[nodiscard]] std::optional<product> parse_product(std::string_view s) noexcept;
[[nodiscard]] std::optional<billing> parse_billing(std::string_view s) noexcept;
[[nodiscard]] std::optional<state> parse_state(std::string_view s) noexcept;

/// A price: `monthly` for subscriptions, `hourly` for Kafka/RocketMQ payg and serverless (and
/// RabbitMQ payg), `daily` for MQTT payg (API.md "Instances"); plus optional per-unit rates of
/// metered usage (issue 15): metric name → minor units per unit of a usage record's quantity.
/// Only the metrics of the instance's policy (`policy::usage_metrics`) are accepted (decide).
/// Encoded only when non-empty, so prices written before usage billing are unchanged.
struct price {
    enum class unit { monthly, hourly, daily };
    unit per = unit::monthly;
    money amount = 0;
    std::map<std::string, money> per_unit{};
    friend bool operator==(const price&, const price&) = default;
};
[[nodiscard]] std::string_view to_string(price::unit u) noexcept;
[[nodiscard]] std::optional<price::unit> parse_price_unit(std::string_view s) noexcept;

/// RocketMQ configuration (RULES.md "RocketMQ configuration changes"). Storage is not a
/// configuration item. Editions order: standard < professional < enterprise_platinum.
struct instance_config {
    std::string edition = "standard";        // standard | professional | enterprise_platinum
    std::string sub_category = "cluster";    // standalone | cluster
    std::int64_t tps = 0;                    // computing specification
    bool internet_access = false;
    std::int64_t bandwidth_mbps = 0;
    friend bool operator==(const instance_config&, const instance_config&) = default;
};

/// Auto-renewal setting (RULES.md RabbitMQ "Auto-renewal"): first attempt at 03:00 local on the
/// calendar day `days_before` days before the expiry date.
struct auto_renew_setting {
    bool enabled = false;
    std::int32_t days_before = 7;
    friend bool operator==(const auto_renew_setting&, const auto_renew_setting&) = default;
};

} // namespace mqledger
