#include "daemon/transparency.h"

#include "daemon/logging.h"
#include "ledger/codec.h"

#include <pqxx/pqxx>

namespace mqledger {

transparency::transparency(options o, const clock& clk) : opts_(std::move(o)), clk_(clk) {}
transparency::~transparency() = default;

pqxx::connection& transparency::conn() {
    if (!conn_ || !conn_->is_open()) conn_ = std::make_unique<pqxx::connection>(opts_.database_url);
    return *conn_;
}

std::vector<std::string> transparency::witness_names() const {
    std::vector<std::string> out;
    for (const auto& [name, key] : opts_.witnesses) out.push_back(name);
    return out;
}

std::optional<store::stored_checkpoint> transparency::tick() {
    std::lock_guard lock(mutex_);
    try {
        // Catch up in bounded transactions (a ledger migrated with millions of events builds
        // its tree over several ticks' worth of work, but in this one call).
        constexpr std::int64_t chunk = 100000;
        for (;;) {
            const auto x = store::extend_tree(conn(), chunk);
            if (!x.ran || x.to - x.from < chunk) break;
        }
        if (!opts_.key) {
            pqxx::read_transaction tx(conn());
            return store::latest_checkpoint(tx);
        }
        std::optional<store::stored_checkpoint> newest;
        {
            pqxx::read_transaction tx(conn());
            newest = store::latest_checkpoint(tx);
            if (newest && newest->tree_size == store::tree_size(tx)) return newest;
        }
        auto made = store::make_checkpoint(conn(), opts_.origin, *opts_.key, clk_.now());
        if (!newest || made.tree_size != newest->tree_size)
            log_line(log_level::info, "checkpoint",
                     {{"tree_size", made.tree_size}, {"root", merkle::to_hex(made.root)},
                      {"created_at", codec::format_time(made.created_at)}, {"note", made.note}});
        return made;
    } catch (const pqxx::broken_connection&) {
        conn_.reset();
        throw;
    }
}

std::optional<std::uint64_t> transparency::valid_cosignature(const store::stored_checkpoint& c, const std::string& witness,
                                                             const checkpoint::public_key& key) {
    auto n = checkpoint::parse(c.note);
    if (!n) return std::nullopt;
    // Each stored line alone: a line under an older key of the same witness does not spoil it.
    for (const auto& line : c.cosignatures) {
        auto s = checkpoint::parse_signature_line(line);
        if (!s || s->name != witness) continue;
        n->signatures = {*s};
        if (const auto ts = checkpoint::verify_cosignature(*n, witness, key)) return ts;
    }
    return std::nullopt;
}

std::vector<std::pair<std::string, bool>> transparency::cosigned(const store::stored_checkpoint& c) const {
    std::vector<std::pair<std::string, bool>> out;
    for (const auto& [name, key] : opts_.witnesses) out.emplace_back(name, valid_cosignature(c, name, key).has_value());
    return out;
}

transparency::cosign_outcome transparency::add_cosignature(std::int64_t tree_size, const std::string& line) {
    cosign_outcome out;
    std::string text = line;
    if (text.empty() || text.back() != '\n') text += '\n';
    const auto parsed = checkpoint::parse_signature_line(std::string_view(text).substr(0, text.size() - 1));
    if (!parsed) return out;
    out.witness = parsed->name;
    const checkpoint::public_key* key = nullptr;
    for (const auto& [name, k] : opts_.witnesses)
        if (name == parsed->name) key = &k;
    if (!key) {
        out.result = cosign_result::unknown_witness;
        return out;
    }
    std::lock_guard lock(mutex_);
    std::optional<store::stored_checkpoint> c;
    {
        pqxx::read_transaction tx(conn());
        c = store::checkpoint_of_size(tx, tree_size);
    }
    if (!c) {
        out.result = cosign_result::unknown_checkpoint;
        return out;
    }
    auto n = checkpoint::parse(c->note);
    if (!n) throw std::runtime_error("a stored checkpoint does not parse");
    n->signatures = {*parsed};   // judged alone: a re-co-signature reports its own timestamp
    const auto ts = checkpoint::verify_cosignature(*n, parsed->name, *key);
    if (!ts) {
        out.result = cosign_result::bad_signature;
        return out;
    }
    if (const auto stored = valid_cosignature(*c, parsed->name, *key)) {
        // Already co-signed under this key: the line served stays the first one.
        out.result = cosign_result::accepted;
        out.timestamp = *stored;
        return out;
    }
    if (!store::add_cosignature(conn(), tree_size, checkpoint::format_signature_line(*parsed))) {
        out.result = cosign_result::unknown_checkpoint;
        return out;
    }
    out.result = cosign_result::accepted;
    out.timestamp = *ts;
    log_line(log_level::info, "checkpoint co-signed", {{"tree_size", tree_size}, {"witness", parsed->name},
                                                       {"timestamp", static_cast<std::int64_t>(*ts)}});
    return out;
}

} // namespace mqledger
