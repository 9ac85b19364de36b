#include "projections/rows.h"

#include "ledger/codec.h"
#include "projections/snapshot.h"

#include <algorithm>

namespace mqledger::projections::detail {

namespace json = boost::json;

namespace {

json::value opt_time(const std::optional<time_point>& t) {
    return t ? json::value(codec::format_time(*t)) : json::value(nullptr);
}

// Bounded so a rebuild of a large fleet never builds one parameter near PostgreSQL's 1 GB limit,
// while a group-commit batch (≤ 20k events) usually goes in one statement.
constexpr std::size_t chunk_rows = 20000;

void write_chunked(pqxx::transaction_base& tx, const json::array& rows, const std::string& sql) {
    for (std::size_t i = 0; i < rows.size(); i += chunk_rows) {
        const auto end = std::min(rows.size(), i + chunk_rows);
        json::array chunk(rows.begin() + static_cast<std::ptrdiff_t>(i), rows.begin() + static_cast<std::ptrdiff_t>(end));
        tx.exec_params(sql, json::serialize(chunk));
    }
}

} // namespace

json::object instance_row(const instance_state& s, const policy_registry& policies) {
    const policy& p = policy_of(s, policies);
    const auto& flags = state_flags(s, p);
    const auto d = view_deadlines(s, p);
    json::object deadlines;
    if (d.release_at) deadlines["release_at"] = codec::format_time(*d.release_at);
    if (d.suspend_at) deadlines["suspend_at"] = codec::format_time(*d.suspend_at);
    if (d.freeze_at) deadlines["freeze_at"] = codec::format_time(*d.freeze_at);
    if (d.next_auto_renew_at) deadlines["next_auto_renew_at"] = codec::format_time(*d.next_auto_renew_at);
    if (d.next_settlement_at) deadlines["next_settlement_at"] = codec::format_time(*d.next_settlement_at);
    if (d.config_change_until) deadlines["config_change_until"] = codec::format_time(*d.config_change_until);

    json::object row;
    row["instance_id"] = s.id;
    row["account_id"] = s.account_id;
    row["product"] = to_string(s.prod);
    row["billing"] = to_string(s.bill);
    row["timezone"] = s.timezone;
    row["state"] = to_string(s.current);
    row["display_state"] = display_state(s, p);
    row["service_available"] = flags.service_available;
    row["data_retained"] = flags.data_retained;
    row["state_since"] = codec::format_time(s.state_since);
    row["expires_at"] = opt_time(s.expires_at);
    row["deadlines"] = std::move(deadlines);
    row["release_at"] = opt_time(d.release_at);
    row["force_delete_pending"] = s.force_delete_pending;
    row["last_effective_at"] = codec::format_time(s.last_effective_at);
    row["version"] = s.version;
    row["policy_version"] = s.policy;
    const auto notice = notice_of(s, p);
    row["account_notice"] = notice ? json::value(to_string(*notice)) : json::value(nullptr);
    row["snapshot"] = encode_snapshot(s);
    return row;
}

std::vector<timer> timers_of(const instance_state& s, const policy_registry& policies) {
    auto timers = deadlines(s, policy_of(s, policies));
    std::sort(timers.begin(), timers.end(), [](const timer& a, const timer& b) {
        return std::tie(a.kind, a.due_at) < std::tie(b.kind, b.due_at);
    });
    timers.erase(std::unique(timers.begin(), timers.end()), timers.end());
    return timers;
}

void timer_rows(const std::string& id, const std::vector<timer>& timers, json::array& out) {
    for (const auto& t : timers)
        out.emplace_back(json::object{{"instance_id", id}, {"kind", to_string(t.kind)}, {"due_at", codec::format_time(t.due_at)}});
}

void timer_rows(const instance_state& s, const policy_registry& policies, json::array& out) {
    timer_rows(s.id, timers_of(s, policies), out);
}

json::object account_row(const std::string& id, const account_state& a) {
    json::object row;
    row["account_id"] = id;
    row["currency"] = a.currency;
    row["balance"] = a.balance;
    row["owed"] = a.owed();
    row["overdue_since"] = opt_time(a.overdue_since);
    row["last_effective_at"] = codec::format_time(a.last_effective_at);
    row["version"] = a.version;
    row["snapshot"] = encode_snapshot(a);
    return row;
}

count_key count_key_of(const instance_state& s) {
    return {std::string(to_string(s.prod)), std::string(to_string(s.bill)), std::string(to_string(s.current))};
}

std::string instances_sql(const std::string& table, const std::string& param, bool upsert) {
    static const std::string cols =
        "instance_id, account_id, product, billing, timezone, state, display_state, service_available, data_retained, "
        "state_since, expires_at, deadlines, release_at, force_delete_pending, last_effective_at, version, policy_version, "
        "account_notice, snapshot";
    std::string sql = "INSERT INTO " + table + " (" + cols + ") SELECT " + cols + " FROM jsonb_to_recordset(" + param +
                      "::jsonb) AS x(instance_id text, account_id text, product text, "
                      "billing text, timezone text, state text, display_state text, service_available boolean, "
                      "data_retained boolean, state_since timestamptz, expires_at timestamptz, deadlines jsonb, "
                      "release_at timestamptz, force_delete_pending boolean, last_effective_at timestamptz, version bigint, "
                      "policy_version integer, account_notice text, snapshot jsonb)";
    if (upsert)
        sql += " ON CONFLICT (instance_id) DO UPDATE SET account_id = excluded.account_id, product = excluded.product, "
               "billing = excluded.billing, timezone = excluded.timezone, state = excluded.state, "
               "display_state = excluded.display_state, service_available = excluded.service_available, "
               "data_retained = excluded.data_retained, state_since = excluded.state_since, "
               "expires_at = excluded.expires_at, deadlines = excluded.deadlines, release_at = excluded.release_at, "
               "force_delete_pending = excluded.force_delete_pending, last_effective_at = excluded.last_effective_at, "
               "version = excluded.version, policy_version = excluded.policy_version, "
               "account_notice = excluded.account_notice, snapshot = excluded.snapshot";
    return sql;
}

std::string timers_sql(const std::string& table, const std::string& param) {
    return "INSERT INTO " + table + " (instance_id, kind, due_at) SELECT instance_id, kind, due_at FROM jsonb_to_recordset(" +
           param + "::jsonb) AS x(instance_id text, kind text, due_at timestamptz)";
}

std::string accounts_sql(const std::string& table, const std::string& param, bool upsert) {
    static const std::string cols = "account_id, currency, balance, owed, overdue_since, last_effective_at, version, snapshot";
    std::string sql = "INSERT INTO " + table + " (" + cols + ") SELECT " + cols + " FROM jsonb_to_recordset(" + param +
                      "::jsonb) AS x(account_id text, currency text, balance bigint, "
                      "owed bigint, overdue_since timestamptz, last_effective_at timestamptz, version bigint, "
                      "snapshot jsonb)";
    if (upsert)
        sql += " ON CONFLICT (account_id) DO UPDATE SET currency = excluded.currency, balance = excluded.balance, "
               "owed = excluded.owed, overdue_since = excluded.overdue_since, "
               "last_effective_at = excluded.last_effective_at, version = excluded.version, snapshot = excluded.snapshot";
    return sql;
}

std::string counts_sql(const std::string& table, const std::string& param) {
    return "INSERT INTO " + table + " (product, billing, state, count) SELECT product, billing, state, count FROM "
           "jsonb_to_recordset(" + param + "::jsonb) AS x(product text, billing text, state text, count bigint)";
}

void write_instances(pqxx::transaction_base& tx, const std::string& table, const json::array& rows, bool upsert) {
    write_chunked(tx, rows, instances_sql(table, "$1", upsert));
}

void write_timers(pqxx::transaction_base& tx, const std::string& table, const json::array& rows) {
    write_chunked(tx, rows, timers_sql(table, "$1"));
}

void write_accounts(pqxx::transaction_base& tx, const std::string& table, const json::array& rows, bool upsert) {
    write_chunked(tx, rows, accounts_sql(table, "$1", upsert));
}

void write_counts(pqxx::transaction_base& tx, const std::string& table, const json::array& rows) {
    write_chunked(tx, rows, counts_sql(table, "$1"));
}

void write_checkpoint(pqxx::transaction_base& tx, const std::string& table, std::int64_t position) {
    tx.exec_params("INSERT INTO " + table + " (name, position) VALUES ($1, $2) "
                   "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                   std::string(checkpoint_name), position);
}

std::string json_list(const std::vector<std::string>& ids) {
    json::array a;
    a.reserve(ids.size());
    for (const auto& id : ids) a.emplace_back(id);
    return json::serialize(a);
}

} // namespace mqledger::projections::detail
