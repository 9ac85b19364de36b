// `mqledger verify` and `mqledger history` on a hot standby (issue 16): an auditor belongs on a
// replica, away from the primary. A private primary cluster and a real streaming replica of it
// (both run by deploy/pg.sh: `start`, then `standby`, a pg_basebackup -R), a real daemon writing
// to the primary over HTTP, and the auditor's commands pointed at the replica. The replica
// refuses every write (CREATE TEMP TABLE included), so these pass only if the audit is read-only.
// It must still be an audit: a projection row altered on the primary reaches the replica, and
// `verify` there reports it.
#include "tests/e2e/http_client.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

using namespace mqledger::test;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {




void ok(const http_result& r, int status = 200) {
    INFO(r.body);
    REQUIRE(r.status == status);
}

// Waits until the replica has replayed everything the primary has written so far.
void wait_replayed(const std::string& primary, const std::string& replica) {
    std::string lsn;
    {
        pqxx::connection c(primary);
        pqxx::nontransaction tx(c);
        lsn = tx.exec("SELECT pg_current_wal_lsn()::text")[0][0].c_str();
    }
    pqxx::connection c(replica);
    for (int i = 0; i < 300; ++i) {
        pqxx::nontransaction tx(c);
        if (tx.exec_params("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn)[0][0].as<bool>()) return;
        std::this_thread::sleep_for(100ms);
    }
    FAIL("the replica did not replay up to " << lsn << " within 30 s");
}

} // namespace

TEST_CASE("hot standby: verify and history run on a streaming replica without writing, and verify there still finds a "
          "projection row altered on the primary (issue 16, verify on a replica)",
          "[e2e][standby]") {
    const temp_dir scratch;   // declared before the clusters: removed after they stop
    const auto& dir = scratch.path();
    const pg_cluster primary{dir / "primary", free_port(), {}};
    primary.pg("start");
    const auto primary_admin = primary.pg("admin-url");
    const auto primary_app = primary.pg("url");
    REQUIRE(run_mqledger({"migrate", "--database-url", primary_admin}).exit_code == 0);

    // A ledger written by the real daemon: two accounts, instances bought, deployed, billed by
    // the hour and stopped for debt by timers as the manual clock moves.
    {
        const auto port = free_port();
        daemon_process d({"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", primary_app,
                          "--insecure-no-auth", "--clock", "manual", "--clock-start", "2026-03-13T06:00:00Z"},
                         port);
        const auto c = d.client();
        for (const auto& [id, funds] : {std::pair{"acc-1", 300}, std::pair{"acc-2", 100000}}) {
            ok(c.post("/v1/accounts", json::object{{"account_id", id}, {"currency", "CNY"}}), 201);
            ok(c.post(std::string("/v1/accounts/") + id + "/funds", json::object{{"amount", funds}, {"reference", "seed"}}));
        }
        for (const auto& [id, account] : {std::pair{"k-1", "acc-1"}, std::pair{"k-2", "acc-2"}}) {
            ok(c.post("/v1/instances",
                      json::object{{"instance_id", id}, {"account_id", account}, {"product", "kafka"}, {"billing", "payg"},
                                   {"timezone", "Asia/Shanghai"}, {"price", json::object{{"hourly", 120}}}}),
               201);
            ok(c.post(std::string("/v1/instances/") + id + "/actions/deploy", json::object{}));
        }
        ok(c.post("/v1/clock", json::object{{"advance_seconds", 6 * 3600}}));
    }

    const pg_cluster replica{dir / "replica", free_port(), {{"MQLEDGER_PG_PRIMARY_PORT", std::to_string(primary.port)}}};
    replica.pg("standby");
    const auto replica_admin = replica.pg("admin-url");
    wait_replayed(primary_admin, replica_admin);
    {
        pqxx::connection c(replica_admin);
        pqxx::nontransaction tx(c);
        REQUIRE(tx.exec("SELECT pg_is_in_recovery()")[0][0].as<bool>());
    }

    // verify: the chain, every unit decided again, the projections equal to a rebuild.
    const auto on_replica = run_mqledger({"verify", "--database-url", replica_admin}, {}, 120s);
    INFO(on_replica.out << on_replica.err);
    REQUIRE(on_replica.exit_code == 0);
    CHECK(on_replica.out.find("projections: ok") != std::string::npos);
    const auto on_primary = run_mqledger({"verify", "--database-url", primary_admin}, {}, 120s);
    REQUIRE(on_primary.exit_code == 0);
    CHECK(on_primary.out == on_replica.out);

    // history: the timeline and a past state, the same on both.
    for (const std::vector<std::string>& args : {std::vector<std::string>{"history", "k-1", "--format", "json"},
                                                std::vector<std::string>{"history", "k-1", "--as-of", "2026-03-13T07:30:00Z"}}) {
        auto a = args;
        a.insert(a.end(), {"--database-url", replica_admin});
        const auto r = run_mqledger(a);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        auto b = args;
        b.insert(b.end(), {"--database-url", primary_admin});
        CHECK(run_mqledger(b).out == r.out);
    }
    const auto timeline = run_mqledger({"history", "k-1", "--database-url", replica_admin});
    CHECK(timeline.out.find("instance.deployed") != std::string::npos);

    // Rows altered on the primary reach the replica; verify there reports each, with its table
    // and side: a changed row, a missing one, an extra one. A rebuild on the primary repairs the
    // tables between the cases.
    const auto alter = [&](const std::string& sql) {
        pqxx::connection c(primary_admin);
        pqxx::work w(c);
        w.exec(sql);
        w.commit();
    };
    struct forgery {
        std::string sql;
        std::string says;
    };
    for (const auto& f : {forgery{"UPDATE accounts SET balance = balance + 1 WHERE account_id = 'acc-2'",
                                  "first difference: table accounts, only in the live side"},
                          forgery{"DELETE FROM timers WHERE instance_id = 'k-2'",
                                  "first difference: table timers, only in the rebuilt side"},
                          forgery{"INSERT INTO timers SELECT instance_id, kind, due_at + interval '1 day' FROM timers LIMIT 1",
                                  "first difference: table timers, only in the live side"}}) {
        REQUIRE(run_mqledger({"rebuild", "--database-url", primary_admin}, {}, 120s).exit_code == 0);
        alter(f.sql);
        wait_replayed(primary_admin, replica_admin);
        const auto r = run_mqledger({"verify", "--database-url", replica_admin}, {}, 120s);
        INFO(f.sql << "\n" << r.out << r.err);
        CHECK(r.exit_code == 1);
        CHECK(r.out.find("projections: DIFFER") != std::string::npos);
        CHECK(r.out.find(f.says) != std::string::npos);
    }
}
