#include "ledger/store/checkpoint.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <charconv>
#include <climits>

namespace mqledger::checkpoint {

namespace {

using bio_ptr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using pkey_ptr = std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

constexpr std::string_view em_dash = "\xE2\x80\x94";
constexpr std::size_t max_text = 1 << 20;
constexpr std::size_t max_signatures = 100;
constexpr unsigned char alg_ed25519 = 0x01;
constexpr unsigned char alg_cosignature_v1 = 0x04;

// ---------------------------------------------------------------------------------------------
// Text rules of signed-note: UTF-8, no control characters but "\n"; key names without "+" or
// spaces.

/// Decodes the UTF-8 sequence at `s[i]` into `cp` and advances `i`; false for anything that is not
/// the shortest encoding of a scalar value (overlongs, surrogates, beyond U+10FFFF, truncation).
bool next_code_point(std::string_view s, std::size_t& i, char32_t& cp) {
    const auto b0 = static_cast<unsigned char>(s[i]);
    if (b0 < 0x80) {
        cp = b0;
        ++i;
        return true;
    }
    std::size_t len = 0;
    char32_t min = 0;
    if ((b0 & 0xE0) == 0xC0) {
        len = 2;
        cp = b0 & 0x1F;
        min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        len = 3;
        cp = b0 & 0x0F;
        min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        len = 4;
        cp = b0 & 0x07;
        min = 0x10000;
    } else {
        return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t j = 1; j < len; ++j) {
        const auto b = static_cast<unsigned char>(s[i + j]);
        if ((b & 0xC0) != 0x80) return false;
        cp = cp << 6 | (b & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
    return true;
}

bool is_control(char32_t cp) { return cp < 0x20 || cp == 0x7F; }

/// Unicode White_Space (what Go's unicode.IsSpace, and so the reference note code, refuses).
bool is_space(char32_t cp) {
    return cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

/// Valid UTF-8 without control characters other than "\n" (and without "\n" unless `newlines`).
bool is_clean_text(std::string_view s, bool newlines) {
    for (std::size_t i = 0; i < s.size();) {
        char32_t cp = 0;
        if (!next_code_point(s, i, cp)) return false;
        if (is_control(cp) && !(newlines && cp == '\n')) return false;
    }
    return true;
}

bool is_key_name(std::string_view name) {
    if (name.empty()) return false;
    for (std::size_t i = 0; i < name.size();) {
        char32_t cp = 0;
        if (!next_code_point(name, i, cp) || is_control(cp) || is_space(cp) || cp == '+') return false;
    }
    return true;
}

std::string_view as_chars(const unsigned char* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }

std::array<unsigned char, 4> key_id(std::string_view name, unsigned char alg, const public_key& key) {
    std::string input(name);
    input += '\n';
    input += static_cast<char>(alg);
    input += as_chars(key.raw().data(), key.raw().size());
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha256(), nullptr) != 1 || len != 32)
        throw std::runtime_error("SHA-256 failed (OpenSSL EVP)");
    return {digest[0], digest[1], digest[2], digest[3]};
}

/// The decimal of a tree size: digits only, no leading zero, within int64.
std::optional<std::int64_t> parse_size(std::string_view s) {
    if (s.empty() || (s.size() > 1 && s[0] == '0')) return std::nullopt;
    for (char c : s)
        if (c < '0' || c > '9') return std::nullopt;
    std::int64_t v = 0;
    const auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size()) return std::nullopt;
    return v;
}

// ---------------------------------------------------------------------------------------------
// OpenSSL helpers (Ed25519 through EVP, as in digest.cpp)

pkey_ptr read_pem(std::string_view pem, bool is_private) {
    if (pem.size() > INT_MAX) throw key_error("the key file is too large");
    bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
    if (!bio) throw key_error("out of memory reading a key");
    pkey_ptr key(is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                            : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr),
                 &EVP_PKEY_free);
    ERR_clear_error();
    if (!key) throw key_error(is_private ? "not a PEM private key" : "not a PEM public key");
    if (EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) throw key_error("the key is not an Ed25519 key");
    return key;
}

pkey_ptr raw_private(const std::array<unsigned char, 32>& seed) {
    pkey_ptr key(EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, seed.data(), seed.size()), &EVP_PKEY_free);
    if (!key) {
        ERR_clear_error();
        throw key_error("cannot load the Ed25519 private key");
    }
    return key;
}

std::array<unsigned char, 32> raw_public_of(EVP_PKEY* key) {
    std::array<unsigned char, 32> raw{};
    std::size_t len = raw.size();
    if (EVP_PKEY_get_raw_public_key(key, raw.data(), &len) != 1 || len != raw.size()) {
        ERR_clear_error();
        throw key_error("cannot read the Ed25519 public key");
    }
    return raw;
}

std::array<unsigned char, 32> raw_private_of(EVP_PKEY* key) {
    std::array<unsigned char, 32> raw{};
    std::size_t len = raw.size();
    if (EVP_PKEY_get_raw_private_key(key, raw.data(), &len) != 1 || len != raw.size()) {
        ERR_clear_error();
        throw key_error("cannot read the Ed25519 private key");
    }
    return raw;
}

std::string big_endian(std::uint64_t v) {
    std::string out(8, '\0');
    for (int i = 7; i >= 0; --i, v >>= 8) out[static_cast<std::size_t>(i)] = static_cast<char>(v & 0xff);
    return out;
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Keys

public_key public_key::from_pem(std::string_view pem) {
    const auto key = read_pem(pem, false);
    public_key k;
    k.raw_ = raw_public_of(key.get());
    return k;
}

public_key public_key::from_raw(const std::array<unsigned char, 32>& raw) {
    public_key k;
    k.raw_ = raw;
    return k;
}

bool public_key::verifies(std::string_view message, std::string_view signature) const {
    if (signature.size() != 64) return false;
    pkey_ptr key(EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, raw_.data(), raw_.size()), &EVP_PKEY_free);
    md_ctx_ptr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    const bool ok = key && ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) == 1 &&
                    EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                                     signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                                     message.size()) == 1;
    // A refused signature leaves an error on the thread's queue; nobody is going to read it.
    if (!ok) ERR_clear_error();
    return ok;
}

private_key private_key::from_pem(std::string_view pem) {
    const auto key = read_pem(pem, true);
    private_key k;
    k.seed_ = raw_private_of(key.get());
    return k;
}

private_key private_key::generate() {
    pkey_ptr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"), &EVP_PKEY_free);
    if (!key) {
        ERR_clear_error();
        throw key_error("Ed25519 key generation failed");
    }
    private_key k;
    k.seed_ = raw_private_of(key.get());
    return k;
}

std::string private_key::to_pem() const {
    const auto key = raw_private(seed_);
    bio_ptr bio(BIO_new(BIO_s_mem()), &BIO_free);
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        ERR_clear_error();
        throw key_error("cannot write the private key");
    }
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

public_key private_key::public_part() const {
    const auto key = raw_private(seed_);
    return public_key::from_raw(raw_public_of(key.get()));
}

std::string private_key::sign(std::string_view message) const {
    const auto key = raw_private(seed_);
    md_ctx_ptr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    unsigned char sig[64];
    std::size_t len = sizeof sig;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
        EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(message.data()), message.size()) !=
            1 ||
        len != sizeof sig) {
        ERR_clear_error();
        throw key_error("Ed25519 signing failed");
    }
    return std::string(as_chars(sig, len));
}

std::array<unsigned char, 4> log_key_id(std::string_view name, const public_key& key) {
    return key_id(name, alg_ed25519, key);
}

std::array<unsigned char, 4> cosigner_key_id(std::string_view name, const public_key& key) {
    return key_id(name, alg_cosignature_v1, key);
}

// ---------------------------------------------------------------------------------------------
// Notes

std::string note::body() const {
    std::string out = origin;
    out += '\n';
    out += std::to_string(size);
    out += '\n';
    out += merkle::to_base64(root);
    out += '\n';
    for (const auto& e : extensions) {
        out += e;
        out += '\n';
    }
    return out;
}

std::string note::text() const {
    std::string out = body();
    out += '\n';
    for (const auto& s : signatures) out += format_signature_line(s);
    return out;
}

std::string format_signature_line(const signature_line& s) {
    std::string raw(as_chars(s.key_id.data(), s.key_id.size()));
    raw += s.payload;
    std::string out(em_dash);
    out += ' ';
    out += s.name;
    out += ' ';
    out += merkle::base64_encode(raw);
    out += '\n';
    return out;
}

std::optional<signature_line> parse_signature_line(std::string_view line) {
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (line.size() > max_text || !is_clean_text(line, false)) return std::nullopt;
    if (line.substr(0, em_dash.size()) != em_dash || line.substr(em_dash.size(), 1) != " ") return std::nullopt;
    line.remove_prefix(em_dash.size() + 1);
    const auto space = line.find(' ');
    if (space == std::string_view::npos) return std::nullopt;
    const auto name = line.substr(0, space);
    if (!is_key_name(name)) return std::nullopt;
    const auto raw = merkle::base64_decode(line.substr(space + 1));
    if (!raw || raw->size() < 5) return std::nullopt;
    signature_line s;
    s.name = std::string(name);
    std::copy_n(raw->begin(), 4, s.key_id.begin());
    s.payload = raw->substr(4);
    return s;
}

std::optional<note> parse(std::string_view text) {
    if (text.size() > max_text || !is_clean_text(text, true)) return std::nullopt;
    // The signatures follow the last blank line; the body ends with its own "\n".
    const auto blank = text.rfind("\n\n");
    if (blank == std::string_view::npos) return std::nullopt;
    const auto body = text.substr(0, blank + 1);
    auto sigs = text.substr(blank + 2);

    note n;
    if (sigs.empty() || sigs.back() != '\n') return std::nullopt;
    while (!sigs.empty()) {
        const auto nl = sigs.find('\n');
        if (n.signatures.size() == max_signatures) return std::nullopt;
        auto s = parse_signature_line(sigs.substr(0, nl));
        if (!s) return std::nullopt;
        n.signatures.push_back(std::move(*s));
        sigs.remove_prefix(nl + 1);
    }

    // ORIGIN, SIZE, ROOT, then extension lines; none of them empty.
    std::vector<std::string_view> lines;
    for (std::string_view rest = body; !rest.empty();) {
        const auto nl = rest.find('\n');
        const auto l = rest.substr(0, nl);
        if (l.empty()) return std::nullopt;
        lines.push_back(l);
        rest.remove_prefix(nl + 1);
    }
    if (lines.size() < 3) return std::nullopt;
    n.origin = std::string(lines[0]);
    const auto size = parse_size(lines[1]);
    const auto root = merkle::from_base64(lines[2]);
    if (!size || !root) return std::nullopt;
    n.size = *size;
    n.root = *root;
    for (std::size_t i = 3; i < lines.size(); ++i) n.extensions.emplace_back(lines[i]);
    return n;
}

note sign(std::string_view origin, std::int64_t size, const merkle::hash& root, std::string_view name,
          const private_key& key) {
    if (origin.empty() || !is_clean_text(origin, false)) throw std::invalid_argument("checkpoint: a bad origin line");
    if (size < 0) throw std::invalid_argument("checkpoint: a negative tree size");
    if (!is_key_name(name)) throw std::invalid_argument("checkpoint: a bad key name");
    note n;
    n.origin = std::string(origin);
    n.size = size;
    n.root = root;
    n.signatures.push_back(signature_line{std::string(name), log_key_id(name, key.public_part()), key.sign(n.body())});
    return n;
}

bool verify(const note& n, std::string_view name, const public_key& key) {
    // signed-note: lines of unknown keys are skipped, every line of the known key must verify.
    const auto id = log_key_id(name, key);
    const auto body = n.body();
    bool verified = false;
    for (const auto& s : n.signatures) {
        if (s.name != name || s.key_id != id) continue;
        if (!key.verifies(body, s.payload)) return false;
        verified = true;
    }
    return verified;
}

std::string cosignature_message(const note& n, std::uint64_t timestamp) {
    return "cosignature/v1\ntime " + std::to_string(timestamp) + "\n" + n.body();
}

signature_line cosign(const note& n, std::string_view witness_name, const private_key& key, std::uint64_t timestamp) {
    if (!is_key_name(witness_name)) throw std::invalid_argument("checkpoint: a bad witness name");
    return signature_line{std::string(witness_name), cosigner_key_id(witness_name, key.public_part()),
                          big_endian(timestamp) + key.sign(cosignature_message(n, timestamp))};
}

std::optional<std::uint64_t> verify_cosignature(const note& n, std::string_view name, const public_key& key) {
    const auto id = cosigner_key_id(name, key);
    std::optional<std::uint64_t> first;
    for (const auto& s : n.signatures) {
        if (s.name != name || s.key_id != id) continue;
        if (s.payload.size() != 8 + 64) return std::nullopt;
        std::uint64_t timestamp = 0;
        for (std::size_t i = 0; i < 8; ++i) timestamp = timestamp << 8 | static_cast<unsigned char>(s.payload[i]);
        if (!key.verifies(cosignature_message(n, timestamp), std::string_view(s.payload).substr(8))) return std::nullopt;
        if (!first) first = timestamp;
    }
    return first;
}

} // namespace mqledger::checkpoint
