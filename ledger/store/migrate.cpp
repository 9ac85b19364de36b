#include "ledger/store/migrate.h"

#include "ledger/store/embedded_migrations.h"
#include "ledger/store/hash_chain.h"

#include <pqxx/pqxx>

#include <map>
#include <stdexcept>

namespace mqledger::store {

namespace {

// Session-level advisory lock that serialises concurrent `mqledger migrate` runs on one database
// (advisory locks are per database). Distinct from the append lock.
constexpr std::int64_t migrate_lock_key = 0x6d716c6467720001; // "mqldgr" 0001

constexpr const char* create_schema_migrations =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    " name text PRIMARY KEY,"
    " applied_at timestamptz NOT NULL DEFAULT now(),"
    " checksum text NOT NULL)";

std::map<std::string, std::string> applied_checksums(pqxx::connection& c) {
    pqxx::work w(c);
    std::map<std::string, std::string> out;
    for (const auto& row : w.exec("SELECT name, checksum FROM schema_migrations"))
        out.emplace(row[0].as<std::string>(), row[1].as<std::string>());
    w.commit();
    return out;
}

} // namespace

migration_report migrate(const std::string& conninfo) {
    migration_report report;
    try {
        pqxx::connection c(conninfo);
        {
            pqxx::nontransaction n(c);
            n.exec("SET client_min_messages = warning");
            n.exec("SELECT pg_advisory_lock(" + std::to_string(migrate_lock_key) + ")");
        }
        {
            pqxx::work w(c);
            w.exec(create_schema_migrations);
            w.commit();
        }
        auto done = applied_checksums(c);
        for (const auto& m : detail::embedded_migrations()) {
            const std::string name = m.name;
            const std::string checksum = sha256_hex(m.sql);
            if (const auto it = done.find(name); it != done.end()) {
                if (it->second != checksum)
                    throw std::runtime_error("migration " + name + " was applied with checksum " + it->second +
                                             " but this binary embeds " + checksum +
                                             ": an applied migration must never change; add a new one");
                report.already.push_back(name);
                continue;
            }
            pqxx::work w(c);
            try {
                w.exec(m.sql);
            } catch (const pqxx::sql_error& e) {
                throw std::runtime_error("migration " + name + " failed: " + e.what());
            }
            w.exec_params("INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)", name, checksum);
            w.commit();
            report.applied.push_back(name);
        }
        // Closing the connection releases the session lock.
    } catch (const std::runtime_error&) {
        throw;
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("migrate: ") + e.what());
    }
    return report;
}

readiness check_ready(const std::string& conninfo) noexcept {
    std::map<std::string, std::string> done;
    try {
        pqxx::connection c(conninfo);
        try {
            done = applied_checksums(c);
        } catch (const pqxx::undefined_table&) {
            return readiness::not_migrated;
        } catch (const pqxx::insufficient_privilege&) {
            // Reachable, but the migration that grants the daemon's role did not complete.
            return readiness::not_migrated;
        }
    } catch (...) {
        return readiness::unreachable;
    }
    try {
        for (const auto& m : detail::embedded_migrations()) {
            const auto it = done.find(m.name);
            if (it == done.end() || it->second != sha256_hex(m.sql)) return readiness::not_migrated;
        }
        return readiness::ready;
    } catch (...) {
        return readiness::not_migrated;
    }
}

} // namespace mqledger::store
