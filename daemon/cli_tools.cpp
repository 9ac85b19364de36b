// The auditor's commands (API.md "Command line"): verify, rebuild, history, export. Each reads
// the log directly; none writes an event or fires a timer.
#include "daemon/cli.h"
#include "daemon/config.h"
#include "daemon/views.h"

#include "ledger/codec.h"
#include "ledger/store/digest.h"
#include "ledger/store/event_store.h"
#include "ledger/store/hash_chain.h"
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

int run_verify(const config& cfg) {
    try {
        const auto chain = store::verify_chain(cfg.database_url);
        std::cout << "chain:       " << (chain.ok ? "ok" : "FAILED") << " (" << chain.events << " events, head "
                  << chain.head_position << " " << chain.head_hash << ")\n";
        if (!chain.ok) {
            std::cout << "first bad position: " << chain.bad_position.value_or(0) << ": " << chain.reason << "\n";
            return 1;
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
        const policy_registry policies;
        {
            pqxx::connection conn(cfg.database_url);
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
        const policy_registry policies;
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
        const policy_registry policies;
        pqxx::connection conn(cfg.database_url);
        pqxx::read_transaction tx(conn);
        if (cfg.as_of) {
            auto s = projections::instance_as_of(tx, cfg.instance_id, *cfg.as_of);
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
            projections::fold(set, e);
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
