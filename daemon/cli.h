// The `mqledger` command line (API.md "Command line"): one executable, one subcommand per job.
// Exit codes: 0 success, 1 the job failed (verify: a check failed), 2 usage or connection error.
#pragma once

#include <string>
#include <vector>

namespace mqledger {

/// Runs `mqledger ARGS…` (without argv[0]) with the process's environment; returns the exit
/// code. Usage errors go to stderr, help to stdout.
int run_cli(const std::vector<std::string>& args);

struct config;

/// The auditor's commands (cli_tools.cpp); each returns its exit code.
int run_verify(const config& cfg);
int run_rebuild(const config& cfg);
int run_history(const config& cfg);
int run_export(const config& cfg);
/// `mqledger proof` (proof_tools.cpp): offline checks of Merkle proofs and checkpoints.
int run_proof(const config& cfg);
/// `mqledger witness` (witness.cpp): the co-signing witness process.
int run_witness(const config& cfg);
/// `mqledger status` (status_tool.cpp): the ledger's state at a glance, read-only.
int run_status(const config& cfg);

} // namespace mqledger
