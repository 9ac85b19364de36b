// `mqledger witness` (issue 14; README.md "Merkle proofs and checkpoints"): a
// process run by someone other than the log's operator that co-signs the log's checkpoints.
//
// What a co-signature proves: the witness saw this checkpoint, and every checkpoint it signed
// before is a prefix of it (the log only ever appended). It checks each new checkpoint's log
// signature and, against the last checkpoint it co-signed (kept in --witness-state), that the tree grew
// along an RFC 9162 consistency proof, or stayed the same size with the same root. A log that
// shows a smaller tree (a rollback) or a tree that does not extend the old one (a fork: two
// histories signed by the same key) is refused and reported ("fork detected", error level,
// mqledger_witness_forks_total), and the state keeps the old checkpoint. So a client that
// requires this witness's co-signature on a checkpoint knows that the log cannot show it a
// history other than the one the witness saw, without the witness having stored the log.
//
// Trust on first use: with no state file, the witness has nothing to compare with; it checks
// the log's signature only, co-signs what it is shown, and says so in its log. From then on,
// every round is checked against the state, which is replaced (atomically: temporary file,
// fsync, rename, fsync of the directory) only once the daemon accepted the new co-signature.
//
// Each round: GET /v1/ledger/checkpoint, GET /v1/proofs/consistency when the tree grew, POST
// the co-signature line to /v1/ledger/checkpoint/cosignatures. With --witness-once: one round, exit 0
// (co-signed or nothing new), 1 (refused: fork, rollback, another log, a bad log signature) or
// 2 (usage, unreadable files, log unreachable or answering errors). Otherwise a round every
// --witness-interval seconds until SIGTERM/SIGINT; errors are logged and counted, never fatal.
//
// Time comes from the clock class (ledger/clock.h), as everywhere else: the co-signature's
// timestamp is the witness clock's Unix seconds.
#include "daemon/witness.h"

#include "daemon/cli.h"
#include "daemon/config.h"
#include "daemon/http_server.h"
#include "daemon/logging.h"
#include "daemon/router.h"
#include "daemon/version.h"
#include "ledger/clock.h"
#include "ledger/store/checkpoint.h"
#include "ledger/store/merkle.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>

namespace mqledger {

// ---- the judgement (witness.h) ----

namespace witness {

judgement compare(const std::optional<checkpoint::note>& last, const checkpoint::note& fresh) {
    if (!last) return {relation::first_use, {}};
    if (fresh.origin != last->origin)
        return {relation::other_log, "the checkpoint's origin '" + fresh.origin + "' is not the log's origin '" +
                                         last->origin + "'"};
    if (fresh.size < last->size)
        return {relation::fork, "rollback: the log's tree (" + std::to_string(fresh.size) +
                                    ") is smaller than the one co-signed (" + std::to_string(last->size) + ")"};
    if (fresh.size == last->size) {
        if (fresh.root != last->root) return {relation::fork, "the same tree size with another root"};
        return {relation::same, {}};
    }
    return {relation::grows, {}};
}

bool needs_proof(const checkpoint::note& last) noexcept { return last.size > 0; }

bool proves_growth(const checkpoint::note& last, const checkpoint::note& fresh, const std::vector<merkle::hash>& proof) {
    if (last.size < 0 || fresh.size < last.size) return false;
    if (last.size == 0) return proof.empty() && last.root == merkle::empty_root();
    return merkle::verify_consistency(last.size, fresh.size, last.root, fresh.root, proof);
}

} // namespace witness

namespace {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace net = boost::asio;
namespace json = boost::json;
using tcp = net::ip::tcp;

// Each request to the log (resolve, connect, write, read) must finish within this.
constexpr auto request_timeout = std::chrono::seconds(10);
// A checkpoint note is at most 1 MiB (checkpoint::parse); a proof is far smaller.
constexpr std::uint64_t answer_limit = 2u << 20;

// Cannot start: exit 2.
struct unusable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The log could not be asked (connection refused, timeout, garbage): an error, not a refusal.
struct unreachable : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string read_file(const std::string& path, const char* what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw unusable(std::string(what) + ": cannot read " + path);
    std::ostringstream s;
    s << in.rdbuf();
    if (in.bad()) throw unusable(std::string(what) + ": cannot read " + path);
    return s.str();
}

// At most `n` bytes of an answer, for a log line.
std::string_view excerpt(std::string_view s, std::size_t n = 300) { return s.substr(0, std::min(n, s.size())); }

// ---- the log's address ----

struct log_endpoint {
    std::string host;   // without brackets
    std::string port;
    std::string base;   // a path prefix without the trailing "/", usually empty
    [[nodiscard]] std::string host_header() const {
        const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
        return h + ":" + port;
    }
};

// http://HOST[:PORT][/PREFIX]; nothing for anything else (https, user info, a query, …).
std::optional<log_endpoint> parse_log_url(std::string_view url) {
    constexpr std::string_view scheme = "http://";
    if (url.substr(0, scheme.size()) != scheme) return std::nullopt;
    url.remove_prefix(scheme.size());
    const auto slash = url.find('/');
    const auto authority = url.substr(0, slash);
    std::string_view path = slash == std::string_view::npos ? std::string_view{} : url.substr(slash);
    if (path.find_first_of("?#") != std::string_view::npos) return std::nullopt;
    while (!path.empty() && path.back() == '/') path.remove_suffix(1);
    if (authority.empty() || authority.find('@') != std::string_view::npos) return std::nullopt;
    log_endpoint ep;
    std::string_view port;
    if (authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos || close == 1) return std::nullopt;
        ep.host = std::string(authority.substr(1, close - 1));
        const auto rest = authority.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return std::nullopt;
            port = rest.substr(1);
        } else {
            port = "80";
        }
    } else {
        const auto colon = authority.find(':');
        ep.host = std::string(authority.substr(0, colon));
        port = colon == std::string_view::npos ? std::string_view("80") : authority.substr(colon + 1);
        if (ep.host.empty()) return std::nullopt;
    }
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string_view::npos)
        return std::nullopt;
    const auto number = std::stoul(std::string(port));
    if (number == 0 || number > 65535) return std::nullopt;
    ep.port = std::to_string(number);
    ep.base = std::string(path);
    return ep;
}

// ---- a small blocking HTTP/1.1 client ----

struct answer {
    int status = 0;
    std::string body;
};

// One request per connection. Blocks for at most request_timeout; gives up early once `stop`
// is set (shutdown). Throws `unreachable` when no answer could be read.
class log_client {
public:
    log_client(log_endpoint ep, std::string token, const std::atomic<bool>& stop)
        : ep_(std::move(ep)), token_(std::move(token)), stop_(stop) {}

    answer get(const std::string& target) { return exchange(bhttp::verb::get, target, {}); }
    answer post_text(const std::string& target, std::string body) {
        return exchange(bhttp::verb::post, target, std::move(body));
    }

private:
    answer exchange(bhttp::verb method, const std::string& target, std::string body) {
        net::io_context ioc;
        tcp::resolver resolver(ioc);
        beast::tcp_stream stream(ioc);
        net::steady_timer deadline(ioc);

        bhttp::request<bhttp::string_body> req{method, ep_.base + target, 11};
        req.set(bhttp::field::host, ep_.host_header());
        req.set(bhttp::field::user_agent, std::string("mqledger-witness/") + version());
        if (!token_.empty()) req.set(bhttp::field::authorization, "Bearer " + token_);
        if (method == bhttp::verb::post) req.set(bhttp::field::content_type, "text/plain; charset=utf-8");
        req.body() = std::move(body);
        req.keep_alive(false);
        req.prepare_payload();

        beast::flat_buffer buffer;
        bhttp::response_parser<bhttp::string_body> parser;
        parser.body_limit(answer_limit);

        beast::error_code failure;
        std::string stage;
        bool timed_out = false;
        bool finished = false;
        const auto fail = [&](const char* what, const beast::error_code& ec) {
            if (!failure) {
                failure = ec;
                stage = what;
            }
            deadline.cancel();
        };
        const auto abort = [&] {
            beast::error_code ignored;
            resolver.cancel();
            stream.socket().close(ignored);
        };

        deadline.expires_after(request_timeout);
        deadline.async_wait([&](const beast::error_code& ec) {
            if (ec) return;
            timed_out = true;
            abort();
        });
        resolver.async_resolve(ep_.host, ep_.port, [&](const beast::error_code& ec, tcp::resolver::results_type found) {
            if (ec) return fail("resolve", ec);
            stream.async_connect(found, [&](const beast::error_code& cec, const tcp::endpoint&) {
                if (cec) return fail("connect", cec);
                bhttp::async_write(stream, req, [&](const beast::error_code& wec, std::size_t) {
                    // A refusal may be answered before the whole body is sent: read it anyway.
                    if (wec) {
                        failure = wec;
                        stage = "write";
                    }
                    bhttp::async_read(stream, buffer, parser, [&](const beast::error_code& rec, std::size_t) {
                        if (rec) return fail("read", rec);
                        failure = {};
                        finished = true;
                        deadline.cancel();
                    });
                });
            });
        });
        bool aborted = false;
        while (!ioc.stopped()) {
            ioc.run_for(std::chrono::milliseconds(100));
            if (stop_ && !aborted) {
                aborted = true;
                abort();
                deadline.cancel();
            }
        }
        const std::string where = ep_.host_header() + ep_.base + target;
        if (!finished) {
            if (timed_out) throw unreachable(where + ": no answer within " + std::to_string(request_timeout.count()) + " s");
            if (aborted) throw unreachable(where + ": stopping");
            throw unreachable(where + ": " + stage + ": " + failure.message());
        }
        auto res = parser.release();
        return {static_cast<int>(res.result_int()), std::move(res.body())};
    }

    log_endpoint ep_;
    std::string token_;
    const std::atomic<bool>& stop_;
};

// ---- metrics ----

class witness_metrics {
public:
    witness_metrics() {
        forks = &prometheus::BuildCounter()
                     .Name("mqledger_witness_forks_total")
                     .Help("Checkpoints refused because they do not extend the last one co-signed (fork or rollback)")
                     .Register(*registry)
                     .Add({});
        cosigned = &prometheus::BuildCounter()
                        .Name("mqledger_witness_cosigned_total")
                        .Help("Co-signatures the log accepted")
                        .Register(*registry)
                        .Add({});
        errors = &prometheus::BuildCounter()
                      .Name("mqledger_witness_errors_total")
                      .Help("Rounds that failed: log unreachable, bad log signature, HTTP errors, malformed answers")
                      .Register(*registry)
                      .Add({});
        tree_size = &prometheus::BuildGauge()
                         .Name("mqledger_witness_tree_size")
                         .Help("Tree size of the last checkpoint co-signed (0: none yet)")
                         .Register(*registry)
                         .Add({});
        last_cosigned = &prometheus::BuildGauge()
                             .Name("mqledger_witness_last_cosigned_timestamp_seconds")
                             .Help("Timestamp of the last co-signature (Unix seconds; 0: none yet)")
                             .Register(*registry)
                             .Add({});
    }

    [[nodiscard]] std::string exposition() const {
        std::ostringstream out;
        prometheus::TextSerializer().Serialize(out, registry->Collect());
        return out.str();
    }

    // prometheus-cpp's counters and gauges are thread-safe.
    std::shared_ptr<prometheus::Registry> registry = std::make_shared<prometheus::Registry>();
    prometheus::Counter* forks = nullptr;
    prometheus::Counter* cosigned = nullptr;
    prometheus::Counter* errors = nullptr;
    prometheus::Gauge* tree_size = nullptr;
    prometheus::Gauge* last_cosigned = nullptr;
};

// ---- the state file ----

void write_all(int fd, std::string_view text, const std::string& path) {
    while (!text.empty()) {
        const auto n = ::write(fd, text.data(), text.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "write " + path);
        }
        text.remove_prefix(static_cast<std::size_t>(n));
    }
}

// Replaces `path` with `text`: a crash leaves the old file or the new one, never a mix.
void save_atomically(const std::string& path, std::string_view text) {
    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "open " + tmp);
    try {
        write_all(fd, text, tmp);
        if (::fsync(fd) != 0) throw std::system_error(errno, std::generic_category(), "fsync " + tmp);
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    if (::close(fd) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        throw std::system_error(e, std::generic_category(), "close " + tmp);
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int e = errno;
        ::unlink(tmp.c_str());
        throw std::system_error(e, std::generic_category(), "rename " + tmp + " to " + path);
    }
    // The rename itself is durable once the directory is.
    auto dir = std::filesystem::path(path).parent_path();
    if (dir.empty()) dir = ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) throw std::system_error(errno, std::generic_category(), "open " + dir.string());
    const int rc = ::fsync(dfd);
    const int e = errno;
    ::close(dfd);
    if (rc != 0) throw std::system_error(e, std::generic_category(), "fsync " + dir.string());
}

// ---- one round ----

enum class outcome { cosigned, unchanged, refused, failed };

std::string_view to_string(outcome o) {
    switch (o) {
    case outcome::cosigned: return "cosigned";
    case outcome::unchanged: return "unchanged";
    case outcome::refused: return "refused";
    case outcome::failed: return "failed";
    }
    return "?";
}

std::int64_t unix_seconds(time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

class witness_process {
public:
    struct keys {
        checkpoint::public_key log;
        checkpoint::private_key own;
    };

    witness_process(const config& cfg, keys k, std::optional<checkpoint::note> last, log_client client,
                    witness_metrics& m, const clock& clk)
        : cfg_(cfg), log_key_(k.log), own_key_(k.own), own_public_(own_key_.public_part()), last_(std::move(last)),
          client_(std::move(client)), m_(m), clk_(clk) {}

    outcome round() {
        answer got;
        try {
            got = client_.get("/v1/ledger/checkpoint");
        } catch (const unreachable& e) {
            return error("log unreachable", e.what());
        }
        if (got.status == 404 && !last_) {
            log_line(log_level::info, "the log has no checkpoint yet; nothing to co-sign", {{"log_url", cfg_.log_url}});
            return outcome::unchanged;
        }
        if (got.status != 200)
            return error("checkpoint not fetched", excerpt(got.body), got.status);
        const auto fresh = checkpoint::parse(got.body);
        if (!fresh) return error("the log's checkpoint is not a signed checkpoint note", excerpt(got.body));

        const std::string key_name = cfg_.key_name.empty() ? fresh->origin : cfg_.key_name;
        if (!checkpoint::verify(*fresh, key_name, log_key_)) {
            m_.errors->Increment();
            log_line(log_level::error, "bad log signature: checkpoint refused",
                     {{"origin", fresh->origin}, {"key_name", key_name}, {"tree_size", fresh->size},
                      {"root", merkle::to_hex(fresh->root)}});
            return outcome::refused;
        }

        const auto j = witness::compare(last_, *fresh);
        switch (j.what) {
        case witness::relation::other_log:
            m_.errors->Increment();
            log_line(log_level::error, "checkpoint of another log refused",
                     {{"origin", fresh->origin}, {"expected_origin", last_->origin}, {"reason", j.reason}});
            return outcome::refused;
        case witness::relation::fork: return fork(*fresh, j.reason);
        case witness::relation::first_use:
            log_line(log_level::warn, "no state: trusting this checkpoint on first use",
                     {{"origin", fresh->origin}, {"tree_size", fresh->size}, {"root", merkle::to_hex(fresh->root)}});
            break;
        case witness::relation::same:
            if (checkpoint::verify_cosignature(*fresh, cfg_.witness_name, own_public_)) {
                log_line(log_level::info, "nothing new",
                         {{"tree_size", fresh->size}, {"root", merkle::to_hex(fresh->root)}});
                return outcome::unchanged;
            }
            log_line(log_level::info, "the log does not show this witness's co-signature; co-signing again",
                     {{"tree_size", fresh->size}});
            break;
        case witness::relation::grows: {
            std::vector<merkle::hash> proof;
            if (witness::needs_proof(*last_)) {
                const auto p = consistency_proof(last_->size, fresh->size);
                if (!p) return outcome::failed;
                proof = *p;
            }
            if (!witness::proves_growth(*last_, *fresh, proof))
                return fork(*fresh, "the consistency proof from " + std::to_string(last_->size) + " to " +
                                        std::to_string(fresh->size) + " does not verify");
            break;
        }
        }
        return cosign(*fresh, j.what == witness::relation::first_use);
    }

private:
    outcome error(std::string_view message, std::string_view detail, int status = 0) {
        m_.errors->Increment();
        if (status)
            log_line(log_level::warn, message, {{"log_url", cfg_.log_url}, {"status", std::int64_t{status}}, {"answer", detail}});
        else
            log_line(log_level::warn, message, {{"log_url", cfg_.log_url}, {"error", detail}});
        return outcome::failed;
    }

    outcome fork(const checkpoint::note& fresh, const std::string& reason) {
        m_.forks->Increment();
        log_line(log_level::error, "fork detected",
                 {{"origin", fresh.origin},
                  {"old_size", last_->size},
                  {"old_root", merkle::to_hex(last_->root)},
                  {"new_size", fresh.size},
                  {"new_root", merkle::to_hex(fresh.root)},
                  {"reason", reason}});
        return outcome::refused;
    }

    // GET /v1/proofs/consistency; nothing (logged, counted) when it cannot be had.
    std::optional<std::vector<merkle::hash>> consistency_proof(std::int64_t from, std::int64_t to) {
        answer got;
        try {
            got = client_.get("/v1/proofs/consistency?from=" + std::to_string(from) + "&to=" + std::to_string(to));
        } catch (const unreachable& e) {
            error("log unreachable", e.what());
            return std::nullopt;
        }
        if (got.status != 200) {
            error("consistency proof not fetched", excerpt(got.body), got.status);
            return std::nullopt;
        }
        boost::system::error_code ec;
        const auto v = json::parse(got.body, ec);
        const auto* o = ec ? nullptr : v.if_object();
        const auto* f = o ? o->if_contains("from") : nullptr;
        const auto* t = o ? o->if_contains("to") : nullptr;
        const auto* h = o ? o->if_contains("hashes") : nullptr;
        const auto is = [](const json::value* x, std::int64_t n) {
            return x && ((x->is_int64() && x->get_int64() == n) ||
                         (x->is_uint64() && x->get_uint64() == static_cast<std::uint64_t>(n)));
        };
        if (!is(f, from) || !is(t, to) || !h || !h->is_array()) {
            error("the consistency proof is malformed", excerpt(got.body));
            return std::nullopt;
        }
        std::vector<merkle::hash> proof;
        for (const auto& x : h->get_array()) {
            const auto parsed = x.is_string() ? merkle::from_hex(x.get_string()) : std::nullopt;
            if (!parsed) {
                error("the consistency proof is malformed", excerpt(got.body));
                return std::nullopt;
            }
            proof.push_back(*parsed);
        }
        return proof;
    }

    outcome cosign(const checkpoint::note& fresh, bool first_use) {
        const auto ts = unix_seconds(clk_.now());
        const auto line = checkpoint::cosign(fresh, cfg_.witness_name, own_key_, static_cast<std::uint64_t>(ts));
        answer got;
        try {
            got = client_.post_text("/v1/ledger/checkpoint/cosignatures?tree_size=" + std::to_string(fresh.size),
                                    checkpoint::format_signature_line(line));
        } catch (const unreachable& e) {
            return error("log unreachable", e.what());
        }
        if (got.status != 200) return error("co-signature not accepted", excerpt(got.body), got.status);

        // The state: the log's note with this witness's line (so a restart knows its timestamp).
        auto saved = fresh;
        std::erase_if(saved.signatures, [&](const checkpoint::signature_line& s) { return s.name == cfg_.witness_name; });
        saved.signatures.push_back(line);
        try {
            save_atomically(cfg_.witness_state_file, saved.text());
        } catch (const std::exception& e) {
            m_.errors->Increment();
            log_line(log_level::error, "co-signed, but the state file is not saved", {{"error", e.what()}});
            return outcome::failed;
        }
        last_ = std::move(saved);
        m_.cosigned->Increment();
        m_.tree_size->Set(static_cast<double>(fresh.size));
        m_.last_cosigned->Set(static_cast<double>(ts));
        log_line(log_level::info, "co-signed",
                 {{"origin", fresh.origin}, {"tree_size", fresh.size}, {"root", merkle::to_hex(fresh.root)},
                  {"timestamp", ts}, {"first_use", first_use}});
        return outcome::cosigned;
    }

    const config& cfg_;
    checkpoint::public_key log_key_;
    checkpoint::private_key own_key_;
    checkpoint::public_key own_public_;
    std::optional<checkpoint::note> last_;
    log_client client_;
    witness_metrics& m_;
    const clock& clk_;
};

// The first line of the token file, without its line end or surrounding blanks.
std::string read_token(const std::string& path) {
    const auto text = read_file(path, "--token-file");
    std::string line = text.substr(0, text.find('\n'));
    const auto first = line.find_first_not_of(" \t\r");
    const auto last = line.find_last_not_of(" \t\r");
    if (first == std::string::npos) throw unusable("--token-file: the first line of " + path + " is empty");
    return line.substr(first, last - first + 1);
}

// The state file's checkpoint, checked against the log key; nothing when there is no file.
std::optional<checkpoint::note> read_state(const config& cfg, const checkpoint::public_key& log_key) {
    std::error_code ec;
    if (!std::filesystem::exists(cfg.witness_state_file, ec) && !ec) return std::nullopt;
    const auto text = read_file(cfg.witness_state_file, "--witness-state");
    auto n = checkpoint::parse(text);
    if (!n) throw unusable("--witness-state: " + cfg.witness_state_file + " is not a signed checkpoint note");
    const std::string name = cfg.key_name.empty() ? n->origin : cfg.key_name;
    if (!checkpoint::verify(*n, name, log_key))
        throw unusable("--witness-state: " + cfg.witness_state_file + " is not signed by the log's key '" + name + "'");
    return n;
}

} // namespace

int run_witness(const config& cfg) {
    setup_logging(cfg.log, cfg.log_level);

    const auto endpoint = parse_log_url(cfg.log_url);
    if (!endpoint) {
        std::cerr << "mqledger witness: --log-url must be http://HOST[:PORT], got '" << cfg.log_url << "'\n";
        return 2;
    }
    std::optional<witness_process::keys> keys;
    std::string token;
    std::optional<checkpoint::note> last;
    try {
        keys.emplace(witness_process::keys{
            checkpoint::public_key::from_pem(read_file(cfg.public_key_file, "--public-key")),
            checkpoint::private_key::from_pem(read_file(cfg.witness_key_file, "--witness-signing-key"))});
        if (!cfg.token_file.empty()) token = read_token(cfg.token_file);
        last = read_state(cfg, keys->log);
    } catch (const unusable& e) {
        std::cerr << "mqledger witness: " << e.what() << "\n";
        return 2;
    } catch (const checkpoint::key_error& e) {
        std::cerr << "mqledger witness: --public-key / --witness-signing-key: " << e.what() << "\n";
        return 2;
    }

    // The one clock of the process (DESIGN.md "Clock").
    const system_clock_source clk;
    witness_metrics m;
    if (last) {
        m.tree_size->Set(static_cast<double>(last->size));
        if (const auto ts = checkpoint::verify_cosignature(*last, cfg.witness_name, keys->own.public_part()))
            m.last_cosigned->Set(static_cast<double>(*ts));
    }

    // Signals and /metrics are served by a background event loop; rounds run on this thread.
    std::atomic<bool> stop{false};
    std::mutex stop_mutex;
    std::condition_variable stop_cv;
    const auto request_stop = [&] {
        {
            std::lock_guard lock(stop_mutex);
            stop = true;
        }
        stop_cv.notify_all();
    };

    net::io_context ioc(1);
    http::router router(nullptr);
    router.add("GET", "/metrics", route_kind::open, [&m](const http::request_context&) {
        http::response res;
        res.content_type = "text/plain; version=0.0.4; charset=utf-8";
        res.body = m.exposition();
        return res;
    });
    router.add("GET", "/healthz", route_kind::open, [](const http::request_context&) {
        return http::json_response(200, json::object{{"status", "ok"}});
    });
    std::unique_ptr<http::server> server;
    if (cfg.metrics_listen) {
        server = std::make_unique<http::server>(
            ioc, http::server_options{*cfg.metrics_listen, 4096, 16 * 1024, std::chrono::seconds(30), std::chrono::seconds(60)},
            http::routed(router), [&router](std::string_view method, std::string_view target) {
                return router.route_of(method, target);
            },
            [](std::string_view, std::string_view, const http::response&, double, std::size_t) {});
        try {
            const auto port = server->start();
            log_line(log_level::info, "serving metrics",
                     {{"host", cfg.metrics_listen->host}, {"port", std::int64_t{port}}});
        } catch (const std::exception& e) {
            std::cerr << "mqledger witness: --metrics-listen: " << e.what() << "\n";
            return 2;
        }
    }
    net::signal_set signals(ioc);
    if (!cfg.witness_once) {
        signals.add(SIGINT);
        signals.add(SIGTERM);
        signals.async_wait([&](const boost::system::error_code& ec, int signo) {
            if (ec) return;
            log_line(log_level::info, "stopping", {{"signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
            request_stop();
        });
    }
    std::thread loop;
    if (server || !cfg.witness_once) loop = std::thread([&ioc] {
        for (;;) {
            try {
                ioc.run();
                return;
            } catch (const std::exception& e) {
                log_line(log_level::error, "unhandled exception in the event loop", {{"error", e.what()}});
            }
        }
    });
    const auto shut_down = [&] {
        if (!loop.joinable()) return;
        // Stop listening and let open scrapes finish; connections that will not close within
        // two seconds are cut.
        net::steady_timer cutoff(ioc);
        cutoff.expires_after(std::chrono::seconds(2));
        cutoff.async_wait([&ioc](const boost::system::error_code& ec) {
            if (!ec) ioc.stop();
        });
        net::post(ioc, [&] {
            signals.cancel();
            if (server) server->stop([&cutoff] { cutoff.cancel(); });
            else cutoff.cancel();
        });
        loop.join();
    };

    log_line(log_level::info, "witness started",
             {{"log_url", cfg.log_url}, {"name", cfg.witness_name}, {"state", cfg.witness_state_file},
              {"tree_size", last ? last->size : std::int64_t{-1}}, {"once", cfg.witness_once},
              {"version", version()}});
    if (!last)
        log_line(log_level::warn, "no state file: the first checkpoint fetched is trusted on first use",
                 {{"state", cfg.witness_state_file}});

    witness_process w(cfg, *keys, std::move(last), log_client(*endpoint, std::move(token), stop), m, clk);
    int exit_code = 0;
    for (;;) {
        outcome o = outcome::failed;
        try {
            o = w.round();
        } catch (const std::exception& e) {
            m.errors->Increment();
            log_line(log_level::error, "round failed", {{"error", e.what()}});
        }
        log_line(o == outcome::refused ? log_level::error : o == outcome::failed ? log_level::warn : log_level::info,
                 "round", {{"outcome", to_string(o)}});
        if (cfg.witness_once) {
            exit_code = o == outcome::refused ? 1 : o == outcome::failed ? 2 : 0;
            break;
        }
        std::unique_lock lock(stop_mutex);
        if (stop_cv.wait_for(lock, cfg.witness_interval, [&] { return stop.load(); })) break;
    }
    shut_down();
    log_line(log_level::info, "stopped", {{"exit_code", std::int64_t{exit_code}}});
    return exit_code;
}

} // namespace mqledger
