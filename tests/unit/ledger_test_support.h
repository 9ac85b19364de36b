// Shared fixtures for the rules-core unit tests: a tiny in-memory "daemon" that folds decided
// events into one instance and its account, propagates account overdue/paid, and fires timers.
#pragma once

#include "ledger/account.h"
#include "ledger/commands.h"
#include "ledger/decide.h"
#include "ledger/instance.h"
#include "ledger/local_time.h"
#include "ledger/policy.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

namespace mqledger::test {

namespace cmd = commands;

inline const date::time_zone* zone(std::string_view name) { return find_zone(name); }

/// A UTC instant from "YYYY-MM-DD hh:mm[:ss]" read as wall-clock time in `tz`.
inline time_point at(std::string_view text, std::string_view tz = "Asia/Shanghai") { return parse_local(text, zone(tz)); }
inline time_point utc(std::string_view text) { return parse_local(text, zone("UTC")); }

struct world {
    policy_set policies = policy_set::defaults();
    std::string instance_id = "i-1";
    std::string account_id = "acc-1";
    instance_state inst;
    account_state acct;
    std::vector<pending_event> history;
    time_point now{};
    bool late_timers = false;                          // fire due timers only when a command comes
    std::vector<std::pair<state, state>> transitions;  // every state change of the instance
    std::size_t events_after_deleted = 0;

    const policy& pol() const { return policies.get(inst.prod, inst.bill); }

    decide_context context() const {
        decide_context ctx;
        ctx.policies = &policies;
        ctx.instance_id = instance_id;
        if (acct.exists) ctx.account = account_facts{acct.balance, acct.overdue_since};
        return ctx;
    }

    void apply(const std::vector<pending_event>& events) {
        // Cross-stream notices go out after the whole batch, as the daemon does after a commit.
        std::vector<std::pair<cmd::command, time_point>> notices;
        for (const auto& e : events) {
            history.push_back(e);
            if (e.stream == account_stream(account_id)) {
                const auto before = acct;
                acct = evolve(std::move(acct), e.data, e.effective_at);
                if (became_overdue(before, acct)) notices.emplace_back(cmd::account_overdue{e.effective_at}, e.effective_at);
                if (overdue_cleared(before, acct)) notices.emplace_back(cmd::account_paid{e.effective_at}, e.effective_at);
            } else {
                const bool existed = inst.exists;
                const auto before = inst.current;
                if (existed && before == state::deleted) ++events_after_deleted;
                inst = evolve(std::move(inst), e.data, e.effective_at);
                if (existed && before != inst.current) transitions.emplace_back(before, inst.current);
            }
        }
        for (const auto& [c, t] : notices) deliver(c, t);
    }

    void deliver(const cmd::command& c, time_point t) {
        auto d = decide(inst, c, std::max(t, now), context());
        if (!d.ok()) FAIL("a cross-stream notice was refused: " << d.refused->message);
        apply(d.events);
    }

    /// Decides `c` at `t` (after firing every timer due by then) and applies it when accepted.
    decision run(const cmd::command& c, time_point t) {
        advance_to(t, late_timers);
        decision d = cmd::is_account_command(c) ? decide(acct, c, t, account_id) : decide(inst, c, t, context());
        if (d.ok()) apply(d.events);
        return d;
    }

    /// Runs `c` and requires it to be accepted.
    void must(const cmd::command& c, time_point t) {
        auto d = run(c, t);
        if (!d.ok()) FAIL("refused: " << d.refused->message);
    }

    /// Fires every timer due at or before `t`, in due order; `late` fires them all at `t`.
    void advance_to(time_point t, bool late = false) {
        for (int guard = 0; guard < 200000; ++guard) {
            if (!inst.exists) break;
            const auto timers = deadlines(inst, pol());
            if (timers.empty() || timers.front().due_at > t) break;
            const auto& next = timers.front();
            const auto fire_at = late ? std::max(t, next.due_at) : std::max(now, next.due_at);
            auto d = decide(inst, cmd::tick{next.kind, next.due_at}, fire_at, context());
            // Checked without a Catch assertion per tick: the generated test fires hundreds of thousands.
            if (!d.ok()) FAIL("a due timer was refused: " << d.refused->message);
            if (d.events.empty()) FAIL("a due timer decided nothing: " << to_string(next.kind));
            apply(d.events);
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
