// The projector (DESIGN.md "Projections", "Timers"): folds recorded events onto the current
// instance and account states and writes the projection tables (sql/0002_projections.sql) in the
// append transaction, as the store's batch observer, so reads are consistent with the log.
#pragma once

#include "ledger/account.h"
#include "ledger/events.h"
#include "ledger/instance.h"
#include "ledger/policy.h"
#include "ledger/store/event_store.h"

#include <pqxx/pqxx>

#include <cstdint>
#include <map>
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
/// advance the position). Throws projection_error. Not thread-safe on the same set.
void fold(projection_set& into, const store::recorded_event& e);

/// The policy the derived columns of `s` are computed under: the version the state was last
/// written under, else the registry's current one. Thread-safe.
[[nodiscard]] const policy& policy_of(const instance_state& s, const policy_registry& policies);

/// Writes the projection rows of the given events inside the caller's transaction.
/// Stateless between batches and const, so one projector may serve several stores.
class projector {
public:
    /// `policies` must outlive the projector.
    explicit projector(const policy_registry& policies) : policies_(policies) {}

    /// Loads the states the batch touches (one query per table), folds `events` (position order)
    /// onto them with `evolve`, and writes instance_state (upsert), timers (replaced from
    /// `deadlines`), accounts (upsert), instance_counts (adjusted by each state change) and the
    /// checkpoint, with multi-row statements through `tx`. Throws projection_error or pqxx
    /// exceptions; the caller's transaction must then be rolled back. Thread-safe (const).
    void apply(pqxx::transaction_base& tx, const std::vector<store::recorded_event>& events) const;

    /// This projector as the store's batch observer; the projector must outlive the store.
    [[nodiscard]] store::batch_observer observer() const;

private:
    const policy_registry& policies_;
};

} // namespace mqledger::projections
