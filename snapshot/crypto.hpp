#pragma once
// The cryptography of the format (README.md, "Keys" and "Chunks"), over OpenSSL's EVP
// interface: random bytes, HKDF-SHA256, AES-256-GCM, incremental SHA-256. Each object owns
// its EVP objects (fetched explicitly, freed on every path); nothing is global.
#include <openssl/evp.h>
#include <openssl/kdf.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/sha256.hpp"
#include "snapshot/format.hpp"

namespace stockade::snapshot {

class SealKey;

struct EvpFree {
    void operator()(EVP_CIPHER* p) const { EVP_CIPHER_free(p); }
    void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
    void operator()(EVP_KDF* p) const { EVP_KDF_free(p); }
    void operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
    void operator()(EVP_MD* p) const { EVP_MD_free(p); }
    void operator()(EVP_MD_CTX* p) const { EVP_MD_CTX_free(p); }
};
template <typename T>
using EvpPtr = std::unique_ptr<T, EvpFree>;

// Bytes that may hold plaintext or keys: cleansed when they go. Moving hands the buffer over.
class SecretBytes {
  public:
    SecretBytes() = default;
    explicit SecretBytes(std::size_t size) : bytes_(size) {}
    SecretBytes(SecretBytes&&) noexcept = default;
    SecretBytes& operator=(SecretBytes&& other) noexcept;
    ~SecretBytes();

    [[nodiscard]] std::span<std::uint8_t> span() { return bytes_; }
    [[nodiscard]] std::size_t size() const { return bytes_.size(); }

  private:
    std::vector<std::uint8_t> bytes_;
};

[[nodiscard]] Result<> random_bytes(std::span<std::uint8_t> out);

// HKDF-SHA256 (RFC 5869): extract with `salt` (none: HashLen zeros), expand with `info`.
[[nodiscard]] Result<> hkdf_sha256(std::span<const std::uint8_t> key,
                                   std::span<const std::uint8_t> salt,
                                   std::span<const std::uint8_t> info, std::span<std::uint8_t> out);

// The key that seals exactly one written part: HKDF-SHA256(seal key, salt = snapshot id,
// info = purpose || part salt || part name field).
[[nodiscard]] Result<SecretBytes> derive_part_key(const SealKey& key, const SnapshotId& snapshot_id,
                                                  const PartSalt& salt, std::string_view part);
// The seal key's id: HKDF-SHA256(seal key, no salt, info = purpose), 16 bytes.
[[nodiscard]] Result<KeyId> derive_key_id(std::span<const std::uint8_t> key);

// AES-256-GCM under one key (set once); a 12-byte nonce and the AAD per message.
class Aes256Gcm {
  public:
    // `key` is 32 bytes; OpenSSL copies it into its context, the caller cleanses its own.
    [[nodiscard]] static Result<Aes256Gcm> create(std::span<const std::uint8_t> key);

    // Seals `plaintext` into `ciphertext` (as long) and `tag`.
    [[nodiscard]] Result<> seal(std::span<const std::uint8_t, kNonceSize> nonce,
                                std::span<const std::uint8_t> aad,
                                std::span<const std::uint8_t> plaintext,
                                std::span<std::uint8_t> ciphertext, Tag& tag);
    // Opens `ciphertext` into `plaintext` (as long): false when the tag does not match, and
    // then `plaintext` is cleansed (unauthenticated bytes never leave).
    [[nodiscard]] Result<bool> open(std::span<const std::uint8_t, kNonceSize> nonce,
                                    std::span<const std::uint8_t> aad,
                                    std::span<const std::uint8_t> ciphertext, const Tag& tag,
                                    std::span<std::uint8_t> plaintext);

  private:
    Aes256Gcm(EvpPtr<EVP_CIPHER> cipher, EvpPtr<EVP_CIPHER_CTX> enc, EvpPtr<EVP_CIPHER_CTX> dec)
        : cipher_(std::move(cipher)), enc_(std::move(enc)), dec_(std::move(dec)) {}
    EvpPtr<EVP_CIPHER> cipher_;
    EvpPtr<EVP_CIPHER_CTX> enc_, dec_;
};

// SHA-256 over data that arrives in pieces (the plaintext of a part, chunk by chunk).
class Sha256Stream {
  public:
    [[nodiscard]] static Result<Sha256Stream> create();
    [[nodiscard]] Result<> update(std::span<const std::uint8_t> data);
    [[nodiscard]] Result<Sha256> finish();

  private:
    Sha256Stream(EvpPtr<EVP_MD> md, EvpPtr<EVP_MD_CTX> ctx)
        : md_(std::move(md)), ctx_(std::move(ctx)) {}
    EvpPtr<EVP_MD> md_;
    EvpPtr<EVP_MD_CTX> ctx_;
};

}  // namespace stockade::snapshot
