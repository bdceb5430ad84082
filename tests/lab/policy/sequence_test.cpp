// The hardening sequence on a live process, as root without a user namespace (the runner's
// way): cgroup leaf, jail root, fork_into_namespaces, enter_jail, drop_privileges, seccomp.
// The supervisor (this test) then checks the sandbox from outside, through /proc/PID, as the
// runner's own lab tests will on a live sandbox; teardown must leave nothing behind.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <linux/magic.h>

#include <filesystem>
#include <sstream>

#include "policy/cgroup.hpp"
#include "policy/jail.hpp"
#include "policy/namespaces.hpp"
#include "policy/privileges.hpp"
#include "policy/seccomp.hpp"
#include "tests/lab/policy/lab_util.hpp"

namespace stockade::policy {
namespace {

namespace fs = std::filesystem;
using namespace stockade::test;

constexpr const char* kCgroupParent = "/sys/fs/cgroup/stockade-lab-seq";
constexpr const char* kRootParent = "/run/stockade-lab/jail";

Policy lab_policy() {
    Policy p = default_policy();
    p.cgroup.parent = kCgroupParent;
    p.cgroup.memory_max = 256ull << 20;
    p.jail.root_parent = kRootParent;
    p.jail.mount_proc = true;
    p.jail.binds = {BindMount{"/usr/share/common-licenses", "/data/licenses", false}};
    return p;
}

// The sandbox side: everything after the fork, in contract order. Reports "ok <ms...>" or
// "error <message>" on `report`, then waits for a line on `go` before `then` runs.
[[noreturn]] void sandbox(const Policy& p, const std::string& root, int report, int go,
                          std::vector<int> keep, const std::function<void()>& then) {
    auto fail_out = [&](const Error& e) {
        (void)write_all(report, "error " + e.message + "\n");
        ::_exit(125);
    };
    const double t0 = now_ms();
    if (auto r = enter_jail(jail_spec(p, root, keep)); !r) fail_out(r.error());
    const double t1 = now_ms();
    if (auto r = drop_privileges(p.uid, p.gid); !r) fail_out(r.error());
    const double t2 = now_ms();
    // A profile for this thread: the baseline is enough to report and wait.
    auto profile = SeccompProfile("lab-sandbox", p.seccomp_mode).baseline();
    if (auto r = profile.load(); !r) fail_out(r.error());
    const double t3 = now_ms();
    (void)write_all(report, fmt::format("ok {:.3f} {:.3f} {:.3f} {:.3f}\n", t1 - t0, t2 - t1,
                                        t3 - t2, t3 - t0));
    (void)read_line(go);
    then();
    ::_exit(0);
}

class policy_lab_sequence : public ::testing::Test {
  protected:
    void SetUp() override {
        mounts_before_ = text_of("/proc/self/mountinfo");
        fds_before_ = list_dir("/proc/self/fd");
    }
    void TearDown() override {
        EXPECT_EQ(text_of("/proc/self/mountinfo"), mounts_before_) << "a mount was left behind";
        EXPECT_EQ(list_dir("/proc/self/fd"), fds_before_) << "a descriptor was left open";
        for (const auto& e : list_dir(kCgroupParent))
            EXPECT_FALSE(fs::is_directory(fs::path(kCgroupParent) / e)) << "left behind: " << e;
        EXPECT_TRUE(list_dir(kRootParent).empty()) << "a jail root was left behind";
        ::rmdir(kCgroupParent);
    }
    std::string mounts_before_;
    std::vector<std::string> fds_before_;
};

TEST_F(policy_lab_sequence, JailedUnprivilegedFilteredAndSeenSoFromOutside) {
    const Policy p = lab_policy();
    const double s0 = now_ms();
    auto leaf = CgroupLeaf::create(p.cgroup, "sb-lab");
    ASSERT_TRUE(leaf) << leaf.error().message;
    auto root = JailRoot::create(p.jail.root_parent, "sb-lab");
    ASSERT_TRUE(root) << root.error().message;
    const std::string leaf_path = leaf->path(), root_path = root->path();

    int report[2], go[2];
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
    int memfd = ::memfd_create("guest-memory-stand-in", MFD_CLOEXEC);
    int stray = ::open("/etc/hostname", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(memfd, 0);
    ASSERT_GE(stray, 0);

    const double s1 = now_ms();
    auto forked = fork_into_namespaces({p.namespaces, p.uid, p.gid, leaf->dir_fd(), leaf_path});
    ASSERT_TRUE(forked) << forked.error().message;
    if (forked->in_child())
        sandbox(p, root_path, report[1], go[0], {report[1], go[0], memfd}, [] {});
    const pid_t pid = forked->pid;
    ::close(report[1]);
    ::close(go[0]);
    const std::string line = read_line(report[0]);
    const double s2 = now_ms();
    ASSERT_TRUE(line.starts_with("ok ")) << line;
    std::istringstream times(line.substr(3));
    double jail_ms = 0, drop_ms = 0, seccomp_ms = 0, total_ms = 0;
    times >> jail_ms >> drop_ms >> seccomp_ms >> total_ms;
    std::printf(
        "FIGURE hardening (lab): cgroup leaf + jail root %.2f ms; fork into namespaces through "
        "seccomp loaded %.2f ms, of which in the sandbox: jail %.2f ms, privilege drop %.2f ms, "
        "seccomp load %.2f ms (total %.2f ms)\n",
        s1 - s0, s2 - s1, jail_ms, drop_ms, seccomp_ms, total_ms);

    const std::string spid = std::to_string(pid);
    // Credentials, capabilities, no_new_privs, seccomp: from the supervisor's side.
    auto st = read_process_status(spid);
    ASSERT_TRUE(st) << st.error().message;
    EXPECT_TRUE(verify_dropped(*st, p.uid, p.gid))
        << verify_dropped(*st, p.uid, p.gid).error().message;
    EXPECT_EQ(st->seccomp, 2);
    EXPECT_EQ(st->seccomp_filters, 1);
    EXPECT_NE(text_of(fmt::format("/proc/{}/status", spid)).find("CapEff:\t0000000000000000"),
              std::string::npos);
    // Namespaces: every one the policy names differs from ours; user is shared (root start).
    for (const char* ns : {"mnt", "pid", "ipc", "uts", "net", "cgroup"})
        EXPECT_NE(ns_inode(spid, ns), ns_inode("self", ns)) << ns;
    EXPECT_EQ(ns_inode(spid, "user"), ns_inode("self", "user"));
    // Root: the jail's read-only tmpfs with the bind and /proc, nothing of the host.
    const std::string proot = fmt::format("/proc/{}/root", spid);
    EXPECT_EQ(list_dir(proot), (std::vector<std::string>{"data", "proc"}));
    EXPECT_EQ(list_dir(proot + "/data"), (std::vector<std::string>{"licenses"}));
    EXPECT_FALSE(list_dir(proot + "/data/licenses").empty()) << "the bind shows its source";
    struct statfs sfs {};
    ASSERT_EQ(::statfs(proot.c_str(), &sfs), 0);
    EXPECT_EQ(sfs.f_type, TMPFS_MAGIC);
    EXPECT_TRUE(sfs.f_flags & ST_RDONLY);
    EXPECT_TRUE(list_dir(root_path).empty()) << "the host's jail directory stays empty";
    // The cgroup leaf holds it.
    EXPECT_EQ(text_of(fmt::format("/proc/{}/cgroup", spid)), "0::/stockade-lab-seq/sb-lab\n");
    EXPECT_EQ(leaf->read("cgroup.procs").value_or("?"), spid);
    // Only the kept descriptors (and 0, 1, 2) are open.
    auto fds = list_dir(fmt::format("/proc/{}/fd", spid));
    std::vector<std::string> expected = {
        "0", "1", "2", std::to_string(report[1]), std::to_string(go[0]), std::to_string(memfd)};
    std::sort(expected.begin(), expected.end());
    EXPECT_EQ(fds, expected);
    // rlimits of the default policy.
    const std::string limits = text_of(fmt::format("/proc/{}/limits", spid));
    EXPECT_NE(limits.find("Max open files            1024                 1024"), std::string::npos)
        << limits;
    EXPECT_NE(limits.find("Max core file size        0                    0"), std::string::npos);
    EXPECT_NE(limits.find("Max locked memory         0                    0"), std::string::npos);
    EXPECT_EQ(::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 1) << "the supervisor itself is untouched";

    ASSERT_EQ(::write(go[1], "\n", 1), 1);
    int status = wait_status(pid);
    EXPECT_TRUE(exited_ok(status)) << describe_status(status);
    ::close(report[0]);
    ::close(go[1]);
    ::close(memfd);
    ::close(stray);
    EXPECT_TRUE(leaf->remove());
    EXPECT_TRUE(root->remove());
    EXPECT_FALSE(fs::exists(leaf_path));
    EXPECT_FALSE(fs::exists(root_path));
}

TEST_F(policy_lab_sequence, SeccompKillsTheSandboxForAForbiddenCall) {
    const Policy p = lab_policy();
    auto leaf = CgroupLeaf::create(p.cgroup, "sb-kill");
    ASSERT_TRUE(leaf) << leaf.error().message;
    auto root = JailRoot::create(p.jail.root_parent, "sb-kill");
    ASSERT_TRUE(root) << root.error().message;
    int report[2], go[2];
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
    auto forked = fork_into_namespaces({p.namespaces, p.uid, p.gid, leaf->dir_fd(), leaf->path()});
    ASSERT_TRUE(forked) << forked.error().message;
    if (forked->in_child())
        sandbox(p, root->path(), report[1], go[0], {report[1], go[0]},
                [] { ::syscall(SYS_openat, AT_FDCWD, "/proc/self/status", O_RDONLY); });
    ::close(report[1]);
    ::close(go[0]);
    const std::string line = read_line(report[0]);
    ASSERT_TRUE(line.starts_with("ok ")) << line;
    ASSERT_EQ(::write(go[1], "\n", 1), 1);
    int status = wait_status(forked->pid);
    EXPECT_TRUE(killed_by(status, SIGSYS)) << describe_status(status);
    ::close(report[0]);
    ::close(go[1]);
    EXPECT_TRUE(leaf->remove());
    EXPECT_TRUE(root->remove());
}

TEST_F(policy_lab_sequence, AFailingStepIsNamedAndNothingIsLeft) {
    Policy p = lab_policy();
    p.jail.binds.push_back(BindMount{"/nonexistent/images", "/images", false});
    auto leaf = CgroupLeaf::create(p.cgroup, "sb-fail");
    ASSERT_TRUE(leaf) << leaf.error().message;
    auto root = JailRoot::create(p.jail.root_parent, "sb-fail");
    ASSERT_TRUE(root) << root.error().message;
    int report[2], go[2];
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(go, O_CLOEXEC), 0);
    auto forked = fork_into_namespaces({p.namespaces, p.uid, p.gid, leaf->dir_fd(), leaf->path()});
    ASSERT_TRUE(forked) << forked.error().message;
    if (forked->in_child()) sandbox(p, root->path(), report[1], go[0], {report[1], go[0]}, [] {});
    ::close(report[1]);
    ::close(go[0]);
    EXPECT_EQ(read_line(report[0]),
              "error jail: bind source /nonexistent/images: No such file or directory");
    EXPECT_TRUE(WIFEXITED(wait_status(forked->pid)));
    ::close(report[0]);
    ::close(go[1]);
    EXPECT_TRUE(leaf->remove());
    EXPECT_TRUE(root->remove());
}

constexpr int kSawSupervisorGone = 42;

TEST_F(policy_lab_sequence, TheSandboxDiesWithItsSupervisor) {
    // A supervisor that dies (crash, SIGKILL) cannot clean up; its sandbox must not outlive it.
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);  // orphans come back to us
    const Policy p = lab_policy();
    int report[2];
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    pid_t supervisor = ::fork();
    ASSERT_GE(supervisor, 0);
    if (supervisor == 0) {
        auto forked = fork_into_namespaces({p.namespaces, p.uid, p.gid, -1, {}});
        if (!forked) {
            // In the sandbox: it noticed its supervisor was already gone.
            constexpr std::string_view kGone = "the supervisor died before the sandbox started";
            ::_exit(forked.error().message == kGone ? kSawSupervisorGone : 1);
        }
        if (forked->in_child()) {
            ::pause();
            ::_exit(0);
        }
        (void)write_all(report[1], fmt::format("{}\n", forked->pid));
        ::pause();
        ::_exit(0);
    }
    ::close(report[1]);
    const pid_t sandbox_pid = std::stoi(read_line(report[0]));
    ::close(report[0]);
    // Killed at once: the sandbox may not even have run yet. PR_SET_PDEATHSIG alone loses
    // that race (the signal is only sent to a child that asked before the parent died);
    // fork_into_namespaces checks the parent's pidfd after asking, and the sandbox gives up.
    ::kill(supervisor, SIGKILL);
    EXPECT_TRUE(killed_by(wait_status(supervisor), SIGKILL));
    const int st = wait_status(sandbox_pid);
    EXPECT_TRUE(killed_by(st, SIGKILL) || (WIFEXITED(st) && WEXITSTATUS(st) == kSawSupervisorGone))
        << describe_status(st);
    ::prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

TEST_F(policy_lab_sequence, ForkIntoANewPidNamespaceLeavesTheSupervisorsAlone) {
    const std::string before = ns_inode("self", "pid_for_children");
    for (int i = 0; i < 3; ++i) {
        int st = 0;
        auto forked =
            fork_into_namespaces({{Namespace::mount, Namespace::pid}, 65534, 65534, -1, {}});
        ASSERT_TRUE(forked) << forked.error().message;
        if (forked->in_child()) ::_exit(::getpid() == 1 ? 0 : 1);
        st = wait_status(forked->pid);
        EXPECT_TRUE(exited_ok(st)) << describe_status(st);
    }
    EXPECT_EQ(ns_inode("self", "pid_for_children"), before);
    // Plain fork still works (it would fail with ENOMEM in a dead PID namespace).
    EXPECT_TRUE(exited_ok(run_in_child([] { return 0; })));
}

}  // namespace
}  // namespace stockade::policy
