#include "projections/projector.h"

#include "ledger/codec.h"
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

void fold(projection_set& into, const store::recorded_event& e) {
    into.position = std::max(into.position, e.position);
    if (auto id = instance_id_of(e.stream)) {
        auto d = decode_recorded(e);
        auto& s = into.instances[*id];
        if (s.id.empty()) s.id = *id; // events carry no id: the stream names the instance
        s = evolve(std::move(s), d.data, d.effective_at, d.policy);
    } else if (auto aid = account_id_of(e.stream)) {
        auto d = decode_recorded(e);
        auto& a = into.accounts[*aid];
        a = evolve(std::move(a), d.data, d.effective_at);
    }
    // Other streams are not projected (the store accepts any stream name).
}

const policy& policy_of(const instance_state& s, const policy_registry& policies) {
    const policy_set* set = policies.find(s.policy);
    return (set != nullptr ? *set : policies.current()).get(s.prod, s.bill);
}

void projector::apply(pqxx::transaction_base& tx, const std::vector<store::recorded_event>& events) const {
    if (events.empty()) return;

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
                timers_before.emplace(id, detail::timers_of(s, policies_));
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

    for (const auto& e : events) fold(set, e);

    json::array instance_rows, timers, account_rows, counts;
    std::vector<std::string> timers_changed;
    std::map<detail::count_key, std::int64_t> delta;
    for (const auto& id : iids) {
        const auto& s = set.instances.at(id);
        if (auto b = before.find(id); b != before.end()) --delta[b->second];
        if (!s.exists) continue; // a stream with no purchase/import yet has nothing to show
        ++delta[detail::count_key_of(s)];
        instance_rows.push_back(detail::instance_row(s, policies_));
        // An instance's timers are replaced only when they changed (`deadlines` of the new
        // state is the whole truth; most commands leave it as it was): less work, and no dead
        // index entries at the soonest end of timers_due_at_idx, which every command's load probes.
        const auto new_timers = detail::timers_of(s, policies_);
        if (const auto it = timers_before.find(id); it != timers_before.end() && it->second == new_timers) continue;
        timers_changed.push_back(id);
        detail::timer_rows(id, new_timers, timers);
    }
    for (const auto& id : aids) {
        const auto& a = set.accounts.at(id);
        if (a.exists) account_rows.push_back(detail::account_row(id, a));
    }
    for (const auto& [key, n] : delta) {
        if (n == 0) continue;
        counts.push_back(json::object{{"product", std::get<0>(key)}, {"billing", std::get<1>(key)},
                                      {"state", std::get<2>(key)}, {"count", n}});
    }

    detail::write_instances(tx, "instance_state", instance_rows, true);
    if (!timers_changed.empty()) {
        tx.exec_params("DELETE FROM timers WHERE instance_id = ANY(ARRAY(SELECT jsonb_array_elements_text($1::jsonb)))",
                       detail::json_list(timers_changed));
        detail::write_timers(tx, "timers", timers);
    }
    detail::write_accounts(tx, "accounts", account_rows, true);
    detail::write_counts(tx, "instance_counts", counts, true);
    detail::write_checkpoint(tx, "projection_checkpoint", set.position);
}

store::batch_observer projector::observer() const {
    return [this](pqxx::transaction_base& tx, const std::vector<store::recorded_event>& events) { apply(tx, events); };
}

} // namespace mqledger::projections
