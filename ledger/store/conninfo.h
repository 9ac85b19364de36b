// libpq connection-string helpers shared by the tools, benchmarks and tests that create their
// own scratch databases.
#pragma once

#include <string>

namespace mqledger::store {

/// `url` with its database replaced by `dbname`. Understands URLs
/// (`postgresql://host/db?params`, also with an empty host) and keyword strings (a later
/// `dbname=` wins in libpq). Pure; thread-safe.
[[nodiscard]] std::string with_database(const std::string& url, const std::string& dbname);

/// `url` with the libpq parameter `key=value` added unless the URL already sets `key` (the
/// operator's explicit choice wins). Understands URLs and keyword strings. Pure; thread-safe.
[[nodiscard]] std::string with_default(const std::string& url, const std::string& key, const std::string& value);

/// The daemon's long-lived connections: a bounded connect (libpq's default is to wait forever
/// for an unreachable server) and TCP keepalives, so a dead server or a cut network is noticed
/// within about half a minute instead of the kernel's two hours.
[[nodiscard]] std::string for_daemon(const std::string& url);

} // namespace mqledger::store
