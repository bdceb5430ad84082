#pragma once
// SHA-256 (OpenSSL) and hex: pinned artefact digests (policy/), derived MAC addresses
// and tap names (netsetup/).
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace stockade {

using Sha256 = std::array<std::uint8_t, 32>;

// In-memory data. OpenSSL's SHA-256 cannot fail here; if it ever did, that aborts, because a
// digest silently made of zeros would be worse than stopping.
[[nodiscard]] Sha256 sha256(std::span<const std::uint8_t> data);
[[nodiscard]] Sha256 sha256(std::string_view data);
// Streams a whole file with pread (the file offset is left alone). `what` names it in errors.
[[nodiscard]] Result<Sha256> sha256_fd(int fd, std::string_view what);

// Lower-case hex of any bytes.
[[nodiscard]] std::string to_hex(std::span<const std::uint8_t> bytes);
// 0..15 for a hex digit (either case), -1 for anything else.
[[nodiscard]] int hex_digit_value(char c);
// Exactly 64 hex digits; nullopt for anything else.
[[nodiscard]] std::optional<Sha256> parse_sha256_hex(std::string_view hex);

}  // namespace stockade
