// The witness's judgement of a log's checkpoints (issue 14; witness.cpp runs it against a
// daemon): given the last checkpoint it co-signed and a newly fetched one whose log signature
// is already checked, may it co-sign the new one? Pure and thread-safe, so that the rules are
// tested without a daemon.
#pragma once

#include "ledger/store/checkpoint.h"
#include "ledger/store/merkle.h"

#include <optional>
#include <string>
#include <vector>

namespace mqledger::witness {

/// How a fetched checkpoint relates to the last one co-signed.
enum class relation {
    first_use,   // nothing co-signed yet: trusted on first use
    same,        // the same origin, size and root
    grows,       // a larger tree: a consistency proof from the last size decides (proves_growth)
    other_log,   // another origin: not the log this witness follows
    fork,        // a smaller tree (rollback), or the same size with another root
};

struct judgement {
    relation what = relation::first_use;
    std::string reason;   // why, for other_log and fork; empty otherwise
};

/// Compares `fresh` with `last` (nothing: the first run).
[[nodiscard]] judgement compare(const std::optional<checkpoint::note>& last, const checkpoint::note& fresh);

/// Whether a consistency proof must be fetched for relation::grows: not from an empty tree
/// (size 0), of which every tree is an extension (RFC 9162 defines no proof from it).
[[nodiscard]] bool needs_proof(const checkpoint::note& last) noexcept;

/// For relation::grows: true when `proof` (RFC 9162 2.1.4) shows that the tree of `last` is a
/// prefix of the tree of `fresh`. From size 0: true when `last` has the empty tree's root and
/// the proof is empty.
[[nodiscard]] bool proves_growth(const checkpoint::note& last, const checkpoint::note& fresh,
                                 const std::vector<merkle::hash>& proof);

} // namespace mqledger::witness
