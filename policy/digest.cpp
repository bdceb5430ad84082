#include "policy/digest.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "base/io.hpp"

namespace stockade::policy {

Result<Sha256> sha256_file(const std::string& path) {
    auto fd = STOCKADE_TRY(open_file(path, O_RDONLY));
    return sha256_fd(fd.get(), path);
}

Result<> verify_digest_fd(int fd, std::string_view what, const Sha256& expected) {
    auto actual = STOCKADE_TRY(sha256_fd(fd, what));
    if (actual != expected)
        return fail("digest mismatch for {}: the policy pins sha256 {}, the file has {}", what,
                    to_hex(expected), to_hex(actual));
    return {};
}

Result<> verify_digest(const std::string& path, const Sha256& expected) {
    auto fd = STOCKADE_TRY(open_file(path, O_RDONLY));
    return verify_digest_fd(fd.get(), path, expected);
}

Result<> verify_digest(const std::string& path, std::string_view expected_hex) {
    auto expected = parse_sha256_hex(expected_hex);
    if (!expected)
        return fail("verifying {}: expected digest \"{}\" is not 64 hex digits", path,
                    expected_hex);
    return verify_digest(path, *expected);
}

}  // namespace stockade::policy
