// A unit of work (DESIGN.md "Domain core"; RULES.md "Accounts and payments", "Time-driven
// events", "Import of existing instances"): everything one command, or one timer instant of one
// account, changes in every stream it touches, decided by ONE pure function of a read-only view.
//
// The unit owns, in one place:
// - the due timers that fire first: every timer of the account's instances due at or before the
//   unit's time, merged across the instances in due order (due time, then instance id, then timer
//   kind), each effective at its deadline;
// - the account-level effects: a bill (any account event) that leaves the account owing starts
//   the overdue path of each of its running pay-as-you-go/serverless instances; a payment that
//   leaves it owing nothing restores each instance on an overdue path. A notice at time t is
//   delivered after every timer due at or before t, to the instances in id order;
// - the command itself (`decide`), its charges, refunds and their effects, and the deadlines it
//   leaves in the past (an import's), which fire at once, effective at the deadline;
// - the step limit of one unit.
//
// The daemon only loads (through `unit_view`), locks, appends the outcome and retries on a version
// conflict; the timer service only chooses which (account, instant) units to run; `verify`
// replays each recorded unit through this same function (ledger/replay.h). Because the order is a
// function of the states alone, timers fired late, in one jump, write exactly the history that
// small on-time steps write.
#pragma once

#include "ledger/account.h"
#include "ledger/commands.h"
#include "ledger/decide.h"
#include "ledger/events.h"
#include "ledger/instance.h"
#include "ledger/policy.h"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <variant>
#include <vector>

namespace mqledger {

/// The read-only view a unit decides from. Implementations load lazily (the daemon, from the
/// projections) or answer from memory (verify's replay, the tests); the unit never writes
/// through it. An implementation may throw (a database failure): the unit passes it on.
class unit_view {
public:
    virtual ~unit_view() = default;
    /// The state of instance `id`; `exists` is false when it is unknown.
    [[nodiscard]] virtual instance_state instance(const std::string& id) const = 0;
    /// The state of account `id`, or nothing when it is unknown.
    [[nodiscard]] virtual std::optional<account_state> account(const std::string& id) const = 0;
    /// Every instance of `account_id` that has a timer (`deadlines`) due at or before `up_to`.
    /// Order does not matter; the unit orders them.
    [[nodiscard]] virtual std::vector<std::string> due_instances(const std::string& account_id,
                                                                 time_point up_to) const = 0;
    /// Every instance of `account_id` whose `notice_of` is `kind` (a superset is harmless: the
    /// unit checks each state again).
    [[nodiscard]] virtual std::vector<std::string> notice_targets(const std::string& account_id,
                                                                  account_notice kind) const = 0;
};

/// What a unit acts on: a client command on an instance or an account, or the timers of one
/// account up to an instant (what the timer service runs).
struct instance_command {
    std::string instance_id;
    commands::command command;
};
struct account_command {
    std::string account_id;
    commands::command command;
};
struct fire_timers {
    std::string account_id;
    time_point up_to{};
};
using unit_command = std::variant<instance_command, account_command, fire_timers>;

/// A timer a unit fired (for metrics and logs).
struct fired_timer {
    std::string instance_id;
    timer_kind kind = timer_kind::expiry;
    time_point due_at{};
    friend bool operator==(const fired_timer&, const fired_timer&) = default;
};

/// A due timer that decided nothing or was refused (a bug or a hand-written log): it is left in
/// place and the unit goes on with the account's other timers.
struct stuck_timer {
    std::string instance_id;
    timer_kind kind = timer_kind::expiry;
    time_point due_at{};
    std::string reason;
};

/// What a unit asked its view about an account's instances as a whole (see
/// `unit_outcome::sets_read`).
struct account_sets_read {
    std::optional<time_point> due_by;       // `due_instances(account, due_by)`; the latest asked
    std::set<account_notice> notices;       // `notice_targets(account, kind)` for each kind
    friend bool operator==(const account_sets_read&, const account_sets_read&) = default;
};

/// The events of a unit, or why its command was refused (then nothing is written, not even the
/// timers it fired first: the timer service fires them in their own units).
struct [[nodiscard]] unit_outcome {
    std::vector<pending_event> events;        // every stream, in order: the append's order
    std::optional<refusal> refused;
    std::vector<fired_timer> fired;
    std::vector<stuck_timer> stuck;
    /// Each stream the events touch, with its version in the view: the append's expected version.
    std::map<std::string, std::int64_t> expected_versions;
    /// Every stream the unit read (written or not), with its version in the view (0: unknown).
    /// An append that also checks the streams it only read (`append_of` does) cannot be written
    /// from a state that was stale when it was decided, whatever cache the view answered from.
    std::map<std::string, std::int64_t> read_versions;
    /// The sets of an account's instances the unit took as complete (by account): everything it
    /// did not load it took to have no timer due by `due_by` and to be no target of `notices`.
    /// An instance another unit creates or changes meanwhile, without touching a stream this one
    /// read, can join such a set; `append_of` hands these sets to the store, which checks them
    /// under the append lock like the versions above (a member the unit did not read is a conflict).
    std::map<std::string, account_sets_read> sets_read;
    /// The state after the unit of every instance and account it loaded (touched or not).
    std::map<std::string, instance_state> instances;
    std::map<std::string, account_state> accounts;
    [[nodiscard]] bool ok() const noexcept { return !refused.has_value(); }
};

/// The most timers one unit fires. Beyond it the unit is refused (`conflict`, reason
/// "catching_up"): a command waits until the timer service, whose units are one instant each,
/// has caught the account up.
inline constexpr std::size_t max_timers_per_unit = 200000;

/// Decides the whole unit `c` at `now` under `policies` (the table in force), reading `view`
/// (RULES.md, every section; the order is described at the top of this header). Pure: the same
/// view answers give the same outcome. Thread-safe when `view` is.
unit_outcome decide_unit(const unit_view& view, const unit_command& c, time_point now, const policy_set& policies);

/// The account a unit works on: the command's account, the instance's account (for a purchase or
/// an import, the one it names), or nothing for an unknown instance.
[[nodiscard]] std::optional<std::string> unit_account(const unit_view& view, const unit_command& c);

// ---- the unit record (event metadata `unit`) ----

/// What `verify` needs to decide a recorded unit again: the command, when it was decided, and how
/// many events it wrote (its boundary in the log).
struct unit_record {
    unit_command command;
    time_point at{};
    std::int64_t events = 0;
};
bool operator==(const unit_record& a, const unit_record& b);

/// The `unit` metadata object of an append (API.md "Ledger": metadata). Deterministic; throws only
/// std::bad_alloc. Commands are written with a `type` (the API's names: `purchase`, `import`,
/// `deploy`, …, `add_funds`, `charge`; `fire_timers` for a timer unit) and their fields.
[[nodiscard]] boost::json::object encode_unit(const unit_record& u);

/// Decodes a `unit` metadata object strictly, or nothing with `error` set to "path: reason".
[[nodiscard]] std::optional<unit_record> decode_unit(const boost::json::value& v, std::string& error);

} // namespace mqledger
