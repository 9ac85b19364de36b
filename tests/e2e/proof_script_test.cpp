// docs/audit/check_proof.py, the auditors' stand-alone Python checker of Merkle proofs, against the
// real daemon and side by side with `mqledger proof` (issue 14; README.md "For auditors"). A daemon
// with a log key writes a realistic history and signs checkpoints; every inclusion proof it serves
// passes both checkers, and so does a consistency proof between two of its checkpoints; each
// forgery fails both, at the step it forges: an event with a field changed (with and without its
// hash recomputed), a proof hash with one bit flipped, a checkpoint with a bit flipped in its root or
// its signature, one checked with another log's key, a consistency proof with a bit flipped, and
// old and new checkpoints swapped. Both checkers are run on the same files, so they cannot drift
// apart. Needs Debian's `python3` and `openssl` (deploy/setup.sh).
#include "tests/e2e/http_client.h"

#include "ledger/canonical_json.h"
#include "ledger/codec.h"
#include "ledger/store/hash_chain.h"
#include "ledger/store/merkle.h"

#include <catch2/catch.hpp>

#include <boost/json.hpp>

#include <memory>
#include <sstream>

using namespace mqledger;
using namespace mqledger::test;
namespace json = boost::json;

namespace {

const std::string script = std::string(MQLEDGER_SOURCE_DIR) + "/docs/audit/check_proof.py";
// Debian's interpreter (deploy/setup.sh installs it): the script needs nothing but the standard
// library, and a `python3` found first in PATH may be a version manager's slow shim.
constexpr const char* python = "/usr/bin/python3";

void ok(const http_result& r, int status = 200) {
    INFO(r.body);
    REQUIRE(r.status == status);
}

void ran(const run_result& r) {
    INFO(r.out << r.err);
    REQUIRE(r.exit_code == 0);
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

// A daemon on a scratch database, signing its checkpoints with a log key made by `openssl`.
class signed_log {
public:
    signed_log() : key_((dir_.path() / "log.pem").string()), pub_((dir_.path() / "log.pub.pem").string()) {
        ran(run_program("openssl", {"genpkey", "-algorithm", "ed25519", "-out", key_}));
        ran(run_program("openssl", {"pkey", "-in", key_, "-pubout", "-out", pub_}));
        ran(run_mqledger({"migrate", "--database-url", db_.url()}));
        const auto port = free_port();
        daemon_ = std::make_unique<daemon_process>(
            std::vector<std::string>{"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--database-url",
                                     db_.url(), "--insecure-no-auth", "--log-format", "json", "--clock", "manual",
                                     "--clock-start", "2026-03-13T06:00:00Z", "--digest-key", key_,
                                     "--checkpoint-origin", "test.example/ledger",
                                     // Only clock moves sign checkpoints, so the sizes the tests expect are exact.
                                     "--checkpoint-interval", "86400"},
            port);
    }

    [[nodiscard]] http_client client() const { return daemon_->client(); }
    [[nodiscard]] const std::string& public_key() const noexcept { return pub_; }
    /// Writes a file for the checkers; its path.
    std::string file(const std::string& name, std::string_view text) const { return dir_.write(name, text).string(); }

    /// The newest checkpoint, or the one of `tree_size`: the note text.
    [[nodiscard]] std::string checkpoint(std::optional<std::int64_t> tree_size = std::nullopt) const {
        const auto r = client().get("/v1/ledger/checkpoint" +
                                    (tree_size ? "?tree_size=" + std::to_string(*tree_size) : std::string()));
        ok(r);
        REQUIRE(r.header("Content-Type").rfind("text/plain", 0) == 0);
        return r.body;
    }
    [[nodiscard]] json::array events() const {
        const auto r = client().get("/v1/events?limit=1000");
        ok(r);
        return r.json.at("items").as_array();
    }
    [[nodiscard]] json::object inclusion(std::int64_t position, std::int64_t tree_size) const {
        const auto r = client().get("/v1/proofs/inclusion?position=" + std::to_string(position) +
                                    "&tree_size=" + std::to_string(tree_size));
        ok(r);
        return r.json.as_object();
    }
    [[nodiscard]] json::object consistency(std::int64_t from, std::int64_t to) const {
        const auto r =
            client().get("/v1/proofs/consistency?from=" + std::to_string(from) + "&to=" + std::to_string(to));
        ok(r);
        return r.json.as_object();
    }
    /// Moves the manual clock, which extends the tree and signs a checkpoint of everything written.
    void move_clock(const std::string& now) const { ok(client().post("/v1/clock", json::object{{"now", now}})); }

private:
    temp_dir dir_;
    scratch_database db_{"mqledger_proof_script"};
    std::string key_, pub_;
    std::unique_ptr<daemon_process> daemon_;
};

// The tree size a checkpoint note states (its second line).
std::int64_t size_of(const std::string& note) { return std::stoll(lines_of(note).at(1)); }

json::object payg(const std::string& id, const std::string& account, const std::string& product, std::int64_t hourly) {
    json::object o{{"instance_id", id}, {"account_id", account}, {"product", product}, {"billing", "payg"},
                   {"timezone", "Asia/Shanghai"}, {"price", json::object{{"hourly", hourly}}}};
    if (product == "rocketmq")
        o["config"] = json::object{{"edition", "standard"}, {"sub_category", "cluster"}, {"tps", 1000},
                                   {"internet_access", false}, {"bandwidth_mbps", 0}};
    return o;
}

// acc-1 (1,000) with k-1 (Kafka payg, 120/h) and r-1 (RocketMQ payg, 500/h): the 08:00 bills leave
// acc-1 owing, which stops r-1 and expires k-1; a payment (its reference and correlation id full of
// what canonical JSON escapes or keeps literal) restores both. acc-2 with m-1 (Kafka payg, a topic)
// and s-1 (RabbitMQ subscription). Then 09:00: a checkpoint of everything.
void write_history(const signed_log& log) {
    const auto c = log.client();
    for (const auto& [id, funds] : {std::pair{"acc-1", 1000}, std::pair{"acc-2", 100000}}) {
        ok(c.post("/v1/accounts", json::object{{"account_id", id}, {"currency", "CNY"}}), 201);
        ok(c.post(std::string("/v1/accounts/") + id + "/funds", json::object{{"amount", funds}, {"reference", "seed"}}));
    }
    ok(c.post("/v1/instances", payg("k-1", "acc-1", "kafka", 120)), 201);
    ok(c.post("/v1/instances/k-1/actions/deploy", json::object{}));
    ok(c.post("/v1/instances", payg("r-1", "acc-1", "rocketmq", 500)), 201);
    ok(c.post("/v1/instances", payg("m-1", "acc-2", "kafka", 120)), 201);
    ok(c.post("/v1/instances/m-1/actions/deploy", json::object{}));
    ok(c.post("/v1/instances/m-1/topics", json::object{{"name", "orders"}}), 201);
    ok(c.post("/v1/instances",
              json::object{{"instance_id", "s-1"}, {"account_id", "acc-2"}, {"product", "rabbitmq"},
                           {"billing", "subscription"}, {"timezone", "Asia/Shanghai"},
                           {"price", json::object{{"monthly", 30000}}}, {"term_months", 1}}),
       201);
    log.move_clock("2026-03-13T08:30:00Z");
    REQUIRE(c.get("/v1/instances/r-1").json.at("state") == "stopped");
    REQUIRE(c.get("/v1/instances/k-1").json.at("state") == "expired");
    ok(c.post("/v1/accounts/acc-1/funds",
              json::object{{"amount", 5000}, {"reference", "wire «77» — 支付 \"q\" \\ / 😀"}},
              {{"X-Correlation-Id", "pay-\"1\"-\\-/"}}));
    REQUIRE(c.get("/v1/instances/r-1").json.at("state") == "running");
    log.move_clock("2026-03-13T09:00:00Z");
}

// One checker's verdict on a set of files.
struct verdict {
    std::string checker;
    int exit_code = -1;
    std::string output;
};

verdict as_verdict(std::string checker, const run_result& r) { return {std::move(checker), r.exit_code, r.out + r.err}; }

std::vector<verdict> check_inclusion(const signed_log& log, const std::string& event, const std::string& proof,
                                     const std::string& checkpoint, const std::string& public_key = {}) {
    const auto& key = public_key.empty() ? log.public_key() : public_key;
    return {as_verdict("check_proof.py", run_program(python, {script, "inclusion", event, proof, checkpoint, key})),
            as_verdict("mqledger proof", run_mqledger({"proof", "check-inclusion", event, proof, checkpoint,
                                                       "--public-key", key}))};
}

std::vector<verdict> check_consistency(const signed_log& log, const std::string& old_note, const std::string& new_note,
                                       const std::string& proof) {
    return {as_verdict("check_proof.py",
                       run_program(python, {script, "consistency", old_note, new_note, proof, log.public_key()})),
            as_verdict("mqledger proof", run_mqledger({"proof", "check-consistency", old_note, new_note, proof,
                                                       "--public-key", log.public_key()}))};
}

// The step a failing check names: what precedes the ':' of its first FAILED line ("" if none).
std::string failed_step(const std::string& output) {
    for (const auto& line : lines_of(output))
        if (line.find("FAILED") != std::string::npos) return line.substr(0, line.find(':'));
    return "";
}

void require_accepted(const std::vector<verdict>& verdicts) {
    for (const auto& v : verdicts) {
        INFO(v.checker << " exited " << v.exit_code << ":\n" << v.output);
        CHECK(v.exit_code == 0);
        CHECK(failed_step(v.output).empty());
    }
}

// Both checkers refuse (exit 1, not 2: the files are well-formed, the proof is false), at `step`.
void require_refused(const std::vector<verdict>& verdicts, const std::string& step) {
    for (const auto& v : verdicts) {
        INFO(v.checker << " exited " << v.exit_code << ":\n" << v.output);
        CHECK(v.exit_code == 1);
        CHECK(failed_step(v.output) == step);
    }
}

// `hex` (64 hex digits) with bit `bit` of its byte `byte` flipped.
std::string flip_hex(const std::string& hex, int byte, int bit) {
    auto h = merkle::from_hex(hex);
    REQUIRE(h);
    (*h)[static_cast<std::size_t>(byte)] ^= static_cast<unsigned char>(1u << bit);
    return merkle::to_hex(*h);
}

// An event's hash recomputed from its fields, as a forger who changed them would.
std::string rehash(const json::object& e) {
    const auto effective = codec::parse_time(e.at("effective_at").as_string());
    const auto recorded = codec::parse_time(e.at("recorded_at").as_string());
    REQUIRE(effective);
    REQUIRE(recorded);
    return store::event_hash({e.at("prev_hash").as_string(), e.at("position").as_int64(), e.at("stream").as_string(),
                              e.at("stream_version").as_int64(), e.at("type").as_string(), store::to_us(*effective),
                              store::to_us(*recorded), canonical_json(e.at("data")), canonical_json(e.at("metadata"))});
}

} // namespace

TEST_CASE("proof script: every event the daemon wrote is in its signed checkpoint, by check_proof.py and by "
          "mqledger proof check-inclusion alike",
          "[e2e][proofs][script]") {
    signed_log log;
    write_history(log);
    const auto note = log.checkpoint();
    const auto events = log.events();
    // Every clock move signs a checkpoint of everything written so far.
    REQUIRE(size_of(note) == static_cast<std::int64_t>(events.size()));
    REQUIRE(events.size() >= 20);
    const auto checkpoint = log.file("checkpoint", note);
    for (const auto& e : events) {
        const auto position = e.at("position").as_int64();
        INFO("position " << position << " " << e.at("type").as_string().c_str());
        const auto proof = log.inclusion(position, size_of(note));
        const auto event_file = log.file("event.json", json::serialize(e));
        const auto verdicts = check_inclusion(log, event_file, log.file("proof.json", json::serialize(proof)), checkpoint);
        require_accepted(verdicts);
        CHECK(verdicts[0].output.find("inclusion: ok") != std::string::npos);
    }
}

TEST_CASE("proof script: an event with one field changed fails both checkers, with its hash recomputed too, "
          "its inclusion proof fails",
          "[e2e][proofs][script]") {
    signed_log log;
    write_history(log);
    const auto note = log.checkpoint();
    const auto checkpoint = log.file("checkpoint", note);
    json::object paid;
    for (const auto& e : log.events())
        if (e.at("type") == "account.funds_added" && e.at("data").at("amount") == 5000) paid = e.as_object();
    REQUIRE(!paid.empty());
    const auto position = paid.at("position").as_int64();
    const auto proof = log.file("proof.json", json::serialize(log.inclusion(position, size_of(note))));
    require_accepted(check_inclusion(log, log.file("event.json", json::serialize(paid)), proof, checkpoint));

    auto forged = paid;
    forged["data"].as_object()["amount"] = 50000;
    require_refused(check_inclusion(log, log.file("forged.json", json::serialize(forged)), proof, checkpoint), "event");

    forged["hash"] = rehash(forged);
    require_refused(check_inclusion(log, log.file("rehashed.json", json::serialize(forged)), proof, checkpoint),
                    "inclusion");
}

TEST_CASE("proof script: an inclusion proof with one bit flipped in any of its hashes, or another event's proof, "
          "fails both checkers",
          "[e2e][proofs][script]") {
    signed_log log;
    write_history(log);
    const auto note = log.checkpoint();
    const auto checkpoint = log.file("checkpoint", note);
    const auto events = log.events();
    // Position 3: a left child deep in the tree, so its path has a hash per level.
    const auto& e = events.at(2).as_object();
    const auto event = log.file("event.json", json::serialize(e));
    const auto proof = log.inclusion(3, size_of(note));
    const auto& hashes = proof.at("hashes").as_array();
    REQUIRE(hashes.size() >= 4);
    for (std::size_t i = 0; i < hashes.size(); ++i) {
        INFO("hash " << i);
        auto flipped = proof;
        auto& h = flipped["hashes"].as_array()[i];
        h = flip_hex(std::string(h.as_string()), static_cast<int>(i % 32), static_cast<int>(i % 8));
        require_refused(check_inclusion(log, event, log.file("proof.json", json::serialize(flipped)), checkpoint),
                        "inclusion");
    }
    // The proof of position 4 for the event at position 3.
    require_refused(
        check_inclusion(log, event, log.file("other.json", json::serialize(log.inclusion(4, size_of(note)))), checkpoint),
        "inclusion");
}

TEST_CASE("proof script: a checkpoint with one bit flipped in its root or in its signature, or checked with "
          "another log's key, fails both checkers",
          "[e2e][proofs][script]") {
    signed_log log;
    write_history(log);
    const auto note = log.checkpoint();
    const auto e = log.events().at(0).as_object();
    const auto event = log.file("event.json", json::serialize(e));
    const auto proof = log.file("proof.json", json::serialize(log.inclusion(1, size_of(note))));
    require_accepted(check_inclusion(log, event, proof, log.file("checkpoint", note)));

    // origin, size, root, "", "— test.example/ledger BASE64(key ID || signature)"
    const auto lines = lines_of(note);
    REQUIRE(lines.size() == 5);
    REQUIRE(lines[4].rfind("\xE2\x80\x94 test.example/ledger ", 0) == 0);
    {
        auto root = merkle::from_base64(lines[2]);
        REQUIRE(root);
        (*root)[7] ^= 0x10;
        auto forged = lines;
        forged[2] = merkle::to_base64(*root);
        require_refused(check_inclusion(log, event, proof, log.file("root-flipped", joined(forged))), "checkpoint");
    }
    const auto prefix = std::string("\xE2\x80\x94 test.example/ledger ");
    for (const std::size_t byte : {std::size_t{1}, std::size_t{4 + 20}}) {   // in the key ID; in the signature
        INFO("signature line byte " << byte);
        auto raw = merkle::base64_decode(lines[4].substr(prefix.size()));
        REQUIRE(raw);
        REQUIRE(raw->size() == 4 + 64);
        (*raw)[byte] = static_cast<char>((*raw)[byte] ^ 0x01);
        auto forged = lines;
        forged[4] = prefix + merkle::base64_encode(*raw);
        require_refused(check_inclusion(log, event, proof, log.file("signature-flipped", joined(forged))), "checkpoint");
    }
    {
        const auto other = log.file("other.pem", "");
        const auto other_pub = log.file("other.pub.pem", "");
        ran(run_program("openssl", {"genpkey", "-algorithm", "ed25519", "-out", other}));
        ran(run_program("openssl", {"pkey", "-in", other, "-pubout", "-out", other_pub}));
        require_refused(check_inclusion(log, event, proof, log.file("checkpoint", note), other_pub), "checkpoint");
    }
}

TEST_CASE("proof script: a newer checkpoint extends an older one by both checkers, a consistency proof with one bit "
          "flipped, or the old and new checkpoints swapped, fails both",
          "[e2e][proofs][script]") {
    signed_log log;
    write_history(log);
    const auto c = log.client();
    const auto first = log.checkpoint();
    // More history, two more checkpoints.
    ok(c.post("/v1/instances", payg("k-2", "acc-2", "kafka", 240)), 201);
    ok(c.post("/v1/instances/k-2/actions/deploy", json::object{}));
    log.move_clock("2026-03-13T11:00:00Z");
    const auto second = log.checkpoint();
    ok(c.post("/v1/instances/k-2/topics", json::object{{"name", "audit"}}), 201);
    ok(c.post("/v1/instances/m-1/actions/stop", json::object{}));
    log.move_clock("2026-03-13T13:00:00Z");
    const auto newest = log.checkpoint();
    REQUIRE(size_of(first) < size_of(second));
    REQUIRE(size_of(second) < size_of(newest));
    // An older checkpoint is served again as it was signed.
    CHECK(log.checkpoint(size_of(first)) == first);
    CHECK(log.checkpoint(size_of(second)) == second);

    const std::vector<std::string> notes{first, second, newest};
    for (std::size_t i = 0; i < notes.size(); ++i)
        for (std::size_t j = i; j < notes.size(); ++j) {
            const auto m = size_of(notes[i]), n = size_of(notes[j]);
            INFO("from " << m << " to " << n);
            const auto proof = log.consistency(m, n);
            CHECK(proof.at("hashes").as_array().empty() == (m == n));
            const auto old_file = log.file("old", notes[i]), new_file = log.file("new", notes[j]);
            const auto proof_file = log.file("consistency.json", json::serialize(proof));
            require_accepted(check_consistency(log, old_file, new_file, proof_file));
            if (m == n) continue;
            require_refused(check_consistency(log, new_file, old_file, proof_file), "consistency");
            const auto& hashes = proof.at("hashes").as_array();
            for (std::size_t k = 0; k < hashes.size(); ++k) {
                INFO("hash " << k);
                auto flipped = proof;
                auto& h = flipped["hashes"].as_array()[k];
                h = flip_hex(std::string(h.as_string()), static_cast<int>(31 - k % 32), static_cast<int>(k % 8));
                require_refused(
                    check_consistency(log, old_file, new_file, log.file("flipped.json", json::serialize(flipped))),
                    "consistency");
            }
        }
}

TEST_CASE("proof script: an instance's events served with proofs=true carry inclusion proofs against the served "
          "checkpoint, an item is both EVENT.json and PROOF.json, and events newer than the checkpoint have none",
          "[e2e][proofs][script]") {
    signed_log log;
    write_history(log);
    const auto c = log.client();
    ok(c.post("/v1/instances/k-1/topics", json::object{{"name", "after-the-checkpoint"}}), 201);
    const auto r = c.get("/v1/instances/k-1/events?proofs=true");
    ok(r);
    const auto& items = r.json.at("items").as_array();
    REQUIRE(items.size() >= 4);
    REQUIRE(r.json.at("checkpoint").is_string());
    const std::string note(r.json.at("checkpoint").as_string());
    CHECK(note == log.checkpoint());
    const auto checkpoint = log.file("checkpoint", note);

    const auto& first = items.front().as_object();
    REQUIRE(first.at("proof").is_object());
    CHECK(first.at("proof").at("tree_size").as_int64() == size_of(note));
    CHECK(first.at("proof").at("leaf_index").as_int64() == first.at("position").as_int64() - 1);
    const auto item = log.file("item.json", json::serialize(first));
    const auto verdicts = check_inclusion(log, item, item, checkpoint);
    require_accepted(verdicts);
    CHECK(verdicts[0].output.find("inclusion: ok") != std::string::npos);

    for (const auto& i : items) {
        const auto position = i.at("position").as_int64();
        INFO("position " << position);
        if (position > size_of(note)) {
            CHECK(i.at("proof").is_null());
            continue;
        }
        const auto f = log.file("item.json", json::serialize(i));
        require_accepted(check_inclusion(log, f, f, checkpoint));
    }
    CHECK(items.back().at("proof").is_null());   // the topic created after the checkpoint
}
