// libFuzzer harness: the tokens file parser, token_table::parse (daemon/auth.h).
//
// Input: the file's text, as is.
//
// Properties:
//  - parse throws nothing but tokens_error, whose message starts with "SOURCE line N: ";
//  - a parsed table holds only what a strict reading of `ROLE NAME SHA256_HEX` allows: a known
//    role, a name without blanks or '#', distinct digests, at most one entry per line;
//  - a name is recorded as the actor of every event the token causes, in the jsonb metadata of
//    the event store: it must be text PostgreSQL can store (UTF-8, no U+0000) and, like every
//    other identity the API records, free of control characters;
//  - the table round-trips: written back one `role name hex` per line, it parses to the same.
#include "daemon/auth.h"
#include "ledger/store/hash_chain.h"
#include "ledger/canonical_json.h"
#include "tests/fuzz/fuzz_support.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

using namespace mqledger;
using mqledger::fuzz::printable;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    const std::string where = printable(text);
    std::optional<token_table> table;
    try {
        table = token_table::parse(text, "tokens.txt");
    } catch (const tokens_error& e) {
        const std::string_view msg = e.what();
        FUZZ_CHECK(msg.starts_with("tokens.txt line "), "an error without its line: " + std::string(msg));
        return 0;
    }
    // Any other exception propagates: libFuzzer reports it as a crash.

    const auto lines = static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1;
    FUZZ_CHECK(table->entries().size() <= lines, "more entries than lines: " + where);
    std::set<sha256_digest> digests;
    std::string written;
    for (const auto& e : table->entries()) {
        FUZZ_CHECK(parse_role(to_string(e.who)) == e.who, "an unknown role: " + where);
        FUZZ_CHECK(!e.name.empty() && e.name.find_first_of(" \t#\n") == std::string::npos,
                   "a name with blanks or '#': " + where);
        FUZZ_CHECK(valid_utf8(e.name), "a name that is not UTF-8 (the event store refuses it as the actor): " + where);
        FUZZ_CHECK(std::none_of(e.name.begin(), e.name.end(),
                                [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }),
                   "a name with control characters: " + where);
        FUZZ_CHECK(digests.insert(e.digest).second, "a digest twice: " + where);
        written += std::string(to_string(e.who)) + " " + e.name + " " + store::to_hex(e.digest.data(), e.digest.size()) + "\n";
    }

    const auto again = token_table::parse(written, "written");
    FUZZ_CHECK(again.entries().size() == table->entries().size(), "the table does not round-trip: " + where);
    for (std::size_t i = 0; i < again.entries().size(); ++i) {
        const auto& a = again.entries()[i];
        const auto& b = table->entries()[i];
        FUZZ_CHECK(a.who == b.who && a.name == b.name && a.digest == b.digest, "the table does not round-trip: " + where);
    }
    return 0;
}
