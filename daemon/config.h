// Command-line and configuration options (API.md "Command line"). Every option has a flag, an
// environment variable MQLEDGER_<OPTION> and a key in the --config file; flags win over the
// environment, which wins over the file, which wins over the defaults.
//
// Parsing is a pure function of its inputs (the arguments, an environment lookup and a file
// reader) so that precedence and validation are tested without touching the process.
#pragma once

#include "ledger/types.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mqledger {

enum class command_kind { serve, migrate, verify, rebuild, history, export_, proof, witness, status };

/// "serve" → command_kind::serve, …; nullopt for an unknown name.
[[nodiscard]] std::optional<command_kind> parse_command(std::string_view name) noexcept;
[[nodiscard]] std::string_view to_string(command_kind c) noexcept;

/// A listener address as given to --listen: `HOST:PORT` with HOST an IPv4 literal, `localhost`
/// or a bracketed IPv6 literal (`[::1]:8080`).
struct listen_address {
    std::string host;   // without brackets
    std::uint16_t port = 0;
    friend bool operator==(const listen_address&, const listen_address&) = default;
};

/// Parses `HOST:PORT`; nullopt when malformed (the caller says why in its own words).
[[nodiscard]] std::optional<listen_address> parse_listen_address(std::string_view text);

/// True for 127.0.0.0/8, ::1, ::ffff:127.0.0.0/104 and `localhost`: the only addresses on which
/// --insecure-no-auth is allowed, because nobody else can reach them.
[[nodiscard]] bool is_loopback(const listen_address& a) noexcept;

enum class clock_kind { system, manual };
enum class log_format { automatic, json, text };

/// Everything any command can be configured with; each command reads only its own fields.
struct config {
    command_kind command = command_kind::serve;
    std::string database_url;
    // serve
    listen_address listen{"127.0.0.1", 8080};
    std::string tokens_file;                 // empty with insecure_no_auth
    bool insecure_no_auth = false;
    clock_kind clock = clock_kind::system;
    std::optional<time_point> clock_start;   // manual clock only; nullopt = now
    unsigned threads = 2;
    unsigned workers = 64;                   // command/read threads (each waits for a commit)
    unsigned db_connections = 8;             // read pool
    std::size_t state_cache = 20000;         // instance and account states kept (0: no cache)
    std::size_t queue_events = 100000;       // writer queue bounds; a command past them gets 503
    std::size_t queue_bytes = 64u << 20;
    std::size_t body_limit = 65536;
    std::chrono::seconds read_timeout{30};
    std::chrono::seconds idle_timeout{60};
    std::chrono::seconds shutdown_timeout{10};
    std::chrono::seconds digest_interval{300};
    std::string digest_key_file;             // Ed25519 private key PEM; empty = unsigned digests and no checkpoints
    std::chrono::seconds checkpoint_interval{10};
    std::string checkpoint_origin = "mqledger";   // the checkpoints' origin line and key name
    std::vector<std::pair<std::string, std::string>> witness_keys;   // NAME, public key PEM file
    std::string policy_file;                 // JSON overrides of the policy table; empty = the defaults
    log_format log = log_format::automatic;
    std::string log_level = "info";
    // verify
    std::string since_digest;                // POSITION:HASH[:SIG]
    std::string since_checkpoint;            // a checkpoint note file
    std::string public_key_file;             // verify, proof: the log's Ed25519 public key PEM
    std::string key_name;                    // verify, proof, witness: the log key's name (default: the origin)
    // proof
    std::string proof_action;                // check-inclusion | check-consistency
    std::vector<std::string> proof_files;
    // witness
    std::string log_url;                     // the daemon, http://HOST:PORT
    std::string witness_key_file;            // the witness's Ed25519 private key PEM
    std::string witness_name;
    std::string witness_state_file;          // the last checkpoint it co-signed
    std::string token_file;                  // a bearer token for the daemon (first line)
    std::chrono::seconds witness_interval{10};
    bool witness_once = false;
    std::optional<listen_address> metrics_listen;
    // history / export
    std::string instance_id;
    std::optional<time_point> as_of;
    std::string export_format = "jsonl";     // export: jsonl|csv; history: table|json; status: text|json
    std::string stream_prefix;               // export --stream
    std::optional<time_point> since;
    // status
    std::optional<time_point> status_now;    // --now; nullopt = the database's now()
};

/// The outcome of parsing one command's options: run it, print help (exit 0), or a usage error
/// (exit 2) with `text` saying what is wrong.
struct config_result {
    enum class kind { run, help, usage_error };
    kind outcome = kind::run;
    std::string text;   // the help text, or the error message
    config cfg;
};

/// Looks an environment variable up by name; nullopt when unset.
using env_lookup = std::function<std::optional<std::string>(const std::string& name)>;
/// Reads the whole --config file; nullopt when it cannot be read.
using file_reader = std::function<std::optional<std::string>(const std::string& path)>;

/// Parses `args` (the words after the command name) for `command`, then the environment, then
/// the config file named by --config / MQLEDGER_CONFIG, and validates the result. Pure apart
/// from what `env` and `read_file` do. Thread-safe.
[[nodiscard]] config_result parse_config(command_kind command, const std::vector<std::string>& args,
                                         const env_lookup& env, const file_reader& read_file);

/// The environment variable of a long option: `database-url` → `MQLEDGER_DATABASE_URL`.
[[nodiscard]] std::string env_name(std::string_view option);

/// The default --database-url of a command, suitable for an installed system: `dbname=mqledger`
/// (libpq's default local socket and the OS user name as the role, i.e. peer authentication), the
/// same for every command. Nothing in it depends on the build tree.
[[nodiscard]] std::string default_database_url(command_kind command);

/// Top-level usage: the commands and how to get help on each.
[[nodiscard]] std::string top_level_usage();

/// The process's real environment and file system, for main().
[[nodiscard]] env_lookup process_env();
[[nodiscard]] file_reader disk_reader();

} // namespace mqledger
