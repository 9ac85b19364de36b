// The JSON shapes API.md answers with: the instance view, the account view and the event
// envelope. Pure functions of the core's states; thread-safe.
#pragma once

#include "ledger/account.h"
#include "ledger/instance.h"
#include "ledger/policy.h"
#include "ledger/store/event_store.h"

#include <boost/json/object.hpp>

#include <string>

namespace mqledger::views {

/// API.md `GET /v1/instances/{id}`: the state, its flags and actions at `now`, the deadlines that
/// apply, what is pending, the configuration, price, auto-renewal, topics, groups and version.
[[nodiscard]] boost::json::object instance(const instance_state& s, const policy& p, time_point now);

/// API.md `GET /v1/accounts/{id}`.
[[nodiscard]] boost::json::object account(const std::string& id, const account_state& a);

/// API.md's event: position, stream, stream_version, type, effective_at, recorded_at, data,
/// metadata, hash (and prev_hash, so an export verifies offline).
[[nodiscard]] boost::json::object event(const store::recorded_event& e);

} // namespace mqledger::views
