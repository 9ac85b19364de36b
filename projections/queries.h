// The typed reads of the projections (sql/0002_projections.sql, 0004_units.sql): the one home of
// the SQL that the engine, the API routes and the metrics read with. Each takes the caller's
// transaction (any kind; a nontransaction for single statements) and throws pqxx exceptions, or
// projection_error for a row that does not parse. The statements are prepared on every pooled
// connection by `prepare_reads`.
#pragma once

#include "ledger/account.h"
#include "ledger/instance.h"
#include "ledger/types.h"
#include "ledger/unit.h"
#include "ledger/store/event_store.h"

#include <pqxx/pqxx>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace mqledger::projections {

/// Prepares the statements below on `c` (pass to the read pool).
void prepare_reads(pqxx::connection& c);

/// An instance's state, or nothing when it is unknown.
[[nodiscard]] std::optional<instance_state> load_instance(pqxx::transaction_base& tx, const std::string& id);
/// An account's state, or nothing when it is unknown.
[[nodiscard]] std::optional<account_state> load_account(pqxx::transaction_base& tx, const std::string& id);

/// A state with its account's instances that have a timer due by the time asked (one round
/// trip; when no timer at all is due by then, the usual case, one probe of the timers' due_at
/// index says so and the account's instances are not looked at).
template <typename State>
struct with_due {
    std::optional<State> state;
    std::vector<std::string> due;   // meaningful only when `state` is set
};
[[nodiscard]] with_due<instance_state> load_instance_with_due(pqxx::transaction_base& tx, const std::string& id,
                                                              time_point due_by);
[[nodiscard]] with_due<account_state> load_account_with_due(pqxx::transaction_base& tx, const std::string& id,
                                                            time_point due_by);
/// The account's instances with a timer due at or before `up_to`.
[[nodiscard]] std::vector<std::string> due_instances(pqxx::transaction_base& tx, const std::string& account_id,
                                                     time_point up_to);
/// The account's instances whose recorded account notice (instance_state.account_notice) is `kind`.
/// The instance streams that an incremental audit must load with `streams`: those of every
/// account written in `streams` or owning an instance written in them (instance_state.account_id).
[[nodiscard]] std::vector<std::string> instance_streams_of_accounts_touching(pqxx::transaction_base& tx,
                                                                             const std::vector<std::string>& streams);

[[nodiscard]] std::vector<instance_state> notice_targets(pqxx::transaction_base& tx, const std::string& account_id,
                                                         account_notice kind);
/// Many states by id (those that exist).
[[nodiscard]] std::map<std::string, instance_state> load_instances(pqxx::transaction_base& tx,
                                                                   const std::vector<std::string>& ids);
[[nodiscard]] std::map<std::string, account_state> load_accounts(pqxx::transaction_base& tx,
                                                                 const std::vector<std::string>& ids);

/// The sets of an account's instances a unit took as complete (`unit_outcome::sets_read`) as the
/// store's stream sets (scope: the account's stream): the account's instances with a timer due
/// by a time (the timers table), or whose account_notice is a kind. The engine sends them with
/// each append, with the facts of each instance it writes (`member_facts_of`: its earliest
/// timer and its notice); `set_reader` reads their members for the store.
[[nodiscard]] std::vector<store::stream_set> stream_sets_of(const std::string& account_id, const account_sets_read& sets);
/// The facts of an instance whose timers (its `deadlines`) and notice are these; of an instance
/// that does not exist, or a stream that is no instance: no timers and no notice.
[[nodiscard]] std::string member_facts_of(const std::vector<timer>& timers, std::optional<account_notice> notice);
[[nodiscard]] store::set_reader set_reader();

/// The earliest due time of any timer, or nothing.
[[nodiscard]] std::optional<time_point> earliest_due(pqxx::transaction_base& tx);
/// A timer pass: accounts with a timer due by `up_to`, each with its instances due by then, in
/// account order; at most `max_rows` (account, instance) pairs, and `full` when there were more
/// (the last account may then be incomplete: the caller drops it).
[[nodiscard]] std::vector<std::pair<std::string, std::vector<std::string>>> due_pass(pqxx::transaction_base& tx,
                                                                                     time_point up_to,
                                                                                     std::size_t max_rows, bool& full);

/// `GET /v1/instances`: a page of instances in id order after `cursor`, filtered (an empty
/// filter matches all; without a state filter, deleted instances are left out).
struct instance_filter {
    std::string state, product, billing, account_id;
};
struct instance_page {
    std::vector<instance_state> items;
    bool more = false;   // there is a next page (after the last item)
};
[[nodiscard]] instance_page list_instances(pqxx::transaction_base& tx, const instance_filter& f, const std::string& cursor,
                                           std::int64_t limit);

/// `GET /v1/releases/pending`: soonest first, at or before `before` when given.
struct pending_release {
    std::string instance_id, state, cause;
    time_point release_at;
};
[[nodiscard]] std::vector<pending_release> pending_releases(pqxx::transaction_base& tx, std::optional<time_point> before,
                                                            std::int64_t limit);

/// The figures the metrics mirror, at `now`.
struct figures {
    std::vector<std::tuple<std::string, std::string, std::string, std::int64_t>> instances;   // product, billing, state, n
    std::int64_t timers_pending = 0;
    std::int64_t releases_next_24h = 0;
    std::int64_t releases_next_7d = 0;
    std::int64_t accounts_overdue = 0;
    std::int64_t head_position = 0;
};
[[nodiscard]] figures read_figures(pqxx::transaction_base& tx, time_point now);

} // namespace mqledger::projections
