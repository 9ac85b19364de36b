// The hash chain over the events table (README.md, "For auditors" is the definition auditors
// read; keep the two in step).
#pragma once

#include "ledger/types.h"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace mqledger::store {

/// The prev_hash of the first event: 64 zeros.
inline constexpr std::string_view genesis_hash =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// `n` bytes as lower-case hex. Pure.
[[nodiscard]] std::string to_hex(const unsigned char* bytes, std::size_t n);

/// SHA-256 (OpenSSL EVP) of the concatenated `parts`, as 32 raw bytes into `out`. Thread-safe;
/// the one place that hashes (one digest context per thread, the algorithm fetched once).
void sha256_raw(std::initializer_list<std::string_view> parts, unsigned char* out);

/// Lower-case hex SHA-256 (OpenSSL EVP) of `bytes`. Thread-safe.
[[nodiscard]] std::string sha256_hex(std::string_view bytes);

/// The fields an event's hash covers. `data_json` and `metadata_json` are the canonical JSON
/// texts (equal to PostgreSQL's `data::text` and `metadata::text`).
struct hash_input {
    std::string_view prev_hash;
    std::int64_t position = 0;
    std::string_view stream;
    std::int64_t stream_version = 0;
    std::string_view type;
    std::int64_t effective_at_us = 0;   // microseconds since the Unix epoch, UTC
    std::int64_t recorded_at_us = 0;
    std::string_view data_json;
    std::string_view metadata_json;
};

/// The pre-image: the nine fields above joined by "\n", integers in decimal, no trailing newline.
/// Stream and type never contain control characters (a CHECK on the table), so it is
/// unambiguous. Thread-safe.
void append_hash_preimage(std::string& out, const hash_input& in);

/// sha256_hex(pre-image). Thread-safe.
[[nodiscard]] std::string event_hash(const hash_input& in);

/// Microseconds since the Unix epoch.
[[nodiscard]] inline std::int64_t to_us(time_point t) noexcept { return t.time_since_epoch().count(); }

} // namespace mqledger::store
