// The daemon's side of the Merkle tree and checkpoints (issue 14; README.md "For auditors:
// Merkle proofs and checkpoints"): after events are committed it extends the tree over them and,
// with a signing key, signs a checkpoint of the new size.
//
// Why after the commit and not in the append transaction: the append stays one statement and
// its throughput does not depend on the tree (the tree costs one more short transaction per
// --checkpoint-interval, not per batch); the tree is a pure function of the committed log, so a
// crash between the two loses nothing (the next tick extends from the stored size); and several
// daemons on one database need no coordination beyond the tree row's lock. The price is that the
// newest events are in no checkpoint for up to one interval: a proof is served against a
// checkpoint, never against the unsigned head.
#pragma once

#include "ledger/clock.h"
#include "ledger/store/checkpoint.h"
#include "ledger/store/tree_store.h"

#include <pqxx/pqxx>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mqledger {

class transparency {
public:
    struct options {
        std::string database_url;
        std::string origin = "mqledger";
        std::optional<checkpoint::private_key> key;   // nothing: the tree is kept, no checkpoint is signed
        std::vector<std::pair<std::string, checkpoint::public_key>> witnesses;
    };

    transparency(options o, const clock& clk);
    ~transparency();
    transparency(const transparency&) = delete;
    transparency& operator=(const transparency&) = delete;

    /// Extends the tree to the committed head, then (with a key) signs a checkpoint of the new
    /// size if there is none. Logs each new checkpoint. Returns the newest checkpoint, if any.
    /// Throws on database errors (the next call goes on from what was stored). Thread-safe
    /// (calls are serialized).
    std::optional<store::stored_checkpoint> tick();

    /// Checks a witness's co-signature line for the checkpoint of `tree_size` against the key of
    /// that witness (--witness-key) and stores it. The outcome says what was refused; throws
    /// only on database errors.
    enum class cosign_result { accepted, unknown_checkpoint, unknown_witness, bad_signature, malformed };
    struct cosign_outcome {
        cosign_result result = cosign_result::malformed;
        std::string witness;           // the line's key name
        std::uint64_t timestamp = 0;   // when accepted
    };
    cosign_outcome add_cosignature(std::int64_t tree_size, const std::string& line);

    /// Per configured witness: whether `c` carries a co-signature of it that verifies under its
    /// current key.
    [[nodiscard]] std::vector<std::pair<std::string, bool>> cosigned(const store::stored_checkpoint& c) const;
    /// The timestamp of the first of `c`'s co-signature lines by `witness` that verifies under `key`.
    [[nodiscard]] static std::optional<std::uint64_t> valid_cosignature(const store::stored_checkpoint& c,
                                                                       const std::string& witness,
                                                                       const checkpoint::public_key& key);

    /// The tiles the proof routes keep in memory (64 MiB).
    [[nodiscard]] store::tile_cache& tiles() noexcept { return tiles_; }

    [[nodiscard]] bool signs() const noexcept { return opts_.key.has_value(); }
    [[nodiscard]] const std::string& origin() const noexcept { return opts_.origin; }
    [[nodiscard]] std::vector<std::string> witness_names() const;

private:
    pqxx::connection& conn();
    options opts_;
    const clock& clk_;
    std::mutex mutex_;
    std::unique_ptr<pqxx::connection> conn_;
    store::tile_cache tiles_{64u << 20};
};

} // namespace mqledger
