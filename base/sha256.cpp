#include "base/sha256.hpp"

// OpenSSL's SHA-256 functions themselves rather than the EVP interface: EVP fetches the
// digest through the provider framework, which links (into a static stockade) and relocates
// at every start some 300 KiB of tables for every algorithm of the default provider, and
// each sandbox would carry them resident. The functions are deprecated in OpenSSL 3 in
// favour of EVP, not withdrawn, and compute the same digest with the same assembly.
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <tuple>
#include <vector>

namespace stockade {
namespace {

constexpr std::size_t kChunk = 1u << 20;

}  // namespace

Sha256 sha256(std::span<const std::uint8_t> data) {
    static_assert(SHA256_DIGEST_LENGTH == std::tuple_size_v<Sha256>);
    Sha256 out{};
    SHA256_CTX ctx;
    if (SHA256_Init(&ctx) != 1 || SHA256_Update(&ctx, data.data(), data.size()) != 1 ||
        SHA256_Final(out.data(), &ctx) != 1)
        std::abort();
    return out;
}

Sha256 sha256(std::string_view data) {
    return sha256(std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
}

Result<Sha256> sha256_fd(int fd, std::string_view what) {
    SHA256_CTX ctx;
    if (SHA256_Init(&ctx) != 1) return fail("SHA-256 of {}: SHA256_Init failed", what);
    std::vector<std::uint8_t> buf(kChunk);
    off_t offset = 0;
    for (;;) {
        ssize_t n = ::pread(fd, buf.data(), buf.size(), offset);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_sys(fmt::format("SHA-256 of {}: read at offset {}", what, offset));
        }
        if (n == 0) break;
        if (SHA256_Update(&ctx, buf.data(), static_cast<std::size_t>(n)) != 1)
            return fail("SHA-256 of {}: SHA256_Update failed", what);
        offset += n;
    }
    Sha256 out{};
    if (SHA256_Final(out.data(), &ctx) != 1)
        return fail("SHA-256 of {}: SHA256_Final failed", what);
    return out;
}

std::string to_hex(std::span<const std::uint8_t> bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(bytes.size() * 2);
    for (std::uint8_t b : bytes) {
        out.push_back(kDigits[b >> 4]);
        out.push_back(kDigits[b & 0xf]);
    }
    return out;
}

int hex_digit_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<Sha256> parse_sha256_hex(std::string_view hex) {
    Sha256 out{};
    if (hex.size() != out.size() * 2) return std::nullopt;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const int hi = hex_digit_value(hex[2 * i]), lo = hex_digit_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return out;
}

}  // namespace stockade
