// `mqledger proof check-inclusion | check-consistency` (README.md "Merkle proofs
// and checkpoints"): the offline checks a customer or an auditor runs on files they were given,
// with no database and no daemon. Each step prints what it checked; the first that fails says
// why and the exit code is 1 (2: a file cannot be read or is not what it should be).
#include "daemon/cli.h"
#include "daemon/config.h"

#include "ledger/canonical_json.h"
#include "ledger/codec.h"
#include "ledger/store/checkpoint.h"
#include "ledger/store/hash_chain.h"
#include "ledger/store/merkle.h"

#include <boost/json.hpp>

#include <fstream>
#include <iostream>
#include <sstream>

namespace mqledger {
namespace json = boost::json;

namespace {

// A file that cannot be used: exit 2.
struct unusable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw unusable("cannot read " + path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

json::object read_json_object(const std::string& path) {
    boost::system::error_code ec;
    auto v = json::parse(read_file(path), ec);
    if (ec || !v.is_object()) throw unusable(path + " is not a JSON object");
    return std::move(v.as_object());
}

const json::value& member(const json::object& o, std::string_view key, const std::string& path) {
    const auto* v = o.if_contains(key);
    if (!v) throw unusable(path + " has no \"" + std::string(key) + "\"");
    return *v;
}

std::int64_t int_member(const json::object& o, std::string_view key, const std::string& path) {
    const auto& v = member(o, key, path);
    if (!v.is_int64() && !v.is_uint64()) throw unusable(path + ": \"" + std::string(key) + "\" must be an integer");
    if (v.is_uint64() && v.get_uint64() > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        throw unusable(path + ": \"" + std::string(key) + "\" is too large");
    return v.is_int64() ? v.get_int64() : static_cast<std::int64_t>(v.get_uint64());
}

std::string string_member(const json::object& o, std::string_view key, const std::string& path) {
    const auto& v = member(o, key, path);
    if (!v.is_string()) throw unusable(path + ": \"" + std::string(key) + "\" must be a string");
    return std::string(v.get_string());
}

std::vector<merkle::hash> hashes_member(const json::object& o, const std::string& path) {
    const auto& v = member(o, "hashes", path);
    if (!v.is_array()) throw unusable(path + ": \"hashes\" must be a list");
    std::vector<merkle::hash> out;
    for (const auto& h : v.get_array()) {
        const auto parsed = h.is_string() ? merkle::from_hex(h.get_string()) : std::nullopt;
        if (!parsed) throw unusable(path + ": every entry of \"hashes\" must be 64 hex digits");
        out.push_back(*parsed);
    }
    return out;
}

checkpoint::note read_note(const std::string& path) {
    const auto n = checkpoint::parse(read_file(path));
    if (!n) throw unusable(path + " is not a signed checkpoint note");
    return *n;
}

// Step 1 of both checks: the note is signed by the log's key.
bool signed_by_log(const checkpoint::note& n, const config& cfg, const checkpoint::public_key& key,
                   const std::string& label) {
    const std::string name = cfg.key_name.empty() ? n.origin : cfg.key_name;
    if (!checkpoint::verify(n, name, key)) {
        std::cout << label << ": FAILED: no valid signature by the key '" << name << "' (forged or altered)\n";
        return false;
    }
    std::cout << label << ": signature ok (" << n.origin << ", tree size " << n.size << ", root "
              << merkle::to_hex(n.root) << ")\n";
    return true;
}

// The event's hash, recomputed from its fields (the hash chain's pre-image).
std::string recomputed_hash(const json::object& e, const std::string& path) {
    const auto effective = codec::parse_time(string_member(e, "effective_at", path));
    const auto recorded = codec::parse_time(string_member(e, "recorded_at", path));
    if (!effective || !recorded) throw unusable(path + ": effective_at and recorded_at must be RFC 3339 times");
    const auto data = canonical_json(member(e, "data", path));
    const auto metadata = canonical_json(member(e, "metadata", path));
    const auto prev = string_member(e, "prev_hash", path);
    const auto stream = string_member(e, "stream", path);
    const auto type = string_member(e, "type", path);
    return store::event_hash({prev, int_member(e, "position", path), stream, int_member(e, "stream_version", path),
                              type, store::to_us(*effective), store::to_us(*recorded), data, metadata});
}

int check_inclusion(const config& cfg, const checkpoint::public_key& key) {
    const auto& event_path = cfg.proof_files[0];
    const auto& proof_path = cfg.proof_files[1];
    const auto event = read_json_object(event_path);
    auto proof = read_json_object(proof_path);
    if (const auto* inner = proof.if_contains("proof"); inner && inner->is_object()) proof = inner->get_object();

    // 1. The event is what its hash says.
    const auto claimed = string_member(event, "hash", event_path);
    const auto position = int_member(event, "position", event_path);
    if (recomputed_hash(event, event_path) != claimed) {
        std::cout << "event:      FAILED: its fields do not hash to its hash " << claimed << " (altered)\n";
        return 1;
    }
    std::cout << "event:      position " << position << ", fields hash to " << claimed << "\n";

    // 2. The checkpoint is signed by the log.
    const auto note = read_note(cfg.proof_files[2]);
    if (!signed_by_log(note, cfg, key, "checkpoint")) return 1;

    // 3. The proof leads from the event's leaf to the checkpoint's root.
    const auto size = int_member(proof, "tree_size", proof_path);
    const auto index = proof.contains("leaf_index") ? int_member(proof, "leaf_index", proof_path)
                                                    : int_member(proof, "position", proof_path) - 1;
    if (index != position - 1) {
        std::cout << "inclusion:  FAILED: the proof is for leaf " << index << ", the event's leaf is " << position - 1
                  << "\n";
        return 1;
    }
    if (size != note.size) {
        std::cout << "inclusion:  FAILED: the proof is for tree size " << size << ", the checkpoint's is " << note.size
                  << "\n";
        return 1;
    }
    const auto leaf = merkle::event_leaf(claimed);
    if (!merkle::verify_inclusion(index, size, leaf, hashes_member(proof, proof_path), note.root)) {
        std::cout << "inclusion:  FAILED: the proof does not lead from leaf " << merkle::to_hex(leaf) << " to the root\n";
        return 1;
    }
    std::cout << "inclusion:  ok (leaf " << index << " of " << size << ": the event is in the signed tree)\n";
    return 0;
}

int check_consistency(const config& cfg, const checkpoint::public_key& key) {
    const auto& proof_path = cfg.proof_files[2];
    const auto old_note = read_note(cfg.proof_files[0]);
    const auto new_note = read_note(cfg.proof_files[1]);
    if (!signed_by_log(old_note, cfg, key, "old checkpoint")) return 1;
    if (!signed_by_log(new_note, cfg, key, "new checkpoint")) return 1;
    if (old_note.origin != new_note.origin) {
        std::cout << "consistency: FAILED: the checkpoints are of two logs (" << old_note.origin << ", "
                  << new_note.origin << ")\n";
        return 1;
    }
    const auto proof = read_json_object(proof_path);
    const auto from = int_member(proof, "from", proof_path);
    const auto to = int_member(proof, "to", proof_path);
    if (from != old_note.size || to != new_note.size) {
        std::cout << "consistency: FAILED: the proof is from " << from << " to " << to << ", the checkpoints are of "
                  << old_note.size << " and " << new_note.size << "\n";
        return 1;
    }
    if (old_note.size > new_note.size) {
        std::cout << "consistency: FAILED: the new checkpoint is smaller than the old one (history was cut)\n";
        return 1;
    }
    // The empty tree is a prefix of every tree.
    const bool ok = old_note.size == 0 ||
                    merkle::verify_consistency(from, to, old_note.root, new_note.root, hashes_member(proof, proof_path));
    if (!ok) {
        std::cout << "consistency: FAILED: the new tree does not extend the old one (history was rewritten)\n";
        return 1;
    }
    std::cout << "consistency: ok (the tree of " << to << " extends the tree of " << from << ")\n";
    return 0;
}

} // namespace

int run_proof(const config& cfg) {
    try {
        const auto key = checkpoint::public_key::from_pem(read_file(cfg.public_key_file));
        return cfg.proof_action == "check-inclusion" ? check_inclusion(cfg, key) : check_consistency(cfg, key);
    } catch (const unusable& e) {
        std::cerr << "mqledger proof: " << e.what() << "\n";
        return 2;
    } catch (const checkpoint::key_error& e) {
        std::cerr << "mqledger proof: --public-key: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "mqledger proof: " << e.what() << "\n";
        return 2;
    }
}

} // namespace mqledger
