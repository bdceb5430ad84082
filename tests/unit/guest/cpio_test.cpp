#include <gtest/gtest.h>

#include "guest/abi.hpp"
#include "guest/cpio.hpp"

namespace stockade {
namespace {

TEST(Cpio, RoundTripsFilesAndIsDeterministic) {
    auto build = [] {
        cpio::Writer w;
        w.add_directory("/stockade");
        w.add_file("/stockade/argv", std::string_view("sh\0-c\0exit 7\0", 13));
        w.add_symlink("/bin/sh", "busybox");
        w.add_char_device("/dev/console", 5, 1);
        return w.finish();
    };
    auto a = build();
    EXPECT_EQ(a, build()) << "same entries must give the same bytes";
    EXPECT_EQ(a.size() % 4, 0u);
    std::vector<cpio::Entry> entries;
    ASSERT_TRUE(cpio::parse(a, entries));
    ASSERT_EQ(entries.size(), 4u);
    EXPECT_EQ(entries[1].path, "stockade/argv");
    EXPECT_EQ(std::string(entries[1].data.begin(), entries[1].data.end()),
              std::string("sh\0-c\0exit 7\0", 13));
    EXPECT_EQ(entries[2].path, "bin/sh");
    EXPECT_EQ(std::string(entries[2].data.begin(), entries[2].data.end()), "busybox");
}

TEST(Cpio, HeaderFieldsAreNewcWithFixedMetadata) {
    cpio::Writer w;
    w.add_file("f", std::string_view("abc"), 0600);
    auto a = w.finish();
    std::string head(a.begin(), a.begin() + 110);
    EXPECT_EQ(head.substr(0, 6), "070701");
    EXPECT_EQ(head.substr(14, 8), "00008180");  // S_IFREG | 0600
    EXPECT_EQ(head.substr(46, 8), "00000000");  // mtime fixed at 0
    EXPECT_EQ(head.substr(54, 8), "00000003");  // filesize
}

TEST(Cpio, ParseRejectsTruncatedAndCorruptArchives) {
    cpio::Writer w;
    w.add_file("f", std::string_view("hello world"));
    auto a = w.finish();
    std::vector<cpio::Entry> e;
    for (std::size_t cut :
         {std::size_t{0}, std::size_t{5}, std::size_t{109}, std::size_t{120}, a.size() - 20}) {
        e.clear();
        EXPECT_FALSE(cpio::parse(std::span(a).first(cut), e)) << "cut at " << cut;
    }
    auto bad = a;
    bad[0] = 'X';
    EXPECT_FALSE(cpio::parse(bad, e));
    bad = a;
    bad[54] = 'Z';  // non-hex filesize
    EXPECT_FALSE(cpio::parse(bad, e));
}

TEST(GuestAbi, AgentValuesCarryMagicEventAndArgument) {
    using namespace guest_abi;
    std::uint32_t v = encode(Event::exited, 127);
    EXPECT_TRUE(is_agent_value(v));
    EXPECT_EQ(event_of(v), Event::exited);
    EXPECT_EQ(arg_of(v), 127);
    EXPECT_FALSE(is_agent_value(0x0000'0207));
    EXPECT_FALSE(is_agent_value(0xffff'ffff));
}

}  // namespace
}  // namespace stockade
