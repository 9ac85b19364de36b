#include "ledger/store/digest.h"

#include "ledger/store/hash_chain.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <charconv>
#include <memory>
#include <vector>

namespace mqledger::store {

namespace {

using bio_ptr = std::unique_ptr<BIO, decltype(&BIO_free)>;
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

bool is_hex(std::string_view s) {
    for (char c : s)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::optional<std::vector<unsigned char>> unhex(std::string_view s) {
    if (s.size() % 2 != 0 || !is_hex(s)) return std::nullopt;
    std::vector<unsigned char> out(s.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) {
        unsigned v = 0;
        std::from_chars(s.data() + 2 * i, s.data() + 2 * i + 2, v, 16);
        out[i] = static_cast<unsigned char>(v);
    }
    return out;
}

EVP_PKEY* read_key(const std::string& pem, bool is_private) {
    bio_ptr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
    if (!bio) throw digest_error("out of memory reading a key");
    EVP_PKEY* key = is_private ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr)
                               : PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr);
    if (key == nullptr)
        throw digest_error(is_private ? "not a PEM private key" : "not a PEM public key");
    if (EVP_PKEY_id(key) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(key);
        throw digest_error("the key is not an Ed25519 key");
    }
    return key;
}

} // namespace

std::string digest_message(std::int64_t position, std::string_view hash) {
    return "mqledger-digest-v1\n" + std::to_string(position) + "\n" + std::string(hash);
}

std::string to_string(const digest& d) {
    auto s = std::to_string(d.position) + ":" + d.hash;
    if (d.signature) s += ":" + *d.signature;
    return s;
}

std::optional<digest> parse_digest(std::string_view text) {
    const auto c1 = text.find(':');
    if (c1 == std::string_view::npos) return std::nullopt;
    digest d;
    const auto pos = text.substr(0, c1);
    const auto [p, ec] = std::from_chars(pos.data(), pos.data() + pos.size(), d.position);
    if (ec != std::errc{} || p != pos.data() + pos.size() || d.position < 0) return std::nullopt;
    auto rest = text.substr(c1 + 1);
    const auto c2 = rest.find(':');
    d.hash = std::string(rest.substr(0, c2));
    if (d.hash.size() != 64 || !is_hex(d.hash)) return std::nullopt;
    if (c2 != std::string_view::npos) {
        const auto sig = rest.substr(c2 + 1);
        if (sig.size() != 128 || !is_hex(sig)) return std::nullopt;
        d.signature = std::string(sig);
    }
    return d;
}

digest_signer::digest_signer(const std::string& private_key_pem) : key_(read_key(private_key_pem, true)) {}

digest_signer::~digest_signer() { EVP_PKEY_free(static_cast<EVP_PKEY*>(key_)); }

std::string digest_signer::sign(std::int64_t position, std::string_view hash) const {
    const auto msg = digest_message(position, hash);
    md_ctx_ptr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    unsigned char sig[64];
    std::size_t len = sizeof sig;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, static_cast<EVP_PKEY*>(key_)) != 1 ||
        EVP_DigestSign(ctx.get(), sig, &len, reinterpret_cast<const unsigned char*>(msg.data()), msg.size()) != 1)
        throw digest_error("Ed25519 signing failed");
    return to_hex(sig, len);
}

std::string digest_signer::public_key_pem() const {
    bio_ptr bio(BIO_new(BIO_s_mem()), &BIO_free);
    if (!bio || PEM_write_bio_PUBKEY(bio.get(), static_cast<EVP_PKEY*>(key_)) != 1)
        throw digest_error("cannot write the public key");
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    return std::string(data, static_cast<std::size_t>(n));
}

bool verify_digest_signature(const digest& d, const std::string& public_key_pem) {
    if (!d.signature) return false;
    const auto sig = unhex(*d.signature);
    if (!sig) return false;
    std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(read_key(public_key_pem, false), &EVP_PKEY_free);
    md_ctx_ptr ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    const auto msg = digest_message(d.position, d.hash);
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) return false;
    return EVP_DigestVerify(ctx.get(), sig->data(), sig->size(), reinterpret_cast<const unsigned char*>(msg.data()),
                            msg.size()) == 1;
}

} // namespace mqledger::store
