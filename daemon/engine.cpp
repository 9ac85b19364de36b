#include "daemon/engine.h"

#include "daemon/logging.h"
#include "daemon/stopwatch.h"

#include "ledger/codec.h"
#include "projections/projector.h"
#include "projections/queries.h"

#include <boost/json.hpp>

#include <malloc.h>

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
// Instances per bulk load of a timer pass (whole accounts; one query for their states).
constexpr std::size_t round_chunk = 2000;
// Rows (account, due instance) one timer pass reads at most.
constexpr std::size_t pass_rows = 200000;
// Instances of a pass decided and queued but not yet answered, at most (then the oldest units are
// awaited first): about two of the writer's batches.
constexpr std::size_t pass_window = 16000;

std::string format_time(time_point t) { return codec::format_time(t); }

} // namespace

// The unit's read-only view over the projections: each state is taken from the engine's cache
// (when one is given) or loaded on first use through one leased connection (a timer round seeds
// it in bulk instead), and answered from memory after. Which instances are due or concerned by a
// notice is the core's answer, recorded by the projector (timers: `deadlines`;
// instance_state.account_notice: `notice_of`); this only selects by it, always from the database.
class db_view final : public unit_view {
public:
    /// With `due_by`, a state loaded from the database also brings its account's instances with a
    /// timer due by then (one round trip instead of two: a command's unit asks for them next).
    db_view(pqxx::connection* conn, state_cache* cache, std::optional<time_point> due_by = std::nullopt)
        : conn_(conn), cache_(cache), due_by_(due_by) {}
    void release() noexcept { conn_ = nullptr; }
    /// Whether any state came from the cache (so an answer that is not checked by an append must
    /// be decided again without it).
    [[nodiscard]] bool used_cache() const noexcept { return used_cache_; }

    instance_state instance(const std::string& id) const override { return loaded(id); }

    /// The state as the unit first saw it, without a copy.
    const instance_state& loaded(const std::string& id) const {
        if (const auto it = instances_.find(id); it != instances_.end()) return it->second;
        if (cache_ != nullptr)
            if (auto c = cache_->instance(id)) {
                used_cache_ = true;
                return instances_.emplace(id, std::move(*c)).first->second;
            }
        instance_state s;
        s.id = id;
        pqxx::nontransaction tx(connection());
        if (due_by_) {
            auto r = projections::load_instance_with_due(tx, id, *due_by_);
            if (r.state) {
                s = std::move(*r.state);
                remember_due(s.account_id, *due_by_, std::move(r.due));
            }
        } else if (auto r = projections::load_instance(tx, id)) {
            s = std::move(*r);
        }
        if (cache_ != nullptr) cache_->put(s);
        return instances_.emplace(id, std::move(s)).first->second;
    }

    std::optional<account_state> account(const std::string& id) const override {
        if (const auto it = accounts_.find(id); it != accounts_.end()) return it->second;
        if (cache_ != nullptr)
            if (auto c = cache_->account(id)) {
                used_cache_ = true;
                return accounts_.emplace(id, std::move(c)).first->second;
            }
        std::optional<account_state> a;
        pqxx::nontransaction tx(connection());
        if (due_by_) {
            auto r = projections::load_account_with_due(tx, id, *due_by_);
            if (r.state) {
                a = std::move(r.state);
                remember_due(id, *due_by_, std::move(r.due));
            }
        } else {
            a = projections::load_account(tx, id);
        }
        if (cache_ != nullptr && a) cache_->put(id, *a);
        return accounts_.emplace(id, std::move(a)).first->second;
    }

    std::vector<std::string> due_instances(const std::string& account_id, time_point up_to) const override {
        if (const auto it = due_.find(account_id); it != due_.end() && it->second.first == up_to) return it->second.second;
        pqxx::nontransaction tx(connection());
        auto ids = projections::due_instances(tx, account_id, up_to);
        due_.insert_or_assign(account_id, std::make_pair(up_to, ids));
        return ids;
    }

    std::vector<std::string> notice_targets(const std::string& account_id, account_notice kind) const override {
        std::vector<std::string> ids;
        pqxx::nontransaction tx(connection());
        for (auto& s : projections::notice_targets(tx, account_id, kind)) {
            ids.push_back(s.id);
            if (instances_.count(s.id)) continue;
            if (cache_ != nullptr) cache_->put(s);
            auto id = s.id;
            instances_.emplace(std::move(id), std::move(s));
        }
        return ids;
    }

    /// Seeds (a timer round's bulk load): these answers stand in for loads.
    void seed(instance_state s) {
        auto id = s.id;
        instances_.insert_or_assign(std::move(id), std::move(s));
    }
    void seed(const std::string& id, std::optional<account_state> a) { accounts_.insert_or_assign(id, std::move(a)); }
    void seed_due(const std::string& account_id, time_point up_to, std::vector<std::string> ids) {
        due_.insert_or_assign(account_id, std::make_pair(up_to, std::move(ids)));
    }

private:
    void remember_due(const std::string& account_id, time_point up_to, std::vector<std::string> ids) const {
        if (const auto it = due_.find(account_id); it != due_.end() && it->second.first == up_to) return;
        due_.insert_or_assign(account_id, std::make_pair(up_to, std::move(ids)));
    }

    pqxx::connection& connection() const {
        if (conn_ == nullptr) throw std::logic_error("db_view: a load after its connection went back to the pool");
        return *conn_;
    }

    pqxx::connection* conn_;
    state_cache* cache_;
    std::optional<time_point> due_by_;
    mutable bool used_cache_ = false;
    mutable std::map<std::string, instance_state> instances_;
    mutable std::map<std::string, std::optional<account_state>> accounts_;
    mutable std::map<std::string, std::pair<time_point, std::vector<std::string>>> due_;
};

store::append_request append_of(const unit_outcome& o, const unit_command& c, time_point at, const request_meta& meta,
                                policy_version version) {
    store::append_request r;
    std::set<std::string> seen;
    json::object schema;
    for (const auto& pe : o.events) {
        if (r.streams.empty() || r.streams.back().stream != pe.stream) {
            store::stream_append sa;
            sa.stream = pe.stream;
            sa.expected_version = seen.insert(pe.stream).second ? o.expected_versions.at(pe.stream) : store::any_version;
            r.streams.push_back(std::move(sa));
        }
        std::string type(events::type_name(pe.data));
        if (auto v = codec::current_schema_version(type)) schema[type] = *v;
        r.streams.back().events.push_back({std::move(type), codec::encode(pe.data), pe.effective_at});
    }
    r.metadata["actor"] = meta.actor;
    if (meta.idempotency_key) r.metadata["idempotency_key"] = *meta.idempotency_key;
    if (!meta.correlation_id.empty()) r.metadata["correlation_id"] = meta.correlation_id;
    r.metadata["policy_version"] = version;
    r.metadata["schema_version"] = std::move(schema);
    // The streams the unit read without writing: checked too, so no decision from a stale state
    // (a cache entry another daemon overtook) is ever written.
    for (const auto& [stream, read_version] : o.read_versions)
        if (!seen.count(stream)) r.streams.push_back({stream, read_version, {}});
    // The sets of the account's instances it took as complete: an instance that joined one
    // meanwhile (created, or changed, by a unit that touched no stream this one read) is a conflict.
    for (const auto& [account_id, sets] : o.sets_read) {
        if (r.scope.empty()) r.scope = account_stream(account_id);
        for (auto& ss : projections::stream_sets_of(account_id, sets)) r.sets_read.push_back(std::move(ss));
    }
    r.first_metadata["unit"] = encode_unit(unit_record{c, at, static_cast<std::int64_t>(o.events.size())});
    r.idempotency_key = meta.idempotency_key;
    r.fingerprint = meta.fingerprint;
    return r;
}

namespace {

// The append of a unit decided from `view`, with the projection rows it decided (the instances'
// states before it come from the view). Timer units wait for room in the writer's queue: what is
// due must not be dropped.
store::append_request append_with_rows(const unit_outcome& o, const unit_command& c, time_point at,
                                       const request_meta& meta, policy_version version,
                                       const policy_registry& policies, const db_view& view, bool wait_when_full) {
    auto r = append_of(o, c, at, meta, version);
    auto rows = projections::rows_of(
        o, [&](const std::string& iid) -> const instance_state& { return view.loaded(iid); }, policies);
    r.wait_when_full = wait_when_full;
    // Each written stream's facts for the store's in-batch set check: an instance's from its rows
    // (its timers derived once), any other stream's joins no set.
    for (const auto& change : rows->instances) r.member_facts.emplace(instance_stream(change.id), change.member_facts);
    for (const auto& sa : r.streams)
        if (!sa.events.empty()) r.member_facts.emplace(sa.stream, projections::member_facts_of({}, std::nullopt));
    r.projection = std::move(rows);
    return r;
}

command_outcome unavailable(std::string message) {
    command_outcome o;
    o.kind = outcome_kind::unavailable;
    o.message = std::move(message);
    return o;
}

command_outcome refused_outcome(refusal r) {
    command_outcome o;
    o.kind = outcome_kind::refused;
    o.refused = std::move(r);
    return o;
}

command_outcome internal(std::string message) {
    command_outcome o;
    o.kind = outcome_kind::internal;
    o.message = std::move(message);
    return o;
}

void log_stuck(const unit_outcome& o) {
    for (const auto& s : o.stuck)
        log_line(log_level::warn, "a due timer decides nothing; left for later",
                 {{"instance", s.instance_id}, {"timer", to_string(s.kind)}, {"due_at", format_time(s.due_at)},
                  {"reason", s.reason}});
}

// The state of `stream` right after the append that used idempotency key `key` (its events are
// positions [first, first + count)): what the first response showed.
std::optional<command_outcome> replay(pqxx::connection& c, const request_meta& meta, bool account_target,
                                      const std::string& id, const policy_registry& policies) {
    pqxx::nontransaction tx(c);
    const auto first = store::find_keyed_append(tx, *meta.idempotency_key);
    if (!first) return std::nullopt;
    command_outcome o;
    if (first->fingerprint != meta.fingerprint) {
        o.kind = outcome_kind::idempotency_mismatch;
        o.message = "idempotency key " + *meta.idempotency_key + " was used for a different request";
        return o;
    }
    const auto stream = account_target ? account_stream(id) : instance_stream(id);
    std::int64_t up_to = 0;
    for (const auto& e : store::read_all(tx, first->first_position - 1, first->count))
        if (e.stream == stream) up_to = std::max(up_to, e.stream_version);
    projections::projection_set set;
    for (const auto& e : store::read_stream(tx, stream))
        if (e.stream_version <= up_to) projections::fold(set, e, policies);
    o.replayed = true;
    if (account_target) {
        if (auto it = set.accounts.find(id); it != set.accounts.end()) o.account = it->second;
    } else if (auto it = set.instances.find(id); it != set.instances.end()) {
        o.instance = it->second;
        o.instance->id = id;
    }
    return o;
}

// The account stream a unit writes to, if any.
std::optional<std::string> account_written(const unit_outcome& o) {
    for (const auto& pe : o.events)
        if (auto aid = account_id_of(pe.stream)) return aid;
    return std::nullopt;
}

} // namespace

engine::engine(db_pool& reads, store::event_store& store, const policy_registry& policies, const mqledger::clock& clk,
               engine_hooks hooks, std::size_t cache_entries)
    : reads_(reads), store_(store), policies_(policies), clock_(clk), hooks_(std::move(hooks)), cache_(cache_entries) {}

void engine::prepare(pqxx::connection& c) { projections::prepare_reads(c); }

instance_state engine::load_instance(const std::string& id) {
    return reads_.with([&](pqxx::connection& c) { return db_view(&c, nullptr).instance(id); });
}

std::optional<account_state> engine::load_account(const std::string& id) {
    return reads_.with([&](pqxx::connection& c) { return db_view(&c, nullptr).account(id); });
}

command_outcome engine::execute_instance(const std::string& id, const cmd::command& c, const request_meta& meta) {
    return execute(false, id, c, meta);
}
command_outcome engine::execute_account(const std::string& id, const cmd::command& c, const request_meta& meta) {
    return execute(true, id, c, meta);
}

std::optional<time_point> engine::earliest_deadline(const unit_outcome& o) const {
    std::optional<time_point> best;
    for (const auto& pe : o.events) {
        const auto iid = instance_id_of(pe.stream);
        if (!iid) continue;
        const auto& s = o.instances.at(*iid);
        if (!s.exists) continue;
        for (const auto& t : deadlines(s, projections::policy_of(s, policies_)))
            if (!best || t.due_at < *best) best = t.due_at;
    }
    return best;
}

void engine::report(const unit_outcome& o, const std::vector<store::recorded_event>& written, double seconds,
                    time_point now) {
    if (hooks_.appended) hooks_.appended(written, seconds);
    if (hooks_.unit_written) hooks_.unit_written(o, written);
    if (hooks_.fired)
        for (const auto& f : o.fired) hooks_.fired(f.instance_id, f.kind, f.due_at, now - f.due_at);
    if (hooks_.deadline)
        if (auto d = earliest_deadline(o)) hooks_.deadline(*d);
}

void engine::forget(const unit_outcome& o) {
    for (const auto& [stream, version] : o.read_versions) cache_.forget(stream);
}

void engine::remember(const unit_outcome& o) {
    for (const auto& [id, st] : o.instances) cache_.put(st);
    for (const auto& [id, a] : o.accounts) cache_.put(id, a);
}

command_outcome engine::execute(bool account_target, const std::string& id, const cmd::command& c,
                                const request_meta& meta) {
    if (hooks_.ready && !hooks_.ready())
        return unavailable("the policy table in force is not loaded yet (the database was unreachable at start); "
                           "nothing was written");
    const auto target_stream = account_target ? account_stream(id) : instance_stream(id);
    const unit_command unit = account_target ? unit_command{account_command{id, c}} : unit_command{instance_command{id, c}};
    const auto stripe = [](const std::string& key) { return std::hash<std::string>{}(key) % stripes; };
    std::unique_lock<std::mutex> target_lock((account_target ? account_locks_ : instance_locks_)[stripe(id)]);
    std::unique_lock<std::mutex> account_lock;
    std::string account_to_lock;
    // Decide without the cache: after a decision from cached states that no append would check
    // (a refusal, nothing to write, an If-Match mismatch), before it is answered.
    bool fresh = false;
    for (int attempt = 0; attempt < max_attempts; ++attempt) {
        // Taken here, never while holding a read lease: a lease holder must not wait for a
        // stripe whose holder may be waiting for a lease.
        if (!account_to_lock.empty() && !account_lock.owns_lock())
            account_lock = std::unique_lock<std::mutex>(account_locks_[stripe(account_to_lock)]);
        const auto& policies = policies_.current();
        time_point now{};
        unit_outcome decided;
        std::optional<db_view> view;
        std::optional<std::int64_t> mismatch;   // If-Match differs: the version
        try {
            auto lease = reads_.acquire();
            try {
                if (meta.idempotency_key)
                    if (auto r = replay(lease.conn(), meta, account_target, id, policies_)) return std::move(*r);
                now = clock_.now();
                view.emplace(&lease.conn(), fresh ? nullptr : &cache_, now);
                const auto version = account_target ? [&] {
                    const auto a = view->account(id);
                    return a ? a->version : std::int64_t{0};
                }() : view->loaded(id).version;
                if (meta.if_match && *meta.if_match != version) mismatch = version;
                else decided = decide_unit(*view, unit, now, policies);
                view->release();
            } catch (const pqxx::broken_connection&) {
                lease.discard();
                throw;
            }
        } catch (const pqxx::broken_connection& e) {
            return unavailable(std::string("database unreachable: ") + e.what());
        } catch (const pqxx::sql_error& e) {
            return unavailable(std::string("database error: ") + e.what());
        } catch (const pqxx::failure& e) {
            return unavailable(std::string("database error: ") + e.what());
        } catch (const std::exception& e) {
            // An unreadable snapshot, a bug: refuse this request, keep serving the others.
            return internal(e.what());
        }
        const bool unchecked = mismatch || !decided.ok() || decided.events.empty();
        if (unchecked && view->used_cache()) {
            cache_.forget(target_stream);
            forget(decided);
            fresh = true;
            continue;
        }
        if (mismatch) {
            command_outcome o;
            o.kind = outcome_kind::version_mismatch;
            o.actual_version = *mismatch;
            o.message = "If-Match is " + std::to_string(*meta.if_match) + "; the version is " + std::to_string(*mismatch);
            return o;
        }
        if (!decided.ok()) return refused_outcome(std::move(*decided.refused));
        log_stuck(decided);
        // An instance command that writes to an account (a charge, a refund, or what its debt or
        // payment does to the account's other instances) queues behind the other commands on
        // that account: decide again holding its lock. Commands that leave the account alone
        // (topics, deploy, stop …) never wait for it.
        if (!account_target && !account_lock.owns_lock())
            if (auto aid = account_written(decided)) {
                account_to_lock = std::move(*aid);
                --attempt;
                continue;
            }

        command_outcome o;
        if (!decided.events.empty()) {
            try {
                stopwatch sw;
                auto res = store_.append(append_with_rows(decided, unit, now, meta, policies.version(), policies_, *view, false));
                switch (res.code) {
                case store::append_code::ok:
                    if (res.replayed) {
                        // The same key committed meanwhile (a concurrent repeat): answer as it did.
                        forget(decided);
                        auto r = reads_.with([&](pqxx::connection& conn) { return replay(conn, meta, account_target, id, policies_); });
                        if (r) return std::move(*r);
                        return unavailable("idempotent replay could not be read back");
                    }
                    remember(decided);
                    report(decided, res.events, sw.seconds(), now);
                    o.written = std::move(res.events);
                    break;
                case store::append_code::version_conflict:
                    forget(decided);
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
                case store::append_code::overloaded:
                    o.kind = outcome_kind::overloaded;
                    o.message = res.message;
                    return o;
                case store::append_code::unavailable:
                    forget(decided);   // written or not: the next unit loads these streams again
                    return unavailable(res.message);
                case store::append_code::invalid:
                    return internal("the store refused a decided append: " + res.message);
                }
            } catch (const std::exception& e) {
                forget(decided);
                return unavailable(e.what());
            }
        }
        if (account_target) {
            if (auto it = decided.accounts.find(id); it != decided.accounts.end()) o.account = std::move(it->second);
        } else if (auto it = decided.instances.find(id); it != decided.instances.end()) {
            o.instance = std::move(it->second);
        }
        return o;
    }
    refusal r;
    r.code = refusal_code::conflict;
    r.reason = "contention";
    r.message = "the instance or its account kept changing concurrently; retry";
    return refused_outcome(std::move(r));
}

std::optional<time_point> engine::earliest_due() {
    return reads_.with([&](pqxx::connection& c) {
        pqxx::nontransaction tx(c);
        return projections::earliest_due(tx);
    });
}

std::size_t engine::fire_due(time_point up_to) {
    if (hooks_.ready && !hooks_.ready()) throw store::store_unavailable("the policy table in force is not loaded yet");
    std::lock_guard serial(fire_mutex_);
    std::size_t total = 0;
    std::size_t failed = 0;            // units that could not be appended (still conflicting, refused)
    const request_meta timer_meta{"timer", {}, {}, {}, {}};
    for (;;) {
        const auto now = std::max(clock_.now(), up_to);
        const auto& policies = policies_.current();
        // One pass: every account with a timer due by `up_to`, with each of its instances due by
        // then, in account order (at most `pass_rows` rows: the last account of a full page may be
        // incomplete, so it waits for the next pass).
        std::vector<std::pair<std::string, std::vector<std::string>>> due;   // account -> instances
        bool full = false;
        reads_.with([&](pqxx::connection& c) {
            pqxx::nontransaction tx(c);
            // One probe of the due_at index first: usually nothing is due.
            if (const auto earliest = projections::earliest_due(tx); earliest && *earliest <= up_to)
                due = projections::due_pass(tx, up_to, pass_rows, full);
        });
        if (full && due.size() > 1) due.pop_back();
        if (due.empty()) break;

        // One unit per account: every timer of its instances due by `up_to`, in due order, each
        // effective at its deadline. Chunks of whole accounts are taken from the cache or loaded
        // in bulk; every unit of the pass is queued before any answer is awaited, so deciding the
        // next chunk overlaps the commit of the previous ones.
        struct pending_unit {
            fire_timers command;
            unit_outcome outcome;
            std::future<store::append_result> result;
            stopwatch sw;
            std::size_t instances = 0;
        };
        std::deque<pending_unit> units;   // queued and not yet settled, oldest first
        std::size_t in_flight = 0;        // instances of the units queued and not yet settled
        bool progressed = false;
        const auto refused = [&](const pending_unit& pu) {
            log_line(log_level::error, "timers not fired",
                     {{"account", pu.command.account_id}, {"error", pu.outcome.refused->message}});
            ++failed;
        };
        // Waits for one unit's append (deciding it again after a conflict), reports it, and
        // frees what it held.
        const auto settle = [&](pending_unit& pu) {
            in_flight -= pu.instances;
            log_stuck(pu.outcome);
            if (!pu.outcome.ok()) {
                refused(pu);
                return;
            }
            if (pu.outcome.events.empty()) return;
            auto res = pu.result.get();
            for (int attempt = 1; res.code == store::append_code::version_conflict && attempt < max_attempts; ++attempt) {
                // A command got there first: decide this account's unit again from the database.
                forget(pu.outcome);
                std::optional<store::append_request> req;
                pu.outcome = reads_.with([&](pqxx::connection& c) {
                    db_view view(&c, nullptr);
                    auto o = decide_unit(view, pu.command, now, policies);
                    if (o.ok() && !o.events.empty())
                        req = append_with_rows(o, pu.command, now, timer_meta, policies.version(), policies_, view, true);
                    return o;
                });
                if (!req) break;
                pu.sw = stopwatch{};
                res = store_.append(std::move(*req));
            }
            if (!pu.outcome.ok()) {
                refused(pu);
                return;
            }
            if (pu.outcome.events.empty()) return;
            if (!res.ok()) {
                forget(pu.outcome);
                if (res.code == store::append_code::unavailable) throw store::store_unavailable(res.message);
                log_line(log_level::error, "timers not fired", {{"account", pu.command.account_id}, {"error", res.message}});
                ++failed;
                return;
            }
            remember(pu.outcome);
            report(pu.outcome, res.events, pu.sw.seconds(), now);
            total += pu.outcome.fired.size();
            progressed = progressed || !pu.outcome.fired.empty();
        };
        for (std::size_t i = 0; i < due.size();) {
            std::vector<std::string> accounts, ids;
            for (; i < due.size() && (accounts.empty() || ids.size() + due[i].second.size() <= round_chunk); ++i) {
                accounts.push_back(due[i].first);
                ids.insert(ids.end(), due[i].second.begin(), due[i].second.end());
            }
            const std::size_t first_new = units.size();
            std::vector<store::append_request> requests;
            reads_.with([&](pqxx::connection& c) {
                std::map<std::string, instance_state> loaded;
                std::map<std::string, account_state> loaded_accounts;
                std::vector<std::string> missing, missing_accounts;
                std::set<std::string> cached;   // ids answered by the cache
                for (const auto& id : ids) {
                    if (auto st = cache_.instance(id)) {
                        loaded.emplace(id, std::move(*st));
                        cached.insert(id);
                    } else {
                        missing.push_back(id);
                    }
                }
                for (const auto& id : accounts) {
                    if (auto a = cache_.account(id)) {
                        loaded_accounts.emplace(id, std::move(*a));
                        cached.insert(id);
                    } else {
                        missing_accounts.push_back(id);
                    }
                }
                {
                    pqxx::nontransaction tx(c);
                    loaded.merge(projections::load_instances(tx, missing));
                    loaded_accounts.merge(projections::load_accounts(tx, missing_accounts));
                }
                for (std::size_t k = first_new; k < first_new + accounts.size(); ++k) {
                    const auto& [account, account_ids] = due[i - accounts.size() + (k - first_new)];
                    db_view view(&c, nullptr);
                    for (const auto& id : account_ids)
                        if (auto it = loaded.find(id); it != loaded.end()) view.seed(std::move(it->second));
                    if (auto it = loaded_accounts.find(account); it != loaded_accounts.end()) view.seed(account, it->second);
                    view.seed_due(account, up_to, account_ids);
                    const fire_timers command{account, up_to};
                    auto outcome = decide_unit(view, command, now, policies);
                    // Nothing to write, or refused, from cached states: no append would check
                    // them, and a stale entry would leave its timer due forever. Decide again
                    // from the database.
                    const bool from_cache = cached.count(account) != 0 ||
                                            std::any_of(account_ids.begin(), account_ids.end(),
                                                        [&](const std::string& iid) { return cached.count(iid) != 0; });
                    std::optional<db_view> fresh;
                    if (from_cache && (!outcome.ok() || outcome.events.empty())) {
                        cache_.forget(account_stream(account));
                        for (const auto& iid : account_ids) cache_.forget(instance_stream(iid));
                        fresh.emplace(&c, nullptr);
                        outcome = decide_unit(*fresh, command, now, policies);
                    }
                    const db_view& decided_from = fresh ? *fresh : view;
                    units.push_back({command, std::move(outcome), {}, {}, account_ids.size()});
                    in_flight += account_ids.size();
                    auto& pu = units.back();
                    if (pu.outcome.ok() && !pu.outcome.events.empty()) {
                        requests.push_back(append_with_rows(pu.outcome, command, now, timer_meta, policies.version(), policies_,
                                                            decided_from, true));
                    } else {
                        requests.emplace_back();
                    }
                    view.release();
                    if (fresh) fresh->release();
                }
            });
            for (std::size_t k = first_new; k < units.size(); ++k) {
                auto& pu = units[k];
                if (!pu.outcome.ok() || pu.outcome.events.empty()) continue;
                pu.sw = stopwatch{};
                pu.result = store_.append_async(std::move(requests[k - first_new]));
            }
            // A bounded window: memory stays a few chunks' worth however large the pass.
            while (in_flight > pass_window && !units.empty()) {
                settle(units.front());
                units.pop_front();
            }
        }
        for (; !units.empty(); units.pop_front()) settle(units.front());

        // Again while passes make progress: the rest of a full page, or what came due meanwhile
        // (a command's deadline already past). A pass that fired nothing (every timer left
        // stuck, or failed) ends it: the timer service calls again.
        if (failed > 0 || !progressed) break;
    }
    // A large pass freed hundreds of megabytes of batches (their rows and parameters): give the
    // pages back to the system instead of keeping the peak (glibc keeps freed heap otherwise).
    if (total >= 1000) ::malloc_trim(0);
    // Never report "everything due has fired" when something did not.
    if (failed > 0)
        throw store::store_unavailable(std::to_string(failed) + " timer appends failed; they are retried");
    return total;
}

} // namespace mqledger
