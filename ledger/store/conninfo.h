// libpq connection-string helpers shared by the tools, benchmarks and tests that create their
// own scratch databases.
#pragma once

#include <string>

namespace mqledger::store {

/// `url` with its database replaced by `dbname`. Understands URLs
/// (`postgresql://host/db?params`, also with an empty host) and keyword strings (a later
/// `dbname=` wins in libpq). Pure; thread-safe.
[[nodiscard]] std::string with_database(const std::string& url, const std::string& dbname);

} // namespace mqledger::store
