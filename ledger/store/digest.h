// Ledger digests (issue 5; API.md `GET /v1/ledger/head`): the position and hash of the head, which
// an auditor keeps outside the database. Because every hash covers the one before it, a ledger
// whose event at that position still has that hash, and whose chain verifies, still extends the
// digest; a rewrite or a cut tail cannot. With an Ed25519 key (OpenSSL libcrypto) the daemon
// also signs each digest, so even a database administrator who rewrites the whole chain cannot
// forge a digest the auditor already holds: the signature would not match the public key.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace mqledger::store {

struct digest {
    std::int64_t position = 0;
    std::string hash;                       // 64 lower-case hex digits
    std::optional<std::string> signature;   // hex Ed25519 signature of message(), if signed
};

/// What is signed: "mqledger-digest-v1\n" POSITION "\n" HASH. Pure.
[[nodiscard]] std::string digest_message(std::int64_t position, std::string_view hash);

/// "POSITION:HASH" or "POSITION:HASH:SIGNATURE". Pure.
[[nodiscard]] std::string to_string(const digest& d);
/// Parses the form above; nothing when malformed. Pure.
[[nodiscard]] std::optional<digest> parse_digest(std::string_view text);

class digest_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Signs with an Ed25519 private key in PEM. Throws digest_error for a key that is not
/// Ed25519 or cannot be read. Thread-safe.
class digest_signer {
public:
    explicit digest_signer(const std::string& private_key_pem);
    ~digest_signer();
    digest_signer(const digest_signer&) = delete;
    digest_signer& operator=(const digest_signer&) = delete;
    /// The hex signature of digest_message(position, hash).
    [[nodiscard]] std::string sign(std::int64_t position, std::string_view hash) const;
    /// The public key in PEM (for the auditor).
    [[nodiscard]] std::string public_key_pem() const;

private:
    void* key_;   // EVP_PKEY*
};

/// True when `d.signature` is a valid Ed25519 signature of d's message under the PEM public
/// key. Throws digest_error for an unreadable key. Thread-safe.
[[nodiscard]] bool verify_digest_signature(const digest& d, const std::string& public_key_pem);

} // namespace mqledger::store
