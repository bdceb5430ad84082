#pragma once
// SHA-256 digests of the artefacts a sandbox boots from (kernel, initrd, disk images), so a
// policy can pin them (startup step 2). Verify the descriptor the sandbox will use, not a path
// that could be swapped between the check and the open: sha256_fd() reads with pread and
// leaves the file offset alone.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "base/sha256.hpp"

namespace stockade::policy {

// SHA-256 itself and hex live in base/sha256.hpp.
using stockade::parse_sha256_hex;
using stockade::Sha256;
using stockade::sha256_fd;
using stockade::to_hex;

[[nodiscard]] Result<Sha256> sha256_file(const std::string& path);

// Refuses (an Error naming the file and both digests) unless the content matches.
[[nodiscard]] Result<> verify_digest_fd(int fd, std::string_view what, const Sha256& expected);
[[nodiscard]] Result<> verify_digest(const std::string& path, const Sha256& expected);
// Same, with the expected digest as hex (rejected when it is not 64 hex digits).
[[nodiscard]] Result<> verify_digest(const std::string& path, std::string_view expected_hex);

}  // namespace stockade::policy
