#include "projections/projector.h"

#include "projections/queries.h"

#include "ledger/canonical_json.h"
#include "ledger/codec.h"
#include "ledger/store/hash_chain.h"
#include "projections/rows.h"
#include "projections/snapshot.h"

#include <limits>
#include <set>

namespace mqledger::projections {

namespace json = boost::json;

namespace {

int metadata_int(const json::value& v, const std::string& what) {
    if (v.is_int64() && v.get_int64() >= std::numeric_limits<int>::min() && v.get_int64() <= std::numeric_limits<int>::max())
        return static_cast<int>(v.get_int64());
    if (v.is_uint64() && v.get_uint64() <= static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
        return static_cast<int>(v.get_uint64());
    throw projection_error("metadata " + what + " is not an integer");
}

} // namespace

decoded_event decode_recorded(const store::recorded_event& e) {
    const std::string where = " (position " + std::to_string(e.position) + ", " + e.type + ")";
    std::optional<int> schema;
    if (const auto* v = e.metadata.if_contains("schema_version")) {
        // A request may mix types of different current versions, so the daemon may record one
        // version per type; a plain integer applies to every event of the request.
        if (v->is_object()) {
            if (const auto* per_type = v->get_object().if_contains(e.type)) schema = metadata_int(*per_type, "schema_version" + where);
        } else {
            schema = metadata_int(*v, "schema_version" + where);
        }
    }
    if (!schema) schema = codec::current_schema_version(e.type);
    if (!schema) throw projection_error("unknown event type" + where);
    auto decoded = codec::decode(e.type, json::value(e.data), *schema);
    if (!decoded) {
        const auto& err = decoded.error();
        throw projection_error("undecodable event" + where + ": " + std::string(codec::to_string(err.kind)) + " at '" +
                               err.field + "': " + err.message);
    }
    decoded_event out{std::move(decoded).event(), e.effective_at, current_policy_version};
    if (const auto* v = e.metadata.if_contains("policy_version")) out.policy = metadata_int(*v, "policy_version" + where);
    return out;
}

instance_state parse_instance_snapshot(std::string_view text, const std::string& id) {
    std::string error;
    std::optional<instance_state> s;
    try {
        s = decode_instance_snapshot(json::parse(text), error);
    } catch (const std::exception& e) {
        error = e.what();
    }
    if (!s) throw projection_error("instance_state snapshot of " + id + " is unreadable: " + error);
    s->id = id;
    return std::move(*s);
}

account_state parse_account_snapshot(std::string_view text, const std::string& id) {
    std::string error;
    std::optional<account_state> a;
    try {
        a = decode_account_snapshot(json::parse(text), error);
    } catch (const std::exception& e) {
        error = e.what();
    }
    if (!a) throw projection_error("accounts snapshot of " + id + " is unreadable: " + error);
    return std::move(*a);
}

void fold(projection_set& into, const store::recorded_event& e, const policy_registry& policies) {
    into.position = std::max(into.position, e.position);
    if (auto id = instance_id_of(e.stream)) {
        auto d = decode_recorded(e);
        const policy_set* table = policies.find(d.policy);
        if (table == nullptr)
            throw projection_error("unknown policy_version " + std::to_string(d.policy) + " (position " +
                                   std::to_string(e.position) + "): no policy.changed event records it");
        auto& s = into.instances[*id];
        if (s.id.empty()) s.id = *id; // events carry no id: the stream names the instance
        s = evolve(std::move(s), d.data, d.effective_at, *table);
    } else if (auto aid = account_id_of(e.stream)) {
        auto d = decode_recorded(e);
        auto& a = into.accounts[*aid];
        a = evolve(std::move(a), d.data, d.effective_at);
    }
    // Other streams are not projected (the store accepts any stream name).
}

json::object policy_changed_data(const policy_set& set) {
    auto table = table_json(set);
    auto hash = store::sha256_hex(canonical_json(table));
    return json::object{{"policy_version", set.version()}, {"hash", std::move(hash)}, {"table", std::move(table)}};
}

policy_set read_policy_changed(const store::recorded_event& e) {
    const std::string where = " (position " + std::to_string(e.position) + ")";
    if (e.type != policy_changed_type) throw projection_error("unexpected event " + e.type + " on stream policy" + where);
    const auto* v = e.data.if_contains("policy_version");
    const auto* table = e.data.if_contains("table");
    const auto* hash = e.data.if_contains("hash");
    if (v == nullptr || table == nullptr || hash == nullptr || !hash->is_string())
        throw projection_error("policy.changed without policy_version, table and hash" + where);
    const int version = metadata_int(*v, "policy_version" + where);
    // The hash is over the table as stored, so it holds whatever a later release adds to the
    // table's format; the table must also still read as a table.
    if (store::sha256_hex(canonical_json(*table)) != hash->get_string())
        throw projection_error("policy.changed hash differs from its table's" + where);
    std::string error;
    auto set = table_from_json(*table, version, error);
    if (!set) throw projection_error("policy.changed table does not parse" + where + ": " + error);
    return std::move(*set);
}

policy_registry load_policies(pqxx::transaction_base& tx) {
    policy_registry out;
    for (const auto& e : store::read_stream(tx, policy_stream)) {
        auto set = read_policy_changed(e);
        if (set.version() <= out.current().version())
            throw projection_error("policy.changed version " + std::to_string(set.version()) + " does not follow version " +
                                   std::to_string(out.current().version()) + " (position " + std::to_string(e.position) + ")");
        out.add(std::move(set));
    }
    return out;
}

policy_registry with_logged_policies(pqxx::transaction_base& tx, const policy_registry& known) {
    policy_registry out = known;
    out.add_missing(load_policies(tx));
    return out;
}

const policy& policy_of(const instance_state& s, const policy_registry& policies) {
    const policy_set* set = policies.find(s.policy);
    return (set != nullptr ? *set : policies.current()).get(s.prod, s.bill);
}

namespace {

// The projection writes of one batch, whichever way its rows were made.
struct batch_rows {
    std::string instance_rows = "[", timer_rows = "[", account_rows = "[";
    bool any_instance = false, any_timer = false, any_account = false;
    std::vector<std::string> timers_changed;
    std::map<detail::count_key, std::int64_t> delta;
    std::int64_t position = 0;

    static void add(std::string& list, bool& any, const std::string& item) {
        if (any) list.push_back(',');
        list += item;
        any = true;
    }
    void instance(const std::string& row) { add(instance_rows, any_instance, row); }
    void account(const std::string& row) { add(account_rows, any_account, row); }
    void timers(const std::string& id, const std::vector<timer>& ts) {
        timers_changed.push_back(id);
        json::array rows;
        detail::timer_rows(id, ts, rows);
        for (const auto& r : rows) add(timer_rows, any_timer, json::serialize(r));
    }

    // The projection writes as common table expressions of the store's one write statement,
    // their parameters numbered from `first`. Each part touches its own rows: a changed
    // instance's timers are deleted unless they stay, and the new ones inserted unless present.
    store::batch_writes writes(int first) {
        store::batch_writes w;
        const auto param = [&](std::string value) {
            w.params.push_back(std::move(value));
            return "$" + std::to_string(first + static_cast<int>(w.params.size()) - 1);
        };
        if (any_instance) w.ctes.push_back("p_instances AS (" + detail::instances_sql("instance_state", param(instance_rows + "]"), true) + ")");
        if (!timers_changed.empty()) {
            const auto ids = param(detail::json_list(timers_changed));
            const auto rows = param(timer_rows + "]");
            w.ctes.push_back("p_timers_new AS (SELECT instance_id, kind, due_at FROM jsonb_to_recordset(" + rows +
                             "::jsonb) AS x(instance_id text, kind text, due_at timestamptz))");
            w.ctes.push_back("p_timers_gone AS (DELETE FROM timers t WHERE t.instance_id = ANY(ARRAY(SELECT "
                             "jsonb_array_elements_text(" + ids + "::jsonb))) AND NOT EXISTS (SELECT 1 FROM p_timers_new n "
                             "WHERE n.instance_id = t.instance_id AND n.kind = t.kind AND n.due_at = t.due_at))");
            w.ctes.push_back("p_timers_added AS (INSERT INTO timers (instance_id, kind, due_at) SELECT instance_id, kind, "
                             "due_at FROM p_timers_new ON CONFLICT DO NOTHING)");
        }
        if (any_account) w.ctes.push_back("p_accounts AS (" + detail::accounts_sql("accounts", param(account_rows + "]"), true) + ")");
        json::array counts;
        for (const auto& [key, n] : delta) {
            if (n == 0) continue;
            counts.push_back(json::object{{"product", std::get<0>(key)}, {"billing", std::get<1>(key)},
                                          {"state", std::get<2>(key)}, {"count", n}});
        }
        if (!counts.empty()) {
            // Combinations that reach zero are deleted, the others updated, new ones inserted (a
            // new one with a negative delta fails the CHECK: the counts would have drifted).
            const auto d = param(json::serialize(counts));
            const std::string same = "c.product = d.product AND c.billing = d.billing AND c.state = d.state";
            w.ctes.push_back("p_counts_delta AS (SELECT product, billing, state, count FROM jsonb_to_recordset(" + d +
                             "::jsonb) AS x(product text, billing text, state text, count bigint))");
            w.ctes.push_back("p_counts_gone AS (DELETE FROM instance_counts c USING p_counts_delta d WHERE " + same +
                             " AND c.count + d.count = 0)");
            w.ctes.push_back("p_counts_changed AS (UPDATE instance_counts c SET count = c.count + d.count FROM "
                             "p_counts_delta d WHERE " + same + " AND c.count + d.count <> 0)");
            w.ctes.push_back("p_counts_new AS (INSERT INTO instance_counts (product, billing, state, count) SELECT "
                             "d.product, d.billing, d.state, d.count FROM p_counts_delta d WHERE NOT EXISTS (SELECT 1 "
                             "FROM instance_counts c WHERE " + same + "))");
        }
        const auto name = param(std::string(checkpoint_name));
        const auto pos = param(std::to_string(position));
        w.ctes.push_back("p_checkpoint AS (INSERT INTO projection_checkpoint (name, position) VALUES (" + name + ", " + pos +
                         "::bigint) ON CONFLICT (name) DO UPDATE SET position = excluded.position)");
        return w;
    }
};

} // namespace

std::shared_ptr<const unit_rows> rows_of(const unit_outcome& o,
                                         const std::function<const instance_state&(const std::string&)>& before,
                                         const policy_registry& policies) {
    auto out = std::make_shared<unit_rows>();
    std::set<std::string> instances, accounts;
    for (const auto& pe : o.events) {
        if (auto id = instance_id_of(pe.stream)) instances.insert(std::move(*id));
        else if (auto aid = account_id_of(pe.stream)) accounts.insert(std::move(*aid));
    }
    for (const auto& id : instances) {
        const auto& b = before(id);
        const auto& s = o.instances.at(id);
        unit_rows::instance_change c;
        c.id = id;
        if (b.exists) {
            c.before = detail::count_key_of(b);
            c.timers_before_known = policies.find(b.policy) != nullptr;
            if (c.timers_before_known) c.timers_before = detail::timers_of(b, policies);
        }
        if (s.exists) {   // a stream with no purchase/import yet has nothing to show
            c.after = detail::count_key_of(s);
            c.row = json::serialize(detail::instance_row(s, policies));
            c.timers_after = detail::timers_of(s, policies);
            c.member_facts = member_facts_of(c.timers_after, notice_of(s, policy_of(s, policies)));
        } else {
            c.member_facts = member_facts_of({}, std::nullopt);
        }
        out->instances.push_back(std::move(c));
    }
    for (const auto& id : accounts)
        if (const auto it = o.accounts.find(id); it != o.accounts.end() && it->second.exists)
            out->accounts.emplace_back(id, json::serialize(detail::account_row(id, it->second)));
    return out;
}

store::batch_writes projector::writes(pqxx::transaction_base& tx, const std::vector<store::recorded_event>& events,
                                      const std::vector<const std::any*>& projections, int first_param) const {
    if (events.empty()) return {};
    batch_rows out;
    out.position = events.back().position;

    // Encode once: every request brought its rows. Merge them per instance and account: the
    // first request's "before", the last one's "after" (the store accepted them in order, each
    // at the version the previous one left, so the steps compose).
    std::vector<std::shared_ptr<const unit_rows>> given;
    for (const auto* p : projections) {
        const auto* r = p != nullptr ? std::any_cast<std::shared_ptr<const unit_rows>>(p) : nullptr;
        if (r == nullptr || !*r) break;
        given.push_back(*r);
    }
    if (!projections.empty() && given.size() == projections.size()) {
        struct merged {
            const unit_rows::instance_change* first = nullptr;
            const unit_rows::instance_change* last = nullptr;
        };
        std::map<std::string, merged> instances;
        std::map<std::string, const std::string*> accounts;
        for (const auto& u : given) {
            for (const auto& c : u->instances) {
                auto& m = instances[c.id];
                if (m.first == nullptr) m.first = &c;
                m.last = &c;
                if (c.before) --out.delta[*c.before];
                if (!c.row.empty()) ++out.delta[c.after];
            }
            for (const auto& [id, row] : u->accounts) accounts[id] = &row;
        }
        for (const auto& [id, m] : instances) {
            if (m.last->row.empty()) continue;
            out.instance(m.last->row);
            if (!m.first->timers_before_known || m.first->timers_before != m.last->timers_after)
                out.timers(id, m.last->timers_after);
        }
        for (const auto& [id, row] : accounts) out.account(*row);
        return out.writes(first_param);
    }

    std::set<std::string> instance_ids, account_ids;
    for (const auto& e : events) {
        if (auto id = instance_id_of(e.stream)) instance_ids.insert(std::move(*id));
        else if (auto aid = account_id_of(e.stream)) account_ids.insert(std::move(*aid));
    }
    const std::vector<std::string> iids(instance_ids.begin(), instance_ids.end());
    const std::vector<std::string> aids(account_ids.begin(), account_ids.end());

    // Load every touched state with one query per table (the batch's cache).
    projection_set set;
    std::map<std::string, detail::count_key> before;
    std::map<std::string, std::vector<timer>> timers_before;   // what the timers table holds now
    if (!iids.empty()) {
        const auto r = tx.exec_params(
            "SELECT instance_id, snapshot FROM instance_state "
            "WHERE instance_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))",
            detail::json_list(iids));
        for (const auto& row : r) {
            const std::string id = row[0].c_str();
            auto s = parse_instance_snapshot(row[1].c_str(), id);
            if (s.exists) {
                before.emplace(id, detail::count_key_of(s));
                // Under a version this daemon does not hold yet, the timers are replaced.
                if (policies_.find(s.policy) != nullptr) timers_before.emplace(id, detail::timers_of(s, policies_));
            }
            set.instances.emplace(id, std::move(s));
        }
    }
    if (!aids.empty()) {
        const auto r = tx.exec_params(
            "SELECT account_id, snapshot FROM accounts "
            "WHERE account_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))",
            detail::json_list(aids));
        for (const auto& row : r) {
            const std::string id = row[0].c_str();
            set.accounts.emplace(id, parse_account_snapshot(row[1].c_str(), id));
        }
    }

    for (const auto& e : events) fold(set, e, policies_);

    for (const auto& id : iids) {
        const auto& s = set.instances.at(id);
        if (auto b = before.find(id); b != before.end()) --out.delta[b->second];
        if (!s.exists) continue; // a stream with no purchase/import yet has nothing to show
        ++out.delta[detail::count_key_of(s)];
        out.instance(json::serialize(detail::instance_row(s, policies_)));
        // An instance's timers are replaced only when they changed (`deadlines` of the new
        // state is the whole truth; most commands leave it as it was): less work, and no dead
        // index entries at the soonest end of timers_due_at_idx, which every command's load probes.
        auto new_timers = detail::timers_of(s, policies_);
        if (const auto it = timers_before.find(id); it != timers_before.end() && it->second == new_timers) continue;
        out.timers(id, new_timers);
    }
    for (const auto& id : aids) {
        const auto& a = set.accounts.at(id);
        if (a.exists) out.account(json::serialize(detail::account_row(id, a)));
    }
    return out.writes(first_param);
}

void projector::apply(pqxx::transaction_base& tx, const std::vector<store::recorded_event>& events) const {
    auto w = writes(tx, events, {}, 1);
    if (w.ctes.empty()) return;
    std::string sql = "WITH ";
    for (std::size_t i = 0; i < w.ctes.size(); ++i) sql += (i ? ", " : "") + w.ctes[i];
    tx.exec_params(sql + " SELECT 1", pqxx::prepare::make_dynamic_params(w.params));
}

store::batch_observer projector::observer() const {
    return [this](pqxx::transaction_base& tx, const store::batch_view& batch) {
        return writes(tx, batch.events, batch.projections, batch.first_param);
    };
}

} // namespace mqledger::projections
