#include "ledger/store/hash_chain.h"

#include <openssl/evp.h>

#include <charconv>
#include <stdexcept>

namespace mqledger::store {

namespace {
// OpenSSL 3 looks the algorithm up on every EVP_sha256() use ("implicit fetch"), which costs more
// than hashing a short event: fetch it once, and keep one digest context per thread.
const EVP_MD* sha256_md() {
    static const EVP_MD* md = [] {
        const EVP_MD* m = EVP_MD_fetch(nullptr, "SHA256", nullptr);
        return m != nullptr ? m : EVP_sha256();
    }();
    return md;
}

struct md_ctx {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~md_ctx() { EVP_MD_CTX_free(ctx); }
};
} // namespace

std::string to_hex(const unsigned char* bytes, std::size_t n) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out(2 * n, '0');
    for (std::size_t i = 0; i < n; ++i) {
        out[2 * i] = hex[bytes[i] >> 4];
        out[2 * i + 1] = hex[bytes[i] & 0xf];
    }
    return out;
}

void sha256_raw(std::initializer_list<std::string_view> parts, unsigned char* out) {
    thread_local md_ctx local;
    unsigned int len = 0;
    bool ok = local.ctx != nullptr && EVP_DigestInit_ex(local.ctx, sha256_md(), nullptr) == 1;
    for (const auto part : parts) ok = ok && EVP_DigestUpdate(local.ctx, part.data(), part.size()) == 1;
    if (!ok || EVP_DigestFinal_ex(local.ctx, out, &len) != 1 || len != 32)
        throw std::runtime_error("SHA-256 failed (OpenSSL EVP)");
}

std::string sha256_hex(std::string_view bytes) {
    unsigned char digest[32];
    sha256_raw({bytes}, digest);
    return to_hex(digest, sizeof digest);
}

namespace {
void append_int(std::string& out, std::int64_t i) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, i);
    out.append(buf, r.ptr);
}
} // namespace

void append_hash_preimage(std::string& out, const hash_input& in) {
    out.append(in.prev_hash).push_back('\n');
    append_int(out, in.position);
    out.push_back('\n');
    out.append(in.stream).push_back('\n');
    append_int(out, in.stream_version);
    out.push_back('\n');
    out.append(in.type).push_back('\n');
    append_int(out, in.effective_at_us);
    out.push_back('\n');
    append_int(out, in.recorded_at_us);
    out.push_back('\n');
    out.append(in.data_json).push_back('\n');
    out.append(in.metadata_json);
}

std::string event_hash(const hash_input& in) {
    std::string pre;
    pre.reserve(256 + in.data_json.size() + in.metadata_json.size());
    append_hash_preimage(pre, in);
    return sha256_hex(pre);
}

} // namespace mqledger::store
