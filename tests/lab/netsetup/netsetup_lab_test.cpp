// netsetup against the real kernel (lab): each test runs in a network namespace of its own,
// with taps whose fds the test holds, as the runner will (frames carry the 12-byte
// virtio-net header), and veths/raw sockets for the far side of an uplink.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "netsetup/cli.hpp"
#include "netsetup/network.hpp"
#include "netsetup/spec.hpp"
#include "netsetup/tap.hpp"
#include "tests/lab/netsetup/lab_net.hpp"
#include "tests/support/temp_dir.hpp"

namespace stockade::net {
namespace {

using namespace lab;
using nlohmann::json;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

bool link_exists(const std::string& name) {
    return sh("ip link show dev " + name).status == 0;
}

json link_json(const std::string& name) {
    auto j = json::parse(must("ip -d -j link show dev " + name));
    return j.at(0);
}

// Link state changes reach the bridge (and `ip`) through linkwatch, up to a second later.
void wait_for_operstate(std::initializer_list<const char*> links, const std::string& state) {
    for (auto name : links) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (link_json(name).value("operstate", "") != state) {
            ASSERT_LT(std::chrono::steady_clock::now(), deadline) << name << " never " << state;
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
    }
}

// A bridge port forwards once the kernel has seen its carrier, which for a veth that was
// down arrives through linkwatch, up to a second after up() has returned.
void wait_for_forwarding(const std::string& port) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto state = [&] {
        auto link = link_json(port);
        if (!link.contains("linkinfo") || !link["linkinfo"].contains("info_slave_data"))
            return std::string("not a port");
        return link["linkinfo"]["info_slave_data"].value("state", "");
    };
    while (state() != "forwarding") {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << port << " never forwarding";
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

// ifname -> "vid flags..." for every bridge VLAN entry (ports and bridges themselves).
std::map<std::string, std::vector<std::string>> vlan_table() {
    std::map<std::string, std::vector<std::string>> table;
    auto out = must("bridge -j vlan show");
    for (const auto& port : json::parse(out.empty() ? "[]" : out)) {
        auto& entries = table[port.at("ifname").get<std::string>()];
        for (const auto& v : port.at("vlans")) {
            std::string e = fmt::format("{}", v.at("vlan").get<int>());
            if (v.contains("flags"))
                for (const auto& f : v.at("flags"))
                    e += " " + f.get<std::string>();
            entries.push_back(e);
        }
    }
    return table;
}

// Packets counted by the gact action of filter `pref` on `dev`'s `dir` hook.
std::uint64_t filter_packets(const std::string& dev, const std::string& dir, int pref) {
    auto out = must(fmt::format("tc -s -j filter show dev {} {}", dev, dir));
    for (const auto& f : json::parse(out)) {
        if (f.value("pref", -1) != pref || !f.contains("options")) continue;
        return f.at("options").at("actions").at(0).at("stats").at("packets").get<std::uint64_t>();
    }
    ADD_FAILURE() << "no filter pref " << pref << " on " << dev << " " << dir << ":\n" << out;
    return 0;
}

class NetsetupLab : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_FALSE(state_dir_.path.empty());
        options_.state_dir = (state_dir_.path / "net").string();
    }

    static NetSpec spec(std::string_view text) {
        auto s = parse_net_spec(text);
        if (!s) throw std::runtime_error(fmt::format("bad spec in test: {}", s.error().message));
        return *s;
    }
    // A per-run network, as `stockade run` makes it; returns once its port forwards.
    NetworkHandle open(std::string_view text) {
        auto s = spec(text);
        auto h = NetworkHandle::open(s, options_);
        if (!h) throw std::runtime_error(fmt::format("NetworkHandle::open: {}", h.error().message));
        if (s.bridge) wait_for_forwarding(s.tap);
        return std::move(*h);
    }
    UpResult up_ok(std::string_view text) {
        auto r = up(spec(text), options_);
        if (!r) throw std::runtime_error(fmt::format("up: {}", r.error().message));
        return std::move(*r);
    }
    std::vector<std::string> records() const {
        std::vector<std::string> ids;
        if (!std::filesystem::exists(options_.state_dir)) return ids;
        for (const auto& e : std::filesystem::directory_iterator(options_.state_dir))
            if (e.path().extension() == ".json") ids.push_back(e.path().stem().string());
        return ids;
    }
    int cli(std::vector<std::string> args, std::string* out = nullptr, std::string* err = nullptr) {
        args.insert(args.begin(), {"--state-dir", options_.state_dir});
        std::ostringstream o, e;
        int status = net_cli(args, o, e);
        if (out) *out = o.str();
        if (err) *err = e.str();
        return status;
    }

    FreshNetns netns_;  // first member: the namespace outlives everything the test made
    NetOptions options_;
    test::TempDir state_dir_{"stockade-net-lab"};
};

MacAddress mac_of(const NetworkHandle& h) {
    return NetSpec(*parse_net_spec(h.state().spec)).mac;
}

TEST_F(NetsetupLab, SpoofedSourceMacIsDroppedInTheKernel) {
    auto a = open("id=a,bridge=br-lab,vlan=10");  // filter=mac, the default
    auto b = open("id=b,bridge=br-lab,vlan=10,filter=off");
    auto c = open("id=c,bridge=br-lab,vlan=10,filter=off");
    TapEnd ta(a.tap_fds()[0].get()), tb(b.tap_fds()[0].get()), tc(c.tap_fds()[0].get());
    auto ma = mac_of(a), mb = mac_of(b);
    auto spoofed = mac("02:de:ad:be:ef:01");
    settle();
    (void)tb.receive();

    for (int i = 0; i < 5; ++i) {
        ta.send({kBroadcast, ma, {}, fmt::format("good-{}", i)});
        ta.send({kBroadcast, spoofed, {}, fmt::format("spoofed-{}", i)});
        ta.send({mb, mb, {}, fmt::format("impersonating-b-{}", i)});  // B's own MAC
    }
    settle();
    EXPECT_THAT(markers(tb.receive()),
                ElementsAre("good-0", "good-1", "good-2", "good-3", "good-4"));
    EXPECT_EQ(filter_packets("stk-a", "ingress", 2), 10u)
        << "the drop rule counted the 10 forged frames";
    EXPECT_EQ(filter_packets("stk-a", "ingress", 1), 5u) << "the pass rule counted the 5 good ones";

    // Control: the same forged frame from a port without the filter does arrive, so the
    // drop above is the filter's doing and not the bridge's.
    tc.send({kBroadcast, spoofed, {}, "spoofed-from-c"});
    settle();
    EXPECT_THAT(markers(tb.receive()), ElementsAre("spoofed-from-c"));
}

TEST_F(NetsetupLab, StrictFilterDeliversOnlyOwnUnicastBroadcastAndMulticast) {
    auto s = open("id=s,bridge=br-lab,vlan=10,filter=strict");
    auto m = open("id=m,bridge=br-lab,vlan=10");
    auto t = open("id=t,bridge=br-lab,vlan=10");
    TapEnd ts(s.tap_fds()[0].get()), tm(m.tap_fds()[0].get()), tt(t.tap_fds()[0].get());
    auto ms = mac_of(s), mt = mac_of(t);
    settle();
    (void)ts.receive();
    (void)tm.receive();

    tt.send({mac("02:00:00:00:99:99"), mt, {}, "flooded-unicast"});  // unknown: flooded
    tt.send({ms, mt, {}, "to-s"});
    tt.send({kBroadcast, mt, {}, "broadcast"});
    tt.send({mac("01:00:5e:00:00:fb"), mt, {}, "multicast"});
    settle();
    EXPECT_THAT(markers(ts.receive()), ElementsAre("to-s", "broadcast", "multicast"));
    // Control: a port without strict filtering does get the flooded unicast.
    EXPECT_THAT(markers(tm.receive()), Contains("flooded-unicast"));
}

TEST_F(NetsetupLab, VlansSeparateAccessPortsAndTrunksCarryTags) {
    auto a = open("id=a,bridge=br-lab,vlan=10");
    auto b = open("id=b,bridge=br-lab,vlan=10");
    auto c = open("id=c,bridge=br-lab,vlan=20");
    auto t = open("id=t,bridge=br-lab,trunk=10+20");
    TapEnd ta(a.tap_fds()[0].get()), tb(b.tap_fds()[0].get()), tc(c.tap_fds()[0].get()),
        tt(t.tap_fds()[0].get());
    auto ma = mac_of(a), mc = mac_of(c), mt = mac_of(t);
    struct Seen {
        std::vector<Received> a, b, c, t;
    };
    auto after = [&](auto send) {
        settle();
        (void)ta.receive(), (void)tb.receive(), (void)tc.receive(), (void)tt.receive();
        send();
        settle();
        return Seen{ta.receive(), tb.receive(), tc.receive(), tt.receive()};
    };

    auto s1 = after([&] { ta.send({kBroadcast, ma, {}, "from-a"}); });
    EXPECT_THAT(markers(s1.b), ElementsAre("from-a")) << "same VLAN: delivered";
    EXPECT_FALSE(s1.b.at(0).vlan) << "to an access port: untagged";
    EXPECT_THAT(markers(s1.c), IsEmpty()) << "VLAN 20 does not hear VLAN 10";
    ASSERT_THAT(markers(s1.t), ElementsAre("from-a"));
    EXPECT_EQ(s1.t.at(0).vlan, 10) << "to the trunk: tagged 10";

    auto s2 = after([&] { tc.send({kBroadcast, mc, {}, "from-c"}); });
    EXPECT_THAT(markers(s2.a), IsEmpty());
    EXPECT_THAT(markers(s2.b), IsEmpty());
    ASSERT_THAT(markers(s2.t), ElementsAre("from-c"));
    EXPECT_EQ(s2.t.at(0).vlan, 20);

    auto s3 = after([&] {
        tt.send({kBroadcast, mt, 20, "trunk-20"});
        tt.send({kBroadcast, mt, 10, "trunk-10"});
    });
    EXPECT_THAT(markers(s3.a), ElementsAre("trunk-10"));
    EXPECT_THAT(markers(s3.b), ElementsAre("trunk-10"));
    ASSERT_THAT(markers(s3.c), ElementsAre("trunk-20"));
    EXPECT_FALSE(s3.c.at(0).vlan) << "the tag comes off towards an access port";

    auto s4 = after([&] {
        tt.send({kBroadcast, mt, {}, "trunk-untagged"});  // a trunk port has no PVID
        tt.send({kBroadcast, mt, 30, "trunk-30"});        // not a VLAN of the trunk
        ta.send({kBroadcast, ma, 20, "a-hops-to-20"});    // VLAN hopping from an access port
        ta.send({kBroadcast, ma, 1, "a-tags-vlan-1"});    // the default VLAN is gone
    });
    EXPECT_THAT(markers(s4.a), IsEmpty());
    EXPECT_THAT(markers(s4.b), IsEmpty());
    EXPECT_THAT(markers(s4.c), IsEmpty());
    EXPECT_THAT(markers(s4.t), IsEmpty());

    // Exactly the configured VLANs, and none on the bridge's own (host) port.
    auto table = vlan_table();
    EXPECT_THAT(table["stk-a"], ElementsAre("10 PVID Egress Untagged"));
    EXPECT_THAT(table["stk-c"], ElementsAre("20 PVID Egress Untagged"));
    EXPECT_THAT(table["stk-t"], ElementsAre("10", "20"));
    EXPECT_THAT(table["br-lab"], IsEmpty()) << "the host's port of the bridge is on no VLAN";
}

TEST_F(NetsetupLab, IsolatedPortsReachOnlyNonIsolatedOnes) {
    auto i1 = open("id=i1,bridge=br-iso,vlan=5,isolated=yes");
    auto i2 = open("id=i2,bridge=br-iso,vlan=5,isolated=yes");
    auto n = open("id=n,bridge=br-iso,vlan=5");
    TapEnd t1(i1.tap_fds()[0].get()), t2(i2.tap_fds()[0].get()), tn(n.tap_fds()[0].get());
    settle();
    (void)t1.receive(), (void)t2.receive(), (void)tn.receive();
    t1.send({kBroadcast, mac_of(i1), {}, "from-i1"});
    settle();
    EXPECT_THAT(markers(t2.receive()), IsEmpty());
    EXPECT_THAT(markers(tn.receive()), ElementsAre("from-i1"));
    tn.send({kBroadcast, mac_of(n), {}, "from-n"});
    settle();
    EXPECT_THAT(markers(t1.receive()), ElementsAre("from-n"));
    EXPECT_THAT(markers(t2.receive()), ElementsAre("from-n"));
}

TEST_F(NetsetupLab, UplinkTrunksEachSandboxVlanToTheFarSide) {
    NamedNetns far(fmt::format("stk-far-{}", ::getpid()));
    must("ip link add upl0 type veth peer name far0 netns " + far.name());
    far.exec("ip link set far0 up");
    for (int vid : {10, 20}) {
        far.exec(fmt::format("ip link add link far0 name far0.{0} type vlan id {0}", vid));
        far.exec(fmt::format("ip link set far0.{} up", vid));
    }
    auto before = host_snapshot();  // upl0 exists, down, on no bridge
    {
        auto a = open("id=a,bridge=br-up,vlan=10,uplink=upl0");
        auto b = open("id=b,bridge=br-up,vlan=20,uplink=upl0");
        auto n = open("id=n,bridge=br-up,uplink=upl0");  // VLAN 1: native on the uplink
        TapEnd ta(a.tap_fds()[0].get()), tb(b.tap_fds()[0].get()), tn(n.tap_fds()[0].get());
        PacketEnd f0(far.packet_socket("far0")), f10(far.packet_socket("far0.10")),
            f20(far.packet_socket("far0.20"));
        auto link = link_json("upl0");
        EXPECT_EQ(link.value("master", ""), "br-up");
        EXPECT_THAT(link.at("flags"), Contains("UP"));
        EXPECT_THAT(vlan_table()["upl0"], ElementsAre("1 PVID Egress Untagged", "10", "20"));
        wait_for_forwarding("upl0");
        settle();
        (void)f0.receive(), (void)f10.receive(), (void)f20.receive();

        ta.send({kBroadcast, mac_of(a), {}, "a"});
        ta.send({kBroadcast, mac("02:de:ad:be:ef:02"), {}, "a-spoofed"});
        tb.send({kBroadcast, mac_of(b), {}, "b"});
        tn.send({kBroadcast, mac_of(n), {}, "n"});
        settle();
        EXPECT_THAT(markers(f10.receive()), ElementsAre("a")) << "counted on the far side";
        EXPECT_THAT(markers(f20.receive()), ElementsAre("b"));
        auto all = f0.receive();
        ASSERT_THAT(markers(all), ElementsAre("a", "b", "n"));
        EXPECT_EQ(all[0].vlan, 10);
        EXPECT_EQ(all[1].vlan, 20);
        EXPECT_FALSE(all[2].vlan) << "VLAN 1 leaves untagged (native)";

        settle();
        (void)ta.receive(), (void)tb.receive(), (void)tn.receive();
        f10.send({kBroadcast, mac("02:fa:00:00:00:10"), {}, "far-10"});
        settle();
        EXPECT_THAT(markers(ta.receive()), ElementsAre("far-10"));
        EXPECT_THAT(markers(tb.receive()), IsEmpty());
        EXPECT_THAT(markers(tn.receive()), IsEmpty());
    }
    EXPECT_EQ(host_snapshot_as(before), before)
        << "the uplink is back off the bridge, down, no VLANs";
    EXPECT_THAT(records(), IsEmpty());
}

TEST_F(NetsetupLab, DownRemovesExactlyWhatUpCreatedAndHandsSharedThingsOver) {
    // What was there before: a VLAN-filtering bridge with a port of its own, an uplink
    // (down, on no bridge), and someone else's tc filter.
    must("ip link add br-pre type bridge vlan_filtering 1");
    must("ip link add pre0 type veth peer name pre1");
    must("ip link set pre0 master br-pre");
    for (auto l : {"br-pre", "pre0", "pre1"})
        must(fmt::format("ip link set {} up", l));
    must("ip link add upl0 type veth peer name upl1");
    must("ip link set upl1 up");
    must("tc qdisc add dev pre1 clsact");
    must("tc filter add dev pre1 ingress pref 7 flower src_mac 02:00:00:00:00:07 action drop");
    auto before = host_snapshot();

    up_ok(
        "id=s1,bridge=br-new,vlan=10,trunk=30,uplink=upl0,filter=strict,queues=2,"
        "owner=1000:1000,mtu=1400");
    up_ok("id=s2,bridge=br-pre,vlan=20");
    up_ok("id=s3,bridge=br-new,vlan=10,uplink=upl0");
    // Persistent taps: their fds are closed, the taps stay.
    for (auto tap : {"stk-s1", "stk-s2", "stk-s3", "br-new"})
        EXPECT_TRUE(link_exists(tap)) << tap;
    EXPECT_EQ(link_json("stk-s1").at("linkinfo").at("info_data").value("persist", false), true);
    EXPECT_EQ(link_json("stk-s2").value("master", ""), "br-pre");
    EXPECT_THAT(vlan_table()["stk-s2"], ElementsAre("20 PVID Egress Untagged"))
        << "br-pre's default VLAN 1 is taken off the sandbox's port";
    EXPECT_THAT(records(), UnorderedElementsAre("s1", "s2", "s3"));

    // s1 made br-new, put upl0 on it with VLANs 10 and 30, set it up. s3 uses all of that
    // but VLAN 30: those are handed over, the rest goes.
    auto d1 = down("s1", options_);
    ASSERT_TRUE(d1) << d1.error().message;
    EXPECT_THAT(d1->handed_over,
                UnorderedElementsAre("bridge br-new to s3", "upl0 as a port of br-new to s3",
                                     "VLAN 10 on upl0 to s3", "upl0 up to s3"));
    EXPECT_THAT(d1->removed, UnorderedElementsAre("tap stk-s1", "VLAN 30 on upl0"));
    EXPECT_FALSE(link_exists("stk-s1"));
    EXPECT_EQ(link_json("stk-s3").value("master", ""), "br-new");
    EXPECT_THAT(vlan_table()["upl0"], ElementsAre("10"));

    auto d2 = down("s2", options_);
    ASSERT_TRUE(d2) << d2.error().message;
    EXPECT_THAT(d2->removed, ElementsAre("tap stk-s2")) << "nothing of br-pre is touched";
    auto d3 = down("s3", options_);
    ASSERT_TRUE(d3) << d3.error().message;
    EXPECT_THAT(d3->removed, UnorderedElementsAre("tap stk-s3", "upl0 up", "VLAN 10 on upl0",
                                                  "upl0 as a port of br-new", "bridge br-new"));

    EXPECT_EQ(host_snapshot_as(before), before);
    EXPECT_THAT(records(), IsEmpty());
}

TEST_F(NetsetupLab, UpIsIdempotentAndRefusesAConflictingSpec) {
    auto before = host_snapshot();
    const std::string text = "id=idem,bridge=br-idem,vlan=7";
    auto first = up_ok(text);
    EXPECT_FALSE(first.already_up);
    EXPECT_EQ(first.tap_fds.size(), 1u);
    first.tap_fds.clear();  // the tap loses its carrier, and then the bridge
    wait_for_operstate({"stk-idem", "br-idem"}, "DOWN");
    auto after_first = host_snapshot();
    auto record = must("cat " + options_.state_dir + "/idem.json");

    auto second = up_ok(text);
    EXPECT_TRUE(second.already_up);
    EXPECT_TRUE(second.tap_fds.empty());
    std::string out;
    EXPECT_EQ(cli({"up", text}, &out), 0);
    EXPECT_THAT(out, HasSubstr("idem: already up"));
    EXPECT_EQ(host_snapshot_as(after_first), after_first);
    EXPECT_EQ(must("cat " + options_.state_dir + "/idem.json"), record);

    auto other = up(spec("id=idem,bridge=br-idem,vlan=8"), options_);
    ASSERT_FALSE(other);
    EXPECT_THAT(other.error().message, HasSubstr("net up idem: already up with a different spec"));
    auto per_run = NetworkHandle::open(spec(text), options_);
    ASSERT_FALSE(per_run);
    EXPECT_THAT(per_run.error().message, HasSubstr("already up with a persistent tap"));
    EXPECT_EQ(host_snapshot_as(after_first), after_first);

    auto d = down("idem", options_);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_TRUE(d->was_up);
    EXPECT_EQ(host_snapshot_as(before), before);
    auto again = down("idem", options_);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_FALSE(again->was_up);
}

void expect_no_residue_at_any_step(NetsetupLab& t, NetOptions options, const NetSpec& spec,
                                   const std::string& before,
                                   const std::function<std::vector<std::string>()>& records) {
    unsigned n = 0;
    for (;; ++n) {
        ASSERT_LT(n, 64u) << "up never succeeded";
        options.fail_after_step = n;
        auto r = up(spec, options);
        if (r) break;
        EXPECT_THAT(r.error().message,
                    HasSubstr(fmt::format("injected failure before step {}", n + 1)));
        EXPECT_EQ(host_snapshot_as(before), before)
            << "residue after a failure at step " << n + 1 << ": " << r.error().message;
        EXPECT_THAT(records(), IsEmpty()) << "at step " << n + 1;
    }
    // bridge, uplink: port, VLAN 1, 20, 30, up; tap: create, MAC, IPv6, filter, port,
    // isolation, VLANs, up.
    EXPECT_GE(n, 14u) << "fewer steps than expected: is every step a fault-injection point?";
    auto d = down(spec.id, options);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(host_snapshot_as(before), before);
    (void)t;
}

TEST_F(NetsetupLab, InjectedFailureAtAnyStepLeavesNoResidue) {
    must("ip link add upl0 type veth peer name upl1");  // down: up() will have to set it up
    auto before = host_snapshot();
    auto s = spec(
        "id=inj,bridge=br-inj,vlan=1,trunk=20+30,uplink=upl0,filter=strict,"
        "isolated=yes,queues=2,owner=1000:1000,mtu=1400");
    auto recs = [&] { return records(); };
    for (bool persistent : {true, false}) {
        SCOPED_TRACE(persistent ? "persistent tap" : "per-run tap");
        NetOptions o = options_;
        o.persistent = persistent;
        expect_no_residue_at_any_step(*this, o, s, before, recs);
    }
}

TEST_F(NetsetupLab, WithoutCapNetAdminUpFailsClearlyAndChangesNothing) {
    auto before = host_snapshot();
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        ::close(pipe_fds[0]);
        __user_cap_header_struct h{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct d[2] = {};
        if (::syscall(SYS_capget, &h, d) != 0) ::_exit(90);
        for (auto* set : {&d[0].effective, &d[0].permitted, &d[0].inheritable})
            *set &= ~CAP_TO_MASK(CAP_NET_ADMIN);
        if (::syscall(SYS_capset, &h, d) != 0) ::_exit(91);
        std::string report;
        auto r = up(spec("id=nocap,bridge=br-nocap,vlan=3,uplink=lo"), options_);
        report += (r ? std::string("up succeeded") : r.error().message) + "\n";
        std::ostringstream o, e;
        std::vector<std::string> args{"--state-dir", options_.state_dir, "up", "id=nocap"};
        int cli_status = net_cli(args, o, e);
        report += fmt::format("cli status {}: {}", cli_status, e.str());
        auto dn = down("nocap", options_);
        report += (dn ? std::string("down succeeded") : dn.error().message) + "\n";
        (void)!::write(pipe_fds[1], report.data(), report.size());
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    std::string report;
    char buf[4096];
    for (ssize_t n; (n = ::read(pipe_fds[0], buf, sizeof buf)) > 0;)
        report.append(buf, n);
    ::close(pipe_fds[0]);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    EXPECT_THAT(report,
                HasSubstr("net up nocap: needs CAP_NET_ADMIN, which this process does not have"));
    EXPECT_THAT(report, HasSubstr("cli status 125: stockade: net up nocap: needs CAP_NET_ADMIN"));
    EXPECT_THAT(report, HasSubstr("net down nocap: needs CAP_NET_ADMIN"));
    EXPECT_EQ(host_snapshot_as(before), before);
    EXPECT_THAT(records(), IsEmpty());
}

TEST_F(NetsetupLab, HostConflictsAreRejectedBeforeAnythingChanges) {
    must("ip link add br-x type veth peer name br-x1");  // a non-bridge with a bridge's name
    must("ip link add stk-taken type veth peer name taken1");
    must("ip link add br-plain type bridge");  // VLAN filtering off
    must("ip link add br-other type bridge vlan_filtering 1");
    must("ip link add upo type veth peer name upo1");
    must("ip link set upo master br-other");
    auto before = host_snapshot();
    struct Case {
        const char* spec;
        const char* error;
    };
    for (auto [text, error] : {
             Case{"id=c1,bridge=br-new,uplink=nope0", "uplink: interface 'nope0' does not exist"},
             Case{"id=c2,bridge=br-x",
                  "bridge: 'br-x' is already used by a non-bridge interface (kind veth)"},
             Case{"id=c3,tap=stk-taken", "tap: interface 'stk-taken' already exists (kind veth)"},
             Case{"id=c4,bridge=br-plain",
                  "bridge: the existing bridge 'br-plain' has VLAN filtering off"},
             Case{"id=c5,bridge=br-new,uplink=upo", "uplink: 'upo' is already a port of br-other"},
             Case{"id=c6,bridge=br-new,uplink=br-other", "uplink: 'br-other' is a bridge"},
         }) {
        auto s = spec(text);
        auto expected = fmt::format("net up {}: {}", s.id, error);
        auto r = up(s, options_);
        ASSERT_FALSE(r) << text;
        EXPECT_THAT(r.error().message, HasSubstr(expected));
        auto h = NetworkHandle::open(s, options_);
        ASSERT_FALSE(h) << text;
        EXPECT_THAT(h.error().message, HasSubstr(expected));
        std::string err;
        EXPECT_EQ(cli({"up", text}, nullptr, &err), 125);
        EXPECT_THAT(err, HasSubstr(expected));
    }
    EXPECT_EQ(host_snapshot_as(before), before);
    EXPECT_THAT(records(), IsEmpty());
}

TEST_F(NetsetupLab, KernelRefusalHalfWayIsRolledBackWithItsReason) {
    // Nothing in the spec or on the host says so up front, but the kernel will not make
    // the loopback device a bridge port: up() fails after creating the bridge.
    auto before = host_snapshot();
    auto r = up(spec("id=half,bridge=br-half,vlan=5,uplink=lo"), options_);
    ASSERT_FALSE(r);
    EXPECT_THAT(r.error().message,
                HasSubstr("net up half: adding lo to bridge br-half: Invalid argument"));
    EXPECT_FALSE(link_exists("br-half")) << "the bridge it had made is gone again";
    EXPECT_EQ(host_snapshot_as(before), before);
    EXPECT_THAT(records(), IsEmpty());
}

TEST_F(NetsetupLab, TapIsWhatTheRunnerExpects) {
    auto h = open(
        "id=tapper,mac=02:00:00:00:0a:01,mtu=9000,queues=2,owner=1234:5678,"
        "bridge=br-t,vlan=4");
    ASSERT_EQ(h.tap_fds().size(), 2u);
    for (const auto& fd : h.tap_fds()) {
        ifreq ifr{};
        ASSERT_EQ(::ioctl(fd.get(), TUNGETIFF, &ifr), 0);
        EXPECT_STREQ(ifr.ifr_name, "stk-tapper");
        for (int flag : {IFF_TAP, IFF_NO_PI, IFF_VNET_HDR, IFF_MULTI_QUEUE})
            EXPECT_TRUE(ifr.ifr_flags & flag) << "flag " << flag;
        int hdr = 0;
        ASSERT_EQ(::ioctl(fd.get(), TUNGETVNETHDRSZ, &hdr), 0);
        EXPECT_EQ(hdr, kVnetHdrSize);
    }
    auto link = link_json("stk-tapper");
    // The host side of the tap has its own MAC: with the sandbox's, the bridge would keep
    // the sandbox's frames for the host.
    EXPECT_EQ(link.value("address", ""), "fe:00:00:00:0a:01");
    EXPECT_EQ(link.value("mtu", 0), 9000);
    EXPECT_THAT(link.at("flags"), Contains("UP"));
    EXPECT_EQ(link.value("master", ""), "br-t");
    EXPECT_EQ(link.value("inet6_addr_gen_mode", ""), "none") << link.dump(1);
    const auto& tun = link.at("linkinfo").at("info_data");
    EXPECT_EQ(tun.value("type", ""), "tap") << tun.dump();
    EXPECT_EQ(tun.value("user", -1), 1234) << tun.dump();
    EXPECT_EQ(tun.value("group", -1), 5678) << tun.dump();
    EXPECT_EQ(tun.value("multi_queue", false), true) << tun.dump();
    EXPECT_EQ(tun.value("persist", true), false) << tun.dump();
    auto addrs = json::parse(must("ip -j addr show dev stk-tapper"));
    EXPECT_TRUE(addrs.at(0).at("addr_info").empty()) << "the host has no address on the tap";
    EXPECT_THAT(records(), ElementsAre("tapper"));

    // The runner takes the fds; once they are closed the per-run tap is gone, and the
    // handle's teardown copes.
    auto fds = h.take_tap_fds();
    fds.clear();
    EXPECT_FALSE(link_exists("stk-tapper"));
    auto report = h.close();
    ASSERT_TRUE(report) << report.error().message;
    EXPECT_THAT(report->removed, Contains("tap stk-tapper (already gone)"));
    EXPECT_FALSE(link_exists("br-t"));
    EXPECT_THAT(records(), IsEmpty());

    // The destructor tears down too.
    {
        auto scoped = open("id=scoped,bridge=br-s,vlan=4");
        EXPECT_TRUE(link_exists("stk-scoped"));
    }
    EXPECT_FALSE(link_exists("stk-scoped"));
    EXPECT_FALSE(link_exists("br-s"));
    EXPECT_THAT(records(), IsEmpty());
}

TEST_F(NetsetupLab, CliMakesPersistentTapsTheRunnerCanAttachTo) {
    std::string out, err;
    ASSERT_EQ(cli({"up", "id=pers,queues=2,bridge=br-p,vlan=9"}, &out, &err), 0) << err;
    EXPECT_THAT(out, HasSubstr("pers: up"));
    EXPECT_EQ(link_json("stk-pers").at("linkinfo").at("info_data").value("persist", false), true);
    ASSERT_EQ(cli({"show", "pers"}, &out, &err), 0) << err;
    EXPECT_THAT(out, HasSubstr("created  tap stk-pers"));
    EXPECT_THAT(out, HasSubstr("created  bridge br-p"));

    auto fds = attach_tap("stk-pers", 2);
    ASSERT_TRUE(fds) << fds.error().message;
    EXPECT_EQ(fds->size(), 2u);
    fds->clear();

    ASSERT_EQ(cli({"down", "pers"}, &out, &err), 0) << err;
    EXPECT_THAT(out, HasSubstr("removed   tap stk-pers"));
    EXPECT_THAT(out, HasSubstr("removed   bridge br-p"));
    EXPECT_FALSE(link_exists("stk-pers"));
    EXPECT_FALSE(link_exists("br-p"));
    ASSERT_EQ(cli({"down", "id=pers,queues=2"}, &out, &err), 0) << err;
    EXPECT_THAT(out, HasSubstr("pers: not up"));
}

}  // namespace
}  // namespace stockade::net
