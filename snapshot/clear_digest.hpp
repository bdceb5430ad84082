#pragma once
// Unsealed snapshots keep their manifest in clear, with each part's length and SHA-256:
// no secret, but a damaged or replaced file is still refused before a guest runs.
#include <cstdint>
#include <string_view>

#include "base/error.hpp"
#include "base/sha256.hpp"

namespace stockade::snapshot {

struct ClearDigest {
    std::uint64_t size = 0;
    Sha256 sha256{};
    bool operator==(const ClearDigest&) const = default;
};

// The length and SHA-256 of a whole part file (read with pread; the offset is left alone).
// `part` names it in errors.
[[nodiscard]] Result<ClearDigest> digest_clear_part(int fd, std::string_view part);
// Refuses a part whose length or digest is not `expected`, naming which.
[[nodiscard]] Result<> check_clear_part(int fd, std::string_view part, const ClearDigest& expected);

}  // namespace stockade::snapshot
