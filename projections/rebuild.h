// Rebuilding and verifying the projections from the log (DESIGN.md "Projections": "each can
// also be rebuilt from position 0, and `verify` proves the rebuild equals the live tables").
// Neither has side effects beyond the projection tables: no timer fires, no event is written.
#pragma once

#include "ledger/policy.h"
#include "projections/projector.h"

#include <pqxx/pqxx>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace mqledger::projections {

/// Folds the whole log, from position 0, in one pass (keyset pages over the primary key) into
/// memory. Throws projection_error or pqxx exceptions. Thread-safe (uses only `tx`).
/// Told after every page folded: the last position folded and the head when the pass began.
using rebuild_progress = std::function<void(std::int64_t position, std::int64_t head)>;

[[nodiscard]] projection_set fold_log(pqxx::transaction_base& tx, const policy_registry& policies, projection_set start = {},
                                      const rebuild_progress& progress = {});

struct rebuild_report {
    std::int64_t position = 0;       // last position folded
    std::size_t instances = 0;
    std::size_t accounts = 0;
    std::size_t timers = 0;
};

/// Rebuilds every projection table from the log: folds the log in memory without locking,
/// then in ONE transaction locks the projection tables (appends with the projector wait),
/// folds the events committed meanwhile, writes the result into scratch (temporary) tables and
/// swaps it in, so readers see either the old or the new tables, never a mix. Grants, indexes
/// and the pending_releases view are untouched. Needs the app role's privileges only. Throws
/// projection_error or pqxx exceptions (nothing changed then). Thread-safe.
rebuild_report rebuild(const std::string& conninfo, const policy_registry& policies,
                       const rebuild_progress& progress = {});

/// Where the projections stand against the log.
struct lag {
    std::int64_t checkpoint = 0;   // the last position the projections folded
    std::int64_t head = 0;         // the last position of the log
};
/// The lag when the projections are behind the log (a migration emptied them, or events were
/// appended by something other than the daemon's store), else nothing. Throws pqxx exceptions
/// (also when the database is not migrated yet). Thread-safe.
[[nodiscard]] std::optional<lag> behind(const std::string& conninfo);

/// The first difference between the live projections and a rebuild.
struct difference {
    std::string table;  // "instance_state", "timers", …
    std::string side;   // "live": the row is only in the live table; "rebuilt": only in the rebuild
    std::string row;    // the row as JSON
};

/// Rebuilds in memory (into scratch tables, rolled back) and compares every projection table
/// with it row by row, in a snapshot consistent with the log it folded. Nothing when equal.
/// Throws projection_error or pqxx exceptions. Thread-safe.
[[nodiscard]] std::optional<difference> compare(const std::string& conninfo, const policy_registry& policies);

} // namespace mqledger::projections
