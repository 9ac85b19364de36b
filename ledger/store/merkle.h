// The Merkle tree over the log (issue 14; README.md "Merkle proofs and
// checkpoints"), exactly as RFC 9162 section 2.1 defines it:
//
//   - the leaf for position P has index P - 1 and its input is the 32 raw bytes of that event's
//     `hash` (the hash chain's SHA-256, hex-decoded);
//   - leaf hash  = SHA-256(0x00 || input), node hash = SHA-256(0x01 || left || right);
//   - a tree of size N covers positions 1..N; MTH of 0 leaves is SHA-256 of the empty string;
//   - inclusion and consistency proofs are RFC 9162's PATH and PROOF (2.1.3.1, 2.1.4.1), and
//     their checks are the verification algorithms of 2.1.3.2 and 2.1.4.2.
//
// Storage follows C2SP tlog-tiles: tiles of height 8, so a tile holds up to 256 hashes. The tile
// at level L and index I holds the hashes of the complete subtrees of height 8*L with indices
// 256*I .. 256*I + width - 1 (level 0: the leaf hashes). A partial tile (width < 256) only grows;
// a hash once stored never changes, so the current tiles answer for every older tree size.
//
// Everything here is pure apart from SHA-256 (OpenSSL libcrypto) and thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace mqledger::merkle {

using hash = std::array<unsigned char, 32>;

inline constexpr int tile_height = 8;
inline constexpr std::int64_t tile_width = 256;   // 1 << tile_height

/// SHA-256(0x00 || input).
[[nodiscard]] hash leaf_hash(std::string_view input);
/// SHA-256(0x01 || left || right).
[[nodiscard]] hash node_hash(const hash& left, const hash& right);
/// SHA-256 of the empty string: the root of the empty tree.
[[nodiscard]] hash empty_root();

/// Lower-case hex, and back (exactly 64 hex digits, either case; nothing otherwise).
[[nodiscard]] std::string to_hex(const hash& h);
[[nodiscard]] std::optional<hash> from_hex(std::string_view hex);
/// Standard base64 with padding (the checkpoint's root line), and back (nothing unless exactly 32 bytes).
[[nodiscard]] std::string to_base64(const hash& h);
[[nodiscard]] std::optional<hash> from_base64(std::string_view b64);
/// The same encoding for any bytes (signed-note signature lines), and back. Strict: the RFC 4648
/// section 4 alphabet, padding required, no whitespace, unused bits zero (so every accepted text
/// is the one encoding of its bytes); nothing otherwise.
[[nodiscard]] std::string base64_encode(std::string_view bytes);
[[nodiscard]] std::optional<std::string> base64_decode(std::string_view b64);

/// The leaf hash of the event with hash `event_hash_hex` (64 hex digits). Throws
/// std::invalid_argument for anything else.
[[nodiscard]] hash event_leaf(std::string_view event_hash_hex);

/// Reads stored hashes: the hash of the complete subtree of height 8*level with index `index`
/// (level 0: the leaf hash of leaf `index`). It is only asked for hashes inside the tree size the
/// computation is for. Throws (anything) when it cannot answer.
using stored_hash_fn = std::function<hash(int level, std::int64_t index)>;

/// Computes tree hashes from stored hashes. Each hash of a complete subtree of height h costs one
/// stored-hash read per covered hash of level floor(h / 8) (at most 128) and as many node
/// hashes; the proofs below need O(log n) such subtrees, and a caller that caches a tile per
/// (level, tile index) reads O(log n) tiles.
class tree_reader {
public:
    explicit tree_reader(stored_hash_fn stored) : stored_(std::move(stored)) {}
    /// A reader that only asks for the stored hashes a computation needs and hashes nothing
    /// (every result is zeros): planning which tiles to read costs no SHA-256.
    [[nodiscard]] static tree_reader planner(stored_hash_fn stored) {
        tree_reader r(std::move(stored));
        r.compute_ = false;
        return r;
    }

    /// The hash of the complete subtree of height `height` with index `index` (leaves
    /// index * 2^height .. (index + 1) * 2^height - 1). Throws std::out_of_range for a negative
    /// height or index, or leaves beyond int64.
    [[nodiscard]] hash subtree(int height, std::int64_t index) const;
    /// MTH(D[begin:end]) for 0 <= begin < end where begin is a multiple of the largest power of
    /// two below end - begin (every range RFC 9162's proofs need; the root is range(0, n)): at most
    /// one subtree per bit of end - begin. Other ranges are computed too, at a cost up to linear in
    /// their length. Throws std::out_of_range unless 0 <= begin < end.
    [[nodiscard]] hash range(std::int64_t begin, std::int64_t end) const;
    /// MTH(D[0:n]); empty_root() for n = 0.
    [[nodiscard]] hash root(std::int64_t n) const;
    /// PATH(index, D[0:n]) for 0 <= index < n, leaf to root order. Throws std::out_of_range otherwise.
    [[nodiscard]] std::vector<hash> inclusion_proof(std::int64_t index, std::int64_t n) const;
    /// PROOF(m, D[0:n]) for 0 < m <= n (empty for m = n). Throws std::out_of_range otherwise.
    [[nodiscard]] std::vector<hash> consistency_proof(std::int64_t m, std::int64_t n) const;

private:
    stored_hash_fn stored_;
    bool compute_ = true;
};

/// RFC 9162 2.1.3.2: true when `proof` proves that `leaf` (a leaf hash) is at `index` in the tree
/// of size `n` with root `root`. False for index >= n, a proof of the wrong length, any other hash.
[[nodiscard]] bool verify_inclusion(std::int64_t index, std::int64_t n, const hash& leaf,
                                    const std::vector<hash>& proof, const hash& root);

/// RFC 9162 2.1.4.2: true when `proof` proves that the tree of size `m` with root `old_root` is a
/// prefix of the tree of size `n` with root `new_root`. For m = n: true iff the proof is empty and
/// the roots are equal. m = 0 is refused (false), as RFC 9162 defines no proof from it.
[[nodiscard]] bool verify_consistency(std::int64_t m, std::int64_t n, const hash& old_root, const hash& new_root,
                                      const std::vector<hash>& proof);

/// The right edge of a tree being built leaf by leaf, and the tiles it changes.
///
/// It holds the last (partial or just filled) tile of every level; appending leaves updates them
/// and computes the hashes of tiles as they fill. `dirty()` names the tiles to store after a
/// run of appends. Start it empty, or from the last tile of every level of a stored tree
/// (`resume`). Not thread-safe.
class tree_builder {
public:
    struct tile {
        int level = 0;
        std::int64_t index = 0;
        std::vector<hash> hashes;   // 1..256
    };

    tree_builder() = default;
    /// Continues a stored tree of `size` leaves from the last stored tile of every level that has
    /// one (any order). Throws std::invalid_argument when the tiles do not fit `size` (level L's
    /// tile must hold the last of its floor(size / 256^L) hashes, and end there; a full tile must
    /// hash to the last hash of the level above), leaving the builder unchanged. (The last tile of
    /// each level holds every hash root() and later appends need: the subtrees of a tree's root
    /// decomposition never reach back into an earlier tile of their level.)
    void resume(std::int64_t size, std::vector<tile> last_tiles);

    /// Appends one leaf hash.
    void append(const hash& leaf);
    [[nodiscard]] std::int64_t size() const noexcept { return size_; }
    /// MTH of the leaves appended so far (and resumed).
    [[nodiscard]] hash root() const;

    /// The tiles changed since the last clear_dirty(), each with all its hashes (store them whole),
    /// by level and index.
    [[nodiscard]] std::vector<tile> dirty() const;
    void clear_dirty();

private:
    std::int64_t size_ = 0;
    std::vector<tile> last_;                // the last tile of each level, level 0 first
    std::vector<bool> last_dirty_;          // per level: last_[level] changed since clear_dirty()
    std::vector<tile> left_;                // tiles filled and left behind since clear_dirty()
};

} // namespace mqledger::merkle
