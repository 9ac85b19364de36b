#include "daemon/config.h"

#include "ledger/codec.h"

#include <boost/program_options.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

namespace mqledger {
namespace po = boost::program_options;

namespace {

constexpr command_kind all_commands[] = {command_kind::serve,   command_kind::migrate, command_kind::verify,
                                         command_kind::rebuild, command_kind::history, command_kind::export_,
                                         command_kind::proof,   command_kind::witness, command_kind::status};

// A validation failure; turned into a usage error (exit 2) by parse_config.
struct bad_option : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string summary(command_kind c) {
    switch (c) {
    case command_kind::serve: return "Runs the daemon: the HTTP API, the timers, /metrics, /healthz and /readyz.";
    case command_kind::migrate: return "Applies the SQL migrations that are not applied yet; idempotent.";
    case command_kind::verify:
        return "Checks the whole ledger: hash chain, legality of every event, projections equal a rebuild.";
    case command_kind::rebuild: return "Rebuilds every projection from the log.";
    case command_kind::history: return "Prints an instance's timeline, or its state as of a past time.";
    case command_kind::export_: return "Writes the audit export of all events to stdout.";
    case command_kind::proof: return "Checks a Merkle proof against a signed checkpoint, offline (no database).";
    case command_kind::witness:
        return "Co-signs the daemon's checkpoints after checking each extends the last; alerts on a fork.";
    case command_kind::status:
        return "Shows the ledger's state from the database, read-only: head, timer leader, timers, overdue "
               "accounts, releases, checkpoint.";
    }
    return {};
}

std::string usage_line(command_kind c) {
    switch (c) {
    case command_kind::history: return "mqledger history INSTANCE [options]";
    case command_kind::proof:
        return "mqledger proof check-inclusion EVENT.json PROOF.json CHECKPOINT --public-key KEY\n"
               "       mqledger proof check-consistency OLD_CHECKPOINT NEW_CHECKPOINT PROOF.json --public-key KEY";
    default: return "mqledger " + std::string(to_string(c)) + " [options]";
    }
}

// One option: its long name, the placeholder in --help, the default shown (empty = none) and
// what it means. Switches have an empty value_name.
struct option_spec {
    const char* name;
    const char* value_name;
    std::string default_value;
    const char* help;
};

std::vector<option_spec> specs_for(command_kind c) {
    std::vector<option_spec> s;
    s.push_back({"config", "FILE", "", "read options from FILE (INI style: `database-url = ...`)"});
    if (c != command_kind::proof && c != command_kind::witness)   // these two never touch the database
        s.push_back({"database-url", "URL", default_database_url(c), "libpq connection string or URL"});
    switch (c) {
    case command_kind::serve:
        s.push_back({"listen", "HOST:PORT", "127.0.0.1:8080", "HTTP listener; IPv6 as [::1]:8080"});
        s.push_back({"tokens", "FILE", "", "API tokens, one per line: ROLE NAME SHA256_HEX_OF_TOKEN "
                                           "(required unless --insecure-no-auth)"});
        s.push_back({"insecure-no-auth", "", "", "no authentication; refused unless --listen is loopback"});
        s.push_back({"clock", "system|manual", "system", "manual: time only moves through POST /v1/clock"});
        s.push_back({"clock-start", "TIME", "", "the manual clock's starting time, RFC 3339 (default: now)"});
        s.push_back({"threads", "N", "2", "I/O threads serving HTTP (1-64)"});
        s.push_back({"workers", "N", "64", "threads that run commands and reads (1-1024); each waits for its "
                                           "group commit, so this bounds the requests per batch"});
        s.push_back({"db-connections", "N", "8", "read connections to the database (1-256); the writer has its own"});
        s.push_back({"state-cache", "N", "20000", "instance and account states kept in memory for the next command "
                                                   "(0-100000000; 0: none); about 1 KB each"});
        s.push_back({"queue-events", "N", "100000", "events waiting for the writer at most; a command past it gets 503 "
                                                    "with Retry-After (1-100000000)"});
        s.push_back({"queue-bytes", "BYTES", "67108864", "bytes of events waiting for the writer at most (1-2^40)"});
        s.push_back({"body-limit", "BYTES", "65536", "largest request body accepted; larger gets 413"});
        s.push_back({"read-timeout", "SECONDS", "30", "time allowed to receive one whole request"});
        s.push_back({"idle-timeout", "SECONDS", "60", "an idle keep-alive connection is closed after this"});
        s.push_back({"shutdown-timeout", "SECONDS", "10", "on SIGTERM, how long in-flight requests may finish"});
        s.push_back({"digest-interval", "SECONDS", "300", "log the ledger head (position, hash) this often (1-86400)"});
        s.push_back({"digest-key", "FILE", "", "Ed25519 private key (PEM) that signs each digest, GET /v1/ledger/head "
                                               "and the checkpoints (none are made without it)"});
        s.push_back({"checkpoint-interval", "SECONDS", "10", "extend the Merkle tree and sign a checkpoint this often "
                                                            "(1-86400)"});
        s.push_back({"checkpoint-origin", "ORIGIN", "mqledger", "the checkpoints' origin line and signing key name; "
                                                               "unique per ledger, e.g. ledger.example.com/mqledger"});
        s.push_back({"witness-key", "NAME=FILE[,...]", "", "witnesses whose co-signatures are accepted: name and "
                                                          "Ed25519 public key (PEM)"});
        s.push_back({"policy", "FILE", "", "policy table overrides, JSON per product/billing (README \"Policy "
                                          "table\"); read at start and on SIGHUP; none: the built-in table"});
        s.push_back({"log-format", "auto|json|text", "auto", "auto: JSON lines when stdout is not a terminal"});
        s.push_back({"log-level", "LEVEL", "info", "trace, debug, info, warn, error, critical or off"});
        break;
    case command_kind::verify:
        s.push_back({"since-digest", "POSITION:HASH[:SIG]", "", "also check that the ledger still extends this digest "
                                                               "(and, with --public-key, its signature)"});
        s.push_back({"since-checkpoint", "FILE", "", "prove the ledger extends this checkpoint, then check the chain "
                                                    "and the rules of the events after it only"});
        s.push_back({"public-key", "FILE", "", "Ed25519 public key (PEM) that signed the digest or checkpoint"});
        s.push_back({"key-name", "NAME", "", "the checkpoint signer's key name (default: its origin)"});
        break;
    case command_kind::proof:
        s.push_back({"public-key", "FILE", "", "the log's Ed25519 public key (PEM) (required)"});
        s.push_back({"key-name", "NAME", "", "the checkpoint signer's key name (default: its origin)"});
        break;
    case command_kind::witness:
        s.push_back({"log-url", "URL", "", "the daemon, http://HOST:PORT (required)"});
        s.push_back({"public-key", "FILE", "", "the log's Ed25519 public key (PEM) (required)"});
        s.push_back({"key-name", "NAME", "", "the log's key name (default: the checkpoint's origin)"});
        s.push_back({"witness-signing-key", "FILE", "", "the witness's Ed25519 private key (PEM) (required)"});
        s.push_back({"witness-name", "NAME", "", "the witness's key name, as in the daemon's --witness-key (required)"});
        s.push_back({"witness-state", "FILE", "", "where the last co-signed checkpoint is kept (required)"});
        s.push_back({"token-file", "FILE", "", "a bearer token for the daemon (its first line)"});
        s.push_back({"witness-interval", "SECONDS", "10", "fetch a checkpoint this often (1-86400)"});
        s.push_back({"witness-once", "", "", "one round, then exit: 0 co-signed or nothing new, 1 refused (fork), 2 error"});
        s.push_back({"metrics-listen", "HOST:PORT", "", "serve the witness's /metrics here"});
        s.push_back({"log-format", "auto|json|text", "auto", "auto: JSON lines when stdout is not a terminal"});
        s.push_back({"log-level", "LEVEL", "info", "trace, debug, info, warn, error, critical or off"});
        break;
    case command_kind::history:
        s.push_back({"as-of", "TIME", "", "the instance's state at this RFC 3339 time instead of its timeline"});
        s.push_back({"format", "table|json", "table", "output format"});
        break;
    case command_kind::export_:
        s.push_back({"format", "jsonl|csv", "jsonl", "output format"});
        s.push_back({"since", "TIME", "", "only events effective at or after this RFC 3339 time"});
        s.push_back({"stream", "PREFIX", "", "only events of streams starting with PREFIX (e.g. instance-i-1)"});
        break;
    case command_kind::status:
        s.push_back({"format", "text|json", "text", "text: aligned lines for a person; json: one object for scripts"});
        s.push_back({"now", "TIME", "", "compute 'within the hour/24 hours' and ages at this RFC 3339 time (e.g. a "
                                       "daemon's --clock manual time; default: the database's now())"});
        break;
    default: break;
    }
    return s;
}

// The options a config file or the environment may set (everything but --help).
po::options_description settings_description(command_kind c) {
    po::options_description d("Options (each also as environment variable MQLEDGER_<NAME> and as "
                              "`name = value` in the --config file; flags > environment > file > defaults)",
                              100, 50);
    for (const auto& o : specs_for(c)) {
        const std::string help = std::string(o.help) + " [env " + env_name(o.name) + "]";
        if (*o.value_name == '\0') {
            d.add_options()(o.name, po::bool_switch(),
                            help.c_str());
            continue;
        }
        auto* v = po::value<std::string>()->value_name(o.value_name);
        if (!o.default_value.empty()) v->default_value(o.default_value);
        d.add_options()(o.name, v, help.c_str());
    }
    return d;
}

std::set<std::string> every_known_key() {
    std::set<std::string> keys;
    for (auto c : all_commands)
        for (const auto& o : specs_for(c)) keys.insert(o.name);
    return keys;
}

std::string get(const po::variables_map& vm, const char* name) {
    return vm.count(name) ? vm[name].as<std::string>() : std::string();
}

std::uint64_t parse_uint(const std::string& text, const char* option, std::uint64_t lo, std::uint64_t hi) {
    std::uint64_t v = 0;
    const auto* end = text.data() + text.size();
    const auto [p, ec] = std::from_chars(text.data(), end, v);
    if (text.empty() || ec != std::errc() || p != end || v < lo || v > hi)
        throw bad_option("--" + std::string(option) + " must be an integer from " + std::to_string(lo) + " to " +
                         std::to_string(hi) + ", got '" + text + "'");
    return v;
}

time_point parse_time_option(const std::string& text, const char* option) {
    auto t = codec::parse_time(text);
    if (!t)
        throw bad_option("--" + std::string(option) + " must be an RFC 3339 time such as 2026-01-31T08:00:00Z, got '" +
                         text + "'");
    return *t;
}

void parse_log_options(const po::variables_map& vm, config& cfg) {
    const auto format = get(vm, "log-format");
    if (format == "auto") cfg.log = log_format::automatic;
    else if (format == "json") cfg.log = log_format::json;
    else if (format == "text") cfg.log = log_format::text;
    else throw bad_option("--log-format must be auto, json or text, got '" + format + "'");
    cfg.log_level = get(vm, "log-level");
    static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
    if (!levels.count(cfg.log_level))
        throw bad_option("--log-level must be one of trace, debug, info, warn, error, critical, off; got '" +
                         cfg.log_level + "'");
}

// A signed-note key name: non-empty, at most 255 bytes, no Unicode spaces (here: no bytes below
// 0x21 and no 0x7f) and no '+'.
bool valid_key_name(std::string_view name) {
    if (name.empty() || name.size() > 255) return false;
    return std::none_of(name.begin(), name.end(), [](char ch) {
        const auto u = static_cast<unsigned char>(ch);
        return u <= 0x20 || u == 0x7f || ch == '+';
    });
}

// NAME=FILE[,NAME=FILE...]
std::vector<std::pair<std::string, std::string>> parse_witness_keys(const std::string& text) {
    std::vector<std::pair<std::string, std::string>> out;
    if (text.empty()) return out;
    std::string_view rest = text;
    while (true) {
        const auto comma = rest.find(',');
        const auto item = rest.substr(0, comma);
        const auto eq = item.find('=');
        if (eq == std::string_view::npos || eq == 0 || eq + 1 == item.size() || !valid_key_name(item.substr(0, eq)))
            throw bad_option("--witness-key must be NAME=FILE[,NAME=FILE...], got '" + text + "'");
        out.emplace_back(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    return out;
}

void validate(const po::variables_map& vm, config& cfg) {
    if (cfg.command != command_kind::proof && cfg.command != command_kind::witness) {
        cfg.database_url = get(vm, "database-url");
        if (cfg.database_url.empty()) throw bad_option("--database-url must not be empty");
    }

    switch (cfg.command) {
    case command_kind::serve: {
        const auto listen = get(vm, "listen");
        auto addr = parse_listen_address(listen);
        if (!addr)
            throw bad_option("--listen must be HOST:PORT with HOST an IP address or localhost (e.g. "
                             "127.0.0.1:8080 or [::1]:8080), got '" + listen + "'");
        cfg.listen = *addr;
        cfg.tokens_file = get(vm, "tokens");
        cfg.insecure_no_auth = vm["insecure-no-auth"].as<bool>();
        if (cfg.insecure_no_auth && !cfg.tokens_file.empty())
            throw bad_option("--tokens and --insecure-no-auth exclude each other");
        if (cfg.insecure_no_auth && !is_loopback(cfg.listen))
            throw bad_option("--insecure-no-auth is refused on " + listen +
                             ": without authentication the daemon may only listen on a loopback address "
                             "(127.0.0.0/8, ::1 or localhost)");
        if (!cfg.insecure_no_auth && cfg.tokens_file.empty())
            throw bad_option("--tokens FILE is required (or --insecure-no-auth on a loopback address)");

        const auto clock = get(vm, "clock");
        if (clock == "system") cfg.clock = clock_kind::system;
        else if (clock == "manual") cfg.clock = clock_kind::manual;
        else throw bad_option("--clock must be system or manual, got '" + clock + "'");
        if (vm.count("clock-start")) {
            if (cfg.clock != clock_kind::manual) throw bad_option("--clock-start needs --clock manual");
            cfg.clock_start = parse_time_option(get(vm, "clock-start"), "clock-start");
        }

        cfg.threads = static_cast<unsigned>(parse_uint(get(vm, "threads"), "threads", 1, 64));
        cfg.workers = static_cast<unsigned>(parse_uint(get(vm, "workers"), "workers", 1, 1024));
        cfg.db_connections = static_cast<unsigned>(parse_uint(get(vm, "db-connections"), "db-connections", 1, 256));
        cfg.state_cache = parse_uint(get(vm, "state-cache"), "state-cache", 0, 100000000);
        cfg.queue_events = parse_uint(get(vm, "queue-events"), "queue-events", 1, 100000000);
        cfg.queue_bytes = parse_uint(get(vm, "queue-bytes"), "queue-bytes", 1, std::uint64_t{1} << 40);
        cfg.body_limit = parse_uint(get(vm, "body-limit"), "body-limit", 1, std::uint64_t{1} << 30);
        cfg.read_timeout = std::chrono::seconds(parse_uint(get(vm, "read-timeout"), "read-timeout", 1, 3600));
        cfg.idle_timeout = std::chrono::seconds(parse_uint(get(vm, "idle-timeout"), "idle-timeout", 1, 86400));
        cfg.shutdown_timeout =
            std::chrono::seconds(parse_uint(get(vm, "shutdown-timeout"), "shutdown-timeout", 1, 3600));

        cfg.digest_interval = std::chrono::seconds(parse_uint(get(vm, "digest-interval"), "digest-interval", 1, 86400));
        cfg.digest_key_file = get(vm, "digest-key");
        cfg.checkpoint_interval =
            std::chrono::seconds(parse_uint(get(vm, "checkpoint-interval"), "checkpoint-interval", 1, 86400));
        cfg.checkpoint_origin = get(vm, "checkpoint-origin");
        if (!valid_key_name(cfg.checkpoint_origin))
            throw bad_option("--checkpoint-origin must be 1-255 printable characters without spaces or '+', got '" +
                             cfg.checkpoint_origin + "'");
        cfg.witness_keys = parse_witness_keys(get(vm, "witness-key"));
        cfg.policy_file = get(vm, "policy");
        parse_log_options(vm, cfg);
        break;
    }
    case command_kind::verify:
        cfg.since_digest = get(vm, "since-digest");
        cfg.since_checkpoint = get(vm, "since-checkpoint");
        cfg.public_key_file = get(vm, "public-key");
        cfg.key_name = get(vm, "key-name");
        if (!cfg.since_digest.empty() && !cfg.since_checkpoint.empty())
            throw bad_option("--since-digest and --since-checkpoint exclude each other");
        if (!cfg.public_key_file.empty() && cfg.since_digest.empty() && cfg.since_checkpoint.empty())
            throw bad_option("--public-key needs --since-digest or --since-checkpoint");
        if (!cfg.since_checkpoint.empty() && cfg.public_key_file.empty())
            throw bad_option("--since-checkpoint needs --public-key: an unsigned checkpoint proves nothing");
        break;
    case command_kind::proof: {
        cfg.public_key_file = get(vm, "public-key");
        cfg.key_name = get(vm, "key-name");
        const auto words = vm.count("words") ? vm["words"].as<std::vector<std::string>>() : std::vector<std::string>{};
        if (words.empty()) throw bad_option("proof needs check-inclusion or check-consistency");
        cfg.proof_action = words.front();
        cfg.proof_files.assign(words.begin() + 1, words.end());
        if (cfg.proof_action != "check-inclusion" && cfg.proof_action != "check-consistency")
            throw bad_option("proof needs check-inclusion or check-consistency, got '" + cfg.proof_action + "'");
        if (cfg.proof_files.size() != 3)
            throw bad_option(cfg.proof_action == "check-inclusion"
                                 ? "check-inclusion needs EVENT.json PROOF.json CHECKPOINT"
                                 : "check-consistency needs OLD_CHECKPOINT NEW_CHECKPOINT PROOF.json");
        if (cfg.public_key_file.empty()) throw bad_option("--public-key FILE is required");
        break;
    }
    case command_kind::witness:
        cfg.log_url = get(vm, "log-url");
        cfg.public_key_file = get(vm, "public-key");
        cfg.key_name = get(vm, "key-name");
        cfg.witness_key_file = get(vm, "witness-signing-key");
        cfg.witness_name = get(vm, "witness-name");
        cfg.witness_state_file = get(vm, "witness-state");
        cfg.token_file = get(vm, "token-file");
        cfg.witness_interval = std::chrono::seconds(parse_uint(get(vm, "witness-interval"), "witness-interval", 1, 86400));
        cfg.witness_once = vm["witness-once"].as<bool>();
        for (const auto& [value, name] : {std::pair{&cfg.log_url, "log-url"}, {&cfg.public_key_file, "public-key"},
                                          {&cfg.witness_key_file, "witness-signing-key"}, {&cfg.witness_name, "witness-name"},
                                          {&cfg.witness_state_file, "witness-state"}})
            if (value->empty()) throw bad_option("--" + std::string(name) + " is required");
        if (cfg.log_url.rfind("http://", 0) != 0)
            throw bad_option("--log-url must start with http://, got '" + cfg.log_url + "'");
        if (!valid_key_name(cfg.witness_name))
            throw bad_option("--witness-name must be 1-255 printable characters without spaces or '+'");
        if (vm.count("metrics-listen")) {
            const auto text = get(vm, "metrics-listen");
            cfg.metrics_listen = parse_listen_address(text);
            if (!cfg.metrics_listen) throw bad_option("--metrics-listen must be HOST:PORT, got '" + text + "'");
        }
        parse_log_options(vm, cfg);
        break;
    case command_kind::history:
        cfg.instance_id = get(vm, "instance");
        if (cfg.instance_id.empty()) throw bad_option("history needs an INSTANCE");
        if (vm.count("as-of")) cfg.as_of = parse_time_option(get(vm, "as-of"), "as-of");
        cfg.export_format = get(vm, "format");
        if (cfg.export_format != "table" && cfg.export_format != "json")
            throw bad_option("--format must be table or json, got '" + cfg.export_format + "'");
        break;
    case command_kind::export_:
        cfg.export_format = get(vm, "format");
        if (cfg.export_format != "jsonl" && cfg.export_format != "csv")
            throw bad_option("--format must be jsonl or csv, got '" + cfg.export_format + "'");
        if (vm.count("since")) cfg.since = parse_time_option(get(vm, "since"), "since");
        cfg.stream_prefix = get(vm, "stream");
        break;
    case command_kind::status:
        cfg.export_format = get(vm, "format");
        if (cfg.export_format != "text" && cfg.export_format != "json")
            throw bad_option("--format must be text or json, got '" + cfg.export_format + "'");
        if (vm.count("now")) cfg.status_now = parse_time_option(get(vm, "now"), "now");
        break;
    default: break;
    }
}

} // namespace

std::optional<command_kind> parse_command(std::string_view name) noexcept {
    for (auto c : all_commands)
        if (to_string(c) == name) return c;
    return std::nullopt;
}

std::string_view to_string(command_kind c) noexcept {
    switch (c) {
    case command_kind::serve: return "serve";
    case command_kind::migrate: return "migrate";
    case command_kind::verify: return "verify";
    case command_kind::rebuild: return "rebuild";
    case command_kind::history: return "history";
    case command_kind::export_: return "export";
    case command_kind::proof: return "proof";
    case command_kind::witness: return "witness";
    case command_kind::status: return "status";
    }
    return "?";
}

std::optional<listen_address> parse_listen_address(std::string_view text) {
    std::string_view host, port;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find("]:");
        if (close == std::string_view::npos) return std::nullopt;
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
        in6_addr a6{};
        if (host.empty() || inet_pton(AF_INET6, std::string(host).c_str(), &a6) != 1) return std::nullopt;
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        in_addr a4{};
        if (host != "localhost" && inet_pton(AF_INET, std::string(host).c_str(), &a4) != 1) return std::nullopt;
    }
    unsigned p = 0;
    const auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || ec != std::errc() || ptr != port.data() + port.size() || p > 65535) return std::nullopt;
    return listen_address{std::string(host), static_cast<std::uint16_t>(p)};
}

bool is_loopback(const listen_address& a) noexcept {
    if (a.host == "localhost") return true;
    in_addr a4{};
    if (inet_pton(AF_INET, a.host.c_str(), &a4) == 1) return (ntohl(a4.s_addr) >> 24) == 127;
    in6_addr a6{};
    if (inet_pton(AF_INET6, a.host.c_str(), &a6) == 1) {
        if (IN6_IS_ADDR_LOOPBACK(&a6)) return true;
        return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
    }
    return false;
}

std::string env_name(std::string_view option) {
    std::string out = "MQLEDGER_";
    for (char ch : option) out += ch == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    return out;
}

std::string default_database_url(command_kind /*command*/) {
    // The same for every command: libpq's defaults supply the rest (the local socket in
    // /var/run/postgresql on Debian, the OS user name as the role), so peer authentication maps
    // the systemd user `mqledger` to the daemon's role and `sudo -u postgres mqledger migrate`
    // to the owner. The development cluster (deploy/pg.sh) is always given explicitly.
    return "dbname=mqledger";
}

std::string top_level_usage() {
    std::ostringstream out;
    out << "Usage: mqledger COMMAND [options]\n\n"
           "An event-sourced audit ledger for managed message-queue instances.\n\nCommands:\n";
    for (auto c : all_commands) {
        std::string name(to_string(c));
        name.resize(10, ' ');
        out << "  " << name << summary(c) << "\n";
    }
    out << "\nRun 'mqledger COMMAND --help' for a command's options. Every option can also be set\n"
           "through the environment (MQLEDGER_<OPTION>, e.g. MQLEDGER_DATABASE_URL) or a --config file.\n";
    return out.str();
}

config_result parse_config(command_kind command, const std::vector<std::string>& args, const env_lookup& env,
                           const file_reader& read_file) {
    config_result result;
    result.cfg.command = command;
    const std::string prefix = "mqledger " + std::string(to_string(command)) + ": ";
    const auto settings = settings_description(command);

    po::options_description cmdline;
    cmdline.add_options()("help,h", "print this help and exit");
    cmdline.add(settings);
    po::options_description hidden;
    po::positional_options_description positional;
    if (command == command_kind::history) {
        hidden.add_options()("instance", po::value<std::string>());
        positional.add("instance", 1);
    }
    if (command == command_kind::proof) {
        hidden.add_options()("words", po::value<std::vector<std::string>>());
        positional.add("words", -1);
    }
    po::options_description all;
    all.add(cmdline).add(hidden);

    try {
        po::variables_map vm;
        // 1. flags: the first store wins, so the sources are stored in precedence order.
        po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
        if (vm.count("help")) {
            std::ostringstream out;
            out << "Usage: " << usage_line(command) << "\n\n" << summary(command) << "\n\n";
            out << cmdline;
            result.outcome = config_result::kind::help;
            result.text = out.str();
            return result;
        }
        // 2. environment: an empty variable counts as unset, as in most tools.
        po::parsed_options from_env(&settings);
        for (const auto& opt : settings.options()) {
            const auto& name = opt->long_name();
            auto value = env(env_name(name));
            if (value && !value->empty()) from_env.options.emplace_back(name, std::vector<std::string>{*value});
        }
        po::store(from_env, vm);
        // 3. the config file. Keys of other commands are tolerated so that one file can serve
        // `serve` and `migrate`; a key no command knows is a mistake worth stopping for.
        if (vm.count("config")) {
            const auto path = vm["config"].as<std::string>();
            auto text = read_file(path);
            if (!text) throw bad_option("cannot read config file '" + path + "'");
            std::istringstream in(*text);
            auto parsed = po::parse_config_file(in, settings, true);
            static const auto known = every_known_key();
            for (const auto& o : parsed.options)
                if (o.unregistered && !known.count(o.string_key))
                    throw bad_option("unknown key '" + o.string_key + "' in config file '" + path + "'");
                else if (o.string_key == "config")
                    throw bad_option("config file '" + path + "' may not name another config file");
            po::store(parsed, vm);
        }
        po::notify(vm);
        validate(vm, result.cfg);
    } catch (const std::exception& e) {
        result.outcome = config_result::kind::usage_error;
        result.text = prefix + e.what() + "\nTry 'mqledger " + std::string(to_string(command)) + " --help'.";
    }
    return result;
}

env_lookup process_env() {
    return [](const std::string& name) -> std::optional<std::string> {
        const char* v = std::getenv(name.c_str());
        if (!v) return std::nullopt;
        return std::string(v);
    };
}

file_reader disk_reader() {
    return [](const std::string& path) -> std::optional<std::string> {
        std::ifstream in(path, std::ios::binary);
        if (!in) return std::nullopt;
        std::ostringstream s;
        s << in.rdbuf();
        if (in.bad()) return std::nullopt;
        return s.str();
    };
}

} // namespace mqledger
