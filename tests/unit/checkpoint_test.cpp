// Signed checkpoints (ledger/store/checkpoint.h): the C2SP signed-note, tlog-checkpoint and
// tlog-cosignature formats, checked against values from outside this code base:
//   - the signed-note example of Go's golang.org/x/mod/sumdb/note (key "PeterNeumann", ID
//     c74f20a3; Ed25519 is deterministic, so signing its text with its seed gives its line);
//   - a checkpoint built by hand (Python's hashlib/base64/cryptography, from the spec text);
//   - a real checkpoint of the arche2025h1 staging CT log with a cosignature/v1 line of the
//     remora.n621.de witness (published keys ba2f06c0 and da77ade7).
// Then: bit flips of body and signature fail, other names and keys fail, and parse() is strict.
#include "ledger/store/checkpoint.h"

#include <openssl/evp.h>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace mqledger;
using checkpoint::note;
using checkpoint::private_key;
using checkpoint::public_key;

namespace {

const std::string dash = "\xE2\x80\x94";

std::array<unsigned char, 32> raw32(std::string_view b64_with_alg, unsigned char alg) {
    const auto bytes = merkle::base64_decode(b64_with_alg);
    REQUIRE(bytes.has_value());
    REQUIRE(bytes->size() == 33);
    REQUIRE(static_cast<unsigned char>((*bytes)[0]) == alg);
    std::array<unsigned char, 32> raw{};
    std::copy(bytes->begin() + 1, bytes->end(), raw.begin());
    return raw;
}

std::string hex4(const std::array<unsigned char, 4>& id) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string s;
    for (const unsigned char c : id) {
        s += digits[c >> 4];
        s += digits[c & 15];
    }
    return s;
}

/// A PKCS#8 PEM for an Ed25519 seed: the fixed DER prefix of RFC 8410 section 7, then the seed.
std::string pkcs8_pem(const std::string& seed) {
    std::string der("\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20", 16);
    der += seed;
    return "-----BEGIN PRIVATE KEY-----\n" + merkle::base64_encode(der) + "\n-----END PRIVATE KEY-----\n";
}

// The Go signed-note example (golang.org/x/mod/sumdb/note).
constexpr std::string_view go_vkey = "ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";   // after "PeterNeumann+c74f20a3+"
constexpr std::string_view go_skey = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";   // after "PRIVATE+KEY+PeterNeumann+c74f20a3+"
constexpr std::string_view go_text =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
constexpr std::string_view go_sig =
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=";

private_key peter() {
    const auto seed = merkle::base64_decode(go_skey);
    REQUIRE(seed.has_value());
    return private_key::from_pem(pkcs8_pem(seed->substr(1)));
}

// The checkpoint built by hand: PeterNeumann's key signs origin example.com/mqledger, size
// 12345, root bytes 0x00..0x1f; witness.example/w1 (seed 32 times 0x07) co-signs at 1700000000.
const std::string hand_body =
    "example.com/mqledger\n12345\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
const std::string hand_log_line =
    dash + " PeterNeumann x08go9PpazT43fZNaB8lkIzpOHq1GPFFqLfp+Vudq2Gya8vEn1vv2OrciPS586klE7oBMWJyz9M7qbeDom22CQAC1A4=\n";
const std::string hand_cosig_line =
    dash + " witness.example/w1 qkoJ0QAAAABlU/EAiC50xZ4mcK+BDG+p8WHFk5iBBfgKIR2q98ApT0ZN5lls21k4twvMeUgfVx+rAo9kblcaRNBgE59KGqqTcEpGDA==\n";

merkle::hash bytes_0_to_31() {
    merkle::hash h{};
    for (std::size_t i = 0; i < h.size(); ++i) h[i] = static_cast<unsigned char>(i);
    return h;
}

private_key witness() { return private_key::from_pem(pkcs8_pem(std::string(32, '\x07'))); }

// A real checkpoint: the arche2025h1 staging log's Ed25519 (and RFC 6962 ECDSA) signatures and
// four witnesses' cosignature/v1 lines.
const std::string real_checkpoint =
    "arche2025h1.staging.ct.transparency.dev\n"
    "1432088532\n"
    "U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=\n"
    "\n" +
    dash +
    " arche2025h1.staging.ct.transparency.dev "
    "zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=\n" +
    dash +
    " arche2025h1.staging.ct.transparency.dev "
    "ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=\n" +
    dash +
    " transparency.dev/DEV:witness-little-garden "
    "2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==\n" +
    dash +
    " witness1.smartit.nu/witness1 "
    "pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==\n" +
    dash +
    " remora.n621.de "
    "2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==\n" +
    dash +
    " witness.stagemole.eu "
    "Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==\n";
constexpr std::string_view arche_name = "arche2025h1.staging.ct.transparency.dev";
constexpr std::string_view arche_vkey = "AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f";   // +ba2f06c0+
constexpr std::string_view remora_name = "remora.n621.de";
constexpr std::string_view remora_vkey = "BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2";   // +da77ade7+

/// SHA-256(name || "\n" || alg || key)[0:4], computed here with OpenSSL directly.
std::array<unsigned char, 4> independent_key_id(std::string_view name, unsigned char alg, const public_key& key) {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    unsigned char out[32];
    unsigned int len = 0;
    const unsigned char nl = '\n';
    REQUIRE(EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1);
    REQUIRE(EVP_DigestUpdate(ctx, name.data(), name.size()) == 1);
    REQUIRE(EVP_DigestUpdate(ctx, &nl, 1) == 1);
    REQUIRE(EVP_DigestUpdate(ctx, &alg, 1) == 1);
    REQUIRE(EVP_DigestUpdate(ctx, key.raw().data(), key.raw().size()) == 1);
    REQUIRE(EVP_DigestFinal_ex(ctx, out, &len) == 1);
    EVP_MD_CTX_free(ctx);
    return {out[0], out[1], out[2], out[3]};
}

} // namespace

// =============================================================================================
// Keys and key IDs

TEST_CASE("checkpoint: key IDs are SHA-256(name, newline, algorithm, key)[0:4], as the published keys show",
          "[checkpoint]") {
    const auto peter_key = public_key::from_raw(raw32(go_vkey, 0x01));
    CHECK(hex4(checkpoint::log_key_id("PeterNeumann", peter_key)) == "c74f20a3");
    CHECK(hex4(checkpoint::log_key_id(arche_name, public_key::from_raw(raw32(arche_vkey, 0x01)))) == "ba2f06c0");
    CHECK(hex4(checkpoint::cosigner_key_id(remora_name, public_key::from_raw(raw32(remora_vkey, 0x04)))) == "da77ade7");
    // And against a computation written here, for fresh keys and a few names.
    for (int i = 0; i < 5; ++i) {
        const auto key = private_key::generate().public_part();
        for (const char* name : {"a", "example.com/log", "例え.jp/ログ"}) {
            CHECK(checkpoint::log_key_id(name, key) == independent_key_id(name, 0x01, key));
            CHECK(checkpoint::cosigner_key_id(name, key) == independent_key_id(name, 0x04, key));
        }
    }
}

TEST_CASE("checkpoint: keys load from PEM, write PKCS#8, and refuse anything but Ed25519", "[checkpoint]") {
    const auto key = peter();
    CHECK(key.public_part().raw() == raw32(go_vkey, 0x01));
    CHECK(key.to_pem() == "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIIEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz\n"
                          "-----END PRIVATE KEY-----\n");
    const auto pub = public_key::from_pem("-----BEGIN PUBLIC KEY-----\n"
                                          "MCowBQYDK2VwAyEAGlzZBxQ8OExB6DDFvOEqqIF+xWSaqr8sMTiLNbLXRNY=\n"
                                          "-----END PUBLIC KEY-----\n");
    CHECK(pub.raw() == key.public_part().raw());
    const auto fresh = private_key::generate();
    CHECK(private_key::from_pem(fresh.to_pem()).public_part().raw() == fresh.public_part().raw());
    CHECK(fresh.public_part().raw() != key.public_part().raw());

    const std::string ec_private = "-----BEGIN PRIVATE KEY-----\n"
                                   "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgXYSEicSF81M5VaA0\n"
                                   "GY1QD4WVksUBNs/TaJv4eb1Pa6+hRANCAAQ2A72xPahK9/EGDSs6DKzU8UohEAvG\n"
                                   "r0fVx4UJoY7qDFOSJMqpFbBMV97OGCawEmoiRFU26HYmM6Z21My/bX8L\n"
                                   "-----END PRIVATE KEY-----\n";
    const std::string ec_public = "-----BEGIN PUBLIC KEY-----\n"
                                  "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAENgO9sT2oSvfxBg0rOgys1PFKIRAL\n"
                                  "xq9H1ceFCaGO6gxTkiTKqRWwTFfezhgmsBJqIkRVNuh2JjOmdtTMv21/Cw==\n"
                                  "-----END PUBLIC KEY-----\n";
    const std::string x25519_public = "-----BEGIN PUBLIC KEY-----\n"
                                      "MCowBQYDK2VuAyEAlNKNjAei9+bNsvq/aOH+/LnYbEj8V4dYrbJ48B19jVc=\n"
                                      "-----END PUBLIC KEY-----\n";
    CHECK_THROWS_AS(private_key::from_pem(ec_private), checkpoint::key_error);
    CHECK_THROWS_AS(public_key::from_pem(ec_public), checkpoint::key_error);
    CHECK_THROWS_AS(public_key::from_pem(x25519_public), checkpoint::key_error);
    CHECK_THROWS_AS(private_key::from_pem(""), checkpoint::key_error);
    CHECK_THROWS_AS(private_key::from_pem("not a key"), checkpoint::key_error);
    CHECK_THROWS_AS(public_key::from_pem(key.to_pem()), checkpoint::key_error);   // a private key is not a public one
    CHECK_THROWS_AS(private_key::from_pem(ec_public), checkpoint::key_error);
}

TEST_CASE("checkpoint: Ed25519 signs and verifies the Go signed-note example exactly", "[checkpoint]") {
    const auto key = peter();
    const auto line = checkpoint::parse_signature_line(dash + " PeterNeumann " + std::string(go_sig) + "\n");
    REQUIRE(line.has_value());
    CHECK(line->name == "PeterNeumann");
    CHECK(hex4(line->key_id) == "c74f20a3");
    CHECK(line->payload.size() == 64);
    CHECK(key.sign(go_text) == line->payload);   // deterministic signatures
    CHECK(key.public_part().verifies(go_text, line->payload));
    CHECK_FALSE(key.public_part().verifies(std::string(go_text) + " ", line->payload));
    CHECK_FALSE(key.public_part().verifies(go_text, line->payload.substr(1)));
    CHECK_FALSE(key.public_part().verifies(go_text, ""));
    CHECK(checkpoint::format_signature_line(*line) == dash + " PeterNeumann " + std::string(go_sig) + "\n");
}

// =============================================================================================
// The note format

TEST_CASE("checkpoint: the note text is C2SP's byte for byte: origin, size, base64 root, blank line, signature",
          "[checkpoint]") {
    const note n = checkpoint::sign("example.com/mqledger", 12345, bytes_0_to_31(), "PeterNeumann", peter());
    CHECK(n.body() == hand_body);
    CHECK(n.text() == hand_body + "\n" + hand_log_line);
    CHECK(checkpoint::verify(n, "PeterNeumann", peter().public_part()));

    note cosigned = n;
    cosigned.signatures.push_back(checkpoint::cosign(n, "witness.example/w1", witness(), 1700000000));
    CHECK(cosigned.text() == hand_body + "\n" + hand_log_line + hand_cosig_line);
    CHECK(checkpoint::cosignature_message(n, 1700000000) == "cosignature/v1\ntime 1700000000\n" + hand_body);
    CHECK(checkpoint::verify_cosignature(cosigned, "witness.example/w1", witness().public_part()) == 1700000000u);
}

TEST_CASE("checkpoint: a signed checkpoint round-trips through its text and verifies", "[checkpoint]") {
    const auto key = private_key::generate();
    for (const std::int64_t size : {std::int64_t{0}, std::int64_t{1}, std::int64_t{123456789},
                                    std::numeric_limits<std::int64_t>::max()}) {
        const auto root = size == 0 ? merkle::empty_root() : merkle::leaf_hash(std::to_string(size));
        const note n = checkpoint::sign("mqledger.example/log", size, root, "mqledger.example/log", key);
        const auto text = n.text();
        const auto parsed = checkpoint::parse(text);
        REQUIRE(parsed.has_value());
        CHECK(*parsed == n);
        CHECK(parsed->text() == text);
        CHECK(parsed->size == size);
        CHECK(parsed->root == root);
        CHECK(checkpoint::verify(*parsed, "mqledger.example/log", key.public_part()));
    }
}

TEST_CASE("checkpoint: the real arche2025h1 checkpoint parses, re-encodes and verifies with its log and witness keys",
          "[checkpoint]") {
    const auto n = checkpoint::parse(real_checkpoint);
    REQUIRE(n.has_value());
    CHECK(n->text() == real_checkpoint);
    CHECK(n->origin == arche_name);
    CHECK(n->size == 1432088532);
    CHECK(n->signatures.size() == 6);
    const auto log = public_key::from_raw(raw32(arche_vkey, 0x01));
    const auto remora = public_key::from_raw(raw32(remora_vkey, 0x04));
    CHECK(checkpoint::verify(*n, arche_name, log));
    CHECK(checkpoint::verify_cosignature(*n, remora_name, remora) == 1779573024u);
    // Neither key answers for the other's role, or under another name.
    CHECK_FALSE(checkpoint::verify_cosignature(*n, arche_name, log).has_value());
    CHECK_FALSE(checkpoint::verify(*n, remora_name, remora));
    CHECK_FALSE(checkpoint::verify(*n, "arche2025h1.staging.ct.transparency.dev/", log));
    CHECK_FALSE(checkpoint::verify_cosignature(*n, "remora.n621.de.", remora).has_value());
    // Another size, same signatures: nothing verifies.
    note other = *n;
    other.size = 42;
    CHECK_FALSE(checkpoint::verify(other, arche_name, log));
    CHECK_FALSE(checkpoint::verify_cosignature(other, remora_name, remora).has_value());
}

TEST_CASE("checkpoint: flipping any bit of the body or of the signature fails verification", "[checkpoint]") {
    const auto key = private_key::generate();
    const auto pub = key.public_part();
    const note n = checkpoint::sign("example.com/log", 77, merkle::leaf_hash("r"), "example.com/log", key);
    const std::string text = n.text();
    const std::size_t body_size = n.body().size();
    int reparsed = 0;
    for (std::size_t i = 0; i < body_size; ++i)
        for (int bit = 0; bit < 8; ++bit) {
            std::string bad = text;
            bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
            const auto p = checkpoint::parse(bad);
            if (!p) continue;   // no longer a checkpoint at all: refused, fine
            ++reparsed;
            INFO("flipped bit " << bit << " of byte " << i);
            CHECK_FALSE(checkpoint::verify(*p, "example.com/log", pub));
        }
    CHECK(reparsed > 100);   // most flips leave a well-formed note whose signature fails
    for (std::size_t i = 0; i < n.signatures[0].payload.size(); ++i)
        for (int bit = 0; bit < 8; ++bit) {
            note bad = n;
            bad.signatures[0].payload[i] = static_cast<char>(bad.signatures[0].payload[i] ^ (1 << bit));
            CHECK_FALSE(checkpoint::verify(bad, "example.com/log", pub));
        }
    for (std::size_t i = 0; i < 4; ++i)
        for (int bit = 0; bit < 8; ++bit) {
            note bad = n;
            bad.signatures[0].key_id[i] ^= static_cast<unsigned char>(1 << bit);
            CHECK_FALSE(checkpoint::verify(bad, "example.com/log", pub));
        }
    // Extension lines are signed too.
    note extended = n;
    extended.extensions.push_back("extension line");
    CHECK_FALSE(checkpoint::verify(extended, "example.com/log", pub));
}

TEST_CASE("checkpoint: only the named key's line counts, other names, keys and lines are ignored", "[checkpoint]") {
    const auto key = private_key::generate();
    const auto other = private_key::generate();
    note n = checkpoint::sign("example.com/log", 5, merkle::leaf_hash("r"), "log-a", key);
    CHECK(checkpoint::verify(n, "log-a", key.public_part()));
    CHECK_FALSE(checkpoint::verify(n, "log-b", key.public_part()));
    CHECK_FALSE(checkpoint::verify(n, "log-a", other.public_part()));
    CHECK_FALSE(checkpoint::verify(n, "log-", key.public_part()));
    CHECK_FALSE(checkpoint::verify(n, "", key.public_part()));
    // The same signature under another name does not verify (the key ID covers the name).
    note renamed = n;
    renamed.signatures[0].name = "log-b";
    CHECK_FALSE(checkpoint::verify(renamed, "log-b", key.public_part()));
    // Lines of other keys do not matter, nor lines sharing only the name or only the key ID.
    const auto b_line = checkpoint::sign("example.com/log", 5, merkle::leaf_hash("r"), "log-b", other).signatures[0];
    const auto same_name = checkpoint::signature_line{"log-a", checkpoint::log_key_id("log-a", other.public_part()),
                                                      std::string(64, 'x')};
    const auto same_id = checkpoint::signature_line{"log-c", checkpoint::log_key_id("log-a", key.public_part()),
                                                    std::string(64, 'x')};
    note crowded = n;
    crowded.signatures.insert(crowded.signatures.begin(), {b_line, same_name, same_id});
    const auto parsed = checkpoint::parse(crowded.text());
    REQUIRE(parsed.has_value());
    CHECK(checkpoint::verify(*parsed, "log-a", key.public_part()));
    CHECK(checkpoint::verify(*parsed, "log-b", other.public_part()));
    // A line with the key's name and ID that does not verify rejects the note, before or after a
    // good one (signed-note: "clients SHOULD reject the whole note").
    const auto forged = checkpoint::signature_line{"log-a", checkpoint::log_key_id("log-a", key.public_part()),
                                                   std::string(64, 'x')};
    for (const bool before : {true, false}) {
        note with_forged = *parsed;
        with_forged.signatures.insert(before ? with_forged.signatures.begin() : with_forged.signatures.end(), forged);
        CHECK_FALSE(checkpoint::verify(with_forged, "log-a", key.public_part()));
        CHECK(checkpoint::verify(with_forged, "log-b", other.public_part()));   // not log-b's line
    }
    note short_sig = n;
    short_sig.signatures.push_back({"log-a", forged.key_id, std::string(63, 'x')});
    CHECK_FALSE(checkpoint::verify(short_sig, "log-a", key.public_part()));
    note forged_only = n;
    forged_only.signatures = {forged};
    CHECK_FALSE(checkpoint::verify(forged_only, "log-a", key.public_part()));
    note two_good = n;
    two_good.signatures.push_back(n.signatures[0]);
    CHECK(checkpoint::verify(two_good, "log-a", key.public_part()));
}

TEST_CASE("checkpoint: a cosignature round-trips and fails on any flipped bit, timestamp included", "[checkpoint]") {
    const auto log_key = private_key::generate();
    const auto w = private_key::generate();
    note n = checkpoint::sign("example.com/log", 1000, merkle::leaf_hash("r"), "example.com/log", log_key);
    const std::uint64_t t = 1767225600;
    const auto line = checkpoint::cosign(n, "witness.example", w, t);
    CHECK(line.payload.size() == 8 + 64);
    CHECK(line.key_id == checkpoint::cosigner_key_id("witness.example", w.public_part()));
    const auto reparsed_line = checkpoint::parse_signature_line(checkpoint::format_signature_line(line));
    REQUIRE(reparsed_line.has_value());
    CHECK(*reparsed_line == line);
    n.signatures.push_back(line);
    const auto parsed = checkpoint::parse(n.text());
    REQUIRE(parsed.has_value());
    CHECK(checkpoint::verify_cosignature(*parsed, "witness.example", w.public_part()) == t);
    CHECK(checkpoint::verify(*parsed, "example.com/log", log_key.public_part()));
    // A cosignature is not a log signature (algorithm byte 0x04 vs 0x01), and the reverse.
    CHECK_FALSE(checkpoint::verify(*parsed, "witness.example", w.public_part()));
    CHECK_FALSE(checkpoint::verify_cosignature(*parsed, "example.com/log", log_key.public_part()).has_value());
    CHECK_FALSE(checkpoint::verify_cosignature(*parsed, "witness.other", w.public_part()).has_value());
    CHECK_FALSE(checkpoint::verify_cosignature(*parsed, "witness.example", log_key.public_part()).has_value());
    for (std::size_t i = 0; i < line.payload.size(); ++i)
        for (int bit = 0; bit < 8; ++bit) {
            note bad = *parsed;
            auto& p = bad.signatures.back().payload;
            p[i] = static_cast<char>(p[i] ^ (1 << bit));
            INFO("flipped bit " << bit << " of payload byte " << i);
            CHECK_FALSE(checkpoint::verify_cosignature(bad, "witness.example", w.public_part()).has_value());
        }
    // A failing line of the same witness key rejects, as for log signatures; a second good one
    // does not (the first timestamp is reported).
    note with_bad = *parsed;
    auto bad_line = line;
    bad_line.payload[20] = static_cast<char>(bad_line.payload[20] ^ 1);
    with_bad.signatures.push_back(bad_line);
    CHECK_FALSE(checkpoint::verify_cosignature(with_bad, "witness.example", w.public_part()).has_value());
    note with_two = *parsed;
    with_two.signatures.push_back(checkpoint::cosign(n, "witness.example", w, t + 60));
    CHECK(checkpoint::verify_cosignature(with_two, "witness.example", w.public_part()) == t);
    note moved = *parsed;
    moved.size = 1001;
    CHECK_FALSE(checkpoint::verify_cosignature(moved, "witness.example", w.public_part()).has_value());
    // The timestamp's extremes encode as 8 bytes big-endian.
    for (const std::uint64_t edge : {std::uint64_t{0}, std::numeric_limits<std::uint64_t>::max()}) {
        note m = *parsed;
        m.signatures = {checkpoint::cosign(m, "witness.example", w, edge)};
        CHECK(checkpoint::verify_cosignature(m, "witness.example", w.public_part()) == edge);
    }
}

TEST_CASE("checkpoint: signing refuses what parse would refuse", "[checkpoint]") {
    const auto key = private_key::generate();
    const auto root = merkle::empty_root();
    CHECK_THROWS_AS(checkpoint::sign("", 0, root, "log", key), std::invalid_argument);
    CHECK_THROWS_AS(checkpoint::sign("a\nb", 0, root, "log", key), std::invalid_argument);
    CHECK_THROWS_AS(checkpoint::sign("a\tb", 0, root, "log", key), std::invalid_argument);
    CHECK_THROWS_AS(checkpoint::sign("a\xff", 0, root, "log", key), std::invalid_argument);
    CHECK_THROWS_AS(checkpoint::sign("log", -1, root, "log", key), std::invalid_argument);
    for (const auto& bad_name : std::vector<std::string>{"", "a b", "a+b", "a\nb", "a\xc2\xa0" "b", "a\xe3\x80\x80" "b", "\xff"}) {
        CHECK_THROWS_AS(checkpoint::sign("log", 0, root, bad_name, key), std::invalid_argument);
        CHECK_THROWS_AS(checkpoint::cosign(checkpoint::sign("log", 0, root, "log", key), bad_name, key, 0),
                        std::invalid_argument);
    }
    // Origins may hold spaces and any other printable UTF-8.
    const auto n = checkpoint::sign("例え.jp log ✓", 0, root, "例え.jp", key);
    const auto parsed = checkpoint::parse(n.text());
    REQUIRE(parsed.has_value());
    CHECK(*parsed == n);
    CHECK(checkpoint::verify(*parsed, "例え.jp", key.public_part()));
}

TEST_CASE("checkpoint: parse refuses malformed notes", "[checkpoint]") {
    const std::string body = hand_body;
    const std::string sig = hand_log_line;
    const std::string good = body + "\n" + sig;
    REQUIRE(checkpoint::parse(good).has_value());
    const std::string root = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const auto with_size = [&](const std::string& s) { return "example.com/mqledger\n" + s + "\n" + root + "\n\n" + sig; };
    const auto with_root = [&](const std::string& r) { return "example.com/mqledger\n12345\n" + r + "\n\n" + sig; };
    const auto with_sig = [&](const std::string& line) { return body + "\n" + line; };
    const std::string sig_b64 = sig.substr(dash.size() + 1 + 13, sig.size() - dash.size() - 1 - 13 - 1);
    REQUIRE(merkle::base64_decode(sig_b64).has_value());

    const std::vector<std::pair<std::string, std::string>> cases = {
        {"empty", ""},
        {"only a newline", "\n"},
        {"no blank line", body + sig},
        {"no signature", body + "\n"},
        {"no signature, two blank lines", body + "\n\n"},
        {"a blank line after the signatures", good + "\n"},
        {"no final newline", good.substr(0, good.size() - 1)},
        {"CRLF line ends", "example.com/mqledger\r\n12345\r\n" + root + "\r\n\r\n" + sig},
        {"no root line", "example.com/mqledger\n12345\n\n" + sig},
        {"only an origin", "example.com/mqledger\n\n" + sig},
        {"an empty origin", "\n12345\n" + root + "\n\n" + sig},
        {"an empty extension line", body + "\next\n\n" + sig},
        {"a blank line inside the body", "example.com/mqledger\n\n12345\n" + root + "\n\n" + sig},
        {"size with a leading zero", with_size("012345")},
        {"size 00", with_size("00")},
        {"negative size", with_size("-1")},
        {"size with a plus", with_size("+12345")},
        {"size with a space", with_size(" 12345")},
        {"size with a trailing space", with_size("12345 ")},
        {"size in hex", with_size("0x10")},
        {"size in exponent form", with_size("1e5")},
        {"size beyond int64", with_size("9223372036854775808")},
        {"a huge size", with_size("99999999999999999999999")},
        {"an empty size", with_size("")},
        {"root in hex", with_root("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")},
        {"root of 31 bytes", with_root(merkle::base64_encode(std::string(31, 'a')))},
        {"root of 33 bytes", with_root(merkle::base64_encode(std::string(33, 'a')))},
        {"root without padding", with_root(root.substr(0, 43))},
        {"root with non-zero padding bits", with_root(root.substr(0, 42) + "9=")},
        {"root in URL-safe base64", with_root("-_" + root.substr(2))},
        {"root with a space", with_root(" " + root)},
        {"signature with hyphens", with_sig("-- PeterNeumann " + sig_b64 + "\n")},
        {"signature without dash", with_sig("PeterNeumann " + sig_b64 + "\n")},
        {"signature without base64", with_sig(dash + " PeterNeumann\n")},
        {"signature with an empty base64", with_sig(dash + " PeterNeumann \n")},
        {"signature with two spaces", with_sig(dash + "  PeterNeumann " + sig_b64 + "\n")},
        {"signature with a trailing space", with_sig(dash + " PeterNeumann " + sig_b64 + " \n")},
        {"signature without space after the dash", with_sig(dash + "PeterNeumann " + sig_b64 + "\n")},
        {"signature name with a plus", with_sig(dash + " Peter+Neumann " + sig_b64 + "\n")},
        {"signature name with a no-break space", with_sig(dash + " Peter\xc2\xa0Neumann " + sig_b64 + "\n")},
        {"signature name with an ideographic space", with_sig(dash + " Peter\xe3\x80\x80Neumann " + sig_b64 + "\n")},
        {"signature with bad base64", with_sig(dash + " PeterNeumann " + sig_b64.substr(1) + "\n")},
        {"signature of 4 bytes", with_sig(dash + " PeterNeumann AAAAAA==\n")},
        {"a line after the signatures", good + "not a signature\n"},
        {"a NUL in the origin", std::string("example.com/\0mqledger\n12345\n", 28) + root + "\n\n" + sig},
        {"a tab in the origin", "example.com/\tmqledger\n12345\n" + root + "\n\n" + sig},
        {"a DEL in an extension", body + "ext\x7f\n\n" + sig},
        {"a CR at the end", good + "\r"},
        {"invalid UTF-8", "example.com/\xffmqledger\n12345\n" + root + "\n\n" + sig},
        {"overlong UTF-8", "example.com/\xc0\xafmqledger\n12345\n" + root + "\n\n" + sig},
        {"a UTF-16 surrogate", "example.com/\xed\xa0\x80mqledger\n12345\n" + root + "\n\n" + sig},
        {"beyond U+10FFFF", "example.com/\xf4\x90\x80\x80mqledger\n12345\n" + root + "\n\n" + sig},
        {"a truncated UTF-8 sequence", "example.com/\xe2\x80\n12345\n" + root + "\n\n" + sig},
        {"a control character in a signature name", with_sig(dash + " Peter\x01Neumann " + sig_b64 + "\n")},
    };
    for (const auto& [why, text] : cases) {
        INFO(why);
        CHECK_FALSE(checkpoint::parse(text).has_value());
    }

    // Accepted edges: extension lines, a signature of an unknown algorithm, size 0, 100 signatures.
    const auto ext = checkpoint::parse(body + "ext one\next two\n\n" + sig);
    REQUIRE(ext.has_value());
    CHECK(ext->extensions == std::vector<std::string>{"ext one", "ext two"});
    CHECK(checkpoint::parse(with_sig(dash + " other AAAAAAA=\n")).has_value());
    CHECK(checkpoint::parse(with_size("0")).has_value());
    std::string hundred = body + "\n";
    for (int i = 0; i < 100; ++i) hundred += sig;
    CHECK(checkpoint::parse(hundred).has_value());
    CHECK_FALSE(checkpoint::parse(hundred + sig).has_value());
    // 1 MiB of text at most.
    std::string big = body;
    for (int i = 0; big.size() < (1 << 20); ++i) big += "extension " + std::to_string(i) + "\n";
    CHECK_FALSE(checkpoint::parse(big + "\n" + sig).has_value());
    while (big.size() + 1 + sig.size() > (1 << 20)) big.erase(big.rfind('\n', big.size() - 2) + 1);
    CHECK(checkpoint::parse(big + "\n" + sig).has_value());
}

TEST_CASE("checkpoint: signature lines parse with or without their newline, and strictly", "[checkpoint]") {
    const std::string line = hand_log_line;
    const auto a = checkpoint::parse_signature_line(line);
    const auto b = checkpoint::parse_signature_line(line.substr(0, line.size() - 1));
    REQUIRE(a.has_value());
    REQUIRE(b.has_value());
    CHECK(*a == *b);
    CHECK(checkpoint::format_signature_line(*a) == line);
    for (const auto& bad : std::vector<std::string>{std::string(), line + "\n", "\n" + line, line.substr(0, line.size() - 2) + "\n",
                                  line.substr(1), dash + " " + "\n", dash + "  x AAAAAAA=", dash + " x AAAAAAA= ",
                                  dash + " x AAAAAAA=\r\n", dash + " x AAAAAAA=\nmore"})
        CHECK_FALSE(checkpoint::parse_signature_line(bad).has_value());
    CHECK(checkpoint::parse_signature_line(dash + " x AAAAAAA=").has_value());
}
