// The migrations compiled into the binary (generated from sql/ by embed_migrations.cmake).
#pragma once

#include <span>

namespace mqledger::store::detail {

struct embedded_migration {
    const char* name;  // file name, e.g. "0001_events.sql"; the order key
    const char* sql;   // the file's text, applied as one multi-statement script
};

/// Every embedded migration in name order. Thread-safe (static data).
std::span<const embedded_migration> embedded_migrations() noexcept;

} // namespace mqledger::store::detail
