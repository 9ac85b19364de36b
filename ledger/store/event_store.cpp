#include "ledger/store/event_store.h"

#include "ledger/canonical_json.h"
#include "ledger/store/conninfo.h"
#include "ledger/store/hash_chain.h"
#include "ledger/store/pg_text.h"

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

namespace mqledger::store {

namespace {

// The one transaction-scoped advisory lock every append takes before reading the head, so that
// global position order is commit order, also across processes (DESIGN.md "Ordering").
const std::string append_lock_sql = "SELECT pg_advisory_xact_lock(" + std::to_string(append_lock_key) + ")";

// Head, current version of each stream in the batch (index backward scan per stream, O(1) even
// for long streams) and the idempotency keys already used: one statement, run after the lock.
// Sent as text with the arrays quoted in, so that BEGIN, the lock and this read travel in one
// round trip (under READ COMMITTED each statement takes a fresh snapshot, so the read sees every
// batch that committed before the lock was granted).
// The members of the batch's stream sets come as ('g', member, set number) rows of the same read.
std::string state_query(pqxx::transaction_base& tx, const std::string& streams, const std::string& keys,
                        const std::string& set_members) {
    std::string sets;
    if (!set_members.empty())
        sets = " UNION ALL SELECT 'g', g.member::text, g.set_no::bigint, NULL, NULL FROM (" + set_members +
               ") AS g(set_no, member)";
    return "SELECT 'h', NULL::text, position, hash, NULL::integer"
           "  FROM (SELECT position, hash FROM events ORDER BY position DESC LIMIT 1) h"
           " UNION ALL "
           "SELECT 'v', s, coalesce((SELECT stream_version FROM events e WHERE e.stream = s"
           "                         ORDER BY stream_version DESC LIMIT 1), 0), NULL, NULL"
           "  FROM unnest(" + tx.quote(streams) + "::text[]) s"
           " UNION ALL "
           "SELECT 'k', idempotency_key, position, idempotency_fingerprint, append_count"
           "  FROM events WHERE idempotency_key = ANY(" + tx.quote(keys) + "::text[])" + sets;
}

// One multi-row INSERT of the whole batch from parallel arrays, bound as text parameters $1..$13
// (a CTE of the batch's one write statement).
struct insert_arrays {
    std::string pos = "{", stream = "{", ver = "{", type = "{", data = "{", meta = "{", eff = "{", prev = "{",
                hash = "{", key = "{", fp = "{", count = "{";
};

constexpr const char* insert_cte =
    "e_events AS (INSERT INTO events (position, stream, stream_version, type, data, metadata, effective_at,"
    " recorded_at, prev_hash, hash, idempotency_key, idempotency_fingerprint, append_count)"
    " SELECT p, s, v, t, d::jsonb, m::jsonb, e::timestamptz, $13::timestamptz, ph, h, k, f, c FROM unnest("
    "$1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],"
    " $10::text[], $11::text[], $12::integer[]) AS u(p, s, v, t, d, m, e, ph, h, k, f, c))";
constexpr int insert_params = 13;

std::vector<std::string> insert_values(insert_arrays& a, const std::string& recorded_at) {
    for (auto* s : {&a.pos, &a.stream, &a.ver, &a.type, &a.data, &a.meta, &a.eff, &a.prev, &a.hash, &a.key, &a.fp, &a.count})
        s->push_back('}');
    return {std::move(a.pos),  std::move(a.stream), std::move(a.ver), std::move(a.type), std::move(a.data),
            std::move(a.meta), std::move(a.eff),    std::move(a.prev), std::move(a.hash), std::move(a.key),
            std::move(a.fp),   std::move(a.count),  recorded_at};
}

constexpr const char* range_sql_prefix = "SELECT ";
constexpr const char* range_sql_suffix = " FROM events WHERE position BETWEEN $1 AND $2 ORDER BY position";

// COMMIT of a transaction block that already failed answers "ROLLBACK" without an error (e.g.
// when an observer swallowed an SQL error), and libpqxx 6.4 keeps the command tag private. A
// statement sent in front of it errors out in an aborted block (25P02), in the same round trip,
// so a rolled-back batch is never reported as committed.
constexpr const char* guarded_commit_sql = "SELECT 1; COMMIT";

// Stream names and types: valid UTF-8 without C0 or C1 control characters (U+0080..U+009F are
// [[:cntrl:]] to the table's CHECK too). A bad name must be refused here, alone: reaching the
// database it would fail the whole batch it shares with other callers.
bool valid_name(std::string_view s) noexcept {
    if (s.empty() || !valid_utf8(s)) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x20 || c == 0x7f) return false;
        if (c == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) <= 0x9f) return false;
    }
    return true;
}

append_result failure(append_code code, std::string message) {
    append_result r;
    r.code = code;
    r.message = std::move(message);
    return r;
}

} // namespace

std::string_view to_string(append_code c) noexcept {
    switch (c) {
    case append_code::ok: return "ok";
    case append_code::version_conflict: return "version_conflict";
    case append_code::idempotency_mismatch: return "idempotency_mismatch";
    case append_code::invalid: return "invalid";
    case append_code::unavailable: return "unavailable";
    case append_code::overloaded: return "overloaded";
    }
    return "unknown";
}

// A queued request with its canonical JSON already computed on the caller's thread (the writer
// thread is the bottleneck, so keep work off it).
struct event_store::pending {
    append_request request;
    std::vector<std::string> data_json;  // per event, in request order
    std::string metadata_json;
    std::string first_metadata_json;   // the first event's: metadata with first_metadata's keys
    std::size_t event_count = 0;
    std::size_t bytes = 0;             // encoded data and metadata: what the queue's byte bound counts
    std::function<void(append_result)> done;
};

namespace {

// Validates and canonicalises; returns the refusal or nullopt.
std::optional<append_result> prepare(append_request& req, std::vector<std::string>& data_json,
                                     std::string& metadata_json, std::string& first_metadata_json, std::size_t& count) {
    if (req.streams.empty()) return failure(append_code::invalid, "an append needs at least one stream");
    count = 0;
    for (const auto& sa : req.streams) {
        if (!valid_name(sa.stream)) return failure(append_code::invalid, "stream name is empty or has control characters");
        if (sa.expected_version < any_version) return failure(append_code::invalid, "expected_version below -1");
        for (const auto& e : sa.events) {
            if (!valid_name(e.type)) return failure(append_code::invalid, "event type is empty or has control characters");
            if (!detail::timestamptz_in_range(e.effective_at))
                return failure(append_code::invalid, "effective_at outside years 1..9999");
            const boost::json::value v(e.data);  // jsonb_incompatibility takes a value
            if (auto why = jsonb_incompatibility(v)) return failure(append_code::invalid, "event data holds " + *why);
            data_json.push_back(canonical_json(v));
            ++count;
        }
    }
    if (count == 0) return failure(append_code::invalid, "an append needs at least one event");
    const boost::json::value m(req.metadata);
    if (auto why = jsonb_incompatibility(m)) return failure(append_code::invalid, "metadata holds " + *why);
    metadata_json = canonical_json(m);
    if (req.first_metadata.empty()) {
        first_metadata_json = metadata_json;
    } else {
        boost::json::object first = req.metadata;
        for (const auto& kv : req.first_metadata) first[kv.key()] = kv.value();
        const boost::json::value f(std::move(first));
        if (auto why = jsonb_incompatibility(f)) return failure(append_code::invalid, "metadata holds " + *why);
        first_metadata_json = canonical_json(f);
    }
    if (req.idempotency_key && (req.idempotency_key->empty() || req.idempotency_key->find('\0') != std::string::npos ||
                                !valid_utf8(*req.idempotency_key)))
        return failure(append_code::invalid, "idempotency key is empty, holds U+0000 or is not valid UTF-8");
    if (req.fingerprint.find('\0') != std::string::npos || !valid_utf8(req.fingerprint))
        return failure(append_code::invalid, "fingerprint holds U+0000 or is not valid UTF-8");
    return std::nullopt;
}

} // namespace

event_store::event_store(std::string conninfo, const mqledger::clock& clk, store_options options)
    : conninfo_(for_daemon(conninfo)), clock_(clk), options_(std::move(options)) {
    writer_ = std::thread([this] { run(); });
}

event_store::~event_store() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    room_.notify_all();
    writer_.join();
}

void event_store::append(append_request request, std::function<void(append_result)> done) {
    pending p;
    if (auto refused = prepare(request, p.data_json, p.metadata_json, p.first_metadata_json, p.event_count)) {
        done(std::move(*refused));
        return;
    }
    p.bytes = p.metadata_json.size() * p.event_count + p.first_metadata_json.size();
    for (const auto& d : p.data_json) p.bytes += d.size();
    const bool wait = request.wait_when_full;
    p.request = std::move(request);
    p.done = std::move(done);
    {
        std::unique_lock lock(mutex_);
        // Room: within both bounds, or an empty queue (a request larger than a bound alone still
        // goes through, on its own).
        const auto fits = [&] {
            const bool events_ok = options_.max_queued_events == 0 || queued_events_ + p.event_count <= options_.max_queued_events;
            const bool bytes_ok = options_.max_queued_bytes == 0 || queued_bytes_ + p.bytes <= options_.max_queued_bytes;
            return queue_.empty() || (events_ok && bytes_ok);
        };
        if (!fits()) {
            if (!wait) {
                lock.unlock();
                p.done(failure(append_code::overloaded, "the writer's queue is full (" + std::to_string(queued_events_) +
                                                            " events waiting); nothing was queued, retry later"));
                return;
            }
            room_.wait(lock, [&] { return stopping_ || fits(); });
        }
        queued_events_ += p.event_count;
        queued_bytes_ += p.bytes;
        queue_.push_back(std::move(p));
    }
    wake_.notify_one();
}

std::pair<std::size_t, std::size_t> event_store::queued() const {
    std::lock_guard lock(mutex_);
    return {queued_events_, queued_bytes_};
}

std::future<append_result> event_store::append_async(append_request request) {
    auto promise = std::make_shared<std::promise<append_result>>();
    auto future = promise->get_future();
    append(std::move(request), [promise](append_result r) { promise->set_value(std::move(r)); });
    return future;
}

append_result event_store::append(append_request request) {
    return append_async(std::move(request)).get();
}

std::uint64_t event_store::batches_committed() const noexcept { return batches_.load(); }

void event_store::run() {
    std::vector<pending> batch;
    for (;;) {
        {
            std::unique_lock lock(mutex_);
            wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping and drained
            std::size_t events = 0;
            while (!queue_.empty() && (batch.empty() || events + queue_.front().event_count <= options_.max_batch_events)) {
                events += queue_.front().event_count;
                queued_events_ -= queue_.front().event_count;
                queued_bytes_ -= queue_.front().bytes;
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        room_.notify_all();
        process(batch);
        batch.clear();
    }
}

void event_store::process(std::vector<pending>& batch) {
    std::vector<append_result> results(batch.size());
    auto fail_all = [&](const std::string& why) {
        for (auto& r : results) r = failure(append_code::unavailable, why);
    };

    bool commit_sent = false;
    try {
        if (options_.fault) options_.fault(fault_point::before_begin);
        if (!conn_) {
            conn_ = std::make_unique<pqxx::connection>(conninfo_);
            conn_->prepare("mqledger_range", std::string(range_sql_prefix) + detail::event_columns + range_sql_suffix);
        }

        // Streams and keys this batch touches, for the one state query.
        std::vector<std::string_view> streams;
        std::vector<std::string_view> keys;
        {
            std::unordered_set<std::string_view> s;
            for (const auto& p : batch) {
                for (const auto& sa : p.request.streams)
                    if (s.insert(sa.stream).second) streams.push_back(sa.stream);
                if (p.request.idempotency_key) keys.push_back(*p.request.idempotency_key);
            }
        }

        // The batch's stream sets, numbered in request order.
        std::vector<const stream_set*> sets;
        std::vector<std::size_t> set_owner;   // set number -> request index
        for (std::size_t i = 0; i < batch.size(); ++i)
            for (const auto& ss : batch[i].request.sets_read) {
                sets.push_back(&ss);
                set_owner.push_back(i);
            }

        // READ COMMITTED explicitly: the state read must take its snapshot after the lock is
        // granted, whatever default_transaction_isolation the server or role sets.
        // The transaction block is driven by hand (BEGIN … COMMIT through a nontransaction) to
        // fold statements into three round trips: BEGIN + lock + state read; the events and the
        // observer's projection rows in one statement; COMMIT. Round trips and the commit's
        // fsync bound a batch's latency, and with closed-loop callers throughput = callers /
        // latency. Any error drops the connection, which rolls back.
        pqxx::nontransaction tx(*conn_);
        const auto set_members = sets.empty() || !options_.sets.members ? std::string() : options_.sets.members(tx, sets);
        const auto state = tx.exec("BEGIN ISOLATION LEVEL READ COMMITTED; " + append_lock_sql + "; " +
                                   state_query(tx, detail::text_array(streams), detail::text_array(keys), set_members));

        std::int64_t position = 0;
        std::string prev_hash(genesis_hash);
        std::unordered_map<std::string_view, std::int64_t> version;  // stream -> current version
        version.reserve(streams.size());
        for (const auto name : streams) version.emplace(name, 0);
        struct used_key { std::string fingerprint; std::int64_t position; std::int64_t count; };
        std::unordered_map<std::string, used_key> db_keys;
        for (const auto& row : state) {
            const char tag = row[0].c_str()[0];
            if (tag == 'h') {
                position = row[2].as<std::int64_t>();
                prev_hash = row[3].as<std::string>();
            } else if (tag == 'k') {
                db_keys.emplace(row[1].as<std::string>(),
                                used_key{row[3].as<std::string>(), row[2].as<std::int64_t>(), row[4].as<std::int64_t>()});
            }
        }
        // Versions by name (the union's row order need not follow unnest's); set members by request.
        std::vector<std::vector<std::string>> members(batch.size());
        for (const auto& row : state) {
            const char tag = row[0].c_str()[0];
            if (tag == 'v') {
                const auto it = version.find(std::string_view(row[1].c_str(), row[1].size()));
                if (it != version.end()) it->second = row[2].as<std::int64_t>();
            } else if (tag == 'g') {
                const auto set_no = row[2].as<std::int64_t>();
                if (set_no < 0 || static_cast<std::size_t>(set_no) >= set_owner.size())
                    throw std::logic_error("the set reader answered an unknown set number");
                members[set_owner[static_cast<std::size_t>(set_no)]].push_back(row[1].as<std::string>());
            }
        }
        // The streams each scope's accepted requests of this batch write (the in-batch set check).
        struct scoped_write {
            std::string_view stream;
            const std::string* facts;   // nullptr: none given
        };
        std::unordered_map<std::string_view, std::vector<scoped_write>> written_in_scope;

        // Decide each request alone, in queue order, against the database state plus the
        // requests accepted before it in this batch.
        const auto recorded_us = to_us(clock_.now());
        std::string recorded_text;
        detail::append_timestamptz(recorded_text, recorded_us);

        std::unordered_map<std::string_view, std::size_t> batch_keys;  // key -> accepted request index
        std::vector<std::size_t> replay_of(batch.size(), SIZE_MAX);     // replays an earlier request
        std::vector<std::pair<std::int64_t, std::int64_t>> replay_db(batch.size(), {0, 0});
        std::vector<std::pair<std::size_t, std::size_t>> slice(batch.size(), {0, 0});  // into written

        insert_arrays a;
        std::vector<recorded_event> written;
        bool any_row = false;

        for (std::size_t i = 0; i < batch.size(); ++i) {
            auto& req = batch[i].request;
            if (req.idempotency_key) {
                const auto& key = *req.idempotency_key;
                if (const auto it = db_keys.find(key); it != db_keys.end()) {
                    if (it->second.fingerprint != req.fingerprint) {
                        results[i] = failure(append_code::idempotency_mismatch,
                                             "idempotency key " + key + " was used for a different request");
                    } else {
                        replay_db[i] = {it->second.position, it->second.position + it->second.count - 1};
                    }
                    continue;
                }
                if (const auto it = batch_keys.find(key); it != batch_keys.end()) {
                    if (batch[it->second].request.fingerprint != req.fingerprint) {
                        results[i] = failure(append_code::idempotency_mismatch,
                                             "idempotency key " + key + " was used for a different request");
                    } else {
                        replay_of[i] = it->second;
                    }
                    continue;
                }
            }
            // A stream may appear more than once in a request (events of one decision in order:
            // instance, account, instance …): a later occurrence is checked against the version
            // the earlier ones leave it at.
            bool conflict = false;
            std::unordered_map<std::string_view, std::int64_t> after;  // versions within this request
            for (const auto& sa : req.streams) {
                const auto seen = after.find(sa.stream);
                const auto current = seen != after.end() ? seen->second : version[sa.stream];
                after[sa.stream] = current + static_cast<std::int64_t>(sa.events.size());
                if (sa.expected_version != any_version && sa.expected_version != current) {
                    results[i] = failure(append_code::version_conflict,
                                         "stream " + sa.stream + " is at version " + std::to_string(current) +
                                             ", expected " + std::to_string(sa.expected_version));
                    results[i].conflict_stream = sa.stream;
                    results[i].actual_version = current;
                    conflict = true;
                    break;
                }
            }
            if (conflict) continue;
            if (!req.sets_read.empty()) {
                // A member of a set it took as complete that the request did not read: the set
                // changed after the request was decided.
                std::unordered_set<std::string_view> named;
                for (const auto& sa : req.streams) named.insert(sa.stream);
                std::optional<std::string> joined;
                for (const auto& m : members[i])
                    if (!named.count(m)) {
                        joined = m;
                        break;
                    }
                for (std::size_t k = 0; !joined && k < req.sets_read.size(); ++k)
                    if (const auto it = written_in_scope.find(req.sets_read[k].scope); it != written_in_scope.end())
                        for (const auto& w : it->second)
                            if (!named.count(w.stream) && (!options_.sets.admits || w.facts == nullptr ||
                                                           options_.sets.admits(req.sets_read[k], *w.facts))) {
                                joined = std::string(w.stream);
                                break;
                            }
                if (joined) {
                    results[i] = failure(append_code::version_conflict,
                                         "stream " + *joined + " joined a set this request took as complete (" +
                                             req.sets_read.front().scope + ") after it was decided");
                    results[i].conflict_stream = *joined;
                    const auto v = version.find(*joined);
                    results[i].actual_version = v != version.end() ? v->second : 0;
                    continue;
                }
            }

            // Accepted: number, hash and encode its events.
            const auto first = written.size();
            std::size_t data_index = 0;
            for (auto& sa : req.streams) {
                auto& current = version[sa.stream];
                for (auto& ev : sa.events) {
                    recorded_event r;
                    r.position = ++position;
                    r.stream = sa.stream;
                    r.stream_version = ++current;
                    r.type = ev.type;
                    r.effective_at = ev.effective_at;
                    r.recorded_at = time_point(duration(recorded_us));
                    r.prev_hash = prev_hash;
                    const auto& data_json = batch[i].data_json[data_index++];
                    const bool first_of_request = written.size() == first;
                    const auto& metadata_json = first_of_request ? batch[i].first_metadata_json : batch[i].metadata_json;
                    r.hash = event_hash({r.prev_hash, r.position, r.stream, r.stream_version, r.type,
                                         to_us(r.effective_at), recorded_us, data_json, metadata_json});
                    prev_hash = r.hash;

                    const char* sep = any_row ? "," : "";
                    a.pos += sep; detail::append_array_int(a.pos, r.position);
                    a.stream += sep; detail::append_array_element(a.stream, r.stream);
                    a.ver += sep; detail::append_array_int(a.ver, r.stream_version);
                    a.type += sep; detail::append_array_element(a.type, r.type);
                    a.data += sep; detail::append_array_element(a.data, data_json);
                    a.meta += sep; detail::append_array_element(a.meta, metadata_json);
                    a.eff += sep; a.eff.push_back('"'); detail::append_timestamptz(a.eff, to_us(r.effective_at)); a.eff.push_back('"');
                    a.prev += sep; detail::append_array_element(a.prev, r.prev_hash);
                    a.hash += sep; detail::append_array_element(a.hash, r.hash);
                    a.key += sep; a.fp += sep; a.count += sep;
                    if (first_of_request && req.idempotency_key) {
                        detail::append_array_element(a.key, *req.idempotency_key);
                        detail::append_array_element(a.fp, req.fingerprint);
                        detail::append_array_int(a.count, static_cast<std::int64_t>(batch[i].event_count));
                    } else {
                        a.key += "NULL"; a.fp += "NULL"; a.count += "NULL";
                    }
                    any_row = true;

                    r.data = std::move(ev.data);
                    r.metadata = req.metadata;
                    if (first_of_request)
                        for (const auto& kv : req.first_metadata) r.metadata[kv.key()] = kv.value();
                    written.push_back(std::move(r));
                }
            }
            slice[i] = {first, written.size()};
            if (req.idempotency_key) batch_keys.emplace(*req.idempotency_key, i);
            if (!req.scope.empty())
                for (const auto& sa : req.streams)
                    if (!sa.events.empty()) {
                        const auto f = req.member_facts.find(sa.stream);
                        written_in_scope[req.scope].push_back({sa.stream, f != req.member_facts.end() ? &f->second : nullptr});
                    }
        }

        // Replays of appends committed earlier: read what they wrote.
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (replay_db[i].first == 0) continue;
            auto& r = results[i];
            r.replayed = true;
            for (const auto& row : tx.exec_prepared("mqledger_range", replay_db[i].first, replay_db[i].second))
                r.events.push_back(detail::read_event(row));
        }
        // The rows and the observer's projection rows: one statement with bound parameters (no
        // literal to escape or lex, whatever the size). An error in it is answered before COMMIT
        // is sent: nothing was written. Only a connection lost after COMMIT was sent leaves the
        // outcome unknown.
        if (any_row) {
            std::string sql = std::string("WITH ") + insert_cte;
            auto params = insert_values(a, recorded_text);
            if (options_.observer) {
                batch_view view{written, {}, insert_params + 1};
                for (std::size_t i = 0; i < batch.size(); ++i)
                    if (slice[i].second > slice[i].first) view.projections.push_back(&batch[i].request.projection);
                auto more = options_.observer(tx, view);
                for (auto& cte : more.ctes) sql += ", " + cte;
                for (auto& p : more.params) params.push_back(std::move(p));
            }
            sql += " SELECT 1";
            if (options_.fault) options_.fault(fault_point::before_commit);
            tx.exec_params(sql, pqxx::prepare::make_dynamic_params(params));
        } else if (options_.fault) {
            options_.fault(fault_point::before_commit);
        }
        commit_sent = true;
        try {
            // Guarded: COMMIT of a block that already failed would answer ROLLBACK without error.
            tx.exec(guarded_commit_sql);
        } catch (const pqxx::sql_error&) {
            commit_sent = false;   // the server answered with an error: the block was rolled back
            throw;
        }
        if (options_.fault) options_.fault(fault_point::after_commit);
        batches_.fetch_add(1);

        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (slice[i].second > slice[i].first) {
                results[i].events.assign(std::make_move_iterator(written.begin() + static_cast<std::ptrdiff_t>(slice[i].first)),
                                         std::make_move_iterator(written.begin() + static_cast<std::ptrdiff_t>(slice[i].second)));
            }
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
            if (replay_of[i] != SIZE_MAX) {
                results[i].events = results[replay_of[i]].events;
                results[i].replayed = true;
            }
        }
    } catch (const std::exception& e) {
        // SQL errors, lost connections and observer failures alike: drop the connection, which
        // rolls the open transaction back, and reconnect for the next batch.
        conn_.reset();
        if (commit_sent)
            fail_all(std::string("database connection lost during COMMIT; the outcome is unknown, retry with the"
                                 " same idempotency key: ") + e.what());
        else
            fail_all(std::string("append failed, nothing written: ") + e.what());
    }

    for (std::size_t i = 0; i < batch.size(); ++i) {
        try {
            batch[i].done(std::move(results[i]));
        } catch (...) {
            // A caller's callback must not stop the writer.
        }
    }
}

// ---- reads ----

std::vector<recorded_event> read_streams_before(pqxx::transaction_base& tx, const std::vector<std::string>& streams,
                                                std::int64_t before_position) {
    std::vector<recorded_event> out;
    if (streams.empty()) return out;
    const auto r = tx.exec_params(std::string("SELECT ") + detail::event_columns +
                                      " FROM events WHERE stream = ANY($1::text[]) AND position < $2 ORDER BY position",
                                  detail::text_array(streams), before_position);
    out.reserve(r.size());
    for (const auto& row : r) out.push_back(detail::read_event(row));
    return out;
}

std::vector<std::string> streams_written_since(pqxx::transaction_base& tx, std::int64_t from_position) {
    std::vector<std::string> out;
    for (const auto& row : tx.exec_params("SELECT DISTINCT stream FROM events WHERE position >= $1", from_position))
        out.emplace_back(row[0].c_str());
    return out;
}

std::int64_t unit_start_at_or_before(pqxx::transaction_base& tx, std::int64_t at_or_before) {
    const auto r = tx.exec_params("SELECT position FROM events WHERE position <= $1 AND metadata ? 'unit'"
                                  " ORDER BY position DESC LIMIT 1",
                                  at_or_before);
    return r.empty() ? 0 : r[0][0].as<std::int64_t>();
}

std::vector<recorded_event> read_stream(pqxx::transaction_base& tx, const std::string& stream,
                                        std::optional<time_point> up_to_effective_at) {
    std::vector<recorded_event> out;
    const std::string base = std::string("SELECT ") + detail::event_columns + " FROM events WHERE stream = $1";
    pqxx::result r;
    if (up_to_effective_at) {
        std::string t;
        detail::append_timestamptz(t, to_us(*up_to_effective_at));
        r = tx.exec_params(base + " AND effective_at <= $2::timestamptz ORDER BY stream_version", stream, t);
    } else {
        r = tx.exec_params(base + " ORDER BY stream_version", stream);
    }
    out.reserve(r.size());
    for (const auto& row : r) out.push_back(detail::read_event(row));
    return out;
}

std::vector<recorded_event> read_all(pqxx::transaction_base& tx, std::int64_t after_position, std::int64_t limit) {
    std::vector<recorded_event> out;
    const auto r = tx.exec_params(std::string("SELECT ") + detail::event_columns +
                                      " FROM events WHERE position > $1 ORDER BY position LIMIT $2",
                                  after_position, limit);
    out.reserve(r.size());
    for (const auto& row : r) out.push_back(detail::read_event(row));
    return out;
}

void for_each_page(pqxx::connection& c, std::int64_t after_position, std::int64_t page_size,
                   const std::function<bool(const std::vector<recorded_event>&)>& fn) {
    for (;;) {
        std::vector<recorded_event> page;
        {
            pqxx::read_transaction tx(c);
            page = read_all(tx, after_position, page_size);
        }
        if (page.empty() || !fn(page)) return;
        after_position = page.back().position;
    }
}

std::vector<recorded_event> read_stream_page(pqxx::transaction_base& tx, const std::string& stream,
                                             std::int64_t after_version, std::int64_t limit) {
    std::vector<recorded_event> out;
    const auto r = tx.exec_params(std::string("SELECT ") + detail::event_columns +
                                      " FROM events WHERE stream = $1 AND stream_version > $2 ORDER BY stream_version LIMIT $3",
                                  stream, after_version, limit);
    out.reserve(r.size());
    for (const auto& row : r) out.push_back(detail::read_event(row));
    return out;
}

std::optional<keyed_append> find_keyed_append(pqxx::transaction_base& tx, const std::string& key) {
    const auto r = tx.exec_params(
        "SELECT position, idempotency_fingerprint, append_count FROM events WHERE idempotency_key = $1", key);
    if (r.empty()) return std::nullopt;
    return keyed_append{r[0][0].as<std::int64_t>(), r[0][1].as<std::string>(), r[0][2].as<std::int64_t>()};
}

head_info head(pqxx::transaction_base& tx) {
    const auto r = tx.exec("SELECT position, hash FROM events ORDER BY position DESC LIMIT 1");
    if (r.empty()) return {0, std::string(genesis_hash)};
    return {r[0][0].as<std::int64_t>(), r[0][1].as<std::string>()};
}

namespace {
template <class F>
auto with_read_tx(const std::string& conninfo, F&& f) {
    try {
        pqxx::connection c(conninfo);
        pqxx::read_transaction tx(c);
        return f(tx);
    } catch (const std::exception& e) {
        throw store_unavailable(std::string("event store read failed: ") + e.what());
    }
}
} // namespace

std::vector<recorded_event> read_stream(const std::string& conninfo, const std::string& stream,
                                        std::optional<time_point> up_to_effective_at) {
    return with_read_tx(conninfo, [&](pqxx::transaction_base& tx) { return read_stream(tx, stream, up_to_effective_at); });
}

std::vector<recorded_event> read_all(const std::string& conninfo, std::int64_t after_position, std::int64_t limit) {
    return with_read_tx(conninfo, [&](pqxx::transaction_base& tx) { return read_all(tx, after_position, limit); });
}

head_info head(const std::string& conninfo) {
    return with_read_tx(conninfo, [&](pqxx::transaction_base& tx) { return head(tx); });
}

} // namespace mqledger::store
