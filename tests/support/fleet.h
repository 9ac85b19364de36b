// The tests' daemon in memory: every command and every timer round is a unit of work decided by
// the core's `decide_unit` against a `memory_view`, exactly as the engine (against the
// projections) and the timer service (one unit per account per due instant) run them. Holds no
// rule of its own. Each unit is logged as `verify` would read it, so a test can replay the log
// with `ledger_replay`, or hand each unit to a real store (`on_unit`).
#pragma once

#include "ledger/memory_view.h"
#include "ledger/replay.h"
#include "ledger/unit.h"

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace mqledger::test {

/// A unit as the log holds it.
struct logged_unit {
    unit_record record;
    policy_version policy = current_policy_version;
    std::vector<pending_event> events;
    unit_outcome outcome;
};

class fleet {
public:
    explicit fleet(policy_set p = policy_set::defaults()) : policies(std::move(p)) {}

    policy_set policies;
    memory_view view;
    time_point now{};
    std::vector<logged_unit> log;
    /// Called with each unit before it is absorbed (e.g. to append it to a real store).
    std::function<void(const logged_unit&)> on_unit;

    /// Runs one unit decided at `at` (timers are not fired first: the unit catches up its own
    /// account). A success with events is logged and absorbed; the outcome is returned either way.
    unit_outcome run(const unit_command& c, time_point at) {
        now = std::max(now, at);
        auto o = decide_unit(view, c, at, policies);
        if (!o.ok() || o.events.empty()) return o;
        logged_unit u{unit_record{c, at, static_cast<std::int64_t>(o.events.size())}, policies.version(), o.events, o};
        if (on_unit) on_unit(u);
        view.absorb(o, policies);
        log.push_back(std::move(u));
        return o;
    }

    /// The timer service on time: each distinct due instant up to `t`, in order, one unit per
    /// account due then, decided at that instant. Throws when a unit is refused or a timer is
    /// stuck (a rule bug). Returns the timers fired.
    std::size_t fire_until(time_point t) {
        std::size_t fired = 0;
        std::optional<time_point> floor;
        for (;;) {
            const auto at = view.earliest_due(floor);
            if (!at || *at > t) break;
            floor = at;
            for (const auto& account : view.accounts_due_at(*at)) fired += checked(run(fire_timers{account, *at}, std::max(now, *at)));
        }
        now = std::max(now, t);
        return fired;
    }

    /// The timer service after downtime: one unit per account with anything due by `t`, all
    /// decided at `t`, firing everything due in one jump.
    std::size_t fire_late(time_point t) {
        std::size_t fired = 0;
        for (const auto& account : view.accounts_due_by(t)) fired += checked(run(fire_timers{account, t}, t));
        now = std::max(now, t);
        return fired;
    }

    /// Every logged unit replayed by `verify`'s replay; the first finding, if any.
    [[nodiscard]] std::optional<replay_finding> verify(const policy_registry& registry) const {
        return replay_log(registry, to_log());
    }

    /// The log as `verify` reads it: positions, stream versions, unit records.
    [[nodiscard]] std::vector<logged_event> to_log() const {
        std::vector<logged_event> out;
        std::map<std::string, std::int64_t> versions;
        for (const auto& u : log) {
            const auto unit = boost::json::value(encode_unit(u.record));
            for (const auto& pe : u.events) {
                logged_event le;
                le.position = static_cast<std::int64_t>(out.size()) + 1;
                le.stream = pe.stream;
                le.stream_version = ++versions[pe.stream];
                le.data = pe.data;
                le.effective_at = pe.effective_at;
                le.recorded_at = u.record.at;
                le.policy = u.policy;
                if (&pe == &u.events.front()) le.unit = unit;   // the record rides on the first event
                out.push_back(std::move(le));
            }
        }
        return out;
    }

    /// Replays a log (possibly a mutated copy of `to_log()`); the first finding, if any.
    [[nodiscard]] static std::optional<replay_finding> replay_log(const policy_registry& registry,
                                                                  const std::vector<logged_event>& events) {
        ledger_replay replay(registry);
        for (const auto& e : events)
            if (auto bad = replay.feed(e)) return bad;
        return replay.finish();
    }

private:
    static std::size_t checked(const unit_outcome& o) {
        if (!o.ok()) throw std::logic_error("a timer unit was refused: " + o.refused->message);
        if (!o.stuck.empty()) throw std::logic_error("a due timer is stuck: " + o.stuck.front().reason);
        return o.fired.size();
    }
};

} // namespace mqledger::test
