#pragma once
// What the snapshot tests share: parts sealed into memfds, their bytes, and files made from
// altered bytes.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/io.hpp"
#include "base/unique_fd.hpp"
#include "snapshot/format.hpp"
#include "snapshot/seal_key.hpp"
#include "snapshot/sealed_writer.hpp"

namespace stockade::snapshot::test {

using Bytes = std::vector<std::uint8_t>;

// The chunk size the tests seal with: small, so that a few bytes span several chunks.
inline constexpr std::uint32_t kChunk = 64;

inline UniqueFd memfd() {
    UniqueFd fd(::memfd_create("sealed-part", MFD_CLOEXEC));
    EXPECT_TRUE(fd.valid());
    return fd;
}

inline Bytes contents(int fd) {
    struct stat st {};
    EXPECT_EQ(::fstat(fd, &st), 0);
    Bytes out(static_cast<std::size_t>(st.st_size));
    EXPECT_TRUE(pread_exact(fd, out, 0, "test file"));
    return out;
}

inline UniqueFd file_with(std::span<const std::uint8_t> bytes) {
    UniqueFd fd = memfd();
    EXPECT_TRUE(write_all(fd.get(), bytes));
    return fd;
}

// Bytes that differ from chunk to chunk and from seed to seed.
inline Bytes pattern(std::size_t size, std::uint32_t seed = 1) {
    Bytes out(size);
    std::uint32_t x = seed * 2654435761u + 12345;
    for (auto& b : out) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b = static_cast<std::uint8_t>(x);
    }
    return out;
}

inline SealKey key_of(std::uint8_t fill) {
    const Bytes material(SealKey::kSize, fill);
    auto key = SealKey::from_bytes(material);
    EXPECT_TRUE(key) << key.error().message;
    return std::move(*key);
}

inline SnapshotId id_of(std::uint8_t fill) {
    SnapshotId id;
    id.fill(fill);
    return id;
}

struct Sealed {
    Bytes bytes;  // the sealed file
    PartRecord record;
};

// Seals `plaintext` as `part`, handing it to the writer in pieces of `piece` bytes (all at
// once when 0).
inline Sealed seal(const SealKey& key, const SnapshotId& id, std::string_view part,
                   std::span<const std::uint8_t> plaintext, std::uint32_t chunk_size = 64,
                   std::size_t piece = 0) {
    UniqueFd fd = memfd();
    auto w = SealedWriter::create(fd.get(), key, id, part, chunk_size);
    EXPECT_TRUE(w) << w.error().message;
    if (!w) return {};
    if (piece == 0) piece = plaintext.size() + 1;
    for (std::size_t at = 0; at < plaintext.size(); at += piece) {
        auto r = w->write(plaintext.subspan(at, std::min(piece, plaintext.size() - at)));
        EXPECT_TRUE(r) << r.error().message;
    }
    auto record = w->finish();
    EXPECT_TRUE(record) << record.error().message;
    if (!record) return {};
    return {contents(fd.get()), *record};
}

// Where chunk `index` of a part sealed in chunks of `chunk_size` lies, as stored.
inline std::size_t at_chunk(std::uint64_t index, std::uint32_t chunk_size = 64) {
    return static_cast<std::size_t>(chunk_offset(chunk_size, index));
}

}  // namespace stockade::snapshot::test
