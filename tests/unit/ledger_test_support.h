// Shared fixtures for the rules-core unit tests: one instance and its account in the tests'
// in-memory daemon (tests/support/fleet.h), which runs the core's units of work.
#pragma once

#include "ledger/account.h"
#include "ledger/commands.h"
#include "ledger/decide.h"
#include "ledger/instance.h"
#include "ledger/local_time.h"
#include "ledger/policy.h"
#include "ledger/unit.h"
#include "tests/support/fleet.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace mqledger::test {

namespace cmd = commands;

inline const date::time_zone* zone(std::string_view name) { return find_zone(name); }

/// A UTC instant from "YYYY-MM-DD hh:mm[:ss]" read as wall-clock time in `tz`.
inline time_point at(std::string_view text, std::string_view tz = "Asia/Shanghai") { return parse_local(text, zone(tz)); }
inline time_point utc(std::string_view text) { return parse_local(text, zone("UTC")); }

// One account and its instance (`instance_id`), run through the core's units of work exactly as
// the daemon runs them (tests/support/fleet.h): every command is a unit that fires its account's
// due timers first; `advance_to` is the timer service, on time or late.
struct world {
    fleet driver;
    policy_set& policies = driver.policies;
    std::string instance_id = "i-1";
    std::string account_id = "acc-1";
    instance_state inst;
    account_state acct;
    std::vector<pending_event> history;
    time_point now{};
    bool late_timers = false;                          // fire due timers only when a command comes
    std::vector<std::pair<state, state>> transitions;  // every state change of the instance
    std::size_t events_after_deleted = 0;

    world() = default;
    world(const world& o)
        : driver(o.driver), instance_id(o.instance_id), account_id(o.account_id), inst(o.inst), acct(o.acct),
          history(o.history), now(o.now), late_timers(o.late_timers), transitions(o.transitions),
          events_after_deleted(o.events_after_deleted) {}

    const policy& pol() const { return policies.get(inst.prod, inst.bill); }

    decide_context context() const {
        decide_context ctx;
        ctx.policies = &policies;
        ctx.instance_id = instance_id;
        if (acct.exists) ctx.account = account_facts{acct.balance, acct.overdue_since};
        return ctx;
    }

    // Takes in a unit's events: the history, the instance's transitions, the current states.
    void record(const unit_outcome& o) {
        for (const auto& e : o.events) {
            history.push_back(e);
            if (e.stream != instance_stream(instance_id)) continue;
            const bool existed = inst.exists;
            const auto before = inst.current;
            if (existed && before == state::deleted) ++events_after_deleted;
            inst = evolve(std::move(inst), e.data, e.effective_at);
            if (existed && before != inst.current) transitions.emplace_back(before, inst.current);
        }
        inst = driver.view.instance(instance_id);
        acct = driver.view.account(account_id).value_or(account_state{});
    }

    /// Decides `c` at `t` as one unit (after the timer service fired, on time, everything due by
    /// then, unless `late_timers`) and applies it when accepted.
    decision run(const cmd::command& c, time_point t) {
        advance_to(t, late_timers);
        const unit_command u = cmd::is_account_command(c) ? unit_command{account_command{account_id, c}}
                                                          : unit_command{instance_command{instance_id, c}};
        const auto size = driver.log.size();
        const auto o = driver.run(u, t);
        if (!o.ok()) return decision{{}, o.refused};
        if (driver.log.size() > size) record(o);
        return decision{o.events, std::nullopt};
    }

    /// Runs `c` and requires it to be accepted.
    void must(const cmd::command& c, time_point t) {
        auto d = run(c, t);
        if (!d.ok()) FAIL("refused: " << d.refused->message);
    }

    /// The timer service up to `t`: on time (each due instant its own unit), or, with `late`,
    /// one unit at `t` that fires everything due (downtime).
    void advance_to(time_point t, bool late = false) {
        if (late) {
            for (const auto& account : driver.view.accounts_due_by(t)) {
                const auto size = driver.log.size();
                const auto o = driver.run(fire_timers{account, t}, std::max(t, now));
                if (!o.ok()) FAIL("a timer unit was refused: " << o.refused->message);
                if (!o.stuck.empty()) FAIL("a due timer decided nothing: " << to_string(o.stuck.front().kind));
                if (driver.log.size() > size) record(o);
            }
        } else {
            std::optional<time_point> floor;
            for (;;) {
                const auto at = driver.view.earliest_due(floor);
                if (!at || *at > t) break;
                floor = at;
                for (const auto& account : driver.view.accounts_due_at(*at)) {
                    const auto size = driver.log.size();
                    const auto o = driver.run(fire_timers{account, *at}, std::max(now, *at));
                    // Checked without a Catch assertion per tick: the generated test fires hundreds of thousands.
                    if (!o.ok()) FAIL("a timer unit was refused: " << o.refused->message);
                    if (!o.stuck.empty()) FAIL("a due timer decided nothing: " << to_string(o.stuck.front().kind));
                    if (driver.log.size() > size) record(o);
                }
            }
        }
        now = std::max(now, t);
    }

    void open(money balance) {
        must(cmd::open_account{"CNY"}, now);
        if (balance > 0) must(cmd::add_funds{balance, "seed"}, now);
    }

    void buy(product p, billing b, time_point t, money amount, std::int32_t term = 1,
             std::string tz = "Asia/Shanghai", std::optional<instance_config> config = std::nullopt) {
        const auto unit = policies.get(p, b).price_unit;
        cmd::purchase c{instance_id, account_id, p, b, std::move(tz), price{unit, amount},
                        b == billing::subscription ? term : 0, std::move(config), std::nullopt};
        if (p == product::rocketmq && !c.config) c.config = instance_config{"standard", "cluster", 1000, false, 0};
        must(c, t);
    }

    /// Events of one type in the history.
    template <typename E>
    std::vector<pending_event> of() const {
        std::vector<pending_event> out;
        for (const auto& e : history)
            if (std::holds_alternative<E>(e.data)) out.push_back(e);
        return out;
    }

    std::optional<time_point> due(timer_kind k) const {
        for (const auto& t : deadlines(inst, pol()))
            if (t.kind == k) return t.due_at;
        return std::nullopt;
    }
};

} // namespace mqledger::test
