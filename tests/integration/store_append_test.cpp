// Integration tests of the event store's append path: optimistic concurrency, group commit,
// idempotency, atomic multi-stream appends and the batch observer.
#include "tests/integration/pg_fixture.h"

#include "ledger/store/event_store.h"
#include "ledger/store/hash_chain.h"
#include "ledger/store/verify.h"

#include <barrier>
#include <condition_variable>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>

using namespace mqledger;
using namespace mqledger::store;
using mqledger::test::scratch_db;

namespace {

const time_point t0 = time_point(std::chrono::seconds(1'763'899'200)); // 2025-11-23T12:00:00Z

new_event ev(std::string type, std::int64_t n) {
    boost::json::object data;
    data["n"] = n;
    data["note"] = "é\n\"q\"";
    return {std::move(type), std::move(data), t0 + std::chrono::seconds(n)};
}

append_request one(std::string stream, std::int64_t expected, std::int64_t n = 1) {
    append_request r;
    r.streams.push_back({std::move(stream), expected, {ev("test.happened", n)}});
    r.metadata["actor"] = "tester";
    return r;
}

append_request keyed(std::string stream, std::string key, std::string fingerprint) {
    auto r = one(std::move(stream), any_version);
    r.streams[0].events.push_back(ev("test.happened", 2));
    r.idempotency_key = std::move(key);
    r.fingerprint = std::move(fingerprint);
    return r;
}

std::int64_t count_rows(const scratch_db& db, const std::string& where = "true") {
    return std::stoll(db.admin_scalar("SELECT count(*) FROM events WHERE " + where));
}

// Holds the writer inside its batch transaction until released, so the test can queue several
// requests that must then land in one batch together.
struct writer_gate {
    std::mutex m;
    std::condition_variable cv;
    bool armed = false, inside = false, open = false;

    batch_observer observer() {
        return [this](pqxx::transaction_base&, const batch_view&) {
            std::unique_lock lock(m);
            if (!armed) return batch_writes{};
            armed = false;
            inside = true;
            cv.notify_all();
            cv.wait(lock, [this] { return open; });
            return batch_writes{};
        };
    }
    void arm() { std::lock_guard lock(m); armed = true; open = false; inside = false; }
    void wait_inside() { std::unique_lock lock(m); cv.wait(lock, [this] { return inside; }); }
    void release() { std::lock_guard lock(m); open = true; cv.notify_all(); }
};

/// A store whose writer can be held inside a batch, so that requests queued meanwhile are all
/// judged together in the next one.
struct gated_store {
    scratch_db db;
    manual_clock clk{t0};
    writer_gate gate;
    event_store store{db.app_url(), clk, gated_options()};

    store_options gated_options() {
        store_options o;
        o.observer = gate.observer();
        return o;
    }
    /// Appends a blocker and returns once the writer is inside its batch; gate.release() lets it go.
    std::future<append_result> hold_writer() {
        gate.arm();
        auto blocker = store.append_async(one("instance-block", 0));
        gate.wait_inside();
        return blocker;
    }
};

} // namespace

TEST_CASE("append: events get gapless positions, versions from 1, and a valid chain", "[store]") {
    scratch_db db;
    manual_clock clk(t0);
    event_store store(db.app_url(), clk);

    auto r1 = store.append(one("instance-a", 0, 1));
    REQUIRE(r1.ok());
    REQUIRE(r1.events.size() == 1);
    CHECK(r1.events[0].position == 1);
    CHECK(r1.events[0].stream_version == 1);
    CHECK(r1.events[0].prev_hash == genesis_hash);
    CHECK(r1.events[0].recorded_at == t0);
    clk.advance_to(t0 + std::chrono::microseconds(1'234'567));
    auto r2 = store.append(one("instance-a", 1, 2));
    REQUIRE(r2.ok());
    CHECK(r2.events[0].position == 2);
    CHECK(r2.events[0].stream_version == 2);
    CHECK(r2.events[0].prev_hash == r1.events[0].hash);
    CHECK(r2.events[0].recorded_at == t0 + std::chrono::microseconds(1'234'567));

    const auto stream = read_stream(db.app_url(), "instance-a");
    REQUIRE(stream.size() == 2);
    CHECK(stream[1].hash == r2.events[0].hash);
    CHECK(stream[1].data == r2.events[0].data);
    CHECK(stream[1].metadata.at("actor") == "tester");
    CHECK(stream[1].effective_at == t0 + std::chrono::seconds(2));
    CHECK(stream[1].recorded_at == t0 + std::chrono::microseconds(1'234'567));
    CHECK(read_stream(db.app_url(), "instance-a", t0 + std::chrono::seconds(1)).size() == 1);
    CHECK(read_all(db.app_url(), 1, 10).size() == 1);
    const auto h = head(db.app_url());
    CHECK(h.position == 2);
    CHECK(h.hash == r2.events[0].hash);
    const auto rep = verify_chain(db.app_url());
    CHECK(rep.ok);
    CHECK(rep.events == 2);
}

TEST_CASE("append: two writers race on one stream, exactly one wins, the other learns the actual version", "[store]") {
    scratch_db db;
    manual_clock clk(t0);
    // Two stores = two writers (two connections), as with two daemons on one database.
    event_store a(db.app_url(), clk), b(db.app_url(), clk);
    REQUIRE(a.append(one("instance-r", 0)).ok());
    for (int round = 0; round < 20; ++round) {
        std::barrier sync(2);
        append_result ra, rb;
        const std::int64_t expected = 1 + round;
        std::thread ta([&] { sync.arrive_and_wait(); ra = a.append(one("instance-r", expected)); });
        std::thread tb([&] { sync.arrive_and_wait(); rb = b.append(one("instance-r", expected)); });
        ta.join();
        tb.join();
        REQUIRE(ra.ok() != rb.ok());
        const auto& loser = ra.ok() ? rb : ra;
        CHECK(loser.code == append_code::version_conflict);
        CHECK(loser.conflict_stream == "instance-r");
        CHECK(loser.actual_version == expected + 1);
    }
    CHECK(count_rows(db) == 21);
    CHECK(verify_chain(db.app_url()).ok);
}

TEST_CASE("append: 8 threads append 10000 events through group commit, all present once, gapless, in commit order", "[store]") {
    scratch_db db;
    manual_clock clk(t0);
    std::mutex seen_mutex;
    std::vector<std::int64_t> observed;  // positions in the order batches committed
    store_options opts;
    opts.observer = [&](pqxx::transaction_base&, const batch_view& batch) {
        std::lock_guard lock(seen_mutex);
        for (const auto& e : batch.events) observed.push_back(e.position);
        return batch_writes{};
    };
    event_store store(db.app_url(), clk, opts);
    constexpr int threads = 8, per_thread = 1250;
    std::vector<std::vector<std::int64_t>> positions(threads);
    std::atomic<int> failures{0};  // Catch2 assertions are not thread-safe: count, check after
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            const auto stream = "instance-" + std::to_string(t);
            for (int i = 0; i < per_thread; ++i) {
                // Alternate between tracked versions and "any" so both paths are exercised.
                auto r = store.append(one(stream, i % 2 == 0 ? i : any_version, i));
                if (!r.ok() || r.events.size() != 1 || r.events[0].stream_version != i + 1) {
                    ++failures;
                    return;
                }
                positions[t].push_back(r.events[0].position);
            }
        });
    }
    for (auto& t : ts) t.join();
    REQUIRE(failures == 0);

    std::set<std::int64_t> all;
    for (const auto& p : positions) {
        CHECK(std::is_sorted(p.begin(), p.end()));
        all.insert(p.begin(), p.end());
    }
    CHECK(all.size() == threads * per_thread);
    CHECK(*all.begin() == 1);
    CHECK(*all.rbegin() == threads * per_thread);
    CHECK(count_rows(db) == threads * per_thread);
    CHECK(std::is_sorted(observed.begin(), observed.end()));  // commit order == position order
    CHECK(store.batches_committed() < static_cast<std::uint64_t>(threads * per_thread));  // batching happened
    const auto rep = verify_chain(db.app_url());
    CHECK(rep.ok);
    CHECK(rep.events == threads * per_thread);
    INFO("batches: " << store.batches_committed());
}

TEST_CASE("append: a retried idempotency key returns the same positions and adds no row", "[store]") {
    scratch_db db;
    manual_clock clk(t0);
    event_store store(db.app_url(), clk);
    const auto first = store.append(keyed("instance-k", "key-1", "body-1"));
    REQUIRE(first.ok());
    CHECK_FALSE(first.replayed);
    REQUIRE(first.events.size() == 2);
    REQUIRE(store.append(one("instance-other", 0)).ok());

    const auto again = store.append(keyed("instance-k", "key-1", "body-1"));
    REQUIRE(again.ok());
    CHECK(again.replayed);
    REQUIRE(again.events.size() == 2);
    CHECK(again.events[0].position == first.events[0].position);
    CHECK(again.events[1].position == first.events[1].position);
    CHECK(again.events[1].hash == first.events[1].hash);
    CHECK(count_rows(db) == 3);
    CHECK(count_rows(db, "idempotency_key = 'key-1'") == 1);
}

TEST_CASE("append: two identical keyed requests in one batch write once and both get the result", "[store]") {
    gated_store g;
    auto blocker = g.hold_writer();
    const auto before = g.store.batches_committed();
    auto f1 = g.store.append_async(keyed("instance-k", "key-2", "body"));
    auto f2 = g.store.append_async(keyed("instance-k", "key-2", "body"));
    g.gate.release();
    REQUIRE(blocker.get().ok());
    const auto r1 = f1.get(), r2 = f2.get();
    CHECK(g.store.batches_committed() == before + 2);  // the blocker's batch, then one for both
    REQUIRE(r1.ok());
    REQUIRE(r2.ok());
    CHECK_FALSE(r1.replayed);
    CHECK(r2.replayed);
    REQUIRE(r2.events.size() == 2);
    CHECK(r2.events[0].position == r1.events[0].position);
    CHECK(count_rows(g.db, "stream = 'instance-k'") == 2);
}

TEST_CASE("append: the same idempotency key with a different fingerprint is refused", "[store]") {
    scratch_db db;
    manual_clock clk(t0);
    event_store store(db.app_url(), clk);
    REQUIRE(store.append(keyed("instance-k", "key-3", "body-a")).ok());
    const auto r = store.append(keyed("instance-k", "key-3", "body-b"));
    CHECK(r.code == append_code::idempotency_mismatch);
    CHECK(r.events.empty());
    CHECK(count_rows(db) == 2);
}

TEST_CASE("append: a failing request in a batch fails alone", "[store]") {
    gated_store g;
    REQUIRE(g.store.append(keyed("instance-m", "key-4", "body-a")).ok());

    auto blocker = g.hold_writer();
    const auto before = g.store.batches_committed();
    auto ok1 = g.store.append_async(one("instance-x", 0));
    auto conflict = g.store.append_async(one("instance-x", 0));  // already taken by ok1 in this batch
    auto mismatch = g.store.append_async(keyed("instance-m", "key-4", "body-b"));
    auto ok2 = g.store.append_async(one("instance-x", 1));
    auto invalid = g.store.append_async(append_request{});  // refused before it is queued
    g.gate.release();
    REQUIRE(blocker.get().ok());
    const auto r1 = ok1.get(), rc = conflict.get(), rm = mismatch.get(), r2 = ok2.get(), ri = invalid.get();
    CHECK(g.store.batches_committed() == before + 2);
    CHECK(r1.ok());
    CHECK(rc.code == append_code::version_conflict);
    CHECK(rc.actual_version == 1);
    CHECK(rm.code == append_code::idempotency_mismatch);
    CHECK(r2.ok());
    CHECK(r2.events.at(0).stream_version == 2);
    CHECK(ri.code == append_code::invalid);
    CHECK(count_rows(g.db, "stream = 'instance-x'") == 2);
    CHECK(verify_chain(g.db.app_url()).ok);
}

TEST_CASE("append: a stream, type or key that PostgreSQL would refuse (bad UTF-8, C1 controls) fails alone as invalid, not its batch", "[store]") {
    gated_store g;
    auto blocker = g.hold_writer();
    auto good = g.store.append_async(one("instance-good", 0));
    auto bad_utf8 = g.store.append_async(one("instance-\xff", 0));
    auto c1 = g.store.append_async(one("instance-\xc2\x85", 0));  // U+0085 is [[:cntrl:]] to the CHECK
    append_request bad_type = one("instance-t", 0);
    bad_type.streams[0].events[0].type = "instance.\xc3";
    auto bad_type_f = g.store.append_async(std::move(bad_type));
    auto bad_key = g.store.append_async(keyed("instance-k", "k\xff", "body"));
    g.gate.release();
    REQUIRE(blocker.get().ok());
    CHECK(good.get().ok());
    for (auto* f : {&bad_utf8, &c1, &bad_type_f, &bad_key}) CHECK(f->get().code == append_code::invalid);
    CHECK(count_rows(g.db, "true") == 2);
    CHECK(verify_chain(g.db.app_url()).ok);
}

TEST_CASE("append: a multi-stream append is atomic, a conflict on one stream writes nothing on the other", "[store]") {
    scratch_db db;
    manual_clock clk(t0);
    event_store store(db.app_url(), clk);
    REQUIRE(store.append(one("account-1", 0)).ok());

    append_request purchase;
    purchase.streams.push_back({"instance-p", 0, {ev("instance.purchased", 1)}});
    purchase.streams.push_back({"account-1", 0, {ev("account.charged", 2)}});  // wrong: it is at 1
    const auto bad = purchase;
    const auto r = store.append(append_request(bad));
    CHECK(r.code == append_code::version_conflict);
    CHECK(r.conflict_stream == "account-1");
    CHECK(r.actual_version == 1);
    CHECK(count_rows(db, "stream = 'instance-p'") == 0);

    purchase.streams[1].expected_version = 1;
    const auto good = store.append(std::move(purchase));
    REQUIRE(good.ok());
    REQUIRE(good.events.size() == 2);
    CHECK(good.events[0].stream == "instance-p");
    CHECK(good.events[1].stream == "account-1");
    CHECK(good.events[1].stream_version == 2);
    CHECK(good.events[1].position == good.events[0].position + 1);
}

TEST_CASE("append: a throwing batch observer fails the batch with unavailable and writes nothing", "[store]") {
    scratch_db db;
    manual_clock clk(t0);
    std::atomic<bool> fail{true};
    std::atomic<std::int64_t> visible{-1};
    store_options opts;
    opts.observer = [&](pqxx::transaction_base& tx, const batch_view&) {
        // It runs inside the batch's transaction, before the batch's rows are sent with its SQL.
        visible = tx.exec("SELECT count(*) FROM events")[0][0].as<std::int64_t>();
        if (fail) throw std::runtime_error("projection refused");
        return batch_writes{};
    };
    event_store store(db.app_url(), clk, opts);
    const auto r = store.append(one("instance-o", 0));
    CHECK(r.code == append_code::unavailable);
    CHECK(r.message.find("projection refused") != std::string::npos);
    CHECK(visible == 0);
    CHECK(count_rows(db) == 0);
    fail = false;
    const auto ok = store.append(one("instance-o", 0));
    REQUIRE(ok.ok());
    CHECK(ok.events[0].position == 1);
}

TEST_CASE("append: the observer's writes go into the batch's one statement, if they fail nothing is written", "[store]") {
    scratch_db db;
    manual_clock clk(t0);
    std::atomic<bool> fail{false};
    store_options opts;
    opts.observer = [&](pqxx::transaction_base&, const batch_view& batch) {
        // A data-modifying part with a bound parameter: 1 / 0 fails the whole statement.
        batch_writes w;
        w.ctes.push_back("p_probe AS (INSERT INTO projection_checkpoint (name, position) VALUES ('probe', 1 / $" +
                         std::to_string(batch.first_param) + "::int) ON CONFLICT (name) DO UPDATE SET position = "
                         "projection_checkpoint.position + 1)");
        w.params.push_back(fail ? "0" : "1");
        return w;
    };
    event_store store(db.app_url(), clk, opts);
    REQUIRE(store.append(one("instance-v", 0)).ok());
    CHECK(db.admin_scalar("SELECT position FROM projection_checkpoint WHERE name = 'probe'") == "1");
    fail = true;
    const auto r = store.append(one("instance-v", 1));
    CHECK(r.code == append_code::unavailable);
    CHECK(r.message.find("nothing written") != std::string::npos);
    CHECK(count_rows(db) == 1);
    CHECK(db.admin_scalar("SELECT position FROM projection_checkpoint WHERE name = 'probe'") == "1");
    fail = false;
    REQUIRE(store.append(one("instance-v", 1)).ok());
    CHECK(count_rows(db) == 2);
    CHECK(db.admin_scalar("SELECT position FROM projection_checkpoint WHERE name = 'probe'") == "2");
}

TEST_CASE("append: an unreachable database answers unavailable, and refuses doubles as invalid", "[store]") {
    manual_clock clk(t0);
    event_store store("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", clk);
    CHECK(store.append(one("instance-u", 0)).code == append_code::unavailable);
    auto r = one("instance-u", 0);
    r.streams[0].events[0].data["price"] = 1.5;
    const auto bad = store.append(std::move(r));
    CHECK(bad.code == append_code::invalid);
    CHECK_THROWS_AS(head("postgresql://nobody@127.0.0.1:1/none"), store_unavailable);
}

TEST_CASE("append: a stream may appear twice in one request, checked against the version the first part leaves", "[store]") {
    scratch_db db;
    manual_clock clk(t0);
    event_store store(db.app_url(), clk);
    append_request bad;
    bad.streams.push_back({"instance-q", 0, {ev("instance.purchased", 1)}});
    bad.streams.push_back({"account-q", any_version, {ev("account.charged", 2)}});
    bad.streams.push_back({"instance-q", 0, {ev("instance.deployed", 3)}});  // wrong: the first part left it at 1
    const auto r = store.append(std::move(bad));
    CHECK(r.code == append_code::version_conflict);
    CHECK(r.actual_version == 1);
    CHECK(count_rows(db) == 0);

    append_request good;
    good.streams.push_back({"instance-q", 0, {ev("instance.purchased", 1)}});
    good.streams.push_back({"account-q", any_version, {ev("account.charged", 2)}});
    good.streams.push_back({"instance-q", 1, {ev("instance.deployed", 3)}});
    const auto ok = store.append(std::move(good));
    REQUIRE(ok.ok());
    REQUIRE(ok.events.size() == 3);
    CHECK(ok.events[0].stream_version == 1);
    CHECK(ok.events[1].stream == "account-q");
    CHECK(ok.events[2].stream == "instance-q");
    CHECK(ok.events[2].stream_version == 2);
    CHECK(ok.events[2].position == 3);
    CHECK(verify_chain(db.app_url()).ok);
}

TEST_CASE("append: an observer that swallows an SQL error cannot turn the rolled-back batch into a success", "[store]") {
    scratch_db db;
    manual_clock clk(t0);
    store_options opts;
    opts.observer = [](pqxx::transaction_base& tx, const batch_view&) {
        try {
            tx.exec("SELECT 1 / 0");
        } catch (const pqxx::sql_error&) {
            // swallowed: the transaction block is now aborted
        }
        return batch_writes{};
    };
    event_store store(db.app_url(), clk, opts);
    const auto r = store.append(one("instance-s", 0));
    CHECK(r.code == append_code::unavailable);
    CHECK(count_rows(db) == 0);
}

namespace {

// A stand-in for the daemon's sets (the instances of an account due by a time): the streams whose
// name starts with the set's query. A written stream may join one when its facts say "in".
set_reader prefix_sets() {
    set_reader r;
    r.members = [](pqxx::transaction_base& tx, const std::vector<const stream_set*>& sets) {
        std::string sql;
        for (std::size_t i = 0; i < sets.size(); ++i)
            sql += std::string(i ? " UNION ALL " : "") + "SELECT DISTINCT " + std::to_string(i) +
                   "::bigint, stream FROM events WHERE starts_with(stream, " + tx.quote(sets[i]->query) + ")";
        return sql;
    };
    r.admits = [](const stream_set&, std::string_view facts) { return facts == "in"; };
    return r;
}

append_request relying_on(const std::string& scope, const std::string& prefix, std::vector<std::pair<std::string, std::int64_t>> named,
                          const std::string& writes) {
    auto r = one(writes, any_version);
    for (auto& [stream, version] : named) r.streams.push_back({stream, version, {}});
    r.sets_read.push_back({scope, prefix});
    r.scope = scope;
    return r;
}

} // namespace

TEST_CASE("append: a request that took a set of streams as complete conflicts when a stream it did not read "
          "belongs to the set, in the database or earlier in its batch (the timer-unit race)",
          "[store]") {
    scratch_db db;
    manual_clock clk(t0);
    writer_gate gate;
    store_options o;
    o.observer = gate.observer();
    o.sets = prefix_sets();
    event_store store(db.app_url(), clk, o);
    REQUIRE(store.append(one("instance-s1", 0)).ok());

    // In the database: naming the member passes, leaving it out is a conflict and writes nothing.
    REQUIRE(store.append(relying_on("account-a", "instance-s", {{"instance-s1", 1}}, "instance-w1")).ok());
    const auto missed = store.append(relying_on("account-a", "instance-s", {}, "instance-w2"));
    REQUIRE(missed.code == append_code::version_conflict);
    CHECK(missed.conflict_stream == "instance-s1");
    CHECK(count_rows(db, "stream = 'instance-w2'") == 0);

    // In one batch: an earlier request of the same scope writes a stream that may join the set.
    const auto batch_of = [&](const std::string& facts, const std::string& scope, const std::string& n) {
        gate.arm();
        auto blocker = store.append_async(one("instance-block-" + n, 0));
        gate.wait_inside();
        // Each batch its own set ("instance-n<n>…"), empty in the database.
        auto joins = one("instance-n" + n + "-x", 0);
        joins.scope = "account-a";
        joins.member_facts["instance-n" + n + "-x"] = facts;
        auto first = store.append_async(std::move(joins));
        auto second = store.append_async(relying_on(scope, "instance-n" + n, {}, "instance-w-" + n));
        gate.release();
        REQUIRE(blocker.get().ok());
        REQUIRE(first.get().ok());
        return second.get();
    };
    const auto joined = batch_of("in", "account-a", "1");
    REQUIRE(joined.code == append_code::version_conflict);
    CHECK(joined.conflict_stream == "instance-n1-x");
    CHECK(batch_of("out", "account-a", "2").ok());   // its facts keep it out of the set
    CHECK(batch_of("in", "account-b", "3").ok());    // another scope
    CHECK(verify_chain(db.app_url()).ok);
}
