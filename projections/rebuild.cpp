#include "projections/rebuild.h"

#include "projections/rows.h"
#include "ledger/store/event_store.h"

#include <array>
#include <chrono>
#include <thread>

namespace mqledger::projections {

namespace json = boost::json;

namespace {

constexpr std::int64_t page_events = 10000;

// Live tables in the order they are locked and compared. Deadlock freedom with appends comes
// from taking the append advisory lock before any of them (see rebuild()).
constexpr std::array<const char*, 5> tables = {"instance_state", "timers", "accounts", "instance_counts",
                                               "projection_checkpoint"};

std::string scratch(const char* table) { return std::string("pg_temp.rebuild_") + table; }

// Writes the folded set into scratch copies of the live tables (dropped at commit or rollback).
rebuild_report write_scratch(pqxx::transaction_base& tx, const projection_set& set, const policy_registry& policies) {
    for (const char* t : tables)
        tx.exec("CREATE TEMP TABLE rebuild_" + std::string(t) + " (LIKE " + t + " INCLUDING ALL) ON COMMIT DROP");

    rebuild_report report;
    report.position = set.position;
    json::array instance_rows, timers, account_rows, counts;
    std::map<detail::count_key, std::int64_t> n;
    for (const auto& [id, s] : set.instances) {
        if (!s.exists) continue;
        instance_rows.push_back(detail::instance_row(s, policies));
        detail::timer_rows(s, policies, timers);
        ++n[detail::count_key_of(s)];
    }
    for (const auto& [id, a] : set.accounts)
        if (a.exists) account_rows.push_back(detail::account_row(id, a));
    for (const auto& [key, count] : n)
        counts.push_back(json::object{{"product", std::get<0>(key)}, {"billing", std::get<1>(key)},
                                      {"state", std::get<2>(key)}, {"count", count}});
    report.instances = instance_rows.size();
    report.accounts = account_rows.size();
    report.timers = timers.size();

    detail::write_instances(tx, scratch("instance_state"), instance_rows, false);
    detail::write_timers(tx, scratch("timers"), timers);
    detail::write_accounts(tx, scratch("accounts"), account_rows, false);
    detail::write_counts(tx, scratch("instance_counts"), counts);
    if (set.position > 0) detail::write_checkpoint(tx, scratch("projection_checkpoint"), set.position);
    return report;
}

// The rows of `table` that belong to these projections: projection_checkpoint may also hold other
// projections' checkpoints, which a rebuild neither replaces nor compares.
std::string owned_rows(const std::string& table) {
    return table.ends_with("projection_checkpoint") ? " WHERE name = '" + std::string(checkpoint_name) + "'" : "";
}

std::string lock_all() {
    std::string sql = "LOCK TABLE ";
    for (std::size_t i = 0; i < tables.size(); ++i) sql += (i ? ", " : "") + std::string(tables[i]);
    return sql + " IN ACCESS EXCLUSIVE MODE";
}

} // namespace

projection_set fold_log(pqxx::transaction_base& tx, const policy_registry& policies, projection_set start,
                        const rebuild_progress& progress) {
    const auto head = progress ? store::head(tx).position : 0;
    for (;;) {
        const auto page = store::read_all(tx, start.position, page_events);
        for (const auto& e : page) fold(start, e, policies);
        if (progress) progress(start.position, head);
        if (static_cast<std::int64_t>(page.size()) < page_events) return start;
    }
}

rebuild_report rebuild(const std::string& conninfo, const policy_registry& policies, const rebuild_progress& progress) {
    pqxx::connection c(conninfo);
    projection_set set;
    {
        // The long pass runs without locks: appends go on meanwhile.
        pqxx::read_transaction r(c);
        set = fold_log(r, with_logged_policies(r, policies), {}, progress);
    }
    // The swap: ACCESS EXCLUSIVE on every projection table also blocks the projector's and the
    // engine's reads, so an append that started before the swap sees the swapped-in tables after
    // it. The append lock first, exactly as every append batch takes it before touching a table:
    // one lock order for all writers, so the swap waits for an in-flight batch instead of
    // deadlocking with it. Readers take their tables in their own orders (a due-timers probe
    // reads timers before instance_state), so a swap half-way through LOCK TABLE can close a
    // cycle with one of them: the swap waits at most lock_timeout for each lock, well under
    // deadlock_timeout, gives its locks up and tries again, and the reader never fails.
    for (int attempt = 1;; ++attempt) {
        try {
            pqxx::work w(c);
            w.exec("SET LOCAL lock_timeout = '200ms'");
            w.exec("SELECT pg_advisory_xact_lock(" + std::to_string(store::append_lock_key) + ")");
            w.exec(lock_all());
            w.exec("SET LOCAL lock_timeout = 0");
            const auto logged = with_logged_policies(w, policies);
            auto now = fold_log(w, logged, set);   // the events committed since the long pass
            const auto report = write_scratch(w, now, logged);
            for (const char* t : tables) {
                w.exec(std::string("DELETE FROM ") + t + owned_rows(t));
                w.exec(std::string("INSERT INTO ") + t + " SELECT * FROM " + scratch(t));
            }
            w.commit();
            return report;
        } catch (const pqxx::sql_error& e) {
            // 55P03 lock_not_available: a lock not granted within lock_timeout.
            if (e.sqlstate() != "55P03" || attempt >= 300) throw;
            std::this_thread::sleep_for(std::chrono::milliseconds(10 + 10 * (attempt % 10)));
        }
    }
}

std::optional<lag> behind(const std::string& conninfo) {
    pqxx::connection c(conninfo);
    pqxx::read_transaction tx(c);
    const auto r = tx.exec_params(
        "SELECT coalesce((SELECT position FROM projection_checkpoint WHERE name = $1), 0), "
        "coalesce((SELECT max(position) FROM events), 0)",
        std::string(checkpoint_name));
    const lag l{r[0][0].as<std::int64_t>(), r[0][1].as<std::int64_t>()};
    if (l.checkpoint >= l.head) return std::nullopt;
    return l;
}

std::optional<difference> compare(const std::string& conninfo, const policy_registry& policies) {
    pqxx::connection c(conninfo);
    // One snapshot for the log and the live tables: they are committed together, so a
    // consistent store compares equal even while appends go on.
    pqxx::transaction<pqxx::repeatable_read> w(c);
    const auto logged = with_logged_policies(w, policies);
    const auto set = fold_log(w, logged);
    (void)write_scratch(w, set, logged);
    for (const char* t : tables) {
        const std::string live(t), rebuilt = scratch(t);
        const auto r = w.exec(
            "(SELECT 'live' AS side, to_jsonb(d)::text FROM (SELECT * FROM " + live + owned_rows(live) +
            " EXCEPT ALL SELECT * FROM " + rebuilt + ") d LIMIT 1) UNION ALL (SELECT 'rebuilt', to_jsonb(d)::text FROM "
            "(SELECT * FROM " + rebuilt + " EXCEPT ALL SELECT * FROM " + live + owned_rows(live) + ") d LIMIT 1)");
        if (!r.empty()) return difference{live, r[0][0].c_str(), r[0][1].c_str()};
    }
    return std::nullopt; // the transaction is rolled back: the scratch tables vanish
}

} // namespace mqledger::projections
