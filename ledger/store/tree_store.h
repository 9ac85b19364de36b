// The Merkle tree and checkpoints in PostgreSQL (sql/0005_merkle.sql): extending the tree from
// the committed events, reading tiles for proofs, and storing signed checkpoints and the
// witnesses' co-signatures. The tree math is ledger/store/merkle.h; the note format is
// ledger/store/checkpoint.h.
#pragma once

#include "ledger/store/checkpoint.h"
#include "ledger/store/merkle.h"
#include "ledger/types.h"

#include <pqxx/pqxx>

#include <atomic>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mqledger::store {

/// How many leaves the stored tree holds.
[[nodiscard]] std::int64_t tree_size(pqxx::transaction_base& tx);

/// Tiles kept in memory between computations (the daemon's proof routes). A stored hash never
/// changes, so a cached tile answers every computation that needs no more of it than it holds;
/// a longer one is read again. Least recently used tiles go first past `capacity_bytes`.
/// Thread-safe.
class tile_cache {
public:
    explicit tile_cache(std::size_t capacity_bytes) : capacity_(capacity_bytes) {}
    /// The tile, if it holds at least `min_bytes`.
    [[nodiscard]] std::shared_ptr<const std::string> get(int level, std::int64_t index, std::size_t min_bytes);
    void put(int level, std::int64_t index, std::shared_ptr<const std::string> raw);
    [[nodiscard]] std::uint64_t hits() const noexcept { return hits_; }
    [[nodiscard]] std::uint64_t misses() const noexcept { return misses_; }

private:
    using key = std::pair<int, std::int64_t>;
    struct entry {
        std::shared_ptr<const std::string> raw;
        std::list<key>::iterator lru;
    };
    std::mutex mutex_;
    std::size_t capacity_;
    std::size_t bytes_ = 0;
    std::map<key, entry> entries_;
    std::list<key> lru_;   // most recent first
    std::atomic<std::uint64_t> hits_{0}, misses_{0};
};

/// The tiles a tree computation reads, fetched in one round trip: `compute` runs once against a
/// recorder (which answers zero hashes and notes which tiles are asked for: which tiles a proof
/// needs never depends on the hashes), the tiles are read with one query, and `compute` runs
/// again on them. Throws std::runtime_error when a tile the computation needs is missing or
/// too short (the tree does not reach that far).
template <class Compute>
auto with_tiles(pqxx::transaction_base& tx, Compute compute, tile_cache* cache = nullptr);

/// A builder holding the stored tree as it was at `size` leaves (the tiles truncated to it), to
/// go on from there with other leaves (an incremental audit). Throws std::runtime_error when the
/// stored tree is smaller.
[[nodiscard]] merkle::tree_builder stored_builder_at(pqxx::transaction_base& tx, std::int64_t size);

/// The result of one extension.
struct tree_extension {
    bool ran = false;            // false: another session was extending the tree
    std::int64_t from = 0;       // tree size before
    std::int64_t to = 0;         // tree size after
    merkle::hash root{};         // root at `to` (when ran)
};

/// Appends the leaves of the events after the stored tree size (at most `max_leaves`, in
/// position order, stopping at a gap) and stores the changed tiles and the new size, in one
/// transaction on `conn`. Only one session extends at a time (the tree row is locked with SKIP
/// LOCKED; a second one returns ran = false at once). Throws on database errors (nothing stored).
[[nodiscard]] tree_extension extend_tree(pqxx::connection& conn, std::int64_t max_leaves = 100000);

/// A stored checkpoint.
struct stored_checkpoint {
    std::int64_t tree_size = 0;
    merkle::hash root{};
    std::string note;                        // the signed note as made (the log's signature only)
    time_point created_at{};
    std::vector<std::string> cosignatures;   // witness signature lines, "— NAME BASE64\n" each
    /// The note with the co-signature lines appended: what GET /v1/ledger/checkpoint serves.
    [[nodiscard]] std::string text() const;
};

/// The newest checkpoint (largest tree size), or the one of `tree_size`.
[[nodiscard]] std::optional<stored_checkpoint> latest_checkpoint(pqxx::transaction_base& tx);
[[nodiscard]] std::optional<stored_checkpoint> checkpoint_of_size(pqxx::transaction_base& tx, std::int64_t tree_size);

/// Signs a checkpoint of the stored tree at its current size with `key` (origin and key name
/// `origin`) and stores it, unless one of that size exists. Returns the checkpoint of that size.
[[nodiscard]] stored_checkpoint make_checkpoint(pqxx::connection& conn, const std::string& origin,
                                                const checkpoint::private_key& key, time_point now);

/// Appends a witness co-signature line ("— NAME BASE64\n") to the checkpoint of `tree_size`
/// (the same line twice is stored once). False when there is no checkpoint of that size. Lines
/// are never removed: a witness whose key changed adds a line under its new key ID.
[[nodiscard]] bool add_cosignature(pqxx::connection& conn, std::int64_t tree_size, const std::string& line);

// ---- implementation of with_tiles ----

namespace detail {
/// The tiles read for one computation, by (level, index).
class tile_set {
public:
    /// Notes that the hash at (level, index) will be read.
    void want(int level, std::int64_t index);
    /// Reads every tile wanted (those `cache` holds long enough from it, the others in one query).
    void fetch(pqxx::transaction_base& tx, tile_cache* cache = nullptr);
    [[nodiscard]] merkle::hash hash_at(int level, std::int64_t index) const;

private:
    struct wanted {
        std::size_t bytes = 0;                      // how much of the tile the computation reads
        std::shared_ptr<const std::string> raw;     // 32 bytes per hash
    };
    std::map<std::pair<int, std::int64_t>, wanted> tiles_;
};
} // namespace detail

template <class Compute>
auto with_tiles(pqxx::transaction_base& tx, Compute compute, tile_cache* cache) {
    detail::tile_set set;
    {
        const auto recorder = merkle::tree_reader::planner([&set](int level, std::int64_t index) {
            set.want(level, index);
            return merkle::hash{};
        });
        (void)compute(recorder);
    }
    set.fetch(tx, cache);
    const merkle::tree_reader reader([&set](int level, std::int64_t index) { return set.hash_at(level, index); });
    return compute(reader);
}

} // namespace mqledger::store
