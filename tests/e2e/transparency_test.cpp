// The Merkle tree over the log and its signed checkpoints, against the real daemon (issue 14;
// README.md "Merkle proofs and checkpoints"): every proof the daemon serves
// verifies against its signed checkpoint, across tile boundaries and resumed extensions; the
// refusals are the documented 404/422; `verify --since-checkpoint` checks only what came after a
// kept checkpoint; and a history rewritten by a superuser, re-chained and re-treed and signed
// again with the real key, fails against the checkpoint an auditor kept.
#include "tests/e2e/http_client.h"

#include "ledger/canonical_json.h"
#include "ledger/codec.h"
#include "ledger/store/checkpoint.h"
#include "ledger/store/event_store.h"
#include "ledger/store/hash_chain.h"
#include "ledger/store/merkle.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>
#include <pqxx/pqxx>

#include <fstream>
#include <iterator>
#include <map>

using namespace mqledger;
using namespace mqledger::test;
namespace json = boost::json;

namespace {

struct ledger_db {
    scratch_database db;
    ledger_db() { REQUIRE(run_mqledger({"migrate", "--database-url", db.url()}).exit_code == 0); }
};

struct keys {
    temp_dir dir;
    std::string priv, pub;
    keys() {
        priv = (dir.path() / "log.pem").string();
        pub = (dir.path() / "log.pub.pem").string();
        REQUIRE(run_program("openssl", {"genpkey", "-algorithm", "ed25519", "-out", priv}).exit_code == 0);
        REQUIRE(run_program("openssl", {"pkey", "-in", priv, "-pubout", "-out", pub}).exit_code == 0);
    }
};

std::vector<std::string> serve_args(std::uint16_t port, const std::string& db, const std::string& key = "") {
    std::vector<std::string> a{"serve",  "--listen", "127.0.0.1:" + std::to_string(port), "--database-url", db,
                               "--insecure-no-auth", "--log-format", "json", "--clock", "manual", "--clock-start",
                               "2026-03-13T06:00:00Z", "--checkpoint-origin", "test.example/ledger"};
    if (!key.empty()) {
        a.push_back("--digest-key");
        a.push_back(key);
    }
    return a;
}

void ok(const http_result& r, int status = 200) {
    INFO(r.body);
    REQUIRE(r.status == status);
}

void refused(const http_result& r, int status, std::string_view code) {
    INFO(r.body);
    CHECK(r.status == status);
    CHECK(r.error_code() == code);
}

// Accounts with funds: two events each.
void open_accounts(const http_client& c, int from, int to) {
    for (int i = from; i < to; ++i) {
        const auto id = "acc-" + std::to_string(i);
        ok(c.post("/v1/accounts", json::object{{"account_id", id}, {"currency", "CNY"}}), 201);
        ok(c.post("/v1/accounts/" + id + "/funds", json::object{{"amount", 1000 + i}, {"reference", "seed"}}));
    }
}

void move_clock(const http_client& c, int minutes) {
    ok(c.post("/v1/clock", json::object{{"advance_seconds", minutes * 60}}));
}

checkpoint::note checkpoint_of(const http_client& c, const std::string& query = "") {
    const auto r = c.get("/v1/ledger/checkpoint" + query);
    INFO(r.body);
    REQUIRE(r.status == 200);
    REQUIRE(r.header("Content-Type").starts_with("text/plain"));
    auto n = checkpoint::parse(r.body);
    REQUIRE(n);
    return *n;
}

std::vector<merkle::hash> hashes_of(const json::value& answer) {
    std::vector<merkle::hash> out;
    for (const auto& h : answer.at("hashes").as_array()) {
        const auto parsed = merkle::from_hex(h.as_string());
        REQUIRE(parsed);
        out.push_back(*parsed);
    }
    return out;
}

// RFC 9162's MTH, written out naively from the events' hashes: the tree the daemon's must equal.
merkle::hash naive_root(const std::vector<merkle::hash>& leaves, std::size_t begin, std::size_t end) {
    if (end - begin == 1) return leaves[begin];
    std::size_t k = 1;
    while (k * 2 < end - begin) k *= 2;
    return merkle::node_hash(naive_root(leaves, begin, begin + k), naive_root(leaves, begin + k, end));
}

std::vector<merkle::hash> leaves_of(const std::string& url) {
    std::vector<merkle::hash> out;
    for (const auto& e : store::read_all(url, 0, 1000000)) out.push_back(merkle::event_leaf(e.hash));
    return out;
}

std::string file_text(const std::filesystem::path& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

} // namespace

TEST_CASE("transparency: every inclusion and consistency proof the daemon serves verifies against its signed "
          "checkpoints, across tile boundaries and resumed extensions, and the tree is RFC 9162's over the "
          "events' hashes (issue 14)",
          "[e2e][transparency]") {
    ledger_db db;
    keys k;
    const auto pub = checkpoint::public_key::from_pem(file_text(k.pub));
    const auto port = free_port();
    daemon_process d(serve_args(port, db.db.url(), k.priv), port);
    const auto c = d.client();

    std::vector<checkpoint::note> kept;
    // 300 events in steps of 40 to 100: each clock move extends the stored tree from where it
    // stopped (partial tiles resumed) and signs a checkpoint; 256 is crossed on the way.
    for (const auto& [from, to] : {std::pair{0, 20}, {20, 70}, {70, 128}, {128, 129}, {129, 150}}) {
        open_accounts(c, from, to);
        move_clock(c, 1);
        kept.push_back(checkpoint_of(c));
        const auto& n = kept.back();
        CHECK(n.size == 2 * to);
        CHECK(n.origin == "test.example/ledger");
        CHECK(checkpoint::verify(n, "test.example/ledger", pub));
        const auto leaves = leaves_of(db.db.url());
        REQUIRE(static_cast<std::int64_t>(leaves.size()) == n.size);
        CHECK(n.root == naive_root(leaves, 0, leaves.size()));
    }
    const auto& last = kept.back();
    const auto leaves = leaves_of(db.db.url());

    SECTION("inclusion: every position in the newest tree and in every older checkpoint's tree") {
        for (const auto& n : kept)
            for (std::int64_t p = 1; p <= n.size; p += (n.size == last.size ? 1 : 7)) {
                const auto r = c.get("/v1/proofs/inclusion?position=" + std::to_string(p) +
                                     "&tree_size=" + std::to_string(n.size));
                INFO(r.body);
                REQUIRE(r.status == 200);
                CHECK(num(r.json.at("leaf_index")) == p - 1);
                CHECK(merkle::from_hex(r.json.at("leaf_hash").as_string()) == leaves[static_cast<std::size_t>(p - 1)]);
                CHECK(merkle::verify_inclusion(p - 1, n.size, leaves[static_cast<std::size_t>(p - 1)], hashes_of(r.json),
                                               n.root));
            }
        // Without tree_size: against the newest checkpoint.
        const auto r = c.get("/v1/proofs/inclusion?position=1");
        ok(r);
        CHECK(num(r.json.at("tree_size")) == last.size);
    }
    SECTION("consistency: between every pair of kept checkpoints, and each older one is still served") {
        for (std::size_t i = 0; i < kept.size(); ++i)
            for (std::size_t j = i; j < kept.size(); ++j) {
                const auto r = c.get("/v1/proofs/consistency?from=" + std::to_string(kept[i].size) +
                                     "&to=" + std::to_string(kept[j].size));
                ok(r);
                CHECK(merkle::verify_consistency(kept[i].size, kept[j].size, kept[i].root, kept[j].root,
                                                 hashes_of(r.json)));
            }
        for (const auto& n : kept) CHECK(checkpoint_of(c, "?tree_size=" + std::to_string(n.size)).root == n.root);
    }
    SECTION("an instance's events with ?proofs=true carry proofs against the newest checkpoint") {
        ok(c.post("/v1/instances",
                  json::object{{"instance_id", "k-1"}, {"account_id", "acc-1"}, {"product", "kafka"}, {"billing", "payg"},
                               {"timezone", "Asia/Shanghai"}, {"price", json::object{{"hourly", 120}}}}),
           201);
        ok(c.post("/v1/instances/k-1/actions/deploy", json::object{}));
        move_clock(c, 1);
        ok(c.post("/v1/instances/k-1/actions/stop", json::object{}));   // newer than the checkpoint
        const auto r = c.get("/v1/instances/k-1/events?proofs=true");
        ok(r);
        const auto n = checkpoint::parse(r.json.at("checkpoint").as_string());
        REQUIRE(n);
        const auto& items = r.json.at("items").as_array();
        REQUIRE(items.size() >= 3);
        for (const auto& item : items) {
            const auto p = num(item.at("position"));
            if (p > n->size) {
                CHECK(item.at("proof").is_null());
                continue;
            }
            const auto& proof = item.at("proof");
            CHECK(num(proof.at("tree_size")) == n->size);
            CHECK(merkle::verify_inclusion(p - 1, n->size, merkle::event_leaf(item.at("hash").as_string()),
                                           hashes_of(proof), n->root));
        }
        CHECK(items.back().at("proof").is_null());
        refused(c.get("/v1/instances/k-1/events?proofs=yes"), 422, "invalid");
    }
    SECTION("refusals: the documented error, nothing else") {
        const auto size = std::to_string(last.size);
        refused(c.get("/v1/proofs/inclusion"), 422, "invalid");
        refused(c.get("/v1/proofs/inclusion?position=0"), 422, "invalid");
        refused(c.get("/v1/proofs/inclusion?position=abc"), 422, "invalid");
        refused(c.get("/v1/proofs/inclusion?position=" + std::to_string(last.size + 1) + "&tree_size=" + size), 422,
                "invalid");
        refused(c.get("/v1/proofs/inclusion?position=1&tree_size=" + std::to_string(last.size + 1)), 422, "invalid");
        refused(c.get("/v1/proofs/consistency?from=1"), 422, "invalid");
        refused(c.get("/v1/proofs/consistency?from=0&to=" + size), 422, "invalid");
        refused(c.get("/v1/proofs/consistency?from=5&to=4"), 422, "invalid");
        refused(c.get("/v1/proofs/consistency?from=1&to=" + std::to_string(last.size + 1)), 422, "invalid");
        refused(c.get("/v1/ledger/checkpoint?tree_size=7"), 404, "not_found");
        refused(c.request("POST", "/v1/ledger/checkpoint/cosignatures?tree_size=" + size, "not a signature line",
                          {{"Content-Type", "text/plain"}}),
                422, "invalid");
        // A well-formed line of a witness this daemon does not know.
        const auto w = checkpoint::private_key::generate();
        const auto line = checkpoint::format_signature_line(checkpoint::cosign(last, "stranger", w, 1773381600));
        refused(c.request("POST", "/v1/ledger/checkpoint/cosignatures?tree_size=" + size, line,
                          {{"Content-Type", "text/plain"}}),
                422, "invalid");
        // The tree only ever extends, even for the database's superuser unless triggers are off.
        pqxx::connection conn(db.db.url());
        for (const char* sql : {"UPDATE merkle_tree SET size = 1", "DELETE FROM merkle_tiles",
                                "UPDATE merkle_tiles SET hashes = substring(hashes FROM 33) WHERE level = 0 AND idx = 0",
                                "DELETE FROM checkpoints", "UPDATE checkpoints SET note = 'x'"}) {
            pqxx::work w2(conn);
            CHECK_THROWS(w2.exec(sql));
        }
    }
}

TEST_CASE("transparency: a daemon without a signing key keeps the tree and serves proofs by tree size, but no "
          "checkpoint (issue 14)",
          "[e2e][transparency]") {
    ledger_db db;
    const auto port = free_port();
    daemon_process d(serve_args(port, db.db.url()), port);
    const auto c = d.client();
    open_accounts(c, 0, 3);
    move_clock(c, 1);
    refused(c.get("/v1/ledger/checkpoint"), 404, "not_found");
    refused(c.get("/v1/proofs/inclusion?position=1"), 404, "not_found");
    const auto r = c.get("/v1/proofs/inclusion?position=2&tree_size=6");
    ok(r);
    const auto leaves = leaves_of(db.db.url());
    CHECK(merkle::verify_inclusion(1, 6, leaves[1], hashes_of(r.json), naive_root(leaves, 0, 6)));
}

TEST_CASE("verify --since-checkpoint checks only the events after a kept checkpoint, a history rewritten by a "
          "superuser, re-chained, re-treed and signed again with the real key fails against it (issue 14)",
          "[e2e][transparency][audit]") {
    ledger_db db;
    keys k;
    temp_dir files;
    std::filesystem::path kept_path, newer_path;
    checkpoint::note kept;
    {
        const auto port = free_port();
        daemon_process d(serve_args(port, db.db.url(), k.priv), port);
        const auto c = d.client();
        open_accounts(c, 0, 10);
        move_clock(c, 1);
        kept = checkpoint_of(c);
        kept_path = files.write("kept.txt", kept.text());
        open_accounts(c, 10, 14);
        // An instance of an account written before the checkpoint, and its timers after it: the
        // replay must start from the account's state as of the checkpoint.
        ok(c.post("/v1/instances", json::object{{"instance_id", "k-1"}, {"account_id", "acc-1"}, {"product", "kafka"},
                                                {"billing", "payg"}, {"timezone", "Asia/Shanghai"},
                                                {"price", json::object{{"hourly", 120}}}}),
           201);
        ok(c.post("/v1/instances/k-1/actions/deploy", json::object{}));
        move_clock(c, 180);   // hourly settlements fire
        REQUIRE(num(c.get("/v1/instances/k-1").json.at("billed_total")) > 0);
        newer_path = files.write("newer.txt", checkpoint_of(c).text());
    }
    const auto verify_since = [&](const std::string& url, const std::filesystem::path& cp, const std::string& pub) {
        return run_mqledger({"verify", "--database-url", url, "--since-checkpoint", cp.string(), "--public-key", pub});
    };

    SECTION("the untouched ledger: ok, judging only the events after the checkpoint; the full verify checks the "
            "tree too") {
        const auto head = static_cast<std::int64_t>(store::read_all(db.db.url(), 0, 1000000).size());
        const auto full = run_mqledger({"verify", "--database-url", db.db.url()});
        INFO(full.out << full.err);
        CHECK(full.exit_code == 0);
        CHECK(full.out.find("tree:        ok (the stored tree of " + std::to_string(head) +
                            " leaves and the newest checkpoint's root") != std::string::npos);
        const auto v = verify_since(db.db.url(), kept_path, k.pub);
        INFO(v.out << v.err);
        CHECK(v.exit_code == 0);
        CHECK(v.out.find("checkpoint:  signature ok") != std::string::npos);
        const auto after = std::to_string(head - 20);
        CHECK(v.out.find("chain:       ok (" + after + " events after 20") != std::string::npos);
        CHECK(v.out.find("consistency: ok") != std::string::npos);
        CHECK(v.out.find("conformance: ok (" + after + " events from position 21") != std::string::npos);
    }
    SECTION("a checkpoint with an altered signature, or checked with another key, proves nothing") {
        // A character well inside the signature's base64: every one of its bits counts. (The last
        // one before the '=' padding also carries padding bits, which must be zero; changing
        // those makes the note unreadable, exit 2, not a signature that fails.)
        auto text = kept.text();
        auto& c = text[text.size() - 10];
        c = c == 'A' ? 'B' : 'A';
        const auto bad = files.write("bad.txt", text);
        auto v = verify_since(db.db.url(), bad, k.pub);
        INFO(v.out << v.err);
        CHECK(v.exit_code == 1);
        keys other;
        v = verify_since(db.db.url(), kept_path, other.pub);
        CHECK(v.exit_code == 1);
        CHECK(v.out.find("FAILED") != std::string::npos);
    }
    SECTION("a rewrite before the checkpoint, consistent enough for the full verify, fails against it") {
        // acc-3's funds of 1,003 become 100,003 in the event and in its unit's command, the chain is
        // recomputed and a fresh daemon with the real key builds a new tree and signs it.
        auto rows = store::read_all(db.db.url(), 0, 1000000);
        ledger_db forged;
        {
            pqxx::connection conn(forged.db.url());
            pqxx::work w(conn);
            std::string prev(store::genesis_hash);
            for (auto& e : rows) {
                if (e.stream == "account-acc-3" && e.type == "account.funds_added") {
                    e.data["amount"] = 100003;
                    if (auto* u = e.metadata.if_contains("unit"))
                        if (auto* cmd = u->as_object().if_contains("command"))
                            if (cmd->as_object().contains("amount")) cmd->as_object()["amount"] = 100003;
                }
                const auto data = canonical_json(json::value(e.data));
                const auto meta = canonical_json(json::value(e.metadata));
                const auto hash = store::event_hash({prev, e.position, e.stream, e.stream_version, e.type,
                                                     store::to_us(e.effective_at), store::to_us(e.recorded_at), data, meta});
                w.exec_params("INSERT INTO events (position, stream, stream_version, type, data, metadata, effective_at, "
                              "recorded_at, prev_hash, hash) VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, "
                              "$7::timestamptz, $8::timestamptz, $9, $10)",
                              e.position, e.stream, e.stream_version, e.type, data, meta,
                              codec::format_time(e.effective_at), codec::format_time(e.recorded_at), prev, hash);
                prev = hash;
            }
            w.commit();
        }
        const auto full = run_mqledger({"verify", "--database-url", forged.db.url()});
        INFO(full.out << full.err);
        CHECK(full.out.find("chain:       ok") != std::string::npos);
        CHECK(full.out.find("conformance: ok") != std::string::npos);

        const auto port = free_port();
        daemon_process d(serve_args(port, forged.db.url(), k.priv), port);
        const auto c = d.client();
        move_clock(c, 1);
        const auto forged_cp = checkpoint_of(c);
        CHECK(forged_cp.size == static_cast<std::int64_t>(rows.size()));
        CHECK(checkpoint::verify(forged_cp, "test.example/ledger", checkpoint::public_key::from_pem(file_text(k.pub))));

        const auto v = verify_since(forged.db.url(), kept_path, k.pub);
        INFO(v.out << v.err);
        CHECK(v.exit_code == 1);
        CHECK(v.out.find("history before it was rewritten") != std::string::npos);

        // The forged daemon's own consistency proof from the kept size does not hold either.
        const auto proof = c.get("/v1/proofs/consistency?from=" + std::to_string(kept.size) +
                                 "&to=" + std::to_string(forged_cp.size));
        ok(proof);
        const auto proof_path = files.write("proof.json", proof.body);
        const auto forged_path = files.write("forged.txt", forged_cp.text());
        const auto p = run_mqledger({"proof", "check-consistency", kept_path.string(), forged_path.string(),
                                     proof_path.string(), "--public-key", k.pub});
        INFO(p.out << p.err);
        CHECK(p.exit_code == 1);
        CHECK(p.out.find("history was rewritten") != std::string::npos);
        // Checked in the test's own code too.
        CHECK(!merkle::verify_consistency(kept.size, forged_cp.size, kept.root, forged_cp.root, hashes_of(proof.json)));
    }
    SECTION("tiles altered after the checkpoint are found: the stored tree is not the events' tree") {
        pqxx::connection conn(db.db.url());
        pqxx::work w(conn);
        w.exec("SET session_replication_role = replica");   // the superuser turns the triggers off
        w.exec("UPDATE merkle_tiles SET hashes = overlay(hashes PLACING '\\x00'::bytea FROM 32 * 25 + 1 FOR 1)"
               " WHERE level = 0 AND idx = 0");
        w.commit();
        const auto v = verify_since(db.db.url(), kept_path, k.pub);
        INFO(v.out << v.err);
        CHECK(v.exit_code == 1);
        CHECK(v.out.find("tree:        FAILED") != std::string::npos);
        // The full verify builds the tree from the chain too.
        const auto full = run_mqledger({"verify", "--database-url", db.db.url()});
        INFO(full.out << full.err);
        CHECK(full.exit_code == 1);
        CHECK(full.out.find("chain:       ok") != std::string::npos);
        CHECK(full.out.find("tree:        FAILED") != std::string::npos);
    }
    SECTION("events cut after the checkpoint are found") {
        pqxx::connection conn(db.db.url());
        pqxx::work w(conn);
        w.exec("SET session_replication_role = replica");
        w.exec("DELETE FROM events WHERE position > 25");
        w.commit();
        const auto v = verify_since(db.db.url(), kept_path, k.pub);
        INFO(v.out << v.err);
        CHECK(v.exit_code == 1);
    }
}
