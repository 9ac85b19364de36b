// The policy table in force, changeable while the daemon runs (issue 15; README.md "Policy
// table"; docs/rules.md "Policy changes at run time"). `serve --policy FILE` names a JSON file of
// overrides (format in ledger/policy.h); it is read at start and again on SIGHUP. Each change of
// the table in force appends a `policy.changed` event (the whole table, its SHA-256, the new
// `policy_version`) to stream `policy` before any decision is made under it, so `verify` judges
// each event under the table whose version its metadata names.
//
// Several daemons on one database share the stream: each first adds the versions the log holds,
// then appends only if the stream did not move meanwhile (its expected version), so two daemons
// loading the same file write one event. Daemons given different files take turns writing their
// table: give all of them the same file.
#pragma once

#include "ledger/clock.h"
#include "ledger/policy.h"

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>

namespace mqledger {

namespace store {
class event_store;
}
class db_pool;

/// A policy file that cannot be used (unreadable, not JSON, an unknown key or a bad value): the
/// table in force stays. The message names the file and the fault.
class policy_file_error : public std::runtime_error {
    using std::runtime_error::runtime_error;
};

class policy_service {
public:
    /// `file` empty: the built-in table is the one in force.
    policy_service(policy_registry& registry, store::event_store& store, db_pool& reads, const clock& clk,
                   std::string file);

    /// Reads and validates the file without touching the database. Throws policy_file_error.
    /// Thread-safe.
    [[nodiscard]] boost::json::value read_file() const;

    struct outcome {
        bool changed = false;        // a policy.changed event was appended
        policy_version version = 0;  // the version in force now
        std::string hash;            // its table's SHA-256 (hex)
    };
    /// Adds the versions the log records to the registry, then makes the file's table the one in
    /// force: appends `policy.changed` when it differs from the newest version. Throws
    /// policy_file_error (bad file: nothing written), or std::exception when the database fails
    /// (retry later). Thread-safe (serialised).
    outcome apply();

    /// Adds the versions other daemons appended since (the newest logged version is the table in
    /// force for every daemon on the ledger) and returns the version in force now. Writes
    /// nothing. Throws on a database failure or a damaged policy.changed. Thread-safe.
    policy_version refresh();

    /// True once `apply` succeeded: the log's versions are known and the file's table is in force.
    [[nodiscard]] bool loaded() const noexcept { return loaded_.load(); }

private:
    policy_registry& registry_;
    store::event_store& store_;
    db_pool& reads_;
    const clock& clock_;
    std::string file_;
    std::mutex mutex_;
    std::atomic<bool> loaded_{false};
};

} // namespace mqledger
