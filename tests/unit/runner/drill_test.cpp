// stockade drill's network (runner/cli/drill_command.hpp): a restored sandbox's network
// device keeps the guest's MAC and loses every way out (bridge, VLAN, uplink, a user's tap).
#include <gtest/gtest.h>

#include "runner/cli/drill_command.hpp"
#include "runner/cli/run_args.hpp"
#include "runner/cli/snapshot_commands.hpp"
#include "runner/registry/net.hpp"

namespace stockade {
namespace {

SandboxSpec spec_of(std::vector<std::string> args) {
    auto a = parse_run_args(args);
    EXPECT_TRUE(a) << (a ? "" : a.error().message);
    return a ? std::move(a->spec) : SandboxSpec{};
}

TEST(Drill, AnIsolatedNetworkKeepsTheMacAndLosesEveryWayOut) {
    SandboxSpec s = spec_of({"--net",
                             "bridge=br0,vlan=12,uplink=eth0,mac=02:00:00:00:00:07,mtu=1400,"
                             "filter=mac,addr=10.0.0.2/24,vhost=off",
                             "--", "true"});
    ASSERT_TRUE(s.device<NetKind>());
    ASSERT_TRUE(cli::isolate_network(s, "isolated"));
    const auto& net = *s.device<NetKind>();
    EXPECT_EQ(net.netsetup, "mac=02:00:00:00:00:07,mtu=1400");
    EXPECT_FALSE(net.existing_tap);
    EXPECT_EQ(net.address, "10.0.0.2/24") << "the guest's own configuration is its memory's";
    EXPECT_EQ(net.vhost, VhostMode::off);

    SandboxSpec user_tap = spec_of({"--net", "tap=mytap0,vhost=off", "--", "true"});
    ASSERT_TRUE(user_tap.device<NetKind>());
    ASSERT_TRUE(user_tap.device<NetKind>()->existing_tap);
    ASSERT_TRUE(cli::isolate_network(user_tap, "isolated"));
    EXPECT_EQ(user_tap.device<NetKind>()->netsetup, "");
    EXPECT_FALSE(user_tap.device<NetKind>()->existing_tap) << "a tap of the drill's own";
}

TEST(Drill, NoNetworkRefusesASnapshotThatHasADevice) {
    SandboxSpec s = spec_of({"--net", "bridge=br0,vhost=off", "--", "true"});
    auto r = cli::isolate_network(s, "none");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("--network isolated"), std::string::npos);
    SandboxSpec plain = spec_of({"true"});
    EXPECT_TRUE(cli::isolate_network(plain, "none"));
    EXPECT_FALSE(plain.device<NetKind>());
}

}  // namespace
}  // namespace stockade

namespace stockade::cli {
namespace {

using Args = std::vector<std::string>;

TEST(CreateRestore, IsRestorePausedWhereverRestoreIsAmongCreatesOptions) {
    EXPECT_EQ(create_restore_args({"--restore", "/s", "--id", "x"}),
              (Args{"restore", "--paused", "/s", "--id", "x"}));
    EXPECT_EQ(create_restore_args({"--id", "x", "--restore=/s", "--no-verify-memory"}),
              (Args{"restore", "--paused", "/s", "--id", "x", "--no-verify-memory"}));
    EXPECT_EQ(create_restore_args({"--id", "x", "--restore"}),
              (Args{"restore", "--paused", "--id", "x"}))
        << "no directory: restore's parser names the missing DIR";
    EXPECT_EQ(create_restore_args({"--memory", "64", "--", "echo", "--restore", "/s"}),
              std::nullopt)
        << "the command's own words are not create's options";
    EXPECT_EQ(create_restore_args({"--id", "x", "--", "sh"}), std::nullopt);
}

}  // namespace
}  // namespace stockade::cli
