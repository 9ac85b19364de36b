#include "ledger/events.h"

#include <array>

namespace mqledger::events {
namespace {
// Index-aligned with the alternatives of `event`; checked at compile time below.
constexpr std::array<std::string_view, 28> names{
    "account.opened", "account.funds_added", "account.charged", "account.refunded",
    "instance.purchased", "instance.imported", "instance.deployed", "instance.stopped", "instance.enabled",
    "instance.renewed", "instance.auto_renew_set", "instance.auto_renew_failed",
    "instance.unsubscribed", "instance.expired", "instance.restored", "instance.suspended", "instance.frozen",
    "instance.force_delete_requested", "instance.released", "instance.deleted",
    "instance.settled", "instance.config_change_started", "instance.config_change_completed",
    "instance.topic_created", "instance.topic_deleted", "instance.group_created", "instance.group_deleted",
    "instance.usage_recorded"};
static_assert(names.size() == std::variant_size_v<event>, "every event alternative needs a type name");
} // namespace

std::string_view type_name(const event& e) noexcept { return names[e.index()]; }

std::vector<std::string_view> all_type_names() { return {names.begin(), names.end()}; }

std::string_view to_string(expiry_cause c) noexcept {
    switch (c) {
    case expiry_cause::term_ended: return "term_ended";
    case expiry_cause::unsubscribed: return "unsubscribed";
    case expiry_cause::overdue: return "overdue";
    }
    return "?";
}

std::string_view to_string(release_cause c) noexcept {
    switch (c) {
    case release_cause::deadline: return "deadline";
    case release_cause::force_delete: return "force_delete";
    }
    return "?";
}

} // namespace mqledger::events

namespace mqledger {
std::string instance_stream(std::string_view id) { return "instance-" + std::string(id); }
std::string account_stream(std::string_view id) { return "account-" + std::string(id); }

namespace {
std::optional<std::string> id_after(std::string_view stream, std::string_view prefix) {
    if (stream.size() <= prefix.size() || !stream.starts_with(prefix)) return std::nullopt;
    return std::string(stream.substr(prefix.size()));
}
} // namespace

std::optional<std::string> instance_id_of(std::string_view stream) { return id_after(stream, "instance-"); }
std::optional<std::string> account_id_of(std::string_view stream) { return id_after(stream, "account-"); }
} // namespace mqledger
