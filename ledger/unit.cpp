#include "ledger/unit.h"

#include "ledger/codec.h"
#include "ledger/local_time.h"

#include <deque>
#include <set>
#include <tuple>
#include <utility>

namespace mqledger {
namespace {

namespace cmd = commands;
namespace json = boost::json;

bool is_notice(const cmd::command& c) {
    return std::holds_alternative<cmd::tick>(c) || std::holds_alternative<cmd::account_overdue>(c) ||
           std::holds_alternative<cmd::account_paid>(c);
}

unit_outcome refused(refusal_code code, std::string field_or_reason, std::string message) {
    refusal r;
    r.code = code;
    r.message = std::move(message);
    if (code == refusal_code::invalid) r.field = std::move(field_or_reason);
    else r.reason = std::move(field_or_reason);
    unit_outcome o;
    o.refused = std::move(r);
    return o;
}

// The account a creating command names (purchase, import), else nothing.
std::optional<std::string> created_account(const cmd::command& c) {
    if (const auto* p = std::get_if<cmd::purchase>(&c)) return p->account_id;
    if (const auto* p = std::get_if<cmd::import_instance>(&c)) return p->details.account_id;
    return std::nullopt;
}

std::optional<std::string> created_instance(const cmd::command& c) {
    if (const auto* p = std::get_if<cmd::purchase>(&c)) return p->instance_id;
    if (const auto* p = std::get_if<cmd::import_instance>(&c)) return p->details.instance_id;
    return std::nullopt;
}

// The order timers fire in, within a unit and across the timer service's rounds: due time, then
// instance id, then kind (RULES.md "Time-driven events"; the header of unit.h).
using timer_key = std::tuple<time_point, std::string, timer_kind>;

// One unit's working set: every state it loaded, the events decided so far folded onto them, the
// account notices waiting for delivery and the queue of each instance's next timer.
class unit_runner {
public:
    unit_runner(const unit_view& view, time_point now, const policy_set& policies)
        : view_(view), now_(now), policies_(policies) {}

    instance_state& instance(const std::string& id) {
        if (auto it = insts_.find(id); it != insts_.end()) return it->second.s;
        auto s = view_.instance(id);
        s.id = id;
        const auto base = s.exists ? s.version : 0;
        return insts_.emplace(id, entry<instance_state>{std::move(s), base}).first->second.s;
    }

    std::optional<account_state>& account(const std::string& id) {
        if (auto it = accts_.find(id); it != accts_.end()) return it->second.s;
        auto a = view_.account(id);
        const auto base = a ? a->version : 0;
        return accts_.emplace(id, entry<std::optional<account_state>>{std::move(a), base}).first->second.s;
    }

    [[nodiscard]] const policy& policy_for(const instance_state& s) const { return policies_.get(s.prod, s.bill); }

    // The context `decide` judges instance `id` in; the account's facts only when its rules
    // read them (`reads_account`), so a unit of a topic command never loads the account.
    decide_context context(const std::string& id, const std::string& account_id, const cmd::command& c) {
        decide_context ctx{&policies_, id, std::nullopt};
        if (!account_id.empty() && reads_account(c))
            if (const auto& a = account(account_id); a && a->exists) ctx.account = account_facts{a->balance, a->overdue_since};
        return ctx;
    }

    // Folds decided events onto the working set, in order; an account event that starts or ends
    // a debt queues its notice (RULES.md "Accounts and payments").
    void apply(const std::vector<pending_event>& events) {
        for (const auto& pe : events) {
            out_.push_back(pe);
            if (const auto iid = instance_id_of(pe.stream)) {
                auto& s = instance(*iid);
                s = evolve(std::move(s), pe.data, pe.effective_at, policies_);
                s.id = *iid;
                requeue(*iid);
            } else if (const auto aid = account_id_of(pe.stream)) {
                auto& a = account(*aid);
                const account_state before = a.value_or(account_state{});
                account_state after = evolve(before, pe.data, pe.effective_at);
                if (became_overdue(before, after)) notices_.push_back({*aid, account_notice::overdue, pe.effective_at});
                if (settles_debt(before, after, pe.data)) notices_.push_back({*aid, account_notice::paid, pe.effective_at});
                a = std::move(after);
            }
        }
    }

    // Fires every timer of the unit's account due at or before `up_to`, in due order, delivering
    // each notice once the timers due up to its time have fired.
    void catch_up(time_point up_to) {
        if (account_.empty()) return;
        for (const auto& id : view_.due_instances(account_, up_to)) instance(id);
        auto& due_by = sets_read_[account_].due_by;
        if (!due_by || *due_by < up_to) due_by = up_to;
        // Instances not queued yet; a queued one is queued again whenever its state changes.
        for (const auto& [id, e] : insts_)
            if (!considered_.count(id)) requeue(id);
        for (;;) {
            const bool timer_due = !queue_.empty() && std::get<0>(*queue_.begin()) <= up_to;
            if (!notices_.empty() && (!timer_due || notices_.front().at < std::get<0>(*queue_.begin()))) {
                const auto n = notices_.front();
                notices_.pop_front();
                deliver(n);
                continue;
            }
            if (!timer_due) return;
            if (fired_.size() + stuck_.size() >= max_timers_per_unit) {
                overflow_ = true;
                return;
            }
            fire(*queue_.begin());
        }
    }

    bool decide_command(const std::string& instance_id, const cmd::command& c) {
        auto& s = instance(instance_id);
        const auto account_id = s.exists ? s.account_id : created_account(c).value_or("");
        const auto d = decide(s, c, now_, context(instance_id, account_id, c));
        if (!d.ok()) {
            refusal_ = d.refused;
            return false;
        }
        apply(d.events);
        return true;
    }

    bool decide_account_command(const std::string& account_id, const cmd::command& c) {
        const auto d = decide(account(account_id).value_or(account_state{}), c, now_, account_id);
        if (!d.ok()) {
            refusal_ = d.refused;
            return false;
        }
        apply(d.events);
        return true;
    }

    void set_account(std::string id) { account_ = std::move(id); }

    unit_outcome finish() && {
        unit_outcome o;
        if (refusal_) {
            o.refused = std::move(refusal_);
            return o;
        }
        if (overflow_) {
            return refused(refusal_code::conflict, "catching_up",
                           "the account has more due timers than one unit fires; retry once the timers have fired");
        }
        for (const auto& pe : out_) {
            if (o.expected_versions.count(pe.stream)) continue;
            if (const auto iid = instance_id_of(pe.stream)) o.expected_versions[pe.stream] = insts_.at(*iid).base;
            else if (const auto aid = account_id_of(pe.stream)) o.expected_versions[pe.stream] = accts_.at(*aid).base;
        }
        for (const auto& [id, e] : insts_) o.read_versions.emplace(instance_stream(id), e.base);
        for (const auto& [id, e] : accts_) o.read_versions.emplace(account_stream(id), e.base);
        o.sets_read = std::move(sets_read_);
        o.events = std::move(out_);
        o.fired = std::move(fired_);
        o.stuck = std::move(stuck_);
        for (auto& [id, e] : insts_) o.instances.emplace(id, std::move(e.s));
        for (auto& [id, e] : accts_)
            if (e.s) o.accounts.emplace(id, std::move(*e.s));
        return o;
    }

private:
    template <typename T>
    struct entry {
        T s;
        std::int64_t base = 0;   // the version in the view: what the append expects
    };
    struct notice {
        std::string account_id;
        account_notice kind;
        time_point at;
    };

    // Puts instance `id`'s soonest timer in the queue (replacing its previous one). Only the
    // unit's account's live instances take part; one whose timer got stuck sits this unit out.
    void requeue(const std::string& id) {
        considered_.insert(id);
        if (const auto it = queued_.find(id); it != queued_.end()) {
            queue_.erase(it->second);
            queued_.erase(it);
        }
        if (stuck_ids_.count(id)) return;
        const auto& s = instance(id);
        if (!s.exists || s.account_id != account_) return;
        const auto timers = deadlines(s, policy_for(s));
        if (timers.empty()) return;
        timer_key key{timers.front().due_at, id, timers.front().kind};
        queue_.insert(key);
        queued_.emplace(id, std::move(key));
    }

    void fire(const timer_key& key) {
        const auto [due, id, kind] = key;   // copies: the queue entry goes away below
        auto& s = instance(id);
        const cmd::command tick = cmd::tick{kind, due};
        const auto d = decide(s, tick, now_, context(id, s.account_id, tick));
        if (!d.ok() || d.events.empty()) {
            stuck_.push_back({id, kind, due, d.ok() ? std::string("a due timer decided nothing") : d.refused->message});
            stuck_ids_.insert(id);
            requeue(id);
            return;
        }
        fired_.push_back({id, kind, due});
        apply(d.events);
    }

    // A notice goes to the account's instances that act on it, in id order; each decides its own
    // reaction (`decide`: account_overdue, account_paid).
    void deliver(const notice& n) {
        std::set<std::string> ids;
        for (auto& id : view_.notice_targets(n.account_id, n.kind)) ids.insert(std::move(id));
        sets_read_[n.account_id].notices.insert(n.kind);
        for (const auto& [id, e] : insts_)
            if (e.s.exists && e.s.account_id == n.account_id) ids.insert(id);
        for (const auto& id : ids) {
            const auto& s = instance(id);
            if (s.account_id != n.account_id || notice_of(s, policy_for(s)) != n.kind) continue;
            const cmd::command c = n.kind == account_notice::overdue ? cmd::command{cmd::account_overdue{n.at}}
                                                                     : cmd::command{cmd::account_paid{n.at}};
            const auto d = decide(s, c, now_, context(id, n.account_id, c));
            if (d.ok()) apply(d.events);
        }
    }

    const unit_view& view_;
    time_point now_;
    const policy_set& policies_;
    std::string account_;
    std::map<std::string, entry<instance_state>> insts_;
    std::map<std::string, entry<std::optional<account_state>>> accts_;
    std::vector<pending_event> out_;
    std::vector<fired_timer> fired_;
    std::vector<stuck_timer> stuck_;
    std::deque<notice> notices_;
    std::set<timer_key> queue_;
    std::map<std::string, timer_key> queued_;
    std::set<std::string> considered_;   // instances whose timers were looked at (queued or not)
    std::set<std::string> stuck_ids_;
    std::map<std::string, account_sets_read> sets_read_;
    std::optional<refusal> refusal_;
    bool overflow_ = false;
};

} // namespace

std::optional<std::string> unit_account(const unit_view& view, const unit_command& c) {
    if (const auto* ic = std::get_if<instance_command>(&c)) {
        const auto s = view.instance(ic->instance_id);
        if (s.exists) return s.account_id;
        return created_account(ic->command);
    }
    if (const auto* ac = std::get_if<account_command>(&c)) return ac->account_id;
    return std::get<fire_timers>(c).account_id;
}

unit_outcome decide_unit(const unit_view& view, const unit_command& c, time_point now, const policy_set& policies) {
    if (!supported_time(now)) return refused(refusal_code::invalid, "now", "the time is out of the supported range");
    unit_runner r(view, now, policies);
    if (const auto* ic = std::get_if<instance_command>(&c)) {
        if (is_notice(ic->command) || cmd::is_account_command(ic->command))
            return refused(refusal_code::invalid, "command", "not a client command on an instance");
        if (const auto id = created_instance(ic->command); id && *id != ic->instance_id)
            return refused(refusal_code::invalid, "instance_id", "the command names another instance");
        const auto& s = r.instance(ic->instance_id);
        r.set_account(s.exists ? s.account_id : created_account(ic->command).value_or(""));
        r.catch_up(now);
        if (r.decide_command(ic->instance_id, ic->command)) r.catch_up(now);
    } else if (const auto* ac = std::get_if<account_command>(&c)) {
        if (!cmd::is_account_command(ac->command)) return refused(refusal_code::invalid, "command", "not an account command");
        r.set_account(ac->account_id);
        r.catch_up(now);
        if (r.decide_account_command(ac->account_id, ac->command)) r.catch_up(now);
    } else {
        const auto& ft = std::get<fire_timers>(c);
        if (ft.up_to > now) return refused(refusal_code::invalid, "up_to", "timers cannot fire before they are due");
        r.set_account(ft.account_id);
        r.catch_up(ft.up_to);
    }
    return std::move(r).finish();
}

// ---- the unit record ----

bool operator==(const unit_record& a, const unit_record& b) {
    // Commands have no operator==: compare their canonical encodings (what the log holds).
    return a.at == b.at && a.events == b.events && encode_unit(a) == encode_unit(b);
}

json::object encode_unit(const unit_record& u) {
    json::object o;
    if (const auto* ic = std::get_if<instance_command>(&u.command)) {
        o["instance_id"] = ic->instance_id;
        o["command"] = codec::encode_command(ic->command);
    } else if (const auto* ac = std::get_if<account_command>(&u.command)) {
        o["account_id"] = ac->account_id;
        o["command"] = codec::encode_command(ac->command);
    } else {
        const auto& ft = std::get<fire_timers>(u.command);
        o["account_id"] = ft.account_id;
        o["command"] = json::object{{"type", "fire_timers"}, {"up_to", codec::format_time(ft.up_to)}};
    }
    o["at"] = codec::format_time(u.at);
    o["events"] = u.events;
    return o;
}

std::optional<unit_record> decode_unit(const json::value& v, std::string& error) {
    const auto fail = [&](std::string path, std::string why) -> std::optional<unit_record> {
        error = "unit." + std::move(path) + ": " + std::move(why);
        return std::nullopt;
    };
    if (!v.is_object()) return fail("", "not an object");
    const auto& o = v.get_object();
    const auto* id = o.if_contains("instance_id");
    const bool on_instance = id != nullptr;
    if (!on_instance) id = o.if_contains("account_id");
    if (id == nullptr || !id->is_string() || id->get_string().empty())
        return fail("instance_id", "an instance_id or account_id string is required");
    const auto* command = o.if_contains("command");
    const auto* at = o.if_contains("at");
    const auto* events = o.if_contains("events");
    if (o.size() != 4 || command == nullptr || at == nullptr || events == nullptr)
        return fail("", "exactly one id, command, at and events are required");
    unit_record u;
    const auto t = at->is_string() ? codec::parse_time(std::string_view(at->get_string())) : std::nullopt;
    if (!t) return fail("at", "not an RFC 3339 time");
    u.at = *t;
    if (!events->is_int64() || events->get_int64() < 1) return fail("events", "not a positive integer");
    u.events = events->get_int64();
    const std::string target(id->get_string());
    if (!on_instance && command->is_object() && command->get_object().if_contains("type") &&
        *command->get_object().if_contains("type") == "fire_timers") {
        const auto& co = command->get_object();
        const auto* up_to = co.if_contains("up_to");
        const auto parsed = up_to && up_to->is_string() ? codec::parse_time(std::string_view(up_to->get_string())) : std::nullopt;
        if (co.size() != 2 || !parsed) return fail("command.up_to", "fire_timers needs exactly an RFC 3339 up_to");
        u.command = fire_timers{target, *parsed};
        return u;
    }
    auto decoded = codec::decode_command(*command);
    if (const auto* err = std::get_if<codec::codec_error>(&decoded))
        return fail("command" + (err->field.empty() ? std::string() : "." + err->field), err->message);
    auto c = std::get<cmd::command>(std::move(decoded));
    if (on_instance) u.command = instance_command{target, std::move(c)};
    else u.command = account_command{target, std::move(c)};
    return u;
}

} // namespace mqledger
