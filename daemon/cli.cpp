#include "daemon/cli.h"

#include "daemon/config.h"
#include "daemon/serve.h"
#include "daemon/version.h"

#include "ledger/store/migrate.h"

#include <iostream>

namespace mqledger {
namespace {

int run_migrate(const config& cfg) {
    try {
        const auto report = store::migrate(cfg.database_url);
        if (report.applied.empty()) std::cout << "up to date (" << report.already.size() << " migrations applied)\n";
        for (const auto& name : report.applied) std::cout << "applied " << name << "\n";
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "mqledger migrate: " << e.what() << "\n";
        return 1;
    }
}

} // namespace

int run_cli(const std::vector<std::string>& args) {
    if (args.empty()) {
        std::cerr << top_level_usage();
        return 2;
    }
    const auto& first = args.front();
    if (first == "--help" || first == "-h" || first == "help") {
        std::cout << top_level_usage();
        return 0;
    }
    if (first == "--version") {
        std::cout << "mqledger " << version() << "\n";
        return 0;
    }
    const auto command = parse_command(first);
    if (!command) {
        std::cerr << "mqledger: unknown command '" << first << "'\n\n" << top_level_usage();
        return 2;
    }
    const std::vector<std::string> rest(args.begin() + 1, args.end());
    const auto parsed = parse_config(*command, rest, process_env(), disk_reader());
    switch (parsed.outcome) {
    case config_result::kind::help: std::cout << parsed.text; return 0;
    case config_result::kind::usage_error: std::cerr << parsed.text << "\n"; return 2;
    case config_result::kind::run: break;
    }
    switch (*command) {
    case command_kind::serve: return run_serve(parsed.cfg);
    case command_kind::migrate: return run_migrate(parsed.cfg);
    case command_kind::verify: return run_verify(parsed.cfg);
    case command_kind::rebuild: return run_rebuild(parsed.cfg);
    case command_kind::history: return run_history(parsed.cfg);
    case command_kind::export_: return run_export(parsed.cfg);
    case command_kind::proof: return run_proof(parsed.cfg);
    case command_kind::witness: return run_witness(parsed.cfg);
    case command_kind::status: return run_status(parsed.cfg);
    }
    return 2;
}

} // namespace mqledger
