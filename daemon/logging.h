// The daemon's logs (DESIGN.md "Logs"): spdlog to stdout, one line per request and per fired
// timer; JSON lines when --log-format resolves to json (auto: stdout is not a terminal), human
// text otherwise. Lines carry structured fields so that JSON stays JSON.
#pragma once

#include "daemon/config.h"

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace mqledger {

enum class log_level { debug, info, warn, error };

/// One structured field of a log line: `key=value` in text, `"key": value` in JSON.
struct log_field {
    std::string_view key;
    std::variant<std::string_view, std::int64_t, double, bool> value;
};

/// Resolves `automatic` (JSON unless stdout is a terminal).
[[nodiscard]] log_format resolve_log_format(log_format f) noexcept;

/// Installs the process's logger on stdout. Call once at start-up, before any thread starts.
/// `level` is one of trace, debug, info, warn, error, critical, off.
void setup_logging(log_format f, std::string_view level);

/// Writes one line. Thread-safe.
void log_line(log_level level, std::string_view message, std::initializer_list<log_field> fields = {});

/// The line per answered request (method, route, status, duration, bytes). Thread-safe.
void log_request(std::string_view method, std::string_view target, std::string_view route, int status,
                 double seconds, std::size_t bytes, std::string_view internal_error);

/// JSON string escaping (without the surrounding quotes), exposed for tests.
[[nodiscard]] std::string json_escape(std::string_view s);

} // namespace mqledger
