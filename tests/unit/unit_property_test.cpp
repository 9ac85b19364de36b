// Generated fleets (ledger/unit.h, ledger/replay.h): several accounts, each with instances of
// different products, billing models and time zones (a half-hour zone and DST zones among them),
// random commands, funds and clock jumps. Each fleet runs twice through the core's units of work:
// once with the timer service on time (every due instant its own unit), once with timers fired
// only late (by the commands' own units and one jump at the end). The properties:
//   - late equals on time: every stream's history (events, data, effective times) is the same,
//     and every command is decided the same way (RULES.md "Time-driven events");
//   - `verify`'s replay passes both logs;
//   - it fails, at the mutated position, on copies with one event dropped, one legal-looking event
//     added, one amount or time changed, or two events of one unit swapped.
// Seeded: a failure prints the seed; MQLEDGER_FLEET_SEED / MQLEDGER_FLEET_COUNT replay or widen.
#include "tests/support/fleet.h"

#include "ledger/local_time.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <map>
#include <random>

using namespace mqledger;
using namespace std::chrono_literals;
namespace cmd = mqledger::commands;

namespace {

std::uint64_t env_or(const char* name, std::uint64_t fallback) {
    const char* v = std::getenv(name);
    return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

constexpr std::size_t accounts_per_fleet = 5;
// Asia/Kolkata is UTC+05:30 all year; New York and Berlin change to and from summer time.
constexpr std::array<const char*, 5> zones{"Asia/Shanghai", "Asia/Kolkata", "America/New_York", "Europe/Berlin", "UTC"};

struct rng {
    std::mt19937_64 g;
    std::uint64_t below(std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(g); }
    bool chance(int percent) { return below(100) < static_cast<std::uint64_t>(percent); }
    template <typename T>
    const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }
};

// One step of a scenario: a command at a time (the same for both runs).
struct step {
    time_point at;
    unit_command command;
};

// A scenario of `steps` commands over a fleet, generated against the on-time run's states so
// that most commands are plausible (the late run gets exactly the same commands).
class scenario {
public:
    scenario(std::uint64_t seed, const policy_set& policies) : r_{std::mt19937_64{seed}}, policies_(policies) {}

    std::vector<step> generate(test::fleet& f, time_point t0, std::size_t steps) {
        std::vector<step> out;
        auto t = t0;
        now_ = t;
        for (std::size_t a = 0; a < accounts_per_fleet; ++a) {
            const auto id = "acc-" + std::to_string(a);
            accounts_.push_back(id);
            push(f, out, t, account_command{id, cmd::open_account{"CNY"}});
            push(f, out, t, account_command{id, cmd::add_funds{funds(), "seed"}});
            const auto n = 2 + r_.below(3);
            for (std::size_t k = 0; k < n; ++k) push(f, out, t, buy(id));
            t += std::chrono::minutes{1 + r_.below(30)};
            now_ = t;
        }
        while (out.size() < steps) {
            t += jump();
            now_ = t;
            push(f, out, t, next(f));
        }
        end_ = t + std::chrono::days{3 + r_.below(20)};
        return out;
    }
    [[nodiscard]] time_point end() const { return end_; }
    /// How the on-time run decided each step: accepted, or the refusal's code.
    [[nodiscard]] const std::vector<std::optional<refusal_code>>& decided() const { return decided_; }

private:
    void push(test::fleet& f, std::vector<step>& out, time_point t, unit_command c) {
        f.fire_until(t);
        const auto o = f.run(c, t);
        decided_.push_back(o.ok() ? std::nullopt : std::optional{o.refused->code});
        out.push_back({t, std::move(c)});
    }

    // Enough for some subscriptions; pay-as-you-go runs out within hours to days, so accounts go
    // overdue, get paid and restored, and the hourly bills stay a fraction of the events.
    money funds() { return static_cast<money>(r_.chance(30) ? r_.below(2000) : 1000 + r_.below(20000)); }

    duration jump() {
        const auto x = r_.below(100);
        if (x < 45) return std::chrono::minutes{1 + r_.below(59)};
        if (x < 80) return std::chrono::hours{1 + r_.below(12)};
        if (x < 95) return std::chrono::hours{12 + r_.below(60)};
        return std::chrono::days{4 + r_.below(30)};   // a long jump: many timers come due at once
    }

    unit_command buy(const std::string& account) {
        static constexpr std::array<product, 4> products{product::kafka, product::rabbitmq, product::rocketmq, product::mqtt};
        static constexpr std::array<billing, 3> billings{billing::subscription, billing::payg, billing::serverless};
        for (;;) {
            const auto p = products[r_.below(4)];
            const auto b = billings[r_.below(3)];
            const auto& pol = policies_.get(p, b);
            if (!pol.purchase_allowed && !pol.import_allowed) continue;
            cmd::purchase d;
            d.instance_id = "i-" + std::to_string(next_instance_++);
            d.account_id = account;
            d.prod = p;
            d.bill = b;
            d.timezone = zones[r_.below(zones.size())];
            d.rate = price{pol.price_unit, static_cast<money>(b == billing::subscription ? 100 + r_.below(3000)
                                                              : pol.price_unit == price::unit::daily ? 500 + r_.below(8000)
                                                                                                     : 20 + r_.below(400))};
            d.term_months = b == billing::subscription ? static_cast<std::int32_t>(1 + r_.below(3)) : 0;
            if (pol.config.allowed) d.config = instance_config{"standard", "cluster", 1000, false, 0};
            if (b == billing::subscription && r_.chance(50))
                d.auto_renew = auto_renew_setting{true, static_cast<std::int32_t>(1 + r_.below(10))};
            instances_.push_back({d.instance_id, account});
            if (pol.purchase_allowed && r_.chance(80)) return instance_command{d.instance_id, d};
            return import(d, pol);
        }
    }

    unit_command import(const cmd::purchase& d, const policy& pol) {
        std::vector<state> states;
        for (auto s : {state::not_deployed, state::running, state::expired, state::stopped, state::suspended, state::frozen})
            if (pol.at(s).valid) states.push_back(s);
        cmd::import_instance c;
        c.details = d;
        c.in_state = r_.pick(states);
        // A little in the past: some deadlines are already due and fire in the import's unit.
        c.state_since = now_ - std::chrono::hours{r_.below(24 * 10)};
        const bool term_runs = c.in_state == state::running || c.in_state == state::not_deployed;
        if (d.bill == billing::subscription)
            c.expires_at = term_runs ? now_ + std::chrono::hours{1 + r_.below(24 * 40)} : c.state_since;
        if (d.bill != billing::subscription && !term_runs && r_.chance(50)) c.owed = static_cast<money>(1 + r_.below(3000));
        return instance_command{d.instance_id, c};
    }

    unit_command next(const test::fleet& f) {
        const auto& [id, account] = r_.pick(instances_);
        const auto& s = f.view.instance(id);
        const auto unit = s.exists ? s.rate.per : price::unit::hourly;
        switch (r_.below(20)) {
        case 0: return instance_command{id, cmd::deploy{}};
        case 1: return instance_command{id, cmd::stop{}};
        case 2: return instance_command{id, cmd::enable{}};
        case 3: return instance_command{id, cmd::renew{static_cast<std::int32_t>(1 + r_.below(2))}};
        case 4: return instance_command{id, cmd::unsubscribe{}};
        case 5: return instance_command{id, cmd::force_delete{}};
        case 6: return instance_command{id, cmd::remove{}};
        case 7:
            return instance_command{id, cmd::change_config{instance_config{r_.chance(50) ? "standard" : "professional", "cluster",
                                                                           static_cast<std::int64_t>(500 * (1 + r_.below(4))),
                                                                           false, 0},
                                                           price{unit, static_cast<money>(5 + r_.below(3000))}}};
        case 8: return instance_command{id, cmd::set_auto_renew{r_.chance(70), static_cast<std::int32_t>(1 + r_.below(20))}};
        case 9: return instance_command{id, cmd::create_topic{"t" + std::to_string(r_.below(3))}};
        case 10: return instance_command{id, cmd::delete_topic{"t" + std::to_string(r_.below(3))}};
        case 11: return account_command{account, cmd::charge{static_cast<money>(1 + r_.below(500)), id, "usage", ""}};
        case 12:
        case 13: return buy(account);
        default: return account_command{account, cmd::add_funds{funds(), "r"}};
        }
    }

    rng r_;
    const policy_set& policies_;
    std::vector<std::string> accounts_;
    std::vector<std::pair<std::string, std::string>> instances_;   // (instance, account)
    std::size_t next_instance_ = 0;
    time_point now_{};
    time_point end_{};
    std::vector<std::optional<refusal_code>> decided_;
};

using stream_history = std::map<std::string, std::vector<std::pair<events::event, time_point>>>;

stream_history by_stream(const test::fleet& f) {
    stream_history h;
    for (const auto& u : f.log)
        for (const auto& e : u.events) h[e.stream].emplace_back(e.data, e.effective_at);
    return h;
}

// Renumbers positions and stream versions as a forger who rewrote the table would.
void renumber(std::vector<logged_event>& log) {
    std::map<std::string, std::int64_t> versions;
    for (std::size_t i = 0; i < log.size(); ++i) {
        log[i].position = static_cast<std::int64_t>(i) + 1;
        log[i].stream_version = ++versions[log[i].stream];
    }
}

// The units of a log as [first, last) index ranges.
std::vector<std::pair<std::size_t, std::size_t>> units_of(const test::fleet& f) {
    std::vector<std::pair<std::size_t, std::size_t>> out;
    std::size_t i = 0;
    for (const auto& u : f.log) {
        out.emplace_back(i, i + u.events.size());
        i += u.events.size();
    }
    return out;
}

struct mutation_result {
    std::string name;
    std::int64_t expected = 0;
    std::optional<replay_finding> found;
};

// One mutated copy per kind (where the log has a place for it), each with the position verify
// must report.
std::vector<mutation_result> mutate_and_replay(const test::fleet& f, const policy_registry& registry, rng& r) {
    std::vector<mutation_result> out;
    const auto log = f.to_log();
    const auto units = units_of(f);
    std::vector<std::size_t> multi;   // units with two events or more
    for (std::size_t u = 0; u < units.size(); ++u)
        if (units[u].second - units[u].first >= 2) multi.push_back(u);

    if (!multi.empty()) {   // one event of a unit dropped
        const auto [a, b] = units[r.pick(multi)];
        const auto i = a + r.below(b - a);
        auto m = log;
        m.erase(m.begin() + static_cast<std::ptrdiff_t>(i));
        renumber(m);
        out.push_back({"drop", static_cast<std::int64_t>(i) + 1, test::fleet::replay_log(registry, m)});
    }
    {   // a legal-looking event added inside a unit: a restore, or an overdue expiry, of one of its instances
        const auto [a, b] = units[r.below(units.size())];
        const auto i = a + r.below(b - a);
        logged_event forged = log[i];
        std::string stream;
        for (std::size_t k = a; k < b && stream.empty(); ++k)
            if (instance_id_of(log[k].stream)) stream = log[k].stream;
        if (stream.empty()) stream = instance_stream("i-0");
        forged.stream = stream;
        forged.data = r.chance(50) ? events::event{events::restored{"paid"}} : events::event{events::expired{events::expiry_cause::overdue}};
        if (!(forged.data == log[i].data) || forged.stream != log[i].stream) {
            auto m = log;
            m.insert(m.begin() + static_cast<std::ptrdiff_t>(i), forged);
            renumber(m);
            out.push_back({"add", static_cast<std::int64_t>(i) + 1, test::fleet::replay_log(registry, m)});
        }
    }
    {   // an amount changed, or else a time
        std::vector<std::size_t> amounts;
        for (std::size_t i = 0; i < log.size(); ++i)
            if (std::holds_alternative<events::settled>(log[i].data) || std::holds_alternative<events::charged>(log[i].data) ||
                std::holds_alternative<events::funds_added>(log[i].data))
                amounts.push_back(i);
        auto m = log;
        const std::size_t i = amounts.empty() ? r.below(log.size()) : r.pick(amounts);
        const money delta = 1 + static_cast<money>(r.below(100));
        std::visit(
            [&](auto& e) {
                using T = std::decay_t<decltype(e)>;
                if constexpr (std::is_same_v<T, events::settled> || std::is_same_v<T, events::charged> ||
                              std::is_same_v<T, events::funds_added>)
                    e.amount += delta;
                else
                    m[i].effective_at += std::chrono::seconds{1 + static_cast<long>(r.below(3600))};
            },
            m[i].data);
        out.push_back({"change", static_cast<std::int64_t>(i) + 1, test::fleet::replay_log(registry, m)});
    }
    if (!multi.empty()) {   // two different events of one unit swapped
        const auto [a, b] = units[r.pick(multi)];
        const auto i = a + r.below(b - a - 1);
        for (auto j = i + 1; j < b; ++j)
            if (!(log[i].data == log[j].data) || log[i].stream != log[j].stream || log[i].effective_at != log[j].effective_at) {
                auto m = log;
                std::swap(m[i], m[j]);
                renumber(m);
                out.push_back({"swap", static_cast<std::int64_t>(i) + 1, test::fleet::replay_log(registry, m)});
                break;
            }
    }
    return out;
}

} // namespace

TEST_CASE("units: timers fired late, in one jump, write exactly the history of small on-time steps, verify "
          "passes every generated ledger and finds each mutation at its position (RULES.md Time-driven events, "
          "API.md verify)",
          "[unit][property]") {
    const auto base = env_or("MQLEDGER_FLEET_SEED", 20261202);
#ifdef NDEBUG
    const auto fleets = env_or("MQLEDGER_FLEET_COUNT", 400);   // 400 x 5 = 2,000 accounts
#else
    const auto fleets = env_or("MQLEDGER_FLEET_COUNT", 60);    // Debug + sanitizers
#endif
    const auto steps = env_or("MQLEDGER_FLEET_STEPS", 60);
    const policy_registry registry;
    std::map<std::string, std::size_t> stats;
    std::size_t events_total = 0;
    for (std::uint64_t n = 0; n < fleets; ++n) {
        const auto seed = base + n * 7919;
        CAPTURE(seed);
        INFO("replay: MQLEDGER_FLEET_SEED=" << seed << " MQLEDGER_FLEET_COUNT=1");
        rng r{std::mt19937_64{seed ^ 0x9e3779b97f4a7c15ULL}};
        const auto t0 = parse_local("2025-01-01 00:00", find_zone("UTC")) + std::chrono::minutes{r.below(60 * 24 * 365)};

        test::fleet on_time(registry.current());
        scenario gen(seed, registry.current());
        const auto script = gen.generate(on_time, t0, steps);
        on_time.fire_until(gen.end());

        // The same commands, with no timer service: only the commands' own units and, at the
        // end, one late jump fire the timers.
        test::fleet late(registry.current());
        for (std::size_t k = 0; k < script.size(); ++k) {
            const auto o = late.run(script[k].command, script[k].at);
            const auto code = o.ok() ? std::nullopt : std::optional{o.refused->code};
            if (code != gen.decided()[k])
                FAIL("step " << k << " (" << (o.ok() ? "accepted" : o.refused->message) << ") is decided differently late");
        }
        late.fire_late(gen.end());

        const auto h1 = by_stream(on_time);
        const auto h2 = by_stream(late);
        if (h1 != h2) {
            for (const auto& [stream, events] : h1) {
                const auto it = h2.find(stream);
                const auto& other = it == h2.end() ? decltype(events){} : it->second;
                for (std::size_t i = 0; i < std::max(events.size(), other.size()); ++i) {
                    if (i < events.size() && i < other.size() && events[i] == other[i]) continue;
                    FAIL("late history differs on " << stream << " at event " << i << ": on time "
                         << (i < events.size() ? std::string(events::type_name(events[i].first)) : "(none)") << ", late "
                         << (i < other.size() ? std::string(events::type_name(other[i].first)) : "(none)"));
                }
            }
            FAIL("late history has streams the on-time one lacks");
        }

        if (const auto bad = on_time.verify(registry)) FAIL("verify fails the on-time log at " << bad->position << ": " << bad->reason);
        if (const auto bad = late.verify(registry)) FAIL("verify fails the late log at " << bad->position << ": " << bad->reason);

        for (const auto& m : mutate_and_replay(on_time, registry, r)) {
            if (!m.found) FAIL("verify passes a log with one event " << m.name << " at position " << m.expected);
            if (m.found->position != m.expected)
                FAIL("verify reports the " << m.name << " at " << m.found->position << ", not " << m.expected << ": "
                                           << m.found->reason);
            ++stats[m.name];
        }
        for (const auto& u : on_time.log)
            for (const auto& e : u.events) ++stats[std::string(events::type_name(e.data))];
        events_total += on_time.to_log().size();
    }
    CHECK(events_total > 0);
    if (env_or("MQLEDGER_FLEET_STATS", 0) != 0) {
        std::string line;
        for (const auto& [k, v] : stats) line += k + "=" + std::to_string(v) + " ";
        WARN(fleets * accounts_per_fleet << " accounts, " << events_total << " events: " << line);
    }
}
