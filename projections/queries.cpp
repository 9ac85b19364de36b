#include "projections/queries.h"

#include "ledger/codec.h"
#include "projections/projector.h"
#include "projections/rows.h"

namespace mqledger::projections {

namespace {

std::string sql_time(time_point t) { return codec::format_time(t); }
time_point from_micros(std::int64_t us) { return time_point(duration(us)); }

// An account's instances with a timer due by $2 (through instance_state's account index, then
// each instance's timers by the primary key), gated by one probe of timers' due_at index.
std::string due_array(const std::string& account) {
    return "CASE WHEN (SELECT min(due_at) FROM timers) <= $2::timestamptz THEN ARRAY("
           "SELECT DISTINCT t.instance_id FROM instance_state d JOIN timers t USING (instance_id) "
           "WHERE d.account_id = " + account + " AND t.due_at <= $2::timestamptz) ELSE '{}'::text[] END";
}

std::vector<std::string> text_array(const pqxx::field& f) {
    std::vector<std::string> out;
    auto parser = f.as_array();
    for (auto [kind, text] = parser.get_next(); kind != pqxx::array_parser::done; std::tie(kind, text) = parser.get_next())
        if (kind == pqxx::array_parser::string_value) out.push_back(std::move(text));
    return out;
}

} // namespace

void prepare_reads(pqxx::connection& c) {
    c.prepare("mq_load_instance", "SELECT snapshot FROM instance_state WHERE instance_id = $1");
    c.prepare("mq_load_account", "SELECT snapshot FROM accounts WHERE account_id = $1");
    c.prepare("mq_load_instance_due",
              "SELECT s.snapshot, " + due_array("s.account_id") + " FROM instance_state s WHERE s.instance_id = $1");
    c.prepare("mq_load_account_due",
              "SELECT a.snapshot, " + due_array("a.account_id") + " FROM accounts a WHERE a.account_id = $1");
    c.prepare("mq_account_due", "SELECT " + due_array("$1"));
    c.prepare("mq_notice_targets",
              "SELECT instance_id, snapshot FROM instance_state WHERE account_id = $1 AND account_notice = $2");
    c.prepare("mq_load_instances",
              "SELECT instance_id, snapshot FROM instance_state "
              "WHERE instance_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))");
    c.prepare("mq_load_accounts",
              "SELECT account_id, snapshot FROM accounts "
              "WHERE account_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))");
    c.prepare("mq_earliest_due", "SELECT (extract(epoch FROM min(due_at)) * 1000000)::bigint FROM timers");
    c.prepare("mq_due_pass",
              "SELECT s.account_id, t.instance_id FROM timers t JOIN instance_state s USING (instance_id) "
              "WHERE t.due_at <= $1::timestamptz GROUP BY 1, 2 ORDER BY 1, 2 LIMIT $2");
    c.prepare("mq_list_instances",
              "SELECT instance_id, snapshot FROM instance_state "
              "WHERE (($1 = '' AND state <> 'deleted') OR state = $1) AND ($2 = '' OR product = $2) "
              "AND ($3 = '' OR billing = $3) AND ($4 = '' OR account_id = $4) AND instance_id > $5 "
              "ORDER BY instance_id LIMIT $6");
    c.prepare("mq_pending_releases",
              "SELECT instance_id, state, (extract(epoch FROM release_at) * 1000000)::bigint, cause "
              "FROM pending_releases WHERE ($1 = '' OR release_at <= $1::timestamptz) "
              "ORDER BY release_at, instance_id LIMIT $2");
}

std::optional<instance_state> load_instance(pqxx::transaction_base& tx, const std::string& id) {
    const auto r = tx.exec_prepared("mq_load_instance", id);
    if (r.empty()) return std::nullopt;
    return parse_instance_snapshot(r[0][0].c_str(), id);
}

std::optional<account_state> load_account(pqxx::transaction_base& tx, const std::string& id) {
    const auto r = tx.exec_prepared("mq_load_account", id);
    if (r.empty()) return std::nullopt;
    return parse_account_snapshot(r[0][0].c_str(), id);
}

with_due<instance_state> load_instance_with_due(pqxx::transaction_base& tx, const std::string& id, time_point due_by) {
    with_due<instance_state> out;
    const auto r = tx.exec_prepared("mq_load_instance_due", id, sql_time(due_by));
    if (r.empty()) return out;
    out.state = parse_instance_snapshot(r[0][0].c_str(), id);
    out.due = text_array(r[0][1]);
    return out;
}

with_due<account_state> load_account_with_due(pqxx::transaction_base& tx, const std::string& id, time_point due_by) {
    with_due<account_state> out;
    const auto r = tx.exec_prepared("mq_load_account_due", id, sql_time(due_by));
    if (r.empty()) return out;
    out.state = parse_account_snapshot(r[0][0].c_str(), id);
    out.due = text_array(r[0][1]);
    return out;
}

std::vector<std::string> due_instances(pqxx::transaction_base& tx, const std::string& account_id, time_point up_to) {
    return text_array(tx.exec_prepared("mq_account_due", account_id, sql_time(up_to))[0][0]);
}

std::vector<std::string> instance_streams_of_accounts_touching(pqxx::transaction_base& tx,
                                                               const std::vector<std::string>& streams) {
    std::vector<std::string> instances, accounts;
    for (const auto& s : streams) {
        if (auto id = instance_id_of(s)) instances.push_back(std::move(*id));
        else if (auto acc = account_id_of(s)) accounts.push_back(std::move(*acc));
    }
    const auto array = [](const std::vector<std::string>& items) {
        std::string out = "{";
        for (std::size_t i = 0; i < items.size(); ++i) {
            if (i) out += ',';
            out += '"';
            for (char ch : items[i]) {
                if (ch == '"' || ch == '\\') out += '\\';
                out += ch;
            }
            out += '"';
        }
        return out + '}';
    };
    // Both lookups by index: instance_state's key, and its account_id index.
    std::vector<std::string> out;
    for (const auto& row : tx.exec_params(
             "WITH a AS (SELECT unnest($2::text[]) AS account_id"
             "           UNION SELECT account_id FROM instance_state WHERE instance_id = ANY($1::text[]))"
             " SELECT 'instance-' || i.instance_id FROM instance_state i JOIN a USING (account_id) ORDER BY 1",
             array(instances), array(accounts)))
        out.emplace_back(row[0].c_str());
    return out;
}

namespace {

std::int64_t micros(time_point t) { return t.time_since_epoch().count(); }

// A set's query: "due <microseconds> <account>" or "notice <kind> <account>".
struct set_query {
    std::string what, value, account;
};
set_query parse_set(const std::string& q) {
    const auto a = q.find(' ');
    const auto b = a == std::string::npos ? a : q.find(' ', a + 1);
    if (b == std::string::npos) throw std::logic_error("stream set query not understood: " + q);
    set_query out{q.substr(0, a), q.substr(a + 1, b - a - 1), q.substr(b + 1)};
    if (out.what != "due" && out.what != "notice") throw std::logic_error("stream set query not understood: " + q);
    return out;
}

} // namespace

std::vector<store::stream_set> stream_sets_of(const std::string& account_id, const account_sets_read& sets) {
    std::vector<store::stream_set> out;
    const auto scope = account_stream(account_id);
    if (sets.due_by) out.push_back({scope, "due " + std::to_string(micros(*sets.due_by)) + " " + account_id});
    for (const auto kind : sets.notices) out.push_back({scope, "notice " + std::string(to_string(kind)) + " " + account_id});
    return out;
}

// "<earliest due, microseconds, or -> <notice or ->": what the timers table and
// instance_state.account_notice will say of the instance.
std::string member_facts_of(const std::vector<timer>& timers, std::optional<account_notice> notice) {
    std::optional<time_point> earliest;
    for (const auto& t : timers)
        if (!earliest || t.due_at < *earliest) earliest = t.due_at;
    return (earliest ? std::to_string(micros(*earliest)) : std::string("-")) + " " +
           (notice ? std::string(to_string(*notice)) : std::string("-"));
}

store::set_reader set_reader() {
    store::set_reader r;
    r.members = [](pqxx::transaction_base& tx, const std::vector<const store::stream_set*>& sets) {
        // Parallel arrays (set number, account, due by or NULL, notice kind or NULL), quoted in.
        std::string no = "ARRAY[", account = "ARRAY[", due = "ARRAY[", kind = "ARRAY[";
        for (std::size_t i = 0; i < sets.size(); ++i) {
            const auto q = parse_set(sets[i]->query);
            const char* sep = i ? "," : "";
            no += sep + std::to_string(i);
            account += sep + tx.quote(q.account);
            due += sep + (q.what == "due" ? std::to_string(std::stoll(q.value)) : std::string("NULL"));
            kind += sep + (q.what == "notice" ? tx.quote(q.value) : std::string("NULL"));
        }
        // Due sets: when no timer at all is due by a set's time (the usual case: due timers fire
        // within a second), one probe of the timers' due_at index says so and the account is not
        // looked at; else instance_state's account index, then each instance's timers by key.
        // Notice sets: the account's instances with that notice.
        return "WITH g(n, account_id, due_by, kind) AS (SELECT n, a, 'epoch'::timestamptz + d * interval '1 microsecond', k"
               " FROM unnest(" + no + "]::bigint[], " + account + "]::text[], " + due + "]::bigint[], " + kind +
               "]::text[]) AS u(n, a, d, k))"
               " SELECT g.n, 'instance-' || s.instance_id FROM g JOIN instance_state s ON s.account_id = g.account_id"
               " WHERE g.due_by >= (SELECT min(due_at) FROM timers) AND EXISTS (SELECT 1 FROM timers t"
               " WHERE t.instance_id = s.instance_id AND t.due_at <= g.due_by)"
               " UNION ALL SELECT g.n, 'instance-' || s.instance_id FROM g JOIN instance_state s"
               " ON s.account_id = g.account_id AND s.account_notice = g.kind";
    };
    r.admits = [](const store::stream_set& set, std::string_view facts) {
        const auto q = parse_set(set.query);
        const auto sp = facts.find(' ');
        if (sp == std::string_view::npos) return true;   // unknown facts: assume it may belong
        const auto due = facts.substr(0, sp), notice = facts.substr(sp + 1);
        if (q.what == "notice") return notice == q.value;
        return due != "-" && std::stoll(std::string(due)) <= std::stoll(q.value);
    };
    return r;
}

std::vector<instance_state> notice_targets(pqxx::transaction_base& tx, const std::string& account_id, account_notice kind) {
    std::vector<instance_state> out;
    for (const auto& row : tx.exec_prepared("mq_notice_targets", account_id, std::string(to_string(kind))))
        out.push_back(parse_instance_snapshot(row[1].c_str(), row[0].c_str()));
    return out;
}

std::map<std::string, instance_state> load_instances(pqxx::transaction_base& tx, const std::vector<std::string>& ids) {
    std::map<std::string, instance_state> out;
    if (ids.empty()) return out;
    for (const auto& row : tx.exec_prepared("mq_load_instances", detail::json_list(ids)))
        out.emplace(row[0].c_str(), parse_instance_snapshot(row[1].c_str(), row[0].c_str()));
    return out;
}

std::map<std::string, account_state> load_accounts(pqxx::transaction_base& tx, const std::vector<std::string>& ids) {
    std::map<std::string, account_state> out;
    if (ids.empty()) return out;
    for (const auto& row : tx.exec_prepared("mq_load_accounts", detail::json_list(ids)))
        out.emplace(row[0].c_str(), parse_account_snapshot(row[1].c_str(), row[0].c_str()));
    return out;
}

std::optional<time_point> earliest_due(pqxx::transaction_base& tx) {
    const auto r = tx.exec_prepared("mq_earliest_due");
    if (r[0][0].is_null()) return std::nullopt;
    return from_micros(r[0][0].as<std::int64_t>());
}

std::vector<std::pair<std::string, std::vector<std::string>>> due_pass(pqxx::transaction_base& tx, time_point up_to,
                                                                       std::size_t max_rows, bool& full) {
    std::vector<std::pair<std::string, std::vector<std::string>>> due;
    const auto r = tx.exec_prepared("mq_due_pass", sql_time(up_to), static_cast<std::int64_t>(max_rows + 1));
    full = r.size() > max_rows;
    for (std::size_t i = 0; i < r.size() && i < max_rows; ++i) {
        const auto& row = r[i];
        if (due.empty() || due.back().first != row[0].c_str()) due.emplace_back(row[0].c_str(), std::vector<std::string>{});
        due.back().second.emplace_back(row[1].c_str());
    }
    return due;
}

instance_page list_instances(pqxx::transaction_base& tx, const instance_filter& f, const std::string& cursor,
                             std::int64_t limit) {
    instance_page page;
    const auto rows =
        tx.exec_prepared("mq_list_instances", f.state, f.product, f.billing, f.account_id, cursor, limit + 1);
    for (std::size_t i = 0; i < rows.size(); ++i) {
        if (static_cast<std::int64_t>(i) == limit) {
            page.more = true;
            break;
        }
        page.items.push_back(parse_instance_snapshot(rows[i][1].c_str(), rows[i][0].c_str()));
    }
    return page;
}

std::vector<pending_release> pending_releases(pqxx::transaction_base& tx, std::optional<time_point> before,
                                              std::int64_t limit) {
    std::vector<pending_release> out;
    for (const auto& row : tx.exec_prepared("mq_pending_releases", before ? sql_time(*before) : std::string(), limit))
        out.push_back({row[0].c_str(), row[1].c_str(), row[3].c_str(), from_micros(row[2].as<std::int64_t>())});
    return out;
}

figures read_figures(pqxx::transaction_base& tx, time_point now) {
    figures f;
    for (const auto& row : tx.exec("SELECT product, billing, state, count FROM instance_counts"))
        f.instances.emplace_back(row[0].c_str(), row[1].c_str(), row[2].c_str(), row[3].as<std::int64_t>());
    const auto r = tx.exec_params(
        "SELECT (SELECT count(*) FROM timers), "
        "(SELECT count(*) FROM pending_releases WHERE release_at <= $1::timestamptz + interval '24 hours'), "
        "(SELECT count(*) FROM pending_releases WHERE release_at <= $1::timestamptz + interval '7 days'), "
        "(SELECT count(*) FROM accounts WHERE owed > 0), "
        "(SELECT coalesce(max(position), 0) FROM events)",
        sql_time(now));
    f.timers_pending = r[0][0].as<std::int64_t>();
    f.releases_next_24h = r[0][1].as<std::int64_t>();
    f.releases_next_7d = r[0][2].as<std::int64_t>();
    f.accounts_overdue = r[0][3].as<std::int64_t>();
    f.head_position = r[0][4].as<std::int64_t>();
    return f;
}

} // namespace mqledger::projections
