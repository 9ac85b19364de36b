// `mqledger witness` against real daemons (issue 14; README.md "Merkle proofs and
// checkpoints"): the first checkpoint is trusted on first use, co-signed and posted; a grown tree
// is co-signed only along a verified consistency proof; the same tree again is nothing new
// (unless the log lost the co-signature); a fork (another history under the same key and
// origin), a rollback and a bad log signature are refused without posting and leave the state as
// it was; errors are exit 2; the loop serves its metrics and stops on SIGTERM. The daemons run a
// manual clock: every POST /v1/clock extends the tree and signs a checkpoint, so each test knows
// exactly which checkpoint the witness sees.
#include "tests/e2e/http_client.h"

#include "daemon/witness.h"
#include "ledger/store/checkpoint.h"
#include "ledger/store/merkle.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

using namespace mqledger;
using namespace mqledger::test;
namespace json = boost::json;

namespace {

constexpr std::string_view origin = "test.example/ledger";
const std::string w1_prefix = "\xE2\x80\x94 w1 ";

struct ledger_db {
    scratch_database db;
    ledger_db() { REQUIRE(run_mqledger({"migrate", "--database-url", db.url()}).exit_code == 0); }
};

std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The log's keys and the witness's, as PEM files (OpenSSL's command line, as an operator would).
struct key_files {
    temp_dir dir;
    std::string log, log_pub, other_log, w1, w1_pub;
    key_files() {
        const auto make = [this](const std::string& name, std::string& priv, std::string* pub) {
            priv = (dir.path() / (name + ".pem")).string();
            REQUIRE(run_program("openssl", {"genpkey", "-algorithm", "ed25519", "-out", priv}).exit_code == 0);
            if (pub) {
                *pub = (dir.path() / (name + ".pub.pem")).string();
                REQUIRE(run_program("openssl", {"pkey", "-in", priv, "-pubout", "-out", *pub}).exit_code == 0);
            }
        };
        make("log", log, &log_pub);
        make("other-log", other_log, nullptr);
        make("w1", w1, &w1_pub);
    }
};

std::vector<std::string> serve_args(std::uint16_t port, const std::string& db, const std::string& log_key,
                                    const key_files& k) {
    return {"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db, "--insecure-no-auth",
            "--log-format", "json", "--clock", "manual", "--clock-start", "2026-03-13T06:00:00Z", "--digest-key",
            log_key, "--checkpoint-origin", std::string(origin), "--witness-key", "w1=" + k.w1_pub};
}

void ok(const http_result& r, int status = 200) {
    INFO(r.body);
    REQUIRE(r.status == status);
}

// Accounts acc-FROM … acc-(TO-1), each opened and funded with AMOUNT + i: two events each.
void open_accounts(const http_client& c, int from, int to, int amount = 1000) {
    for (int i = from; i < to; ++i) {
        const auto id = "acc-" + std::to_string(i);
        ok(c.post("/v1/accounts", json::object{{"account_id", id}, {"currency", "CNY"}}), 201);
        ok(c.post("/v1/accounts/" + id + "/funds", json::object{{"amount", amount + i}, {"reference", "r" + std::to_string(i)}}));
    }
}

// Moving the manual clock signs a checkpoint of everything written so far.
void move_clock(const http_client& c) { ok(c.post("/v1/clock", json::object{{"advance_seconds", 60}})); }

checkpoint::note served_checkpoint(const http_client& c) {
    const auto r = c.get("/v1/ledger/checkpoint");
    ok(r);
    const auto n = checkpoint::parse(r.body);
    REQUIRE(n);
    return *n;
}

checkpoint::public_key read_public(const std::string& path) { return checkpoint::public_key::from_pem(slurp(path)); }

std::size_t count(std::string_view text, std::string_view what) {
    std::size_t n = 0;
    for (auto at = text.find(what); at != std::string_view::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// The witness's command line (log format JSON, so that its lines are checked as fields).
struct witness_files {
    temp_dir dir;
    std::string state = (dir.path() / "w1.state").string();
};

std::vector<std::string> witness_args(std::uint16_t log_port, const key_files& k, const std::string& state,
                                      std::vector<std::string> extra = {"--witness-once"}) {
    std::vector<std::string> a{"witness",  "--log-url", "http://127.0.0.1:" + std::to_string(log_port), "--public-key",
                               k.log_pub, "--witness-signing-key",     k.w1,   "--witness-name",      "w1",  "--witness-state", state, "--log-format",
                               "json"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

run_result witness_once(std::uint16_t log_port, const key_files& k, const std::string& state,
                        std::vector<std::string> extra = {}) {
    extra.push_back("--witness-once");
    return run_mqledger(witness_args(log_port, k, state, std::move(extra)));
}

// A gauge or counter without labels, from a Prometheus text exposition; -1 when absent.
double metric(const std::string& exposition, const std::string& name) {
    std::istringstream in(exposition);
    for (std::string line; std::getline(in, line);)
        if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    return -1;
}

// The state the witness saved: a note signed by the log and co-signed by w1.
checkpoint::note saved_state(const std::string& path, const key_files& k) {
    const auto n = checkpoint::parse(slurp(path));
    REQUIRE(n);
    CHECK(checkpoint::verify(*n, origin, read_public(k.log_pub)));
    CHECK(checkpoint::verify_cosignature(*n, "w1", read_public(k.w1_pub)));
    return *n;
}

// A daemon on its own scratch database, with `accounts` accounts and a checkpoint of them.
struct log_daemon {
    ledger_db ldb;
    std::uint16_t port = free_port();
    daemon_process d;
    log_daemon(const key_files& k, const std::string& log_key, int accounts, int amount = 1000)
        : d(serve_args(port, ldb.db.url(), log_key, k), port) {
        open_accounts(d.client(), 0, accounts, amount);
        move_clock(d.client());
    }
};

// A tree of `n` leaves (leaf i: SHA-256 of a 32-byte input made of i), read as tiles of level 0.
std::vector<merkle::hash> leaves(int n, unsigned char salt = 0) {
    std::vector<merkle::hash> out;
    for (int i = 0; i < n; ++i) {
        std::string input(32, static_cast<char>(salt));
        input[0] = static_cast<char>(i);
        out.push_back(merkle::leaf_hash(input));
    }
    return out;
}

merkle::tree_reader reader_of(const std::vector<merkle::hash>& l) {
    return merkle::tree_reader([&l](int level, std::int64_t index) {
        if (level != 0) throw std::out_of_range("only level 0 in this test");
        return l.at(static_cast<std::size_t>(index));
    });
}

checkpoint::note note_of(std::int64_t size, const merkle::hash& root, std::string o = std::string(origin)) {
    checkpoint::note n;
    n.origin = std::move(o);
    n.size = size;
    n.root = root;
    return n;
}

} // namespace

TEST_CASE("witness: the first checkpoint is trusted on first use, co-signed, posted and saved, and the same one again "
          "is nothing new",
          "[witness][e2e]") {
    const key_files k;
    log_daemon log(k, k.log, 2);
    const witness_files w;
    const auto c = log.d.client();
    const auto before = served_checkpoint(c);
    REQUIRE(before.size == 4);

    const auto r = witness_once(log.port, k, w.state);
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK(r.out.find("trusting this checkpoint on first use") != std::string::npos);
    CHECK(r.out.find("\"msg\":\"co-signed\"") != std::string::npos);

    // The daemon serves the note with w1's line, which verifies with w1's public key.
    const auto text = c.get("/v1/ledger/checkpoint").body;
    CHECK(text.find("\n" + w1_prefix) != std::string::npos);
    const auto after = checkpoint::parse(text);
    REQUIRE(after);
    CHECK(after->size == 4);
    CHECK(checkpoint::verify_cosignature(*after, "w1", read_public(k.w1_pub)));
    CHECK(c.get("/metrics").body.find("mqledger_checkpoint_cosigned{witness=\"w1\"} 1") != std::string::npos);

    // The state is that checkpoint, co-signed.
    const auto state = saved_state(w.state, k);
    CHECK(state.size == 4);
    CHECK(state.root == before.root);
    CHECK_FALSE(std::filesystem::exists(w.state + ".tmp"));

    // Again: nothing new, nothing posted, the state as it was.
    const auto saved = slurp(w.state);
    const auto again = witness_once(log.port, k, w.state);
    INFO(again.out << again.err);
    CHECK(again.exit_code == 0);
    CHECK(again.out.find("nothing new") != std::string::npos);
    CHECK(again.out.find("first use") == std::string::npos);
    CHECK(slurp(w.state) == saved);
    CHECK(count(c.get("/v1/ledger/checkpoint").body, w1_prefix) == 1);
}

TEST_CASE("witness: a grown tree is co-signed after its consistency proof from the saved size verifies",
          "[witness][e2e]") {
    const key_files k;
    log_daemon log(k, k.log, 1);
    const witness_files w;
    const auto c = log.d.client();
    REQUIRE(witness_once(log.port, k, w.state).exit_code == 0);
    REQUIRE(saved_state(w.state, k).size == 2);

    int from = 1;
    for (const int accounts : {3, 7}) {
        open_accounts(c, from, accounts, 5000);
        from = accounts;
        move_clock(c);
        const auto r = witness_once(log.port, k, w.state);
        INFO(r.out << r.err);
        REQUIRE(r.exit_code == 0);
        CHECK(r.out.find("\"msg\":\"co-signed\"") != std::string::npos);
        const auto n = served_checkpoint(c);
        CHECK(n.size == 2 * accounts);
        CHECK(checkpoint::verify_cosignature(n, "w1", read_public(k.w1_pub)));
        const auto state = saved_state(w.state, k);
        CHECK(state.size == n.size);
        CHECK(state.root == n.root);
    }
    // Both rounds asked the daemon for the proof from the size co-signed before.
    const auto daemon_log = log.d.stdout_text();
    CHECK(daemon_log.find("/v1/proofs/consistency?from=2&to=6") != std::string::npos);
    CHECK(daemon_log.find("/v1/proofs/consistency?from=6&to=14") != std::string::npos);
}

TEST_CASE("witness: a checkpoint of the co-signed size whose co-signature the log lost is co-signed again",
          "[witness][e2e]") {
    const key_files k;
    log_daemon log(k, k.log, 1);
    const witness_files w;
    const auto c = log.d.client();
    REQUIRE(witness_once(log.port, k, w.state).exit_code == 0);
    {
        pqxx::connection conn(log.ldb.db.url());
        pqxx::work tx(conn);
        // The superuser goes around the trigger that lets checkpoints only gain co-signatures.
        tx.exec0("SET LOCAL session_replication_role = replica");
        tx.exec0("UPDATE checkpoints SET cosignatures = '{}'");
        tx.commit();
    }
    REQUIRE(c.get("/v1/ledger/checkpoint").body.find(w1_prefix) == std::string::npos);
    const auto r = witness_once(log.port, k, w.state);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("co-signing again") != std::string::npos);
    CHECK(checkpoint::verify_cosignature(served_checkpoint(c), "w1", read_public(k.w1_pub)));
}

TEST_CASE("witness: a fork (another history under the same log key and origin) is refused: exit 1, \"fork "
          "detected\", nothing posted, the state kept",
          "[witness][e2e]") {
    const key_files k;
    log_daemon a(k, k.log, 2);
    const witness_files w;
    REQUIRE(witness_once(a.port, k, w.state).exit_code == 0);
    const auto saved = slurp(w.state);
    const auto old = saved_state(w.state, k);
    REQUIRE(old.size == 4);

    // Log B: the same key and origin, other amounts. Same size, or a larger tree that does not
    // extend A's.
    int accounts = 0;
    std::string reason;
    SECTION("the same tree size with another root") {
        accounts = 2;
        reason = "the same tree size with another root";
    }
    SECTION("a larger tree whose consistency proof from the co-signed size fails") {
        accounts = 5;
        reason = "the consistency proof from 4 to 10 does not verify";
    }
    log_daemon b(k, k.log, accounts, 7000);
    const auto forked = served_checkpoint(b.d.client());
    REQUIRE(forked.size == 2 * accounts);
    REQUIRE(checkpoint::verify(forked, origin, read_public(k.log_pub)));
    REQUIRE(forked.root != old.root);

    const auto r = witness_once(b.port, k, w.state);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("\"level\":\"error\",\"msg\":\"fork detected\"") != std::string::npos);
    CHECK(r.out.find("\"old_size\":4") != std::string::npos);
    CHECK(r.out.find("\"old_root\":\"" + merkle::to_hex(old.root) + "\"") != std::string::npos);
    CHECK(r.out.find("\"new_size\":" + std::to_string(forked.size)) != std::string::npos);
    CHECK(r.out.find("\"new_root\":\"" + merkle::to_hex(forked.root) + "\"") != std::string::npos);
    CHECK(r.out.find(reason) != std::string::npos);
    CHECK(slurp(w.state) == saved);
    CHECK(b.d.client().get("/v1/ledger/checkpoint").body.find(w1_prefix) == std::string::npos);
    CHECK(b.d.stdout_text().find("/v1/ledger/checkpoint/cosignatures") == std::string::npos);
    CHECK(b.d.client().get("/metrics").body.find("mqledger_checkpoint_cosigned{witness=\"w1\"} 0") != std::string::npos);

    // The honest log still gets co-signed from the kept state.
    const auto honest = witness_once(a.port, k, w.state);
    INFO(honest.out);
    CHECK(honest.exit_code == 0);
}

TEST_CASE("witness: a rollback (the log's tree smaller than the one co-signed) is refused", "[witness][e2e]") {
    const key_files k;
    log_daemon a(k, k.log, 3);
    const witness_files w;
    REQUIRE(witness_once(a.port, k, w.state).exit_code == 0);
    const auto saved = slurp(w.state);

    log_daemon smaller(k, k.log, 1);
    const auto r = witness_once(smaller.port, k, w.state);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("fork detected") != std::string::npos);
    CHECK(r.out.find("rollback") != std::string::npos);
    CHECK(r.out.find("\"old_size\":6") != std::string::npos);
    CHECK(r.out.find("\"new_size\":2") != std::string::npos);
    CHECK(slurp(w.state) == saved);
    CHECK(smaller.d.client().get("/v1/ledger/checkpoint").body.find(w1_prefix) == std::string::npos);
}

TEST_CASE("witness: a checkpoint without a valid signature of the log's key is refused", "[witness][e2e]") {
    const key_files k;
    log_daemon impostor(k, k.other_log, 1);   // signs with another key under the same origin
    const witness_files w;

    SECTION("on first use") {}
    SECTION("with a state") {
        log_daemon honest(k, k.log, 1);
        REQUIRE(witness_once(honest.port, k, w.state).exit_code == 0);
    }
    const auto saved = slurp(w.state);
    const auto r = witness_once(impostor.port, k, w.state);
    INFO(r.out << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.out.find("bad log signature") != std::string::npos);
    CHECK(slurp(w.state) == saved);
    CHECK(impostor.d.client().get("/v1/ledger/checkpoint").body.find(w1_prefix) == std::string::npos);

    // --key-name other than the log's: the log's own signature does not count either.
    log_daemon honest(k, k.log, 1);
    const witness_files fresh;
    const auto named = witness_once(honest.port, k, fresh.state, {"--key-name", "another.example/log"});
    INFO(named.out);
    CHECK(named.exit_code == 1);
    CHECK(named.out.find("bad log signature") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(fresh.state));
}

TEST_CASE("witness: an unreachable log, a log answering errors and unreadable files are errors (exit 2), not "
          "refusals",
          "[witness][e2e]") {
    const key_files k;
    const witness_files w;

    const auto unreachable = witness_once(free_port(), k, w.state);
    INFO(unreachable.out << unreachable.err);
    CHECK(unreachable.exit_code == 2);
    CHECK(unreachable.out.find("log unreachable") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(w.state));

    auto missing_key = witness_args(free_port(), k, w.state);
    missing_key[6] = (w.dir.path() / "no-such.pem").string();   // --witness-signing-key
    REQUIRE(missing_key[5] == "--witness-signing-key");
    const auto r = run_mqledger(missing_key);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("cannot read") != std::string::npos);

    const auto garbage = w.dir.write("garbage.state", "not a checkpoint\n");
    const auto bad_state = witness_once(free_port(), k, garbage.string());
    CHECK(bad_state.exit_code == 2);
    CHECK(bad_state.err.find("not a signed checkpoint note") != std::string::npos);

    // A daemon with authentication refuses the witness without a token; with one it co-signs.
    const ledger_db ldb;
    const temp_dir tdir;
    const auto tokens = tdir.write("tokens", "auditor witness-w1 " + sha256_hex("w1-secret") + "\nadmin ada " +
                                                 sha256_hex("admin-secret") + "\n");
    const auto port = free_port();
    auto args = serve_args(port, ldb.db.url(), k.log, k);
    args.erase(std::find(args.begin(), args.end(), "--insecure-no-auth"));
    args.push_back("--tokens");
    args.push_back(tokens.string());
    daemon_process d(args, port);
    const auto admin = http_client::bearer("admin-secret");
    ok(d.client().post("/v1/accounts", json::object{{"account_id", "acc-1"}, {"currency", "CNY"}}, admin), 201);
    ok(d.client().post("/v1/clock", json::object{{"advance_seconds", 60}}, admin));

    const auto no_token = witness_once(port, k, w.state);
    INFO(no_token.out);
    CHECK(no_token.exit_code == 2);
    CHECK(no_token.out.find("\"status\":401") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(w.state));

    const auto token_file = tdir.write("w1.token", "w1-secret\n");
    const auto with_token = witness_once(port, k, w.state, {"--token-file", token_file.string()});
    INFO(with_token.out);
    CHECK(with_token.exit_code == 0);
    CHECK(saved_state(w.state, k).size == 1);
}

TEST_CASE("witness: without --once it runs a round every --witness-interval, survives errors and forks, serves "
          "mqledger_witness_* on --metrics-listen, and stops on SIGTERM",
          "[witness][e2e]") {
    const key_files k;
    log_daemon a(k, k.log, 1);
    const witness_files w;
    const auto metrics_port = free_port();
    daemon_process wp(witness_args(a.port, k, w.state,
                                   {"--witness-interval", "1", "--metrics-listen", "127.0.0.1:" + std::to_string(metrics_port)}),
                      metrics_port);
    const http_client m(metrics_port);
    const auto wait_for = [&](const std::string& name, double at_least) {
        for (int i = 0; i < 100; ++i) {
            if (metric(m.get("/metrics").body, name) >= at_least) return true;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        INFO(m.get("/metrics").body << wp.stdout_text());
        return false;
    };
    REQUIRE(wait_for("mqledger_witness_cosigned_total", 1));
    auto text = m.get("/metrics").body;
    CHECK(metric(text, "mqledger_witness_tree_size") == 2);
    CHECK(metric(text, "mqledger_witness_last_cosigned_timestamp_seconds") > 1.7e9);
    CHECK(metric(text, "mqledger_witness_forks_total") == 0);
    CHECK(metric(text, "mqledger_witness_errors_total") == 0);

    // The log grows: the next rounds co-sign the larger tree.
    open_accounts(a.d.client(), 1, 2);
    move_clock(a.d.client());
    REQUIRE(wait_for("mqledger_witness_tree_size", 4));
    CHECK(metric(m.get("/metrics").body, "mqledger_witness_cosigned_total") == 2);

    // The log goes away: errors are counted, the witness goes on.
    a.d.stop();
    REQUIRE(wait_for("mqledger_witness_errors_total", 1));
    CHECK(wp.running());

    CHECK(wp.stop() == 0);
    CHECK(wp.stdout_text().find("\"msg\":\"stopping\"") != std::string::npos);
    CHECK(saved_state(w.state, k).size == 4);

    // A forked log under the same key: refused every round, counted, still running.
    log_daemon b(k, k.log, 2, 9000);
    const auto port2 = free_port();
    daemon_process wf(witness_args(b.port, k, w.state,
                                   {"--witness-interval", "1", "--metrics-listen", "127.0.0.1:" + std::to_string(port2)}),
                      port2);
    const http_client m2(port2);
    bool forked = false;
    for (int i = 0; i < 100 && !forked; ++i) {
        forked = metric(m2.get("/metrics").body, "mqledger_witness_forks_total") >= 2;
        if (!forked) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    INFO(wf.stdout_text());
    CHECK(forked);
    text = m2.get("/metrics").body;
    CHECK(metric(text, "mqledger_witness_cosigned_total") == 0);
    CHECK(metric(text, "mqledger_witness_tree_size") == 4);   // from the state
    CHECK(wf.running());
    CHECK(wf.stop() == 0);
}

TEST_CASE("witness: the judgement: first use, same, growth along a consistency proof, fork, rollback, another log",
          "[witness]") {
    using witness::relation;
    const auto l = leaves(20);
    const auto t = reader_of(l);
    const auto at = [&](std::int64_t n) { return note_of(n, t.root(n)); };

    CHECK(witness::compare(std::nullopt, at(5)).what == relation::first_use);
    CHECK(witness::compare(at(5), at(5)).what == relation::same);
    CHECK(witness::compare(at(5), at(13)).what == relation::grows);
    const auto rollback = witness::compare(at(13), at(5));
    CHECK(rollback.what == relation::fork);
    CHECK(rollback.reason.find("rollback") != std::string::npos);
    const auto other = leaves(20, 7);
    const auto ot = reader_of(other);
    CHECK(witness::compare(at(5), note_of(5, ot.root(5))).what == relation::fork);
    CHECK(witness::compare(at(5), note_of(13, t.root(13), "elsewhere.example/log")).what == relation::other_log);

    // Growth holds exactly along the log's own proof.
    for (std::int64_t m = 1; m < 20; ++m)
        for (std::int64_t n = m + 1; n <= 20; ++n) {
            INFO(m << " -> " << n);
            REQUIRE(witness::needs_proof(at(m)));
            REQUIRE(witness::proves_growth(at(m), at(n), t.consistency_proof(m, n)));
            REQUIRE_FALSE(witness::proves_growth(at(m), note_of(n, ot.root(n)), t.consistency_proof(m, n)));
            REQUIRE_FALSE(witness::proves_growth(note_of(m, ot.root(m)), at(n), t.consistency_proof(m, n)));
        }
    auto truncated = t.consistency_proof(3, 17);
    truncated.pop_back();
    CHECK_FALSE(witness::proves_growth(at(3), at(17), truncated));

    // From the empty tree every tree grows, without a proof (RFC 9162 defines none from 0).
    CHECK_FALSE(witness::needs_proof(at(0)));
    CHECK(witness::proves_growth(at(0), at(9), {}));
    CHECK_FALSE(witness::proves_growth(note_of(0, t.root(1)), at(9), {}));
}
