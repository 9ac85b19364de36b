// Shared by the libFuzzer harnesses: a property check that aborts (so libFuzzer saves the input
// as a crash) and prints what was violated.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace mqledger::fuzz {

[[noreturn]] inline void violated(const char* condition, const char* file, int line, std::string_view detail) {
    std::fprintf(stderr, "\n==== fuzz property violated at %s:%d\n  %s\n  %.*s\n", file, line, condition,
                 static_cast<int>(detail.size()), detail.data());
    std::abort();
}

/// Printable form of arbitrary bytes for the messages above.
inline std::string printable(std::string_view s, std::size_t max = 400) {
    std::string out;
    for (unsigned char c : s.substr(0, max)) {
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += static_cast<char>(c);
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        }
    }
    if (s.size() > max) out += "…";
    return out;
}

} // namespace mqledger::fuzz

// A property of the code under test; on failure the input becomes a libFuzzer crash.
#define FUZZ_CHECK(cond, detail)                                                                   \
    do {                                                                                           \
        if (!(cond)) ::mqledger::fuzz::violated(#cond, __FILE__, __LINE__, (detail));              \
    } while (0)
