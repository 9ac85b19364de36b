// libFuzzer harness: the Merkle proofs and signed checkpoints of ledger/store/merkle.h and
// ledger/store/checkpoint.h, the parts that read what a client, a witness or an auditor sends.
//
// Input: the first byte picks a mode (its value modulo 3), the rest is the mode's data.
//
//  0. Text. checkpoint::parse, parse_signature_line on the whole text and on each line, and
//     merkle::from_hex / from_base64 / base64_decode on each line. Properties: nothing throws; a
//     parsed note writes back exactly the text it was read from, and parse(n.text()) == n; a
//     parsed signature line formats back to its line; decoders accept only the canonical
//     spelling (encoding what they decoded gives the input back; hex up to case). verify and
//     verify_cosignature run on every parsed note. The first line, used as an origin, either is
//     refused by sign() or gives a note that parses back equal and verifies.
//  1. Raw verification. index, n (8 bytes each, big-endian, as int64), a leaf and a root (32 bytes
//     each), then 32-byte proof hashes: verify_inclusion(index, n, ...) and verify_consistency(
//     index, n, leaf, root, ...) never crash or hang, and accept nothing impossible (index >= n,
//     m > n, m <= 0; a proof longer than 64 hashes).
//  2. Mutated proofs over a real tree of 300 leaves built here (tree_builder, its tiles, and
//     tree_reader over them). Two bytes choose n, index or m; the rest edits the real proof
//     (flip a bit, drop, duplicate, insert a known hash, swap). The verification succeeds exactly
//     when the edited proof equals the real one. Then index and n taken raw from the input:
//     tree_reader gives a proof that verifies when 0 <= index < n <= 300 (0 < m <= n <= 300), throws
//     out_of_range when the request is impossible, and never reads a stored hash beyond the size it
//     works for (from a size to itself the consistency proof is empty and reads nothing).
#include "ledger/store/checkpoint.h"
#include "ledger/store/merkle.h"
#include "tests/fuzz/fuzz_support.h"

#include <algorithm>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

using namespace mqledger;
using merkle::hash;
using mqledger::fuzz::printable;

namespace {

constexpr std::int64_t tree_size = 300;

struct beyond_tree {};   // thrown by the store when asked outside the size of the computation

struct small_tree {
    std::vector<hash> leaves;
    std::map<std::pair<int, std::int64_t>, std::vector<hash>> tiles;
    std::vector<hash> roots;   // roots[n] for n in 0..tree_size

    small_tree() {
        merkle::tree_builder b;
        roots.push_back(b.root());
        for (std::int64_t i = 0; i < tree_size; ++i) {
            leaves.push_back(merkle::leaf_hash("fuzz leaf " + std::to_string(i)));
            b.append(leaves.back());
            roots.push_back(b.root());
        }
        for (auto& t : b.dirty()) tiles[{t.level, t.index}] = std::move(t.hashes);
    }

    /// A reader for the tree of size n: it refuses reads beyond n (and beyond the tree).
    [[nodiscard]] merkle::tree_reader reader(std::int64_t n) const {
        return merkle::tree_reader([this, n](int level, std::int64_t index) {
            std::int64_t count = std::min(n, tree_size);
            for (int l = 0; l < level; ++l) count /= merkle::tile_width;
            if (level < 0 || index < 0 || index >= count) throw beyond_tree{};
            return tiles.at({level, index / merkle::tile_width}).at(static_cast<std::size_t>(index % merkle::tile_width));
        });
    }
};

const small_tree& tree() {
    static const small_tree t;
    return t;
}

const checkpoint::private_key& log_key() {
    static const auto k = checkpoint::private_key::generate();
    return k;
}

std::string hex_of(const std::vector<hash>& proof) {
    std::string s;
    for (const auto& h : proof) s += merkle::to_hex(h) + " ";
    return s;
}

std::int64_t int64_at(std::string_view data, std::size_t at) {
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < 8; ++i) v = v << 8 | (at + i < data.size() ? static_cast<unsigned char>(data[at + i]) : 0u);
    return static_cast<std::int64_t>(v);
}

hash hash_at(std::string_view data, std::size_t at) {
    hash h{};
    for (std::size_t i = 0; i < h.size() && at + i < data.size(); ++i) h[i] = static_cast<unsigned char>(data[at + i]);
    return h;
}

// ---------------------------------------------------------------------------------------------

void check_decoders(std::string_view s) {
    if (const auto h = merkle::from_hex(s)) {
        std::string lower(s);
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        FUZZ_CHECK(merkle::to_hex(*h) == lower, "from_hex accepted a non-hex spelling: " + printable(s));
    }
    if (const auto h = merkle::from_base64(s))
        FUZZ_CHECK(merkle::to_base64(*h) == s, "from_base64 accepted a non-canonical spelling: " + printable(s));
    if (const auto bytes = merkle::base64_decode(s))
        FUZZ_CHECK(merkle::base64_encode(*bytes) == s, "base64_decode accepted a non-canonical spelling: " + printable(s));
}

void check_signature_line(std::string_view line) {
    const auto s = checkpoint::parse_signature_line(line);
    if (!s) return;
    const auto text = checkpoint::format_signature_line(*s);
    FUZZ_CHECK(text == line || text == std::string(line) + "\n",
               "a signature line formats differently: " + printable(line) + " -> " + printable(text));
    FUZZ_CHECK(checkpoint::parse_signature_line(text) == s, "a formatted signature line parses differently: " + printable(text));
}

void text_mode(std::string_view text) {
    const std::string where = printable(text);
    check_signature_line(text);
    check_decoders(text);
    for (std::size_t at = 0; at <= text.size();) {
        const auto nl = text.find('\n', at);
        const auto line = text.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
        check_signature_line(line);
        check_decoders(line);
        if (nl == std::string_view::npos) break;
        at = nl + 1;
    }

    if (const auto n = checkpoint::parse(text)) {
        const auto again = n->text();
        FUZZ_CHECK(again == text, "parse accepted a text it does not write back: " + where + " -> " + printable(again));
        const auto reparsed = checkpoint::parse(again);
        FUZZ_CHECK(reparsed && *reparsed == *n, "n.text() does not parse back to n: " + where);
        FUZZ_CHECK(!n->origin.empty() && n->size >= 0 && !n->signatures.empty() && n->signatures.size() <= 100,
                   "parse accepted an impossible note: " + where);
        const auto pub = log_key().public_part();
        for (const auto& s : n->signatures) {
            // No key here signed anything fuzzed: nothing can verify (and nothing may crash).
            FUZZ_CHECK(!checkpoint::verify(*n, s.name, pub), "a fuzzed note verified: " + where);
            FUZZ_CHECK(!checkpoint::verify_cosignature(*n, s.name, pub), "a fuzzed cosignature verified: " + where);
        }
    }

    // The first line as an origin: sign() refuses it or makes a note that round-trips.
    const auto origin = text.substr(0, text.find('\n'));
    const auto size = static_cast<std::int64_t>(text.size());
    try {
        const auto signed_note = checkpoint::sign(origin, size, merkle::leaf_hash(text), "fuzz.example/log", log_key());
        const auto parsed = checkpoint::parse(signed_note.text());
        FUZZ_CHECK(parsed && *parsed == signed_note, "a signed note does not parse back: " + printable(origin));
        FUZZ_CHECK(checkpoint::verify(*parsed, "fuzz.example/log", log_key().public_part()),
                   "a signed note does not verify: " + printable(origin));
    } catch (const std::invalid_argument&) {
        FUZZ_CHECK(!checkpoint::parse(std::string(origin) + "\n0\n" + merkle::to_base64(merkle::empty_root()) +
                                      "\n\n\xE2\x80\x94 a AAAAAAA=\n"),
                   "sign refused an origin parse accepts: " + printable(origin));
    }
}

void raw_mode(std::string_view data) {
    const std::int64_t index = int64_at(data, 0);
    const std::int64_t n = int64_at(data, 8);
    const hash leaf = hash_at(data, 16);
    const hash root = hash_at(data, 48);
    std::vector<hash> proof;
    for (std::size_t at = 80; at + 32 <= data.size(); at += 32) proof.push_back(hash_at(data, at));
    const std::string where = std::to_string(index) + " " + std::to_string(n) + " " + hex_of(proof);
    if (merkle::verify_inclusion(index, n, leaf, proof, root))
        FUZZ_CHECK(index >= 0 && index < n && proof.size() <= 64, "an impossible inclusion verified: " + where);
    if (merkle::verify_consistency(index, n, leaf, root, proof))
        FUZZ_CHECK(index > 0 && index <= n && proof.size() <= 128, "an impossible consistency verified: " + where);
}

/// Applies the edits encoded in `ops` (3 bytes each) to `proof`.
std::vector<hash> mutate(std::vector<hash> proof, std::string_view ops, const hash& a, const hash& b) {
    for (std::size_t at = 0; at + 3 <= ops.size(); at += 3) {
        const auto op = static_cast<unsigned char>(ops[at]) % 6;
        const auto x = static_cast<unsigned char>(ops[at + 1]);
        const auto y = static_cast<unsigned char>(ops[at + 2]);
        const std::size_t i = proof.empty() ? 0 : x % proof.size();
        switch (op) {
        case 0:
            if (!proof.empty()) proof[i][y % 32] ^= static_cast<unsigned char>(1u << (x % 8));
            break;
        case 1:
            if (!proof.empty()) proof.erase(proof.begin() + static_cast<std::ptrdiff_t>(i));
            break;
        case 2:
            if (!proof.empty()) proof.insert(proof.begin() + static_cast<std::ptrdiff_t>(i), proof[y % proof.size()]);
            break;
        case 3: {
            const auto& t = tree();
            const hash known = y < 100 ? t.leaves[y % t.leaves.size()] : y < 200 ? t.roots[y % t.roots.size()] : y % 2 ? a : b;
            proof.insert(proof.begin() + static_cast<std::ptrdiff_t>(proof.empty() ? 0 : x % (proof.size() + 1)), known);
            break;
        }
        case 4:
            if (!proof.empty()) std::swap(proof[i], proof[y % proof.size()]);
            break;
        default:
            if (!proof.empty()) proof[i][y % 32] = static_cast<unsigned char>(x);
            break;
        }
    }
    return proof;
}

void mutated_mode(std::string_view data) {
    if (data.size() < 3) return;
    const auto& t = tree();
    const bool inclusion = (static_cast<unsigned char>(data[0]) & 1) == 0;
    const std::int64_t n = 1 + (static_cast<unsigned char>(data[1]) | (static_cast<unsigned char>(data[0]) >> 1) << 8) % tree_size;
    const std::int64_t k = static_cast<unsigned char>(data[2]) % n;   // index, or m - 1
    const auto ops = data.substr(3);
    const auto reader = t.reader(n);
    const hash& root = t.roots[static_cast<std::size_t>(n)];
    if (inclusion) {
        const hash& leaf = t.leaves[static_cast<std::size_t>(k)];
        const auto real = reader.inclusion_proof(k, n);
        FUZZ_CHECK(merkle::verify_inclusion(k, n, leaf, real, root), "a real inclusion proof fails");
        const auto edited = mutate(real, ops, leaf, root);
        FUZZ_CHECK(merkle::verify_inclusion(k, n, leaf, edited, root) == (edited == real),
                   "inclusion of " + std::to_string(k) + " in " + std::to_string(n) + ": proof " + hex_of(edited) +
                       "verifies unlike the real " + hex_of(real));
    } else {
        const std::int64_t m = k + 1;
        const hash& old_root = t.roots[static_cast<std::size_t>(m)];
        const auto real = reader.consistency_proof(m, n);
        FUZZ_CHECK(merkle::verify_consistency(m, n, old_root, root, real), "a real consistency proof fails");
        const auto edited = mutate(real, ops, old_root, root);
        FUZZ_CHECK(merkle::verify_consistency(m, n, old_root, root, edited) == (edited == real),
                   "consistency of " + std::to_string(m) + " and " + std::to_string(n) + ": proof " + hex_of(edited) +
                       "verifies unlike the real " + hex_of(real));
    }

    // Raw parameters for the reader.
    const std::int64_t index = int64_at(data, 3);
    const std::int64_t size = int64_at(data, 11);
    const std::string where = std::to_string(index) + " " + std::to_string(size);
    const bool in_tree = size <= tree_size;
    try {
        const auto proof = t.reader(size).inclusion_proof(index, size);
        FUZZ_CHECK(index >= 0 && index < size && in_tree, "an impossible inclusion proof was made: " + where);
        FUZZ_CHECK(merkle::verify_inclusion(index, size, t.leaves[static_cast<std::size_t>(index)], proof,
                                            t.roots[static_cast<std::size_t>(size)]),
                   "a made inclusion proof fails: " + where);
    } catch (const std::out_of_range&) {
        FUZZ_CHECK(index < 0 || index >= size, "inclusion_proof refused a possible request: " + where);
    } catch (const beyond_tree&) {
        FUZZ_CHECK(!in_tree && index >= 0 && index < size, "inclusion_proof read beyond its size: " + where);
    }
    try {
        const auto proof = t.reader(size).consistency_proof(index, size);
        FUZZ_CHECK(index > 0 && index <= size, "an impossible consistency proof was made: " + where);
        // From a size to itself the proof is empty, whatever the tree holds: nothing is read.
        FUZZ_CHECK(in_tree || (index == size && proof.empty()), "a proof beyond the tree was made: " + where);
        if (in_tree)
            FUZZ_CHECK(merkle::verify_consistency(index, size, t.roots[static_cast<std::size_t>(index)],
                                                  t.roots[static_cast<std::size_t>(size)], proof),
                       "a made consistency proof fails: " + where);
    } catch (const std::out_of_range&) {
        FUZZ_CHECK(index <= 0 || index > size, "consistency_proof refused a possible request: " + where);
    } catch (const beyond_tree&) {
        FUZZ_CHECK(!in_tree && index > 0 && index <= size, "consistency_proof read beyond its size: " + where);
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    if (size == 0) return 0;
    const std::string_view data(reinterpret_cast<const char*>(bytes) + 1, size - 1);
    switch (bytes[0] % 3) {
    case 0: text_mode(data); break;
    case 1: raw_mode(data); break;
    default: mutated_mode(data); break;
    }
    return 0;
}
