// Internal to projections/: the rows of the projection tables as JSON arrays and the multi-row
// statements that write them (`jsonb_to_recordset` of one bound JSON parameter each). The projector and
// rebuild share them so live and rebuilt rows are byte-for-byte the same derivation.
#pragma once

#include "projections/projector.h"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <string>
#include <tuple>
#include <vector>

namespace mqledger::projections::detail {

using count_key = std::tuple<std::string, std::string, std::string>; // product, billing, state

/// The instance_state row of `s` (which exists). Thread-safe.
[[nodiscard]] boost::json::object instance_row(const instance_state& s, const policy_registry& policies);
/// The timers of `s` (its `deadlines` under its policy), ordered by kind and due time,
/// duplicates removed: what the timers table holds for it. Thread-safe.
[[nodiscard]] std::vector<timer> timers_of(const instance_state& s, const policy_registry& policies);
/// The timer rows of instance `id` for `timers`. Thread-safe.
void timer_rows(const std::string& id, const std::vector<timer>& timers, boost::json::array& out);
/// The timer rows of `s`. Thread-safe.
void timer_rows(const instance_state& s, const policy_registry& policies, boost::json::array& out);
/// The accounts row of `a` under account id `id`. Thread-safe.
[[nodiscard]] boost::json::object account_row(const std::string& id, const account_state& a);
/// The counts key of an existing instance. Thread-safe.
[[nodiscard]] count_key count_key_of(const instance_state& s);

/// The multi-row statements into `table` (a live table or a scratch copy with the same columns),
/// reading their rows from the JSON array bound to `param` (e.g. "$1"). With `upsert`, existing
/// rows (by primary key) are replaced. The projector joins them into the store's one write
/// statement (as common table expressions); rebuild runs them alone.
[[nodiscard]] std::string instances_sql(const std::string& table, const std::string& param, bool upsert);
[[nodiscard]] std::string timers_sql(const std::string& table, const std::string& param);
[[nodiscard]] std::string accounts_sql(const std::string& table, const std::string& param, bool upsert);
/// `param`'s rows: {product, billing, state, count}.
[[nodiscard]] std::string counts_sql(const std::string& table, const std::string& param);

/// The same statements run at once, in chunks so that no single parameter grows without bound
/// (a rebuild of a large fleet).
void write_instances(pqxx::transaction_base& tx, const std::string& table, const boost::json::array& rows, bool upsert);
void write_timers(pqxx::transaction_base& tx, const std::string& table, const boost::json::array& rows);
void write_accounts(pqxx::transaction_base& tx, const std::string& table, const boost::json::array& rows, bool upsert);
void write_counts(pqxx::transaction_base& tx, const std::string& table, const boost::json::array& rows);
void write_checkpoint(pqxx::transaction_base& tx, const std::string& table, std::int64_t position);

/// A JSON array of strings, for `= ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))`.
[[nodiscard]] std::string json_list(const std::vector<std::string>& ids);

} // namespace mqledger::projections::detail
