// The state record: JSON round trip, hostile files, the directory's files and lock.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "base/io.hpp"
#include "netsetup/state.hpp"
#include "tests/support/temp_dir.hpp"

namespace stockade::net {
namespace {

NetState sample() {
    NetState s;
    s.id = "sb0";
    s.spec = "id=sb0,tap=stk-sb0";
    s.persistent = true;
    s.complete = true;
    s.resources = {
        {ResourceKind::bridge, "br0", 5, {}, 0, true},
        {ResourceKind::bridge_port, "eth1", 3, "br0", 0, false},
        {ResourceKind::port_vlan, "eth1", 3, "br0", 10, true},
        {ResourceKind::link_up, "eth1", 3, {}, 0, false},
        {ResourceKind::tap, "stk-sb0", 9, {}, 0, true},
    };
    return s;
}

class netsetup_state_dir : public ::testing::Test {
  protected:
    void SetUp() override { ASSERT_FALSE(tmp_.path.empty()); }
    test::TempDir tmp_{"stockade-net-test"};
    const std::string root_ = tmp_.path.string();
};

TEST(netsetup_state, JsonRoundTrip) {
    auto s = sample();
    auto back = state_from_json(state_to_json(s), "test");
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, s);
}

TEST(netsetup_state, KeysIdentifySharedThings) {
    auto s = sample();
    EXPECT_EQ(s.resources[0].key(), "bridge:br0");
    EXPECT_EQ(s.resources[1].key(), "port:br0:eth1");
    EXPECT_EQ(s.resources[2].key(), "vlan:eth1:10");
    EXPECT_EQ(s.resources[3].key(), "up:eth1");
    EXPECT_EQ(s.resources[4].key(), "tap:stk-sb0");
    EXPECT_EQ(s.resources[2].describe(), "VLAN 10 on eth1");
}

TEST(netsetup_state, RejectsBrokenFiles) {
    for (
        const char* bad :
        {"", "{", "[]", "{\"version\":2,\"id\":\"a\"}", R"({"version":1,"id":"a"})",
         R"({"version":1,"id":"a","spec":"","persistent":true,"complete":true,
              "resources":[{"kind":"volcano","link":"x","ifindex":1,"created":true}]})",
         R"({"version":1,"id":"a","spec":"","persistent":"yes","complete":true,"resources":[]})"}) {
        auto r = state_from_json(bad, "/run/x.json");
        ASSERT_FALSE(r) << "accepted: " << bad;
        EXPECT_EQ(r.error().message.rfind("/run/x.json: ", 0), 0u) << r.error().message;
    }
}

TEST_F(netsetup_state_dir, SaveLoadListRemove) {
    StateDir dir(root_ + "/net");
    auto missing = dir.load_all();
    ASSERT_TRUE(missing) << missing.error().message;
    EXPECT_TRUE(missing->empty());  // no directory yet: no records, no error

    auto lock = dir.lock();
    ASSERT_TRUE(lock) << lock.error().message;
    struct stat st {};
    ASSERT_EQ(::stat(dir.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);

    auto a = sample();
    auto b = sample();
    b.id = "sb1";
    b.complete = false;
    ASSERT_TRUE(dir.save(b));
    ASSERT_TRUE(dir.save(a));
    EXPECT_TRUE(std::filesystem::exists(root_ + "/net/sb0.json"));
    auto loaded = dir.load("sb0");
    ASSERT_TRUE(loaded);
    ASSERT_TRUE(*loaded);
    EXPECT_EQ(**loaded, a);
    auto none = dir.load("nope");
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);

    auto all = dir.load_all();
    ASSERT_TRUE(all) << all.error().message;
    ASSERT_EQ(all->size(), 2u);  // .lock and temporary files are not records
    EXPECT_EQ((*all)[0].id, "sb0");
    EXPECT_EQ((*all)[1].id, "sb1");

    ASSERT_TRUE(dir.remove("sb0"));
    ASSERT_TRUE(dir.remove("sb0"));  // removing twice is fine
    EXPECT_FALSE(std::filesystem::exists(root_ + "/net/sb0.json"));
}

TEST_F(netsetup_state_dir, RecordMustMatchItsFileName) {
    StateDir dir(root_);
    auto s = sample();
    ASSERT_TRUE(write_file(root_ + "/other.json", state_to_json(s), O_CREAT));
    auto r = dir.load("other");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("records id 'sb0'"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace stockade::net
