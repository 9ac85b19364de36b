#include "daemon/utf8_sanitize.h"

namespace mqledger {
namespace {

constexpr std::string_view replacement = "\xEF\xBF\xBD";   // U+FFFD

struct range {
    unsigned char lo, hi;
};

} // namespace

std::string sanitize_utf8(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const std::size_t n = s.size();
    std::size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
            continue;
        }
        // The allowed second byte and the number of continuation bytes (RFC 3629, Unicode 3.9
        // table 3-7); the third and fourth bytes are always 80..BF.
        range second{0x80, 0xBF};
        int continuations = 0;
        if (c >= 0xC2 && c <= 0xDF) continuations = 1;
        else if (c == 0xE0) { continuations = 2; second = {0xA0, 0xBF}; }
        else if (c == 0xED) { continuations = 2; second = {0x80, 0x9F}; }
        else if (c >= 0xE1 && c <= 0xEF) continuations = 2;
        else if (c == 0xF0) { continuations = 3; second = {0x90, 0xBF}; }
        else if (c >= 0xF1 && c <= 0xF3) continuations = 3;
        else if (c == 0xF4) { continuations = 3; second = {0x80, 0x8F}; }
        if (continuations == 0) {   // 80..C1, F5..FF: never a lead byte
            out += replacement;
            ++i;
            continue;
        }
        std::size_t len = 1;
        while (len <= static_cast<std::size_t>(continuations) && i + len < n) {
            const unsigned char b = p[i + len];
            const range r = len == 1 ? second : range{0x80, 0xBF};
            if (b < r.lo || b > r.hi) break;
            ++len;
        }
        if (len == static_cast<std::size_t>(continuations) + 1) out.append(s.substr(i, len));
        else out += replacement;   // the maximal subpart; the byte that broke it is read next
        i += len;
    }
    return out;
}

} // namespace mqledger
