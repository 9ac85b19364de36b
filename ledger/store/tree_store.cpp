#include "ledger/store/tree_store.h"

#include "ledger/store/hash_chain.h"
#include "ledger/store/pg_text.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

namespace mqledger::store {
namespace {

// Hex text both ways (decode(…, 'hex') / encode(…, 'hex')): libpqxx 6's binary parameters are
// awkward, and a tile is at most 8 KiB.
std::string hex_of(const std::string& raw) {
    return to_hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

std::string raw_of_hex(std::string_view hex) {
    if (hex.size() % 2 != 0) throw std::runtime_error("odd hex text from the database");
    std::string out(hex.size() / 2, '\0');
    auto nibble = [](char ch) -> int {
        if (ch >= '0' && ch <= '9') return ch - '0';
        if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
        if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
        throw std::runtime_error("bad hex text from the database");
    };
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = static_cast<char>(nibble(hex[2 * i]) * 16 + nibble(hex[2 * i + 1]));
    return out;
}

std::string raw_of(const std::vector<merkle::hash>& hashes) {
    std::string out;
    out.reserve(hashes.size() * 32);
    for (const auto& h : hashes) out.append(reinterpret_cast<const char*>(h.data()), h.size());
    return out;
}

std::vector<std::string> parse_text_array(const pqxx::field& f) {
    std::vector<std::string> out;
    auto parser = f.as_array();
    for (auto item = parser.get_next(); item.first != pqxx::array_parser::done; item = parser.get_next())
        if (item.first == pqxx::array_parser::string_value) out.push_back(item.second);
    return out;
}

constexpr const char* checkpoint_columns =
    "tree_size, encode(root, 'hex'), note, (extract(epoch FROM created_at) * 1000000)::bigint, cosignatures";

stored_checkpoint read_checkpoint(const pqxx::row& r) {
    stored_checkpoint c;
    c.tree_size = r[0].as<std::int64_t>();
    const auto root = merkle::from_hex(r[1].c_str());
    if (!root) throw std::runtime_error("a checkpoint root in the database is not 32 bytes");
    c.root = *root;
    c.note = r[2].c_str();
    c.created_at = time_point(std::chrono::microseconds(r[3].as<std::int64_t>()));
    c.cosignatures = parse_text_array(r[4]);
    return c;
}

} // namespace

std::string stored_checkpoint::text() const {
    std::string out = note;
    for (const auto& line : cosignatures) out += line;
    return out;
}

std::int64_t tree_size(pqxx::transaction_base& tx) {
    return tx.exec1("SELECT size FROM merkle_tree")[0].as<std::int64_t>();
}

std::shared_ptr<const std::string> tile_cache::get(int level, std::int64_t index, std::size_t min_bytes) {
    std::lock_guard lock(mutex_);
    const auto it = entries_.find({level, index});
    if (it == entries_.end() || it->second.raw->size() < min_bytes) {
        ++misses_;
        return nullptr;
    }
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    ++hits_;
    return it->second.raw;
}

void tile_cache::put(int level, std::int64_t index, std::shared_ptr<const std::string> raw) {
    std::lock_guard lock(mutex_);
    if (raw->size() > capacity_) return;
    const key k{level, index};
    if (const auto it = entries_.find(k); it != entries_.end()) {
        if (it->second.raw->size() >= raw->size()) return;   // a longer copy is cached already
        bytes_ -= it->second.raw->size();
        lru_.erase(it->second.lru);
        entries_.erase(it);
    }
    lru_.push_front(k);
    bytes_ += raw->size();
    entries_.emplace(k, entry{std::move(raw), lru_.begin()});
    while (bytes_ > capacity_ && !lru_.empty()) {
        const auto victim = entries_.find(lru_.back());
        bytes_ -= victim->second.raw->size();
        entries_.erase(victim);
        lru_.pop_back();
    }
}

namespace detail {

void tile_set::want(int level, std::int64_t index) {
    auto& w = tiles_[{level, index / merkle::tile_width}];
    w.bytes = std::max(w.bytes, static_cast<std::size_t>(index % merkle::tile_width + 1) * 32);
}

void tile_set::fetch(pqxx::transaction_base& tx, tile_cache* cache) {
    std::string levels = "{", indices = "{";
    bool any = false;
    for (auto& [key, w] : tiles_) {
        if (cache && (w.raw = cache->get(key.first, key.second, w.bytes))) continue;
        if (any) {
            levels += ',';
            indices += ',';
        }
        any = true;
        levels += std::to_string(key.first);
        indices += std::to_string(key.second);
    }
    if (!any) return;
    levels += '}';
    indices += '}';
    const auto rows = tx.exec_params(
        "SELECT t.level, t.idx, encode(t.hashes, 'hex') FROM merkle_tiles t"
        " JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, idx) ON t.level = w.level AND t.idx = w.idx",
        levels, indices);
    for (const auto& r : rows) {
        const std::pair<int, std::int64_t> key{r[0].as<int>(), r[1].as<std::int64_t>()};
        auto raw = std::make_shared<const std::string>(raw_of_hex(std::string_view(r[2].c_str(), r[2].size())));
        if (cache) cache->put(key.first, key.second, raw);
        tiles_[key].raw = std::move(raw);
    }
}

merkle::hash tile_set::hash_at(int level, std::int64_t index) const {
    const auto it = tiles_.find({level, index / merkle::tile_width});
    const auto offset = static_cast<std::size_t>(index % merkle::tile_width) * 32;
    if (it == tiles_.end() || !it->second.raw || it->second.raw->size() < offset + 32)
        throw std::runtime_error("the Merkle tree has no hash at level " + std::to_string(level) + " index " +
                                 std::to_string(index) + " (is it extended that far?)");
    merkle::hash h{};
    std::copy_n(reinterpret_cast<const unsigned char*>(it->second.raw->data()) + offset, 32, h.begin());
    return h;
}

} // namespace detail

merkle::tree_builder stored_builder_at(pqxx::transaction_base& tx, std::int64_t size) {
    // Level L holds floor(size / 256^L) hashes; its last tile is the one with the last of them.
    std::vector<std::pair<int, std::int64_t>> counts;   // (level, hashes at that level)
    detail::tile_set set;
    std::int64_t span = 1;
    for (int level = 0; level < 8; ++level) {
        const auto count = size / span;
        if (count == 0) break;
        counts.emplace_back(level, count);
        set.want(level, count - 1);
        if (span > std::numeric_limits<std::int64_t>::max() / merkle::tile_width) break;
        span *= merkle::tile_width;
    }
    set.fetch(tx);
    std::vector<merkle::tree_builder::tile> last;
    for (const auto& [level, count] : counts) {
        const auto idx = (count - 1) / merkle::tile_width;
        const auto width = count - idx * merkle::tile_width;
        merkle::tree_builder::tile t{level, idx, {}};
        for (std::int64_t i = 0; i < width; ++i) t.hashes.push_back(set.hash_at(level, idx * merkle::tile_width + i));
        last.push_back(std::move(t));
    }
    merkle::tree_builder b;
    b.resume(size, std::move(last));
    return b;
}

tree_extension extend_tree(pqxx::connection& conn, std::int64_t max_leaves) {
    pqxx::work tx(conn);
    tree_extension out;
    const auto locked = tx.exec("SELECT size FROM merkle_tree FOR UPDATE SKIP LOCKED");
    if (locked.empty()) return out;   // another session extends it now
    out.ran = true;
    out.from = locked[0][0].as<std::int64_t>();

    const auto rows = tx.exec_params("SELECT position, hash FROM events WHERE position > $1 ORDER BY position LIMIT $2",
                                     out.from, max_leaves);
    // The last tile of every level at the stored size, read by key (a few tiles whatever the
    // tree's size): all a builder needs to go on (merkle.h).
    merkle::tree_builder builder = stored_builder_at(tx, out.from);
    std::int64_t expected = out.from + 1;
    for (const auto& r : rows) {
        if (r[0].as<std::int64_t>() != expected) break;   // a gap: not committed yet
        builder.append(merkle::event_leaf(r[1].c_str()));
        ++expected;
    }
    out.to = builder.size();
    out.root = builder.root();
    if (out.to == out.from) {
        tx.commit();
        return out;
    }
    for (const auto& t : builder.dirty()) {
        tx.exec_params("INSERT INTO merkle_tiles (level, idx, hashes) VALUES ($1, $2, decode($3, 'hex'))"
                       " ON CONFLICT (level, idx) DO UPDATE SET hashes = EXCLUDED.hashes",
                       t.level, t.index, hex_of(raw_of(t.hashes)));
    }
    tx.exec_params("UPDATE merkle_tree SET size = $1", out.to);
    tx.commit();
    return out;
}

std::optional<stored_checkpoint> latest_checkpoint(pqxx::transaction_base& tx) {
    const auto r = tx.exec(std::string("SELECT ") + checkpoint_columns + " FROM checkpoints ORDER BY tree_size DESC LIMIT 1");
    if (r.empty()) return std::nullopt;
    return read_checkpoint(r[0]);
}

std::optional<stored_checkpoint> checkpoint_of_size(pqxx::transaction_base& tx, std::int64_t size) {
    const auto r = tx.exec_params(std::string("SELECT ") + checkpoint_columns + " FROM checkpoints WHERE tree_size = $1",
                                  size);
    if (r.empty()) return std::nullopt;
    return read_checkpoint(r[0]);
}

stored_checkpoint make_checkpoint(pqxx::connection& conn, const std::string& origin,
                                  const checkpoint::private_key& key, time_point now) {
    pqxx::work tx(conn);
    const auto size = tree_size(tx);
    if (auto existing = checkpoint_of_size(tx, size)) return *existing;
    const auto root = with_tiles(tx, [size](const merkle::tree_reader& r) { return r.root(size); });
    const auto n = checkpoint::sign(origin, size, root, origin, key);
    std::string at;
    detail::append_timestamptz(at, std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count());
    tx.exec_params("INSERT INTO checkpoints (tree_size, root, note, created_at) VALUES ($1, decode($2, 'hex'), $3, $4)"
                   " ON CONFLICT (tree_size) DO NOTHING",
                   size, merkle::to_hex(root), n.text(), at);
    auto stored = checkpoint_of_size(tx, size);
    tx.commit();
    if (!stored) throw std::runtime_error("checkpoint not stored");
    return *stored;
}

bool add_cosignature(pqxx::connection& conn, std::int64_t tree_size, const std::string& line) {
    pqxx::work tx(conn);
    const auto r = tx.exec_params("UPDATE checkpoints SET cosignatures = array_append(cosignatures, $2)"
                                  " WHERE tree_size = $1 AND NOT ($2 = ANY(cosignatures))",
                                  tree_size, line);
    const bool found = r.affected_rows() == 1 || !tx.exec_params("SELECT 1 FROM checkpoints WHERE tree_size = $1", tree_size).empty();
    tx.commit();
    return found;
}

} // namespace mqledger::store
