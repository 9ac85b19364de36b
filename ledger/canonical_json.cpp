#include "ledger/canonical_json.h"

#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>
#include <vector>

namespace mqledger {

namespace {

// jsonb's key order (lengthCompareJsonbString in src/backend/utils/adt/jsonb_util.c).
bool jsonb_key_less(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return a.size() < b.size();
    return std::memcmp(a.data(), b.data(), a.size()) < 0;
}

// escape_json in src/backend/utils/adt/json.c (PostgreSQL 15).
void append_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out.push_back('"');
    for (const char c : s) {
        switch (c) {
        case '\b': out.append("\\b"); break;
        case '\f': out.append("\\f"); break;
        case '\n': out.append("\\n"); break;
        case '\r': out.append("\\r"); break;
        case '\t': out.append("\\t"); break;
        case '"': out.append("\\\""); break;
        case '\\': out.append("\\\\"); break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                const auto u = static_cast<unsigned char>(c);
                out.append("\\u00");
                out.push_back(hex[u >> 4]);
                out.push_back(hex[u & 0xf]);
            } else {
                out.push_back(c);
            }
        }
    }
    out.push_back('"');
}

template <class Int>
void append_integer(std::string& out, Int i) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, i);
    out.append(buf, r.ptr);
}


std::optional<std::string> check_string(std::string_view s, const char* what) {
    if (s.find('\0') != std::string_view::npos) return std::string(what) + " contains U+0000";
    if (!valid_utf8(s)) return std::string(what) + " is not valid UTF-8";
    return std::nullopt;
}

} // namespace

bool valid_utf8(std::string_view s) noexcept {
    const auto* p = reinterpret_cast<const unsigned char*>(s.data());
    const auto* end = p + s.size();
    while (p < end) {
        const unsigned c = *p;
        if (c < 0x80) { ++p; continue; }
        int n = 0;
        unsigned cp = 0;
        if (c >= 0xc2 && c <= 0xdf) { n = 1; cp = c & 0x1f; }
        else if (c >= 0xe0 && c <= 0xef) { n = 2; cp = c & 0x0f; }
        else if (c >= 0xf0 && c <= 0xf4) { n = 3; cp = c & 0x07; }
        else return false;
        if (end - p <= n) return false;
        for (int k = 1; k <= n; ++k) {
            if ((p[k] & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (p[k] & 0x3f);
        }
        if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        p += n + 1;
    }
    return true;
}

std::optional<std::string> jsonb_incompatibility(const boost::json::value& v) {
    switch (v.kind()) {
    case boost::json::kind::double_:
        return "a floating-point number (only integers are stored)";
    case boost::json::kind::string:
        return check_string(v.get_string(), "a string");
    case boost::json::kind::array:
        for (const auto& e : v.get_array())
            if (auto why = jsonb_incompatibility(e)) return why;
        return std::nullopt;
    case boost::json::kind::object:
        for (const auto& kv : v.get_object()) {
            if (auto why = check_string(kv.key(), "a key")) return why;
            if (auto why = jsonb_incompatibility(kv.value())) return why;
        }
        return std::nullopt;
    default:
        return std::nullopt;
    }
}

void append_canonical_json(std::string& out, const boost::json::value& v) {
    switch (v.kind()) {
    case boost::json::kind::null: out.append("null"); return;
    case boost::json::kind::bool_: out.append(v.get_bool() ? "true" : "false"); return;
    case boost::json::kind::int64: append_integer(out, v.get_int64()); return;
    case boost::json::kind::uint64: append_integer(out, v.get_uint64()); return;
    case boost::json::kind::double_: out.append(boost::json::serialize(v)); return;
    case boost::json::kind::string: append_string(out, v.get_string()); return;
    case boost::json::kind::array: {
        out.push_back('[');
        bool first = true;
        for (const auto& e : v.get_array()) {
            if (!first) out.append(", ");
            first = false;
            append_canonical_json(out, e);
        }
        out.push_back(']');
        return;
    }
    case boost::json::kind::object: {
        const auto& obj = v.get_object();
        // Boost keeps keys unique (the last duplicate wins on parse, as in jsonb), so sorting
        // pointers is enough.
        std::vector<const boost::json::key_value_pair*> items;
        items.reserve(obj.size());
        for (const auto& kv : obj) items.push_back(&kv);
        std::sort(items.begin(), items.end(), [](const auto* a, const auto* b) {
            return jsonb_key_less(a->key(), b->key());
        });
        out.push_back('{');
        bool first = true;
        for (const auto* kv : items) {
            if (!first) out.append(", ");
            first = false;
            append_string(out, kv->key());
            out.append(": ");
            append_canonical_json(out, kv->value());
        }
        out.push_back('}');
        return;
    }
    }
}

std::string canonical_json(const boost::json::value& v) {
    std::string out;
    append_canonical_json(out, v);
    return out;
}

} // namespace mqledger
