// The daemon's version, as reported by --version and mqledger_build_info.
#pragma once

namespace mqledger {
/// The release version, e.g. "0.1.0". Thread-safe.
[[nodiscard]] const char* version();
} // namespace mqledger
