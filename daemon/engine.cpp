#include "daemon/engine.h"

#include "daemon/logging.h"
#include "daemon/stopwatch.h"

#include "ledger/codec.h"
#include "projections/projector.h"

#include <boost/json.hpp>

#include <algorithm>
#include <deque>
#include <future>
#include <map>
#include <set>

namespace mqledger {
namespace json = boost::json;
namespace cmd = commands;

namespace {

// A unit that keeps conflicting this often is up against a hot stream; the client retries.
constexpr int max_attempts = 8;
// Instances per timer unit batch (one load query each for instances and accounts).
constexpr std::size_t round_chunk = 2000;
// A tick loop that does not converge is a bug; never spin on it.
constexpr int max_ticks_per_instance = 100000;

time_point from_micros(std::int64_t us) { return time_point(duration(us)); }
std::string sql_time(time_point t) { return codec::format_time(t); }

std::string json_list(const std::vector<std::string>& ids) {
    json::array a;
    for (const auto& id : ids) a.emplace_back(id);
    return json::serialize(a);
}

struct fanout {
    std::string account_id;
    bool overdue = false;   // else: paid
    time_point at;
};

} // namespace

// One decision's worth of loaded states, the events decided so far, and the versions the
// append must find. Lives on one thread; loads through its leased connection until released.
class unit_of_work {
public:
    unit_of_work(engine& e, pqxx::connection* conn, time_point now) : e_(e), conn_(conn), now_(now) {}

    struct inst_entry { instance_state s; std::int64_t loaded = 0; };
    struct acct_entry { std::optional<account_state> a; std::int64_t loaded = 0; };

    std::vector<pending_event> out;
    std::optional<refusal> refused;
    struct fired_timer { std::string instance_id; timer_kind kind; time_point due; };
    std::vector<fired_timer> fired;

    void release() noexcept { conn_ = nullptr; }
    [[nodiscard]] time_point now() const noexcept { return now_; }

    void seed_instance(instance_state s) {
        const auto v = s.version;
        auto id = s.id;
        insts_.insert_or_assign(std::move(id), inst_entry{std::move(s), v});
    }
    void seed_account(const std::string& id, std::optional<account_state> a) {
        const auto v = a ? a->version : 0;
        accts_.insert_or_assign(id, acct_entry{std::move(a), v});
    }

    instance_state& instance(const std::string& id) {
        if (auto it = insts_.find(id); it != insts_.end()) return it->second.s;
        instance_state s;
        s.id = id;
        if (conn_ == nullptr) throw std::logic_error("unit_of_work: load after release");
        pqxx::nontransaction tx(*conn_);
        const auto r = tx.exec_prepared("mq_load_instance", id);
        if (!r.empty()) s = projections::parse_instance_snapshot(r[0][0].c_str(), id);
        const auto v = s.version;
        return insts_.emplace(id, inst_entry{std::move(s), v}).first->second.s;
    }

    const std::optional<account_state>& account(const std::string& id) {
        if (auto it = accts_.find(id); it != accts_.end()) return it->second.a;
        std::optional<account_state> a;
        if (conn_ == nullptr) throw std::logic_error("unit_of_work: load after release");
        pqxx::nontransaction tx(*conn_);
        const auto r = tx.exec_prepared("mq_load_account", id);
        if (!r.empty()) a = projections::parse_account_snapshot(r[0][0].c_str(), id);
        const auto v = a ? a->version : 0;
        return accts_.emplace(id, acct_entry{std::move(a), v}).first->second.a;
    }

    std::optional<account_facts> facts(const std::string& account_id) {
        if (account_id.empty()) return std::nullopt;
        const auto& a = account(account_id);
        if (!a || !a->exists) return std::nullopt;
        return account_facts{a->balance, a->overdue_since};
    }

    // The account's facts only for the commands whose rules read them (decide.h: purchase,
    // import, renew, change-config, timers, a payment notice); others skip loading the account.
    decide_context context(const std::string& id, const std::string& account_id, const cmd::command& c) {
        const bool needs = std::holds_alternative<cmd::purchase>(c) || std::holds_alternative<cmd::import_instance>(c) ||
                           std::holds_alternative<cmd::renew>(c) || std::holds_alternative<cmd::change_config>(c) ||
                           std::holds_alternative<cmd::tick>(c) || std::holds_alternative<cmd::account_paid>(c);
        return decide_context{&e_.policies_.current(), id, needs ? facts(account_id) : std::nullopt};
    }

    // Folds decided events onto the loaded states; notes accounts that start or stop owing.
    void apply(const std::vector<pending_event>& events) {
        const auto version = e_.policies_.current().version();
        for (const auto& pe : events) {
            out.push_back(pe);
            if (auto iid = projections::instance_id_of(pe.stream)) {
                auto& s = instance(*iid);
                s = evolve(std::move(s), pe.data, pe.effective_at, version);
                s.id = *iid;
            } else if (auto aid = projections::account_id_of(pe.stream)) {
                account(*aid);
                auto& entry = accts_.at(*aid);
                const account_state before = entry.a.value_or(account_state{});
                account_state after = evolve(before, pe.data, pe.effective_at);
                if (became_overdue(before, after)) fanouts_.push_back({*aid, true, pe.effective_at});
                if (overdue_cleared(before, after)) fanouts_.push_back({*aid, false, pe.effective_at});
                entry.a = std::move(after);
            }
        }
    }

    // Decides `c` on instance `id`; false (with `refused`) on a refusal.
    bool run_instance(const std::string& id, const cmd::command& c) {
        auto& s = instance(id);
        std::string account_id = s.account_id;
        if (!s.exists) {
            if (const auto* p = std::get_if<cmd::purchase>(&c)) account_id = p->account_id;
            if (const auto* p = std::get_if<cmd::import_instance>(&c)) account_id = p->details.account_id;
        }
        const auto d = decide(s, c, now_, context(id, account_id, c));
        if (!d.ok()) {
            refused = d.refused;
            return false;
        }
        apply(d.events);
        run_fanouts();
        return true;
    }

    bool run_account(const std::string& id, const cmd::command& c) {
        const auto a = account(id).value_or(account_state{});
        const auto d = decide(a, c, now_, id);
        if (!d.ok()) {
            refused = d.refused;
            return false;
        }
        apply(d.events);
        run_fanouts();
        return true;
    }

    // Fires every timer of `id` due at or before `up_to`, soonest first, each effective at its
    // deadline (RULES.md "Time-driven events"), carrying each tick's cross-stream effects.
    void catch_up(const std::string& id, time_point up_to) {
        for (int i = 0; i < max_ticks_per_instance; ++i) {
            auto& s = instance(id);
            if (!s.exists) return;
            // The same policy table decide judges by, so a timer listed here is live there.
            const auto& p = e_.policies_.current().get(s.prod, s.bill);
            std::optional<timer> next;
            for (const auto& t : deadlines(s, p))
                if (t.due_at <= up_to && (!next || t.due_at < next->due_at)) next = t;
            if (!next) return;
            const cmd::command tick = cmd::tick{next->kind, next->due_at};
            const auto d = decide(s, tick, now_, context(id, s.account_id, tick));
            if (!d.ok() || d.events.empty()) {
                log_line(log_level::warn, "a due timer decides nothing; left for later",
                         {{"instance", id}, {"timer", to_string(next->kind)}, {"due_at", sql_time(next->due_at)},
                          {"reason", d.ok() ? std::string_view("moot") : std::string_view(d.refused->message)}});
                return;
            }
            apply(d.events);
            fired.push_back({id, next->kind, next->due_at});
            run_fanouts();
        }
    }

    // An account that started owing stops its running pay-as-you-go instances; one that was paid
    // restores those on an overdue path (RULES.md "Accounts and payments"). Same append.
    void run_fanouts() {
        while (!fanouts_.empty()) {
            const auto f = fanouts_.front();
            fanouts_.pop_front();
            std::set<std::string> ids;
            for (const auto& [id, entry] : insts_)
                if (entry.s.exists && entry.s.account_id == f.account_id) ids.insert(id);
            if (conn_ != nullptr) {
                pqxx::nontransaction tx(*conn_);
                for (const auto& row : tx.exec_prepared("mq_account_instances", f.account_id))
                    ids.insert(row[0].c_str());
            }
            for (const auto& id : ids) {
                if (!instance(id).exists || instance(id).account_id != f.account_id) continue;
                // Its own deadlines up to the notice come first (due order).
                catch_up(id, f.at);
                auto& s = instance(id);
                const cmd::command c = f.overdue ? cmd::command{cmd::account_overdue{f.at}}
                                                 : cmd::command{cmd::account_paid{f.at}};
                const auto d = decide(s, c, now_, context(id, s.account_id, c));
                if (!d.ok()) continue;
                apply(d.events);
            }
        }
    }

    // The account's instances with a timer due by now.
    std::vector<std::string> due_instances_of_account(const std::string& account_id) {
        std::vector<std::string> out;
        if (conn_ == nullptr) return out;
        pqxx::nontransaction tx(*conn_);
        for (const auto& row : tx.exec_prepared("mq_account_due", account_id, sql_time(now_))) out.emplace_back(row[0].c_str());
        return out;
    }

    [[nodiscard]] std::int64_t loaded_version(const std::string& stream) const {
        if (auto iid = projections::instance_id_of(stream)) {
            auto it = insts_.find(*iid);
            return it == insts_.end() ? 0 : it->second.loaded;
        }
        if (auto aid = projections::account_id_of(stream)) {
            auto it = accts_.find(*aid);
            return it == accts_.end() ? 0 : it->second.loaded;
        }
        return store::any_version;
    }

    // The append of everything decided: one request, every touched stream checked against the
    // version it was loaded at, so a concurrent writer makes it fail instead of interleave.
    [[nodiscard]] store::append_request build(const request_meta& meta) const {
        store::append_request r;
        std::set<std::string> seen;
        json::object schema;
        for (const auto& pe : out) {
            if (r.streams.empty() || r.streams.back().stream != pe.stream) {
                store::stream_append sa;
                sa.stream = pe.stream;
                sa.expected_version = seen.insert(pe.stream).second ? loaded_version(pe.stream) : store::any_version;
                r.streams.push_back(std::move(sa));
            }
            std::string type(events::type_name(pe.data));
            if (auto v = codec::current_schema_version(type)) schema[type] = *v;
            r.streams.back().events.push_back({std::move(type), codec::encode(pe.data), pe.effective_at});
        }
        r.metadata["actor"] = meta.actor;
        if (meta.idempotency_key) r.metadata["idempotency_key"] = *meta.idempotency_key;
        if (!meta.correlation_id.empty()) r.metadata["correlation_id"] = meta.correlation_id;
        r.metadata["policy_version"] = e_.policies_.current().version();
        r.metadata["schema_version"] = std::move(schema);
        r.idempotency_key = meta.idempotency_key;
        r.fingerprint = meta.fingerprint;
        return r;
    }

    // The soonest deadline of every instance this unit wrote.
    [[nodiscard]] std::optional<time_point> earliest_deadline() const {
        std::optional<time_point> best;
        std::set<std::string> touched;
        for (const auto& pe : out)
            if (auto iid = projections::instance_id_of(pe.stream)) touched.insert(*iid);
        for (const auto& id : touched) {
            const auto& s = insts_.at(id).s;
            if (!s.exists) continue;
            for (const auto& t : deadlines(s, projections::policy_of(s, e_.policies_)))
                if (!best || t.due_at < *best) best = t.due_at;
        }
        return best;
    }

    [[nodiscard]] const instance_state* find_instance(const std::string& id) const {
        auto it = insts_.find(id);
        return it == insts_.end() ? nullptr : &it->second.s;
    }
    [[nodiscard]] std::optional<account_state> find_account(const std::string& id) const {
        auto it = accts_.find(id);
        return it == accts_.end() ? std::nullopt : it->second.a;
    }

private:
    engine& e_;
    pqxx::connection* conn_;
    time_point now_;
    std::map<std::string, inst_entry> insts_;
    std::map<std::string, acct_entry> accts_;
    std::deque<fanout> fanouts_;
};

engine::engine(db_pool& reads, store::event_store& store, const policy_registry& policies, const mqledger::clock& clk,
               engine_hooks hooks)
    : reads_(reads), store_(store), policies_(policies), clock_(clk), hooks_(std::move(hooks)) {}

void engine::prepare(pqxx::connection& c) {
    c.prepare("mq_load_instance", "SELECT snapshot FROM instance_state WHERE instance_id = $1");
    c.prepare("mq_load_account", "SELECT snapshot FROM accounts WHERE account_id = $1");
    c.prepare("mq_load_instances",
              "SELECT instance_id, snapshot FROM instance_state "
              "WHERE instance_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))");
    c.prepare("mq_load_accounts",
              "SELECT account_id, snapshot FROM accounts "
              "WHERE account_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))");
    // Instances an account's overdue path can concern (payg/serverless, not gone).
    c.prepare("mq_account_instances",
              "SELECT instance_id FROM instance_state WHERE account_id = $1 "
              "AND billing <> 'subscription' AND state NOT IN ('released', 'deleted') ORDER BY instance_id");
    c.prepare("mq_account_due",
              "SELECT DISTINCT t.instance_id FROM timers t JOIN instance_state s USING (instance_id) "
              "WHERE s.account_id = $1 AND t.due_at <= $2::timestamptz ORDER BY 1");
    c.prepare("mq_idempotency",
              "SELECT position, idempotency_fingerprint, append_count FROM events WHERE idempotency_key = $1");
    c.prepare("mq_earliest_due", "SELECT (extract(epoch FROM min(due_at)) * 1000000)::bigint FROM timers");
    c.prepare("mq_earliest_due_after",
              "SELECT (extract(epoch FROM min(due_at)) * 1000000)::bigint FROM timers WHERE due_at > $1::timestamptz");
    c.prepare("mq_due_at",
              "SELECT DISTINCT t.instance_id, s.account_id FROM timers t JOIN instance_state s USING (instance_id) "
              "WHERE t.due_at = $1::timestamptz ORDER BY 2, 1");
}

instance_state engine::load_instance(const std::string& id) {
    return reads_.with([&](pqxx::connection& c) {
        unit_of_work u(*this, &c, clock_.now());
        return u.instance(id);
    });
}

std::optional<account_state> engine::load_account(const std::string& id) {
    return reads_.with([&](pqxx::connection& c) {
        unit_of_work u(*this, &c, clock_.now());
        return u.account(id);
    });
}

command_outcome engine::execute_instance(const std::string& id, const cmd::command& c, const request_meta& meta) {
    return execute(false, id, c, meta);
}
command_outcome engine::execute_account(const std::string& id, const cmd::command& c, const request_meta& meta) {
    return execute(true, id, c, meta);
}

namespace {

command_outcome unavailable(std::string message) {
    command_outcome o;
    o.kind = outcome_kind::unavailable;
    o.message = std::move(message);
    return o;
}

// The state of `stream` right after the append that used idempotency key `key` (its events are
// positions [first, first + count)): what the first response showed.
std::optional<command_outcome> replay(pqxx::connection& c, const request_meta& meta, bool account_target,
                                      const std::string& id) {
    pqxx::nontransaction tx(c);
    const auto r = tx.exec_prepared("mq_idempotency", *meta.idempotency_key);
    if (r.empty()) return std::nullopt;
    command_outcome o;
    if (r[0][1].c_str() != meta.fingerprint) {
        o.kind = outcome_kind::idempotency_mismatch;
        o.message = "idempotency key " + *meta.idempotency_key + " was used for a different request";
        return o;
    }
    const auto first = r[0][0].as<std::int64_t>();
    const auto count = r[0][2].as<std::int64_t>();
    const auto stream = account_target ? account_stream(id) : instance_stream(id);
    std::int64_t up_to = 0;
    for (const auto& e : store::read_all(tx, first - 1, count))
        if (e.stream == stream) up_to = std::max(up_to, e.stream_version);
    projections::projection_set set;
    for (const auto& e : store::read_stream(tx, stream))
        if (e.stream_version <= up_to) projections::fold(set, e);
    o.replayed = true;
    if (account_target) {
        if (auto it = set.accounts.find(id); it != set.accounts.end()) o.account = it->second;
    } else if (auto it = set.instances.find(id); it != set.instances.end()) {
        o.instance = it->second;
        o.instance->id = id;
    }
    return o;
}

} // namespace

command_outcome engine::execute(bool account_target, const std::string& id, const cmd::command& c,
                                const request_meta& meta) {
    const auto target_stream = account_target ? account_stream(id) : instance_stream(id);
    const auto stripe = [](const std::string& key) { return std::hash<std::string>{}(key) % stripes; };
    std::unique_lock<std::mutex> target_lock((account_target ? account_locks_ : instance_locks_)[stripe(id)]);
    std::unique_lock<std::mutex> account_lock;
    std::string account_to_lock;
    for (int attempt = 0; attempt < max_attempts; ++attempt) {
        // Taken here, never while holding a read lease: a lease holder must not wait for a
        // stripe whose holder may be waiting for a lease.
        if (!account_to_lock.empty() && !account_lock.owns_lock())
            account_lock = std::unique_lock<std::mutex>(account_locks_[stripe(account_to_lock)]);
        std::optional<unit_of_work> u;
        try {
            auto lease = reads_.acquire();
            try {
                if (meta.idempotency_key)
                    if (auto r = replay(lease.conn(), meta, account_target, id)) return std::move(*r);
                u.emplace(*this, &lease.conn(), clock_.now());
                const auto version = account_target ? [&] {
                    const auto& a = u->account(id);
                    return a ? a->version : std::int64_t{0};
                }() : u->instance(id).version;
                if (meta.if_match && *meta.if_match != version) {
                    command_outcome o;
                    o.kind = outcome_kind::version_mismatch;
                    o.actual_version = version;
                    o.message = "If-Match is " + std::to_string(*meta.if_match) + "; the version is " +
                                std::to_string(version);
                    return o;
                }
                bool ok = false;
                if (account_target) {
                    // Timers of the account's instances that are already due fire first, so a
                    // payment never overtakes a bill that came due before it.
                    for (const auto& iid : u->due_instances_of_account(id)) u->catch_up(iid, u->now());
                    u->run_fanouts();
                    ok = u->run_account(id, c);
                } else {
                    u->catch_up(id, u->now());
                    u->run_fanouts();
                    ok = u->run_instance(id, c);
                    // A deadline the command left in the past (an import's, RULES.md "Import")
                    // fires at once, effective at the deadline, in the same append.
                    if (ok) u->catch_up(id, u->now());
                }
                if (!ok) {
                    command_outcome o;
                    o.kind = outcome_kind::refused;
                    o.refused = u->refused;
                    return o;
                }
                // An instance command that writes to an account (a charge, a refund, or what its
                // debt or payment does to the account's other instances) queues behind the other
                // commands on that account: decide again holding its lock. Commands that leave
                // the account alone (topics, deploy, stop …) never wait for it.
                if (!account_target && !account_lock.owns_lock()) {
                    for (const auto& pe : u->out)
                        if (auto aid = projections::account_id_of(pe.stream)) {
                            account_to_lock = *aid;
                            break;
                        }
                    if (!account_to_lock.empty()) {
                        --attempt;
                        continue;
                    }
                }
            } catch (const pqxx::broken_connection&) {
                lease.discard();
                throw;
            }
            u->release();
        } catch (const pqxx::broken_connection& e) {
            return unavailable(std::string("database unreachable: ") + e.what());
        } catch (const pqxx::sql_error& e) {
            return unavailable(std::string("database error: ") + e.what());
        } catch (const pqxx::failure& e) {
            return unavailable(std::string("database error: ") + e.what());
        } catch (const std::exception& e) {
            // An unreadable snapshot, a bug: refuse this request, keep serving the others.
            command_outcome o;
            o.kind = outcome_kind::internal;
            o.message = e.what();
            return o;
        }

        command_outcome o;
        try {
        if (!u->out.empty()) {
            stopwatch sw;
            auto res = store_.append(u->build(meta));
            switch (res.code) {
            case store::append_code::ok:
                if (hooks_.appended && !res.replayed) hooks_.appended(res.events, sw.seconds());
                if (res.replayed) {
                    // The same key committed meanwhile (a concurrent repeat): answer as it did.
                    try {
                        auto r = reads_.with([&](pqxx::connection& conn) {
                            return replay(conn, meta, account_target, id);
                        });
                        if (r) return std::move(*r);
                    } catch (const std::exception& e) {
                        return unavailable(e.what());
                    }
                    return unavailable("idempotent replay could not be read back");
                }
                o.written = std::move(res.events);
                for (const auto& f : u->fired)
                    if (hooks_.fired) hooks_.fired(f.instance_id, f.kind, f.due, u->now() - f.due);
                if (hooks_.deadline)
                    if (auto d = u->earliest_deadline()) hooks_.deadline(*d);
                break;
            case store::append_code::version_conflict:
                if (meta.if_match && res.conflict_stream == target_stream) {
                    o.kind = outcome_kind::version_mismatch;
                    o.actual_version = res.actual_version;
                    o.message = res.message;
                    return o;
                }
                continue;   // someone else wrote first: decide again on fresh state
            case store::append_code::idempotency_mismatch:
                o.kind = outcome_kind::idempotency_mismatch;
                o.message = res.message;
                return o;
            case store::append_code::unavailable:
                return unavailable(res.message);
            case store::append_code::invalid:
                throw std::runtime_error("the store refused a decided append: " + res.message);
            }
        }
        } catch (const std::exception& e) {
            o = command_outcome{};
            o.kind = outcome_kind::internal;
            o.message = e.what();
            return o;
        }
        if (account_target) {
            o.account = u->find_account(id);
        } else if (const auto* s = u->find_instance(id)) {
            o.instance = *s;
        }
        return o;
    }
    command_outcome o;
    o.kind = outcome_kind::refused;
    refusal r;
    r.code = refusal_code::conflict;
    r.reason = "contention";
    r.message = "the instance or its account kept changing concurrently; retry";
    o.refused = std::move(r);
    return o;
}

std::optional<time_point> engine::earliest_due() {
    return reads_.with([&](pqxx::connection& c) -> std::optional<time_point> {
        pqxx::nontransaction tx(c);
        const auto r = tx.exec_prepared("mq_earliest_due");
        if (r[0][0].is_null()) return std::nullopt;
        return from_micros(r[0][0].as<std::int64_t>());
    });
}

std::size_t engine::fire_due(time_point up_to) {
    std::lock_guard serial(fire_mutex_);
    std::size_t total = 0;
    std::size_t failed = 0;   // units that could not be appended (still conflicting, refused)
    std::optional<time_point> floor;   // rounds at or before it are done
    for (;;) {
        const auto now = std::max(clock_.now(), up_to);
        struct due_row { std::string instance_id, account_id; };
        std::vector<due_row> due;
        time_point at{};
        const bool any = reads_.with([&](pqxx::connection& c) {
            pqxx::nontransaction tx(c);
            const auto r = floor ? tx.exec_prepared("mq_earliest_due_after", sql_time(*floor))
                                 : tx.exec_prepared("mq_earliest_due");
            if (r[0][0].is_null()) return false;
            at = from_micros(r[0][0].as<std::int64_t>());
            if (at > up_to) return false;
            for (const auto& row : tx.exec_prepared("mq_due_at", sql_time(at)))
                due.push_back({row[0].c_str(), row[1].c_str()});
            return true;
        });
        if (!any) break;
        floor = at;

        // Chunks of whole accounts; each account is one unit (one append). Every unit of the round
        // is queued before any answer is awaited, so loading the next chunk overlaps the commit
        // of the previous ones and the store batches them.
        struct pending_unit {
            std::vector<std::string> ids;
            std::unique_ptr<unit_of_work> unit;
            std::future<store::append_result> result;
            stopwatch sw;
        };
        std::vector<pending_unit> units;
        std::size_t i = 0;
        while (i < due.size()) {
            std::size_t j = i;
            while (j < due.size() && (j - i < round_chunk || due[j].account_id == due[j - 1].account_id)) ++j;
            std::vector<std::string> ids, accounts;
            for (std::size_t k = i; k < j; ++k) {
                ids.push_back(due[k].instance_id);
                if (accounts.empty() || accounts.back() != due[k].account_id) accounts.push_back(due[k].account_id);
            }
            const std::size_t first_new = units.size();
            reads_.with([&](pqxx::connection& c) {
                std::map<std::string, instance_state> loaded_i;
                std::map<std::string, account_state> loaded_a;
                {
                    pqxx::nontransaction tx(c);
                    for (const auto& row : tx.exec_prepared("mq_load_instances", json_list(ids)))
                        loaded_i.emplace(row[0].c_str(), projections::parse_instance_snapshot(row[1].c_str(), row[0].c_str()));
                    for (const auto& row : tx.exec_prepared("mq_load_accounts", json_list(accounts)))
                        loaded_a.emplace(row[0].c_str(), projections::parse_account_snapshot(row[1].c_str(), row[0].c_str()));
                }
                std::size_t k = i;
                while (k < j) {
                    pending_unit pu;
                    pu.unit = std::make_unique<unit_of_work>(*this, &c, now);
                    const auto& acc = due[k].account_id;
                    if (auto it = loaded_a.find(acc); it != loaded_a.end()) pu.unit->seed_account(acc, it->second);
                    for (; k < j && due[k].account_id == acc; ++k) {
                        if (auto it = loaded_i.find(due[k].instance_id); it != loaded_i.end())
                            pu.unit->seed_instance(it->second);
                        pu.ids.push_back(due[k].instance_id);
                    }
                    for (const auto& id : pu.ids) pu.unit->catch_up(id, at);
                    pu.unit->release();
                    units.push_back(std::move(pu));
                }
            });
            for (std::size_t k = first_new; k < units.size(); ++k) {
                auto& pu = units[k];
                if (!pu.unit->out.empty()) {
                    pu.sw = stopwatch{};
                    pu.result = store_.append_async(pu.unit->build(request_meta{"timer", {}, {}, {}, {}}));
                }
            }
            i = j;
        }
        for (auto& pu : units) {
            if (pu.unit->out.empty()) continue;
            auto res = pu.result.get();
            for (int attempt = 1; res.code == store::append_code::version_conflict && attempt < max_attempts;
                 ++attempt) {
                // A command got there first: fire this account's timers again from fresh state.
                reads_.with([&](pqxx::connection& c) {
                    pu.unit = std::make_unique<unit_of_work>(*this, &c, now);
                    for (const auto& id : pu.ids) pu.unit->catch_up(id, at);
                    pu.unit->release();
                });
                if (pu.unit->out.empty()) break;
                pu.sw = stopwatch{};
                res = store_.append(pu.unit->build(request_meta{"timer", {}, {}, {}, {}}));
            }
            if (pu.unit->out.empty()) continue;
            if (!res.ok()) {
                if (res.code == store::append_code::unavailable) throw store::store_unavailable(res.message);
                log_line(log_level::error, "timers not fired", {{"error", res.message}});
                ++failed;
                continue;
            }
            if (hooks_.appended) hooks_.appended(res.events, pu.sw.seconds());
            for (const auto& f : pu.unit->fired) {
                ++total;
                if (hooks_.fired) hooks_.fired(f.instance_id, f.kind, f.due, now - f.due);
            }
        }
    }
    // Never report "everything due has fired" when something did not.
    if (failed > 0)
        throw store::store_unavailable(std::to_string(failed) + " timer appends failed; they are retried");
    return total;
}

} // namespace mqledger
