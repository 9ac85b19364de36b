#include "ledger/replay.h"

#include "ledger/codec.h"

#include <boost/json/serialize.hpp>

namespace mqledger {
namespace {

std::string describe(const std::string& stream, const events::event& e, time_point at) {
    return std::string(events::type_name(e)) + " " + boost::json::serialize(codec::encode(e)) + " on " + stream +
           " effective " + codec::format_time(at);
}

replay_finding finding(std::int64_t position, std::string reason) { return {position, std::move(reason)}; }

} // namespace

std::optional<replay_finding> ledger_replay::feed(logged_event e) {
    // A unit record opens a unit; it holds the record's event and the next `events - 1`.
    if (!group_.empty() && !e.unit.is_null())
        if (auto bad = replay_group()) return bad;
    if (group_.empty()) {
        if (e.unit.is_null())
            return finding(e.position, describe(e.stream, e.data, e.effective_at) +
                                           " belongs to no unit: no unit record in its metadata, and no unit open "
                                           "(an event inserted by hand, or written before units were recorded)");
        std::string error;
        const auto record = decode_unit(e.unit, error);
        if (!record) return finding(e.position, "unreadable unit record: " + error);
        declared_ = record->events;
    }
    group_.push_back(std::move(e));
    if (static_cast<std::int64_t>(group_.size()) == declared_) return replay_group();
    return std::nullopt;
}

std::optional<replay_finding> ledger_replay::finish() {
    if (group_.empty()) return std::nullopt;
    return replay_group();
}

std::optional<replay_finding> ledger_replay::replay_group() {
    std::vector<logged_event> group;
    group.swap(group_);
    const auto& first = group.front();
    const auto first_position = first.position;
    std::string error;
    const auto record = decode_unit(first.unit, error);
    if (!record) return finding(first_position, "unreadable unit record: " + error);
    const policy_set* policies = policies_.find(first.policy);
    if (policies == nullptr) return finding(first_position, "unknown policy version " + std::to_string(first.policy));

    // A unit is decided, then written: one written before its decision time was backdated.
    if (record->at > first.recorded_at)
        return finding(first_position, describe(first.stream, first.data, first.effective_at) + " was written at " +
                                           codec::format_time(first.recorded_at) + ", before its unit was decided (" +
                                           codec::format_time(record->at) + ")");
    const auto outcome = decide_unit(view_, record->command, record->at, *policies);
    if (!outcome.ok())
        return finding(first_position, describe(first.stream, first.data, first.effective_at) +
                                           " is written by a unit whose command the rules refuse: " +
                                           outcome.refused->message);

    std::map<std::string, std::int64_t> version = outcome.expected_versions;
    const auto decided = outcome.events.size();
    for (std::size_t i = 0; i < std::max(decided, group.size()); ++i) {
        if (i >= group.size()) {
            const auto& pe = outcome.events[i];
            return finding(group.back().position + 1,
                           "the unit at position " + std::to_string(first_position) + " decides " +
                               describe(pe.stream, pe.data, pe.effective_at) + " here; the log does not have it");
        }
        const auto& le = group[i];
        if (i >= decided)
            return finding(le.position, describe(le.stream, le.data, le.effective_at) + " is not decided by the unit at position " +
                                            std::to_string(first_position) + ", which writes " + std::to_string(decided) +
                                            " events");
        const auto& pe = outcome.events[i];
        if (pe.stream != le.stream || !(pe.data == le.data) || pe.effective_at != le.effective_at)
            return finding(le.position, "the unit at position " + std::to_string(first_position) + " decides " +
                                            describe(pe.stream, pe.data, pe.effective_at) + " here, the log has " +
                                            describe(le.stream, le.data, le.effective_at));
        if (le.stream_version != ++version[le.stream])
            return finding(le.position, "stream_version " + std::to_string(le.stream_version) + " of " + le.stream +
                                            " should be " + std::to_string(version[le.stream]));
    }
    if (static_cast<std::int64_t>(group.size()) != record->events)
        return finding(first_position, "the unit declares " + std::to_string(record->events) + " events and wrote " +
                                           std::to_string(group.size()));
    view_.absorb(outcome, *policies);
    conforming_ += static_cast<std::int64_t>(group.size());
    ++units_;
    return std::nullopt;
}

} // namespace mqledger
