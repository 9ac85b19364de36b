// libFuzzer harness: the event JSON codec of ledger/codec.h (decode of stored events) and its
// RFC 3339 time functions.
//
// Input: a first line `TYPE VERSION` (e.g. `instance.purchased 2`; a missing or unparsable
// version means the type's current one), then the `data` JSON text. A first line that names no
// type is passed as the type anyway (unknown_type). Every JSON string anywhere in the data is
// also tried as a time.
//
// Properties:
//  - decode never throws and never reports its out-of-memory fallback (which would hide an
//    exception from the decoding code);
//  - a refusal has a stable kind name; unknown_type only for names outside the catalog, and
//    unsupported_version only for versions outside 1..current;
//  - anything decoded round-trips: decode(encode(e)) == e at the current version, through JSON
//    text too, and the encoding is the decoded document itself up to key order and time
//    spelling (RFC 3339 offsets, `t`/`z`, fractions: the same instant); encode(e) can be stored
//    in jsonb unless the data held a U+0000 (which jsonb cannot hold, so no stored event does);
//  - parse_time: any accepted time is within years 0000-9999 and format_time of it parses back
//    to the same instant; format_time writes 20 or 27 characters;
//  - with the pseudo type `unit`, the data is a unit record (event metadata `unit`, read by
//    verify from the log, ledger/unit.h): decode_unit refuses with a reason or decodes a record
//    that re-encodes and decodes to itself, deterministically.
#include "ledger/canonical_json.h"
#include "ledger/codec.h"
#include "ledger/unit.h"
#include "tests/fuzz/fuzz_support.h"

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace mqledger;
namespace json = boost::json;
using mqledger::fuzz::printable;

namespace {

void check_time(std::string_view s) {
    const auto t = codec::parse_time(s);
    if (!t) return;
    const auto text = codec::format_time(*t);
    FUZZ_CHECK(text.size() == 20 || text.size() == 27, "format_time wrote " + text + " for " + printable(s));
    FUZZ_CHECK(codec::parse_time(text) == t, "parse_time(format_time(t)) != t for " + printable(s) + " -> " + text);
    // Already canonical text formats to itself.
    if (s.size() == text.size() && s.back() == 'Z' && s[10] == 'T')
        FUZZ_CHECK(s == text, "non-canonical output " + text + " for " + printable(s));
}

void each_string(const json::value& v, void (*f)(std::string_view)) {
    if (const auto* s = v.if_string()) f(std::string_view(s->data(), s->size()));
    else if (const auto* a = v.if_array())
        for (const auto& e : *a) each_string(e, f);
    else if (const auto* o = v.if_object())
        for (const auto& kv : *o) {
            f(std::string_view(kv.key().data(), kv.key().size()));
            each_string(kv.value(), f);
        }
}

bool holds_nul(const json::value& v) {
    if (const auto* s = v.if_string()) return std::find(s->begin(), s->end(), '\0') != s->end();
    if (const auto* a = v.if_array()) return std::any_of(a->begin(), a->end(), [](const json::value& e) { return holds_nul(e); });
    if (const auto* o = v.if_object())
        return std::any_of(o->begin(), o->end(), [](const json::key_value_pair& kv) {
            return kv.key().find('\0') != json::string_view::npos || holds_nul(kv.value());
        });
    return false;
}

// `decoded` (what the codec read) and `encoded` (what it wrote back) hold the same values: same
// keys, integers equal, strings equal or the same instant.
bool equivalent(const json::value& decoded, const json::value& encoded) {
    if (decoded.kind() != encoded.kind()) {
        // A non-negative integer is int64 in both unless beyond INT64_MAX, which never decodes.
        return false;
    }
    switch (decoded.kind()) {
    case json::kind::object: {
        const auto& a = decoded.get_object();
        const auto& b = encoded.get_object();
        if (a.size() != b.size()) return false;
        for (const auto& kv : a) {
            const auto* other = b.if_contains(kv.key());
            if (!other || !equivalent(kv.value(), *other)) return false;
        }
        return true;
    }
    case json::kind::array: {
        const auto& a = decoded.get_array();
        const auto& b = encoded.get_array();
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i)
            if (!equivalent(a[i], b[i])) return false;
        return true;
    }
    case json::kind::string: {
        const auto& a = decoded.get_string();
        const auto& b = encoded.get_string();
        if (a == b) return true;
        const auto ta = codec::parse_time(std::string_view(a.data(), a.size()));
        return ta && ta == codec::parse_time(std::string_view(b.data(), b.size()));
    }
    default: return decoded == encoded;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(bytes), size);
    const auto nl = input.find('\n');
    std::string_view header = input.substr(0, nl);
    const std::string_view text = nl == std::string_view::npos ? std::string_view() : input.substr(nl + 1);

    std::string_view type = header;
    std::optional<int> version;
    if (const auto sp = header.rfind(' '); sp != std::string_view::npos) {
        int v = 0;
        const auto digits = header.substr(sp + 1);
        const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
        if (ec == std::errc{} && p == digits.data() + digits.size()) {
            version = v;
            type = header.substr(0, sp);
        }
    }
    check_time(header);

    boost::system::error_code ec;
    const json::value data = json::parse(json::string_view(text.data(), text.size()), ec);
    if (ec) return 0;
    each_string(data, &check_time);

    if (type == "unit") {
        std::string error;
        const auto u = decode_unit(data, error);
        if (!u) {
            FUZZ_CHECK(!error.empty(), "a unit record refused without a reason: " + printable(input));
            return 0;
        }
        const auto encoded = json::serialize(encode_unit(*u));
        std::string again_error;
        const auto again = decode_unit(json::parse(encoded), again_error);
        FUZZ_CHECK(again && *again == *u, "a unit record does not round-trip: " + printable(input) + " -> " + encoded);
        FUZZ_CHECK(json::serialize(encode_unit(*again)) == encoded, "unit encoding is not deterministic: " + encoded);
        return 0;
    }

    const auto current = codec::current_schema_version(type);
    const int at = version.value_or(current.value_or(1));
    const auto r = codec::decode(type, data, at);
    const std::string where = printable(input);

    if (!r) {
        const auto& err = r.error();
        FUZZ_CHECK(codec::to_string(err.kind) != "?", "an error kind without a name: " + where);
        FUZZ_CHECK(err.message != "out of memory", "decode swallowed an exception: " + where);
        FUZZ_CHECK((err.kind == codec::error_kind::unknown_type) == !current, "unknown_type mismatch: " + where);
        if (current)
            FUZZ_CHECK((err.kind == codec::error_kind::unsupported_version) == (at < 1 || at > *current),
                       "unsupported_version mismatch: " + where);
        return 0;
    }

    FUZZ_CHECK(current && at >= 1 && at <= *current, "decoded with an unknown type or version: " + where);
    const auto& e = r.event();
    FUZZ_CHECK(events::type_name(e) == type, "decoded as another type: " + where);

    const json::object encoded = codec::encode(e);
    const auto again = codec::decode(type, encoded, *current);
    FUZZ_CHECK(again.ok(), "encode(e) does not decode: " + where + " -> " + json::serialize(encoded) +
                               (again.ok() ? "" : " : " + again.error().field + " " + again.error().message));
    FUZZ_CHECK(again.event() == e, "decode(encode(e)) != e: " + where);

    const std::string serialized = json::serialize(encoded);
    const auto reparsed = codec::decode(type, json::parse(serialized), *current);
    FUZZ_CHECK(reparsed.ok() && reparsed.event() == e, "e does not round-trip through JSON text: " + where);
    FUZZ_CHECK(json::serialize(codec::encode(reparsed.event())) == serialized, "encoding is not deterministic: " + where);

    if (at == *current)
        FUZZ_CHECK(equivalent(data, encoded), "encode(decode(d)) is not d: " + where + " -> " + serialized);

    if (!holds_nul(data)) {
        const auto why = jsonb_incompatibility(json::value(encoded));
        FUZZ_CHECK(!why, "a decoded event cannot be stored: " + (why ? *why : std::string()) + ": " + where);
    }
    return 0;
}
