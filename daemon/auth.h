// API tokens and roles (API.md "Command line": --tokens; roles admin, operator, billing,
// auditor). The file holds only SHA-256 digests, one token per line:
//     ROLE NAME SHA256_HEX_OF_TOKEN      # comments and blank lines allowed
// The token's NAME is the actor recorded on every event it causes.
#pragma once

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace mqledger {

enum class role { admin, operator_ /* "operator" is a C++ keyword */, billing, auditor };

[[nodiscard]] std::string_view to_string(role r) noexcept;
[[nodiscard]] std::optional<role> parse_role(std::string_view s) noexcept;

/// What a route needs, as the permissions table sees it. Every route is registered with one.
enum class route_kind {
    open,              // /metrics, /healthz, /readyz: no token at all
    read,              // any GET of the ledger: every role
    instance_action,   // create instances, their actions, topics and groups: operator, admin
    account_write,     // accounts, funds (also an instance's add-funds action), charges: billing, admin
    admin_only,        // import, the manual clock, anything administrative: admin
};

/// The permissions table (API.md roles): admin everything; operator instance actions; billing
/// accounts, funds and charges; auditor reads only. Every role may read. Pure; thread-safe.
[[nodiscard]] bool allowed(role r, route_kind a) noexcept;

/// Who made a request.
struct principal {
    role who = role::auditor;
    std::string name;   // the actor recorded on events
};

using sha256_digest = std::array<unsigned char, 32>;

/// SHA-256 of `data` (OpenSSL libcrypto).
[[nodiscard]] sha256_digest sha256(std::string_view data);

/// A tokens file that cannot be used; the message names the file and line.
struct tokens_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

/// The parsed file: an immutable table, looked up by the digest of a presented token.
class token_table {
public:
    struct entry {
        role who;
        std::string name;
        sha256_digest digest;
    };

    /// Strict parse of the file's text; `source` names it in errors ("tokens.txt line 3: …").
    /// Throws tokens_error on any bad line, unknown role, bad digest or duplicate digest.
    [[nodiscard]] static token_table parse(std::string_view text, std::string_view source);

    /// The principal whose digest equals SHA-256(token), comparing in constant time against
    /// every entry so that timing reveals nothing about which digests exist. Thread-safe.
    [[nodiscard]] std::optional<principal> find(std::string_view token) const;

    [[nodiscard]] const std::vector<entry>& entries() const noexcept { return entries_; }

private:
    std::vector<entry> entries_;
};

/// The tokens in force, reloadable at run time (SIGHUP). Thread-safe.
class token_store {
public:
    /// Loads `path`; throws tokens_error when it cannot be read or parsed.
    explicit token_store(std::string path);

    /// Re-reads the file. On error the old table stays in force and the error is rethrown, so a
    /// typo in a live edit does not lock everybody out.
    void reload();

    /// The principal for an `Authorization` header value `Bearer <token>`; nullopt when the
    /// header is missing, malformed or names no token.
    [[nodiscard]] std::optional<principal> authenticate(std::string_view authorization) const;

    [[nodiscard]] std::size_t size() const;

private:
    std::string path_;
    mutable std::mutex mutex_;
    std::shared_ptr<const token_table> table_;
};

} // namespace mqledger
