// The `mqledger` command line (API.md "Command line"): one executable, one subcommand per job.
// Exit codes: 0 success, 1 the job failed, 2 usage error (or a command not built yet).
#pragma once

#include <string>
#include <vector>

namespace mqledger {

/// Runs `mqledger ARGS…` (without argv[0]) with the process's environment; returns the exit
/// code. Usage errors go to stderr, help to stdout.
int run_cli(const std::vector<std::string>& args);

} // namespace mqledger
