// Sealed parts that nobody touched: every size around a chunk boundary comes back whole,
// however the writer was fed, in order and by random access.
#include <fcntl.h>
#include <gtest/gtest.h>

#include <numeric>

#include "base/sha256.hpp"
#include "sealed_files.hpp"
#include "snapshot/sealed_reader.hpp"

namespace stockade::snapshot {
namespace {

using test::Bytes;

using test::kChunk;

void expect_round_trip(std::size_t size, std::size_t piece) {
    SCOPED_TRACE(testing::Message() << size << " bytes in pieces of " << piece);
    const SealKey key = test::key_of(1);
    const SnapshotId id = test::id_of(0xa1);
    const Bytes plain = test::pattern(size, static_cast<std::uint32_t>(size));
    const test::Sealed s = test::seal(key, id, "memory", plain, kChunk, piece);

    EXPECT_EQ(s.record.name, "memory");
    EXPECT_EQ(s.record.chunk_size, kChunk);
    EXPECT_EQ(s.record.size, size);
    EXPECT_EQ(s.record.chunk_count, size == 0 ? 1 : (size + kChunk - 1) / kChunk);
    EXPECT_EQ(s.record.sha256, sha256(plain));
    EXPECT_EQ(s.bytes.size(), sealed_size(size, kChunk));

    // On its own, and against its record.
    const UniqueFd fd = test::file_with(s.bytes);
    auto alone = SealedReader::open(fd.get(), key, id, "memory");
    ASSERT_TRUE(alone) << alone.error().message;
    EXPECT_EQ(alone->chunk_count(), s.record.chunk_count);
    EXPECT_EQ(alone->plaintext_size(), size);
    auto all = alone->read_all(size);
    ASSERT_TRUE(all) << all.error().message;
    EXPECT_EQ(*all, plain);
    auto recorded = SealedReader::open(fd.get(), key, id, s.record);
    ASSERT_TRUE(recorded) << recorded.error().message;
    auto verified = recorded->verify_all();
    EXPECT_TRUE(verified) << verified.error().message;
    all = recorded->read_all(size);
    ASSERT_TRUE(all) << all.error().message;
    EXPECT_EQ(*all, plain);
    if (size > 0) {
        EXPECT_FALSE(recorded->read_all(size - 1));
    }
}

TEST(SealedPart, RoundTripsEverySizeAroundAChunk) {
    for (std::size_t size : {0u, 1u, kChunk - 1, kChunk, kChunk + 1, 2 * kChunk, 37 * kChunk + 5})
        for (std::size_t piece : {0u, 1u, 13u, 64u, 100u})
            expect_round_trip(size, piece);
}

TEST(SealedPart, RoundTripsWithTheDefaultChunkSize) {
    const SealKey key = test::key_of(2);
    const SnapshotId id = test::id_of(2);
    const Bytes plain = test::pattern(3 * kDefaultChunkSize + 3, 9);
    const test::Sealed s = test::seal(key, id, "memory", plain, kDefaultChunkSize, 5000);
    EXPECT_EQ(s.record.chunk_count, 4u);
    const UniqueFd fd = test::file_with(s.bytes);
    auto r = SealedReader::open(fd.get(), key, id, s.record);
    ASSERT_TRUE(r) << r.error().message;
    auto all = r->read_all(plain.size());
    ASSERT_TRUE(all) << all.error().message;
    EXPECT_EQ(*all, plain);
}

TEST(SealedPart, ReadsAnyChunkInAnyOrder) {
    const SealKey key = test::key_of(3);
    const SnapshotId id = test::id_of(3);
    const Bytes plain = test::pattern(8 * kChunk + 20);
    const test::Sealed s = test::seal(key, id, "memory", plain);
    const UniqueFd fd = test::file_with(s.bytes);
    auto r = SealedReader::open(fd.get(), key, id, s.record);
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->chunk_count(), 9u);
    std::vector<std::uint64_t> order(9);
    std::iota(order.begin(), order.end(), 0);
    std::reverse(order.begin(), order.end());
    std::swap(order[1], order[6]);
    for (int round = 0; round < 2; ++round) {
        for (std::uint64_t i : order) {
            Bytes out(kChunk, 0xee);
            auto n = r->read_chunk(i, out);
            ASSERT_TRUE(n) << n.error().message;
            EXPECT_EQ(*n, i == 8 ? 20u : kChunk);
            EXPECT_EQ(*n, r->chunk_length(i));
            EXPECT_TRUE(std::equal(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(*n),
                                   plain.begin() + static_cast<std::ptrdiff_t>(i * kChunk)))
                << "chunk " << i;
        }
    }
    Bytes out(kChunk);
    auto past = r->read_chunk(9, out);
    ASSERT_FALSE(past);
    EXPECT_EQ(past.error().message, "memory: chunk 9 of 9: no such chunk");
    Bytes small(kChunk - 1);
    EXPECT_FALSE(r->read_chunk(0, small));
    auto last = r->read_chunk(8, std::span(small).first(20));
    EXPECT_TRUE(last) << last.error().message;
}

TEST(SealedPart, TheWriterRefusesBadNamesAndChunkSizes) {
    const SealKey key = test::key_of(4);
    const UniqueFd fd = test::memfd();
    for (std::string_view name :
         {"", ".state", "-x", "a/b", "../memory", "dísk", "abcdefghijklmnopqrstuvwxyz012345"}) {
        auto w = SealedWriter::create(fd.get(), key, test::id_of(4), name);
        ASSERT_FALSE(w) << name;
        EXPECT_NE(w.error().message.find("part name"), std::string::npos) << w.error().message;
    }
    EXPECT_TRUE(
        SealedWriter::create(fd.get(), key, test::id_of(4), "abcdefghijklmnopqrstuvwxyz01234"));
    EXPECT_TRUE(SealedWriter::create(fd.get(), key, test::id_of(4), "disk-vda.0_x"));
    for (std::uint32_t chunk : {0u, 1u, kMinChunkSize - 1, kMaxChunkSize + 1}) {
        auto w = SealedWriter::create(fd.get(), key, test::id_of(4), "state", chunk);
        ASSERT_FALSE(w) << chunk;
        EXPECT_NE(w.error().message.find("chunk size"), std::string::npos);
    }
}

TEST(SealedPart, AWriterIsWrittenOnceFrontToBack) {
    const SealKey key = test::key_of(5);
    const UniqueFd fd = test::memfd();
    auto w = SealedWriter::create(fd.get(), key, test::id_of(5), "state", kChunk);
    ASSERT_TRUE(w);
    const Bytes data = test::pattern(10);
    EXPECT_TRUE(w->write(data));
    EXPECT_TRUE(w->finish());
    EXPECT_FALSE(w->write(data));
    EXPECT_FALSE(w->finish());
    // A write that fails (here: a descriptor that is not open for writing) poisons it too.
    const UniqueFd ro(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    auto bad = SealedWriter::create(ro.get(), key, test::id_of(5), "state", kChunk);
    EXPECT_FALSE(bad);
}

TEST(SealedPart, SealingAPartTwiceNeverReusesAKeystream) {
    // The same plaintext, snapshot, part and key: each copy draws its own salt, so its own
    // part key, and no two ciphertexts share a keystream.
    const SealKey key = test::key_of(6);
    const Bytes plain(3 * kChunk, 0);
    const test::Sealed a = test::seal(key, test::id_of(6), "memory", plain);
    const test::Sealed b = test::seal(key, test::id_of(6), "memory", plain);
    EXPECT_NE(a.record.salt, b.record.salt);
    EXPECT_EQ(a.record.sha256, b.record.sha256);
    ASSERT_EQ(a.bytes.size(), b.bytes.size());
    for (std::uint64_t i = 0; i < 3; ++i) {
        const auto at = static_cast<std::ptrdiff_t>(test::at_chunk(i));
        EXPECT_FALSE(
            std::equal(a.bytes.begin() + at, a.bytes.begin() + at + kChunk, b.bytes.begin() + at))
            << "chunk " << i;
    }
}

}  // namespace
}  // namespace stockade::snapshot
