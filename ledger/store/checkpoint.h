// Signed checkpoints of the Merkle tree (issue 14; README.md "Merkle proofs and
// checkpoints"), in the C2SP formats:
//
//   - tlog-checkpoint: the note body is three lines, "ORIGIN\nSIZE\nROOT\n", ROOT being the
//     standard base64 of the 32-byte root hash (no extension lines are written; any are kept
//     when parsing and covered by the signatures);
//   - signed-note: the body, one empty line, then one line per signature
//     "— NAME BASE64(KEY_ID || SIGNATURE)\n" (U+2014 em dash, a space, the key name, a space);
//     an Ed25519 key's ID is the first 4 bytes of SHA-256(NAME || "\n" || 0x01 || PUBLIC_KEY),
//     and it signs the body bytes exactly;
//   - tlog-cosignature (witnesses): algorithm byte 0x04, key ID = first 4 bytes of
//     SHA-256(NAME || "\n" || 0x04 || PUBLIC_KEY); the witness signs
//     "cosignature/v1\ntime " TIMESTAMP "\n" followed by the body, and its line carries
//     BASE64(KEY_ID || TIMESTAMP as 8 bytes big-endian || SIGNATURE).
//
// Keys are Ed25519 in PEM (OpenSSL), as for the digests (ledger/store/digest.h). Pure apart from
// libcrypto; thread-safe.
#pragma once

#include "ledger/store/merkle.h"

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mqledger::checkpoint {

class key_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// One signature line of a note.
struct signature_line {
    std::string name;
    std::array<unsigned char, 4> key_id{};
    std::string payload;   // the bytes after the key ID (Ed25519: 64; cosignature: 8 + 64)

    friend bool operator==(const signature_line&, const signature_line&) = default;
};

/// A parsed checkpoint note.
struct note {
    std::string origin;
    std::int64_t size = 0;
    merkle::hash root{};
    std::vector<std::string> extensions;   // extension lines, as written (without "\n")
    std::vector<signature_line> signatures;

    /// "ORIGIN\nSIZE\nROOT\n" and the extension lines: the signed bytes.
    [[nodiscard]] std::string body() const;
    /// body(), "\n", and the signature lines.
    [[nodiscard]] std::string text() const;

    friend bool operator==(const note&, const note&) = default;
};

/// Parses a signed note holding a checkpoint. Nothing when malformed: no empty line, a body that
/// is not ORIGIN/SIZE/ROOT (+ extensions), a size that is not a decimal without leading zeros, a
/// root that is not 32 bytes of base64, no signature line, a bad signature line, a NUL or any
/// control character other than "\n" (C0 and DEL), invalid UTF-8, more than 100 signatures or
/// 1 MiB of text. What it accepts, text() writes back byte for byte.
[[nodiscard]] std::optional<note> parse(std::string_view text);

/// An Ed25519 public key.
class public_key {
public:
    /// From PEM (SubjectPublicKeyInfo) text. Throws key_error unless it is Ed25519.
    static public_key from_pem(std::string_view pem);
    /// From the 32 raw bytes.
    static public_key from_raw(const std::array<unsigned char, 32>& raw);
    [[nodiscard]] const std::array<unsigned char, 32>& raw() const noexcept { return raw_; }
    /// True when `signature` (64 bytes) is this key's Ed25519 signature of `message`.
    [[nodiscard]] bool verifies(std::string_view message, std::string_view signature) const;

private:
    std::array<unsigned char, 32> raw_{};
};

/// An Ed25519 private key.
class private_key {
public:
    /// From PEM (PKCS#8) text. Throws key_error unless it is Ed25519.
    static private_key from_pem(std::string_view pem);
    /// A fresh random key (tests).
    static private_key generate();
    [[nodiscard]] std::string to_pem() const;
    [[nodiscard]] public_key public_part() const;
    /// The 64-byte Ed25519 signature of `message`.
    [[nodiscard]] std::string sign(std::string_view message) const;

private:
    std::array<unsigned char, 32> seed_{};
};

/// The signed-note key ID of an Ed25519 log key (algorithm 0x01) and of a witness key (0x04).
[[nodiscard]] std::array<unsigned char, 4> log_key_id(std::string_view name, const public_key& key);
[[nodiscard]] std::array<unsigned char, 4> cosigner_key_id(std::string_view name, const public_key& key);

/// A checkpoint of (origin, size, root) signed by the log key `name`. Throws std::invalid_argument
/// for what parse() would refuse: an empty origin, one with a control character or invalid UTF-8,
/// a negative size, a bad key name.
[[nodiscard]] note sign(std::string_view origin, std::int64_t size, const merkle::hash& root, std::string_view name,
                        const private_key& key);

/// True when `n` carries a valid signature line of the log key (`name`, `key`): its name, its key
/// ID and its Ed25519 signature of n.body(). Lines of other keys are ignored (a line sharing only
/// the name or only the key ID is another key's); a line with this key's name and ID that does not
/// verify rejects the note, as signed-note recommends.
[[nodiscard]] bool verify(const note& n, std::string_view name, const public_key& key);

/// The message a witness signs for `n` at `timestamp` (seconds since the Unix epoch).
[[nodiscard]] std::string cosignature_message(const note& n, std::uint64_t timestamp);
/// The witness's signature line for `n`.
[[nodiscard]] signature_line cosign(const note& n, std::string_view witness_name, const private_key& key,
                                    std::uint64_t timestamp);
/// The timestamp of a valid co-signature line of (`name`, `key`) on `n` (the first, if the witness
/// signed more than once); nothing if there is none, or if a line with that name and key ID does
/// not verify (as for verify()).
[[nodiscard]] std::optional<std::uint64_t> verify_cosignature(const note& n, std::string_view name,
                                                              const public_key& key);

/// "— NAME BASE64\n", and back (nothing when malformed: the final "\n" may be left out; NAME is
/// non-empty UTF-8 without "+" or any space; BASE64 is strict and holds a key ID and at least one
/// more byte). Signing with a name that is not such a NAME throws std::invalid_argument.
[[nodiscard]] std::string format_signature_line(const signature_line& s);
[[nodiscard]] std::optional<signature_line> parse_signature_line(std::string_view line);

} // namespace mqledger::checkpoint
