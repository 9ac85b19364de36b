// Schema migrations (sql/NNNN_*.sql, embedded in the binary at build time) and readiness.
#pragma once

#include <string>
#include <vector>

namespace mqledger::store {

struct migration_report {
    std::vector<std::string> applied;   // names applied by this run, in order
    std::vector<std::string> already;   // names that were applied before
};

/// Applies every migration not yet recorded in `schema_migrations`, in order, each in its own
/// transaction. Idempotent. Throws std::runtime_error with a clear message on failure.
migration_report migrate(const std::string& conninfo);

enum class readiness { ready, unreachable, not_migrated };

/// Ready only when the database is reachable and every embedded migration is applied.
/// Never throws.
readiness check_ready(const std::string& conninfo) noexcept;

} // namespace mqledger::store
