#include "ledger/store/verify.h"

#include "ledger/store/hash_chain.h"

#include <pqxx/pqxx>

#include <stdexcept>
#include <string>

namespace mqledger::store {

chain_report verify_chain(const std::string& conninfo) { return verify_chain_after(conninfo, 0, genesis_hash, {}); }

chain_report verify_chain_after(const std::string& conninfo, std::int64_t after, std::string_view after_hash,
                                const std::function<void(std::int64_t, std::string_view)>& each) {
    chain_report rep;
    rep.head_position = after;
    rep.head_hash = std::string(after_hash);
    try {
        pqxx::connection c(conninfo);
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(c);
        // Text of data/metadata is PostgreSQL's jsonb output, which is canonical_json by definition.
        tx.exec("DECLARE mqledger_verify NO SCROLL CURSOR FOR"
                " SELECT position, stream, stream_version, type,"
                " (extract(epoch FROM effective_at) * 1000000)::bigint,"
                " (extract(epoch FROM recorded_at) * 1000000)::bigint,"
                " data::text, metadata::text, prev_hash, hash FROM events WHERE position > " +
                std::to_string(after) + " ORDER BY position");
        std::string expected_prev(after_hash);
        std::int64_t expected_position = after + 1;
        std::string pre;
        for (;;) {
            const auto r = tx.exec("FETCH FORWARD 20000 FROM mqledger_verify");
            if (r.empty()) break;
            for (const auto& row : r) {
                const auto position = row[0].as<std::int64_t>();
                auto fail = [&](std::string why) {
                    rep.ok = false;
                    rep.bad_position = position;
                    rep.reason = std::move(why);
                };
                const std::string_view prev(row[8].c_str(), row[8].size());
                const std::string_view stored(row[9].c_str(), row[9].size());
                if (position != expected_position) {
                    fail(position > expected_position
                             ? "gap: position " + std::to_string(expected_position) + " is missing"
                             : "position out of order: expected " + std::to_string(expected_position));
                    return rep;
                }
                if (prev != expected_prev) {
                    fail("prev_hash does not equal the hash of position " + std::to_string(position - 1));
                    return rep;
                }
                pre.clear();
                append_hash_preimage(
                    pre, {prev, position, std::string_view(row[1].c_str(), row[1].size()), row[2].as<std::int64_t>(),
                          std::string_view(row[3].c_str(), row[3].size()), row[4].as<std::int64_t>(),
                          row[5].as<std::int64_t>(), std::string_view(row[6].c_str(), row[6].size()),
                          std::string_view(row[7].c_str(), row[7].size())});
                if (sha256_hex(pre) != stored) {
                    fail("hash mismatch: the row's contents do not hash to its stored hash");
                    return rep;
                }
                if (each) each(position, stored);
                expected_prev.assign(stored);
                ++expected_position;
                ++rep.events;
                rep.head_position = position;
                rep.head_hash.assign(stored);
            }
        }
        tx.commit();
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("verify_chain: cannot read events: ") + e.what());
    }
    return rep;
}

} // namespace mqledger::store
