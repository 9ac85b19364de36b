// The projector (DESIGN.md "Projections", "Timers"): folds recorded events onto the current
// instance and account states and writes the projection tables (sql/0002_projections.sql) in the
// append transaction, as the store's batch observer, so reads are consistent with the log.
#pragma once

#include "ledger/account.h"
#include "ledger/events.h"
#include "ledger/instance.h"
#include "ledger/policy.h"
#include "ledger/unit.h"
#include "ledger/store/event_store.h"

#include <pqxx/pqxx>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <tuple>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mqledger::projections {

/// A recorded event the projections cannot follow (undecodable data, bad metadata, a snapshot
/// that does not parse). Thrown from the observer, it fails the whole batch: nothing is written.
class projection_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The checkpoint name the projector and rebuild keep in projection_checkpoint.
inline constexpr std::string_view checkpoint_name = "projections";

// Stream names are the core's (ledger/events.h).
using mqledger::account_id_of;
using mqledger::instance_id_of;

/// The core state stored in an instance_state / accounts row's `snapshot` column (its text),
/// for the row of `id`. Throws projection_error naming the row when it does not parse.
/// Thread-safe.
[[nodiscard]] instance_state parse_instance_snapshot(std::string_view text, const std::string& id);
[[nodiscard]] account_state parse_account_snapshot(std::string_view text, const std::string& id);

/// A recorded event in the core's terms.
struct decoded_event {
    events::event data;
    time_point effective_at;
    policy_version policy = current_policy_version;
};

/// Decodes a recorded event with the codec. The schema version is metadata `schema_version`
/// (an integer, or an object of type → integer), else the type's current version; the policy
/// version is metadata `policy_version`, else the current one. Throws projection_error.
/// Thread-safe.
[[nodiscard]] decoded_event decode_recorded(const store::recorded_event& e);

/// Every instance and account folded so far, and the last position folded.
struct projection_set {
    std::map<std::string, instance_state> instances;
    std::map<std::string, account_state> accounts;
    std::int64_t position = 0;
};

/// Folds one recorded event into `into` (instance or account by its stream; other streams only
/// advance the position), an instance event under the table of the `policy_version` in its
/// metadata. Throws projection_error (also for a version `policies` does not hold). Not
/// thread-safe on the same set.
void fold(projection_set& into, const store::recorded_event& e, const policy_registry& policies);

/// Every policy version the log records (`policy.changed` events on stream `policy`, issue 15) on
/// top of the built-in defaults (version 1). Throws projection_error when an event's table does
/// not parse or its hash differs from its table's. Thread-safe (uses only `tx`).
[[nodiscard]] policy_registry load_policies(pqxx::transaction_base& tx);

/// The table of one `policy.changed` event: its hash checked against the stored table, the
/// table read. Throws projection_error. Thread-safe.
[[nodiscard]] policy_set read_policy_changed(const store::recorded_event& e);

/// `known` plus the versions the log holds in `tx`'s snapshot, so a pass that folds the log in
/// that snapshot knows every version its events name (one may have been appended after the
/// caller loaded `known`). Throws projection_error. Thread-safe.
[[nodiscard]] policy_registry with_logged_policies(pqxx::transaction_base& tx, const policy_registry& known);

/// The `policy.changed` event data of `set`: its version, table and table hash (SHA-256 of the
/// table's canonical JSON, hex). Thread-safe.
[[nodiscard]] boost::json::object policy_changed_data(const policy_set& set);

/// The name of the stream policy changes are appended to, and their event type.
inline constexpr const char* policy_stream = "policy";
inline constexpr const char* policy_changed_type = "policy.changed";

/// The policy the derived columns of `s` are computed under: the version the state was last
/// written under, else the registry's current one. Thread-safe.
[[nodiscard]] const policy& policy_of(const instance_state& s, const policy_registry& policies);

/// The projection rows of one decided unit, built on the caller's thread (`rows_of`) and handed
/// to the projector through the append (`store::append_request::projection`), so the writer
/// neither reads the states back nor folds the events again ("encode once").
struct unit_rows {
    using count_key = std::tuple<std::string, std::string, std::string>; // product, billing, state
    struct instance_change {
        std::string id;
        std::string row;                        // the instance_state row, JSON object text
        std::optional<count_key> before;        // nothing: the instance did not exist
        count_key after;
        std::vector<timer> timers_before, timers_after;
        /// False when the state before was decided under a policy version this daemon does not
        /// hold yet (another daemon appended it within the last second): its timers cannot be
        /// derived here, so the instance's timer rows are replaced whatever they were.
        bool timers_before_known = true;
        /// The instance after the unit in the store's set terms (`member_facts_of`).
        std::string member_facts;
    };
    std::vector<instance_change> instances;     // every instance the unit wrote to
    std::vector<std::pair<std::string, std::string>> accounts;   // account id, accounts row text
};

/// The rows of the streams `o` writes. `before(id)` answers the state an instance had when the
/// unit read it. Thread-safe.
[[nodiscard]] std::shared_ptr<const unit_rows> rows_of(
    const unit_outcome& o, const std::function<const instance_state&(const std::string&)>& before,
    const policy_registry& policies);

/// Writes the projection rows of the given events inside the caller's transaction.
/// Stateless between batches and const, so one projector may serve several stores.
class projector {
public:
    /// `policies` must outlive the projector.
    explicit projector(const policy_registry& policies) : policies_(policies) {}

    /// The writes (store::batch_writes, parameters from `first_param`) that bring the
    /// projections up to `events` (position order): instance_state (upsert), timers (an
    /// instance's replaced when they changed), accounts (upsert), instance_counts (adjusted by
    /// each state change) and the checkpoint. When every request of the batch carries its
    /// `unit_rows` (`projections`, as `std::shared_ptr<const unit_rows>`), they are merged as they
    /// are; otherwise the touched states are loaded through `tx` (one query per table) and
    /// `events` folded onto them with `evolve`. Throws projection_error or pqxx exceptions.
    /// Thread-safe (const).
    [[nodiscard]] store::batch_writes writes(pqxx::transaction_base& tx, const std::vector<store::recorded_event>& events,
                                             const std::vector<const std::any*>& projections, int first_param) const;

    /// Runs `writes` at once, as one statement (for callers outside the store's writer).
    void apply(pqxx::transaction_base& tx, const std::vector<store::recorded_event>& events) const;

    /// This projector as the store's batch observer; the projector must outlive the store.
    [[nodiscard]] store::batch_observer observer() const;

private:
    const policy_registry& policies_;
};

} // namespace mqledger::projections
