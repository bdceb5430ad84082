// MAC parsing and the stable derivation from a sandbox id.
#include <gtest/gtest.h>

#include <set>

#include "netsetup/mac.hpp"

namespace stockade::net {
namespace {

MacAddress mac(std::string_view text) {
    return *parse_mac(text);
}

TEST(netsetup_mac, ParsesAndFormatsLowerCase) {
    auto mac = parse_mac("02:AB:cd:00:7f:10");
    ASSERT_TRUE(mac) << mac.error().message;
    EXPECT_EQ(mac->bytes, (std::array<std::uint8_t, 6>{0x02, 0xab, 0xcd, 0x00, 0x7f, 0x10}));
    EXPECT_EQ(mac->to_string(), "02:ab:cd:00:7f:10");
}

TEST(netsetup_mac, RejectsMalformed) {
    for (const char* bad : {"", "02:ab:cd:00:7f", "02:ab:cd:00:7f:10:11", "02-ab-cd-00-7f-10",
                            "2:ab:cd:00:7f:10:", "0g:ab:cd:00:7f:10", "02:ab:cd:00:7f:1",
                            " 02:ab:cd:00:7f:1", "02:ab:cd:00:7f:10 ", "02ab:cd:00:7f:10:"}) {
        auto mac = parse_mac(bad);
        EXPECT_FALSE(mac) << "accepted '" << bad << "'";
        if (!mac) {
            EXPECT_NE(mac.error().message.find("not a MAC address"), std::string::npos);
        }
    }
}

TEST(netsetup_mac, SandboxMacMustBeUnicastAndNonZero) {
    EXPECT_TRUE(parse_sandbox_mac("02:00:00:00:00:01"));
    EXPECT_TRUE(parse_sandbox_mac("52:54:00:12:34:56"));  // globally administered is allowed
    auto mcast = parse_sandbox_mac("01:00:5e:00:00:01");
    ASSERT_FALSE(mcast);
    EXPECT_NE(mcast.error().message.find("multicast"), std::string::npos) << mcast.error().message;
    auto odd = parse_sandbox_mac("03:00:00:00:00:01");
    ASSERT_FALSE(odd);
    EXPECT_NE(odd.error().message.find("multicast"), std::string::npos);
    auto bcast = parse_sandbox_mac("ff:ff:ff:ff:ff:ff");
    ASSERT_FALSE(bcast);
    EXPECT_NE(bcast.error().message.find("multicast"), std::string::npos);
    auto zero = parse_sandbox_mac("00:00:00:00:00:00");
    ASSERT_FALSE(zero);
    EXPECT_NE(zero.error().message.find("all-zero"), std::string::npos);
}

TEST(netsetup_mac, DerivedIsStableLocallyAdministeredUnicast) {
    auto a = derive_mac("sb0");
    EXPECT_EQ(a, derive_mac("sb0"));
    EXPECT_EQ(a.bytes[0], 0x02);
    EXPECT_TRUE(a.is_locally_administered());
    EXPECT_FALSE(a.is_multicast());
    EXPECT_FALSE(a.is_zero());
    // The documented derivation: 02 + the first five bytes of SHA-256("stockade-mac:sb0").
    // echo -n stockade-mac:sb0 | sha256sum  ->  the value below.
    EXPECT_EQ(a.to_string(), "02:30:e2:87:eb:84");
}

TEST(netsetup_mac, DerivedDiffersPerId) {
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i)
        seen.insert(derive_mac(fmt::format("sb{}", i)).to_string());
    EXPECT_EQ(seen.size(), 1000u);
    EXPECT_NE(derive_mac("a"), derive_mac("b"));
    EXPECT_NE(derive_mac("sb0"), derive_mac("sb0 "));
}

TEST(netsetup_mac, HostSideOfTheTapDiffersFromTheSandbox) {
    auto sandbox = mac("02:30:e2:87:eb:84");
    auto host = host_side_mac(sandbox);
    EXPECT_EQ(host.to_string(), "fe:30:e2:87:eb:84");
    EXPECT_FALSE(host.is_multicast());
    EXPECT_TRUE(host.is_locally_administered());
    auto fe = mac("fe:00:00:00:00:01");
    EXPECT_EQ(host_side_mac(fe).to_string(), "fa:00:00:00:00:01");
    EXPECT_NE(host_side_mac(fe), fe);
}

}  // namespace
}  // namespace stockade::net
