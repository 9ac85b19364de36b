// docs/rules.md is the rules reference auditors and operators read. Its tables ("What is sold",
// each product's state and duration tables, the RocketMQ configuration table) must say exactly
// what the policy table the code runs on says (ledger/policy.cpp, every product section). This
// test parses those tables and compares every cell with `policy_set::defaults()`: nothing
// expected is written here, so a number changed on one side only, or a missing row, fails.
#include "ledger/instance.h"
#include "ledger/local_time.h"
#include "ledger/policy.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace mqledger;

namespace {

const std::string doc_path = std::string(MQLEDGER_SOURCE_DIR) + "/docs/rules.md";
constexpr std::string_view dash = "—";

// ---- reading markdown tables ----

struct md_table {
    std::size_t line = 0;                       // 1-based line of the header row
    std::vector<std::string> header;
    std::vector<std::vector<std::string>> rows;
};

std::string trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) return {};
    const auto last = s.find_last_not_of(" \t\r");
    return std::string(s.substr(first, last - first + 1));
}

// "| a | b |" → {"a", "b"}. The tables of rules.md put no '|' inside a cell.
std::vector<std::string> cells_of(const std::string& row) {
    std::string body = trim(row);
    if (!body.empty() && body.front() == '|') body.erase(0, 1);
    if (!body.empty() && body.back() == '|') body.pop_back();
    std::vector<std::string> out;
    std::size_t from = 0;
    for (;;) {
        const auto bar = body.find('|', from);
        out.push_back(trim(std::string_view(body).substr(from, bar == std::string::npos ? std::string::npos : bar - from)));
        if (bar == std::string::npos) return out;
        from = bar + 1;
    }
}

bool is_separator(const std::vector<std::string>& cells) {
    return std::all_of(cells.begin(), cells.end(), [](const std::string& c) {
        return !c.empty() && c.find_first_not_of("-: ") == std::string::npos;
    });
}

std::vector<md_table> parse_tables(const std::string& text) {
    std::vector<md_table> out;
    std::istringstream in(text);
    std::string line;
    std::size_t number = 0;
    std::vector<std::pair<std::size_t, std::string>> block;
    const auto flush = [&] {
        if (block.size() >= 2 && is_separator(cells_of(block[1].second))) {
            md_table t;
            t.line = block[0].first;
            t.header = cells_of(block[0].second);
            for (std::size_t i = 2; i < block.size(); ++i) t.rows.push_back(cells_of(block[i].second));
            out.push_back(std::move(t));
        }
        block.clear();
    };
    while (std::getline(in, line)) {
        ++number;
        const auto t = trim(line);
        if (!t.empty() && t.front() == '|') block.emplace_back(number, t);
        else flush();
    }
    flush();
    return out;
}

std::string read_doc() {
    std::ifstream in(doc_path);
    std::ostringstream all;
    all << in.rdbuf();
    return all.str();
}

// ---- cells ----

std::string unquote(std::string s) {
    s = trim(s);
    if (s.size() >= 2 && s.front() == '`' && s.back() == '`') return s.substr(1, s.size() - 2);
    return s;
}

// Every `code` span of a cell, in order.
std::vector<std::string> code_spans(const std::string& cell) {
    std::vector<std::string> out;
    std::size_t from = 0;
    for (;;) {
        const auto open = cell.find('`', from);
        if (open == std::string::npos) return out;
        const auto close = cell.find('`', open + 1);
        if (close == std::string::npos) return out;
        out.push_back(cell.substr(open + 1, close - open - 1));
        from = close + 1;
    }
}

// "`renew`, `force-delete`" → {"renew", "force-delete"}; "—" → {}.
std::vector<std::string> list_of(const std::string& cell) {
    std::vector<std::string> out;
    if (trim(cell) == dash) return out;
    std::size_t from = 0;
    for (;;) {
        const auto comma = cell.find(',', from);
        out.push_back(unquote(cell.substr(from, comma == std::string::npos ? std::string::npos : comma - from)));
        if (comma == std::string::npos) return out;
        from = comma + 1;
    }
}

std::string joined(const std::vector<std::string>& items) {
    if (items.empty()) return std::string(dash);
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
    return out;
}

std::string yes_no(bool v) { return v ? "yes" : "no"; }

using pair_key = std::pair<product, billing>;

std::optional<pair_key> parse_pair(const std::string& text) {
    const auto slash = text.find('/');
    if (slash == std::string::npos) return std::nullopt;
    const auto p = parse_product(text.substr(0, slash));
    const auto b = parse_billing(text.substr(slash + 1));
    if (!p || !b) return std::nullopt;
    return pair_key{*p, *b};
}

std::string name_of(const pair_key& k) { return std::string(to_string(k.first)) + "/" + std::string(to_string(k.second)); }

std::vector<pair_key> every_pair() {
    std::vector<pair_key> out;
    for (auto p : {product::kafka, product::rabbitmq, product::rocketmq, product::mqtt})
        for (auto b : {billing::subscription, billing::payg, billing::serverless}) out.emplace_back(p, b);
    return out;
}

// ---- canonical forms: the doc's cell and the policy's value are both brought to one text ----

// A duration as the doc writes it, in its largest whole unit.
std::string canonical(duration d) {
    using namespace std::chrono;
    const auto us = d.count();
    if (us % duration_cast<microseconds>(hours{24}).count() == 0) return std::to_string(us / 86'400'000'000LL) + " days";
    if (us % duration_cast<microseconds>(hours{1}).count() == 0) return std::to_string(us / 3'600'000'000LL) + " hours";
    if (us % duration_cast<microseconds>(minutes{1}).count() == 0) return std::to_string(us / 60'000'000LL) + " minutes";
    return std::to_string(us) + " microseconds";
}

std::optional<long long> leading_number(const std::string& s, std::size_t& used) {
    used = 0;
    while (used < s.size() && std::isdigit(static_cast<unsigned char>(s[used]))) ++used;
    if (used == 0 || used > 9) return std::nullopt;
    return std::stoll(s.substr(0, used));
}

// "7 days", "1 day", "24 hours", "5 minutes" → canonical; "—" stays; anything else is reported.
std::string doc_duration(const std::string& cell) {
    const auto c = trim(cell);
    if (c == dash) return c;
    std::size_t used = 0;
    const auto n = leading_number(c, used);
    const auto unit = trim(std::string_view(c).substr(used));
    using namespace std::chrono;
    if (n && (unit == "day" || unit == "days")) return canonical(hours{24 * *n});
    if (n && (unit == "hour" || unit == "hours")) return canonical(hours{*n});
    if (n && (unit == "minute" || unit == "minutes")) return canonical(minutes{*n});
    return "unreadable duration '" + c + "'";
}

std::string canonical_hour(std::int32_t hour) {
    return (hour < 10 ? "0" : "") + std::to_string(hour) + ":00 local";
}

// "03:00 local" → canonical; "—" stays.
std::string doc_hour(const std::string& cell) {
    const auto c = trim(cell);
    if (c == dash) return c;
    std::size_t used = 0;
    const auto h = leading_number(c, used);
    if (h && used == 2 && c.substr(2) == ":00 local") return canonical_hour(static_cast<std::int32_t>(*h));
    return "unreadable hour '" + c + "'";
}

std::string canonical_release(std::int32_t hour, std::int32_t days) {
    return canonical_hour(hour) + ", " + std::to_string(days) + " days after";
}

// "08:00 local, 2 days after" → canonical; "—" stays.
std::string doc_release(const std::string& cell) {
    const auto c = trim(cell);
    if (c == dash) return c;
    const auto comma = c.find(", ");
    if (comma != std::string::npos) {
        const auto hour = doc_hour(c.substr(0, comma));
        const auto rest = c.substr(comma + 2);
        std::size_t used = 0;
        const auto days = leading_number(rest, used);
        const auto tail = rest.substr(used);
        if (hour.rfind("unreadable", 0) != 0 && days && (tail == " days after" || tail == " day after"))
            return hour + ", " + std::to_string(*days) + " days after";
    }
    return "unreadable release '" + c + "'";
}

std::string cycle_name(cycle_kind k) {
    switch (k) {
    case cycle_kind::hourly: return "hourly";
    case cycle_kind::local_day: return "local day";
    case cycle_kind::none: break;
    }
    return std::string(dash);
}

// The usage metrics of a policy, once the policy table has them (the field is being added);
// nothing before, and the column is then not checked.
template <typename P>
std::optional<std::vector<std::string>> usage_metrics_of(const P& p) {
    if constexpr (requires { p.usage_metrics; }) {
        std::vector<std::string> out;
        for (const auto& m : p.usage_metrics) out.emplace_back(m);
        return out;
    } else {
        (void)p;
        return std::nullopt;
    }
}

// ---- checking ----

using problems = std::vector<std::string>;

// The column named `name` of `t`, or nothing (reported).
std::optional<std::size_t> column(const md_table& t, std::string_view name, problems& out) {
    for (std::size_t i = 0; i < t.header.size(); ++i)
        if (t.header[i] == name) return i;
    out.push_back("line " + std::to_string(t.line) + ": the table has no column '" + std::string(name) + "'");
    return std::nullopt;
}

void compare(problems& out, const std::string& where, std::string_view what, const std::string& doc,
             const std::string& expected) {
    if (doc != expected)
        out.push_back(where + ": " + std::string(what) + ": docs/rules.md says '" + doc + "', the policy table says '" +
                      expected + "'");
}

// A table with one row per product/billing (first column): each pair exactly once across every
// table of the kind, each row checked by `check_row(pair, row, column index of a name)`.
template <typename CheckRow>
problems check_pair_rows(const std::vector<const md_table*>& tables, const std::set<pair_key>& expected_pairs,
                         std::string_view kind, CheckRow check_row) {
    problems out;
    if (tables.empty()) out.push_back("docs/rules.md has no " + std::string(kind) + " table");
    std::map<pair_key, int> seen;
    for (const auto* t : tables) {
        for (const auto& row : t->rows) {
            const auto where = "line " + std::to_string(t->line) + " (" + std::string(kind) + "), row '" +
                               (row.empty() ? std::string() : row[0]) + "'";
            if (row.size() != t->header.size()) {
                out.push_back(where + ": " + std::to_string(row.size()) + " cells for " +
                              std::to_string(t->header.size()) + " columns");
                continue;
            }
            const auto key = parse_pair(unquote(row[0]));
            if (!key) {
                out.push_back(where + ": not a product/billing");
                continue;
            }
            ++seen[*key];
            const auto col = [&](std::string_view name) -> std::optional<std::size_t> { return column(*t, name, out); };
            check_row(*key, row, col, name_of(*key), out);
        }
    }
    for (const auto& k : expected_pairs) {
        if (!seen.count(k)) out.push_back(name_of(k) + ": no row in the " + std::string(kind) + " tables");
        else if (seen[k] > 1) out.push_back(name_of(k) + ": " + std::to_string(seen[k]) + " rows in the " + std::string(kind) + " tables");
    }
    for (const auto& [k, n] : seen)
        if (!expected_pairs.count(k)) out.push_back(name_of(k) + ": a row in the " + std::string(kind) + " tables, but the policy table has none");
    return out;
}

std::vector<const md_table*> tables_where(const std::vector<md_table>& tables, std::string_view first,
                                          std::string_view second) {
    std::vector<const md_table*> out;
    for (const auto& t : tables)
        if (t.header.size() >= 2 && t.header[0] == first && t.header[1] == second) out.push_back(&t);
    return out;
}

std::set<pair_key> all_pairs() {
    const auto v = every_pair();
    return {v.begin(), v.end()};
}

// "What is sold": purchase, import, starting state, price unit, max term months, usage metrics.
problems check_selling(const std::vector<md_table>& tables, const policy_set& set) {
    return check_pair_rows(tables_where(tables, "product/billing", "purchase"), all_pairs(), "what is sold",
                           [&](const pair_key& k, const std::vector<std::string>& row, auto col,
                               const std::string& where, problems& out) {
        const auto& p = set.get(k.first, k.second);
        const bool exists = p.purchase_allowed || p.import_allowed;
        const auto cell = [&](std::string_view name) -> std::optional<std::string> {
            const auto i = col(name);
            return i ? std::optional<std::string>(row[*i]) : std::nullopt;
        };
        if (const auto c = cell("purchase")) compare(out, where, "purchase", *c, yes_no(p.purchase_allowed));
        if (const auto c = cell("import")) compare(out, where, "import", *c, yes_no(p.import_allowed));
        if (const auto c = cell("starts in"))
            compare(out, where, "starts in", unquote(*c),
                    exists ? std::string(to_string(starting_state_of(k.first))) : std::string(dash));
        if (const auto c = cell("price unit"))
            compare(out, where, "price unit", *c, exists ? std::string(to_string(p.price_unit)) : std::string(dash));
        if (const auto c = cell("max term months"))
            compare(out, where, "max term months", *c,
                    exists && k.second == billing::subscription ? std::to_string(p.max_term_months) : std::string(dash));
        if (const auto c = cell("usage metrics"))
            if (const auto metrics = usage_metrics_of(p)) compare(out, where, "usage metrics", joined(list_of(*c)), joined(*metrics));
    });
}

// Durations: lapse path, stopped release, auto-renewal, cycle, issue delay, change in progress.
problems check_durations(const std::vector<md_table>& tables, const policy_set& set) {
    return check_pair_rows(tables_where(tables, "product/billing", "first lapse state"), all_pairs(), "durations",
                           [&](const pair_key& k, const std::vector<std::string>& row, auto col,
                               const std::string& where, problems& out) {
        const auto& p = set.get(k.first, k.second);
        const std::string none(dash);
        const auto check = [&](std::string_view name, auto read, const std::string& expected) {
            if (const auto i = col(name)) compare(out, where, name, read(row[*i]), expected);
        };
        const auto as_state = [](const std::string& c) { return unquote(c); };
        const auto& l = p.lapse;
        const bool second = l && l->second;
        check("first lapse state", as_state, l ? std::string(to_string(l->first)) : none);
        check("first phase", doc_duration, l ? canonical(l->first_for) : none);
        check("second state", as_state, second ? std::string(to_string(*l->second)) : none);
        check("second phase", doc_duration, second ? canonical(l->second_for) : none);
        const bool manual_stop = p.manual_stop && stop_is_manual(k.first);
        check("stopped release", doc_release,
              manual_stop ? canonical_release(p.stopped_release_hour, p.stopped_release_days) : none);
        const bool auto_renew = p.auto_renew_allowed && k.second == billing::subscription;
        check("auto-renew days before", doc_duration,
              auto_renew ? canonical(std::chrono::hours{24 * p.auto_renew_days_before}) : none);
        check("auto-renew hour", doc_hour, auto_renew ? canonical_hour(p.auto_renew_hour) : none);
        check("cycle", [](const std::string& c) { return trim(c); }, cycle_name(p.cycle));
        check("issue delay", doc_duration, p.cycle != cycle_kind::none ? canonical(p.issue_delay) : none);
        check("change in progress", doc_duration, p.config.allowed ? canonical(p.change_in_progress) : none);
    });
}

// The actions an instance in state `s` is offered beyond the state's own list (unsubscribe,
// change-config, auto-renew), from a fresh instance in that state with nothing pending.
std::vector<std::string> also_offered(const pair_key& k, state st, const policy& p) {
    const auto* z = find_zone(default_timezone);
    const time_point now = parse_local("2024-03-01 10:00", z);
    instance_state s;
    s.exists = true;
    s.id = "rules-doc";
    s.account_id = "rules-doc";
    s.prod = k.first;
    s.bill = k.second;
    s.timezone = std::string(default_timezone);
    s.current = st;
    s.state_since = now;
    s.created_at = now;
    s.deployed = st != state::not_deployed;
    s.rate.per = p.price_unit;
    s.rate.amount = 100;
    const bool term_runs = st == state::running || st == state::not_deployed;
    if (k.second == billing::subscription) {
        s.term_months = 1;
        s.expires_at = term_runs ? now + std::chrono::hours{24 * 20} : now;
    } else if (!term_runs && st != state::released && st != state::deleted &&
               !(st == state::stopped && stop_is_manual(k.first))) {
        s.overdue_since = now;
    }
    const auto& own = p.at(st).actions;
    std::vector<std::string> out;
    for (const auto& a : allowed_actions(s, p, now))
        if (std::find(own.begin(), own.end(), a) == own.end()) out.push_back(a);
    return out;
}

// State tables: header "`kafka/payg`, `kafka/serverless` state | display name | …", one row per
// state the policy defines for each pair named; no table for a pair without states.
problems check_states(const std::vector<md_table>& tables, const policy_set& set) {
    problems out;
    std::map<pair_key, int> covered;
    for (const auto& t : tables) {
        if (t.header.size() < 2 || t.header[1] != "display name") continue;
        const auto where_table = "line " + std::to_string(t.line) + " (states '" + t.header[0] + "')";
        std::vector<pair_key> pairs;
        for (const auto& span : code_spans(t.header[0])) {
            if (const auto k = parse_pair(span)) pairs.push_back(*k);
            else out.push_back(where_table + ": '" + span + "' is not a product/billing");
        }
        if (pairs.empty()) out.push_back(where_table + ": names no product/billing");
        problems local;
        const auto col = [&](std::string_view name) { return column(t, name, local); };
        const auto i_name = col("display name");
        const auto i_service = col("service available");
        const auto i_data = col("data retained");
        const auto i_console = col("console/API");
        const auto i_actions = col("actions");
        const auto i_also = col("also offered");
        out.insert(out.end(), local.begin(), local.end());
        if (!local.empty()) continue;
        for (const auto& k : pairs) {
            ++covered[k];
            const auto& p = set.get(k.first, k.second);
            std::set<state> rows_seen;
            for (const auto& row : t.rows) {
                const auto where = where_table + ", " + name_of(k) + " row '" + (row.empty() ? std::string() : row[0]) + "'";
                if (row.size() != t.header.size()) {
                    out.push_back(where + ": " + std::to_string(row.size()) + " cells for " +
                                  std::to_string(t.header.size()) + " columns");
                    continue;
                }
                const auto st = parse_state(unquote(row[0]));
                if (!st) {
                    out.push_back(where + ": not a state");
                    continue;
                }
                if (!rows_seen.insert(*st).second) out.push_back(where + ": the state appears twice");
                const auto& sp = p.at(*st);
                if (!sp.valid) {
                    out.push_back(where + ": the policy table has no such state for " + name_of(k));
                    continue;
                }
                compare(out, where, "display name", row[*i_name], sp.display_name);
                compare(out, where, "service available", row[*i_service], yes_no(sp.service_available));
                compare(out, where, "data retained", row[*i_data], yes_no(sp.data_retained));
                compare(out, where, "console/API", row[*i_console], yes_no(sp.console_api_enabled));
                compare(out, where, "actions", joined(list_of(row[*i_actions])), joined(sp.actions));
                compare(out, where, "also offered", joined(list_of(row[*i_also])), joined(also_offered(k, *st, p)));
            }
            for (std::size_t i = 0; i < p.states.size(); ++i) {
                const auto st = static_cast<state>(i);
                if (p.states[i].valid && !rows_seen.count(st))
                    out.push_back(where_table + ": " + name_of(k) + " has no row for state " + std::string(to_string(st)));
            }
        }
    }
    for (const auto& k : every_pair()) {
        const auto& p = set.get(k.first, k.second);
        const bool has_states = std::any_of(p.states.begin(), p.states.end(), [](const state_policy& s) { return s.valid; });
        const int n = covered.count(k) ? covered[k] : 0;
        if (has_states && n == 0) out.push_back(name_of(k) + ": no state table");
        if (n > 1) out.push_back(name_of(k) + ": " + std::to_string(n) + " state tables");
        if (!has_states && n > 0) out.push_back(name_of(k) + ": a state table, but the policy table has no states");
    }
    return out;
}

std::string edition_name(edition_rule r) {
    switch (r) {
    case edition_rule::upgrade_only: return "upgrade only";
    case edition_rule::standard_professional_both_ways: return "standard ↔ professional";
    case edition_rule::not_changeable: break;
    }
    return "not changeable";
}

// A configuration item's cell: "not changeable", or one of the ways it changes.
std::string doc_changeable(const std::string& cell) {
    const auto c = trim(cell);
    if (c == "not changeable") return "not changeable";
    if (c == "up or down" || c == "on to upgrade, off to downgrade" || c == "changeable") return "changeable";
    return "unreadable '" + c + "'";
}

std::string changeable(bool v) { return v ? "changeable" : "not changeable"; }

// The configuration table: one row per pair whose policy allows configuration changes.
problems check_config(const std::vector<md_table>& tables, const policy_set& set) {
    std::set<pair_key> expected;
    for (const auto& k : every_pair())
        if (set.get(k.first, k.second).config.allowed) expected.insert(k);
    return check_pair_rows(tables_where(tables, "configuration change", "primary edition"), expected, "configuration",
                           [&](const pair_key& k, const std::vector<std::string>& row, auto col,
                               const std::string& where, problems& out) {
        const auto& c = set.get(k.first, k.second).config;
        if (const auto i = col("primary edition")) compare(out, where, "primary edition", trim(row[*i]), edition_name(c.edition));
        if (const auto i = col("sub-category")) compare(out, where, "sub-category", doc_changeable(row[*i]), changeable(c.sub_category));
        if (const auto i = col("computing specification"))
            compare(out, where, "computing specification", doc_changeable(row[*i]), changeable(c.tps));
        if (const auto i = col("Internet access"))
            compare(out, where, "Internet access", doc_changeable(row[*i]), changeable(c.internet_access));
        if (const auto i = col("Internet bandwidth"))
            compare(out, where, "Internet bandwidth", doc_changeable(row[*i]), changeable(c.bandwidth));
    });
}

void report(const problems& found) {
    for (const auto& p : found) FAIL_CHECK(p);
}

const std::vector<md_table>& doc_tables() {
    static const std::vector<md_table> tables = parse_tables(read_doc());
    return tables;
}

// The first row of the first table of a kind whose column `name` is not "—".
std::pair<std::size_t, std::size_t> cell_to_change(std::vector<md_table>& tables, std::string_view first,
                                                   std::string_view second, std::string_view name,
                                                   std::size_t& table_index) {
    for (std::size_t t = 0; t < tables.size(); ++t) {
        if (tables[t].header.size() < 2 || tables[t].header[0] != first || tables[t].header[1] != second) continue;
        const auto& h = tables[t].header;
        const auto c = static_cast<std::size_t>(std::find(h.begin(), h.end(), name) - h.begin());
        for (std::size_t r = 0; c < h.size() && r < tables[t].rows.size(); ++r) {
            if (tables[t].rows[r].size() == h.size() && tables[t].rows[r][c] != dash) {
                table_index = t;
                return {r, c};
            }
        }
    }
    FAIL("no table '" << first << " | " << second << "' with a value in column '" << name << "'");
    return {0, 0};
}

// Adds one to the leading number of a cell ("7 days" → "8 days", "08:00 local, 2 days after" →
// "09:00 local, 2 days after", "60" → "61").
std::string bumped(const std::string& cell) {
    std::size_t used = 0;
    const auto n = leading_number(cell, used);
    REQUIRE(n);
    auto text = std::to_string(*n + 1);
    if (used == 2 && text.size() == 1) text = "0" + text;
    return text + cell.substr(used);
}

} // namespace

TEST_CASE("docs/rules.md: the What is sold table agrees with the policy table, one row per product and billing",
          "[rules_doc]") {
    REQUIRE_FALSE(doc_tables().empty());
    report(check_selling(doc_tables(), policy_set::defaults()));
}

TEST_CASE("docs/rules.md: duration tables agree with the policy table (every product and billing model)",
          "[rules_doc]") {
    REQUIRE_FALSE(doc_tables().empty());
    report(check_durations(doc_tables(), policy_set::defaults()));
}

TEST_CASE("docs/rules.md: state tables give each state's display name, flags and actions as the policy table does",
          "[rules_doc]") {
    REQUIRE_FALSE(doc_tables().empty());
    report(check_states(doc_tables(), policy_set::defaults()));
}

TEST_CASE("docs/rules.md: the RocketMQ configuration table agrees with the policy table", "[rules_doc]") {
    REQUIRE_FALSE(doc_tables().empty());
    report(check_config(doc_tables(), policy_set::defaults()));
}

TEST_CASE("docs/rules.md checks catch a changed number, a changed flag and a missing row", "[rules_doc]") {
    const auto set = policy_set::defaults();
    REQUIRE(check_durations(doc_tables(), set).empty());
    REQUIRE(check_selling(doc_tables(), set).empty());
    REQUIRE(check_states(doc_tables(), set).empty());

    for (const std::string_view column_name :
         {"first phase", "second phase", "stopped release", "auto-renew days before", "auto-renew hour", "issue delay",
          "change in progress"}) {
        auto tables = doc_tables();
        std::size_t t = 0;
        const auto [r, c] = cell_to_change(tables, "product/billing", "first lapse state", column_name, t);
        tables[t].rows[r][c] = bumped(tables[t].rows[r][c]);
        INFO("changed " << column_name << " of " << tables[t].rows[r][0] << " to " << tables[t].rows[r][c]);
        CHECK_FALSE(check_durations(tables, set).empty());
    }
    {
        auto tables = doc_tables();
        std::size_t t = 0;
        const auto [r, c] = cell_to_change(tables, "product/billing", "purchase", "max term months", t);
        tables[t].rows[r][c] = bumped(tables[t].rows[r][c]);
        CHECK_FALSE(check_selling(tables, set).empty());
        tables = doc_tables();
        tables[t].rows.erase(tables[t].rows.begin() + static_cast<std::ptrdiff_t>(r));
        CHECK_FALSE(check_selling(tables, set).empty());
    }
    {
        auto tables = doc_tables();
        std::size_t t = 0;
        const auto [r, c] = cell_to_change(tables, "product/billing", "first lapse state", "first phase", t);
        (void)c;
        tables[t].rows.erase(tables[t].rows.begin() + static_cast<std::ptrdiff_t>(r));
        CHECK_FALSE(check_durations(tables, set).empty());
    }
    {
        auto tables = doc_tables();
        auto it = std::find_if(tables.begin(), tables.end(),
                               [](const md_table& x) { return x.header.size() > 2 && x.header[1] == "display name"; });
        REQUIRE(it != tables.end());
        auto& flag = it->rows.front()[2];
        flag = flag == "yes" ? "no" : "yes";
        CHECK_FALSE(check_states(tables, set).empty());
        it->rows.erase(it->rows.begin());
        CHECK_FALSE(check_states(tables, set).empty());
    }
}
