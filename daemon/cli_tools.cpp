// The auditor's commands (API.md "Command line"): verify, rebuild, history, export. Each reads
// the log directly; none writes an event or fires a timer.
#include "daemon/cli.h"
#include "daemon/config.h"
#include "daemon/views.h"

#include "ledger/codec.h"
#include "ledger/store/digest.h"
#include "ledger/store/event_store.h"
#include "ledger/store/checkpoint.h"
#include "ledger/store/hash_chain.h"
#include "ledger/store/tree_store.h"
#include "ledger/store/verify.h"
#include "projections/as_of.h"
#include "projections/conformance.h"
#include "projections/projector.h"
#include "projections/rebuild.h"

#include <boost/json.hpp>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <iterator>
#include <unistd.h>

namespace mqledger {
namespace json = boost::json;

namespace {

// Every policy version the log records (issue 15): events are judged under the version their
// metadata names. Throws projection_error when a policy.changed event is damaged.
policy_registry logged_policies(pqxx::connection& c) {
    pqxx::read_transaction tx(c);
    return projections::load_policies(tx);
}

constexpr std::int64_t page_size = 2000;

// RFC 4180: quote a field holding a comma, quote, CR or LF; double the quotes.
std::string csv_field(std::string_view s) {
    if (s.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(s);
    std::string out = "\"";
    for (char c : s) {
        if (c == '"') out += '"';
        out += c;
    }
    return out + "\"";
}

} // namespace

namespace {

std::optional<std::string> slurp(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// `verify --since-checkpoint` (README.md "Merkle proofs and checkpoints"): what
// the auditor's kept checkpoint already proves is not checked again. The stored tree at the
// checkpoint's size must have the signed root (else history before it was rewritten); the
// events after it must chain from it, hash right and extend the tree to the stored one and to
// the newest checkpoint (whose consistency proof from the kept one is checked too); and their
// units must be what the rules decide. Its cost follows the new events, not the log.
int verify_since_checkpoint(const config& cfg) {
    const auto text = slurp(cfg.since_checkpoint);
    if (!text) {
        std::cerr << "mqledger verify: cannot read " << cfg.since_checkpoint << "\n";
        return 2;
    }
    const auto note = checkpoint::parse(*text);
    if (!note) {
        std::cerr << "mqledger verify: " << cfg.since_checkpoint << " is not a signed checkpoint note\n";
        return 2;
    }
    const auto pem = slurp(cfg.public_key_file);
    if (!pem) {
        std::cerr << "mqledger verify: cannot read " << cfg.public_key_file << "\n";
        return 2;
    }
    const auto key = checkpoint::public_key::from_pem(*pem);
    const std::string name = cfg.key_name.empty() ? note->origin : cfg.key_name;
    if (!checkpoint::verify(*note, name, key)) {
        std::cout << "checkpoint:  FAILED: no valid signature by the key '" << name << "' (forged or altered)\n";
        return 1;
    }
    const auto n = note->size;
    std::cout << "checkpoint:  signature ok (" << note->origin << ", tree size " << n << ", root "
              << merkle::to_hex(note->root) << ")\n";

    pqxx::connection conn(cfg.database_url);
    merkle::tree_builder builder;
    std::string hash_at_n(store::genesis_hash);
    std::int64_t stored_size = 0;
    std::optional<store::stored_checkpoint> newest;
    {
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(conn);
        stored_size = store::tree_size(tx);
        if (stored_size < n) {
            std::cout << "tree:        FAILED: the stored tree has " << stored_size << " leaves, fewer than the checkpoint's "
                      << n << ": history was cut\n";
            std::cout << "first bad position: " << stored_size + 1 << ": missing from the tree\n";
            return 1;
        }
        builder = store::stored_builder_at(tx, n);
        if (builder.root() != note->root) {
            std::cout << "tree:        FAILED: the stored tree of " << n << " leaves has root " << merkle::to_hex(builder.root())
                      << ", the checkpoint signed " << merkle::to_hex(note->root) << ": history before it was rewritten\n";
            return 1;
        }
        if (n > 0) {
            const auto r = tx.exec_params("SELECT hash FROM events WHERE position = $1", n);
            hash_at_n = r.empty() ? std::string() : std::string(r[0][0].c_str());
            const auto leaf = store::with_tiles(tx, [n](const merkle::tree_reader& t) { return t.subtree(0, n - 1); });
            if (hash_at_n.empty() || merkle::event_leaf(hash_at_n) != leaf) {
                std::cout << "tree:        FAILED: the event at position " << n
                          << " is not the last leaf of the checkpoint's tree: the log was rewritten\n";
                std::cout << "first bad position: " << n << ": does not match the checkpoint\n";
                return 1;
            }
        }
        newest = store::latest_checkpoint(tx);
    }
    std::cout << "tree:        ok (the stored tree of " << n << " leaves has the signed root, and ends with event " << n << ")\n";

    // The events after it: chain, hashes, and the tree they extend.
    std::optional<merkle::hash> root_at_stored, root_at_newest;
    const auto newest_size = newest ? newest->tree_size : -1;
    if (stored_size == n) root_at_stored = builder.root();
    if (newest_size == n) root_at_newest = builder.root();
    const auto chain = store::verify_chain_after(cfg.database_url, n, hash_at_n, [&](std::int64_t position, std::string_view h) {
        builder.append(merkle::event_leaf(h));
        if (position == stored_size) root_at_stored = builder.root();
        if (position == newest_size) root_at_newest = builder.root();
    });
    std::cout << "chain:       " << (chain.ok ? "ok" : "FAILED") << " (" << chain.events << " events after " << n
              << ", head " << chain.head_position << " " << chain.head_hash << ")\n";
    if (!chain.ok) {
        std::cout << "first bad position: " << chain.bad_position.value_or(0) << ": " << chain.reason << "\n";
        return 1;
    }
    if (!root_at_stored) {
        std::cout << "tree:        FAILED: the stored tree has " << stored_size << " leaves, the log only "
                  << chain.head_position << " events\n";
        return 1;
    }
    {
        pqxx::transaction<pqxx::repeatable_read, pqxx::read_only> tx(conn);
        const auto stored_root =
            store::with_tiles(tx, [stored_size](const merkle::tree_reader& t) { return t.root(stored_size); });
        if (stored_root != *root_at_stored) {
            std::cout << "tree:        FAILED: the stored tree of " << stored_size
                      << " leaves is not the tree of the events (tiles altered)\n";
            return 1;
        }
        std::cout << "tree:        ok (the stored tree of " << stored_size << " leaves is the tree of the events)\n";
        if (newest) {
            if (newest->tree_size < n) {
                std::cout << "consistency: FAILED: the newest checkpoint in the database is of " << newest->tree_size
                          << " leaves, fewer than yours: checkpoints were removed\n";
                return 1;
            }
            const auto newest_note = checkpoint::parse(newest->note);
            if (!newest_note || !checkpoint::verify(*newest_note, name, key) || !root_at_newest ||
                newest_note->root != *root_at_newest) {
                std::cout << "consistency: FAILED: the newest checkpoint (" << newest->tree_size
                          << ") is not signed by the key or not the tree of the events\n";
                return 1;
            }
            const auto proof = n == 0 ? std::vector<merkle::hash>{}
                                      : store::with_tiles(tx, [&](const merkle::tree_reader& t) {
                                            return t.consistency_proof(n, newest->tree_size);
                                        });
            if (n > 0 && !merkle::verify_consistency(n, newest->tree_size, note->root, newest_note->root, proof)) {
                std::cout << "consistency: FAILED: no consistency proof from your checkpoint to the newest\n";
                return 1;
            }
            std::cout << "consistency: ok (the newest checkpoint, " << newest->tree_size << " leaves, extends yours; proof of "
                      << proof.size() << " hashes)\n";
        }
    }

    const auto policies = logged_policies(conn);
    const auto conf = projections::check_conformance_since(conn, policies, n);
    if (conf.conformance.bad_position) {
        std::cout << "conformance: FAILED after " << conf.conformance.conforming << " events\n";
        std::cout << "first bad position: " << *conf.conformance.bad_position << ": " << conf.conformance.reason << "\n";
        return 1;
    }
    std::cout << "conformance: ok (" << conf.conformance.conforming << " events from position " << conf.replayed_from
              << " in " << conf.conformance.units << " units, each exactly what the rules core decides again; "
              << conf.streams_loaded << " streams' earlier " << conf.events_folded << " events folded, not judged)\n";
    std::cout << "projections: not compared (an incremental audit; `mqledger verify` without --since-checkpoint "
                 "compares them)\n";
    return 0;
}

} // namespace

int run_verify(const config& cfg) {
    try {
        if (!cfg.since_checkpoint.empty()) return verify_since_checkpoint(cfg);
        // The chain, and on the way the Merkle tree of its hashes: the stored tree and the newest
        // checkpoint must be that tree at their sizes.
        std::int64_t stored_size = 0;
        std::optional<store::stored_checkpoint> newest;
        {
            pqxx::connection conn(cfg.database_url);
            pqxx::read_transaction tx(conn);
            stored_size = store::tree_size(tx);
            newest = store::latest_checkpoint(tx);
        }
        const auto newest_size = newest ? newest->tree_size : std::int64_t{-1};
        merkle::tree_builder tree;
        std::optional<merkle::hash> root_at_stored, root_at_newest;
        if (stored_size == 0) root_at_stored = tree.root();
        if (newest_size == 0) root_at_newest = tree.root();
        const auto chain = store::verify_chain_after(cfg.database_url, 0, store::genesis_hash,
                                                     [&](std::int64_t position, std::string_view h) {
                                                         tree.append(merkle::event_leaf(h));
                                                         if (position == stored_size) root_at_stored = tree.root();
                                                         if (position == newest_size) root_at_newest = tree.root();
                                                     });
        std::cout << "chain:       " << (chain.ok ? "ok" : "FAILED") << " (" << chain.events << " events, head "
                  << chain.head_position << " " << chain.head_hash << ")\n";
        if (!chain.ok) {
            std::cout << "first bad position: " << chain.bad_position.value_or(0) << ": " << chain.reason << "\n";
            return 1;
        }
        {
            pqxx::connection conn(cfg.database_url);
            pqxx::read_transaction tx(conn);
            const auto stored_root =
                store::with_tiles(tx, [stored_size](const merkle::tree_reader& t) { return t.root(stored_size); });
            if (!root_at_stored || stored_root != *root_at_stored) {
                std::cout << "tree:        FAILED: the stored Merkle tree of " << stored_size
                          << " leaves is not the tree of the events' hashes\n";
                return 1;
            }
            const auto note = newest ? checkpoint::parse(newest->note) : std::nullopt;
            if (newest && (!note || !root_at_newest || note->root != *root_at_newest || newest->root != note->root)) {
                std::cout << "tree:        FAILED: the newest checkpoint (" << newest_size
                          << " leaves) is not the tree of the events' hashes\n";
                return 1;
            }
            std::cout << "tree:        ok (the stored tree of " << stored_size << " leaves"
                      << (newest ? " and the newest checkpoint's root are" : " is") << " the tree of the events)\n";
        }
        if (!cfg.since_digest.empty()) {
            const auto d = store::parse_digest(cfg.since_digest);
            if (!d) {
                std::cerr << "mqledger verify: --since-digest must be POSITION:HASH or POSITION:HASH:SIGNATURE\n";
                return 2;
            }
            std::string key;
            if (!cfg.public_key_file.empty()) {
                std::ifstream in(cfg.public_key_file);
                if (!in) {
                    std::cerr << "mqledger verify: cannot read " << cfg.public_key_file << "\n";
                    return 2;
                }
                key.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
                if (!d->signature) {
                    std::cout << "digest:      FAILED: the digest carries no signature to check\n";
                    return 1;
                }
                if (!store::verify_digest_signature(*d, key)) {
                    std::cout << "digest:      FAILED: the signature does not match the public key (forged digest)\n";
                    return 1;
                }
            }
            if (d->position > chain.head_position) {
                std::cout << "digest:      FAILED: the ledger ends at position " << chain.head_position
                          << ", before the digest's position " << d->position << ": events were removed\n";
                std::cout << "first bad position: " << chain.head_position + 1 << ": missing\n";
                return 1;
            }
            std::string at = std::string(store::genesis_hash);
            if (d->position > 0) {
                pqxx::connection conn(cfg.database_url);
                pqxx::read_transaction tx(conn);
                const auto r = tx.exec_params("SELECT hash FROM events WHERE position = $1", d->position);
                at = r.empty() ? std::string() : std::string(r[0][0].c_str());
            }
            if (at != d->hash) {
                std::cout << "digest:      FAILED: the event at position " << d->position << " has hash " << at
                          << ", the digest says " << d->hash << ": history before it was rewritten\n";
                std::cout << "first bad position: " << d->position << ": does not match the digest\n";
                return 1;
            }
            std::cout << "digest:      ok (the ledger extends " << d->position << ":" << d->hash
                      << (key.empty() ? "" : ", signature valid") << ")\n";
        }
        const auto policies = [&] {
            pqxx::connection conn(cfg.database_url);
            return logged_policies(conn);
        }();
        {
            pqxx::connection conn(cfg.database_url);
            std::cout << "policy:      ok (" << policies.versions().size() << " version"
                      << (policies.versions().size() == 1 ? "" : "s") << ", newest " << policies.current().version()
                      << "; each policy.changed table matches its hash)\n";
            const auto conf = projections::check_conformance(conn, policies);
            if (conf.bad_position) {
                std::cout << "conformance: FAILED after " << conf.conforming << " events\n";
                std::cout << "first bad position: " << *conf.bad_position << ": " << conf.reason << "\n";
                return 1;
            }
            std::cout << "conformance: ok (" << conf.conforming << " events in " << conf.units
                      << " units, each exactly what the rules core decides again)\n";
        }
        const auto diff = projections::compare(cfg.database_url, policies);
        std::cout << "projections: " << (diff ? "DIFFER" : "ok (equal to a fresh rebuild)") << "\n";
        if (diff) {
            std::cout << "first difference: table " << diff->table << ", only in the " << diff->side
                      << " side: " << diff->row << "\n";
            return 1;
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "mqledger verify: " << e.what() << "\n";
        return 2;
    }
}

int run_rebuild(const config& cfg) {
    try {
        const auto policies = [&] {
            pqxx::connection conn(cfg.database_url);
            return logged_policies(conn);
        }();
        const bool tty = ::isatty(STDERR_FILENO) == 1;
        projections::rebuild_progress bar;
        if (tty)
            bar = [](std::int64_t position, std::int64_t head) {
                // A bar on the terminal only; logs and pipes get the one summary line.
                const int width = 40;
                const double done = head > 0 ? std::min(1.0, static_cast<double>(position) / static_cast<double>(head)) : 1.0;
                const int filled = static_cast<int>(done * width);
                std::cerr << "\r[" << std::string(static_cast<std::size_t>(filled), '#')
                          << std::string(static_cast<std::size_t>(width - filled), ' ') << "] " << position << " / "
                          << head << " events" << std::flush;
            };
        const auto r = projections::rebuild(cfg.database_url, policies, bar);
        if (tty) std::cerr << "\n";
        std::cout << "rebuilt up to position " << r.position << ": " << r.instances << " instances, " << r.accounts
                  << " accounts, " << r.timers << " timers\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "mqledger rebuild: " << e.what() << "\n";
        return 1;
    }
}

int run_history(const config& cfg) {
    try {
        pqxx::connection conn(cfg.database_url);
        pqxx::read_transaction tx(conn);
        const auto policies = projections::load_policies(tx);
        if (cfg.as_of) {
            auto s = projections::instance_as_of(tx, cfg.instance_id, *cfg.as_of, policies);
            if (!s.exists) {
                std::cerr << "mqledger history: no instance " << cfg.instance_id << " at "
                          << codec::format_time(*cfg.as_of) << "\n";
                return 1;
            }
            s.id = cfg.instance_id;
            const auto view = views::instance(s, projections::policy_of(s, policies), *cfg.as_of);
            if (cfg.export_format == "json") {
                std::cout << json::serialize(view) << "\n";
            } else {
                for (const auto& kv : view) std::cout << kv.key() << ": " << json::serialize(kv.value()) << "\n";
            }
            return 0;
        }
        const auto events = store::read_stream(tx, instance_stream(cfg.instance_id));
        if (events.empty()) {
            std::cerr << "mqledger history: no instance " << cfg.instance_id << "\n";
            return 1;
        }
        projections::projection_set set;
        json::array rows;
        if (cfg.export_format == "table")
            std::cout << "effective_at                 position  event                                  state after    actor\n";
        for (const auto& e : events) {
            projections::fold(set, e, policies);
            const auto& s = set.instances.at(cfg.instance_id);
            const auto* actor = e.metadata.if_contains("actor");
            const std::string who = actor && actor->is_string() ? std::string(actor->get_string()) : "";
            if (cfg.export_format == "json") {
                rows.push_back(json::object{{"effective_at", codec::format_time(e.effective_at)},
                                            {"position", e.position},
                                            {"type", e.type},
                                            {"state", to_string(s.current)},
                                            {"actor", who},
                                            {"data", e.data}});
            } else {
                std::string line = codec::format_time(e.effective_at);
                line.resize(std::max<std::size_t>(line.size() + 1, 29), ' ');
                auto pos = std::to_string(e.position);
                line += pos;
                line.resize(line.size() + (pos.size() < 10 ? 10 - pos.size() : 1), ' ');
                line += e.type;
                line.resize(std::max(line.size() + 1, std::size_t{78}), ' ');
                line += to_string(s.current);
                line.resize(std::max(line.size() + 1, std::size_t{93}), ' ');
                std::cout << line << who << "\n";
            }
        }
        if (cfg.export_format == "json") std::cout << json::serialize(rows) << "\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "mqledger history: " << e.what() << "\n";
        return 2;
    }
}

int run_export(const config& cfg) {
    try {
        pqxx::connection conn(cfg.database_url);
        const bool csv = cfg.export_format == "csv";
        std::ios::sync_with_stdio(false);
        if (csv) std::cout << "position,stream,stream_version,type,effective_at,recorded_at,data,metadata,prev_hash,hash\n";
        store::for_each_page(conn, 0, page_size, [&](const std::vector<store::recorded_event>& page) {
            for (const auto& e : page) {
                if (cfg.since && e.effective_at < *cfg.since) continue;
                if (!cfg.stream_prefix.empty() && !e.stream.starts_with(cfg.stream_prefix)) continue;
                if (csv) {
                    std::cout << e.position << ',' << csv_field(e.stream) << ',' << e.stream_version << ','
                              << csv_field(e.type) << ',' << codec::format_time(e.effective_at) << ','
                              << codec::format_time(e.recorded_at) << ',' << csv_field(json::serialize(e.data)) << ','
                              << csv_field(json::serialize(e.metadata)) << ',' << e.prev_hash << ',' << e.hash << '\n';
                } else {
                    std::cout << json::serialize(views::event(e)) << '\n';
                }
            }
            return static_cast<bool>(std::cout);   // stop when the reader went away
        });
        if (!std::cout) return 1;
        std::cout.flush();
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "mqledger export: " << e.what() << "\n";
        return 2;
    }
}

} // namespace mqledger
