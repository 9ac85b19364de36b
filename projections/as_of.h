// Past states (DESIGN.md "Projections": "Past states (`as_of`) come from folding the stream's
// events up to that time"; API.md `GET /v1/instances/{id}?as_of=TIME`).
#pragma once

#include "ledger/account.h"
#include "ledger/instance.h"
#include "ledger/policy.h"

#include <pqxx/pqxx>

#include <string>

namespace mqledger::projections {

/// The instance as of `t`: its stream's events with effective_at <= t folded in version order
/// (`exists` is false when it had not been purchased or imported by then). Throws
/// projection_error or pqxx exceptions. Thread-safe (uses only `tx`).
[[nodiscard]] instance_state instance_as_of(pqxx::transaction_base& tx, const std::string& instance_id, time_point t,
                                            const policy_registry& policies);

/// The account as of `t`, likewise. Throws projection_error or pqxx exceptions. Thread-safe.
[[nodiscard]] account_state account_as_of(pqxx::transaction_base& tx, const std::string& account_id, time_point t,
                                          const policy_registry& policies);

} // namespace mqledger::projections
