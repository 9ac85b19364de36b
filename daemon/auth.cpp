#include "daemon/auth.h"

#include "ledger/canonical_json.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

namespace mqledger {

std::string_view to_string(role r) noexcept {
    switch (r) {
    case role::admin: return "admin";
    case role::operator_: return "operator";
    case role::billing: return "billing";
    case role::auditor: return "auditor";
    }
    return "?";
}

std::optional<role> parse_role(std::string_view s) noexcept {
    for (auto r : {role::admin, role::operator_, role::billing, role::auditor})
        if (to_string(r) == s) return r;
    return std::nullopt;
}

bool allowed(role r, route_kind a) noexcept {
    switch (a) {
    case route_kind::open:
    case route_kind::read: return true;
    case route_kind::instance_action: return r == role::admin || r == role::operator_;
    case route_kind::account_write: return r == role::admin || r == role::billing;
    case route_kind::admin_only: return r == role::admin;
    }
    return false;
}

sha256_digest sha256(std::string_view data) {
    sha256_digest out{};
    unsigned int len = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 || len != out.size())
        throw std::runtime_error("SHA-256 failed");
    return out;
}

namespace {

int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::vector<std::string_view> fields_of(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        const auto start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
        if (i > start) out.push_back(line.substr(start, i - start));
    }
    return out;
}

} // namespace

token_table token_table::parse(std::string_view text, std::string_view source) {
    token_table table;
    std::set<sha256_digest> seen;
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        const auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (const auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);

        const auto fields = fields_of(line);
        if (fields.empty()) continue;
        auto fail = [&](const std::string& why) {
            throw tokens_error(std::string(source) + " line " + std::to_string(line_no) + ": " + why);
        };
        if (fields.size() != 3)
            fail("expected 'ROLE NAME SHA256_HEX_OF_TOKEN', found " + std::to_string(fields.size()) + " field(s)");
        const auto who = parse_role(fields[0]);
        if (!who) fail("unknown role '" + std::string(fields[0]) + "' (expected admin, operator, billing or auditor)");
        const auto hex = fields[2];
        if (hex.size() != 64)
            fail("the token digest must be 64 hex digits (SHA-256), found " + std::to_string(hex.size()) +
                 " characters");
        // The name is recorded as the actor in every event's jsonb metadata, which refuses
        // invalid UTF-8: such a token could authenticate but never write anything.
        const auto name = fields[1];
        if (!valid_utf8(name) || std::any_of(name.begin(), name.end(), [](char c) {
                return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
            }))
            fail("the name must be UTF-8 text without control characters");
        entry e{*who, std::string(name), {}};
        for (std::size_t i = 0; i < 32; ++i) {
            const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
            if (hi < 0 || lo < 0) fail("the token digest is not hexadecimal");
            e.digest[i] = static_cast<unsigned char>(hi * 16 + lo);
        }
        if (!seen.insert(e.digest).second) fail("the same token digest appears twice");
        table.entries_.push_back(std::move(e));
    }
    return table;
}

std::optional<principal> token_table::find(std::string_view token) const {
    const auto digest = sha256(token);
    const entry* match = nullptr;
    for (const auto& e : entries_)
        if (CRYPTO_memcmp(e.digest.data(), digest.data(), digest.size()) == 0) match = &e;
    if (!match) return std::nullopt;
    return principal{match->who, match->name};
}

namespace {
std::shared_ptr<const token_table> load(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw tokens_error("cannot read tokens file '" + path + "'");
    std::ostringstream s;
    s << in.rdbuf();
    return std::make_shared<const token_table>(token_table::parse(s.str(), path));
}
} // namespace

token_store::token_store(std::string path) : path_(std::move(path)), table_(load(path_)) {}

void token_store::reload() {
    auto fresh = load(path_);
    std::lock_guard lock(mutex_);
    table_ = std::move(fresh);
}

std::optional<principal> token_store::authenticate(std::string_view authorization) const {
    constexpr std::string_view scheme = "Bearer ";
    if (authorization.size() <= scheme.size()) return std::nullopt;
    // The scheme is case-insensitive (RFC 9110 §11.1); the token is not.
    for (std::size_t i = 0; i < scheme.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
            std::tolower(static_cast<unsigned char>(scheme[i])))
            return std::nullopt;
    auto token = authorization.substr(scheme.size());
    while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
    while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
    if (token.empty()) return std::nullopt;
    std::shared_ptr<const token_table> table;
    {
        std::lock_guard lock(mutex_);
        table = table_;
    }
    return table->find(token);
}

std::size_t token_store::size() const {
    std::lock_guard lock(mutex_);
    return table_->entries().size();
}

} // namespace mqledger
