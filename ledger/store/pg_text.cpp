#include "ledger/store/pg_text.h"

#include <boost/json/parse.hpp>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <stdexcept>

namespace mqledger::store::detail {

void append_array_element(std::string& out, std::string_view s) {
    out.push_back('"');
    for (const char c : s) {
        if (c == '"' || c == '\\') out.push_back('\\');
        out.push_back(c);
    }
    out.push_back('"');
}

void append_array_int(std::string& out, std::int64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

void append_timestamptz(std::string& out, std::int64_t us) {
    using namespace std::chrono;
    const auto t = sys_time<microseconds>(microseconds(us));
    const auto day = floor<days>(t);
    const year_month_day ymd{day};
    const hh_mm_ss<microseconds> tod{t - day};
    char buf[40];
    const int n = std::snprintf(buf, sizeof buf, "%04d-%02u-%02u %02d:%02d:%02d.%06lld+00", static_cast<int>(ymd.year()),
                                static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                                static_cast<int>(tod.hours().count()), static_cast<int>(tod.minutes().count()),
                                static_cast<int>(tod.seconds().count()),
                                static_cast<long long>(tod.subseconds().count()));
    out.append(buf, static_cast<std::size_t>(n));
}

bool timestamptz_in_range(time_point t) noexcept {
    using namespace std::chrono;
    const year_month_day ymd{floor<days>(t)};
    return ymd.year() >= year(1) && ymd.year() <= year(9999);
}

namespace {
boost::json::object parse_object(const pqxx::field& f) {
    auto v = boost::json::parse(std::string_view(f.c_str(), f.size()));
    if (!v.is_object()) throw std::runtime_error("events row holds a non-object JSON value");
    return std::move(v.get_object());
}
} // namespace

recorded_event read_event(const pqxx::row& row) {
    recorded_event e;
    e.position = row[0].as<std::int64_t>();
    e.stream = row[1].as<std::string>();
    e.stream_version = row[2].as<std::int64_t>();
    e.type = row[3].as<std::string>();
    e.data = parse_object(row[4]);
    e.metadata = parse_object(row[5]);
    e.effective_at = time_point(duration(row[6].as<std::int64_t>()));
    e.recorded_at = time_point(duration(row[7].as<std::int64_t>()));
    e.prev_hash = row[8].as<std::string>();
    e.hash = row[9].as<std::string>();
    return e;
}

} // namespace mqledger::store::detail
