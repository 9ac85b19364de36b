// The "current state" cache of the projections (DESIGN.md "Projections"): the core's
// `instance_state` and `account_state` as JSON, stored in instance_state.snapshot and
// accounts.snapshot so the daemon loads an instance without replaying its stream.
//
// The encoding is complete and exact: decode(encode(s)) == s for every state whose times lie in
// years 0000–9999 (times use codec::format_time/parse_time). Decoding is strict like the event
// codec: a missing key, an extra key, a wrong JSON kind, an integer out of range or an unknown
// enum name is refused with the dotted path of the field. All functions are pure and
// thread-safe.
#pragma once

#include "ledger/account.h"
#include "ledger/instance.h"

#include <boost/json.hpp>

#include <optional>
#include <string>

namespace mqledger::projections {

/// Every field of `s` as a JSON object with keys in a fixed order. Throws only std::bad_alloc.
[[nodiscard]] boost::json::object encode_snapshot(const instance_state& s);
/// Every field of `a` as a JSON object with keys in a fixed order. Throws only std::bad_alloc.
[[nodiscard]] boost::json::object encode_snapshot(const account_state& a);

/// The instance state of a snapshot, or nothing with `error` set to "path: reason".
[[nodiscard]] std::optional<instance_state> decode_instance_snapshot(const boost::json::value& v, std::string& error);
/// The account state of a snapshot, or nothing with `error` set to "path: reason".
[[nodiscard]] std::optional<account_state> decode_account_snapshot(const boost::json::value& v, std::string& error);

} // namespace mqledger::projections
