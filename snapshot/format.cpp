#include "snapshot/format.hpp"

#include <algorithm>
#include <cstring>

#include "base/printable.hpp"

namespace stockade::snapshot {
namespace {

// Header fields: offset and size (README.md, "Header").
constexpr std::size_t kVersionAt = 8, kChunkSizeAt = 12, kSnapshotIdAt = 16, kSaltAt = 32,
                      kKeyIdAt = 48, kNameAt = 64;
static_assert(kNameAt + kPartNameField == kHeaderTagAt);
static_assert(kHeaderTagAt + kTagSize == kHeaderSize);

// Nonce domains: the first four bytes of a nonce say what it authenticates.
constexpr std::uint32_t kChunkDomain = 0, kHeaderDomain = 1;

constexpr std::array<std::uint8_t, 8> kChunkAadLabel = {'S', 'T', 'K', 'C', 'H', 'U', 'N', 'K'};

bool name_char(char c, bool first) {
    const bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    return alnum || (!first && (c == '.' || c == '_' || c == '-'));
}

template <std::size_t N>
void put_bytes(std::span<std::uint8_t> out, std::size_t at, const std::array<std::uint8_t, N>& v) {
    std::copy(v.begin(), v.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
}

template <std::size_t N>
std::array<std::uint8_t, N> get_bytes(std::span<const std::uint8_t> in, std::size_t at) {
    std::array<std::uint8_t, N> v{};
    std::copy_n(in.begin() + static_cast<std::ptrdiff_t>(at), N, v.begin());
    return v;
}

std::array<std::uint8_t, kNonceSize> nonce(std::uint32_t domain, std::uint64_t index) {
    std::array<std::uint8_t, kNonceSize> n{};
    put_le(std::span(n).first(4), domain);
    put_le(std::span(n).subspan(4), index);
    return n;
}

}  // namespace

Result<> check_part_name(std::string_view name) {
    if (name.empty() || name.size() >= kPartNameField)
        return fail("part name '{}': {} bytes, a part name has 1 to {}", printable(name),
                    name.size(), kPartNameField - 1);
    for (std::size_t i = 0; i < name.size(); ++i)
        if (!name_char(name[i], i == 0))
            return fail(
                "part name '{}': a part name is letters, digits, '.', '_' and '-', "
                "and begins with a letter or digit",
                printable(name));
    return {};
}

Result<> check_chunk_size(std::uint32_t chunk_size) {
    if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize)
        return fail("chunk size {}: outside {} to {} bytes", chunk_size, kMinChunkSize,
                    kMaxChunkSize);
    return {};
}

void put_le(std::span<std::uint8_t> out, std::uint64_t value) {
    for (auto& b : out) {
        b = static_cast<std::uint8_t>(value);
        value >>= 8;
    }
}

std::uint64_t get_le(std::span<const std::uint8_t> in) {
    std::uint64_t v = 0;
    for (std::size_t i = in.size(); i-- > 0;)
        v = v << 8 | in[i];
    return v;
}

void put_name(std::span<std::uint8_t, kPartNameField> out, std::string_view name) {
    std::fill(out.begin(), out.end(), 0);
    std::memcpy(out.data(), name.data(), std::min(name.size(), kPartNameField - 1));
}

Result<std::string> get_name(std::span<const std::uint8_t, kPartNameField> in,
                             std::string_view what) {
    const auto nul = std::find(in.begin(), in.end(), 0);
    std::string name(in.begin(), nul);
    // Every byte after the name is a NUL, so that a name has one encoding only.
    if (nul == in.end() || std::any_of(nul, in.end(), [](std::uint8_t b) { return b != 0; }))
        return fail("{}: malformed part name field", what);
    if (auto r = check_part_name(name); !r)
        return std::unexpected(std::move(r).error().context(what));
    return name;
}

HeaderBytes encode_header(const Header& h) {
    HeaderBytes out{};
    put_bytes(out, 0, kMagic);
    put_le(std::span(out).subspan(kVersionAt, 4), h.version);
    put_le(std::span(out).subspan(kChunkSizeAt, 4), h.chunk_size);
    put_bytes(out, kSnapshotIdAt, h.snapshot_id);
    put_bytes(out, kSaltAt, h.salt);
    put_bytes(out, kKeyIdAt, h.key_id);
    put_name(std::span(out).subspan<kNameAt, kPartNameField>(), h.part);
    put_bytes(out, kHeaderTagAt, h.tag);
    return out;
}

Result<Header> decode_header(const HeaderBytes& bytes, std::string_view what) {
    const std::span<const std::uint8_t> in(bytes);
    if (get_bytes<kMagic.size()>(in, 0) != kMagic)
        return fail("{}: not a sealed snapshot part (no STKSEAL magic)", what);
    Header h;
    h.version = static_cast<std::uint32_t>(get_le(in.subspan(kVersionAt, 4)));
    if (h.version != kFormatVersion)
        return fail("{}: sealed in format version {}; this stockade reads version {}", what,
                    h.version, kFormatVersion);
    h.chunk_size = static_cast<std::uint32_t>(get_le(in.subspan(kChunkSizeAt, 4)));
    if (auto r = check_chunk_size(h.chunk_size); !r)
        return std::unexpected(std::move(r).error().context(fmt::format("{}: header", what)));
    h.snapshot_id = get_bytes<16>(in, kSnapshotIdAt);
    h.salt = get_bytes<16>(in, kSaltAt);
    h.key_id = get_bytes<16>(in, kKeyIdAt);
    h.part = STOCKADE_TRY(
        get_name(in.subspan<kNameAt, kPartNameField>(), fmt::format("{}: header", what)));
    h.tag = get_bytes<kTagSize>(in, kHeaderTagAt);
    return h;
}

std::uint64_t chunk_count(std::uint64_t plaintext_size, std::uint32_t chunk_size) {
    return plaintext_size == 0 ? 1 : (plaintext_size - 1) / chunk_size + 1;
}

std::uint64_t chunk_offset(std::uint32_t chunk_size, std::uint64_t index) {
    return kHeaderSize + index * (std::uint64_t{chunk_size} + kTagSize);
}

std::uint64_t sealed_size(std::uint64_t plaintext_size, std::uint32_t chunk_size) {
    return kHeaderSize + plaintext_size + chunk_count(plaintext_size, chunk_size) * kTagSize;
}

std::array<std::uint8_t, kNonceSize> header_nonce() {
    return nonce(kHeaderDomain, 0);
}

std::array<std::uint8_t, kNonceSize> chunk_nonce(std::uint64_t index) {
    return nonce(kChunkDomain, index);
}

std::array<std::uint8_t, kChunkAadSize> chunk_aad(const ChunkPlace& p) {
    std::array<std::uint8_t, kChunkAadSize> out{};
    put_bytes(out, 0, kChunkAadLabel);
    put_bytes(out, 8, p.snapshot_id);
    put_bytes(out, 24, p.salt);
    put_name(std::span(out).subspan<40, kPartNameField>(), p.part);
    put_le(std::span(out).subspan(72, 8), p.index);
    put_le(std::span(out).subspan(80, 4), p.length);
    out[84] = p.final ? 1 : 0;
    return out;
}

}  // namespace stockade::snapshot
