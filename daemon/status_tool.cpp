// `mqledger status` (README.md "Command line"): the ledger's state at a glance, for an operator
// on a terminal (aligned text) or a script (--format json). Reads only: one REPEATABLE READ, READ
// ONLY transaction, so every figure is of one snapshot and the command works on a hot standby and
// under a role that may only SELECT (no write, no temporary table; the prepared statements of
// projections/queries.h are session state, not writes).
//
// "Now" is the database's now() (the start of that transaction), or --now: nothing here reads the
// system clock. A daemon on --clock manual keeps its own time, which --now can pass in.
#include "daemon/status_tool.h"

#include "daemon/cli.h"
#include "daemon/config.h"
#include "daemon/leader_lock.h"
#include "ledger/codec.h"
#include "ledger/store/conninfo.h"
#include "ledger/store/event_store.h"
#include "ledger/store/tree_store.h"
#include "projections/queries.h"

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <algorithm>
#include <iostream>
#include <sstream>

namespace mqledger {
namespace json = boost::json;

namespace {

time_point from_micros(std::int64_t us) { return time_point(duration(us)); }

std::optional<time_point> micros_or_null(const pqxx::field& f) {
    if (f.is_null()) return std::nullopt;
    return from_micros(f.as<std::int64_t>());
}

std::optional<std::string> text_or_null(const pqxx::field& f) {
    if (f.is_null()) return std::nullopt;
    return std::string(f.c_str());
}

json::value json_of(const std::optional<std::string>& s) { return s ? json::value(*s) : json::value(nullptr); }
json::value json_of(const std::optional<time_point>& t) {
    return t ? json::value(codec::format_time(*t)) : json::value(nullptr);
}
json::value json_of(const std::optional<std::int64_t>& n) { return n ? json::value(*n) : json::value(nullptr); }

// Who holds the timer-leader lock (daemon/leader_lock.h): the session holding the session
// advisory lock `timer_leader_key`. PostgreSQL shows a bigint advisory key in pg_locks as classid
// (high 32 bits) and objid (low 32 bits) with objsubid 1. pg_stat_activity names the session:
// application_name and user for every role; client address and start only for the same role,
// a superuser or pg_read_all_stats (else null).
void read_leader(pqxx::transaction_base& tx, bool hot_standby, status_report::leader_info& out) {
    if (hot_standby) {
        out.state = "unknown";
        out.detail = "this is a hot standby: advisory locks are not replicated, so the primary's timer leader "
                     "cannot be seen here (run status against the primary)";
        return;
    }
    const auto key = static_cast<std::uint64_t>(timer_leader_key);
    const auto hi = static_cast<std::int64_t>(key >> 32);
    const auto lo = static_cast<std::int64_t>(key & 0xffffffffu);
    const auto r = tx.exec_params(
        "SELECT l.pid, a.usename, a.application_name, host(a.client_addr), "
        "(extract(epoch FROM a.backend_start) * 1000000)::bigint "
        "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
        "AND l.classid::bigint = $1 AND l.objid::bigint = $2 "
        "ORDER BY l.pid LIMIT 1",
        hi, lo);
    if (r.empty()) {
        out.state = "none";
        out.detail = "no session holds the timer-leader lock: no daemon on the system clock is connected to this "
                     "database (a daemon on --clock manual fires its own timers without the lock)";
        return;
    }
    out.state = "held";
    out.pid = r[0][0].as<std::int64_t>();
    out.user = text_or_null(r[0][1]);
    out.application_name = text_or_null(r[0][2]);
    out.client_addr = text_or_null(r[0][3]);
    out.session_start = micros_or_null(r[0][4]);
    out.detail = "held by the database session of backend pid " + std::to_string(*out.pid);
}

std::string age_text(std::int64_t seconds) {
    if (seconds < 0) return std::to_string(-seconds) + " s in the future (the clock that made it is ahead of now)";
    if (seconds < 120) return std::to_string(seconds) + " s ago";
    if (seconds < 2 * 3600) return std::to_string(seconds / 60) + " min ago";
    if (seconds < 2 * 86400) return std::to_string(seconds / 3600) + " h ago";
    return std::to_string(seconds / 86400) + " d ago";
}

// libpq's messages end with a newline.
std::string trimmed(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

std::string padded(std::string s, std::size_t width) {
    if (s.size() < width) s.resize(width, ' ');
    return s;
}

// "label" padded to the value column.
constexpr std::size_t label_width = 19;
std::string label(std::string_view l) { return padded(std::string(l), label_width); }
const std::string indent(label_width, ' ');

// A table under a label: every column but the last padded to its widest cell.
void print_rows(std::ostream& out, const std::vector<std::vector<std::string>>& rows) {
    std::vector<std::size_t> width;
    for (const auto& row : rows)
        for (std::size_t i = 0; i < row.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], row[i].size());
        }
    for (const auto& row : rows) {
        std::string line = indent;
        for (std::size_t i = 0; i < row.size(); ++i) line += i + 1 < row.size() ? padded(row[i], width[i] + 2) : row[i];
        out << line << "\n";
    }
}

void print_more(std::ostream& out, std::int64_t total, std::size_t shown) {
    if (total > static_cast<std::int64_t>(shown))
        out << indent << "... and " << total - static_cast<std::int64_t>(shown) << " more\n";
}

} // namespace

status_report read_status(pqxx::connection& conn, std::optional<time_point> now, std::size_t list_limit) {
    projections::prepare_reads(conn);
    pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(conn);
    status_report s;
    const auto db = tx.exec1("SELECT (extract(epoch FROM now()) * 1000000)::bigint, pg_is_in_recovery()");
    s.now_from_database = !now;
    s.now = now.value_or(from_micros(db[0].as<std::int64_t>()));
    s.hot_standby = db[1].as<bool>();
    const auto at = codec::format_time(s.now);
    const auto limit = static_cast<std::int64_t>(list_limit);

    s.head = store::head(tx);

    // The figures the metrics show (projections::read_figures: overdue = owes something,
    // releases = release_at within 24 h, overdue ones included) and the listing of
    // GET /v1/releases/pending?before=now+24h.
    const auto figures = projections::read_figures(tx, s.now);
    s.overdue_count = figures.accounts_overdue;
    s.releases_count = figures.releases_next_24h;
    s.releases = projections::pending_releases(tx, s.now + std::chrono::hours(24), limit);

    const auto counts = tx.exec_params1(
        "SELECT count(*), count(*) FILTER (WHERE due_at <= $1::timestamptz) FROM timers "
        "WHERE due_at <= $1::timestamptz + interval '1 hour'",
        at);
    s.timers_count = counts[0].as<std::int64_t>();
    s.timers_past_due = counts[1].as<std::int64_t>();
    for (const auto& row : tx.exec_params("SELECT instance_id, kind, (extract(epoch FROM due_at) * 1000000)::bigint "
                                          "FROM timers WHERE due_at <= $1::timestamptz + interval '1 hour' "
                                          "ORDER BY due_at, instance_id, kind LIMIT $2",
                                          at, limit))
        s.timers.push_back({row[0].c_str(), row[1].c_str(), from_micros(row[2].as<std::int64_t>())});

    for (const auto& row : tx.exec_params("SELECT account_id, currency, balance, owed, "
                                          "(extract(epoch FROM overdue_since) * 1000000)::bigint FROM accounts "
                                          "WHERE owed > 0 ORDER BY overdue_since NULLS LAST, account_id LIMIT $1",
                                          limit))
        s.overdue.push_back({row[0].c_str(), row[1].c_str(), row[2].as<std::int64_t>(), row[3].as<std::int64_t>(),
                             micros_or_null(row[4])});

    s.tree_size = store::tree_size(tx);
    s.checkpoint = store::latest_checkpoint(tx);

    // Last: a failure here (it should not: pg_locks and pg_stat_activity are readable by every
    // role) leaves the figures above intact and the leader unknown.
    try {
        read_leader(tx, s.hot_standby, s.leader);
    } catch (const pqxx::sql_error& e) {
        s.leader = {};
        s.leader.state = "unknown";
        s.leader.detail = std::string("cannot read pg_locks: ") + e.what();
    }
    return s;
}

json::object to_json(const status_report& s) {
    json::array timers, overdue, releases;
    for (const auto& t : s.timers)
        timers.push_back(json::object{
            {"instance_id", t.instance_id}, {"kind", t.kind}, {"due_at", codec::format_time(t.due_at)}});
    for (const auto& a : s.overdue)
        overdue.push_back(json::object{{"account_id", a.account_id},
                                       {"currency", a.currency},
                                       {"balance", a.balance},
                                       {"owed", a.owed},
                                       {"overdue_since", json_of(a.overdue_since)}});
    for (const auto& p : s.releases)
        releases.push_back(json::object{{"instance_id", p.instance_id},
                                        {"state", p.state},
                                        {"release_at", codec::format_time(p.release_at)},
                                        {"cause", p.cause}});
    json::value checkpoint = nullptr;
    if (s.checkpoint) {
        const auto age = std::chrono::floor<std::chrono::seconds>(s.now - s.checkpoint->created_at).count();
        checkpoint = json::object{{"tree_size", s.checkpoint->tree_size},
                                  {"created_at", codec::format_time(s.checkpoint->created_at)},
                                  {"age_seconds", static_cast<std::int64_t>(age)},
                                  {"events_after", s.head.position - s.checkpoint->tree_size},
                                  {"cosignatures", static_cast<std::int64_t>(s.checkpoint->cosignatures.size())}};
    }
    return json::object{
        {"now", codec::format_time(s.now)},
        {"now_source", s.now_from_database ? "database" : "option"},
        {"hot_standby", s.hot_standby},
        {"head", json::object{{"position", s.head.position}, {"hash", s.head.hash}}},
        {"timer_leader", json::object{{"state", s.leader.state},
                                      {"pid", json_of(s.leader.pid)},
                                      {"user", json_of(s.leader.user)},
                                      {"application_name", json_of(s.leader.application_name)},
                                      {"client_addr", json_of(s.leader.client_addr)},
                                      {"session_start", json_of(s.leader.session_start)},
                                      {"detail", s.leader.detail}}},
        {"timers_within_hour",
         json::object{{"count", s.timers_count}, {"past_due", s.timers_past_due}, {"items", std::move(timers)}}},
        {"overdue_accounts", json::object{{"count", s.overdue_count}, {"items", std::move(overdue)}}},
        {"releases_within_24h", json::object{{"count", s.releases_count}, {"items", std::move(releases)}}},
        {"merkle_tree_size", s.tree_size},
        {"checkpoint", std::move(checkpoint)},
        {"digest", json::object{{"stored", false},
                                {"detail", "digests are not stored in the database: the daemon logs one every "
                                           "--digest-interval (log message \"ledger digest\") and GET /v1/ledger/head "
                                           "makes one on request"}}},
    };
}

std::string to_text(const status_report& s) {
    std::ostringstream out;
    out << label("now") << codec::format_time(s.now) << (s.now_from_database ? " (the database's now())" : " (--now)")
        << "\n";
    out << label("database") << (s.hot_standby ? "hot standby (read-only replica)" : "primary") << "\n";
    out << label("head") << "position " << s.head.position << ", hash " << s.head.hash << "\n";

    out << label("timer leader");
    if (s.leader.state == "held") {
        out << "pid " << *s.leader.pid;
        out << ", user " << s.leader.user.value_or("?");
        const auto app = s.leader.application_name.value_or("");
        out << ", application " << (app.empty() ? "(none set)" : app);
        if (s.leader.client_addr) out << ", from " << *s.leader.client_addr;
        if (s.leader.session_start) out << ", connected " << codec::format_time(*s.leader.session_start);
        out << "\n";
    } else {
        out << s.leader.state << ": " << s.leader.detail << "\n";
    }

    out << label("timers within 1 h") << s.timers_count;
    if (s.timers_past_due > 0) out << " (" << s.timers_past_due << " already past due)";
    out << "\n";
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : s.timers) rows.push_back({codec::format_time(t.due_at), t.instance_id, t.kind});
    print_rows(out, rows);
    print_more(out, s.timers_count, s.timers.size());

    out << label("overdue accounts") << s.overdue_count << "\n";
    rows.clear();
    for (const auto& a : s.overdue)
        rows.push_back({a.account_id, "owes " + std::to_string(a.owed) + " " + a.currency,
                        "balance " + std::to_string(a.balance),
                        a.overdue_since ? "since " + codec::format_time(*a.overdue_since) : std::string()});
    print_rows(out, rows);
    print_more(out, s.overdue_count, s.overdue.size());

    out << label("releases in 24 h") << s.releases_count << "\n";
    rows.clear();
    for (const auto& p : s.releases)
        rows.push_back({codec::format_time(p.release_at), p.instance_id, p.cause, "(" + p.state + ")"});
    print_rows(out, rows);
    print_more(out, s.releases_count, s.releases.size());

    out << label("checkpoint");
    if (s.checkpoint) {
        const auto age = std::chrono::floor<std::chrono::seconds>(s.now - s.checkpoint->created_at).count();
        out << "tree size " << s.checkpoint->tree_size << " (" << s.head.position - s.checkpoint->tree_size
            << " events after it), created " << codec::format_time(s.checkpoint->created_at) << ", "
            << age_text(static_cast<std::int64_t>(age)) << "\n";
    } else {
        out << "none yet (the daemon signs checkpoints only with --digest-key; Merkle tree size " << s.tree_size
            << ")\n";
    }
    out << label("digest") << "not stored in the database (the daemon logs one every --digest-interval)\n";
    return out.str();
}

int run_status(const config& cfg) {
    // A bounded connect: an unreachable server is an error within seconds, not a hang.
    auto url = store::with_default(cfg.database_url, "connect_timeout", "5");
    url = store::with_default(url, "fallback_application_name", "mqledger-status");
    std::optional<pqxx::connection> conn;
    try {
        conn.emplace(url);
    } catch (const std::exception& e) {
        std::cerr << "mqledger status: cannot connect to the database: " << trimmed(e.what()) << "\n";
        return 1;
    }
    try {
        const auto s = read_status(*conn, cfg.status_now);
        if (cfg.export_format == "json") std::cout << json::serialize(to_json(s)) << "\n";
        else std::cout << to_text(s);
        std::cout.flush();
        return std::cout ? 0 : 1;
    } catch (const pqxx::broken_connection& e) {
        std::cerr << "mqledger status: lost the database connection: " << trimmed(e.what()) << "\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "mqledger status: cannot read the ledger's state (is the database migrated?): " << trimmed(e.what())
                  << "\n";
        return 1;
    }
}

} // namespace mqledger
