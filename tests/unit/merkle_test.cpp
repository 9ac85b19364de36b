// The Merkle tree of ledger/store/merkle.h against RFC 6962/9162's published test vectors (the
// ones every CT implementation tests with: 8 leaves, their roots, inclusion paths and consistency
// proofs), against a naive recursive MTH/PATH/PROOF written here from the RFC text, and
// exhaustively for small trees: every proof for sizes up to 300 verifies and every corruption of
// it fails (a spread of them for every bit). tree_builder is checked against an independent right-edge fold for sizes across the
// tile boundaries (256, 65536, 65536 + 256 + 1), for its dirty tiles, for resuming from the last
// tiles, and for the property storage relies on: the tiles it emitted answer for every older size.
#include "ledger/store/merkle.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <bit>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

using namespace mqledger;
using merkle::hash;
using merkle::tree_builder;
using merkle::tree_reader;

namespace {

hash H(std::string_view hex) {
    const auto h = merkle::from_hex(hex);
    REQUIRE(h.has_value());
    return *h;
}

std::string unhex(std::string_view hex) {
    std::string out;
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
        out += static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16));
    return out;
}

// ---------------------------------------------------------------------------------------------
// Reference implementations, straight from RFC 9162 2.1.1, 2.1.3.1, 2.1.4.1 (recursive, over an
// array of leaf hashes; MTH memoized per range so that exhaustive checks stay cheap).

std::int64_t k_of(std::int64_t n) {
    std::int64_t k = 1;
    while (k * 2 < n) k *= 2;
    return k;
}

struct naive {
    const std::vector<hash>& leaves;
    mutable std::map<std::pair<std::int64_t, std::int64_t>, hash> memo;

    hash mth(std::int64_t b, std::int64_t e) const {
        if (e == b) return merkle::empty_root();
        if (e - b == 1) return leaves[static_cast<std::size_t>(b)];
        if (const auto it = memo.find({b, e}); it != memo.end()) return it->second;
        const auto k = k_of(e - b);
        const hash h = merkle::node_hash(mth(b, b + k), mth(b + k, e));
        memo.emplace(std::pair{b, e}, h);
        return h;
    }
    // PATH(m, D[b:e])
    std::vector<hash> path(std::int64_t m, std::int64_t b, std::int64_t e) const {
        if (e - b == 1) return {};
        const auto k = k_of(e - b);
        std::vector<hash> p;
        if (m < k) {
            p = path(m, b, b + k);
            p.push_back(mth(b + k, e));
        } else {
            p = path(m - k, b + k, e);
            p.push_back(mth(b, b + k));
        }
        return p;
    }
    // SUBPROOF(m, D[b:e], whole)
    std::vector<hash> subproof(std::int64_t m, std::int64_t b, std::int64_t e, bool whole) const {
        if (m == e - b) return whole ? std::vector<hash>{} : std::vector<hash>{mth(b, e)};
        const auto k = k_of(e - b);
        std::vector<hash> p;
        if (m <= k) {
            p = subproof(m, b, b + k, whole);
            p.push_back(mth(b + k, e));
        } else {
            p = subproof(m - k, b + k, e, false);
            p.push_back(mth(b, b + k));
        }
        return p;
    }
};

hash leaf_of(std::int64_t i) { return merkle::leaf_hash("leaf " + std::to_string(i)); }

std::vector<hash> leaves_up_to(std::int64_t n) {
    std::vector<hash> v;
    for (std::int64_t i = 0; i < n; ++i) v.push_back(leaf_of(i));
    return v;
}

// ---------------------------------------------------------------------------------------------
// Tiles in memory: what the store keeps, fed from tree_builder::dirty().

using tile_map = std::map<std::pair<int, std::int64_t>, std::vector<hash>>;

void store_dirty(tree_builder& b, tile_map& tiles) {
    for (auto& t : b.dirty()) tiles[{t.level, t.index}] = t.hashes;
    b.clear_dirty();
}

/// Stored hashes from `tiles`; fails the test when asked for a hash beyond tree size `limit`
/// (the reader promises to ask only inside the size it computes for).
merkle::stored_hash_fn reader_of(const tile_map& tiles, std::int64_t limit, std::int64_t* reads = nullptr,
                                 std::set<std::pair<int, std::int64_t>>* tiles_read = nullptr) {
    return [&tiles, limit, reads, tiles_read](int level, std::int64_t index) {
        std::int64_t count = limit;
        for (int l = 0; l < level; ++l) count /= merkle::tile_width;
        if (index < 0 || index >= count) FAIL("asked for hash " << level << "/" << index << " beyond size " << limit);
        if (reads != nullptr) ++*reads;
        if (tiles_read != nullptr) tiles_read->insert({level, index / merkle::tile_width});
        const auto it = tiles.find({level, index / merkle::tile_width});
        if (it == tiles.end()) throw std::runtime_error("no such tile");
        return it->second.at(static_cast<std::size_t>(index % merkle::tile_width));
    };
}

/// The tiles of a tree of these leaves, built in one run.
tile_map tiles_of(const std::vector<hash>& leaves) {
    tree_builder b;
    for (const auto& l : leaves) b.append(l);
    tile_map tiles;
    store_dirty(b, tiles);
    return tiles;
}

hash flip(hash h, int bit) {
    h[static_cast<std::size_t>(bit / 8)] ^= static_cast<unsigned char>(1u << (bit % 8));
    return h;
}

// ---------------------------------------------------------------------------------------------
// RFC 6962 test data (as published with the CT implementations: certificate-transparency,
// trillian, transparency-dev/merkle). Leaf inputs are raw bytes.

const std::vector<std::string> vector_leaves = {
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f",
};

const std::vector<std::string> vector_roots = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

std::vector<hash> vector_leaf_hashes() {
    std::vector<hash> v;
    for (const auto& l : vector_leaves) v.push_back(merkle::leaf_hash(unhex(l)));
    return v;
}

struct proof_vector {
    std::int64_t a;   // leaf index (inclusion) or old size (consistency)
    std::int64_t n;
    std::vector<std::string> hashes;
};

// Leaf indices are 0-based here (the Go test data counts leaves from 1).
const std::vector<proof_vector> inclusion_vectors = {
    {0, 1, {}},
    {0, 8,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {5, 8,
     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {1, 5,
     {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

const std::vector<proof_vector> consistency_vectors = {
    {1, 1, {}},
    {1, 8,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6, 8,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 5,
     {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {6, 7,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
};

std::vector<hash> hashes_of(const std::vector<std::string>& hex) {
    std::vector<hash> v;
    for (const auto& h : hex) v.push_back(H(h));
    return v;
}

// ---------------------------------------------------------------------------------------------
// Corruptions of a valid proof.
//
// A verifier learns the tree's shape only from (index, size) or (m, n), so a proof stays valid
// for other sizes that give the same shape (index 0 of sizes 5 and 6 both have a right sibling
// at each of 3 levels). The shapes below come from the naive recursions, not from the verifier:
// an altered size must verify exactly when its shape is the original one.

/// For each PATH hash, leaf first: true when it is the right sibling.
std::vector<bool> path_shape(std::int64_t m, std::int64_t b, std::int64_t e) {
    if (e - b == 1) return {};
    const auto k = k_of(e - b);
    auto s = m < k ? path_shape(m, b, b + k) : path_shape(m - k, b + k, e);
    s.push_back(m < k);
    return s;
}

/// For each PROOF hash, deepest first: 0 the old tree's whole subtree (left out of the proof),
/// 1 a subtree hash that starts both roots, 2 a right subtree of the new tree only, 3 a left
/// subtree of both.
std::vector<int> proof_shape(std::int64_t m, std::int64_t b, std::int64_t e, bool whole) {
    if (m == e - b) return {whole ? 0 : 1};
    const auto k = k_of(e - b);
    auto s = m <= k ? proof_shape(m, b, b + k, whole) : proof_shape(m - k, b + k, e, false);
    s.push_back(m <= k ? 2 : 3);
    return s;
}

bool same_inclusion_shape(std::int64_t i, std::int64_t n, std::int64_t j, std::int64_t m) {
    return j >= 0 && j < m && path_shape(j, 0, m) == path_shape(i, 0, n);
}

bool same_consistency_shape(std::int64_t m, std::int64_t n, std::int64_t a, std::int64_t b) {
    if (a <= 0 || a > b) return false;
    if (a == b || m == n) return a == b && m == n;
    return proof_shape(a, 0, b, true) == proof_shape(m, 0, n, true);
}

/// Every bit, or one bit that moves with `seed`.
std::vector<int> bits(bool every_bit, std::int64_t seed) {
    if (!every_bit) return {static_cast<int>(seed % 256)};
    std::vector<int> all(256);
    for (int i = 0; i < 256; ++i) all[static_cast<std::size_t>(i)] = i;
    return all;
}

void require_inclusion_corruptions_fail(std::int64_t index, std::int64_t n, const hash& leaf,
                                        const std::vector<hash>& proof, const hash& root, bool every_bit) {
    INFO("inclusion of " << index << " in " << n);
    const std::int64_t seed = index * 7 + n;
    for (std::size_t i = 0; i < proof.size(); ++i)
        for (const int bit : bits(every_bit, seed + 13 * static_cast<std::int64_t>(i))) {
            auto bad = proof;
            bad[i] = flip(bad[i], bit);
            REQUIRE_FALSE(merkle::verify_inclusion(index, n, leaf, bad, root));
        }
    for (const int bit : bits(every_bit, seed)) {
        REQUIRE_FALSE(merkle::verify_inclusion(index, n, flip(leaf, bit), proof, root));
        REQUIRE_FALSE(merkle::verify_inclusion(index, n, leaf, proof, flip(root, bit)));
    }
    if (n > 1) REQUIRE_FALSE(merkle::verify_inclusion(index, n, root, proof, leaf));   // (size 1: root == leaf)
    for (const std::int64_t i : {index - 1, index + 1, index ^ 1, index ^ 2, index + n}) {
        if (i == index) continue;
        INFO("as index " << i);
        REQUIRE(merkle::verify_inclusion(i, n, leaf, proof, root) == same_inclusion_shape(index, n, i, n));
        REQUIRE_FALSE(same_inclusion_shape(index, n, i, n));   // another leaf never has the same path
    }
    for (const std::int64_t m : {n - 1, n + 1, n * 2, n / 2}) {
        if (m == n) continue;
        INFO("as size " << m);
        REQUIRE(merkle::verify_inclusion(index, m, leaf, proof, root) == same_inclusion_shape(index, n, index, m));
    }
    // A hash added at either end, or one removed at either end.
    auto longer = proof;
    longer.push_back(root);
    REQUIRE_FALSE(merkle::verify_inclusion(index, n, leaf, longer, root));
    longer = proof;
    longer.insert(longer.begin(), leaf);
    REQUIRE_FALSE(merkle::verify_inclusion(index, n, leaf, longer, root));
    if (!proof.empty()) {
        auto shorter = proof;
        shorter.pop_back();
        REQUIRE_FALSE(merkle::verify_inclusion(index, n, leaf, shorter, root));
        shorter = proof;
        shorter.erase(shorter.begin());
        REQUIRE_FALSE(merkle::verify_inclusion(index, n, leaf, shorter, root));
    }
}

void require_consistency_corruptions_fail(std::int64_t m, std::int64_t n, const hash& old_root, const hash& new_root,
                                          const std::vector<hash>& proof, bool every_bit) {
    INFO("consistency of " << m << " and " << n);
    const std::int64_t seed = m * 7 + n;
    for (std::size_t i = 0; i < proof.size(); ++i)
        for (const int bit : bits(every_bit, seed + 13 * static_cast<std::int64_t>(i))) {
            auto bad = proof;
            bad[i] = flip(bad[i], bit);
            REQUIRE_FALSE(merkle::verify_consistency(m, n, old_root, new_root, bad));
        }
    for (const int bit : bits(every_bit, seed)) {
        REQUIRE_FALSE(merkle::verify_consistency(m, n, flip(old_root, bit), new_root, proof));
        REQUIRE_FALSE(merkle::verify_consistency(m, n, old_root, flip(new_root, bit), proof));
    }
    if (m != n) REQUIRE_FALSE(merkle::verify_consistency(m, n, new_root, old_root, proof));
    for (const std::int64_t a : {m - 1, m + 1, m ^ 1, m ^ 2}) {
        if (a == m) continue;
        INFO("as old size " << a);
        REQUIRE(merkle::verify_consistency(a, n, old_root, new_root, proof) == same_consistency_shape(m, n, a, n));
    }
    for (const std::int64_t b : {n - 1, n + 1, n * 2, n / 2}) {
        if (b == n) continue;
        INFO("as new size " << b);
        REQUIRE(merkle::verify_consistency(m, b, old_root, new_root, proof) == same_consistency_shape(m, n, m, b));
    }
    auto longer = proof;
    longer.push_back(new_root);
    REQUIRE_FALSE(merkle::verify_consistency(m, n, old_root, new_root, longer));
    longer = proof;
    longer.insert(longer.begin(), old_root);
    REQUIRE_FALSE(merkle::verify_consistency(m, n, old_root, new_root, longer));
    if (!proof.empty()) {
        auto shorter = proof;
        shorter.pop_back();
        REQUIRE_FALSE(merkle::verify_consistency(m, n, old_root, new_root, shorter));
        shorter = proof;
        shorter.erase(shorter.begin());
        REQUIRE_FALSE(merkle::verify_consistency(m, n, old_root, new_root, shorter));
    }
}

} // namespace

// =============================================================================================
// Hashing and encodings

TEST_CASE("merkle: leaf and node hashes carry RFC 6962's 0x00 and 0x01 prefixes", "[merkle]") {
    // The values of the RFC 6962 hasher tests (echo -n | sha256sum; 00; 00 || "L123456").
    CHECK(merkle::to_hex(merkle::empty_root()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(merkle::to_hex(merkle::leaf_hash("")) == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    CHECK(merkle::to_hex(merkle::leaf_hash("L123456")) ==
          "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56");
    // node_hash is SHA-256(0x01 || l || r): a leaf over the same 64 bytes differs, and order matters.
    const hash a = merkle::leaf_hash("a");
    const hash b = merkle::leaf_hash("b");
    std::string concat(reinterpret_cast<const char*>(a.data()), 32);
    concat.append(reinterpret_cast<const char*>(b.data()), 32);
    CHECK(merkle::node_hash(a, b) != merkle::leaf_hash(concat));
    CHECK(merkle::node_hash(a, b) != merkle::node_hash(b, a));
    // Two leaves: the reference root of size 2 from its leaf hashes.
    const auto leaves = vector_leaf_hashes();
    CHECK(merkle::to_hex(merkle::node_hash(leaves[0], leaves[1])) == vector_roots[1]);
}

TEST_CASE("merkle: an event's leaf is the leaf hash of its hash's 32 raw bytes", "[merkle]") {
    const std::string hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF";
    CHECK(merkle::event_leaf(hex) == merkle::leaf_hash(unhex(hex)));
    CHECK_THROWS_AS(merkle::event_leaf(hex.substr(1)), std::invalid_argument);
    CHECK_THROWS_AS(merkle::event_leaf(hex + "0"), std::invalid_argument);
    CHECK_THROWS_AS(merkle::event_leaf("zz" + hex.substr(2)), std::invalid_argument);
    CHECK_THROWS_AS(merkle::event_leaf(""), std::invalid_argument);
}

TEST_CASE("merkle: hex is 64 digits of either case and writes lower case", "[merkle]") {
    const hash h = merkle::leaf_hash("x");
    const auto hex = merkle::to_hex(h);
    CHECK(hex.size() == 64);
    CHECK(hex.find_first_not_of("0123456789abcdef") == std::string::npos);
    CHECK(merkle::from_hex(hex) == h);
    std::string upper = hex;
    std::transform(upper.begin(), upper.end(), upper.begin(), [](char c) { return static_cast<char>(std::toupper(c)); });
    CHECK(merkle::from_hex(upper) == h);
    for (const auto& bad : std::vector<std::string>{hex.substr(1), hex + "0", " " + hex.substr(1), hex.substr(0, 63) + "g", std::string(),
                                  std::string(64, '-'), "0x" + hex.substr(2)})
        CHECK_FALSE(merkle::from_hex(bad).has_value());
}

TEST_CASE("merkle: base64 is RFC 4648 standard with padding, and decoding is strict", "[merkle]") {
    // RFC 4648 section 10 test vectors.
    const std::vector<std::pair<std::string, std::string>> rfc = {
        {"", ""}, {"f", "Zg=="}, {"fo", "Zm8="}, {"foo", "Zm9v"}, {"foob", "Zm9vYg=="}, {"fooba", "Zm9vYmE="}, {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [plain, encoded] : rfc) {
        CHECK(merkle::base64_encode(plain) == encoded);
        CHECK(merkle::base64_decode(encoded) == plain);
    }
    // Bytes that need '+' and '/'.
    CHECK(merkle::base64_encode(std::string("\xfb\xff\xbf", 3)) == "+/+/");
    CHECK(merkle::base64_decode("+/+/") == std::string("\xfb\xff\xbf", 3));
    for (const auto& bad : std::vector<std::string>{"Zg", "Zg=", "Zm8", "Zg===", "Z===", "====", "Zh==", "Zm9=", "Zm 9v", "Zm9v\n", "Zm9v ",
                                  "Zg==Zg==", "Zm-v", "Zm_v", "Zm9v=", "=Zm9", "Z=g="})
        CHECK_FALSE(merkle::base64_decode(bad).has_value());

    const hash h = merkle::leaf_hash("root");
    const auto b64 = merkle::to_base64(h);
    CHECK(b64.size() == 44);
    CHECK(b64.back() == '=');
    CHECK(merkle::from_base64(b64) == h);
    CHECK_FALSE(merkle::from_base64(merkle::base64_encode(std::string(31, 'a'))).has_value());
    CHECK_FALSE(merkle::from_base64(merkle::base64_encode(std::string(33, 'a'))).has_value());
    CHECK_FALSE(merkle::from_base64(b64.substr(0, 43) + "A").has_value());
    CHECK_FALSE(merkle::from_base64(b64.substr(0, 43)).has_value());
    // The last data character of 32 bytes carries 2 unused bits: only the spelling with them zero
    // is accepted, so that a root has one text.
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const auto v = alphabet.find(b64[42]);
    REQUIRE(v % 4 == 0);
    for (std::size_t low = 1; low < 4; ++low) {
        std::string other = b64;
        other[42] = alphabet[v + low];
        CHECK_FALSE(merkle::from_base64(other).has_value());
    }
}

// =============================================================================================
// RFC 6962 test vectors

TEST_CASE("merkle: the reference tree's roots for sizes 1 to 8 match the RFC 6962 test data", "[merkle]") {
    const auto leaves = vector_leaf_hashes();
    const naive ref{leaves, {}};
    const tile_map tiles = tiles_of(leaves);
    tree_builder b;
    for (std::size_t n = 1; n <= leaves.size(); ++n) {
        b.append(leaves[n - 1]);
        const auto n64 = static_cast<std::int64_t>(n);
        CHECK(merkle::to_hex(b.root()) == vector_roots[n - 1]);
        CHECK(merkle::to_hex(tree_reader(reader_of(tiles, n64)).root(n64)) == vector_roots[n - 1]);
        CHECK(merkle::to_hex(ref.mth(0, n64)) == vector_roots[n - 1]);
    }
    CHECK(tree_reader(reader_of(tiles, 0)).root(0) == merkle::empty_root());
}

TEST_CASE("merkle: inclusion proofs match the RFC 6962 test data and verify", "[merkle]") {
    const auto leaves = vector_leaf_hashes();
    const tile_map tiles = tiles_of(leaves);
    for (const auto& v : inclusion_vectors) {
        INFO("leaf " << v.a << " of " << v.n);
        const auto expected = hashes_of(v.hashes);
        CHECK(tree_reader(reader_of(tiles, v.n)).inclusion_proof(v.a, v.n) == expected);
        const hash root = H(vector_roots[static_cast<std::size_t>(v.n - 1)]);
        const hash leaf = leaves[static_cast<std::size_t>(v.a)];
        CHECK(merkle::verify_inclusion(v.a, v.n, leaf, expected, root));
        require_inclusion_corruptions_fail(v.a, v.n, leaf, expected, root, true);
    }
}

TEST_CASE("merkle: consistency proofs match the RFC 6962 test data and verify", "[merkle]") {
    const auto leaves = vector_leaf_hashes();
    const tile_map tiles = tiles_of(leaves);
    for (const auto& v : consistency_vectors) {
        INFO("from " << v.a << " to " << v.n);
        const auto expected = hashes_of(v.hashes);
        CHECK(tree_reader(reader_of(tiles, v.n)).consistency_proof(v.a, v.n) == expected);
        const hash r1 = H(vector_roots[static_cast<std::size_t>(v.a - 1)]);
        const hash r2 = H(vector_roots[static_cast<std::size_t>(v.n - 1)]);
        CHECK(merkle::verify_consistency(v.a, v.n, r1, r2, expected));
        if (v.a != v.n) require_consistency_corruptions_fail(v.a, v.n, r1, r2, expected, true);
    }
}

TEST_CASE("merkle: proofs are made of the subtrees RFC 9162 names", "[merkle]") {
    // The node lists of transparency-dev/merkle's proof tests (tree of RFC 6962 section 2.1.3),
    // written as leaf ranges: a node at level l, index i is [i * 2^l, (i + 1) * 2^l), and a
    // "rehash" is the range of the missing parent.
    using ranges = std::vector<std::pair<std::int64_t, std::int64_t>>;
    const auto leaves = leaves_up_to(100);
    const naive ref{leaves, {}};
    const tile_map tiles = tiles_of(leaves);
    const auto expect = [&](const ranges& rs) {
        std::vector<hash> v;
        for (const auto& [b, e] : rs) v.push_back(ref.mth(b, e));
        return v;
    };
    const tree_reader reader(reader_of(tiles, 100));
    CHECK(reader.inclusion_proof(0, 1).empty());
    CHECK(reader.inclusion_proof(1, 3) == expect({{0, 1}, {2, 3}}));
    CHECK(reader.inclusion_proof(0, 7) == expect({{1, 2}, {2, 4}, {4, 7}}));
    CHECK(reader.inclusion_proof(4, 7) == expect({{5, 6}, {6, 7}, {0, 4}}));
    CHECK(reader.inclusion_proof(6, 7) == expect({{4, 6}, {0, 4}}));
    CHECK(reader.inclusion_proof(3, 5) == expect({{2, 3}, {0, 2}, {4, 5}}));
    CHECK(reader.inclusion_proof(10, 15) == expect({{11, 12}, {8, 10}, {12, 15}, {0, 8}}));
    CHECK(reader.inclusion_proof(81, 95) == expect({{80, 81}, {82, 84}, {84, 88}, {88, 95}, {64, 80}, {0, 64}}));
    CHECK(reader.consistency_proof(1, 2) == expect({{1, 2}}));
    CHECK(reader.consistency_proof(1, 6) == expect({{1, 2}, {2, 4}, {4, 6}}));
    CHECK(reader.consistency_proof(2, 8) == expect({{2, 4}, {4, 8}}));
    CHECK(reader.consistency_proof(3, 7) == expect({{2, 3}, {3, 4}, {0, 2}, {4, 7}}));
    CHECK(reader.consistency_proof(4, 7) == expect({{4, 7}}));
    CHECK(reader.consistency_proof(5, 7) == expect({{4, 5}, {5, 6}, {6, 7}, {0, 4}}));
    CHECK(reader.consistency_proof(6, 7) == expect({{4, 6}, {6, 7}, {0, 4}}));
    CHECK(reader.consistency_proof(7, 8) == expect({{6, 7}, {7, 8}, {4, 6}, {0, 4}}));
    CHECK(reader.consistency_proof(24, 31) == expect({{16, 24}, {24, 31}, {0, 16}}));
    CHECK(reader.consistency_proof(81, 95) ==
          expect({{80, 81}, {81, 82}, {82, 84}, {84, 88}, {88, 95}, {64, 80}, {0, 64}}));
    for (std::int64_t n = 1; n <= 8; ++n) CHECK(reader.consistency_proof(n, n).empty());
}

// =============================================================================================
// Exhaustive small trees

TEST_CASE("merkle: every inclusion proof up to size 300 is RFC 9162's PATH, verifies, and fails when corrupted",
          "[merkle]") {
    constexpr std::int64_t max = 300;
    const auto leaves = leaves_up_to(max);
    const naive ref{leaves, {}};
    const tile_map tiles = tiles_of(leaves);
    for (std::int64_t n = 1; n <= max; ++n) {
        const hash root = ref.mth(0, n);
        const tree_reader reader(reader_of(tiles, n));
        REQUIRE(reader.root(n) == root);
        for (std::int64_t i = 0; i < n; ++i) {
            const auto proof = reader.inclusion_proof(i, n);
            REQUIRE(proof == ref.path(i, 0, n));
            const hash& leaf = leaves[static_cast<std::size_t>(i)];
            REQUIRE(merkle::verify_inclusion(i, n, leaf, proof, root));
            // Corruptions: every bit for a spread of cases, one moving bit per hash for the rest;
            // beyond size 100 for every fifth leaf and the edges (to keep the run short).
            const bool every_bit = n <= 9 || (n % 97 == 0 && i % 31 == 0);
            if (n <= 100 || i % 5 == n % 5 || i == 0 || i == n - 1)
                require_inclusion_corruptions_fail(i, n, leaf, proof, root, every_bit);
        }
    }
}

TEST_CASE("merkle: every consistency proof up to size 300 is RFC 9162's PROOF, verifies, and fails when corrupted",
          "[merkle]") {
    constexpr std::int64_t max = 300;
    const auto leaves = leaves_up_to(max);
    const naive ref{leaves, {}};
    const tile_map tiles = tiles_of(leaves);
    for (std::int64_t n = 1; n <= max; ++n) {
        const tree_reader reader(reader_of(tiles, n));
        const hash new_root = ref.mth(0, n);
        for (std::int64_t m = 1; m <= n; ++m) {
            const auto proof = reader.consistency_proof(m, n);
            REQUIRE(proof == ref.subproof(m, 0, n, true));
            const hash old_root = ref.mth(0, m);
            REQUIRE(merkle::verify_consistency(m, n, old_root, new_root, proof));
            const bool every_bit = n <= 9 || (n % 97 == 0 && m % 31 == 0);
            if (n <= 100 || m % 5 == n % 5 || m == 1 || m >= n - 1)
                require_consistency_corruptions_fail(m, n, old_root, new_root, proof, every_bit);
        }
    }
}

TEST_CASE("merkle: verification refuses impossible parameters", "[merkle]") {
    const auto leaves = leaves_up_to(8);
    const naive ref{leaves, {}};
    const hash some = merkle::leaf_hash("some");
    const hash empty = merkle::empty_root();
    // Inclusion: index >= n, n = 0, negative values; the one-leaf tree needs the empty proof.
    CHECK(merkle::verify_inclusion(0, 1, leaves[0], {}, leaves[0]));
    CHECK_FALSE(merkle::verify_inclusion(0, 1, leaves[0], {some}, leaves[0]));
    CHECK_FALSE(merkle::verify_inclusion(1, 1, leaves[0], {}, leaves[0]));
    CHECK_FALSE(merkle::verify_inclusion(0, 0, leaves[0], {}, leaves[0]));
    CHECK_FALSE(merkle::verify_inclusion(0, 0, empty, {}, empty));
    CHECK_FALSE(merkle::verify_inclusion(-1, 1, leaves[0], {}, leaves[0]));
    CHECK_FALSE(merkle::verify_inclusion(0, -1, leaves[0], {}, leaves[0]));
    CHECK_FALSE(merkle::verify_inclusion(std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::max(),
                                         leaves[0], {some}, leaves[0]));
    // Consistency: m = 0 is refused even with equal roots; m > n; m = n needs equal roots and no proof.
    CHECK_FALSE(merkle::verify_consistency(0, 0, empty, empty, {}));
    CHECK_FALSE(merkle::verify_consistency(0, 5, empty, ref.mth(0, 5), {}));
    CHECK_FALSE(merkle::verify_consistency(0, 5, empty, ref.mth(0, 5), {ref.mth(0, 5)}));
    CHECK_FALSE(merkle::verify_consistency(3, 2, ref.mth(0, 3), ref.mth(0, 2), {}));
    CHECK_FALSE(merkle::verify_consistency(-1, 2, ref.mth(0, 1), ref.mth(0, 2), {leaves[1]}));
    CHECK(merkle::verify_consistency(5, 5, ref.mth(0, 5), ref.mth(0, 5), {}));
    CHECK_FALSE(merkle::verify_consistency(5, 5, ref.mth(0, 5), ref.mth(0, 4), {}));
    CHECK_FALSE(merkle::verify_consistency(5, 5, ref.mth(0, 5), ref.mth(0, 5), {some}));
    CHECK_FALSE(merkle::verify_consistency(1, 2, ref.mth(0, 1), ref.mth(0, 2), {}));
    CHECK(merkle::verify_consistency(1, 2, ref.mth(0, 1), ref.mth(0, 2), {leaves[1]}));
    // Huge sizes with a short proof end without looping.
    CHECK_FALSE(merkle::verify_consistency(std::numeric_limits<std::int64_t>::max() - 1,
                                           std::numeric_limits<std::int64_t>::max(), some, some, {some, some}));
}

TEST_CASE("merkle: the reader refuses what is not in the tree", "[merkle]") {
    const auto leaves = leaves_up_to(10);
    const tile_map tiles = tiles_of(leaves);
    const tree_reader reader(reader_of(tiles, 10));
    CHECK_THROWS_AS(reader.inclusion_proof(10, 10), std::out_of_range);
    CHECK_THROWS_AS(reader.inclusion_proof(-1, 10), std::out_of_range);
    CHECK_THROWS_AS(reader.inclusion_proof(0, 0), std::out_of_range);
    CHECK_THROWS_AS(reader.consistency_proof(0, 10), std::out_of_range);
    CHECK_THROWS_AS(reader.consistency_proof(5, 4), std::out_of_range);
    CHECK_THROWS_AS(reader.root(-1), std::out_of_range);
    CHECK_THROWS_AS(reader.range(3, 3), std::out_of_range);
    CHECK_THROWS_AS(reader.subtree(-1, 0), std::out_of_range);
    CHECK_THROWS_AS(reader.subtree(63, 0), std::out_of_range);
    CHECK_THROWS_AS(reader.subtree(40, std::int64_t{1} << 30), std::out_of_range);
    // A store that cannot answer: its exception comes through.
    const tree_reader broken([](int, std::int64_t) -> hash { throw std::runtime_error("tile missing"); });
    CHECK_THROWS_AS(broken.root(5), std::runtime_error);
    // Unaligned ranges (not used by the proofs) still give MTH.
    const naive ref{leaves, {}};
    for (std::int64_t b = 0; b < 10; ++b)
        for (std::int64_t e = b + 1; e <= 10; ++e) CHECK(reader.range(b, e) == ref.mth(b, e));
}

// =============================================================================================
// tree_builder over tile boundaries

namespace {

// An independent right-edge fold (a "compact range", as transparency logs keep in memory): one
// complete subtree hash per set bit of the size, merged as leaves arrive.
struct edge_fold {
    std::vector<hash> stack;
    std::int64_t size = 0;
    void append(hash h) {
        for (std::int64_t s = size; (s & 1) != 0; s >>= 1) {
            h = merkle::node_hash(stack.back(), h);
            stack.pop_back();
        }
        stack.push_back(h);
        ++size;
    }
    [[nodiscard]] hash root() const {
        if (stack.empty()) return merkle::empty_root();
        hash acc = stack.back();
        for (auto it = stack.rbegin() + 1; it != stack.rend(); ++it) acc = merkle::node_hash(*it, acc);
        return acc;
    }
};

std::int64_t count_at(std::int64_t size, int level) {
    for (int l = 0; l < level; ++l) size /= merkle::tile_width;
    return size;
}

/// The last tile of every level of a tree of `size` leaves, from a tile store.
std::vector<tree_builder::tile> last_tiles(const tile_map& tiles, std::int64_t size) {
    std::vector<tree_builder::tile> out;
    for (int level = 0; count_at(size, level) > 0; ++level) {
        const auto count = count_at(size, level);
        const auto index = (count - 1) / merkle::tile_width;
        const auto& hashes = tiles.at({level, index});
        const auto width = static_cast<std::size_t>(count - index * merkle::tile_width);
        REQUIRE(hashes.size() >= width);   // the store may already hold a later, wider version
        out.push_back({level, index, std::vector<hash>(hashes.begin(), hashes.begin() + static_cast<std::ptrdiff_t>(width))});
    }
    return out;
}

bool sampled(std::int64_t n) {
    const auto near = [n](std::int64_t x, std::int64_t d) { return n >= x - d && n <= x + d; };
    // Every small size, both sides of every tile boundary, the second level's first filling, and
    // a spread of the rest.
    return n <= 1100 || n % 256 <= 1 || n % 256 == 255 || near(65536, 300) || near(65536 + 256 + 1, 3) || n % 61 == 0;
}

constexpr std::int64_t big = 70000;

} // namespace

TEST_CASE("merkle: tree_builder's root is MTH for sizes across the tile boundaries up to 70000", "[merkle]") {
    // The fold is checked against the naive MTH first, so that it can stand in for it.
    {
        const auto leaves = leaves_up_to(600);
        const naive ref{leaves, {}};
        edge_fold fold;
        for (std::int64_t n = 1; n <= 600; ++n) {
            fold.append(leaves[static_cast<std::size_t>(n - 1)]);
            REQUIRE(fold.root() == ref.mth(0, n));
        }
    }
    tree_builder b;
    edge_fold fold;
    CHECK(b.root() == merkle::empty_root());
    std::size_t checked = 0;
    for (std::int64_t n = 1; n <= big; ++n) {
        const hash leaf = leaf_of(n - 1);
        b.append(leaf);
        fold.append(leaf);
        REQUIRE(b.size() == n);
        if (sampled(n)) {
            INFO("size " << n);
            REQUIRE(b.root() == fold.root());
            ++checked;
        }
    }
    CHECK(checked > 3000);
}

TEST_CASE("merkle: tree_builder's dirty tiles are exactly the tiles a run of appends changed, whole", "[merkle]") {
    tree_builder b;
    tile_map tiles;
    std::vector<hash> level0;
    std::mt19937_64 rng(14);
    std::int64_t size = 0;
    // Runs of random length, some long enough to fill several tiles between two flushes.
    while (size < big) {
        const std::int64_t run = std::min<std::int64_t>(big - size, std::uniform_int_distribution<std::int64_t>(1, 700)(rng));
        for (std::int64_t i = 0; i < run; ++i) {
            level0.push_back(leaf_of(size + i));
            b.append(level0.back());
        }
        const auto dirty = b.dirty();
        // Expected: at each level, the tiles holding the hashes added by this run.
        std::set<std::pair<int, std::int64_t>> expected;
        for (int level = 0; count_at(size + run, level) > 0; ++level) {
            const auto before = count_at(size, level);
            const auto after = count_at(size + run, level);
            if (after > before)
                for (auto t = before / merkle::tile_width; t <= (after - 1) / merkle::tile_width; ++t) expected.insert({level, t});
        }
        std::set<std::pair<int, std::int64_t>> got;
        for (const auto& t : dirty) {
            got.insert({t.level, t.index});
            const auto count = count_at(size + run, t.level);
            REQUIRE(static_cast<std::int64_t>(t.hashes.size()) ==
                    std::min<std::int64_t>(merkle::tile_width, count - t.index * merkle::tile_width));
        }
        REQUIRE(got == expected);
        REQUIRE(got.size() == dirty.size());
        size += run;
        store_dirty(b, tiles);
        REQUIRE(b.dirty().empty());
    }
    // The stored tiles hold the right hashes: level 0 the leaves, level L + 1 the MTH of each full
    // tile of level L (checked against the naive MTH for a few).
    for (std::size_t i = 0; i < level0.size(); ++i)
        REQUIRE(tiles.at({0, static_cast<std::int64_t>(i / 256)}).at(i % 256) == level0[i]);
    const naive ref{level0, {}};
    for (const std::int64_t j : {0, 1, 17, 272})
        CHECK(tiles.at({1, j / 256}).at(static_cast<std::size_t>(j % 256)) == ref.mth(j * 256, (j + 1) * 256));
    CHECK(tiles.at({2, 0}).at(0) == ref.mth(0, 65536));
    CHECK(tiles.size() == 274 + 2 + 1);   // 70000 leaves: 274 tiles of level 0, 2 of level 1, 1 of level 2
}

TEST_CASE("merkle: resuming from the last tiles continues the same tree", "[merkle]") {
    // One run to 70000 storing tiles at random points, as the store would.
    tree_builder whole;
    tile_map tiles;
    edge_fold fold;
    std::map<std::int64_t, hash> roots;
    const std::set<std::int64_t> resume_at = {0,     1,     2,     255,         256,             257,
                                              511,   512,   513,   4097,        65535,           65536,
                                              65537, 65792, 65793, 65536 + 515, big - 1};
    roots[0] = merkle::empty_root();
    for (std::int64_t n = 1; n <= big; ++n) {
        whole.append(leaf_of(n - 1));
        fold.append(leaf_of(n - 1));
        if (sampled(n) || resume_at.count(n) != 0) roots[n] = fold.root();
        if (n % 97 == 0 || n == big) store_dirty(whole, tiles);
    }
    for (const std::int64_t at : resume_at) {
        INFO("resume at " << at);
        tree_builder b;
        b.resume(at, last_tiles(tiles, at));
        CHECK(b.size() == at);
        CHECK(b.dirty().empty());
        REQUIRE(b.root() == roots.at(at));
        // Appending continues the same tree, and the tiles it writes are the ones already stored.
        const std::int64_t end = std::min<std::int64_t>(big, at + 600);
        for (std::int64_t n = at + 1; n <= end; ++n) {
            b.append(leaf_of(n - 1));
            if (roots.count(n)) REQUIRE(b.root() == roots.at(n));
        }
        for (const auto& t : b.dirty()) {
            const auto& stored = tiles.at({t.level, t.index});
            REQUIRE(t.hashes.size() <= stored.size());
            REQUIRE(std::equal(t.hashes.begin(), t.hashes.end(), stored.begin()));
        }
    }
}

TEST_CASE("merkle: resume refuses tiles that do not fit the size", "[merkle]") {
    tile_map tiles = tiles_of(leaves_up_to(66000));
    const std::int64_t size = 65536 + 300;
    const auto good = last_tiles(tiles, size);
    REQUIRE(good.size() == 3);
    {
        tree_builder b;
        auto shuffled = good;   // any order
        std::reverse(shuffled.begin(), shuffled.end());
        CHECK_NOTHROW(b.resume(size, shuffled));
    }
    const auto refused = [&](std::int64_t s, std::vector<tree_builder::tile> ts) {
        tree_builder b;
        b.append(leaf_of(0));
        CHECK_THROWS_AS(b.resume(s, std::move(ts)), std::invalid_argument);
        CHECK(b.size() == 1);   // unchanged
    };
    refused(-1, {});
    refused(size, {});
    refused(size + 1, good);                          // level 0 too narrow
    refused(size - 1, good);                          // too wide
    refused(0, good);                                 // tiles for an empty tree
    refused(size, {good[0], good[1]});                // a level missing
    refused(size, {good[0], good[1], good[2], good[2]});   // a level twice
    auto extra = good;
    extra.push_back({3, 0, {merkle::leaf_hash("x")}});
    refused(size, extra);                             // a level too many
    auto wrong_index = good;
    wrong_index[0].index -= 1;
    refused(size, wrong_index);
    auto wrong_level = good;
    wrong_level[1].level = 0;
    refused(size, wrong_level);
    // A full tile whose hash is not the last one of the level above.
    const std::int64_t full = 512;
    auto bad_full = last_tiles(tiles, full);
    REQUIRE(bad_full[0].hashes.size() == 256);
    {
        tree_builder b;
        CHECK_NOTHROW(b.resume(full, bad_full));
    }
    bad_full[0].hashes[3] = merkle::leaf_hash("forged");
    refused(full, bad_full);
}

TEST_CASE("merkle: the tiles tree_builder emitted answer roots and proofs for every older size", "[merkle]") {
    tree_builder b;
    tile_map tiles;
    edge_fold fold;
    std::map<std::int64_t, hash> roots;
    for (std::int64_t n = 1; n <= big; ++n) {
        b.append(leaf_of(n - 1));
        fold.append(leaf_of(n - 1));
        if ((sampled(n) && (n <= 600 || n % 5 == 0 || n > 65536 - 4)) || n == big) roots[n] = fold.root();
        if (n % 1000 == 0) store_dirty(b, tiles);
    }
    store_dirty(b, tiles);
    const hash latest = roots.at(big);
    const tree_reader now(reader_of(tiles, big));
    for (const auto& [m, root] : roots) {
        INFO("size " << m);
        // Each size is read only within itself (reader_of fails the test otherwise).
        const tree_reader then(reader_of(tiles, m));
        REQUIRE(then.root(m) == root);
        for (const std::int64_t i : {std::int64_t{0}, m / 2, m - 1}) {
            const auto proof = then.inclusion_proof(i, m);
            REQUIRE(merkle::verify_inclusion(i, m, leaf_of(i), proof, root));
        }
        REQUIRE(merkle::verify_consistency(m, big, root, latest, now.consistency_proof(m, big)));
    }
}

TEST_CASE("merkle: a proof reads at most a few tiles per level", "[merkle]") {
    constexpr std::int64_t n = 70000;
    const auto tiles = tiles_of(leaves_up_to(n));
    std::mt19937_64 rng(9162);
    for (int trial = 0; trial < 40; ++trial) {
        const auto m = std::uniform_int_distribution<std::int64_t>(1, n)(rng);
        const auto i = std::uniform_int_distribution<std::int64_t>(0, m - 1)(rng);
        std::int64_t reads = 0;
        std::set<std::pair<int, std::int64_t>> read;
        const tree_reader reader(reader_of(tiles, n, &reads, &read));
        (void)reader.inclusion_proof(i, m);
        // The leaf's tile and the right edge's, per level (3 levels for 70000 leaves).
        CHECK(read.size() <= 2 * 3);
        CHECK(reads <= 2 * 3 * 256);
        read.clear();
        reads = 0;
        (void)reader.consistency_proof(m, n);
        CHECK(read.size() <= 3 * 3);
        CHECK(reads <= 3 * 3 * 256);
    }
}
