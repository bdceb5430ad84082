// Every way a sealed part can be changed is refused, on its own and against the manifest's
// record, with an error that says which part, which chunk, and what failed.
#include <gtest/gtest.h>

#include <functional>

#include "sealed_files.hpp"
#include "snapshot/sealed_reader.hpp"

namespace stockade::snapshot {
namespace {

using test::Bytes;

using test::kChunk;
constexpr std::size_t kStored = kChunk + kTagSize;  // a full chunk as stored

class SealedTampering : public ::testing::Test {
  protected:
    // Opens `bytes` as `part` and reads it all: the first error, or "" when it passed.
    std::string refusal(const Bytes& bytes, std::string_view part = "memory",
                        const PartRecord* record = nullptr, const SealKey* key = nullptr,
                        const SnapshotId* id = nullptr) {
        const UniqueFd fd = test::file_with(bytes);
        const SealKey& k = key ? *key : key_;
        const SnapshotId& i = id ? *id : id_;
        auto r = record ? SealedReader::open(fd.get(), k, i, *record)
                        : SealedReader::open(fd.get(), k, i, part);
        if (!r) return r.error().message;
        auto v = r->verify_all();
        return v ? "" : v.error().message;
    }
    // Refused on its own with `alone`, and against the record with `recorded`.
    void expect_refused(const Bytes& bytes, std::string_view alone, std::string_view recorded) {
        EXPECT_EQ(refusal(bytes), alone);
        EXPECT_EQ(refusal(bytes, "memory", &sealed_.record), recorded);
    }

    const SealKey key_ = test::key_of(0x11);
    const SnapshotId id_ = test::id_of(0x22);
    const Bytes plain_ = test::pattern(4 * kChunk + 10);  // five chunks, the last of 10 bytes
    const test::Sealed sealed_ = test::seal(key_, id_, "memory", plain_);
};

TEST_F(SealedTampering, TheUntouchedPartPasses) {
    EXPECT_EQ(refusal(sealed_.bytes), "");
    EXPECT_EQ(refusal(sealed_.bytes, "memory", &sealed_.record), "");
}

TEST_F(SealedTampering, EveryBitOfTheHeaderIsChecked) {
    for (std::size_t bit = 0; bit < kHeaderSize * 8; ++bit) {
        Bytes b = sealed_.bytes;
        b[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
        const std::size_t at = bit / 8;
        const std::string alone = refusal(b), recorded = refusal(b, "memory", &sealed_.record);
        ASSERT_NE(alone, "") << "bit " << bit;
        EXPECT_EQ(alone, recorded) << "bit " << bit;
        std::string_view expected = "memory: header";  // id, salt, name, chunk size, tag
        if (at < 8)
            expected = "memory: not a sealed snapshot part (no STKSEAL magic)";
        else if (at < 12)
            expected = "memory: sealed in format version";
        else if (at >= 48 && at < 64)
            expected = "memory: sealed with a different key";
        EXPECT_EQ(alone.substr(0, expected.size()), expected) << "bit " << bit << ": " << alone;
    }
    Bytes b = sealed_.bytes;
    b[kHeaderTagAt + 3] ^= 0x40;
    EXPECT_EQ(refusal(b), "memory: header: authentication failed (modified)");
    b = sealed_.bytes;
    b[20] ^= 1;  // the snapshot id: the header's claims are checked before they are believed
    EXPECT_EQ(refusal(b), "memory: header: authentication failed (modified)");
}

TEST_F(SealedTampering, EveryBitOfASmallPartIsChecked) {
    const Bytes plain = test::pattern(kChunk + 7, 3);
    const test::Sealed s = test::seal(key_, id_, "state", plain);
    for (std::size_t bit = 0; bit < s.bytes.size() * 8; ++bit) {
        Bytes b = s.bytes;
        b[bit / 8] ^= static_cast<std::uint8_t>(1u << (bit % 8));
        ASSERT_NE(refusal(b, "state"), "") << "bit " << bit;
        ASSERT_NE(refusal(b, "state", &s.record), "") << "bit " << bit;
    }
}

TEST_F(SealedTampering, AFlippedCiphertextBitNamesItsChunk) {
    for (std::uint64_t chunk = 0; chunk < 5; ++chunk) {
        Bytes b = sealed_.bytes;
        b[test::at_chunk(chunk) + 5] ^= 0x08;
        std::string m = fmt::format(
            "memory: chunk {} of 5: authentication failed (modified, moved, or from another "
            "snapshot)",
            chunk);
        // On its own, the last chunk might as well have been cut short.
        std::string alone = chunk < 4 ? m
                                      : "memory: chunk 4 of 5: authentication failed (modified, "
                                        "moved, from another snapshot, or truncated)";
        expect_refused(b, alone, m);
    }
    // The other chunks still read: the damage is confined to its chunk.
    Bytes b = sealed_.bytes;
    b[test::at_chunk(2) + 5] ^= 0x08;
    const UniqueFd fd = test::file_with(b);
    auto r = SealedReader::open(fd.get(), key_, id_, sealed_.record);
    ASSERT_TRUE(r) << r.error().message;
    Bytes out(kChunk, 0x5a);
    EXPECT_TRUE(r->read_chunk(3, out));
    auto bad = r->read_chunk(2, out);
    EXPECT_FALSE(bad);
    // Nothing of the refused chunk is handed out: `out` holds no plaintext.
    EXPECT_EQ(out, Bytes(kChunk, 0));
}

TEST_F(SealedTampering, AFlippedTagBitNamesItsChunk) {
    for (std::uint64_t chunk : {0u, 3u}) {
        Bytes b = sealed_.bytes;
        b[test::at_chunk(chunk) + kChunk + 15] ^= 0x80;
        const std::string m = fmt::format(
            "memory: chunk {} of 5: authentication failed (modified, moved, or from another "
            "snapshot)",
            chunk);
        expect_refused(b, m, m);
    }
    Bytes b = sealed_.bytes;
    b[test::at_chunk(4) + 10] ^= 1;  // the final chunk's tag begins after its 10 bytes
    EXPECT_EQ(refusal(b, "memory", &sealed_.record),
              "memory: chunk 4 of 5: authentication failed (modified, moved, or from another "
              "snapshot)");
}

TEST_F(SealedTampering, TruncationInsideAChunkIsRefused) {
    Bytes b(sealed_.bytes.begin(),
            sealed_.bytes.begin() + static_cast<std::ptrdiff_t>(test::at_chunk(3) + 30));
    expect_refused(
        b,
        "memory: chunk 3 of 4: authentication failed (modified, moved, from another snapshot, "
        "or truncated)",
        fmt::format("memory: truncated: 3 of 5 chunks present ({} of {} bytes)", b.size(),
                    sealed_.bytes.size()));
    // Inside the last chunk's tag.
    b.assign(sealed_.bytes.begin(), sealed_.bytes.end() - 17);
    EXPECT_EQ(refusal(b), "memory: truncated inside chunk 4 (9 bytes of its tag)");
}

TEST_F(SealedTampering, TruncationAtAChunkBoundaryIsRefused) {
    for (std::uint64_t keep : {1u, 3u, 4u}) {
        Bytes b(sealed_.bytes.begin(),
                sealed_.bytes.begin() + static_cast<std::ptrdiff_t>(test::at_chunk(keep)));
        expect_refused(
            b,
            fmt::format("memory: truncated after chunk {}: the file's last chunk is not the "
                        "part's final one",
                        keep - 1),
            fmt::format("memory: truncated: {} of 5 chunks present ({} of {} bytes)", keep,
                        b.size(), sealed_.bytes.size()));
    }
    const Bytes header(sealed_.bytes.begin(), sealed_.bytes.begin() + kHeaderSize);
    expect_refused(header, "memory: truncated: no chunk after the header",
                   fmt::format("memory: truncated: 0 of 5 chunks present (112 of {} bytes)",
                               sealed_.bytes.size()));
    const Bytes cut(sealed_.bytes.begin(), sealed_.bytes.begin() + 50);
    expect_refused(cut,
                   "memory: not a sealed snapshot part (50 bytes, shorter than its 112-byte "
                   "header)",
                   "memory: not a sealed snapshot part (50 bytes, shorter than its 112-byte "
                   "header)");
    // An empty part is one empty, final chunk: cutting it to its header is refused too.
    const test::Sealed empty = test::seal(key_, id_, "memory", {});
    EXPECT_EQ(empty.bytes.size(), kHeaderSize + kTagSize);
    EXPECT_EQ(refusal(Bytes(empty.bytes.begin(), empty.bytes.begin() + kHeaderSize)),
              "memory: truncated: no chunk after the header");
}

TEST_F(SealedTampering, DataAfterTheFinalChunkIsRefused) {
    // A part of whole chunks, with a copy of its first chunk appended.
    const test::Sealed s = test::seal(key_, id_, "memory", test::pattern(4 * kChunk, 5));
    Bytes b = s.bytes;
    b.insert(b.end(), s.bytes.begin() + kHeaderSize, s.bytes.begin() + kHeaderSize + kStored);
    EXPECT_EQ(refusal(b), "memory: chunk 3 of 5 is the part's final chunk, yet chunks follow it");
    EXPECT_EQ(refusal(b, "memory", &s.record),
              fmt::format("memory: 80 bytes more than the manifest records (4 chunks, {} bytes)",
                          s.bytes.size()));
}

TEST_F(SealedTampering, SwappedChunksAreRefused) {
    Bytes b = sealed_.bytes;
    std::swap_ranges(b.begin() + static_cast<std::ptrdiff_t>(test::at_chunk(1)),
                     b.begin() + static_cast<std::ptrdiff_t>(test::at_chunk(2)),
                     b.begin() + static_cast<std::ptrdiff_t>(test::at_chunk(2)));
    const std::string m =
        "memory: chunk 1 of 5: authentication failed (modified, moved, or from another snapshot)";
    expect_refused(b, m, m);
    // The chunks in their own places still read.
    const UniqueFd fd = test::file_with(b);
    auto r = SealedReader::open(fd.get(), key_, id_, sealed_.record);
    ASSERT_TRUE(r);
    Bytes out(kChunk);
    EXPECT_TRUE(r->read_chunk(0, out));
    EXPECT_TRUE(r->read_chunk(3, out));
    auto two = r->read_chunk(2, out);
    ASSERT_FALSE(two);
    EXPECT_EQ(two.error().message,
              "memory: chunk 2 of 5: authentication failed (modified, moved, or from another "
              "snapshot)");
}

TEST_F(SealedTampering, AChunkFromAnotherSnapshotIsRefused) {
    // Same key, same part, same plaintext, same index: only the snapshot differs.
    const test::Sealed other = test::seal(key_, test::id_of(0x33), "memory", plain_);
    // And another copy of this very part (same snapshot, its own salt).
    const test::Sealed copy = test::seal(key_, id_, "memory", plain_);
    for (const test::Sealed* donor : {&other, &copy}) {
        Bytes b = sealed_.bytes;
        const auto at = static_cast<std::ptrdiff_t>(test::at_chunk(2));
        std::copy(donor->bytes.begin() + at, donor->bytes.begin() + at + kStored, b.begin() + at);
        const std::string m =
            "memory: chunk 2 of 5: authentication failed (modified, moved, or from another "
            "snapshot)";
        expect_refused(b, m, m);
    }
    // A whole other copy is authentic on its own, but not the copy the manifest records.
    EXPECT_EQ(refusal(copy.bytes), "");
    EXPECT_EQ(refusal(copy.bytes, "memory", &sealed_.record),
              "memory: not the copy of this part that the manifest records (sealed separately: "
              "its salt differs)");
    // A header from one copy before the chunks of the other.
    Bytes spliced = copy.bytes;
    std::copy(sealed_.bytes.begin(), sealed_.bytes.begin() + kHeaderSize, spliced.begin());
    expect_refused(spliced,
                   "memory: chunk 0 of 5: authentication failed (modified, moved, or from another "
                   "snapshot)",
                   "memory: chunk 0 of 5: authentication failed (modified, moved, or from another "
                   "snapshot)");
}

TEST_F(SealedTampering, APartFromAnotherSnapshotIsRefused) {
    const SnapshotId other_id = test::id_of(0x33);
    const test::Sealed other = test::seal(key_, other_id, "memory", plain_);
    const std::string m =
        "memory: from another snapshot (33333333333333333333333333333333, not "
        "22222222222222222222222222222222)";
    EXPECT_EQ(refusal(other.bytes), m);
    PartRecord record = other.record;  // even were the record to match it
    EXPECT_EQ(refusal(other.bytes, "memory", &record), m);
}

TEST_F(SealedTampering, ARenamedPartIsRefused) {
    const test::Sealed state = test::seal(key_, id_, "state", plain_);
    EXPECT_EQ(refusal(state.bytes, "memory"), "memory: the file holds part 'state', not 'memory'");
    PartRecord record = state.record;
    record.name = "memory";
    EXPECT_EQ(refusal(state.bytes, "memory", &record),
              "memory: the file holds part 'state', not 'memory'");
}

TEST_F(SealedTampering, AWrongKeyIsToldApartFromTampering) {
    const SealKey other = test::key_of(0x12);
    const std::string alone = refusal(sealed_.bytes, "memory", nullptr, &other);
    EXPECT_EQ(alone.rfind("memory: sealed with a different key (the header's key id is ", 0), 0u)
        << alone;
    EXPECT_EQ(refusal(sealed_.bytes, "memory", &sealed_.record, &other), alone);
}

TEST_F(SealedTampering, WhatIsNoSealedPartIsRefused) {
    EXPECT_EQ(refusal(Bytes(400, 0)), "memory: not a sealed snapshot part (no STKSEAL magic)");
    Bytes b = sealed_.bytes;
    b[8] = 2;
    EXPECT_EQ(refusal(b), "memory: sealed in format version 2; this stockade reads version 1");
    b = sealed_.bytes;
    b[12] = 0, b[13] = 0, b[14] = 0, b[15] = 0x10;  // 256 MiB chunks
    EXPECT_EQ(refusal(b), "memory: header: chunk size 268435456: outside 64 to 16777216 bytes");
    b = sealed_.bytes;
    b[64 + 10] = 'x';  // after the name's NUL
    EXPECT_EQ(refusal(b), "memory: header: malformed part name field");
}

}  // namespace
}  // namespace stockade::snapshot
