#include "snapshot/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <climits>
#include <string_view>

#include "snapshot/seal_key.hpp"

namespace stockade::snapshot {
namespace {

// HKDF's info strings: each names its purpose and the format, so that no two derivations
// ever share an output (README.md, "Keys").
constexpr std::string_view kPartKeyInfo = "stockade sealed snapshot v1: part key";
constexpr std::string_view kKeyIdInfo = "stockade sealed snapshot v1: key id";

std::span<const std::uint8_t> bytes_of(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

// EVP lengths are ints; a chunk is at most kMaxChunkSize and an AAD a few dozen bytes.
int int_size(std::size_t n) {
    return static_cast<int>(n);
}

}  // namespace

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
    if (this != &other) {
        OPENSSL_cleanse(bytes_.data(), bytes_.size());
        bytes_ = std::move(other.bytes_);
        other.bytes_.clear();
    }
    return *this;
}

SecretBytes::~SecretBytes() {
    OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

Result<> random_bytes(std::span<std::uint8_t> out) {
    if (out.size() > INT_MAX || RAND_bytes(out.data(), int_size(out.size())) != 1)
        return fail("drawing {} random bytes: OpenSSL's RAND_bytes failed", out.size());
    return {};
}

Result<> hkdf_sha256(std::span<const std::uint8_t> key, std::span<const std::uint8_t> salt,
                     std::span<const std::uint8_t> info, std::span<std::uint8_t> out) {
    EvpPtr<EVP_KDF> kdf(EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr));
    if (!kdf) return fail("HKDF-SHA256: OpenSSL has no HKDF");
    EvpPtr<EVP_KDF_CTX> ctx(EVP_KDF_CTX_new(kdf.get()));
    if (!ctx) return fail("HKDF-SHA256: EVP_KDF_CTX_new failed");
    // OSSL_PARAM's constructors take non-const pointers; the derivation only reads them.
    char digest[] = "SHA256";
    auto octets = [](const char* name, std::span<const std::uint8_t> b) {
        return OSSL_PARAM_construct_octet_string(name, const_cast<std::uint8_t*>(b.data()),
                                                 b.size());
    };
    std::array<OSSL_PARAM, 5> params{};
    std::size_t n = 0;
    params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
    params[n++] = octets(OSSL_KDF_PARAM_KEY, key);
    if (!salt.empty()) params[n++] = octets(OSSL_KDF_PARAM_SALT, salt);
    params[n++] = octets(OSSL_KDF_PARAM_INFO, info);
    params[n] = OSSL_PARAM_construct_end();
    if (EVP_KDF_derive(ctx.get(), out.data(), out.size(), params.data()) != 1)
        return fail("HKDF-SHA256: EVP_KDF_derive failed");
    return {};
}

Result<SecretBytes> derive_part_key(const SealKey& key, const SnapshotId& snapshot_id,
                                    const PartSalt& salt, std::string_view part) {
    std::array<std::uint8_t, kPartKeyInfo.size() + sizeof(PartSalt) + kPartNameField> info{};
    std::span<std::uint8_t> rest(info);
    std::copy(kPartKeyInfo.begin(), kPartKeyInfo.end(), rest.begin());
    rest = rest.subspan(kPartKeyInfo.size());
    std::copy(salt.begin(), salt.end(), rest.begin());
    put_name(rest.subspan(salt.size()).first<kPartNameField>(), part);
    SecretBytes out(32);
    STOCKADE_TRY_VOID(hkdf_sha256(key.material(), snapshot_id, info, out.span()));
    return out;
}

Result<KeyId> derive_key_id(std::span<const std::uint8_t> key) {
    KeyId id{};
    STOCKADE_TRY_VOID(hkdf_sha256(key, {}, bytes_of(kKeyIdInfo), id));
    return id;
}

Result<Aes256Gcm> Aes256Gcm::create(std::span<const std::uint8_t> key) {
    EvpPtr<EVP_CIPHER> cipher(EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr));
    if (!cipher) return fail("AES-256-GCM: OpenSSL has no such cipher");
    if (key.size() != static_cast<std::size_t>(EVP_CIPHER_get_key_length(cipher.get())))
        return fail("AES-256-GCM: a key of {} bytes", key.size());
    EvpPtr<EVP_CIPHER_CTX> enc(EVP_CIPHER_CTX_new()), dec(EVP_CIPHER_CTX_new());
    if (!enc || !dec) return fail("AES-256-GCM: EVP_CIPHER_CTX_new failed");
    // The key is set once; each message then sets only its nonce (12 bytes: GCM's default).
    if (EVP_EncryptInit_ex2(enc.get(), cipher.get(), key.data(), nullptr, nullptr) != 1 ||
        EVP_DecryptInit_ex2(dec.get(), cipher.get(), key.data(), nullptr, nullptr) != 1)
        return fail("AES-256-GCM: setting the key failed");
    return Aes256Gcm(std::move(cipher), std::move(enc), std::move(dec));
}

Result<> Aes256Gcm::seal(std::span<const std::uint8_t, kNonceSize> nonce,
                         std::span<const std::uint8_t> aad, std::span<const std::uint8_t> plaintext,
                         std::span<std::uint8_t> ciphertext, Tag& tag) {
    EVP_CIPHER_CTX* c = enc_.get();
    int len = 0;
    if (ciphertext.size() != plaintext.size() || plaintext.size() > kMaxChunkSize)
        return fail("AES-256-GCM: {} bytes of plaintext into {}", plaintext.size(),
                    ciphertext.size());
    if (EVP_EncryptInit_ex2(c, nullptr, nullptr, nonce.data(), nullptr) != 1 ||
        (!aad.empty() &&
         EVP_EncryptUpdate(c, nullptr, &len, aad.data(), int_size(aad.size())) != 1) ||
        (!plaintext.empty() && EVP_EncryptUpdate(c, ciphertext.data(), &len, plaintext.data(),
                                                 int_size(plaintext.size())) != 1) ||
        EVP_EncryptFinal_ex(c, ciphertext.data() + plaintext.size(), &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, int_size(tag.size()), tag.data()) != 1)
        return fail("AES-256-GCM: sealing failed");
    return {};
}

Result<bool> Aes256Gcm::open(std::span<const std::uint8_t, kNonceSize> nonce,
                             std::span<const std::uint8_t> aad,
                             std::span<const std::uint8_t> ciphertext, const Tag& tag,
                             std::span<std::uint8_t> plaintext) {
    EVP_CIPHER_CTX* c = dec_.get();
    int len = 0;
    if (ciphertext.size() != plaintext.size() || ciphertext.size() > kMaxChunkSize)
        return fail("AES-256-GCM: {} bytes of ciphertext into {}", ciphertext.size(),
                    plaintext.size());
    Tag expected = tag;  // EVP's ctrl takes a non-const pointer
    if (EVP_DecryptInit_ex2(c, nullptr, nullptr, nonce.data(), nullptr) != 1 ||
        (!aad.empty() &&
         EVP_DecryptUpdate(c, nullptr, &len, aad.data(), int_size(aad.size())) != 1) ||
        (!ciphertext.empty() && EVP_DecryptUpdate(c, plaintext.data(), &len, ciphertext.data(),
                                                  int_size(ciphertext.size())) != 1) ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, int_size(expected.size()), expected.data()) !=
            1) {
        OPENSSL_cleanse(plaintext.data(), plaintext.size());
        return fail("AES-256-GCM: opening failed");
    }
    // Final compares the tag (in constant time); 0 is a mismatch.
    if (EVP_DecryptFinal_ex(c, plaintext.data() + plaintext.size(), &len) != 1) {
        OPENSSL_cleanse(plaintext.data(), plaintext.size());
        return false;
    }
    return true;
}

Result<Sha256Stream> Sha256Stream::create() {
    EvpPtr<EVP_MD> md(EVP_MD_fetch(nullptr, "SHA256", nullptr));
    EvpPtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
    if (!md || !ctx || EVP_DigestInit_ex2(ctx.get(), md.get(), nullptr) != 1)
        return fail("SHA-256: OpenSSL's digest would not start");
    return Sha256Stream(std::move(md), std::move(ctx));
}

Result<> Sha256Stream::update(std::span<const std::uint8_t> data) {
    if (!data.empty() && EVP_DigestUpdate(ctx_.get(), data.data(), data.size()) != 1)
        return fail("SHA-256: EVP_DigestUpdate failed");
    return {};
}

Result<Sha256> Sha256Stream::finish() {
    Sha256 out{};
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(ctx_.get(), out.data(), &len) != 1 || len != out.size())
        return fail("SHA-256: EVP_DigestFinal_ex failed");
    return out;
}

}  // namespace stockade::snapshot
