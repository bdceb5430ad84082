#include "snapshot/seal_key.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "base/io.hpp"
#include "base/sha256.hpp"
#include "snapshot/crypto.hpp"

namespace stockade::snapshot {
namespace {

constexpr std::size_t kHexSize = 2 * SealKey::kSize;
// More than any key file holds, so that one read tells a long file from a key.
constexpr std::size_t kReadLimit = kHexSize + 2;

constexpr std::string_view kKeyFileRule =
    "a key file holds exactly 32 raw bytes, or 64 hex digits and an optional newline";

}  // namespace

SealKey::SealKey(SealKey&& other) noexcept : bytes_(other.bytes_), id_(other.id_) {
    OPENSSL_cleanse(other.bytes_.data(), other.bytes_.size());
}

SealKey& SealKey::operator=(SealKey&& other) noexcept {
    if (this != &other) {
        bytes_ = other.bytes_;
        id_ = other.id_;
        OPENSSL_cleanse(other.bytes_.data(), other.bytes_.size());
    }
    return *this;
}

SealKey::~SealKey() {
    OPENSSL_cleanse(bytes_.data(), bytes_.size());
}

Result<SealKey> SealKey::from_bytes(std::span<const std::uint8_t> bytes) {
    if (bytes.size() != kSize) return fail("a seal key has {} bytes, not {}", kSize, bytes.size());
    SealKey key;
    std::copy(bytes.begin(), bytes.end(), key.bytes_.begin());
    key.id_ = STOCKADE_TRY(derive_key_id(key.bytes_));
    return key;
}

Result<SealKey> SealKey::generate() {
    SecretBytes bytes(kSize);
    STOCKADE_TRY_VOID(random_bytes(bytes.span()));
    return from_bytes(bytes.span());
}

Result<SealKey> SealKey::parse(std::span<const std::uint8_t> content, std::string_view what) {
    if (content.size() == kSize) return from_bytes(content);
    auto hex = content;
    if (hex.size() == kHexSize + 1 && hex.back() == '\n') hex = hex.first(kHexSize);
    if (hex.size() != kHexSize) return fail("{}: {} bytes; {}", what, content.size(), kKeyFileRule);
    std::array<std::uint8_t, kSize> bytes{};
    for (std::size_t i = 0; i < kSize; ++i) {
        const int hi = hex_digit_value(static_cast<char>(hex[2 * i]));
        const int lo = hex_digit_value(static_cast<char>(hex[2 * i + 1]));
        if (hi < 0 || lo < 0) {
            OPENSSL_cleanse(bytes.data(), bytes.size());
            return fail("{}: {} bytes that are not 64 hex digits; {}", what, content.size(),
                        kKeyFileRule);
        }
        bytes[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    auto key = from_bytes(bytes);
    OPENSSL_cleanse(bytes.data(), bytes.size());
    return key;
}

Result<SealKey> SealKey::load(const std::string& path) {
    auto fd = STOCKADE_TRY(open_file(path, O_RDONLY | O_NOCTTY));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return fail_sys(fmt::format("stat key file {}", path));
    if (!S_ISREG(st.st_mode)) return fail("key file {}: not a regular file", path);
    // The key opens every snapshot sealed with it: only its owner may read or replace it.
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        return fail(
            "key file {}: group or others may access it (mode {:04o}); "
            "`chmod 600 {}` makes it its owner's alone",
            path, st.st_mode & 07777, path);
    if (static_cast<std::uint64_t>(st.st_size) >= kReadLimit)
        return fail("key file {}: {} bytes; {}", path, st.st_size, kKeyFileRule);
    std::array<std::uint8_t, kReadLimit> buf{};
    std::size_t got = 0;
    while (got < buf.size()) {
        const ssize_t n = ::read(fd.get(), buf.data() + got, buf.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            OPENSSL_cleanse(buf.data(), buf.size());
            return fail_sys(fmt::format("read key file {}", path));
        }
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    auto key = parse(std::span(buf).first(got), fmt::format("key file {}", path));
    OPENSSL_cleanse(buf.data(), buf.size());
    return key;
}

Result<SnapshotId> new_snapshot_id() {
    SnapshotId id{};
    STOCKADE_TRY_VOID(random_bytes(id));
    return id;
}

}  // namespace stockade::snapshot
