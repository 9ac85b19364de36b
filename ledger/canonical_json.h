// Canonical JSON: the exact text PostgreSQL prints for a jsonb value (`SELECT data::text`), so
// the hash chain can be computed by the store before insert and recomputed by an auditor from
// the table alone (README.md, "For auditors"). Pure: no I/O, no libpqxx.
#pragma once

#include <boost/json/value.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace mqledger {

/// Strict UTF-8 (no overlongs, no surrogates, at most U+10FFFF), as PostgreSQL's UTF8 encoding
/// demands of every text value. Thread-safe.
[[nodiscard]] bool valid_utf8(std::string_view s) noexcept;

/// Why `v` cannot be stored in a jsonb column and printed back unchanged, or nullopt if it can.
/// Refused: doubles (events hold integers only; jsonb would re-print 1.0 as 1.0 but 1e2 as 100),
/// strings or keys containing U+0000 (jsonb refuses it), and invalid UTF-8. Thread-safe.
[[nodiscard]] std::optional<std::string> jsonb_incompatibility(const boost::json::value& v);

/// PostgreSQL 15's jsonb text output of `v`: object keys ordered as jsonb orders them (shorter
/// first, then bytewise), `", "` between elements, `": "` after keys, strings escaped as
/// escape_json does (\" \\ \b \f \n \r \t, other bytes below 0x20 as \u00xx, the rest literal),
/// integers in decimal. Precondition: jsonb_incompatibility(v) is nullopt (doubles are printed
/// with Boost's serializer, which PostgreSQL would not reproduce). Thread-safe.
[[nodiscard]] std::string canonical_json(const boost::json::value& v);

/// As above, appending to `out` (to avoid a copy per event in the hot path).
void append_canonical_json(std::string& out, const boost::json::value& v);

} // namespace mqledger
