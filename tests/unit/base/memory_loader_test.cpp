// The lazy restore's protocol between a sandbox and its memory loader: the layout the loader
// takes from a sandbox that may be its guest's, and the loader's lines.
#include "base/memory_loader.hpp"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace stockade::memory_loader {
namespace {

constexpr std::uint64_t kPage = 4096;

std::vector<std::uint8_t> layout(std::vector<Region> regions) {
    return encode_layout(regions);
}

TEST(MemoryLoaderLayout, RoundTripsRegionsThatCoverThePart) {
    const std::vector<Region> regions{{0x7f0000000000, 3 * kPage, 0},
                                      {0x7f1000000000, 5 * kPage, 3 * kPage}};
    auto got = decode_layout(layout(regions), 8 * kPage, kPage);
    ASSERT_TRUE(got) << got.error().message;
    ASSERT_EQ(got->size(), 2u);
    EXPECT_EQ((*got)[1].host, 0x7f1000000000u);
    EXPECT_EQ((*got)[1].size, 5 * kPage);
    EXPECT_EQ((*got)[1].offset, 3 * kPage);
}

TEST(MemoryLoaderLayout, RefusesWhatDoesNotCoverThePartExactly) {
    const auto part = 8 * kPage;
    auto refused = [&](std::vector<Region> r, std::string_view why) {
        auto got = decode_layout(layout(std::move(r)), part, kPage);
        ASSERT_FALSE(got) << why;
        EXPECT_NE(got.error().message.find("the memory layout"), std::string::npos);
    };
    refused({{0x10000, 7 * kPage, 0}}, "short of the part");
    refused({{0x10000, 9 * kPage, 0}}, "past the part");
    refused({{0x10000, 4 * kPage, 0}, {0x40000, 4 * kPage, 5 * kPage}}, "a gap in the offsets");
    refused({{0x10000, 4 * kPage, kPage}, {0x40000, 4 * kPage, 0}}, "offsets out of order");
    refused({{0x10000, 4 * kPage, 0}, {0x12000, 4 * kPage, 4 * kPage}}, "overlapping mappings");
    refused({{0x10001, 8 * kPage, 0}}, "an unaligned address");
    refused({{0x10000, 8 * kPage - 1, 0}}, "not whole pages");
    refused({{0x10000, 0, 0}, {0x20000, 8 * kPage, 0}}, "an empty region");
    refused({{UINT64_MAX - 3 * kPage + 1, 8 * kPage, 0}}, "wrapping around");
    refused({}, "no region");
    std::vector<Region> many;
    for (std::uint64_t i = 0; i < kMaxRegions + 1; ++i)
        many.push_back({0x100000 * (i + 1), kPage, i * kPage});
    refused(many, "too many regions");
}

TEST(MemoryLoaderLayout, RefusesMalformedMessages) {
    auto bytes = layout({{0x10000, kPage, 0}});
    auto bad_magic = bytes;
    bad_magic[0] ^= 1;
    EXPECT_FALSE(decode_layout(bad_magic, kPage, kPage));
    auto extra = bytes;
    extra.push_back(0);
    EXPECT_FALSE(decode_layout(extra, kPage, kPage));
    auto cut = bytes;
    cut.pop_back();
    EXPECT_FALSE(decode_layout(cut, kPage, kPage));
    EXPECT_FALSE(decode_layout(std::span(bytes).first(4), kPage, kPage));
    EXPECT_TRUE(decode_layout(bytes, kPage, kPage));
}

TEST(MemoryLoaderLines, ReadyDoneAndErrors) {
    auto ready = parse_line("ready");
    ASSERT_TRUE(ready);
    EXPECT_TRUE(ready->ready);
    const Done d{12, 30, 7, 451};
    std::string line = done_line(d);
    ASSERT_EQ(line.back(), '\n');
    line.pop_back();
    auto done = parse_line(line);
    ASSERT_TRUE(done) << done.error().message;
    EXPECT_FALSE(done->ready);
    EXPECT_EQ(done->done.faulted, 12u);
    EXPECT_EQ(done->done.background, 30u);
    EXPECT_EQ(done->done.zero, 7u);
    EXPECT_EQ(done->done.ms, 451u);
    auto error = parse_line("error memory: chunk 3 of 9: authentication failed");
    ASSERT_FALSE(error);
    EXPECT_EQ(error.error().message, "memory: chunk 3 of 9: authentication failed");
    for (const char* bad :
         {"", "done", "done 1 2 3", "done 1 2 3 4 5", "done 1 2 x 4", "readyy", "done 1 2 3 4 "})
        EXPECT_FALSE(parse_line(bad)) << bad;
}

struct Pair {
    UniqueFd sandbox, loader;
    Pair() {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        sandbox = UniqueFd(sv[0]);
        loader = UniqueFd(sv[1]);
    }
};

TEST(MemoryLoaderLayout, GoesOverTheSocketWithItsDescriptor) {
    Pair p;
    const UniqueFd passed(::eventfd(0, EFD_CLOEXEC));
    const std::vector<Region> regions{{0x7f0000000000, 4 * kPage, 0}};
    ASSERT_TRUE(send_layout(p.sandbox.get(), regions, passed.get()));
    auto got = receive_layout(p.loader.get());
    ASSERT_TRUE(got) << got.error().message;
    ASSERT_TRUE(got->has_value());
    EXPECT_EQ((*got)->bytes, encode_layout(regions));
    ASSERT_TRUE((*got)->uffd.valid());
    EXPECT_NE((*got)->uffd.get(), passed.get());
    // The socket's end: nothing to serve.
    p.sandbox.reset();
    auto end = receive_layout(p.loader.get());
    ASSERT_TRUE(end);
    EXPECT_FALSE(end->has_value());
}

TEST(MemoryLoaderLayout, AMessageWithoutItsDescriptorOrTooLongIsRefused) {
    Pair p;
    const auto bytes = encode_layout(std::vector<Region>{{0x10000, kPage, 0}});
    ASSERT_EQ(::write(p.sandbox.get(), bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
    auto got = receive_layout(p.loader.get());
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().message.find("without its userfaultfd"), std::string::npos);
    const UniqueFd passed(::eventfd(0, EFD_CLOEXEC));
    std::vector<Region> many;  // encoded: more than kMaxLayoutBytes
    for (std::uint64_t i = 0; i < kMaxRegions + 1; ++i)
        many.push_back({0x100000 * (i + 1), kPage, i * kPage});
    ASSERT_TRUE(send_layout(p.sandbox.get(), many, passed.get()));
    got = receive_layout(p.loader.get());
    ASSERT_FALSE(got);
    EXPECT_NE(got.error().message.find("more than a layout message"), std::string::npos)
        << got.error().message;
}

}  // namespace
}  // namespace stockade::memory_loader
