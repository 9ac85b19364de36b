#include "projections/conformance.h"

#include "ledger/codec.h"
#include "ledger/commands.h"
#include "ledger/decide.h"

#include <variant>

namespace mqledger::projections {
namespace cmd = commands;
namespace ev = events;

namespace {

template <class... F>
struct overloaded : F... {
    using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

cmd::purchase purchase_of(const std::string& id, const ev::purchased& p) {
    cmd::purchase c;
    c.instance_id = id;
    c.account_id = p.account_id;
    c.prod = p.prod;
    c.bill = p.bill;
    c.timezone = p.timezone;
    c.rate = p.rate;
    c.term_months = p.term_months;
    c.config = p.config;
    c.auto_renew = p.auto_renew;
    return c;
}

// The client commands whose first event on the stream would be `e`.
std::vector<cmd::command> commands_for(const std::string& id, const ev::event& e) {
    std::vector<cmd::command> out;
    std::visit(overloaded{
                   [&](const ev::purchased& p) {
                       out.emplace_back(purchase_of(id, p));
                       auto without = purchase_of(id, p);
                       without.auto_renew.reset();
                       out.emplace_back(std::move(without));
                   },
                   [&](const ev::imported& i) {
                       cmd::import_instance c;
                       c.details = purchase_of(id, i.purchase);
                       c.in_state = i.in_state;
                       c.state_since = i.state_since;
                       c.expires_at = i.purchase.expires_at;
                       c.overdue_since = i.overdue_since;
                       out.emplace_back(c);
                       c.details.auto_renew.reset();
                       out.emplace_back(std::move(c));
                   },
                   [&](const ev::deployed&) { out.emplace_back(cmd::deploy{}); },
                   [&](const ev::stopped&) { out.emplace_back(cmd::stop{}); },
                   [&](const ev::enabled&) { out.emplace_back(cmd::enable{}); },
                   [&](const ev::renewed& r) {
                       if (!r.automatic) out.emplace_back(cmd::renew{r.months});
                   },
                   [&](const ev::unsubscribed&) { out.emplace_back(cmd::unsubscribe{}); },
                   [&](const ev::force_delete_requested&) { out.emplace_back(cmd::force_delete{}); },
                   [&](const ev::deleted&) { out.emplace_back(cmd::remove{}); },
                   [&](const ev::config_change_started& c) {
                       out.emplace_back(cmd::change_config{c.to.config, c.to.rate});
                   },
                   [&](const ev::auto_renew_set& a) { out.emplace_back(cmd::set_auto_renew{a.enabled, a.days_before}); },
                   [&](const ev::topic_created& t) { out.emplace_back(cmd::create_topic{t.name}); },
                   [&](const ev::topic_deleted& t) { out.emplace_back(cmd::delete_topic{t.name}); },
                   [&](const ev::group_created& g) { out.emplace_back(cmd::create_group{g.name}); },
                   [&](const ev::group_deleted& g) { out.emplace_back(cmd::delete_group{g.name}); },
                   [&](const ev::account_opened& a) { out.emplace_back(cmd::open_account{a.currency}); },
                   [&](const ev::funds_added& f) { out.emplace_back(cmd::add_funds{f.amount, f.reference}); },
                   [&](const ev::charged& c) {
                       // Charges a decision makes are expected after it; only manual ones stand alone.
                       if (c.reason != "purchase" && c.reason != "renewal" && c.reason != "upgrade" &&
                           c.reason != "settlement")
                           out.emplace_back(cmd::charge{c.amount, c.instance_id, c.reason, c.reference});
                   },
                   [](const auto&) {},
               },
               e);
    return out;
}

} // namespace

std::optional<std::string> conformance_checker::check(const store::recorded_event& e) {
    ++checked_;
    decoded_event d;
    try {
        d = decode_recorded(e);
    } catch (const std::exception& x) {
        // Unknown streams are not the rules' business; an undecodable rules event is.
        if (!instance_id_of(e.stream) && !account_id_of(e.stream)) return std::nullopt;
        return std::string("undecodable: ") + x.what();
    }
    std::optional<std::string> verdict;
    try {
        verdict = judge(e, d);
    } catch (const std::exception& x) {
        verdict = std::string("cannot be judged: ") + x.what();
    }
    try {
        fold(set_, e);
    } catch (const std::exception& x) {
        if (!verdict) verdict = std::string("cannot be folded: ") + x.what();
    }
    return verdict;
}

std::optional<std::string> conformance_checker::judge(const store::recorded_event& e, const decoded_event& d) {
    const auto iid = instance_id_of(e.stream);
    const auto aid = account_id_of(e.stream);
    if (!iid && !aid) return std::nullopt;

    // The rest of a decision already judged must come next, exactly.
    if (!expected_.empty()) {
        const auto front = expected_.front();
        if (front.stream == e.stream && front.data == d.data && front.effective_at == d.effective_at) {
            expected_.pop_front();
            return std::nullopt;
        }
        expected_.clear();
        return "expected " + std::string(ev::type_name(front.data)) + " on " + front.stream + " at " +
               codec::format_time(front.effective_at) + " (the rest of the decision at position " +
               std::to_string(expected_since_) + "), found " + std::string(ev::type_name(d.data)) + " on " + e.stream;
    }

    const policy_set* set = policies_.find(d.policy);
    if (set == nullptr) return "unknown policy version " + std::to_string(d.policy);
    const auto t = d.effective_at;

    auto matches = [&](const decision& dec) -> bool {
        if (!dec.ok()) return false;
        for (std::size_t i = 0; i < dec.events.size(); ++i) {
            const auto& pe = dec.events[i];
            if (pe.stream != e.stream) continue;
            if (!(pe.data == d.data) || pe.effective_at != t) return false;
            for (std::size_t j = i + 1; j < dec.events.size(); ++j) expected_.push_back(dec.events[j]);
            expected_since_ = e.position;
            return true;
        }
        return false;
    };

    std::optional<refusal> why;
    if (aid) {
        const auto before = set_.accounts.count(*aid) ? set_.accounts.at(*aid) : account_state{};
        for (const auto& c : commands_for(*aid, d.data)) {
            const auto dec = decide(before, c, t, *aid);
            if (matches(dec)) return std::nullopt;
            if (!dec.ok() && !why) why = dec.refused;
        }
        std::string msg = std::string(ev::type_name(d.data)) + " is not what any account command decides here";
        if (why) msg += " (" + why->message + ")";
        return msg;
    }

    instance_state before;
    if (auto it = set_.instances.find(*iid); it != set_.instances.end()) before = it->second;
    before.id = *iid;
    std::string account_id = before.account_id;
    if (const auto* p = std::get_if<ev::purchased>(&d.data)) account_id = p->account_id;
    if (const auto* p = std::get_if<ev::imported>(&d.data)) account_id = p->purchase.account_id;
    std::optional<account_facts> facts;
    if (auto it = set_.accounts.find(account_id); it != set_.accounts.end() && it->second.exists)
        facts = account_facts{it->second.balance, it->second.overdue_since};
    const decide_context ctx{set, *iid, facts};

    std::vector<cmd::command> candidates = commands_for(*iid, d.data);
    if (before.exists) {
        for (const auto& timer : deadlines(before, set->get(before.prod, before.bill)))
            if (timer.due_at == t) candidates.emplace_back(cmd::tick{timer.kind, timer.due_at});
        candidates.emplace_back(cmd::account_overdue{t});
        candidates.emplace_back(cmd::account_paid{t});
    }
    for (const auto& c : candidates) {
        // A timer is judged at the time it was written: one recorded before its deadline is
        // refused by decide ("a timer cannot fire before it is due").
        const auto now = std::holds_alternative<cmd::tick>(c) ? e.recorded_at : t;
        const auto dec = decide(before, c, now, ctx);
        if (matches(dec)) return std::nullopt;
        if (!dec.ok() && !why) why = dec.refused;
    }
    std::string msg = std::string(ev::type_name(d.data)) + " at " + codec::format_time(t) + " is not a legal " +
                      "transition from state " + std::string(to_string(before.current)) + " under policy version " +
                      std::to_string(d.policy);
    if (why) msg += " (" + why->message + ")";
    return msg;
}

conformance_report check_conformance(pqxx::connection& c, const policy_registry& policies) {
    conformance_checker checker(policies);
    conformance_report report;
    std::int64_t last = 0;
    store::for_each_page(c, 0, 2000, [&](const std::vector<store::recorded_event>& page) {
        for (const auto& e : page) {
            if (auto bad = checker.check(e)) {
                report.bad_position = e.position;
                report.reason = std::move(*bad);
                return false;
            }
            last = e.position;
        }
        return true;
    });
    report.conforming = checker.checked() - (report.bad_position ? 1 : 0);
    if (!report.bad_position)
        if (auto bad = checker.finish()) {
            report.bad_position = last + 1;
            report.reason = std::move(*bad);
        }
    return report;
}

std::optional<std::string> conformance_checker::finish() const {
    if (expected_.empty()) return std::nullopt;
    return "the log ends before " + std::string(ev::type_name(expected_.front().data)) + " on " +
           expected_.front().stream + " (the rest of the decision at position " + std::to_string(expected_since_) + ")";
}

} // namespace mqledger::projections
