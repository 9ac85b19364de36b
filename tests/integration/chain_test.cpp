// Integration tests of the hash chain: tampering is found with its position, and the auditor's
// psql + sha256sum recipe in README.md ("For auditors") agrees with the store.
#include "tests/integration/pg_fixture.h"

#include "ledger/clock.h"
#include "ledger/store/event_store.h"
#include "ledger/store/verify.h"

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>

using namespace mqledger;
using namespace mqledger::store;
using mqledger::test::scratch_db;

namespace {

// A varied log: several streams, multi-event appends, unicode and escapes in data.
void seed(const scratch_db& db, int appends) {
    manual_clock clk(time_point(std::chrono::microseconds(1'763'899'200'123'456)));
    event_store store(db.app_url(), clk);
    for (int i = 0; i < appends; ++i) {
        append_request r;
        const auto stream = "instance-" + std::to_string(i % 5);
        boost::json::object data{{"i", i}, {"text", "naïve \"quoted\" \\ tab\t 中文 😀"}, {"nested", {{"b", true}, {"aa", nullptr}}}};
        r.streams.push_back({stream, any_version, {{"instance.tested", data, clk.now() - std::chrono::hours(i)}}});
        if (i % 7 == 0) r.streams.push_back({"account-1", any_version, {{"account.charged", {{"amount", -i}}, clk.now()}}});
        r.metadata = {{"actor", "chain-test"}, {"correlation_id", std::to_string(i)}};
        REQUIRE(store.append(std::move(r)).ok());
        clk.advance_to(clk.now() + std::chrono::microseconds(777));
    }
}

// Superuser with triggers off: what an attacker with the database's keys could do.
void tamper(const scratch_db& db, const std::string& sql) {
    pqxx::connection c(db.admin_url());
    pqxx::work w(c);
    w.exec("SET LOCAL session_replication_role = replica");
    w.exec(sql);
    w.commit();
}

std::string hash_chain_md() {
    const auto path = std::filesystem::path(__FILE__).parent_path() / "../../README.md";
    std::ifstream in(path);
    REQUIRE(in.good());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The recipe: the ```bash block after the line "<!-- recipe -->".
std::string recipe() {
    const auto md = hash_chain_md();
    const auto marker = md.find("<!-- recipe -->");
    REQUIRE(marker != std::string::npos);
    const auto start = md.find("```bash\n", marker);
    REQUIRE(start != std::string::npos);
    const auto end = md.find("\n```", start + 8);
    REQUIRE(end != std::string::npos);
    return md.substr(start + 8, end - start - 8 + 1);
}

struct run_result { int status; std::string output; };

run_result run_recipe(const std::string& url) {
    const auto script = std::filesystem::temp_directory_path() / ("mqledger_recipe_" + std::to_string(::getpid()) + ".sh");
    {
        std::ofstream out(script);
        out << recipe();
    }
    const std::string cmd = "bash '" + script.string() + "' '" + url + "' 2>&1";
    run_result r{-1, ""};
    FILE* p = ::popen(cmd.c_str(), "r");
    REQUIRE(p != nullptr);
    std::array<char, 4096> buf{};
    while (const auto n = std::fread(buf.data(), 1, buf.size(), p)) r.output.append(buf.data(), n);
    const int st = ::pclose(p);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    std::filesystem::remove(script);
    return r;
}

} // namespace

TEST_CASE("chain: an intact log verifies, and the psql + sha256sum recipe agrees on the head", "[store][chain]") {
    scratch_db db;
    seed(db, 60);
    const auto rep = verify_chain(db.app_url());
    REQUIRE(rep.ok);
    CHECK(rep.events == 60 + 9);
    const auto shell = run_recipe(db.app_url());
    INFO(shell.output);
    CHECK(shell.status == 0);
    CHECK_THAT(shell.output, Catch::Contains("chain ok: " + std::to_string(rep.events) + " events, head " + rep.head_hash));
}

TEST_CASE("chain: an empty log verifies", "[store][chain]") {
    scratch_db db;
    const auto rep = verify_chain(db.app_url());
    CHECK(rep.ok);
    CHECK(rep.events == 0);
    const auto shell = run_recipe(db.app_url());
    INFO(shell.output);
    CHECK(shell.status == 0);
}

TEST_CASE("chain: a row altered with triggers off is found, with its position, by the check and the recipe", "[store][chain]") {
    scratch_db db;
    seed(db, 30);
    tamper(db, "UPDATE events SET data = jsonb_set(data, '{i}', '999') WHERE position = 17");
    const auto rep = verify_chain(db.app_url());
    CHECK_FALSE(rep.ok);
    REQUIRE(rep.bad_position);
    CHECK(*rep.bad_position == 17);
    CHECK_THAT(rep.reason, Catch::Contains("hash mismatch"));
    const auto shell = run_recipe(db.app_url());
    INFO(shell.output);
    CHECK(shell.status == 1);
    CHECK_THAT(shell.output, Catch::Contains("position 17"));
}

TEST_CASE("chain: a changed recorded_at or metadata is found too", "[store][chain]") {
    scratch_db db;
    seed(db, 10);
    tamper(db, "UPDATE events SET recorded_at = recorded_at + interval '1 microsecond' WHERE position = 4");
    auto rep = verify_chain(db.app_url());
    CHECK(rep.bad_position == std::optional<std::int64_t>(4));
    scratch_db db2;
    seed(db2, 10);
    tamper(db2, "UPDATE events SET metadata = '{\"actor\": \"mallory\"}' WHERE position = 6");
    rep = verify_chain(db2.app_url());
    CHECK(rep.bad_position == std::optional<std::int64_t>(6));
}

TEST_CASE("chain: a deleted row is found, with its position", "[store][chain]") {
    scratch_db db;
    seed(db, 30);
    tamper(db, "DELETE FROM events WHERE position = 12");
    const auto rep = verify_chain(db.app_url());
    CHECK_FALSE(rep.ok);
    CHECK(rep.bad_position == std::optional<std::int64_t>(13));
    CHECK_THAT(rep.reason, Catch::Contains("12 is missing"));
    const auto shell = run_recipe(db.app_url());
    INFO(shell.output);
    CHECK(shell.status == 1);
    CHECK_THAT(shell.output, Catch::Contains("position 13"));
}

TEST_CASE("chain: a deleted last row is not a break (the head an auditor kept shows it)", "[store][chain]") {
    scratch_db db;
    seed(db, 5);
    const auto before = verify_chain(db.app_url());
    tamper(db, "DELETE FROM events WHERE position = " + std::to_string(before.head_position));
    const auto after = verify_chain(db.app_url());
    CHECK(after.ok);
    CHECK(after.head_hash != before.head_hash);  // compare with the kept GET /v1/ledger/head digest
}

TEST_CASE("chain: two swapped rows are found, with the first position", "[store][chain]") {
    scratch_db db;
    seed(db, 30);
    // Rows 20 and 21 trade positions (each keeps its own contents and hashes).
    tamper(db,
           "UPDATE events SET position = 1000000 WHERE position = 20;"
           "UPDATE events SET position = 20 WHERE position = 21;"
           "UPDATE events SET position = 21 WHERE position = 1000000");
    const auto rep = verify_chain(db.app_url());
    CHECK_FALSE(rep.ok);
    CHECK(rep.bad_position == std::optional<std::int64_t>(20));
    const auto shell = run_recipe(db.app_url());
    INFO(shell.output);
    CHECK(shell.status == 1);
    CHECK_THAT(shell.output, Catch::Contains("position 20"));
}

TEST_CASE("chain: a forged row appended with a correct-looking own hash but a broken link is found at its position (the link to the row before it breaks)",
          "[store][chain]") {
    scratch_db db;
    seed(db, 30);
    // The forger computes the row's own hash exactly as the README defines it, over a made-up
    // prev_hash: the row is self-consistent, the link to position 30 is not.
    const auto head = verify_chain(db.app_url()).head_position;
    const auto next = std::to_string(head + 1);
    tamper(db,
           "INSERT INTO events (position, stream, stream_version, type, data, metadata, effective_at, recorded_at, "
           "prev_hash, hash) "
           "SELECT " + next + ", s, 1, type, data, metadata, eff, rec, p, "
           "encode(sha256(convert_to(concat_ws(E'\\n', p, " + next + ", s, 1, type, (extract(epoch FROM eff) * 1000000)::bigint, "
           "(extract(epoch FROM rec) * 1000000)::bigint, data::text, metadata::text), 'UTF8')), 'hex') "
           "FROM (SELECT 'instance-forged'::text AS s, repeat('f', 64) AS p, type, data, metadata, "
           "effective_at AS eff, recorded_at AS rec FROM events WHERE position = " + std::to_string(head) + ") x");
    const auto rep = verify_chain(db.app_url());
    CHECK_FALSE(rep.ok);
    CHECK(rep.bad_position == std::optional<std::int64_t>(head + 1));
    const auto shell = run_recipe(db.app_url());
    INFO(shell.output);
    CHECK(shell.status == 1);
    CHECK_THAT(shell.output, Catch::Contains("position " + next));
}
