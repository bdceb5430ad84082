// `stockade net` argument handling that needs no privileges: help, bad specs, show.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "netsetup/cli.hpp"
#include "netsetup/state.hpp"
#include "tests/support/temp_dir.hpp"

namespace stockade::net {
namespace {

struct CliRun {
    int status;
    std::string out;
    std::string err;
};

CliRun run(std::vector<std::string> args) {
    std::ostringstream out, err;
    int status = net_cli(args, out, err);
    return {status, out.str(), err.str()};
}

TEST(netsetup_cli, HelpExplainsTheSpec) {
    auto r = run({"--help"});
    EXPECT_EQ(r.status, 0);
    for (const char* word : {"up", "down", "show", "bridge=NAME", "vlan=VID", "trunk=VIDS",
                             "filter=MODE", "CAP_NET_ADMIN", "125"})
        EXPECT_NE(r.out.find(word), std::string::npos) << "help lacks " << word << ":\n" << r.out;
}

TEST(netsetup_cli, UsageErrorsExit125) {
    EXPECT_EQ(run({}).status, 125);
    EXPECT_EQ(run({"sideways"}).status, 125);
    EXPECT_EQ(run({"up"}).status, 125);
    EXPECT_EQ(run({"down"}).status, 125);
}

TEST(netsetup_cli, BadSpecIsRejectedBeforeAnythingElse) {
    // Bad input fails on parsing, with the field named, whatever the privileges.
    auto r = run({"up", "id=sb0,bridge=b,vlan=4095"});
    EXPECT_EQ(r.status, 125);
    EXPECT_NE(r.err.find("vlan: VLAN 4095 is outside 1..4094"), std::string::npos) << r.err;
    auto two = run({"up", "id=sb0", "id=sb1,mac=01:00:00:00:00:01"});
    EXPECT_EQ(two.status, 125);
    EXPECT_NE(two.err.find("mac: 01:00:00:00:00:01 is a multicast address"), std::string::npos)
        << two.err;
    EXPECT_EQ(two.out, "");  // nothing was brought up, not even the valid first spec
}

TEST(netsetup_cli, ShowReadsTheRecords) {
    test::TempDir tmp("stockade-net-cli");
    ASSERT_FALSE(tmp.path.empty());
    const std::string dir = tmp.path.string();
    auto empty = run({"--state-dir", dir, "show"});
    EXPECT_EQ(empty.status, 0) << empty.err;
    EXPECT_NE(empty.out.find("no sandbox networks"), std::string::npos);

    NetState s;
    s.id = "sb0";
    s.spec = "id=sb0,tap=stk-sb0";
    s.complete = true;
    s.resources = {{ResourceKind::tap, "stk-sb0", 9, {}, 0, true},
                   {ResourceKind::bridge, "br0", 5, {}, 0, false}};
    ASSERT_TRUE(StateDir(dir).save(s));
    auto shown = run({"--state-dir", dir, "show", "sb0"});
    EXPECT_EQ(shown.status, 0) << shown.err;
    EXPECT_NE(shown.out.find("sb0: up"), std::string::npos) << shown.out;
    EXPECT_NE(shown.out.find("created  tap stk-sb0 (#9)"), std::string::npos) << shown.out;
    EXPECT_NE(shown.out.find("found    bridge br0 (#5)"), std::string::npos) << shown.out;
    auto json = run({"--state-dir", dir, "show", "--json"});
    EXPECT_EQ(json.status, 0);
    EXPECT_NE(json.out.find("\"kind\": \"tap\""), std::string::npos) << json.out;
    auto unknown = run({"--state-dir", dir, "show", "sb9"});
    EXPECT_EQ(unknown.status, 125);
    EXPECT_NE(unknown.err.find("sb9: not up"), std::string::npos) << unknown.err;
}

}  // namespace
}  // namespace stockade::net
