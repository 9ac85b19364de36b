// The strict JSON codec of the audit vocabulary (API.md "Ledger"): every event type of
// `events::event` to and from the `data` object stored in the `events` table and served by the
// API, plus the RFC 3339 time helpers the HTTP layer shares.
//
// Strictness: decoding refuses an unknown type, a missing field, an extra field, a wrong JSON
// type, an integer beyond its C++ type, an unknown enum name or an unparsable time, each as a
// typed `codec_error` naming the field by its dotted path (`price.monthly`, `config.tps`,
// `topics[2]`). Value rules (negative money, 0 months, unknown time zone …) are the rules core's
// job, not the codec's: the codec only checks that a value is representable in its C++ field.
//
// Schema versions and upcasting. Every event type has a current schema version; history is never
// rewritten, so `decode` takes the version an event was written with and upcasts older data on
// read. To change the shape of a type (events.h: add, never rename or drop):
//   1. add the field to the struct in events.h with a default that means "as before";
//   2. in codec.cpp, encode and decode the field in the type's current shape (the static arity
//      checks there fail the build until you do);
//   3. append an upcaster `{type, old_version, function}` to `upcasters` in codec.cpp that turns
//      a data object of `old_version` into `old_version + 1` (typically: refuse the new key if
//      it is already present, then insert its default). The type's current version is
//      1 + the number of its upcasters, so this bumps it;
//   4. add a test that decodes a stored document of the old version.
// Today: `instance.purchased` and `instance.imported` are at version 2 (version 1 lacked
// `auto_renew`, upcast to `{"enabled": false, "days_before": 7}`); `instance.released` is at
// version 2 (version 1 lacked `config`, upcast to null); `instance.settled` is at version 2
// (version 1 lacked `flat` and `usage`, upcast to flat = amount and usage = []); every other type
// is at 1. A price's `per_unit` rates (issue 15) are optional and written only when present, so
// prices without them (every price written before) keep their shape and version.
//
// Every function here is a pure function of its arguments: thread-safe, no global state
// besides immutable tables.
#pragma once

#include "ledger/commands.h"
#include "ledger/events.h"
#include "ledger/types.h"

#include <boost/json.hpp>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace mqledger::codec {

/// Why a document was refused. Stable names (see `to_string`) for logs and API error details.
enum class error_kind {
    unknown_type,        // the type name is not in the catalog
    missing_field,       // a required key is absent (optional values are present as null)
    extra_field,         // a key the type's schema does not have
    wrong_type,          // wrong JSON kind: string for an integer, 1.5 or 1e3 for an integer, null for a string …
    out_of_range,        // an integer beyond its C++ type (int32 for months/days_before, int64 for money)
    bad_value,           // an unknown enum name (product "kafak") or an unparsable time
    unsupported_version, // a schema version below 1 or above the type's current version
};

/// The stable lower-case name of an error kind ("missing_field"). Thread-safe.
[[nodiscard]] std::string_view to_string(error_kind k) noexcept;

/// A refusal: which rule, which field (dotted path from the data's root; empty for the whole
/// document, the type name or the version), and a human-readable message.
struct codec_error {
    error_kind kind = error_kind::bad_value;
    std::string field;
    std::string message;
    friend bool operator==(const codec_error&, const codec_error&) = default;
};

/// Either the decoded event or why it was refused.
class [[nodiscard]] decode_result {
public:
    decode_result(events::event e) : value_(std::move(e)) {}
    decode_result(codec_error e) : value_(std::move(e)) {}
    [[nodiscard]] bool ok() const noexcept { return value_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }
    /// Precondition: ok().
    [[nodiscard]] const events::event& event() const& { return std::get<0>(value_); }
    [[nodiscard]] events::event&& event() && { return std::get<0>(std::move(value_)); }
    /// Precondition: !ok().
    [[nodiscard]] const codec_error& error() const& { return std::get<1>(value_); }

private:
    std::variant<events::event, codec_error> value_;
};

/// The `data` object of an event in its type's current schema version (API.md "Ledger" event
/// catalog). Deterministic: equal events encode to equal objects with keys in a fixed order.
/// Thread-safe. Throws only std::bad_alloc.
[[nodiscard]] boost::json::object encode(const events::event& e);

/// Decodes the `data` of an event of dotted type `type` written with `schema_version`,
/// upcasting older versions to the current one. Strict (see the header comment). Never throws:
/// any input yields an event or a codec_error. Thread-safe.
[[nodiscard]] decode_result decode(std::string_view type, const boost::json::value& data,
                                   int schema_version) noexcept;

/// The current schema version of a dotted event type (what `encode` writes and the store
/// records), or nullopt for an unknown type. Thread-safe.
[[nodiscard]] std::optional<int> current_schema_version(std::string_view type) noexcept;

/// A default-constructed event of the dotted type `name`, or nullopt if the catalog has no such
/// type; `events::type_name` of the result is `name`. For validators and dispatch. Thread-safe.
[[nodiscard]] std::optional<events::event> type_from_name(std::string_view name) noexcept;

/// Every dotted event type name of the catalog, in the order of `events::event`'s
/// alternatives. Thread-safe.
[[nodiscard]] std::span<const std::string_view> all_type_names() noexcept;

/// A command as JSON, as a unit record carries it (event metadata `unit.command`): an object with
/// `type` (`commands::name_of`) and the command's fields, keys in a fixed order. Deterministic.
/// The internal notices (tick, account_overdue, account_paid) are never recorded; they encode
/// as their bare type. Thread-safe. Throws only std::bad_alloc.
[[nodiscard]] boost::json::object encode_command(const commands::command& c);

/// Either a decoded command or why it was refused.
using command_result = std::variant<commands::command, codec_error>;

/// Decodes a command written by `encode_command`, strictly like events (missing, extra or
/// mistyped fields are refused with their path); an internal notice's type is refused as
/// unknown. Never throws. Thread-safe.
[[nodiscard]] command_result decode_command(const boost::json::value& v) noexcept;

/// Canonical RFC 3339 UTC form of an instant, as stored and served: `YYYY-MM-DDTHH:MM:SSZ`
/// when the microseconds are zero, else `YYYY-MM-DDTHH:MM:SS.ffffffZ` (exactly 6 digits).
/// Instants outside years 0000–9999 have no RFC 3339 form: they are written with a signed,
/// longer year (`+10000-01-01T00:00:00Z`) that `parse_time` refuses. Thread-safe.
[[nodiscard]] std::string format_time(time_point t);

/// Parses any RFC 3339 date-time (API.md: "Times are RFC 3339"): `T` or `t`, a fraction of 1–9
/// digits (digits beyond microseconds are truncated toward the past), `Z`, `z` or an offset
/// `±HH:MM`. Refuses (nullopt) a missing zone designator, a leap second (`:60`), hour 24,
/// out-of-range fields, nonexistent dates (`2023-02-30`), surrounding whitespace, and results
/// outside years 0000–9999 UTC. `parse_time(format_time(t)) == t` for every t in that range.
/// Thread-safe.
[[nodiscard]] std::optional<time_point> parse_time(std::string_view text) noexcept;

} // namespace mqledger::codec
