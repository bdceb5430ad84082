// Interface names and sandbox ids: what the kernel and the state directory accept.
#include <gtest/gtest.h>

#include "netsetup/names.hpp"

namespace stockade::net {
namespace {

void expect_bad_ifname(std::string_view name, std::string_view fragment) {
    auto r = validate_ifname("bridge", name);
    ASSERT_FALSE(r) << "accepted '" << name << "'";
    EXPECT_EQ(r.error().message.rfind("bridge: ", 0), 0u)
        << "field not named: " << r.error().message;
    EXPECT_NE(r.error().message.find(fragment), std::string::npos) << r.error().message;
}

TEST(netsetup_ifname, AcceptsOrdinaryNames) {
    for (const char* ok : {"br0", "eth0.10", "br-sb_0", "a", "123456789012345", "veth@x"})
        EXPECT_TRUE(validate_ifname("tap", ok)) << ok;
}

TEST(netsetup_ifname, RejectsWhatTheKernelRejects) {
    expect_bad_ifname("", "empty");
    expect_bad_ifname("1234567890123456", "longer than the kernel's limit of 15");
    expect_bad_ifname("a/b", "'/'");
    expect_bad_ifname("a:b", "':'");
    expect_bad_ifname("a b", "\\x20");
    expect_bad_ifname("a\tb", "\\x09");
    expect_bad_ifname("a\nb", "\\x0a");
    expect_bad_ifname(".", "not a valid interface name");
    expect_bad_ifname("..", "not a valid interface name");
    expect_bad_ifname("\x7f", "\\x7f");
    expect_bad_ifname("br\xc3\xa9", "\\xc3");
}

TEST(netsetup_ifname, RejectsPercentTemplates) {
    // The kernel would turn "tap%d" into the next free tapN, some other interface.
    expect_bad_ifname("tap%d", "'%'");
}

TEST(netsetup_id, Validation) {
    for (const char* ok : {"sb0", "web-1", "a.b_c", "0"})
        EXPECT_TRUE(validate_sandbox_id(ok)) << ok;
    EXPECT_TRUE(validate_sandbox_id(std::string(64, 'x')));
    for (const char* bad : {"", "-x", ".x", "_x", "a/b", "a b", "..", "a:b", "é"}) {
        auto r = validate_sandbox_id(bad);
        ASSERT_FALSE(r) << "accepted '" << bad << "'";
        EXPECT_EQ(r.error().message.rfind("id: ", 0), 0u) << r.error().message;
    }
    EXPECT_FALSE(validate_sandbox_id(std::string(65, 'x')));
}

TEST(netsetup_tap_name, DerivedFromId) {
    EXPECT_EQ(derive_tap_name("sb0"), "stk-sb0");
    EXPECT_EQ(derive_tap_name("12345678901"), "stk-12345678901");  // exactly 15 bytes
    // Longer ids: "stk-" + 11 hex digits of SHA-256("stockade-tap:" + id).
    EXPECT_EQ(derive_tap_name("a-very-long-sandbox-id"), "stk-c7f4323c741");
    EXPECT_EQ(derive_tap_name("123456789012"), derive_tap_name("123456789012"));
    EXPECT_NE(derive_tap_name("123456789012"), derive_tap_name("123456789013"));
    for (const char* id : {"sb0", "123456789012", "a-very-long-sandbox-id"})
        EXPECT_TRUE(validate_ifname("tap", derive_tap_name(id))) << id;
}

}  // namespace
}  // namespace stockade::net
