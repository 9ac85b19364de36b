// The chain check: every event links to the previous one and hashes to what it says.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <optional>
#include <string>

namespace mqledger::store {

struct chain_report {
    bool ok = true;
    std::int64_t events = 0;                   // rows checked
    std::int64_t head_position = 0;            // last position seen
    std::string head_hash;                     // last hash seen (genesis when empty)
    std::optional<std::int64_t> bad_position;  // the first position that fails
    std::string reason;                        // why, e.g. "hash mismatch", "gap: expected 7"
};

/// Streams every event in position order (a server-side cursor, in one REPEATABLE READ snapshot)
/// and checks: positions are 1, 2, 3 … without gaps; each prev_hash equals the previous row's
/// hash (genesis for the first); each hash equals SHA-256 of its pre-image (README.md, "For auditors"),
/// recomputed from the stored columns. Stops at the first failure. Throws std::runtime_error if
/// the database cannot be read. Thread-safe (own connection).
[[nodiscard]] chain_report verify_chain(const std::string& conninfo);

/// The same check for the events after position `after` only, the event at `after` having hash
/// `after_hash` (an incremental audit from a checkpoint). `each` (may be empty) is told every
/// position and hash checked, in order.
[[nodiscard]] chain_report verify_chain_after(const std::string& conninfo, std::int64_t after,
                                              std::string_view after_hash,
                                              const std::function<void(std::int64_t, std::string_view)>& each);

} // namespace mqledger::store
