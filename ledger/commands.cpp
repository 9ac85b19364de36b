#include "ledger/commands.h"

#include <array>

namespace mqledger::commands {

std::string_view name_of(const command& c) noexcept {
    static constexpr std::array<std::string_view, std::variant_size_v<command>> names{
        "purchase", "import", "deploy", "stop", "enable", "renew", "unsubscribe", "force_delete", "delete",
        "change_config", "set_auto_renew", "create_topic", "delete_topic", "create_group", "delete_group",
        "tick", "account_overdue", "account_paid", "open_account", "add_funds", "charge", "record_usage"};
    return names[c.index()];
}

bool is_account_command(const command& c) noexcept {
    return std::holds_alternative<open_account>(c) || std::holds_alternative<add_funds>(c) ||
           std::holds_alternative<charge>(c);
}

} // namespace mqledger::commands
