// The snapshot state encoding: what is written reads back, and a reader over bytes anyone
// may have changed never reads past the end, never allocates more than the bytes could
// describe, and reports the first thing wrong with where it was.
#include <gtest/gtest.h>

#include <array>

#include "base/state_codec.hpp"

namespace stockade {
namespace {

struct Pod {
    std::uint32_t a;
    std::uint16_t b;
    std::uint8_t c[6];
};

std::vector<std::uint8_t> sample() {
    StateWriter w;
    w.u8(0xab);
    w.boolean(true);
    w.u16(0x1234);
    w.u32(0xdeadbeef);
    w.u64(0x0102030405060708);
    const std::array<std::uint8_t, 3> b{9, 8, 7};
    w.bytes(b);
    w.raw(Pod{7, 8, {1, 2, 3, 4, 5, 6}});
    return w.take();
}

Result<> read_sample(std::span<const std::uint8_t> in, Pod* pod = nullptr) {
    StateReader r(in);
    EXPECT_TRUE(r.u8("a") == 0xab || !r.ok());
    EXPECT_TRUE(r.boolean("b") || !r.ok());
    EXPECT_TRUE(r.u16("c") == 0x1234 || !r.ok());
    EXPECT_TRUE(r.u32("d") == 0xdeadbeef || !r.ok());
    EXPECT_TRUE(r.u64("e") == 0x0102030405060708 || !r.ok());
    const auto b = r.bytes("f", 16);
    EXPECT_TRUE(b.size() == 3 || !r.ok());
    Pod p{};
    r.raw("g", p);
    if (pod) *pod = p;
    return r.finish("sample");
}

TEST(StateCodec, WhatIsWrittenReadsBack) {
    const auto bytes = sample();
    EXPECT_EQ(bytes.size(), 1 + 1 + 2 + 4 + 8 + 4 + 3 + 4 + sizeof(Pod));
    Pod p{};
    ASSERT_TRUE(read_sample(bytes, &p));
    EXPECT_EQ(p.a, 7u);
    EXPECT_EQ(p.c[5], 6);
}

TEST(StateCodec, EveryTruncationAndAnyExtraByteIsRefused) {
    const auto bytes = sample();
    for (std::size_t n = 0; n < bytes.size(); ++n) {
        auto r = read_sample(std::span(bytes).first(n));
        ASSERT_FALSE(r) << n;
        EXPECT_NE(r.error().message.find("sample: "), std::string::npos) << r.error().message;
    }
    auto longer = bytes;
    longer.push_back(0);
    auto r = read_sample(longer);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("1 bytes left over"), std::string::npos);
}

TEST(StateCodec, CountsAreBoundedByTheCallerAndByTheBytesLeft) {
    StateWriter w;
    w.count(1000);
    w.u32(0);
    {
        StateReader r(w.data());
        EXPECT_EQ(r.count("things", 999, 1), 0u);
        EXPECT_FALSE(r.ok());
        EXPECT_NE(r.finish("x").error().message.find("1000 elements, at most 999"),
                  std::string::npos);
    }
    {
        StateReader r(w.data());  // 4 bytes left cannot hold 1000 elements of 1 byte
        EXPECT_EQ(r.count("things", 5000, 1), 0u);
        EXPECT_NE(r.finish("x").error().message.find("cannot fit"), std::string::npos);
    }
    {
        StateWriter big;
        big.count(0xffffffff);  // a byte string claiming 4 GiB
        StateReader r(big.data());
        EXPECT_TRUE(r.bytes("blob", SIZE_MAX).empty());
        EXPECT_FALSE(r.ok());
    }
}

TEST(StateCodec, ErrorsAreStickyAndNameTheFirstProblem) {
    StateWriter w;
    w.u8(2);  // not a boolean
    w.u32(5);
    StateReader r(w.data());
    EXPECT_FALSE(r.boolean("flag"));  // and refused
    EXPECT_EQ(r.u32("after"), 0u) << "nothing is read after an error";
    EXPECT_EQ(r.remaining(), 0u);
    const auto e = r.finish("state");
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("flag (at byte 1): 2 is not a boolean"), std::string::npos)
        << e.error().message;
    // A structure of another size.
    StateWriter s;
    s.bytes(std::array<std::uint8_t, 3>{1, 2, 3});
    StateReader rs(s.data());
    Pod p{1, 2, {}};
    rs.raw("pod", p);
    EXPECT_EQ(p.a, 0u) << "zeroed, not half-filled";
    EXPECT_FALSE(rs.finish("x"));
}

}  // namespace
}  // namespace stockade
