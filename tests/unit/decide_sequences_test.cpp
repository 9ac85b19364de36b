// Generated sequences: for each product × billing, random commands and timers at random times,
// checking the invariants of RULES.md after every step. Seeded; the seed is printed on failure
// and MQLEDGER_SEQ_SEED / MQLEDGER_SEQ_COUNT replay or widen a run.
#include "ledger/decide.h"

#include "ledger_test_support.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <random>
#include <set>

using namespace mqledger;
using namespace mqledger::test;
using namespace std::chrono_literals;

namespace {

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

std::set<std::pair<state, state>> allowed_transitions(const policy& p) {
    std::set<std::pair<state, state>> out{{state::not_deployed, state::running}, {state::released, state::deleted}};
    if (p.bill == billing::subscription) {
        out.insert({state::not_deployed, state::expired});
        out.insert({state::running, state::expired});
        // K: a Kafka subscription renewed after expiring before it was ever deployed goes back to
        // not_deployed (checked below: only an instance that never ran).
        if (starting_state_of(p.prod) == state::not_deployed) out.insert({state::expired, state::not_deployed});
    }
    if (p.lapse) {
        const auto& l = *p.lapse;
        out.insert({state::running, l.first});
        out.insert({l.first, state::running});
        if (l.second) {
            out.insert({l.first, *l.second});
            out.insert({*l.second, state::running});
            out.insert({*l.second, state::released});
        } else {
            out.insert({l.first, state::released});
        }
    }
    if (p.manual_stop) {
        out.insert({state::running, state::stopped});
        out.insert({state::stopped, state::running});
        out.insert({state::stopped, state::released});
    }
    if (p.force_delete_allowed) {
        out.insert({state::expired, state::released});
        out.insert({state::stopped, state::released});
    }
    return out;
}

struct generator {
    std::mt19937_64 rng;
    std::uint64_t below(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); }
    bool chance(int percent) { return below(100) < static_cast<std::uint64_t>(percent); }

    // Subscriptions need months to reach their expiry paths and cost nothing per hour; payg
    // settles every hour, so its spans stay shorter.
    duration step(billing b) {
        const auto r = below(100);
        const std::uint64_t long_share = b == billing::subscription ? 20 : 10;
        if (r < 40) return std::chrono::minutes{1 + below(59)};
        if (r < 70 - long_share / 2) return std::chrono::hours{1 + below(12)} + std::chrono::minutes{below(60)};
        if (r < 100 - long_share) return std::chrono::hours{6 + below(30)};
        return std::chrono::hours{48 + below(b == billing::subscription ? 240 : 144)};
    }

    instance_config config() {
        static const char* editions[] = {"standard", "professional", "enterprise_platinum"};
        return instance_config{editions[below(3)], chance(80) ? "cluster" : "standalone",
                               static_cast<std::int64_t>(500 * (1 + below(4))), chance(50),
                               static_cast<std::int64_t>(5 * below(3))};
    }

    cmd::command next(const world& w) {
        const auto unit = w.inst.rate.per;
        switch (below(16)) {
        case 0: return cmd::deploy{};
        case 1: return cmd::stop{};
        case 2: return cmd::enable{};
        case 3: return cmd::renew{static_cast<std::int32_t>(1 + below(3))};
        case 4: return cmd::unsubscribe{};
        case 5: return cmd::force_delete{};
        case 6: return cmd::remove{};
        case 7: return cmd::change_config{config(), price{unit, static_cast<money>(50 + below(300))}};
        case 8: return cmd::set_auto_renew{chance(70), static_cast<std::int32_t>(1 + below(10))};
        case 9: return cmd::create_topic{"t" + std::to_string(below(4))};
        case 10: return cmd::delete_topic{"t" + std::to_string(below(4))};
        case 11: return cmd::create_group{"g" + std::to_string(below(3))};
        case 12: return cmd::delete_group{"g" + std::to_string(below(3))};
        case 13: return cmd::charge{static_cast<money>(1 + below(2000)), "", "usage", ""};
        default: return cmd::add_funds{static_cast<money>(1 + below(chance(50) ? 500 : w.inst.bill == billing::subscription ? 50000 : 5000)), "r"};
        }
    }
};

// Checks the invariants after a step. Assertions only on failure: millions of passing CHECKs
// would dominate the run time under the sanitizers.
void check_deadlines(const world& w) {
    for (const auto& t : deadlines(w.inst, w.pol())) {
        if (t.kind == timer_kind::settlement || t.kind == timer_kind::auto_renew_attempt ||
            t.kind == timer_kind::config_change_completion || t.kind == timer_kind::force_delete)
            continue;
        if (t.due_at < w.inst.state_since) FAIL_CHECK("deadline before its state began: " << to_string(t.kind));
    }
}

void check_invariants(const world& w) {
    const auto& pol = w.pol();
    const auto allowed = allowed_transitions(pol);
    for (const auto& tr : w.transitions)
        if (allowed.count(tr) == 0) FAIL_CHECK("transition not allowed: " << to_string(tr.first) << " → " << to_string(tr.second));
    if (w.events_after_deleted != 0) FAIL_CHECK("events after deleted: " << w.events_after_deleted);
    // K: only Deploy leads to Running; an instance that has run never goes back to not_deployed.
    bool ran = false;
    for (const auto& e : w.history) {
        if (const auto* pu = std::get_if<events::purchased>(&e.data)) ran = starting_state_of(pu->prod) == state::running;
        if (const auto* im = std::get_if<events::imported>(&e.data)) ran = im->in_state != state::not_deployed;
        if (std::holds_alternative<events::purchased>(e.data) || std::holds_alternative<events::imported>(e.data)) break;
    }
    for (const auto& tr : w.transitions) {
        if (tr.second == state::not_deployed && ran) FAIL_CHECK("an instance that has run went back to not_deployed");
        if (tr.second == state::running) ran = true;
    }
    if (ran != w.inst.deployed)
        FAIL_CHECK("deployed is " << w.inst.deployed << " but the instance " << (ran ? "has" : "has not") << " run");
    check_deadlines(w);
    // An import's past deadlines are effective before the import itself (RULES.md "Import").
    const bool imported = std::any_of(w.history.begin(), w.history.end(), [](const pending_event& e) {
        return std::holds_alternative<events::imported>(e.data);
    });
    money sum = 0;
    time_point last{};
    const auto stream = instance_stream(w.instance_id);
    for (const auto& e : w.history) {
        if (const auto* f = std::get_if<events::funds_added>(&e.data)) sum += f->amount;
        if (const auto* c = std::get_if<events::charged>(&e.data)) sum -= c->amount;
        if (const auto* r = std::get_if<events::refunded>(&e.data)) sum += r->amount;
        if (e.stream == stream && !imported) {
            if (e.effective_at < last) FAIL_CHECK("effective_at runs backwards at " << events::type_name(e.data));
            last = e.effective_at;
        }
    }
    if (w.acct.balance != sum) FAIL_CHECK("balance " << w.acct.balance << " != sum of money events " << sum);
}

world start(product p, billing b, generator& g, time_point t0) {
    static const char* zones[] = {"Asia/Shanghai", "Europe/Berlin", "America/New_York"};
    world w;
    w.now = t0 - 1h;
    w.open(static_cast<money>(g.below(g.chance(30) ? 1000 : b == billing::subscription ? 200000 : 20000)));
    const auto& pol = w.policies.get(p, b);
    cmd::purchase d{"i-1", "acc-1", p, b, zones[g.below(3)], price{pol.price_unit, static_cast<money>(50 + g.below(300))},
                    b == billing::subscription ? static_cast<std::int32_t>(1 + g.below(3)) : 0, std::nullopt,
                    std::nullopt};
    if (pol.config.allowed) d.config = instance_config{"standard", "cluster", 1000, false, 0};
    if (b == billing::subscription && g.chance(50)) d.auto_renew = auto_renew_setting{true, static_cast<std::int32_t>(1 + g.below(10))};
    if (!pol.purchase_allowed || g.chance(25)) {
        std::vector<state> states;
        for (auto s : {state::not_deployed, state::running, state::expired, state::stopped, state::suspended,
                       state::frozen, state::released})
            if (pol.at(s).valid) states.push_back(s);
        const auto in = states[g.below(states.size())];
        const auto since = t0 - std::chrono::hours{g.below(24 * 20)};
        const bool term_runs = in == state::running || in == state::not_deployed;
        const auto expiry = term_runs ? since + std::chrono::hours{1 + g.below(24 * 40)} : since;
        (void)w.run(cmd::import_instance{d, in, since, b == billing::subscription ? std::optional{expiry} : std::nullopt,
                                   std::nullopt},
              t0);
    } else {
        (void)w.run(d, t0);
    }
    return w;
}

void run_sequences(product p, billing b) {
    const auto base = env_or("MQLEDGER_SEQ_SEED", 20231013);
    const bool sub = b == billing::subscription;
    // Thousands in an optimised build; fewer under Debug + sanitizers to stay within ~15 s there.
#ifdef NDEBUG
    const auto count = env_or("MQLEDGER_SEQ_COUNT", sub ? 1500 : 1000);
#else
    const auto count = env_or("MQLEDGER_SEQ_COUNT", sub ? 150 : 100);
#endif
    const auto steps = env_or("MQLEDGER_SEQ_STEPS", sub ? 40 : 20);
    const auto salt = static_cast<std::uint64_t>(p) * 1000003 + static_cast<std::uint64_t>(b) * 7919;
    std::map<std::string, int> stats;  // printed with MQLEDGER_SEQ_STATS=1: what the run exercised
    const policy_registry registry;
    for (std::uint64_t i = 0; i < count; ++i) {
        const auto seed = base + salt + i * 104729;
        CAPTURE(seed);
        INFO("replay: MQLEDGER_SEQ_SEED=" << seed - salt << " MQLEDGER_SEQ_COUNT=1");
        generator g{std::mt19937_64{seed}};
        const auto t0 = utc("2024-01-01 00:00") + std::chrono::minutes{g.below(60 * 24 * 365)};
        auto w = start(p, b, g, t0);
        if (!w.inst.exists) continue;
        auto late = w;
        late.late_timers = true;
        auto t = t0;
        for (std::uint64_t k = 0; k < steps; ++k) {
            t += g.step(b);
            const auto c = g.next(w);
            const auto d1 = w.run(c, t);
            const auto d2 = late.run(c, t);
            CAPTURE(k, commands::name_of(c));
            ++stats[std::string{commands::name_of(c)} + (d1.ok() ? " ok" : " " + std::string{to_string(d1.refused->code)})];
            if (d1.ok() != d2.ok()) FAIL("late and on-time worlds decided differently");
            // History-wide invariants are checked at the end (they hold for every prefix iff the
            // end's checks pass); the per-state one after every step.
            check_deadlines(w);
        }
        w.advance_to(t + std::chrono::days{2});
        late.advance_to(t + std::chrono::days{2}, true);
        check_invariants(w);
        // A late timer gives the same history as an on-time one.
        REQUIRE(late.history == w.history);
        // verify's replay passes both ledgers, unit by unit.
        if (const auto bad = w.driver.verify(registry)) FAIL("verify fails at " << bad->position << ": " << bad->reason);
        if (const auto bad = late.driver.verify(registry)) FAIL("verify fails the late ledger at " << bad->position << ": " << bad->reason);
        // Folding the produced events again gives the same state.
        instance_state inst;
        inst.id = w.instance_id;   // events carry no id: the stream names the instance
        account_state acct;
        for (const auto& e : w.history) {
            if (e.stream == instance_stream(w.instance_id)) inst = evolve(inst, e.data, e.effective_at, w.policies);
            else acct = evolve(acct, e.data, e.effective_at);
        }
        CHECK(inst == w.inst);
        CHECK(acct == w.acct);
        for (const auto& e : w.history) ++stats[std::string{events::type_name(e.data)}];
    }
    if (env_or("MQLEDGER_SEQ_STATS", 0) != 0) {
        std::string line;
        for (const auto& [k, n] : stats) line += k + "=" + std::to_string(n) + " ";
        WARN(to_string(p) << "/" << to_string(b) << ": " << line);
    }
}

} // namespace

TEST_CASE("generated sequences: kafka subscription keeps every invariant") { run_sequences(product::kafka, billing::subscription); }
TEST_CASE("generated sequences: kafka payg keeps every invariant") { run_sequences(product::kafka, billing::payg); }
TEST_CASE("generated sequences: kafka serverless keeps every invariant") { run_sequences(product::kafka, billing::serverless); }
TEST_CASE("generated sequences: rabbitmq subscription keeps every invariant") { run_sequences(product::rabbitmq, billing::subscription); }
TEST_CASE("generated sequences: rabbitmq payg keeps every invariant") { run_sequences(product::rabbitmq, billing::payg); }
TEST_CASE("generated sequences: rocketmq subscription keeps every invariant") { run_sequences(product::rocketmq, billing::subscription); }
TEST_CASE("generated sequences: rocketmq payg keeps every invariant") { run_sequences(product::rocketmq, billing::payg); }
TEST_CASE("generated sequences: rocketmq serverless keeps every invariant") { run_sequences(product::rocketmq, billing::serverless); }
TEST_CASE("generated sequences: mqtt subscription keeps every invariant") { run_sequences(product::mqtt, billing::subscription); }
TEST_CASE("generated sequences: mqtt payg (imported) keeps every invariant") { run_sequences(product::mqtt, billing::payg); }
