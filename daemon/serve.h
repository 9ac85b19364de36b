// `mqledger serve`: wires the clock, tokens, router, metrics, readiness, HTTP server, signals
// and systemd notification together and runs until SIGTERM/SIGINT.
#pragma once

#include "daemon/config.h"

namespace mqledger {

/// Runs the daemon; returns the process exit code (0 after a graceful shutdown, 1 when it
/// cannot listen, 2 for an unusable tokens file). Blocks.
int run_serve(const config& cfg);

} // namespace mqledger
