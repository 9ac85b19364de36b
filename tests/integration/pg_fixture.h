// The PostgreSQL fixture of the integration tests: every test case gets its own scratch database
// (created from template0, migrated, dropped afterwards) on the server deploy/pg.sh started.
// URLs come from MQLEDGER_TEST_DATABASE_URL (a superuser) and MQLEDGER_TEST_APP_DATABASE_URL
// (the daemon's role); the tests FAIL when they are unset, so CI can never skip them silently.
#pragma once

#include "ledger/store/conninfo.h"
#include "ledger/store/embedded_migrations.h"
#include "ledger/store/migrate.h"

#include <catch2/catch.hpp>
#include <pqxx/pqxx>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <unistd.h>

namespace mqledger::test {

/// The environment variable's value; fails the test case when it is unset or empty.
inline std::string require_env(const char* name) {
    const char* v = std::getenv(name);
    if (v == nullptr || *v == '\0')
        FAIL(name << " is not set: run the integration tests through deploy/test.sh (or export it, "
                     "e.g. " << name << "=$(deploy/pg.sh admin-url))");
    return v;
}

using mqledger::store::with_database;

/// The migrated database every scratch database is cloned from (`CREATE DATABASE … TEMPLATE`),
/// so a test case does not migrate again. It is named after a hash of the embedded migrations
/// and made once, by the first test process that needs it (under an advisory lock; built under
/// another name and renamed when complete, so a half-made one is never used). Nobody connects to
/// it afterwards, which cloning requires.
inline std::string migrated_template(const std::string& admin_base) {
    std::uint64_t h = 1469598103934665603ull;   // FNV-1a
    for (const auto& m : mqledger::store::detail::embedded_migrations())
        for (const char* p : {m.name, m.sql})
            for (; *p != '\0'; ++p) h = (h ^ static_cast<unsigned char>(*p)) * 1099511628211ull;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    const std::string name = std::string("mqledger_tmpl_") + hex;
    pqxx::connection c(admin_base);
    pqxx::nontransaction n(c);
    n.exec("SELECT pg_advisory_lock(7887453213541990402)");
    try {
        if (n.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", name).empty()) {
            const std::string building = name + "_building";
            n.exec("DROP DATABASE IF EXISTS " + building + " WITH (FORCE)");
            n.exec("CREATE DATABASE " + building + " TEMPLATE template0 ENCODING 'UTF8'");
            mqledger::store::migrate(with_database(admin_base, building));
            n.exec("ALTER DATABASE " + building + " RENAME TO " + name);
        }
    } catch (...) {
        n.exec("SELECT pg_advisory_unlock(7887453213541990402)");
        throw;
    }
    n.exec("SELECT pg_advisory_unlock(7887453213541990402)");
    return name;
}

/// A fresh, migrated database for one test case.
class scratch_db {
public:
    explicit scratch_db(bool run_migrations = true)
        : admin_base_(require_env("MQLEDGER_TEST_DATABASE_URL")),
          app_base_(require_env("MQLEDGER_TEST_APP_DATABASE_URL")) {
        static std::atomic<unsigned> counter{0};
        std::random_device rd;
        name_ = "t_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) + "_" + std::to_string(rd() % 100000);
        const std::string tmpl = run_migrations ? migrated_template(admin_base_) : std::string("template0");
        {
            pqxx::connection c(admin_base_);
            pqxx::nontransaction n(c);
            n.exec("CREATE DATABASE " + name_ + " TEMPLATE " + tmpl + " ENCODING 'UTF8'");
        }
        admin_url_ = with_database(admin_base_, name_);
        app_url_ = with_database(app_base_, name_);
    }
    ~scratch_db() {
        try {
            pqxx::connection c(admin_base_);
            pqxx::nontransaction n(c);
            n.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
        } catch (...) {
            // Leaves a t_* database behind; harmless, and a destructor must not throw.
        }
    }
    scratch_db(const scratch_db&) = delete;
    scratch_db& operator=(const scratch_db&) = delete;

    [[nodiscard]] const std::string& name() const { return name_; }
    /// Superuser on the scratch database.
    [[nodiscard]] const std::string& admin_url() const { return admin_url_; }
    /// The daemon's role (member of mqledger_app) on the scratch database.
    [[nodiscard]] const std::string& app_url() const { return app_url_; }

    /// Runs `sql` as the superuser and returns the first column of the first row (or "").
    std::string admin_scalar(const std::string& sql) const {
        pqxx::connection c(admin_url_);
        pqxx::work w(c);
        const auto r = w.exec(sql);
        w.commit();
        return r.empty() || r[0].empty() || r[0][0].is_null() ? std::string() : r[0][0].as<std::string>();
    }

private:
    std::string admin_base_;
    std::string app_base_;
    std::string name_;
    std::string admin_url_;
    std::string app_url_;
};

} // namespace mqledger::test
