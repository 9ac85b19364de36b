// Integration tests of the schema: migrations, readiness, and the append-only guarantees.
#include "tests/integration/pg_fixture.h"

#include "ledger/clock.h"
#include "ledger/store/event_store.h"
#include "ledger/store/migrate.h"

using namespace mqledger;
using namespace mqledger::store;
using mqledger::test::scratch_db;

namespace {

void seed(const scratch_db& db, int n) {
    manual_clock clk(time_point(std::chrono::seconds(1'700'000'000)));
    event_store store(db.app_url(), clk);
    for (int i = 0; i < n; ++i) {
        append_request r;
        r.streams.push_back({"instance-s", i, {{"test.happened", {{"i", i}}, clk.now()}}});
        REQUIRE(store.append(std::move(r)).ok());
    }
}

// Runs `sql` on `url` (optionally after SET ROLE) and returns the error message, or "" if it ran.
std::string refusal(const std::string& url, const std::string& sql, const char* role = nullptr) {
    try {
        pqxx::connection c(url);
        pqxx::work w(c);
        if (role != nullptr) w.exec(std::string("SET ROLE ") + role);
        w.exec(sql);
        w.commit();
        return "";
    } catch (const pqxx::sql_error& e) {
        return e.what();
    }
}

} // namespace

TEST_CASE("migrate: a second run is a no-op, and readiness follows the migrations", "[store][migrate]") {
    scratch_db db(false);
    CHECK(check_ready(db.app_url()) == readiness::not_migrated);
    CHECK(check_ready(db.admin_url()) == readiness::not_migrated);
    const auto first = migrate(db.admin_url());
    CHECK_FALSE(first.applied.empty());
    CHECK(first.applied.front() == "0001_events.sql");
    CHECK(first.already.empty());
    const auto second = migrate(db.admin_url());
    CHECK(second.applied.empty());
    CHECK(second.already == first.applied);
    CHECK(check_ready(db.app_url()) == readiness::ready);  // the daemon's role can check too
}

TEST_CASE("migrate: an applied migration whose checksum changed is an error", "[store][migrate]") {
    scratch_db db;
    db.admin_scalar("UPDATE schema_migrations SET checksum = 'tampered' WHERE name = '0001_events.sql'");
    CHECK_THROWS_WITH(migrate(db.admin_url()), Catch::Contains("0001_events.sql") && Catch::Contains("checksum"));
    CHECK(check_ready(db.admin_url()) == readiness::not_migrated);
}

TEST_CASE("check_ready: unreachable for a bad URL, never throws", "[store][migrate]") {
    CHECK(check_ready("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2") == readiness::unreachable);
    CHECK(check_ready("this is not a connection string") == readiness::unreachable);
    CHECK_THROWS_AS(migrate("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"), std::runtime_error);
}

TEST_CASE("events: UPDATE, DELETE and TRUNCATE are refused for the owner and for the daemon's role", "[store][schema]") {
    scratch_db db;
    seed(db, 3);
    for (const char* role : {static_cast<const char*>(nullptr), "mqledger_app"}) {
        INFO("role: " << (role ? role : "superuser"));
        CHECK_THAT(refusal(db.admin_url(), "UPDATE events SET type = 'x' WHERE position = 2", role),
                   Catch::Contains("append-only") || Catch::Contains("permission denied"));
        CHECK_THAT(refusal(db.admin_url(), "DELETE FROM events WHERE position = 2", role),
                   Catch::Contains("append-only") || Catch::Contains("permission denied"));
        CHECK_THAT(refusal(db.admin_url(), "TRUNCATE events", role),
                   Catch::Contains("append-only") || Catch::Contains("permission denied"));
    }
    // The trigger, not only the grant, stops the owner.
    CHECK_THAT(refusal(db.admin_url(), "DELETE FROM events"), Catch::Contains("append-only: DELETE refused"));
    CHECK_THAT(refusal(db.admin_url(), "TRUNCATE events"), Catch::Contains("append-only: TRUNCATE refused"));
    // The daemon's own login role is refused as well, and may insert and select.
    CHECK_THAT(refusal(db.app_url(), "UPDATE events SET type = 'x'"), Catch::Contains("permission denied"));
    CHECK_THAT(refusal(db.app_url(), "DELETE FROM events"), Catch::Contains("permission denied"));
    CHECK_THAT(refusal(db.app_url(), "TRUNCATE events"), Catch::Contains("permission denied"));
    CHECK(refusal(db.app_url(), "SELECT count(*) FROM events").empty());
    CHECK(refusal(db.app_url(), "SELECT count(*) FROM schema_migrations").empty());
    CHECK(db.admin_scalar("SELECT count(*) FROM events") == "3");
}

TEST_CASE("events: an infinite effective_at or recorded_at is refused at insert, so readers and the chain check never meet one", "[store][schema]") {
    scratch_db db;
    seed(db, 1);
    const std::string row =
        "INSERT INTO events (position, stream, stream_version, type, data, metadata, effective_at, recorded_at, prev_hash, hash) "
        "SELECT 2, 'instance-inf', 1, 'instance.deployed', '{}', '{}', %s, %s, hash, repeat('0', 64) FROM events WHERE position = 1";
    auto sql = [&](const char* eff, const char* rec) {
        std::string s = row;
        s.replace(s.find("%s"), 2, eff);
        s.replace(s.find("%s"), 2, rec);
        return s;
    };
    CHECK_THAT(refusal(db.app_url(), sql("'infinity'", "now()")), Catch::Contains("events_times_finite"));
    CHECK_THAT(refusal(db.app_url(), sql("now()", "'-infinity'")), Catch::Contains("events_times_finite"));
    CHECK(db.admin_scalar("SELECT count(*) FROM events") == "1");
}
