// The per-sandbox cgroup v2 leaf, as root on the lab's cgroup2: limits written and read
// back, enforced on a process moved in, and nothing left after removal (even with a process
// still inside, or after a failed limit).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "policy/cgroup.hpp"
#include "tests/lab/policy/lab_util.hpp"

namespace stockade::policy {
namespace {

namespace fs = std::filesystem;
using namespace stockade::test;

constexpr const char* kParent = "/sys/fs/cgroup/stockade-lab-cg";

// /dev/ram0 of the lab's brd module: a block device for io.max.
constexpr std::uint32_t kRamMajor = 1, kRamMinor = 0;

class policy_lab_cgroup : public ::testing::Test {
  protected:
    void TearDown() override {
        // Every test removes its leaves; the shared parent must then hold none.
        for (const auto& e : list_dir(kParent))
            EXPECT_FALSE(fs::is_directory(fs::path(kParent) / e)) << "left behind: " << e;
        ::rmdir(kParent);
    }
};

CgroupPolicy limits() {
    CgroupPolicy c;
    c.parent = kParent;
    c.memory_max = 64ull << 20;
    c.memory_swap_max = 0;
    c.pids_max = 16;
    c.cpu_max = CpuMax{50000, 100000};
    IoMax io;
    io.major = kRamMajor;
    io.minor = kRamMinor;
    io.rbps = 1ull << 20;
    io.wiops = 100;
    c.io_max = {io};
    return c;
}

TEST_F(policy_lab_cgroup, LeafHasItsLimitsHoldsAProcessAndGoesAwayWithNothingLeft) {
    ASSERT_TRUE(fs::exists(fmt::format("/sys/dev/block/{}:{}", kRamMajor, kRamMinor)))
        << "the lab has no /dev/ram0 (brd module) for io.max";
    auto leaf = CgroupLeaf::create(limits(), "sb-1");
    ASSERT_TRUE(leaf) << leaf.error().message;
    EXPECT_EQ(leaf->path(), std::string(kParent) + "/sb-1");
    EXPECT_EQ(leaf->read("memory.max").value_or("?"), std::to_string(64ull << 20));
    EXPECT_EQ(leaf->read("memory.swap.max").value_or("?"), "0");
    EXPECT_EQ(leaf->read("pids.max").value_or("?"), "16");
    EXPECT_EQ(leaf->read("cpu.max").value_or("?"), "50000 100000");
    EXPECT_EQ(
        leaf->read("io.max").value_or("?"),
        fmt::format("{}:{} rbps={} wbps=max riops=max wiops=100", kRamMajor, kRamMinor, 1 << 20));
    // The controllers were enabled down the chain.
    for (const char* dir : {"/sys/fs/cgroup", kParent})
        for (const char* c : {"memory", "pids", "cpu", "io"})
            EXPECT_NE(text_of(fmt::format("{}/cgroup.subtree_control", dir)).find(c),
                      std::string::npos)
                << c << " in " << dir;

    // A process moved in shows the leaf as its cgroup.
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::pause();
        ::_exit(0);
    }
    ASSERT_TRUE(leaf->add_process(child)) << "moving the child";
    EXPECT_EQ(text_of(fmt::format("/proc/{}/cgroup", child)), "0::/stockade-lab-cg/sb-1\n");
    EXPECT_EQ(leaf->read("cgroup.procs").value_or("?"), std::to_string(child));

    // Removal with the process still inside: it is killed, then the leaf goes.
    const std::string path = leaf->path();
    auto removed = leaf->remove();
    ASSERT_TRUE(removed) << removed.error().message;
    EXPECT_TRUE(killed_by(wait_status(child), SIGKILL));
    EXPECT_FALSE(fs::exists(path));
    EXPECT_TRUE(leaf->remove()) << "removing twice is a no-op";
}

TEST_F(policy_lab_cgroup, LimitsAreEnforced) {
    auto lim = limits();
    lim.pids_max = 4;
    lim.memory_max = 32ull << 20;
    lim.io_max.clear();
    auto leaf = CgroupLeaf::create(lim, "sb-enforced");
    ASSERT_TRUE(leaf) << leaf.error().message;

    int go[2];
    ASSERT_EQ(::pipe(go), 0);
    // pids.max: the fifth task cannot be forked.
    pid_t forker = ::fork();
    ASSERT_GE(forker, 0);
    if (forker == 0) {
        ::close(go[1]);
        (void)read_line(go[0]);
        int made = 1;  // itself
        std::vector<pid_t> kids;
        for (int i = 0; i < 10; ++i) {
            pid_t k = ::fork();
            if (k == 0) {
                ::pause();
                ::_exit(0);
            }
            if (k < 0) {
                if (errno != EAGAIN) ::_exit(100);
                break;
            }
            kids.push_back(k);
            ++made;
        }
        for (pid_t k : kids)
            ::kill(k, SIGKILL);
        ::_exit(made);
    }
    ::close(go[0]);
    ASSERT_TRUE(leaf->add_process(forker));
    ASSERT_EQ(::write(go[1], "\n", 1), 1);
    ::close(go[1]);
    int st = wait_status(forker);
    ASSERT_TRUE(WIFEXITED(st)) << describe_status(st);
    EXPECT_EQ(WEXITSTATUS(st), 4) << "tasks that existed at once under pids.max 4";

    // memory.max without swap: touching 128 MiB gets the OOM killer.
    ASSERT_EQ(::pipe(go), 0);
    pid_t hog = ::fork();
    ASSERT_GE(hog, 0);
    if (hog == 0) {
        ::close(go[1]);
        (void)read_line(go[0]);
        const std::size_t size = 128u << 20;
        void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) ::_exit(2);
        std::memset(m, 1, size);
        ::_exit(0);
    }
    ::close(go[0]);
    ASSERT_TRUE(leaf->add_process(hog));
    ASSERT_EQ(::write(go[1], "\n", 1), 1);
    ::close(go[1]);
    st = wait_status(hog);
    EXPECT_TRUE(killed_by(st, SIGKILL)) << describe_status(st);
    EXPECT_NE(leaf->read("memory.events").value_or("").find("oom_kill 1"), std::string::npos)
        << leaf->read("memory.events").value_or("?");
    EXPECT_TRUE(leaf->remove());
}

TEST_F(policy_lab_cgroup, AFailedLimitLeavesNothing) {
    auto lim = limits();
    // No such block device (240 is a "local/experimental" major nothing here registers; brd
    // would create any minor of its own major on demand).
    lim.io_max[0].major = 240;
    auto leaf = CgroupLeaf::create(lim, "sb-bad");
    ASSERT_FALSE(leaf);
    EXPECT_NE(leaf.error().message.find(fmt::format(
                  "setting cgroup io.max of {}/sb-bad to 240:0 rbps=1048576 wiops=100: ", kParent)),
              std::string::npos)
        << leaf.error().message;
    EXPECT_FALSE(fs::exists(fmt::format("{}/sb-bad", kParent))) << "the half-made leaf is removed";
}

TEST_F(policy_lab_cgroup, ASecondLeafWithTheSameIdIsRefused) {
    auto lim = limits();
    lim.io_max.clear();
    auto a = CgroupLeaf::create(lim, "sb-twice");
    ASSERT_TRUE(a) << a.error().message;
    auto b = CgroupLeaf::create(lim, "sb-twice");
    ASSERT_FALSE(b);
    EXPECT_NE(b.error().message.find("already exists"), std::string::npos) << b.error().message;
    EXPECT_TRUE(fs::exists(a->path())) << "the refusal did not touch the first sandbox's leaf";
    EXPECT_TRUE(a->remove());
}

TEST_F(policy_lab_cgroup, JoinByDescriptor) {
    auto lim = limits();
    lim.io_max.clear();
    auto leaf = CgroupLeaf::create(lim, "sb-join");
    ASSERT_TRUE(leaf) << leaf.error().message;
    int st = run_in_child([&] {
        if (!join_cgroup(leaf->dir_fd(), leaf->path())) return 1;
        return text_of("/proc/self/cgroup") == "0::/stockade-lab-cg/sb-join\n" ? 0 : 2;
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
    EXPECT_TRUE(leaf->remove());
}

}  // namespace
}  // namespace stockade::policy
