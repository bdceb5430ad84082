// The network spec: defaults, canonical form, and every bad input named in issue 5.
#include <gtest/gtest.h>

#include "netsetup/spec.hpp"

namespace stockade::net {
namespace {

NetSpec parse_ok(std::string_view text, const SpecDefaults& defaults = {}) {
    auto spec = parse_net_spec(text, defaults);
    EXPECT_TRUE(spec) << text << ": " << spec.error().message;
    return spec ? *spec : NetSpec{};
}

// The error must start with the offending field and contain `fragment`.
void expect_error(std::string_view text, std::string_view field, std::string_view fragment) {
    auto spec = parse_net_spec(text);
    ASSERT_FALSE(spec) << "accepted '" << text << "'";
    const auto& msg = spec.error().message;
    if (!field.empty()) {
        EXPECT_EQ(msg.rfind(fmt::format("{}: ", field), 0), 0u)
            << "'" << text << "' -> field not named first: " << msg;
    }
    EXPECT_NE(msg.find(fragment), std::string::npos) << "'" << text << "' -> " << msg;
}

TEST(netsetup_spec, MinimalSpecGetsDerivedDefaults) {
    auto s = parse_ok("id=sb0");
    EXPECT_EQ(s.id, "sb0");
    EXPECT_EQ(s.tap, "stk-sb0");
    EXPECT_EQ(s.mac, derive_mac("sb0"));
    EXPECT_FALSE(s.bridge);
    EXPECT_FALSE(s.vlan);
    EXPECT_TRUE(s.trunk.empty());
    EXPECT_EQ(s.queues, 1u);
    EXPECT_EQ(s.filter, MacFilter::source);
    EXPECT_FALSE(s.mtu);
    EXPECT_FALSE(s.owner_uid);
}

TEST(netsetup_spec, IdAndOwnerFromTheRunner) {
    auto s = parse_ok("bridge=br0", SpecDefaults{"sandbox-7", 1000, 1001});
    EXPECT_EQ(s.id, "sandbox-7");
    EXPECT_EQ(s.tap, "stk-sandbox-7");
    EXPECT_EQ(s.owner_uid, 1000u);
    EXPECT_EQ(s.owner_gid, 1001u);
    // The spec's own values win.
    auto t = parse_ok("id=x,owner=5:6", SpecDefaults{"sandbox-7", 1000, 1001});
    EXPECT_EQ(t.id, "x");
    EXPECT_EQ(t.owner_uid, 5u);
    EXPECT_EQ(t.owner_gid, 6u);
    EXPECT_EQ(parse_ok("id=x,owner=7").owner_gid, std::nullopt);
    auto g = parse_ok("id=x,owner=:9");
    EXPECT_FALSE(g.owner_uid);
    EXPECT_EQ(g.owner_gid, 9u);
}

TEST(netsetup_spec, BridgeWithoutVlanIsAccessVlan1) {
    auto s = parse_ok("id=sb0,bridge=br0");
    EXPECT_EQ(s.bridge, "br0");
    EXPECT_EQ(s.vlan, 1);
    EXPECT_EQ(s.vlans(), (std::vector<std::uint16_t>{1}));
    // A trunk-only port has no access VLAN.
    auto t = parse_ok("id=sb0,bridge=br0,trunk=10+20");
    EXPECT_FALSE(t.vlan);
}

TEST(netsetup_spec, FullSpec) {
    auto s = parse_ok(
        "id=web1,tap=tapweb,mac=02:11:22:33:44:55,bridge=br-sb,vlan=10,trunk=30+20+100-103,"
        "uplink=eth1,mtu=9000,queues=4,filter=strict,isolated=yes,owner=1000:1000");
    EXPECT_EQ(s.tap, "tapweb");
    EXPECT_EQ(s.mac.to_string(), "02:11:22:33:44:55");
    EXPECT_EQ(s.vlan, 10);
    EXPECT_EQ(s.trunk, (std::vector<std::uint16_t>{20, 30, 100, 101, 102, 103}));
    EXPECT_EQ(s.vlans(), (std::vector<std::uint16_t>{10, 20, 30, 100, 101, 102, 103}));
    EXPECT_EQ(s.uplink, "eth1");
    EXPECT_EQ(s.mtu, 9000u);
    EXPECT_EQ(s.queues, 4u);
    EXPECT_EQ(s.filter, MacFilter::strict);
    EXPECT_TRUE(s.isolated);
    EXPECT_EQ(parse_ok("id=a,filter=off").filter, MacFilter::off);
    EXPECT_EQ(parse_ok("id=a,filter=mac").filter, MacFilter::source);
}

TEST(netsetup_spec, CanonicalFormRoundTrips) {
    for (const char* text :
         {"id=sb0", "id=sb0,bridge=br0", "id=a,bridge=b,trunk=1-3+5+7+8+4094,uplink=u",
          "id=web1,tap=t,mac=02:11:22:33:44:55,bridge=br-sb,vlan=10,trunk=20,uplink=eth1,"
          "mtu=9000,queues=4,filter=strict,isolated=yes,owner=1000:1000",
          "id=x,owner=:9", "id=x,filter=off,queues=256,mtu=68"}) {
        auto s = parse_ok(text);
        auto canonical = format_net_spec(s);
        EXPECT_EQ(parse_ok(canonical), s) << text << " -> " << canonical;
        EXPECT_EQ(format_net_spec(parse_ok(canonical)), canonical);
    }
    EXPECT_EQ(format_net_spec(parse_ok("id=a,bridge=b,trunk=1-3+5+7+8+4094")),
              fmt::format("id=a,tap=stk-a,mac={},bridge=b,trunk=1-3+5+7+8+4094,queues=1,"
                          "filter=mac,isolated=no",
                          derive_mac("a").to_string()));
}

TEST(netsetup_spec, SyntaxErrors) {
    expect_error("", "id", "missing");
    expect_error("bridge=br0", "id", "missing");
    expect_error("id=sb0,,bridge=br0", "", "empty field");
    expect_error("id=sb0,", "", "empty field");
    expect_error("id=sb0,bridge", "", "not key=value");
    expect_error("id=sb0,colour=red", "", "unknown key 'colour'");
    expect_error("id=sb0,vlan=", "vlan", "empty value");
    expect_error("id=sb0,id=sb1", "id", "given twice");
    expect_error("id=sb0,bridge=a,bridge=b", "bridge", "given twice");
}

TEST(netsetup_spec, BadMac) {
    expect_error("id=sb0,mac=01:00:5e:00:00:01", "mac", "multicast");
    expect_error("id=sb0,mac=ff:ff:ff:ff:ff:ff", "mac", "multicast");
    expect_error("id=sb0,mac=00:00:00:00:00:00", "mac", "all-zero");
    expect_error("id=sb0,mac=02:00:00:00:00", "mac", "not a MAC address");
    expect_error("id=sb0,mac=zz:00:00:00:00:00", "mac", "not a MAC address");
}

TEST(netsetup_spec, VlanOutOfRange) {
    expect_error("id=sb0,bridge=b,vlan=0", "vlan", "outside 1..4094");
    expect_error("id=sb0,bridge=b,vlan=4095", "vlan", "outside 1..4094");
    expect_error("id=sb0,bridge=b,vlan=70000", "vlan", "outside 1..4094");
    expect_error("id=sb0,bridge=b,vlan=99999999999999999999999", "vlan", "not a decimal number");
    expect_error("id=sb0,bridge=b,vlan=-1", "vlan", "not a decimal number");
    expect_error("id=sb0,bridge=b,vlan=+5", "vlan", "not a decimal number");
    expect_error("id=sb0,bridge=b,vlan=0x10", "vlan", "not a decimal number");
    expect_error("id=sb0,bridge=b,vlan=010", "vlan", "not a decimal number");
    expect_error("id=sb0,bridge=b,vlan=1 ", "vlan", "not a decimal number");
    expect_error("id=sb0,bridge=b,trunk=10+4095", "trunk", "outside 1..4094");
    expect_error("id=sb0,bridge=b,trunk=0-5", "trunk", "outside 1..4094");
    expect_error("id=sb0,bridge=b,trunk=4000-4095", "trunk", "outside 1..4094");
    expect_error("id=sb0,bridge=b,trunk=20-10", "trunk", "runs backwards");
    expect_error("id=sb0,bridge=b,trunk=10++20", "trunk", "empty VLAN");
    expect_error("id=sb0,bridge=b,trunk=10+", "trunk", "empty VLAN");
    expect_error("id=sb0,bridge=b,trunk=10+10", "trunk", "listed twice");
    expect_error("id=sb0,bridge=b,trunk=5+1-9", "trunk", "listed twice");
    expect_error("id=sb0,bridge=b,vlan=10,trunk=10+20", "trunk", "also the access VLAN");
}

TEST(netsetup_spec, BadInterfaceNames) {
    expect_error("id=sb0,tap=1234567890123456", "tap", "longer than the kernel's limit");
    expect_error("id=sb0,bridge=1234567890123456", "bridge", "longer than the kernel's limit");
    expect_error("id=sb0,bridge=b,uplink=1234567890123456", "uplink",
                 "longer than the kernel's limit");
    expect_error("id=sb0,tap=a/b", "tap", "'/'");
    expect_error("id=sb0,bridge=br/0", "bridge", "'/'");
    expect_error("id=sb0,bridge=b,uplink=../x", "uplink", "'/'");
    expect_error("id=sb0,bridge=..", "bridge", "not a valid interface name");
    expect_error("id=sb0,tap=.", "tap", "not a valid interface name");
    expect_error("id=sb0,tap=a b", "tap", "\\x20");
    expect_error("id=sb0,tap=tap%d", "tap", "'%'");
    expect_error("id=sb0,bridge=a:1", "bridge", "':'");
}

TEST(netsetup_spec, BadIds) {
    expect_error("id=../etc", "id", "must start with a letter or digit");
    expect_error("id=a/b", "id", "contains '/'");
    expect_error("id=" + std::string(65, 'a'), "id", "longer than the limit of 64");
}

TEST(netsetup_spec, BadNumbers) {
    expect_error("id=sb0,mtu=67", "mtu", "outside 68..65521");
    expect_error("id=sb0,mtu=65522", "mtu", "outside 68..65521");
    expect_error("id=sb0,queues=0", "queues", "outside 1..256");
    expect_error("id=sb0,queues=257", "queues", "outside 1..256");
    expect_error("id=sb0,owner=root", "owner", "not a decimal number");
    expect_error("id=sb0,owner=1000:", "owner", "not a decimal number");
    expect_error("id=sb0,owner=4294967295", "owner", "outside");
    expect_error("id=sb0,filter=drop", "filter", "not one of off, mac, strict");
    expect_error("id=sb0,bridge=b,isolated=maybe", "isolated", "not yes or no");
}

TEST(netsetup_spec, CrossFieldRules) {
    expect_error("id=sb0,vlan=10", "vlan", "needs a bridge");
    expect_error("id=sb0,trunk=10", "trunk", "needs a bridge");
    expect_error("id=sb0,uplink=eth0", "uplink", "needs a bridge");
    expect_error("id=sb0,isolated=yes", "isolated", "needs a bridge");
    EXPECT_TRUE(parse_net_spec("id=sb0,isolated=no"));
    expect_error("id=sb0,bridge=stk-sb0", "bridge", "also the tap's name");
    expect_error("id=sb0,tap=x,bridge=b,uplink=x", "uplink", "also the tap's name");
    expect_error("id=sb0,bridge=b,uplink=b", "uplink", "also the bridge's name");
}

}  // namespace
}  // namespace stockade::net
