#pragma once
// The seal key (`--seal-key FILE`): 32 bytes that seal and open snapshots. It never
// encrypts anything itself: every part is sealed under a key derived from it
// (crypto.hpp: HKDF-SHA256 with the snapshot's id and the part's own salt).
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "snapshot/format.hpp"

namespace stockade::snapshot {

class SealKey {
  public:
    static constexpr std::size_t kSize = 32;

    // A key file holds exactly 32 raw bytes, or 64 hex digits and an optional newline
    // (`head -c 32 /dev/urandom > K` or `openssl rand -hex 32 > K`; then `chmod 600 K`). It
    // must be a regular file that neither group nor others may read or write: anything else
    // is refused, naming the fix.
    [[nodiscard]] static Result<SealKey> load(const std::string& path);
    // The same rule for a key file's content; `what` names it in errors.
    [[nodiscard]] static Result<SealKey> parse(std::span<const std::uint8_t> content,
                                               std::string_view what);
    // Exactly kSize bytes of key material.
    [[nodiscard]] static Result<SealKey> from_bytes(std::span<const std::uint8_t> bytes);
    // A fresh random key (OpenSSL's CSPRNG).
    [[nodiscard]] static Result<SealKey> generate();

    SealKey(SealKey&& other) noexcept;
    SealKey& operator=(SealKey&& other) noexcept;
    SealKey(const SealKey&) = delete;
    SealKey& operator=(const SealKey&) = delete;
    ~SealKey();  // cleanses the key material

    // Names the key in every part's header, so that a wrong key is told apart from tampering:
    // HKDF-SHA256 of the key (README.md, "Keys"); it reveals nothing of the key.
    [[nodiscard]] const KeyId& id() const { return id_; }
    // The key material, for deriving part keys (crypto.cpp) and nothing else.
    [[nodiscard]] std::span<const std::uint8_t, kSize> material() const { return bytes_; }

  private:
    SealKey() = default;
    std::array<std::uint8_t, kSize> bytes_{};
    KeyId id_{};
};

// A fresh random snapshot id: drawn once for every snapshot taken.
[[nodiscard]] Result<SnapshotId> new_snapshot_id();

}  // namespace stockade::snapshot
