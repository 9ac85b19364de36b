// Internal to projections/: the rows of the projection tables as JSON arrays and the multi-row
// statements that write them (`jsonb_to_recordset`, one round trip per table). The projector and
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

/// The multi-row statements into `table` (a live table or a scratch copy with the same columns)
/// as SQL text, `rows_json` being a JSON array of rows quoted in as a literal (no parameters, so
/// they can travel with other statements in one round trip). With `upsert`, existing rows (by
/// primary key) are replaced.
[[nodiscard]] std::string instances_sql(pqxx::transaction_base& tx, const std::string& table, const std::string& rows_json,
                                        bool upsert);
[[nodiscard]] std::string timers_sql(pqxx::transaction_base& tx, const std::string& table, const std::string& rows_json);
[[nodiscard]] std::string accounts_sql(pqxx::transaction_base& tx, const std::string& table, const std::string& rows_json,
                                       bool upsert);
/// rows: {product, billing, state, count}; with `add`, counts are added to existing ones and
/// rows that reach zero are deleted (two statements).
[[nodiscard]] std::string counts_sql(pqxx::transaction_base& tx, const std::string& table, const std::string& rows_json,
                                     bool add);
[[nodiscard]] std::string checkpoint_sql(pqxx::transaction_base& tx, const std::string& table, std::int64_t position);
/// DELETE of every timer of the given instances.
[[nodiscard]] std::string delete_timers_sql(pqxx::transaction_base& tx, const std::string& table,
                                            const std::vector<std::string>& ids);

/// The same statements run at once, in chunks so that no single statement grows without bound
/// (a rebuild of a large fleet).
void write_instances(pqxx::transaction_base& tx, const std::string& table, const boost::json::array& rows, bool upsert);
void write_timers(pqxx::transaction_base& tx, const std::string& table, const boost::json::array& rows);
void write_accounts(pqxx::transaction_base& tx, const std::string& table, const boost::json::array& rows, bool upsert);
void write_counts(pqxx::transaction_base& tx, const std::string& table, const boost::json::array& rows, bool add);
void write_checkpoint(pqxx::transaction_base& tx, const std::string& table, std::int64_t position);

/// A JSON array of strings, for `= ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))`.
[[nodiscard]] std::string json_list(const std::vector<std::string>& ids);

} // namespace mqledger::projections::detail
