// The OpenAPI document (docs/openapi.yaml) as JSON, compiled in: the source is generated at build
// time by docs/openapi_embed.py (daemon/CMakeLists.txt), so the served document is the YAML of the
// same build.
#pragma once

#include <string>

namespace mqledger::docs {

/// docs/openapi.yaml as compact JSON. Thread-safe.
[[nodiscard]] const std::string& openapi_json();

} // namespace mqledger::docs
