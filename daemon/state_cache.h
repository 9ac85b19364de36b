// The engine's bounded cache of decided states ("load once"): the instance and account states
// that units loaded or decided, kept for the next unit on the same streams, so a command need not
// read and parse its instance's snapshot again.
//
// A cached state may be stale (another daemon wrote the stream since). That is safe because the
// engine never lets a cached state decide anything that is not checked: every append checks the
// version of every stream its unit read (unit_outcome::read_versions), so a stale entry shows up
// as a version conflict, is forgotten, and the unit is decided again from the database. A unit
// decided from the cache that would be answered without an append (a refusal, a command with
// nothing to write, an If-Match mismatch) is decided again without the cache before it is
// answered.
//
// Least recently used entries go first; the bound counts instances and accounts together. Sharded
// by id so the workers rarely wait for each other.
#pragma once

#include "ledger/account.h"
#include "ledger/instance.h"

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>

namespace mqledger {

class state_cache {
public:
    /// `capacity` entries at most (instances and accounts); 0 disables the cache.
    explicit state_cache(std::size_t capacity);

    /// The cached state, or nothing (a miss). Thread-safe.
    [[nodiscard]] std::optional<instance_state> instance(const std::string& id);
    [[nodiscard]] std::optional<account_state> account(const std::string& id);

    /// Keeps `s` (an existing instance) unless a newer version is cached. Thread-safe.
    void put(const instance_state& s);
    void put(const std::string& account_id, const account_state& a);

    /// Drops a stream's entry (a conflict, an unknown outcome). `stream` as in the log
    /// ("instance-…", "account-…"); other names are ignored. Thread-safe.
    void forget(const std::string& stream);

    /// Drops everything (a rebuild of the projections). Thread-safe.
    void clear();

    struct stats {
        std::uint64_t hits = 0, misses = 0;
        std::size_t entries = 0;
    };
    [[nodiscard]] stats statistics() const;
    [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }

private:
    using value = std::variant<instance_state, account_state>;
    struct shard {
        mutable std::mutex mutex;
        std::list<std::pair<std::string, value>> lru;   // most recent first
        std::unordered_map<std::string, std::list<std::pair<std::string, value>>::iterator> index;
    };
    static constexpr std::size_t shard_count = 32;

    shard& shard_of(const std::string& key);
    template <typename T>
    std::optional<T> get(const std::string& key);
    void put(std::string key, value v, std::int64_t version);

    std::size_t capacity_;
    std::size_t per_shard_;
    std::array<shard, shard_count> shards_;
    std::atomic<std::uint64_t> hits_{0}, misses_{0};
};

} // namespace mqledger
