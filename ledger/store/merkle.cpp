#include "ledger/store/merkle.h"

#include "ledger/store/hash_chain.h"

#include <algorithm>
#include <bit>
#include <limits>

namespace mqledger::merkle {

namespace {

/// SHA-256(prefix || a || b) (store::sha256_raw); no prefix byte when `prefix` is negative.
hash sha256(int prefix, const void* a, std::size_t na, const void* b = nullptr, std::size_t nb = 0) {
    const char p = static_cast<char>(prefix);
    hash out;
    store::sha256_raw({std::string_view(&p, prefix >= 0 ? 1 : 0), std::string_view(static_cast<const char*>(a), na),
                       std::string_view(static_cast<const char*>(b), nb)},
                      out.data());
    return out;
}

/// The root of `count` (a power of two) consecutive hashes of one level, computed in place: the
/// complete subtree they are the bottom row of.
hash reduce(hash* h, std::size_t count) {
    for (; count > 1; count /= 2)
        for (std::size_t i = 0; i < count / 2; ++i) h[i] = node_hash(h[2 * i], h[2 * i + 1]);
    return h[0];
}

hash tile_root(const std::vector<hash>& hashes) {
    std::vector<hash> copy = hashes;
    return reduce(copy.data(), copy.size());
}

/// The largest power of two strictly below n (n >= 2): RFC 9162's k.
std::int64_t split_point(std::int64_t n) {
    return static_cast<std::int64_t>(std::bit_floor(static_cast<std::uint64_t>(n - 1)));
}

constexpr char b64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

} // namespace

hash leaf_hash(std::string_view input) { return sha256(0x00, input.data(), input.size()); }

hash node_hash(const hash& left, const hash& right) {
    // One 65-byte update: node hashes are most of a proof's cost.
    std::array<unsigned char, 65> in;
    in[0] = 0x01;
    std::copy(left.begin(), left.end(), in.begin() + 1);
    std::copy(right.begin(), right.end(), in.begin() + 33);
    return sha256(-1, in.data(), in.size());
}

hash empty_root() { return sha256(-1, "", 0); }

std::string to_hex(const hash& h) { return store::to_hex(h.data(), h.size()); }

std::optional<hash> from_hex(std::string_view hex) {
    if (hex.size() != 64) return std::nullopt;
    hash h;
    for (std::size_t i = 0; i < h.size(); ++i) {
        const int hi = hex_value(hex[2 * i]);
        const int lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        h[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    return h;
}

std::string base64_encode(std::string_view bytes) {
    std::string out;
    out.reserve((bytes.size() + 2) / 3 * 4);
    std::size_t i = 0;
    for (; i + 3 <= bytes.size(); i += 3) {
        const unsigned v = static_cast<unsigned char>(bytes[i]) << 16 | static_cast<unsigned char>(bytes[i + 1]) << 8 |
                           static_cast<unsigned char>(bytes[i + 2]);
        for (int shift = 18; shift >= 0; shift -= 6) out += b64_alphabet[(v >> shift) & 63];
    }
    if (const std::size_t rest = bytes.size() - i; rest > 0) {
        unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
        if (rest == 2) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
        out += b64_alphabet[(v >> 18) & 63];
        out += b64_alphabet[(v >> 12) & 63];
        out += rest == 2 ? b64_alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

std::optional<std::string> base64_decode(std::string_view b64) {
    if (b64.size() % 4 != 0) return std::nullopt;
    std::string out;
    out.reserve(b64.size() / 4 * 3);
    for (std::size_t i = 0; i < b64.size(); i += 4) {
        const bool last = i + 4 == b64.size();
        // Padding only at the end of the last group: "xx==" or "xxx=".
        const int pad = !last ? 0 : b64[i + 3] != '=' ? 0 : b64[i + 2] != '=' ? 1 : 2;
        unsigned v = 0;
        for (int j = 0; j < 4 - pad; ++j) {
            const int d = b64_value(b64[i + j]);
            if (d < 0) return std::nullopt;
            v = v << 6 | static_cast<unsigned>(d);
        }
        v <<= 6 * pad;
        // The bits padding leaves over must be zero, else two texts would decode alike.
        if ((pad == 1 && (v & 0xff) != 0) || (pad == 2 && (v & 0xffff) != 0)) return std::nullopt;
        out += static_cast<char>(v >> 16);
        if (pad < 2) out += static_cast<char>((v >> 8) & 0xff);
        if (pad < 1) out += static_cast<char>(v & 0xff);
    }
    return out;
}

std::string to_base64(const hash& h) {
    return base64_encode(std::string_view(reinterpret_cast<const char*>(h.data()), h.size()));
}

std::optional<hash> from_base64(std::string_view b64) {
    // 32 bytes are always 44 characters; checking first keeps the decoder's work bounded.
    if (b64.size() != 44) return std::nullopt;
    const auto bytes = base64_decode(b64);
    if (!bytes || bytes->size() != 32) return std::nullopt;
    hash h;
    std::copy(bytes->begin(), bytes->end(), h.begin());
    return h;
}

hash event_leaf(std::string_view event_hash_hex) {
    const auto raw = from_hex(event_hash_hex);
    if (!raw) throw std::invalid_argument("an event hash is 64 hex digits");
    return leaf_hash(std::string_view(reinterpret_cast<const char*>(raw->data()), raw->size()));
}

// ---------------------------------------------------------------------------------------------
// tree_reader

hash tree_reader::subtree(int height, std::int64_t index) const {
    if (height < 0 || height > 62 || index < 0 || index > (std::numeric_limits<std::int64_t>::max() >> height))
        throw std::out_of_range("merkle: no subtree of height " + std::to_string(height) + " at index " +
                                std::to_string(index));
    const int level = height / tile_height;
    const std::size_t count = std::size_t{1} << (height % tile_height);   // at most 128
    const std::int64_t first = index << (height % tile_height);
    std::array<hash, tile_width / 2> row;
    for (std::size_t j = 0; j < count; ++j) row[j] = stored_(level, first + static_cast<std::int64_t>(j));
    return compute_ ? reduce(row.data(), count) : hash{};
}

hash tree_reader::range(std::int64_t begin, std::int64_t end) const {
    if (begin < 0 || end <= begin)
        throw std::out_of_range("merkle: no range [" + std::to_string(begin) + ", " + std::to_string(end) + ")");
    const std::int64_t n = end - begin;
    // An aligned power of two is one complete subtree. Every other range RFC 9162 needs splits
    // into an aligned left part of k leaves and a right part of the same kind, so a range costs
    // at most one subtree per bit of n. (Unaligned ranges are computed correctly too, only
    // without that bound.)
    if (std::has_single_bit(static_cast<std::uint64_t>(n)) && begin % n == 0)
        return subtree(std::countr_zero(static_cast<std::uint64_t>(n)), begin / n);
    const std::int64_t k = split_point(n);
    const auto left = range(begin, begin + k);
    const auto right = range(begin + k, end);
    return compute_ ? node_hash(left, right) : hash{};
}

hash tree_reader::root(std::int64_t n) const {
    if (n < 0) throw std::out_of_range("merkle: negative tree size");
    return n == 0 ? empty_root() : range(0, n);
}

std::vector<hash> tree_reader::inclusion_proof(std::int64_t index, std::int64_t n) const {
    if (index < 0 || index >= n)
        throw std::out_of_range("merkle: no leaf " + std::to_string(index) + " in a tree of size " + std::to_string(n));
    // PATH(m, D[b:e]) descends towards the leaf; each step contributes the hash of the other
    // side. Collected root first, returned leaf first (the RFC's order).
    std::vector<hash> path;
    std::int64_t b = 0;
    std::int64_t e = n;
    while (e - b > 1) {
        const std::int64_t k = split_point(e - b);
        if (index < b + k) {
            path.push_back(range(b + k, e));
            e = b + k;
        } else {
            path.push_back(range(b, b + k));
            b += k;
        }
    }
    std::reverse(path.begin(), path.end());
    return path;
}

std::vector<hash> tree_reader::consistency_proof(std::int64_t m, std::int64_t n) const {
    if (m <= 0 || m > n)
        throw std::out_of_range("merkle: no consistency proof from size " + std::to_string(m) + " to " +
                                std::to_string(n));
    // SUBPROOF(m, D[b:e], whole): `whole` stays true while the old tree is the left edge of the
    // current subtree (then its hash is known to the verifier and is left out).
    std::vector<hash> proof;
    std::int64_t b = 0;
    std::int64_t e = n;
    bool whole = true;
    while (m != e) {
        const std::int64_t k = split_point(e - b);
        if (m - b <= k) {
            proof.push_back(range(b + k, e));
            e = b + k;
        } else {
            proof.push_back(range(b, b + k));
            b += k;
            whole = false;
        }
    }
    if (!whole) proof.push_back(range(b, e));
    std::reverse(proof.begin(), proof.end());
    return proof;
}

// ---------------------------------------------------------------------------------------------
// Verification: RFC 9162 2.1.3.2 and 2.1.4.2, step by step (fn, sn as in the RFC).

bool verify_inclusion(std::int64_t index, std::int64_t n, const hash& leaf, const std::vector<hash>& proof,
                      const hash& root) {
    if (index < 0 || n <= 0 || index >= n) return false;
    auto fn = static_cast<std::uint64_t>(index);
    auto sn = static_cast<std::uint64_t>(n - 1);
    hash r = leaf;
    for (const hash& p : proof) {
        if (sn == 0) return false;
        if ((fn & 1) != 0 || fn == sn) {
            r = node_hash(p, r);
            while ((fn & 1) == 0 && fn != 0) {   // fn == sn: a right edge, skip the levels without a sibling
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(r, p);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && r == root;
}

bool verify_consistency(std::int64_t m, std::int64_t n, const hash& old_root, const hash& new_root,
                        const std::vector<hash>& proof) {
    if (m <= 0 || m > n) return false;
    if (m == n) return proof.empty() && old_root == new_root;
    if (proof.empty()) return false;
    // When m is a power of two the old tree is a complete subtree of the new one and the proof
    // leaves its hash out: the verifier starts from old_root.
    const bool prepend = std::has_single_bit(static_cast<std::uint64_t>(m));
    auto fn = static_cast<std::uint64_t>(m - 1);
    auto sn = static_cast<std::uint64_t>(n - 1);
    while ((fn & 1) != 0) {
        fn >>= 1;
        sn >>= 1;
    }
    hash fr = prepend ? old_root : proof.front();
    hash sr = fr;
    for (std::size_t i = prepend ? 0 : 1; i < proof.size(); ++i) {
        const hash& c = proof[i];
        if (sn == 0) return false;
        if ((fn & 1) != 0 || fn == sn) {
            fr = node_hash(c, fr);
            sr = node_hash(c, sr);
            while ((fn & 1) == 0 && fn != 0) {
                fn >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(sr, c);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return fr == old_root && sr == new_root && sn == 0;
}

// ---------------------------------------------------------------------------------------------
// tree_builder

void tree_builder::resume(std::int64_t size, std::vector<tile> last_tiles) {
    if (size < 0) throw std::invalid_argument("merkle: negative tree size");
    std::sort(last_tiles.begin(), last_tiles.end(),
              [](const tile& a, const tile& b) { return a.level < b.level; });
    // Level L holds floor(size / 256^L) hashes; its last tile is the one holding the last of them.
    std::size_t level = 0;
    for (std::int64_t count = size; count > 0; count /= tile_width, ++level) {
        if (level >= last_tiles.size() || last_tiles[level].level != static_cast<int>(level))
            throw std::invalid_argument("merkle: no last tile for level " + std::to_string(level) + " of a tree of size " +
                                        std::to_string(size));
        const tile& t = last_tiles[level];
        const std::int64_t index = (count - 1) / tile_width;
        if (t.index != index || static_cast<std::int64_t>(t.hashes.size()) != count - tile_width * index)
            throw std::invalid_argument("merkle: tile " + std::to_string(t.level) + "/" + std::to_string(t.index) +
                                        " of width " + std::to_string(t.hashes.size()) +
                                        " is not the last tile of its level for size " + std::to_string(size));
    }
    if (last_tiles.size() != level)
        throw std::invalid_argument("merkle: a tile beyond the levels of a tree of size " + std::to_string(size));
    // A full last tile's hash is the last hash of the level above: check what can be checked.
    for (std::size_t l = 0; l + 1 < last_tiles.size(); ++l)
        if (static_cast<std::int64_t>(last_tiles[l].hashes.size()) == tile_width &&
            tile_root(last_tiles[l].hashes) != last_tiles[l + 1].hashes.back())
            throw std::invalid_argument("merkle: the tiles of levels " + std::to_string(l) + " and " +
                                        std::to_string(l + 1) + " disagree");
    size_ = size;
    last_ = std::move(last_tiles);
    last_dirty_.assign(last_.size(), false);
    left_.clear();
}

void tree_builder::append(const hash& leaf) {
    if (size_ == std::numeric_limits<std::int64_t>::max()) throw std::length_error("merkle: the tree is full");
    hash h = leaf;
    for (std::size_t level = 0;; ++level) {
        if (level == last_.size()) {
            last_.push_back(tile{static_cast<int>(level), 0, {}});
            last_dirty_.push_back(false);
        }
        tile& t = last_[level];
        if (static_cast<std::int64_t>(t.hashes.size()) == tile_width) {
            // The full tile is left behind; keep it for dirty() if it has not been stored yet.
            const std::int64_t next = t.index + 1;
            if (last_dirty_[level]) left_.push_back(std::move(t));
            t = tile{static_cast<int>(level), next, {}};
        }
        if (t.hashes.empty()) t.hashes.reserve(tile_width);
        t.hashes.push_back(h);
        last_dirty_[level] = true;
        if (static_cast<std::int64_t>(t.hashes.size()) < tile_width) break;
        h = tile_root(t.hashes);   // a filled tile is one more hash of the level above
    }
    ++size_;
}

hash tree_builder::root() const {
    if (size_ == 0) return empty_root();
    // The root's decomposition: one complete subtree per set bit of the size, largest on the
    // left. The subtree of bit h starts where the higher bits end; at level h / 8 it covers
    // 2^(h % 8) hashes, all in that level's last tile.
    const auto n = static_cast<std::uint64_t>(size_);
    std::array<hash, tile_width / 2> row;
    hash acc{};
    bool have = false;
    for (int h = 0; h < 63; ++h) {
        if (((n >> h) & 1) == 0) continue;
        const int level = h / tile_height;
        const std::size_t count = std::size_t{1} << (h % tile_height);
        const std::uint64_t start = (n >> (h + 1)) << (h + 1);
        const tile& t = last_.at(static_cast<std::size_t>(level));
        const auto offset = static_cast<std::size_t>((start >> (tile_height * level)) -
                                                     static_cast<std::uint64_t>(t.index * tile_width));
        std::copy_n(t.hashes.begin() + static_cast<std::ptrdiff_t>(offset), count, row.begin());
        const hash sub = reduce(row.data(), count);
        acc = have ? node_hash(sub, acc) : sub;
        have = true;
    }
    return acc;
}

std::vector<tree_builder::tile> tree_builder::dirty() const {
    std::vector<tile> out = left_;
    for (std::size_t level = 0; level < last_.size(); ++level)
        if (last_dirty_[level]) out.push_back(last_[level]);
    std::sort(out.begin(), out.end(), [](const tile& a, const tile& b) {
        return a.level != b.level ? a.level < b.level : a.index < b.index;
    });
    return out;
}

void tree_builder::clear_dirty() {
    left_.clear();
    last_dirty_.assign(last_.size(), false);
}

} // namespace mqledger::merkle
