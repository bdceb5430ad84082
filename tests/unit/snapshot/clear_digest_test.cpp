// Unsealed snapshots: each part's length and SHA-256, as the clear manifest records them,
// and the check that refuses a part that is not what was recorded.
#include <gtest/gtest.h>

#include "base/sha256.hpp"
#include "sealed_files.hpp"
#include "snapshot/clear_digest.hpp"

namespace stockade::snapshot {
namespace {

using test::Bytes;

TEST(ClearDigest, IsTheLengthAndSha256OfTheFile) {
    const Bytes data = test::pattern(3 << 20 | 5);  // more than sha256_fd's 1 MiB reads
    const UniqueFd fd = test::file_with(data);
    auto d = digest_clear_part(fd.get(), "memory");
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->size, data.size());
    EXPECT_EQ(d->sha256, sha256(data));
    EXPECT_TRUE(check_clear_part(fd.get(), "memory", *d));
    const UniqueFd empty = test::memfd();
    d = digest_clear_part(empty.get(), "state");
    ASSERT_TRUE(d);
    EXPECT_EQ(to_hex(d->sha256),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(ClearDigest, RefusesAModifiedShortOrLongPart) {
    const Bytes data = test::pattern(5000);
    const ClearDigest expected{.size = data.size(), .sha256 = sha256(data)};

    Bytes b = data;
    b[4321] ^= 4;
    UniqueFd fd = test::file_with(b);
    auto r = check_clear_part(fd.get(), "memory", expected);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message,
              fmt::format("memory: modified (SHA-256 {}, the manifest records {})",
                          to_hex(sha256(b)), to_hex(expected.sha256)));

    fd = test::file_with(std::span(data).first(4000));
    r = check_clear_part(fd.get(), "memory", expected);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "memory: truncated (4000 of the 5000 bytes the manifest records)");

    b = data;
    b.push_back(0);
    fd = test::file_with(b);
    r = check_clear_part(fd.get(), "memory", expected);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().message, "memory: 1 bytes more than the manifest records (5000)");
}

}  // namespace
}  // namespace stockade::snapshot
