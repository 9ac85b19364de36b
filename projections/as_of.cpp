#include "projections/as_of.h"

#include "projections/projector.h"

namespace mqledger::projections {

instance_state instance_as_of(pqxx::transaction_base& tx, const std::string& instance_id, time_point t,
                              const policy_registry& policies) {
    projection_set set;
    for (const auto& e : store::read_stream(tx, instance_stream(instance_id), t)) fold(set, e, policies);
    if (auto it = set.instances.find(instance_id); it != set.instances.end()) return it->second;
    instance_state none;
    none.id = instance_id;
    return none;
}

account_state account_as_of(pqxx::transaction_base& tx, const std::string& account_id, time_point t,
                            const policy_registry& policies) {
    projection_set set;
    for (const auto& e : store::read_stream(tx, account_stream(account_id), t)) fold(set, e, policies);
    if (auto it = set.accounts.find(account_id); it != set.accounts.end()) return it->second;
    return {};
}

} // namespace mqledger::projections
