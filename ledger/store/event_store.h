// The append-only, hash-chained event store (DESIGN.md "Event store", "Ordering", "Group commit").
//
// One writer thread per event_store owns one connection. Callers enqueue append requests; the
// writer takes everything pending and appends it in ONE transaction (one fsync): it takes the
// transaction-scoped advisory lock, reads the head and the current versions of every stream in
// the batch (one round trip), decides each request alone (a version conflict or idempotency
// mismatch fails only that request), then writes the rows and the batch observer's projection
// rows in ONE statement with bound parameters, commits, and only then answers the callers. A
// database error fails the whole batch with `unavailable` (nothing written; or, when the
// connection was lost after COMMIT was sent, an unknown outcome) and the writer reconnects for
// the next batch.
// The queue is bounded (events and bytes): a full queue refuses a request (`overloaded`) or
// makes it wait, as the request asks.
#pragma once

#include "ledger/clock.h"
#include "ledger/types.h"

#include <boost/json/object.hpp>
#include <pqxx/pqxx>

#include <any>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>


namespace mqledger::store {

/// An event to append. `data` must be jsonb-compatible (no doubles, no U+0000, valid UTF-8).
struct new_event {
    std::string type;             // dotted lower case, e.g. "instance.released"
    boost::json::object data;
    time_point effective_at;
};

/// The key of the transaction-scoped advisory lock every append takes before reading the head
/// (DESIGN.md "Ordering"). Anything else that must not interleave with appends (a projection
/// rebuild's swap) takes it first too, so all writers lock in one order and cannot deadlock.
inline constexpr std::int64_t append_lock_key = 7887453213541990401;

/// `expected_version` for "whatever the stream's version is".
inline constexpr std::int64_t any_version = -1;

/// Events for one stream, appended only if the stream's current version (its last
/// stream_version; 0 when it has no events) equals `expected_version` (or it is any_version).
struct stream_append {
    std::string stream;
    std::int64_t expected_version = any_version;
    std::vector<new_event> events;
};

/// A set of streams a request took as complete without naming its members (the daemon: "the
/// instances of account A with a timer due by T"). Opaque to the store: `store_options::set_reader`
/// lists each set's members under the append lock, and a member the request does not name among
/// its `streams` (with the version it read) is a version conflict. Within one batch, a request
/// whose set has scope S also conflicts with an earlier request of the batch whose `scope` is S
/// and which writes a stream this one does not name, when that stream's `member_facts` may put
/// it in the set (`set_reader::admits`; without a reader, always): the database does not show
/// the set's new member yet.
struct stream_set {
    std::string scope;
    std::string query;
};

/// One atomic append: every stream's events, or none, in the order given (positions follow it).
/// A stream may appear more than once; a later occurrence's expected_version is checked against
/// the version the earlier occurrences leave it at (any_version is simplest there).
struct append_request {
    std::vector<stream_append> streams;
    /// Attached to every event (the daemon puts actor, idempotency_key, correlation_id,
    /// policy_version, schema_version here).
    boost::json::object metadata;
    /// Added to the metadata of the append's first event only (the daemon's unit record: said
    /// once per append rather than on each of its events). A key here wins over `metadata`'s.
    boost::json::object first_metadata;
    /// A repeat of a key returns the first append's result and writes nothing; the same key with
    /// another fingerprint is refused (idempotency_mismatch). The key is stored on the first
    /// event of the append.
    std::optional<std::string> idempotency_key;
    /// What "the same request" means, e.g. SHA-256 of the HTTP body. Compared byte for byte.
    std::string fingerprint;
    /// The sets this request took as complete (see stream_set), and the scope of the streams it
    /// writes (the daemon: the unit's account; empty: none).
    std::vector<stream_set> sets_read;
    std::string scope;
    /// What a written stream is after this request, in the set reader's terms (opaque to the
    /// store; see stream_set), by stream. A written stream without facts may join any set.
    std::map<std::string, std::string> member_facts;
    /// Opaque to the store: handed to the batch observer with the request once it is accepted
    /// (the daemon puts the projection rows its unit decided here, so the projector neither reads
    /// nor folds them again).
    std::any projection;
    /// When the writer's queue is full (store_options' bounds): refuse at once with
    /// `overloaded` (a client's command: it retries later), or wait for room (the timer
    /// service, which must not drop what is due).
    bool wait_when_full = false;
};

/// A stored event, as read back or as just written.
struct recorded_event {
    std::int64_t position = 0;
    std::string stream;
    std::int64_t stream_version = 0;
    std::string type;
    boost::json::object data;
    boost::json::object metadata;
    time_point effective_at;
    time_point recorded_at;
    std::string prev_hash;
    std::string hash;
};

/// Stable outcome codes of an append. Never renumber.
enum class append_code {
    ok = 0,
    version_conflict = 1,      // a stream's version differs from expected (HTTP 412 / 409)
    idempotency_mismatch = 2,  // key reused with another fingerprint (HTTP 422)
    invalid = 3,               // the request itself is unusable (empty, bad stream name, a double …)
    unavailable = 4,           // database error; nothing was written, or (message says so) the
                               // outcome is unknown: retry with the same idempotency key (HTTP 503)
    overloaded = 5,            // the writer's queue is full; nothing was queued (HTTP 503, Retry-After)
};

[[nodiscard]] std::string_view to_string(append_code c) noexcept;

struct append_result {
    append_code code = append_code::ok;
    /// ok: the events this append wrote, in position order. With `replayed`, the events the
    /// first append with this idempotency key wrote (nothing new was written).
    std::vector<recorded_event> events;
    bool replayed = false;
    std::string message;           // human-readable reason when !ok()
    std::string conflict_stream;   // version_conflict: the stream ...
    std::int64_t actual_version = 0; // ... and its actual current version
    [[nodiscard]] bool ok() const noexcept { return code == append_code::ok; }
};

/// A batch the writer is about to commit, as its observer sees it.
struct batch_view {
    /// The events the batch wrote, in position order (replays excluded).
    const std::vector<recorded_event>& events;
    /// The `projection` of each request the batch accepted, in queue (= position) order.
    std::vector<const std::any*> projections;
    /// The first parameter number the observer's statements may use ($N).
    int first_param = 1;
};

/// What the observer adds to the batch's write: common table expressions (`name AS (INSERT …)`,
/// data-modifying, names starting with `p_`), which the writer joins with its own INSERT of the
/// events into ONE statement, and the text parameters they use, numbered from
/// `batch_view::first_param`. One statement, bound parameters: no literal is escaped or lexed,
/// whatever the batch's size. Every part sees the snapshot from before the statement, so two
/// parts must not touch the same row.
struct batch_writes {
    std::vector<std::string> ctes;
    std::vector<std::string> params;
};

/// Called by the writer inside the batch transaction before the batch's rows are sent. It may run
/// statements through `tx` (reads; they are part of the batch's transaction: a
/// pqxx::nontransaction inside the writer's own BEGIN … COMMIT; do not call tx.commit()/abort()
/// or open a subtransaction), and returns the projection writes that go with the events. If it
/// throws, or its writes fail, the whole batch fails with `unavailable` and nothing is written.
/// Runs on the writer thread; never call the store from it.
using batch_observer = std::function<batch_writes(pqxx::transaction_base& tx, const batch_view& batch)>;

/// Reads stream sets (stream_set::query), on the writer thread.
struct set_reader {
    /// Given the batch's sets, numbered by their index, the text of ONE query whose rows are (set
    /// number bigint, member stream text), its values quoted through `tx`. It runs in the state
    /// read's round trip, under the append lock, so it sees every committed batch.
    std::function<std::string(pqxx::transaction_base& tx, const std::vector<const stream_set*>& sets)> members;
    /// Whether a stream with these `member_facts` may belong to `set` (the in-batch check).
    std::function<bool(const stream_set& set, std::string_view member_facts)> admits;
};

/// Where the writer is in a batch, for fault injection (tests): the hook may throw (a
/// pqxx::broken_connection, a pqxx::sql_error …) or sleep.
enum class fault_point {
    before_begin,   // nothing sent yet
    before_commit,  // BEGIN, lock and state read done; the rows and COMMIT not sent
    after_commit,   // committed; the callers not answered yet (throwing here is an unknown outcome)
};
using fault_hook = std::function<void(fault_point)>;

struct store_options {
    /// Upper bound on events per batch transaction (a batch never splits a request).
    std::size_t max_batch_events = 20000;
    batch_observer observer;
    /// Lists the members of the requests' stream sets. Without it only the in-batch check is
    /// made: enough for a single writer that is the database's only appender (a populate).
    set_reader sets;
    /// Bounds of the writer's queue (requests waiting for a batch): events and bytes of their
    /// encoded data and metadata. A request that would pass either is refused (`overloaded`) or,
    /// with `wait_when_full`, waits. A request larger than a bound alone is accepted into an
    /// empty queue. 0 = unbounded.
    std::size_t max_queued_events = 100000;
    std::size_t max_queued_bytes = 64u << 20;
    /// Fault injection for tests; empty in production.
    fault_hook fault;
};

/// The defaults with `observer`.
[[nodiscard]] inline store_options observed_by(batch_observer observer) {
    store_options o;
    o.observer = std::move(observer);
    return o;
}

/// Thrown by the read functions when the database cannot be read (connection or SQL failure).
class store_unavailable : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// The last event's position and hash; {0, genesis_hash} for an empty log.
struct head_info {
    std::int64_t position = 0;
    std::string hash;
};

class event_store {
public:
    /// Starts the writer thread; connects lazily (the first batch), so construction never fails
    /// on an unreachable database. `clk` stamps recorded_at and must outlive the store.
    event_store(std::string conninfo, const mqledger::clock& clk, store_options options = {});
    /// Answers everything still queued (appending it), then stops the writer.
    ~event_store();
    event_store(const event_store&) = delete;
    event_store& operator=(const event_store&) = delete;

    /// Queues `request`; the future is ready once its batch committed (or failed). Never throws
    /// except std::bad_alloc. Thread-safe.
    [[nodiscard]] std::future<append_result> append_async(append_request request);
    /// Callback form: `done` runs on the writer thread after the batch committed (or, for a
    /// request refused as `invalid` before queueing, at once on the calling thread); keep it
    /// short and never call the synchronous append from it. Thread-safe.
    void append(append_request request, std::function<void(append_result)> done);
    /// Synchronous form: blocks until the batch committed. Thread-safe.
    [[nodiscard]] append_result append(append_request request);

    /// Batches committed so far (for tests and metrics). Thread-safe.
    [[nodiscard]] std::uint64_t batches_committed() const noexcept;
    /// Events and bytes waiting in the queue now (for metrics). Thread-safe.
    [[nodiscard]] std::pair<std::size_t, std::size_t> queued() const;

private:
    struct pending;
    void run();
    void process(std::vector<pending>& batch);

    std::string conninfo_;
    const mqledger::clock& clock_;
    store_options options_;
    std::unique_ptr<pqxx::connection> conn_;
    mutable std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable room_;
    std::deque<pending> queue_;
    std::size_t queued_events_ = 0;
    std::size_t queued_bytes_ = 0;
    bool stopping_ = false;
    std::atomic<std::uint64_t> batches_{0};
    std::thread writer_;
};

// ---- reads: plain functions over a caller's transaction (any role with SELECT on events) ----

/// The stream's events in version order; with `up_to_effective_at`, only those whose
/// effective_at <= it (for `as_of`). Throws pqxx exceptions (the caller owns the transaction).
[[nodiscard]] std::vector<recorded_event> read_stream(pqxx::transaction_base& tx, const std::string& stream,
                                                      std::optional<time_point> up_to_effective_at = std::nullopt);

/// The events of `streams` with position < `before_position`, in position order (the states an
/// incremental audit starts from). Throws pqxx exceptions.
[[nodiscard]] std::vector<recorded_event> read_streams_before(pqxx::transaction_base& tx,
                                                              const std::vector<std::string>& streams,
                                                              std::int64_t before_position);

/// The streams written at or after `from_position`, and the position of the unit record at or
/// before `at_or_before` (the start of the unit holding it; 0 when none). Throws pqxx exceptions.
[[nodiscard]] std::vector<std::string> streams_written_since(pqxx::transaction_base& tx, std::int64_t from_position);
[[nodiscard]] std::int64_t unit_start_at_or_before(pqxx::transaction_base& tx, std::int64_t at_or_before);

/// Up to `limit` events with position > `after_position`, in position order (the global feed).
/// Never skips: positions commit in order (DESIGN.md "Ordering"). Throws pqxx exceptions.
[[nodiscard]] std::vector<recorded_event> read_all(pqxx::transaction_base& tx, std::int64_t after_position,
                                                   std::int64_t limit);

/// Reads every event after `after_position` in position order, `page_size` at a time, each page in
/// its own short read-only transaction on `c` (memory stays one page whatever the log's size),
/// and hands each page to `fn`, which returns false to stop. Throws pqxx exceptions and whatever
/// `fn` throws.
void for_each_page(pqxx::connection& c, std::int64_t after_position, std::int64_t page_size,
                   const std::function<bool(const std::vector<recorded_event>&)>& fn);

/// The last position and hash. Throws pqxx exceptions.
[[nodiscard]] head_info head(pqxx::transaction_base& tx);

/// Up to `limit` events of `stream` with stream_version > `after_version`, in version order (a
/// page of one stream). Throws pqxx exceptions.
[[nodiscard]] std::vector<recorded_event> read_stream_page(pqxx::transaction_base& tx, const std::string& stream,
                                                           std::int64_t after_version, std::int64_t limit);

/// The append that used idempotency key `key`: its first position, the fingerprint it was
/// stored with and how many events it wrote; nothing when the key is unused. Throws pqxx
/// exceptions.
struct keyed_append {
    std::int64_t first_position = 0;
    std::string fingerprint;
    std::int64_t count = 0;
};
[[nodiscard]] std::optional<keyed_append> find_keyed_append(pqxx::transaction_base& tx, const std::string& key);

/// Convenience forms that open their own short connection and turn every database failure into
/// store_unavailable. Thread-safe.
[[nodiscard]] std::vector<recorded_event> read_stream(const std::string& conninfo, const std::string& stream,
                                                      std::optional<time_point> up_to_effective_at = std::nullopt);
[[nodiscard]] std::vector<recorded_event> read_all(const std::string& conninfo, std::int64_t after_position,
                                                   std::int64_t limit);
[[nodiscard]] head_info head(const std::string& conninfo);

} // namespace mqledger::store
