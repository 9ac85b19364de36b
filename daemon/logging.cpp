#include "daemon/logging.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <ctime>

namespace mqledger {
namespace {

// Set once by setup_logging before any thread starts; read by every log call.
std::atomic<bool> json_lines{false};

// Marks a payload that is already a JSON fragment of fields (`"msg":"…","k":v`), so that the
// formatter does not quote it again.
constexpr char fragment_mark = '\x1e';

void append_json_value(std::string& out, const log_field& f) {
    std::visit(
        [&out](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string_view>) {
                out += '"';
                out += json_escape(v);
                out += '"';
            } else if constexpr (std::is_same_v<T, bool>) {
                out += v ? "true" : "false";
            } else if constexpr (std::is_same_v<T, double>) {
                char buf[32];
                const int n = std::snprintf(buf, sizeof buf, "%.6g", v);
                out.append(buf, static_cast<std::size_t>(n));
            } else {
                out += std::to_string(v);
            }
        },
        f.value);
}

void append_text_value(std::string& out, const log_field& f) {
    if (const auto* s = std::get_if<std::string_view>(&f.value)) {
        const bool quote = s->empty() || s->find_first_of(" \t\"=") != std::string_view::npos;
        if (quote) out += '"' + json_escape(*s) + '"';
        else out += *s;
        return;
    }
    append_json_value(out, f);
}

// {"ts":"2026-11-23T12:00:00.123456Z","level":"info","msg":"…",…}
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
        std::string line = "{\"ts\":\"";
        line.append(ts, static_cast<std::size_t>(n));
        line += "\",\"level\":\"";
        const auto level = spdlog::level::to_string_view(msg.level);
        line.append(level.data(), level.size());
        line += "\",";
        const std::string_view payload(msg.payload.data(), msg.payload.size());
        if (!payload.empty() && payload.front() == fragment_mark) {
            line += payload.substr(1);
        } else {
            line += "\"msg\":\"";
            line += json_escape(payload);
            line += '"';
        }
        line += "}\n";
        dest.append(line.data(), line.data() + line.size());
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
    std::string out;
    if (json_lines) {
        out += fragment_mark;
        out += "\"msg\":\"" + json_escape(message) + '"';
        for (const auto& f : fields) {
            out += ",\"" + json_escape(f.key) + "\":";
            append_json_value(out, f);
        }
    } else {
        out += message;
        for (const auto& f : fields) {
            out += ' ';
            out += f.key;
            out += '=';
            append_text_value(out, f);
        }
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
