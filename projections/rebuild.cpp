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

// The rows a rebuild gives each table, as the JSON rows the writers take.
struct rebuilt_rows {
    rebuild_report report;
    json::array instances, timers, accounts, counts, checkpoint;
};

rebuilt_rows rows_of(const projection_set& set, const policy_registry& policies) {
    rebuilt_rows out;
    out.report.position = set.position;
    std::map<detail::count_key, std::int64_t> n;
    for (const auto& [id, s] : set.instances) {
        if (!s.exists) continue;
        out.instances.push_back(detail::instance_row(s, policies));
        detail::timer_rows(s, policies, out.timers);
        ++n[detail::count_key_of(s)];
    }
    for (const auto& [id, a] : set.accounts)
        if (a.exists) out.accounts.push_back(detail::account_row(id, a));
    for (const auto& [key, count] : n)
        out.counts.push_back(json::object{{"product", std::get<0>(key)}, {"billing", std::get<1>(key)},
                                          {"state", std::get<2>(key)}, {"count", count}});
    if (set.position > 0)
        out.checkpoint.push_back(json::object{{"name", std::string(checkpoint_name)}, {"position", set.position}});
    out.report.instances = out.instances.size();
    out.report.accounts = out.accounts.size();
    out.report.timers = out.timers.size();
    return out;
}

// Writes the folded set into scratch copies of the live tables (dropped at commit or rollback).
rebuild_report write_scratch(pqxx::transaction_base& tx, const projection_set& set, const policy_registry& policies) {
    for (const char* t : tables)
        tx.exec("CREATE TEMP TABLE rebuild_" + std::string(t) + " (LIKE " + t + " INCLUDING ALL) ON COMMIT DROP");
    const auto rows = rows_of(set, policies);
    detail::write_instances(tx, scratch("instance_state"), rows.instances, false);
    detail::write_timers(tx, scratch("timers"), rows.timers);
    detail::write_accounts(tx, scratch("accounts"), rows.accounts, false);
    detail::write_counts(tx, scratch("instance_counts"), rows.counts);
    if (set.position > 0) detail::write_checkpoint(tx, scratch("projection_checkpoint"), set.position);
    return rows.report;
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

namespace {

// A table's primary key, for matching rebuilt rows with live ones.
struct table_key {
    const char* table;
    const char* key;   // the key columns, comma-separated without spaces
};

constexpr std::size_t compare_chunk_rows = 5000;

// The first difference between `table` (its rows owned by these projections) and `rebuilt`,
// without writing anything (a hot standby allows no temporary table). Rows are matched by
// primary key, a chunk of rebuilt rows at a time: the live rows with those keys, compared as
// whole rows both ways; then a live row whose key no rebuilt row has is found by count.
// jsonb_populate_recordset reads the rebuilt rows as the table's own row type, through the same
// input functions an INSERT of them would use.
std::optional<difference> compare_table(pqxx::transaction_base& tx, const table_key& t, const json::array& rebuilt) {
    const std::string table(t.table);
    const std::string owned = owned_rows(table);
    const std::string as_rows = "jsonb_populate_recordset(NULL::" + table + ", $1::jsonb)";
    for (std::size_t i = 0; i < rebuilt.size(); i += compare_chunk_rows) {
        const auto end = std::min(rebuilt.size(), i + compare_chunk_rows);
        const json::array chunk(rebuilt.begin() + static_cast<std::ptrdiff_t>(i),
                                rebuilt.begin() + static_cast<std::ptrdiff_t>(end));
        const auto r = tx.exec_params(
            "WITH r AS (SELECT * FROM " + as_rows + "), l AS (SELECT " + table + ".* FROM " + table +
                " JOIN (SELECT " + t.key + " FROM r) k USING (" + t.key + ")) "
                "(SELECT 'live' AS side, to_jsonb(d)::text FROM (SELECT * FROM l EXCEPT ALL SELECT * FROM r) d LIMIT 1) "
                "UNION ALL (SELECT 'rebuilt', to_jsonb(d)::text FROM (SELECT * FROM r EXCEPT ALL SELECT * FROM l) d LIMIT 1)",
            json::serialize(chunk));
        if (!r.empty()) return difference{table, r[0][0].c_str(), r[0][1].c_str()};
    }
    // Every rebuilt row has its equal; the keys are unique on both sides, so a live row is
    // extra exactly when there are more live rows than rebuilt ones.
    const auto live = tx.exec("SELECT count(*) FROM " + table + owned)[0][0].as<std::size_t>();
    if (live == rebuilt.size()) return std::nullopt;
    std::vector<std::string> names;
    for (std::string_view rest = t.key; !rest.empty();) {
        const auto comma = rest.find(',');
        names.emplace_back(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    }
    json::array keys;
    keys.reserve(rebuilt.size());
    for (const auto& row : rebuilt) {
        json::object k;
        for (const auto& name : names) k[name] = row.as_object().at(name);
        keys.push_back(std::move(k));
    }
    std::string match;
    for (const auto& name : names) match += (match.empty() ? "" : " AND ") + ("r." + name + " = t." + name);
    const auto r = tx.exec_params("SELECT to_jsonb(t)::text FROM (SELECT * FROM " + table + owned + ") t WHERE NOT EXISTS "
                                  "(SELECT 1 FROM " + as_rows + " r WHERE " + match + ") LIMIT 1",
                                  json::serialize(keys));
    if (r.empty()) throw projection_error("compare: " + table + " has " + std::to_string(live) + " rows, the rebuild " +
                                          std::to_string(rebuilt.size()) + ", yet every row matches");
    return difference{table, "live", r[0][0].c_str()};
}

} // namespace

std::optional<difference> compare(const std::string& conninfo, const policy_registry& policies) {
    pqxx::connection c(conninfo);
    // One snapshot for the log and the live tables: they are committed together, so a
    // consistent store compares equal even while appends go on. Read only: it runs on a hot
    // standby too.
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
    const auto logged = with_logged_policies(tx, policies);
    const auto rows = rows_of(fold_log(tx, logged), logged);
    const std::array<std::pair<table_key, const json::array*>, 5> checks = {{
        {{"instance_state", "instance_id"}, &rows.instances},
        {{"timers", "instance_id,kind,due_at"}, &rows.timers},
        {{"accounts", "account_id"}, &rows.accounts},
        {{"instance_counts", "product,billing,state"}, &rows.counts},
        {{"projection_checkpoint", "name"}, &rows.checkpoint},
    }};
    for (const auto& [t, r] : checks)
        if (auto d = compare_table(tx, t, *r)) return d;
    return std::nullopt;
}

} // namespace mqledger::projections
