// What stockade-seal does with its descriptors (snapshot/seal_stream.hpp): a part sealed as it
// streams in from a pipe and refused past its limit; a part opened into a file with holes
// where its chunks are zeros; records as the JSON line the helper prints, refused when they
// are not one.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "sealed_files.hpp"
#include "snapshot/manifest.hpp"
#include "snapshot/seal_stream.hpp"

namespace stockade::snapshot {
namespace {

using test::Bytes;

TEST(SealStream, APartStreamedThroughAPipeOpensIntoAFileWithItsHoles) {
    const SealKey key = test::key_of(7);
    const SnapshotId id = test::id_of(9);
    // 3 chunks of data around 8 chunks of zeros: the zeros stay holes when opened.
    Bytes data = test::pattern(kDefaultChunkSize * 11 + 100);
    std::fill(data.begin() + kDefaultChunkSize * 2, data.begin() + kDefaultChunkSize * 10, 0);
    int p[2];
    ASSERT_EQ(::pipe(p), 0);
    std::thread writer([&] {
        EXPECT_TRUE(write_all(p[1], data));
        ::close(p[1]);
    });
    const UniqueFd sealed = test::memfd();
    auto record = seal_stream(p[0], sealed.get(), key, id, "memory", data.size());
    writer.join();
    ::close(p[0]);
    ASSERT_TRUE(record) << record.error().message;
    EXPECT_EQ(record->size, data.size());
    EXPECT_EQ(record->sha256, sha256(data));

    auto back = record_from_json(record_to_json(*record));
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, *record);

    auto reader = SealedReader::open(sealed.get(), key, id, *record);
    ASSERT_TRUE(reader) << reader.error().message;
    const UniqueFd plain = test::memfd();
    ASSERT_TRUE(unseal_into(*reader, plain.get()));
    EXPECT_EQ(test::contents(plain.get()), data);
    struct stat st {};
    ASSERT_EQ(::fstat(plain.get(), &st), 0);
    EXPECT_LE(st.st_blocks * 512, static_cast<off_t>(kDefaultChunkSize * 3 + 4096))
        << "zero chunks are holes";
}

TEST(SealStream, MoreThanThePartCanBeIsRefused) {
    const SealKey key = test::key_of(7);
    const UniqueFd in = test::file_with(test::pattern(1000));
    const UniqueFd out = test::memfd();
    ASSERT_EQ(::lseek(in.get(), 0, SEEK_SET), 0);
    auto r = seal_stream(in.get(), out.get(), key, test::id_of(1), "state", 999);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("state: more than the 999 bytes"), std::string::npos)
        << r.error().message;
    ASSERT_EQ(::lseek(in.get(), 0, SEEK_SET), 0);
    EXPECT_TRUE(seal_stream(in.get(), out.get(), key, test::id_of(1), "state", 1000));
}

TEST(SealStream, RecordsThatAreNotOneAreRefused) {
    PartRecord r;
    r.name = "disk-vda";
    r.size = 70000;
    r.chunk_count = chunk_count(r.size, r.chunk_size);
    r.salt.fill(0xab);
    r.sha256.fill(0xcd);
    const std::string good = record_to_json(r);
    ASSERT_TRUE(record_from_json(good));
    auto refused = [](std::string text, std::string_view why) {
        auto got = record_from_json(text);
        ASSERT_FALSE(got) << text;
        EXPECT_NE(got.error().message.find(why), std::string::npos) << got.error().message;
    };
    auto with = [&](const std::string& from, const std::string& to) {
        std::string t = good;
        t.replace(t.find(from), from.size(), to);
        return t;
    };
    refused("[]", "not a JSON object");
    refused("{", "not a JSON object");
    refused(with("\"size\":70000", "\"size\":70001000000"), "chunks for");
    refused(with("\"name\":\"disk-vda\"", "\"name\":\"../x\""), "");
    refused(with("\"salt\":\"ab", "\"salt\":\"gb"), "salt");
    refused(with("\"chunk_size\":65536", "\"chunk_size\":3"), "");
    refused(with("\"sha256\"", "\"sha\""), "a part record");
    EXPECT_FALSE(parse_snapshot_id(std::string(31, '0')));
    EXPECT_TRUE(parse_snapshot_id(std::string(32, 'F')));
}

}  // namespace
}  // namespace stockade::snapshot
