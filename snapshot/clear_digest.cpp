#include "snapshot/clear_digest.hpp"

#include <sys/stat.h>

namespace stockade::snapshot {

Result<ClearDigest> digest_clear_part(int fd, std::string_view part) {
    struct stat before {
    }, after{};
    if (::fstat(fd, &before) != 0) return fail_sys(fmt::format("{}: stat", part));
    if (!S_ISREG(before.st_mode)) return fail("{}: not a regular file", part);
    const Sha256 digest = STOCKADE_TRY(sha256_fd(fd, part));
    // A file that changed length while it was read has no one digest.
    if (::fstat(fd, &after) != 0) return fail_sys(fmt::format("{}: stat", part));
    if (after.st_size != before.st_size)
        return fail("{}: changed from {} to {} bytes while it was read", part, before.st_size,
                    after.st_size);
    return ClearDigest{.size = static_cast<std::uint64_t>(before.st_size), .sha256 = digest};
}

Result<> check_clear_part(int fd, std::string_view part, const ClearDigest& expected) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail_sys(fmt::format("{}: stat", part));
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size < expected.size)
        return fail("{}: truncated ({} of the {} bytes the manifest records)", part, size,
                    expected.size);
    if (size > expected.size)
        return fail("{}: {} bytes more than the manifest records ({})", part, size - expected.size,
                    expected.size);
    const ClearDigest got = STOCKADE_TRY(digest_clear_part(fd, part));
    if (got.sha256 != expected.sha256)
        return fail("{}: modified (SHA-256 {}, the manifest records {})", part, to_hex(got.sha256),
                    to_hex(expected.sha256));
    if (got.size != expected.size) return fail("{}: changed length while it was read", part);
    return {};
}

}  // namespace stockade::snapshot
