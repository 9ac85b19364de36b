#include "ledger/codec.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace mqledger::codec {
namespace json = boost::json;

// ---------------------------------------------------------------------------------------------
// Time: RFC 3339 with our own proleptic Gregorian arithmetic (Howard Hinnant's days_from_civil /
// civil_from_days) on int64, so that no input, however extreme, can overflow.
namespace {

constexpr std::int64_t micros_per_second = 1'000'000;
constexpr std::int64_t micros_per_day = 86'400 * micros_per_second;

constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
    y -= m <= 2 ? 1 : 0;
    const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct civil_date {
    std::int64_t year;
    unsigned month;
    unsigned day;
};

constexpr civil_date civil_from_days(std::int64_t z) noexcept {
    z += 719468;
    const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const auto doe = static_cast<unsigned>(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    const unsigned d = doy - (153 * mp + 2) / 5 + 1;
    const unsigned m = mp < 10 ? mp + 3 : mp - 9;
    return {static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0), m, d};
}

static_assert(days_from_civil(1970, 1, 1) == 0);
static_assert(civil_from_days(days_from_civil(2024, 2, 29)).day == 29);

constexpr bool is_leap(std::int64_t y) noexcept { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0); }

constexpr unsigned days_in_month(std::int64_t y, unsigned m) noexcept {
    constexpr std::array<unsigned, 12> days{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

// The instants RFC 3339 can write: years 0000 to 9999 UTC.
constexpr std::int64_t min_rfc3339_micros = days_from_civil(0, 1, 1) * micros_per_day;
constexpr std::int64_t max_rfc3339_micros = (days_from_civil(9999, 12, 31) + 1) * micros_per_day - 1;

void append_digits(std::string& out, std::uint64_t v, int width) {
    char buf[24];
    int n = 0;
    do {
        buf[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (int i = n; i < width; ++i) out.push_back('0');
    while (n > 0) out.push_back(buf[--n]);
}

} // namespace

std::string format_time(time_point t) {
    const std::int64_t us = t.time_since_epoch().count();
    std::int64_t days = us / micros_per_day;
    std::int64_t rem = us % micros_per_day;
    if (rem < 0) {
        rem += micros_per_day;
        --days;
    }
    const civil_date date = civil_from_days(days);
    std::string out;
    out.reserve(32);
    if (date.year < 0) {
        out.push_back('-');
        append_digits(out, static_cast<std::uint64_t>(-date.year), 4);
    } else {
        if (date.year > 9999) out.push_back('+');
        append_digits(out, static_cast<std::uint64_t>(date.year), 4);
    }
    const auto secs = static_cast<std::uint64_t>(rem / micros_per_second);
    const auto frac = static_cast<std::uint64_t>(rem % micros_per_second);
    out.push_back('-');
    append_digits(out, date.month, 2);
    out.push_back('-');
    append_digits(out, date.day, 2);
    out.push_back('T');
    append_digits(out, secs / 3600, 2);
    out.push_back(':');
    append_digits(out, secs / 60 % 60, 2);
    out.push_back(':');
    append_digits(out, secs % 60, 2);
    if (frac != 0) {
        out.push_back('.');
        append_digits(out, frac, 6);
    }
    out.push_back('Z');
    return out;
}

std::optional<time_point> parse_time(std::string_view s) noexcept {
    std::size_t i = 0;
    const auto is_digit = [&](std::size_t at) { return at < s.size() && s[at] >= '0' && s[at] <= '9'; };
    const auto digits = [&](std::size_t n, int& out) {
        int v = 0;
        for (std::size_t k = 0; k < n; ++k) {
            if (!is_digit(i + k)) return false;
            v = v * 10 + (s[i + k] - '0');
        }
        i += n;
        out = v;
        return true;
    };
    const auto literal = [&](char c) {
        if (i >= s.size() || s[i] != c) return false;
        ++i;
        return true;
    };

    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    if (!digits(4, year) || !literal('-') || !digits(2, month) || !literal('-') || !digits(2, day)) return std::nullopt;
    if (!literal('T') && !literal('t')) return std::nullopt;
    if (!digits(2, hour) || !literal(':') || !digits(2, minute) || !literal(':') || !digits(2, second)) return std::nullopt;

    std::int64_t micros = 0;
    if (literal('.')) {
        std::size_t n = 0;
        for (; is_digit(i); ++i, ++n)
            if (n < 6) micros = micros * 10 + (s[i] - '0'); // finer digits are truncated
        if (n == 0 || n > 9) return std::nullopt;
        for (std::size_t k = n; k < 6; ++k) micros *= 10;
    }

    int offset_minutes = 0;
    if (literal('Z') || literal('z')) {
        // UTC
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        const int sign = s[i] == '-' ? -1 : 1;
        ++i;
        int oh = 0, om = 0;
        if (!digits(2, oh) || !literal(':') || !digits(2, om)) return std::nullopt;
        if (oh > 23 || om > 59) return std::nullopt;
        offset_minutes = sign * (oh * 60 + om);
    } else {
        return std::nullopt; // no zone designator
    }
    if (i != s.size()) return std::nullopt;

    if (month < 1 || month > 12) return std::nullopt;
    if (day < 1 || static_cast<unsigned>(day) > days_in_month(year, static_cast<unsigned>(month))) return std::nullopt;
    if (hour > 23 || minute > 59 || second > 59) return std::nullopt; // no hour 24, no leap second

    const std::int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
    const std::int64_t seconds = days * 86'400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    const std::int64_t us = seconds * micros_per_second + micros;
    if (us < min_rfc3339_micros || us > max_rfc3339_micros) return std::nullopt;
    return time_point(duration(us));
}

// ---------------------------------------------------------------------------------------------
// Schemas: for each struct, its JSON keys in order with the member each one holds. Encoding and
// decoding both walk these tables, so the two cannot drift apart.
namespace {

template <class S, class M>
struct field {
    std::string_view name;
    M S::*member;
};

/// The members of a nested struct written at the top level of the same object (imported).
template <class S, class M>
struct flattened {
    M S::*member;
};

// Deduction guides for compilers without aggregate CTAD (clang < 17, used for fuzzing).
template <class S, class M> field(std::string_view, M S::*) -> field<S, M>;
template <class S, class M> flattened(M S::*) -> flattened<S, M>;

template <class T>
inline constexpr auto schema = std::tuple<>{}; // events without data

using namespace mqledger::events;

template <> inline constexpr auto schema<instance_config> = std::tuple{
    field{"edition", &instance_config::edition}, field{"sub_category", &instance_config::sub_category},
    field{"tps", &instance_config::tps}, field{"internet_access", &instance_config::internet_access},
    field{"bandwidth_mbps", &instance_config::bandwidth_mbps}};
template <> inline constexpr auto schema<auto_renew_setting> = std::tuple{
    field{"enabled", &auto_renew_setting::enabled}, field{"days_before", &auto_renew_setting::days_before}};
template <> inline constexpr auto schema<config_snapshot> = std::tuple{
    field{"config", &config_snapshot::config}, field{"price", &config_snapshot::rate}};

template <> inline constexpr auto schema<account_opened> = std::tuple{field{"currency", &account_opened::currency}};
template <> inline constexpr auto schema<funds_added> = std::tuple{
    field{"amount", &funds_added::amount}, field{"reference", &funds_added::reference}};
template <> inline constexpr auto schema<charged> = std::tuple{
    field{"amount", &charged::amount}, field{"reason", &charged::reason},
    field{"instance_id", &charged::instance_id}, field{"reference", &charged::reference}};
template <> inline constexpr auto schema<refunded> = std::tuple{
    field{"amount", &refunded::amount}, field{"instance_id", &refunded::instance_id}};

// Version 2 (version 1 lacked auto_renew: see upcasters below).
template <> inline constexpr auto schema<purchased> = std::tuple{
    field{"product", &purchased::prod}, field{"billing", &purchased::bill},
    field{"account_id", &purchased::account_id}, field{"timezone", &purchased::timezone},
    field{"price", &purchased::rate}, field{"term_months", &purchased::term_months},
    field{"expires_at", &purchased::expires_at}, field{"config", &purchased::config},
    field{"auto_renew", &purchased::auto_renew}};
// Version 2: the purchase fields flattened, then the import's own.
template <> inline constexpr auto schema<imported> = std::tuple{
    flattened{&imported::purchase}, field{"state", &imported::in_state},
    field{"state_since", &imported::state_since}, field{"overdue_since", &imported::overdue_since}};
template <> inline constexpr auto schema<renewed> = std::tuple{
    field{"months", &renewed::months}, field{"amount", &renewed::amount},
    field{"expires_at", &renewed::expires_at}, field{"auto", &renewed::automatic}};
template <> inline constexpr auto schema<auto_renew_set> = std::tuple{
    field{"enabled", &auto_renew_set::enabled}, field{"days_before", &auto_renew_set::days_before}};
template <> inline constexpr auto schema<auto_renew_failed> = std::tuple{
    field{"required", &auto_renew_failed::required}, field{"balance", &auto_renew_failed::balance}};
template <> inline constexpr auto schema<expired> = std::tuple{field{"cause", &expired::cause}};
template <> inline constexpr auto schema<restored> = std::tuple{field{"cause", &restored::cause}};
// Version 2 (version 1 lacked config: see upcasters below).
template <> inline constexpr auto schema<released> = std::tuple{
    field{"cause", &released::cause}, field{"topics", &released::topics}, field{"groups", &released::groups},
    field{"config", &released::config}};
template <> inline constexpr auto schema<usage_item> = std::tuple{
    field{"record_id", &usage_item::record_id}, field{"metric", &usage_item::metric},
    field{"quantity", &usage_item::quantity}, field{"rate", &usage_item::rate}, field{"amount", &usage_item::amount},
    field{"cycle_start", &usage_item::cycle_start}, field{"cycle_end", &usage_item::cycle_end}};
// Version 2 (version 1 lacked flat and usage: see upcasters below).
template <> inline constexpr auto schema<settled> = std::tuple{
    field{"cycle_start", &settled::cycle_start}, field{"cycle_end", &settled::cycle_end},
    field{"amount", &settled::amount}, field{"flat", &settled::flat}, field{"usage", &settled::usage}};
template <> inline constexpr auto schema<config_change_started> = std::tuple{
    field{"from", &config_change_started::from}, field{"to", &config_change_started::to},
    field{"amount", &config_change_started::amount}};
template <> inline constexpr auto schema<topic_created> = std::tuple{field{"name", &topic_created::name}};
template <> inline constexpr auto schema<topic_deleted> = std::tuple{field{"name", &topic_deleted::name}};
template <> inline constexpr auto schema<group_created> = std::tuple{field{"name", &group_created::name}};
template <> inline constexpr auto schema<group_deleted> = std::tuple{field{"name", &group_deleted::name}};
template <> inline constexpr auto schema<usage_recorded> = std::tuple{
    field{"record_id", &usage_recorded::record_id}, field{"metric", &usage_recorded::metric},
    field{"quantity", &usage_recorded::quantity}, field{"start", &usage_recorded::start},
    field{"end", &usage_recorded::end}, field{"rate", &usage_recorded::rate}};

// Commands, as unit records carry them (`encode_command`). The internal notices (tick,
// account_overdue, account_paid) are never recorded and have no schema.
namespace cmd = mqledger::commands;
template <> inline constexpr auto schema<cmd::purchase> = std::tuple{
    field{"instance_id", &cmd::purchase::instance_id}, field{"account_id", &cmd::purchase::account_id},
    field{"product", &cmd::purchase::prod}, field{"billing", &cmd::purchase::bill},
    field{"timezone", &cmd::purchase::timezone}, field{"price", &cmd::purchase::rate},
    field{"term_months", &cmd::purchase::term_months}, field{"config", &cmd::purchase::config},
    field{"auto_renew", &cmd::purchase::auto_renew}};
template <> inline constexpr auto schema<cmd::import_instance> = std::tuple{
    flattened{&cmd::import_instance::details}, field{"state", &cmd::import_instance::in_state},
    field{"state_since", &cmd::import_instance::state_since}, field{"expires_at", &cmd::import_instance::expires_at},
    field{"overdue_since", &cmd::import_instance::overdue_since}, field{"owed", &cmd::import_instance::owed}};
template <> inline constexpr auto schema<cmd::renew> = std::tuple{field{"months", &cmd::renew::months}};
template <> inline constexpr auto schema<cmd::change_config> = std::tuple{
    field{"config", &cmd::change_config::config}, field{"price", &cmd::change_config::rate}};
template <> inline constexpr auto schema<cmd::set_auto_renew> = std::tuple{
    field{"enabled", &cmd::set_auto_renew::enabled}, field{"days_before", &cmd::set_auto_renew::days_before}};
template <> inline constexpr auto schema<cmd::create_topic> = std::tuple{field{"name", &cmd::create_topic::name}};
template <> inline constexpr auto schema<cmd::delete_topic> = std::tuple{field{"name", &cmd::delete_topic::name}};
template <> inline constexpr auto schema<cmd::create_group> = std::tuple{field{"name", &cmd::create_group::name}};
template <> inline constexpr auto schema<cmd::delete_group> = std::tuple{field{"name", &cmd::delete_group::name}};
template <> inline constexpr auto schema<cmd::open_account> = std::tuple{field{"currency", &cmd::open_account::currency}};
template <> inline constexpr auto schema<cmd::add_funds> = std::tuple{
    field{"amount", &cmd::add_funds::amount}, field{"reference", &cmd::add_funds::reference}};
template <> inline constexpr auto schema<cmd::charge> = std::tuple{
    field{"amount", &cmd::charge::amount}, field{"instance_id", &cmd::charge::instance_id},
    field{"reason", &cmd::charge::reason}, field{"reference", &cmd::charge::reference}};
template <> inline constexpr auto schema<cmd::record_usage> = std::tuple{
    field{"record_id", &cmd::record_usage::record_id}, field{"metric", &cmd::record_usage::metric},
    field{"quantity", &cmd::record_usage::quantity}, field{"start", &cmd::record_usage::start},
    field{"end", &cmd::record_usage::end}};

constexpr bool is_notice(std::size_t index) {
    return index == cmd::command(std::in_place_type<cmd::tick>).index() ||
           index == cmd::command(std::in_place_type<cmd::account_overdue>).index() ||
           index == cmd::command(std::in_place_type<cmd::account_paid>).index();
}

// ---- compile-time guard: every member of every struct is in its schema ----
// The number of members of an aggregate, found by brace-initialising it with ever more
// "converts to anything" arguments. Conversion to std::optional is left to optional's own
// converting constructor, which would otherwise be ambiguous with it.
template <class T> struct is_optional : std::false_type {};
template <class T> struct is_optional<std::optional<T>> : std::true_type {};

struct any_member {
    template <class T>
        requires(!is_optional<T>::value)
    operator T() const;
};

template <class T, class... A>
constexpr std::size_t aggregate_arity() {
    if constexpr (requires { T{std::declval<A>()..., any_member{}}; })
        return aggregate_arity<T, A..., any_member>();
    else
        return sizeof...(A);
}

template <class T>
constexpr bool schema_covers_every_member() {
    return aggregate_arity<T>() == std::tuple_size_v<std::remove_cvref_t<decltype(schema<T>)>>;
}

static_assert(aggregate_arity<price>() == 3, "types.h price changed: update read_value/write_value(price)");
static_assert(schema_covers_every_member<usage_item>(), "events.h usage_item has a field the codec does not encode");
static_assert(schema_covers_every_member<instance_config>(), "types.h instance_config has a field the codec does not encode");
static_assert(schema_covers_every_member<auto_renew_setting>(), "types.h auto_renew_setting has a field the codec does not encode");
static_assert(schema_covers_every_member<config_snapshot>(), "events.h config_snapshot has a field the codec does not encode");

template <std::size_t... I>
constexpr bool every_event_schema_complete(std::index_sequence<I...>) {
    return (schema_covers_every_member<std::variant_alternative_t<I, event>>() && ...);
}
static_assert(every_event_schema_complete(std::make_index_sequence<std::variant_size_v<event>>{}),
              "an event struct in events.h has a field the codec does not encode: add it to its schema "
              "here, bump the type's schema version with an upcaster (see codec.h)");
template <std::size_t... I>
constexpr bool every_command_schema_complete(std::index_sequence<I...>) {
    return ((is_notice(I) || schema_covers_every_member<std::variant_alternative_t<I, cmd::command>>()) && ...);
}
static_assert(every_command_schema_complete(std::make_index_sequence<std::variant_size_v<cmd::command>>{}),
              "a command struct in commands.h has a field the command codec does not encode");
// The guard itself works: these counts are known.
static_assert(aggregate_arity<purchased>() == 9 && aggregate_arity<deployed>() == 0 &&
              aggregate_arity<imported>() == 4);

// ---------------------------------------------------------------------------------------------
// Encoding.

json::value write_value(const std::string& s) { return json::value(json::string_view(s.data(), s.size())); }
json::value write_value(std::int64_t v) { return json::value(v); }
json::value write_value(std::int32_t v) { return json::value(static_cast<std::int64_t>(v)); }
json::value write_value(bool v) { return json::value(v); }
json::value write_value(time_point t) { return write_value(format_time(t)); }
json::value write_value(std::string_view name) { return json::value(json::string_view(name.data(), name.size())); }
json::value write_value(product p) { return write_value(to_string(p)); }
json::value write_value(billing b) { return write_value(to_string(b)); }
json::value write_value(state s) { return write_value(to_string(s)); }
json::value write_value(expiry_cause c) { return write_value(to_string(c)); }
json::value write_value(release_cause c) { return write_value(to_string(c)); }

// The unit and its amount, then `per_unit` only when there are per-unit rates (issue 15), so a
// price without them encodes exactly as before they existed.
json::value write_value(const price& p) {
    json::object o;
    const std::string_view unit = to_string(p.per);
    o.emplace(json::string_view(unit.data(), unit.size()), p.amount);
    if (!p.per_unit.empty()) {
        json::object rates;
        for (const auto& [metric, rate] : p.per_unit) rates.emplace(json::string_view(metric.data(), metric.size()), rate);
        o.emplace("per_unit", std::move(rates));
    }
    return o;
}

json::value write_value(const std::vector<std::string>& names) {
    json::array a;
    a.reserve(names.size());
    for (const auto& n : names) a.push_back(write_value(n));
    return a;
}

template <class T>
void encode_fields(const T& e, json::object& out);

template <class T>
    requires(std::tuple_size_v<std::remove_cvref_t<decltype(schema<T>)>> > 0)
json::value write_value(const T& nested) {
    json::object o;
    encode_fields(nested, o);
    return o;
}

template <class T>
json::value write_value(const std::optional<T>& v) {
    return v ? write_value(*v) : json::value(nullptr);
}

template <class T>
    requires(std::tuple_size_v<std::remove_cvref_t<decltype(schema<T>)>> > 0)
json::value write_value(const std::vector<T>& items) {
    json::array a;
    a.reserve(items.size());
    for (const auto& item : items) a.push_back(write_value(item));
    return a;
}

template <class S, class M>
void encode_one(const S& e, const field<S, M>& f, json::object& out) {
    out.emplace(json::string_view(f.name.data(), f.name.size()), write_value(e.*f.member));
}
template <class S, class M>
void encode_one(const S& e, const flattened<S, M>& f, json::object& out) {
    encode_fields(e.*f.member, out);
}

template <class T>
void encode_fields(const T& e, json::object& out) {
    std::apply([&](const auto&... f) { (encode_one(e, f, out), ...); }, schema<T>);
}

// ---------------------------------------------------------------------------------------------
// Decoding. The first error wins; after it every read is a no-op.

class errors {
public:
    [[nodiscard]] bool failed() const noexcept { return error_.has_value(); }
    void fail(error_kind kind, std::string path, std::string message) {
        if (!error_) error_ = codec_error{kind, std::move(path), std::move(message)};
    }
    [[nodiscard]] std::optional<codec_error>& error() noexcept { return error_; }

private:
    std::optional<codec_error> error_;
};

template <class T>
    requires(std::tuple_size_v<std::remove_cvref_t<decltype(schema<T>)>> > 0)
void read_value(const json::value& v, const std::string& path, T& out, errors& errs);

std::string join(std::string_view prefix, std::string_view key) {
    std::string p;
    p.reserve(prefix.size() + key.size() + 1);
    p.append(prefix);
    if (!prefix.empty()) p.push_back('.');
    p.append(key);
    return p;
}

std::string_view describe(const json::value& v) noexcept {
    switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::int64:
    case json::kind::uint64: return "an integer";
    case json::kind::double_: return "a floating-point number";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
    }
    return "an unknown value";
}

void wrong_type(errors& errs, const std::string& path, std::string_view expected, const json::value& got) {
    errs.fail(error_kind::wrong_type, path, "expected " + std::string(expected) + ", got " + std::string(describe(got)));
}

std::string_view view(const json::string& s) noexcept { return {s.data(), s.size()}; }

// A JSON integer that fits in [lo, hi] (hi >= 0). Floating-point numbers are refused even when
// integral (1e3, 2.0): a stored document never holds one, and accepting it would make two texts
// decode to the same event.
bool read_integer(const json::value& v, const std::string& path, std::int64_t lo, std::int64_t hi,
                  std::int64_t& out, errors& errs) {
    if (v.is_int64()) {
        const std::int64_t x = v.get_int64();
        if (x < lo || x > hi) {
            errs.fail(error_kind::out_of_range, path, std::to_string(x) + " is outside [" + std::to_string(lo) + ", " +
                                                          std::to_string(hi) + "]");
            return false;
        }
        out = x;
        return true;
    }
    if (v.is_uint64()) {
        const std::uint64_t x = v.get_uint64();
        if (x > static_cast<std::uint64_t>(hi)) {
            errs.fail(error_kind::out_of_range, path, std::to_string(x) + " is above " + std::to_string(hi));
            return false;
        }
        out = static_cast<std::int64_t>(x);
        return true;
    }
    wrong_type(errs, path, "an integer", v);
    return false;
}

void read_value(const json::value& v, const std::string& path, std::int64_t& out, errors& errs) {
    read_integer(v, path, std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max(), out, errs);
}

void read_value(const json::value& v, const std::string& path, std::int32_t& out, errors& errs) {
    std::int64_t x = 0;
    if (read_integer(v, path, std::numeric_limits<std::int32_t>::min(), std::numeric_limits<std::int32_t>::max(), x, errs))
        out = static_cast<std::int32_t>(x);
}

void read_value(const json::value& v, const std::string& path, bool& out, errors& errs) {
    if (!v.is_bool()) return wrong_type(errs, path, "a boolean", v);
    out = v.get_bool();
}

void read_value(const json::value& v, const std::string& path, std::string& out, errors& errs) {
    if (!v.is_string()) return wrong_type(errs, path, "a string", v);
    out.assign(v.get_string().data(), v.get_string().size());
}

void read_value(const json::value& v, const std::string& path, time_point& out, errors& errs) {
    if (!v.is_string()) return wrong_type(errs, path, "an RFC 3339 time string", v);
    const auto t = parse_time(view(v.get_string()));
    if (!t) return errs.fail(error_kind::bad_value, path, "not an RFC 3339 time with a zone: \"" + std::string(view(v.get_string())) + "\"");
    out = *t;
}

template <class E>
void read_name(const json::value& v, const std::string& path, E& out, errors& errs,
               std::optional<E> (*parse)(std::string_view) noexcept, std::string_view allowed) {
    if (!v.is_string()) return wrong_type(errs, path, "a string", v);
    const auto e = parse(view(v.get_string()));
    if (!e) return errs.fail(error_kind::bad_value, path, "unknown value \"" + std::string(view(v.get_string())) +
                                                              "\" (one of " + std::string(allowed) + ")");
    out = *e;
}

std::optional<expiry_cause> parse_expiry_cause(std::string_view s) noexcept {
    for (auto c : {expiry_cause::term_ended, expiry_cause::unsubscribed, expiry_cause::overdue})
        if (to_string(c) == s) return c;
    return std::nullopt;
}
std::optional<release_cause> parse_release_cause(std::string_view s) noexcept {
    for (auto c : {release_cause::deadline, release_cause::force_delete})
        if (to_string(c) == s) return c;
    return std::nullopt;
}

void read_value(const json::value& v, const std::string& path, product& out, errors& errs) {
    read_name(v, path, out, errs, &parse_product, "kafka, rabbitmq, rocketmq, mqtt");
}
void read_value(const json::value& v, const std::string& path, billing& out, errors& errs) {
    read_name(v, path, out, errs, &parse_billing, "subscription, payg, serverless");
}
void read_value(const json::value& v, const std::string& path, state& out, errors& errs) {
    read_name(v, path, out, errs, &parse_state,
              "not_deployed, running, expired, stopped, suspended, frozen, released, deleted");
}
void read_value(const json::value& v, const std::string& path, expiry_cause& out, errors& errs) {
    read_name(v, path, out, errs, &parse_expiry_cause, "term_ended, unsubscribed, overdue");
}
void read_value(const json::value& v, const std::string& path, release_cause& out, errors& errs) {
    read_name(v, path, out, errs, &parse_release_cause, "deadline, force_delete");
}

void read_value(const json::value& v, const std::string& path, std::vector<std::string>& out, errors& errs) {
    if (!v.is_array()) return wrong_type(errs, path, "an array of strings", v);
    const json::array& a = v.get_array();
    out.clear();
    out.reserve(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (!a[i].is_string()) return wrong_type(errs, path + "[" + std::to_string(i) + "]", "a string", a[i]);
        out.emplace_back(view(a[i].get_string()));
    }
}

// Per-unit rates: a non-empty object of metric → integer (an empty one would be a second text of
// the price without rates). Which metrics and values are allowed is the core's to judge.
void read_per_unit(const json::value& v, const std::string& path, std::map<std::string, money>& out, errors& errs) {
    if (!v.is_object()) return wrong_type(errs, path, "an object of metric names to integers", v);
    const json::object& o = v.get_object();
    if (o.empty()) return errs.fail(error_kind::bad_value, path, "per_unit is absent when there are no per-unit rates, never {}");
    out.clear();
    for (const auto& kv : o) {
        const std::string_view key(kv.key().data(), kv.key().size());
        money rate = 0;
        read_value(kv.value(), join(path, key), rate, errs);
        if (errs.failed()) return;
        out.emplace(std::string(key), rate);
    }
}

// Exactly one of monthly, hourly, daily (API.md "Instances", the purchase body), and optionally
// `per_unit`.
void read_value(const json::value& v, const std::string& path, price& out, errors& errs) {
    if (!v.is_object()) return wrong_type(errs, path, "an object with one of monthly, hourly, daily", v);
    const json::object& o = v.get_object();
    const json::value* amount = nullptr;
    std::string amount_path;
    out.per_unit.clear();
    for (const auto& kv : o) {
        const std::string_view key(kv.key().data(), kv.key().size());
        if (key == "per_unit") {
            read_per_unit(kv.value(), join(path, key), out.per_unit, errs);
            if (errs.failed()) return;
            continue;
        }
        const auto unit = parse_price_unit(key);
        if (!unit) return errs.fail(error_kind::extra_field, join(path, key), "a price has one of monthly, hourly, daily");
        if (amount) return errs.fail(error_kind::extra_field, join(path, key), "a price has exactly one unit");
        out.per = *unit;
        amount = &kv.value();
        amount_path = join(path, key);
    }
    if (!amount) return errs.fail(error_kind::missing_field, path, "a price needs one of monthly, hourly, daily");
    read_value(*amount, amount_path, out.amount, errs);
}

template <class T>
    requires(std::tuple_size_v<std::remove_cvref_t<decltype(schema<T>)>> > 0)
void read_value(const json::value& v, const std::string& path, std::vector<T>& out, errors& errs) {
    if (!v.is_array()) return wrong_type(errs, path, "an array of objects", v);
    const json::array& a = v.get_array();
    out.clear();
    out.reserve(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
        T item{};
        read_value(a[i], path + "[" + std::to_string(i) + "]", item, errs);
        if (errs.failed()) return;
        out.push_back(std::move(item));
    }
}

template <class T>
void read_value(const json::value& v, const std::string& path, std::optional<T>& out, errors& errs) {
    if (v.is_null()) {
        out.reset();
        return;
    }
    T inner{};
    read_value(v, path, inner, errs);
    out = std::move(inner);
}

/// Reads the keys of one JSON object; `finish` refuses the keys nobody asked for.
class object_reader {
public:
    object_reader(const json::object& obj, std::string_view prefix, errors& errs)
        : obj_(obj), prefix_(prefix), errs_(errs) {}

    template <class T>
    void read(std::string_view key, T& out) {
        seen_.push_back(key);
        if (errs_.failed()) return;
        const json::value* v = obj_.if_contains(json::string_view(key.data(), key.size()));
        if (!v) return errs_.fail(error_kind::missing_field, join(prefix_, key), "missing field");
        read_value(*v, join(prefix_, key), out, errs_);
    }

    /// Marks `key` as read by the caller (a discriminator such as a command's `type`).
    void skip(std::string_view key) { seen_.push_back(key); }

    void finish() {
        if (errs_.failed()) return;
        for (const auto& kv : obj_) {
            const std::string_view key(kv.key().data(), kv.key().size());
            if (std::find(seen_.begin(), seen_.end(), key) == seen_.end())
                return errs_.fail(error_kind::extra_field, join(prefix_, key), "field not in the schema");
        }
    }

private:
    const json::object& obj_;
    std::string_view prefix_;
    errors& errs_;
    std::vector<std::string_view> seen_;
};

template <class T>
void decode_fields(object_reader& r, T& e);

template <class S, class M>
void decode_one(object_reader& r, S& e, const field<S, M>& f) {
    r.read(f.name, e.*f.member);
}
template <class S, class M>
void decode_one(object_reader& r, S& e, const flattened<S, M>& f) {
    decode_fields(r, e.*f.member);
}

template <class T>
void decode_fields(object_reader& r, T& e) {
    std::apply([&](const auto&... f) { (decode_one(r, e, f), ...); }, schema<T>);
}

template <class T>
    requires(std::tuple_size_v<std::remove_cvref_t<decltype(schema<T>)>> > 0)
void read_value(const json::value& v, const std::string& path, T& out, errors& errs) {
    if (!v.is_object()) return wrong_type(errs, path, "an object", v);
    object_reader r(v.get_object(), path, errs);
    decode_fields(r, out);
    r.finish();
}

// ---------------------------------------------------------------------------------------------
// The catalog: type names and default events, index-aligned with `event`.

constexpr std::size_t event_count = std::variant_size_v<event>;

template <std::size_t... I>
constexpr std::array<event (*)(), sizeof...(I)> make_factories(std::index_sequence<I...>) {
    return {+[]() -> event { return event(std::in_place_index<I>); }...};
}
constexpr auto factories = make_factories(std::make_index_sequence<event_count>{});

const std::array<std::string_view, event_count>& names() noexcept {
    static const std::array<std::string_view, event_count> table = [] {
        std::array<std::string_view, event_count> t{};
        for (std::size_t i = 0; i < event_count; ++i) t[i] = type_name(factories[i]());
        return t;
    }();
    return table;
}

std::optional<std::size_t> index_of(std::string_view name) noexcept {
    const auto& t = names();
    const auto it = std::find(t.begin(), t.end(), name);
    if (it == t.end()) return std::nullopt;
    return static_cast<std::size_t>(it - t.begin());
}

// ---------------------------------------------------------------------------------------------
// Upcasters: each turns a data object of `from_version` into `from_version + 1`. Never edit or
// remove one: stored history depends on it. The chain of a type must be 1, 2, 3, … (checked below).

struct upcaster {
    std::string_view type;
    int from_version;
    std::optional<codec_error> (*apply)(json::object&);
};

// Version 1 of a purchase had no auto-renewal setting: it was off, with the default 7 days.
std::optional<codec_error> add_auto_renew_off(json::object& data) {
    if (data.contains("auto_renew"))
        return codec_error{error_kind::extra_field, "auto_renew", "auto_renew is not in schema version 1"};
    data.emplace("auto_renew", json::object{{"enabled", false}, {"days_before", 7}});
    return std::nullopt;
}

// Version 1 of a release did not list the configuration it deleted. The fold of version 1 did
// not delete it either, so nothing is known to have been deleted: null, as for a product
// without a configuration.
std::optional<codec_error> add_released_config_null(json::object& data) {
    if (data.contains("config"))
        return codec_error{error_kind::extra_field, "config", "config is not in schema version 1"};
    data.emplace("config", nullptr);
    return std::nullopt;
}

// Version 1 of a settlement was the time-based bill alone (issue 15 added usage): all of it was
// the flat part, and no usage was billed.
std::optional<codec_error> add_settled_flat_and_usage(json::object& data) {
    for (const char* key : {"flat", "usage"})
        if (data.contains(key))
            return codec_error{error_kind::extra_field, key, std::string(key) + " is not in schema version 1"};
    // Without `amount` the decode reports it missing; flat is only its copy.
    // A copy first: `emplace` may grow the object, which frees the element `amount` points to
    // before it is read (found by codec_fuzz under ASan).
    if (const auto* amount = data.if_contains("amount")) {
        json::value flat = *amount;
        data.emplace("flat", std::move(flat));
    }
    data.emplace("usage", json::array{});
    return std::nullopt;
}

constexpr std::array<upcaster, 4> upcasters{{
    {"instance.purchased", 1, &add_auto_renew_off},
    {"instance.imported", 1, &add_auto_renew_off},
    {"instance.released", 1, &add_released_config_null},
    {"instance.settled", 1, &add_settled_flat_and_usage},
}};

constexpr int current_version_of(std::string_view type) noexcept {
    int v = 1;
    for (const auto& u : upcasters)
        if (u.type == type) ++v;
    return v;
}

constexpr bool upcaster_chains_are_contiguous() {
    for (const auto& u : upcasters) {
        if (u.from_version < 1 || u.from_version >= current_version_of(u.type)) return false;
        int same = 0;
        for (const auto& w : upcasters)
            if (w.type == u.type && w.from_version == u.from_version) ++same;
        if (same != 1) return false;
    }
    return true;
}
static_assert(upcaster_chains_are_contiguous(), "each type's upcasters must go 1→2, 2→3, … without gaps or repeats");
static_assert(current_version_of("instance.purchased") == 2 && current_version_of("instance.released") == 2 &&
              current_version_of("instance.settled") == 2 && current_version_of("instance.deployed") == 1);

const upcaster* find_upcaster(std::string_view type, int from_version) noexcept {
    for (const auto& u : upcasters)
        if (u.type == type && u.from_version == from_version) return &u;
    return nullptr;
}

decode_result decode_checked(std::size_t index, const json::value& data, int schema_version) {
    const std::string_view type = names()[index];
    const int current = current_version_of(type);
    if (schema_version < 1 || schema_version > current)
        return codec_error{error_kind::unsupported_version, "",
                           std::string(type) + " has schema versions 1 to " + std::to_string(current) + ", not " +
                               std::to_string(schema_version)};
    if (!data.is_object()) return codec_error{error_kind::wrong_type, "", "data must be an object, got " + std::string(describe(data))};

    const json::object* obj = &data.get_object();
    json::object upcast;
    if (schema_version < current) {
        upcast = *obj;
        for (int v = schema_version; v < current; ++v) {
            const upcaster* u = find_upcaster(type, v);
            if (!u) return codec_error{error_kind::unsupported_version, "", "no upcaster from version " + std::to_string(v)};
            if (auto err = u->apply(upcast)) return std::move(*err);
        }
        obj = &upcast;
    }

    event e = factories[index]();
    errors errs;
    std::visit(
        [&](auto& alt) {
            object_reader r(*obj, "", errs);
            decode_fields(r, alt);
            r.finish();
        },
        e);
    if (errs.failed()) return std::move(*errs.error());
    return e;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Public API.

std::string_view to_string(error_kind k) noexcept {
    switch (k) {
    case error_kind::unknown_type: return "unknown_type";
    case error_kind::missing_field: return "missing_field";
    case error_kind::extra_field: return "extra_field";
    case error_kind::wrong_type: return "wrong_type";
    case error_kind::out_of_range: return "out_of_range";
    case error_kind::bad_value: return "bad_value";
    case error_kind::unsupported_version: return "unsupported_version";
    }
    return "?";
}

json::object encode(const events::event& e) {
    json::object out;
    std::visit([&](const auto& alt) { encode_fields(alt, out); }, e);
    return out;
}

decode_result decode(std::string_view type, const json::value& data, int schema_version) noexcept {
    try {
        const auto index = index_of(type);
        if (!index) return codec_error{error_kind::unknown_type, "", "unknown event type \"" + std::string(type) + "\""};
        return decode_checked(*index, data, schema_version);
    } catch (...) {
        // Only allocation can fail here. The message fits the small-string buffer, so building
        // the error does not allocate again.
        return codec_error{error_kind::bad_value, "", "out of memory"};
    }
}

std::optional<int> current_schema_version(std::string_view type) noexcept {
    if (!index_of(type)) return std::nullopt;
    return current_version_of(type);
}

std::optional<events::event> type_from_name(std::string_view name) noexcept {
    const auto index = index_of(name);
    if (!index) return std::nullopt;
    return factories[*index]();
}

std::span<const std::string_view> all_type_names() noexcept { return names(); }

namespace {

template <std::size_t... I>
constexpr std::array<cmd::command (*)(), sizeof...(I)> make_command_factories(std::index_sequence<I...>) {
    return {+[]() -> cmd::command { return cmd::command(std::in_place_index<I>); }...};
}
constexpr auto command_factories = make_command_factories(std::make_index_sequence<std::variant_size_v<cmd::command>>{});

} // namespace

json::object encode_command(const commands::command& c) {
    json::object out;
    const auto name = cmd::name_of(c);
    out.emplace("type", json::string_view(name.data(), name.size()));
    if (!is_notice(c.index())) std::visit([&](const auto& alt) { encode_fields(alt, out); }, c);
    return out;
}

command_result decode_command(const json::value& v) noexcept {
    try {
        if (!v.is_object()) return codec_error{error_kind::wrong_type, "", "a command must be an object, got " + std::string(describe(v))};
        const auto& o = v.get_object();
        const auto* type = o.if_contains("type");
        if (type == nullptr) return codec_error{error_kind::missing_field, "type", "missing field"};
        if (!type->is_string()) return codec_error{error_kind::wrong_type, "type", "expected a string, got " + std::string(describe(*type))};
        const std::string_view name = view(type->get_string());
        for (std::size_t i = 0; i < command_factories.size(); ++i) {
            auto c = command_factories[i]();
            if (is_notice(i) || cmd::name_of(c) != name) continue;
            errors errs;
            std::visit(
                [&](auto& alt) {
                    object_reader r(o, "", errs);
                    r.skip("type");
                    decode_fields(r, alt);
                    r.finish();
                },
                c);
            if (errs.failed()) return std::move(*errs.error());
            return c;
        }
        return codec_error{error_kind::unknown_type, "type", "unknown command type \"" + std::string(name) + "\""};
    } catch (...) {
        return codec_error{error_kind::bad_value, "", "out of memory"};
    }
}

} // namespace mqledger::codec
