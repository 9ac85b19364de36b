#include "daemon/logging.h"

#include "daemon/utf8_sanitize.h"

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <ctime>

namespace mqledger {
namespace json = boost::json;

namespace {

// Set once by setup_logging before any thread starts; read by every log call.
std::atomic<bool> json_lines{false};

// The fields of the line that this thread is logging right now (log_line sets it around its
// synchronous call into spdlog, whose formatter runs on the calling thread), with the payload it
// belongs to, so that a line not made by log_line (none is, today) is never given them.
struct pending_line {
    const json::object* fields = nullptr;
    const char* payload = nullptr;
};
thread_local pending_line pending;

// `key`, or `key_`, `key__`… when the object already has it: a field never overwrites ts, level,
// msg or an earlier field, and the line never has a duplicate key.
std::string unique_key(const json::object& o, std::string_view key) {
    std::string k = sanitize_utf8(key);
    while (o.contains(k)) k += '_';
    return k;
}

// Every string goes in as UTF-8 (Boost.JSON's serializer escapes quotes, backslashes and control
// characters but copies other bytes as they are); a double that is not finite is null (the
// serializer would write Infinity or NaN, which are not JSON).
json::value json_of(const log_field& f) {
    return std::visit(
        [](const auto& v) -> json::value {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string_view>) return json::string(sanitize_utf8(v));
            else if constexpr (std::is_same_v<T, double>) return std::isfinite(v) ? json::value(v) : json::value(nullptr);
            else return json::value(v);
        },
        f.value);
}

void append_text_value(std::string& out, const log_field& f) {
    if (const auto* s = std::get_if<std::string_view>(&f.value)) {
        const auto text = sanitize_utf8(*s);
        const bool quote = text.empty() || std::any_of(text.begin(), text.end(), [](char c) {
                               return c == ' ' || c == '"' || c == '=' || static_cast<unsigned char>(c) < 0x20 ||
                                      c == 0x7f;
                           });
        if (quote) out += '"' + json_escape(text) + '"';
        else out += text;
        return;
    }
    std::visit(
        [&out](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, bool>) {
                out += v ? "true" : "false";
            } else if constexpr (std::is_same_v<T, double>) {
                char buf[32];
                const int n = std::snprintf(buf, sizeof buf, "%.6g", v);
                out.append(buf, static_cast<std::size_t>(n));
            } else if constexpr (std::is_same_v<T, std::int64_t>) {
                out += std::to_string(v);
            }
        },
        f.value);
}

// {"ts":"2026-11-23T12:00:00.123456Z","level":"info","msg":"…",…}: one boost::json::object per
// line, written by boost::json::serialize, so no message or field can break the line's JSON.
class json_formatter final : public spdlog::formatter {
public:
    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        using namespace std::chrono;
        const auto t = msg.time;
        const std::time_t secs = system_clock::to_time_t(time_point_cast<system_clock::duration>(floor<seconds>(t)));
        const auto micros = duration_cast<microseconds>(t - floor<seconds>(t)).count();
        std::tm tm{};
        gmtime_r(&secs, &tm);
        char ts[64];
        const int n = std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
                                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                                    static_cast<long>(micros));
        const auto level = spdlog::level::to_string_view(msg.level);
        json::object line;
        line.reserve(3 + (pending.fields ? pending.fields->size() : 0));
        line.emplace("ts", std::string_view(ts, static_cast<std::size_t>(n)));
        line.emplace("level", std::string_view(level.data(), level.size()));
        const std::string_view payload(msg.payload.data(), msg.payload.size());
        if (pending.fields && pending.payload == msg.payload.data()) {
            for (const auto& kv : *pending.fields) line.emplace(unique_key(line, kv.key()), kv.value());
        } else {
            line.emplace("msg", sanitize_utf8(payload));
        }
        auto text = json::serialize(line);
        text += '\n';
        dest.append(text.data(), text.data() + text.size());
    }
    [[nodiscard]] std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<json_formatter>();
    }
};

spdlog::level::level_enum to_spdlog(log_level l) noexcept {
    switch (l) {
    case log_level::debug: return spdlog::level::debug;
    case log_level::info: return spdlog::level::info;
    case log_level::warn: return spdlog::level::warn;
    case log_level::error: return spdlog::level::err;
    }
    return spdlog::level::info;
}

} // namespace

std::string json_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (static_cast<unsigned char>(c) < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
                out += buf;
            } else {
                out += c;
            }
        }
    }
    return out;
}

log_format resolve_log_format(log_format f) noexcept {
    if (f != log_format::automatic) return f;
    return isatty(STDOUT_FILENO) ? log_format::text : log_format::json;
}

void setup_logging(log_format f, std::string_view level) {
    const bool json = resolve_log_format(f) == log_format::json;
    json_lines = json;
    std::shared_ptr<spdlog::logger> logger;
    if (json) {
        logger = std::make_shared<spdlog::logger>("mqledger", std::make_shared<spdlog::sinks::stdout_sink_mt>());
        logger->set_formatter(std::make_unique<json_formatter>());
    } else {
        logger = std::make_shared<spdlog::logger>("mqledger", std::make_shared<spdlog::sinks::stdout_color_sink_mt>());
        logger->set_formatter(std::make_unique<spdlog::pattern_formatter>("%Y-%m-%dT%H:%M:%S.%fZ %^%-5l%$ %v",
                                                                          spdlog::pattern_time_type::utc));
    }
    logger->set_level(spdlog::level::from_str(std::string(level)));
    // Every line is flushed: the logs go to a pipe (journald, a test) and must not lag behind.
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

void log_line(log_level level, std::string_view message, std::initializer_list<log_field> fields) {
    const auto lvl = to_spdlog(level);
    if (!spdlog::default_logger_raw()->should_log(lvl)) return;
    if (json_lines) {
        json::object line;
        line.reserve(1 + fields.size());
        line.emplace("msg", sanitize_utf8(message));
        for (const auto& f : fields) line.emplace(unique_key(line, f.key), json_of(f));
        // The formatter takes the fields from here, on this thread, during the call.
        pending = {&line, message.data()};
        try {
            spdlog::default_logger_raw()->log(lvl, spdlog::string_view_t(message.data(), message.size()));
        } catch (...) {
            pending = {};
            throw;
        }
        pending = {};
        return;
    }
    std::string out = sanitize_utf8(message);
    for (const auto& f : fields) {
        out += ' ';
        out += sanitize_utf8(f.key);
        out += '=';
        append_text_value(out, f);
    }
    spdlog::default_logger_raw()->log(lvl, spdlog::string_view_t(out.data(), out.size()));
}

void log_request(std::string_view method, std::string_view target, std::string_view route, int status,
                 double seconds, std::size_t bytes, std::string_view internal_error) {
    // A 500 is our bug; a 503 is the database's state and is reported by the readiness monitor.
    const auto level = status == 500 ? log_level::error : status >= 500 ? log_level::warn : log_level::info;
    if (internal_error.empty())
        log_line(level, "request",
                 {{"method", method}, {"target", target}, {"route", route}, {"status", std::int64_t{status}},
                  {"duration_ms", seconds * 1000.0}, {"bytes", static_cast<std::int64_t>(bytes)}});
    else
        log_line(level, "request",
                 {{"method", method}, {"target", target}, {"route", route}, {"status", std::int64_t{status}},
                  {"duration_ms", seconds * 1000.0}, {"bytes", static_cast<std::int64_t>(bytes)},
                  {"error", internal_error}});
}

} // namespace mqledger
