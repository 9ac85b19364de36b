// Small text encodings between the store and PostgreSQL: array literals for unnest() parameters,
// exact timestamptz literals, and the column list events are read with. Internal to the store.
#pragma once

#include "ledger/store/event_store.h"

#include <pqxx/pqxx>

#include <cstdint>
#include <string>
#include <string_view>

namespace mqledger::store::detail {

/// Appends `s` as a quoted element of a PostgreSQL array literal ("…" with \ and " escaped).
void append_array_element(std::string& out, std::string_view s);

/// Builds `{"a","b"}` from strings.
template <class Range>
std::string text_array(const Range& items) {
    std::string out = "{";
    bool first = true;
    for (const auto& s : items) {
        if (!first) out.push_back(',');
        first = false;
        append_array_element(out, s);
    }
    out.push_back('}');
    return out;
}

/// Appends the integer as an (unquoted) array element.
void append_array_int(std::string& out, std::int64_t v);

/// "YYYY-MM-DD HH:MM:SS.ffffff+00": exact to the microsecond, unlike float arithmetic on epochs.
/// Precondition: year within 1..9999.
void append_timestamptz(std::string& out, std::int64_t us_since_epoch);

/// Whether `t` can be written as a timestamptz literal (years 1..9999).
[[nodiscard]] bool timestamptz_in_range(time_point t) noexcept;

/// The select list that read_event() parses, in this order.
inline constexpr const char* event_columns =
    "position, stream, stream_version, type, data::text, metadata::text,"
    " (extract(epoch FROM effective_at) * 1000000)::bigint,"
    " (extract(epoch FROM recorded_at) * 1000000)::bigint, prev_hash, hash";

/// Parses one row selected with event_columns.
[[nodiscard]] recorded_event read_event(const pqxx::row& row);

} // namespace mqledger::store::detail
