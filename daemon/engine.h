// The command engine (DESIGN.md "Shape"): runs units of work (ledger/unit.h). For a command it
// leases a read connection, gives the core a view that takes states from the engine's bounded
// cache or loads them from the projections (daemon/state_cache.h), lets
// `decide_unit` decide every event of the unit (timers already due, the command, its effects on
// the account and the account's other instances), and appends them as ONE atomic,
// optimistically-checked request through the event store, whose observer updates the projections
// in the same transaction. A version conflict (another request or daemon got there first) runs
// the whole unit again from fresh state; a refusal writes nothing. It holds no rule: it loads,
// locks, appends and retries.
//
// The timer service's `fire_due` runs timer units: round by round (each distinct due instant in
// order), one unit per account with timers due then, loaded in bulk, one append each.
#pragma once

#include "daemon/db_pool.h"
#include "daemon/state_cache.h"

#include "ledger/account.h"
#include "ledger/clock.h"
#include "ledger/commands.h"
#include "ledger/decide.h"
#include "ledger/instance.h"
#include "ledger/policy.h"
#include "ledger/unit.h"
#include "ledger/store/event_store.h"

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace mqledger {

/// Who asks, and the HTTP preconditions of the request (API.md "Idempotency-Key", "If-Match").
struct request_meta {
    std::string actor = "anonymous";
    std::optional<std::string> idempotency_key;
    std::string fingerprint;                  // what "the same request" means (method, path, body)
    std::optional<std::int64_t> if_match;     // the instance's (or account's) version
    std::string correlation_id;
};

enum class outcome_kind {
    ok,                    // appended (or nothing to append), or an idempotent replay
    refused,               // the core refused: `refused` says why; nothing written
    version_mismatch,      // If-Match differs: `actual_version`
    idempotency_mismatch,  // the key was used with another request
    unavailable,           // the database failed; nothing written (or, as `message` says, unknown)
    overloaded,            // the writer's queue is full; nothing written: retry later
    internal,              // a bug or an unreadable projection row: `message`; nothing written
};

struct command_outcome {
    outcome_kind kind = outcome_kind::ok;
    std::optional<refusal> refused;
    std::int64_t actual_version = 0;
    std::string message;
    bool replayed = false;
    /// The target after the command (instance commands / account commands).
    std::optional<instance_state> instance;
    std::optional<account_state> account;
    /// What this request appended (empty for a replay or a moot command).
    std::vector<store::recorded_event> written;
};

/// What the engine tells the rest of the daemon (metrics, logs, the timer service).
struct engine_hooks {
    /// After every successful append: the events written and the append's duration.
    std::function<void(const std::vector<store::recorded_event>&, double seconds)> appended;
    /// A timer fired: kind, due time and how late (now − due) it fired.
    std::function<void(const std::string& instance_id, timer_kind kind, time_point due, duration late)> fired;
    /// The earliest deadline of the instances a unit just wrote (to arm the timer earlier).
    std::function<void(time_point due)> deadline;
    /// After every successful append: the unit (with the stream versions it read) and what it
    /// wrote (the fault-injection harness checks every read against the log).
    std::function<void(const unit_outcome&, const std::vector<store::recorded_event>&)> unit_written;
    /// False while nothing may be decided yet (the policy versions the log records are not
    /// loaded): commands answer unavailable and timers wait. Empty: always ready.
    std::function<bool()> ready;
};

/// The append of a decided unit (`decide_unit` at `at`): one request, every touched stream
/// checked against the version the unit read it at, so a concurrent writer makes it fail instead
/// of interleave. The unit's record (command, time, size) goes into the metadata `unit` of its
/// first event, for `verify`; every event carries the actor, idempotency key, correlation id,
/// policy and schema versions. Thread-safe.
[[nodiscard]] store::append_request append_of(const unit_outcome& o, const unit_command& c, time_point at,
                                              const request_meta& meta, policy_version version);

class engine {
public:
    /// Everything must outlive the engine. `cache_entries`: the state cache's bound (0: none).
    engine(db_pool& reads, store::event_store& store, const policy_registry& policies, const mqledger::clock& clk,
           engine_hooks hooks = {}, std::size_t cache_entries = 0);

    /// Runs an instance command on instance `id` (for purchase and import: the new id). Blocks
    /// until its batch committed. Never throws but std::bad_alloc (failures are outcomes).
    /// Thread-safe.
    [[nodiscard]] command_outcome execute_instance(const std::string& id, const commands::command& c,
                                                   const request_meta& meta);
    /// Runs an account command on account `id`. Blocks; thread-safe.
    [[nodiscard]] command_outcome execute_account(const std::string& id, const commands::command& c,
                                                  const request_meta& meta);

    /// Fires every timer due at or before `up_to`: one unit per account, each firing the
    /// account's timers in due order, effective at their deadlines; returns how many fired. Throws store_unavailable when the
    /// database fails (what fired so far stays fired). Thread-safe, but callers serialise it.
    std::size_t fire_due(time_point up_to);

    /// The earliest due time among all timers, or nothing. Throws pqxx exceptions.
    [[nodiscard]] std::optional<time_point> earliest_due();

    /// The instance's current state from the projections (`exists` false when unknown).
    /// Throws pqxx exceptions. Thread-safe.
    [[nodiscard]] instance_state load_instance(const std::string& id);
    [[nodiscard]] std::optional<account_state> load_account(const std::string& id);

    [[nodiscard]] const policy_registry& policies() const noexcept { return policies_; }

    /// The state cache (metrics; a projection rebuild clears it).
    [[nodiscard]] state_cache& cache() noexcept { return cache_; }

    /// Statements every pooled connection prepares (pass to db_pool).
    static void prepare(pqxx::connection& c);

private:
    command_outcome execute(bool account_target, const std::string& id, const commands::command& c,
                            const request_meta& meta);

    /// The soonest deadline of the instances a unit wrote (to arm the timer service earlier).
    [[nodiscard]] std::optional<time_point> earliest_deadline(const unit_outcome& o) const;
    /// Drops every stream the unit read from the cache / keeps every state it left.
    void forget(const unit_outcome& o);
    void remember(const unit_outcome& o);
    /// Tells the hooks about an appended unit.
    void report(const unit_outcome& o, const std::vector<store::recorded_event>& written, double seconds, time_point now);

    db_pool& reads_;
    store::event_store& store_;
    const policy_registry& policies_;
    const mqledger::clock& clock_;
    engine_hooks hooks_;
    state_cache cache_;
    std::mutex fire_mutex_;
    // Commands on one instance (and on one account) run one at a time within this daemon, so
    // they queue instead of failing each other's version checks; other daemons and the timer
    // rounds are still caught by the checks. Lock order: instance stripe, then account stripe.
    static constexpr std::size_t stripes = 1024;
    std::array<std::mutex, stripes> instance_locks_;
    std::array<std::mutex, stripes> account_locks_;   // one fire_due at a time: rounds must not interleave
};

} // namespace mqledger
