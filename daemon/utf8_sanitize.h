// Text that must be UTF-8 whatever it came from (the JSON log lines: a request target may hold
// any byte 0x80-0xFF that Beast lets through, and Boost.JSON's serializer copies a string's
// bytes as they are, valid UTF-8 or not).
#pragma once

#include <string>
#include <string_view>

namespace mqledger {

/// `s` with every ill-formed UTF-8 sequence replaced by U+FFFD (EF BF BD), one per maximal
/// subpart as the Unicode Standard (3.9, "U+FFFD Substitution of Maximal Subparts") and the
/// WHATWG decoder do: a stray continuation byte, a lead byte without its continuations, an
/// overlong form (C0, C1, E0 80..9F, F0 80..8F), a surrogate (ED A0..BF) and anything above
/// U+10FFFF (F4 90.., F5..FF) each become one U+FFFD; valid text, control characters included,
/// is returned unchanged (JSON escapes those). Pure; thread-safe.
[[nodiscard]] std::string sanitize_utf8(std::string_view s);

} // namespace mqledger
