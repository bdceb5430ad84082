// The startup contract on a live sandbox: while its guest runs a workload, the sandbox
// process is seen from outside through /proc — unprivileged, no capabilities, no_new_privs,
// a seccomp filter on every thread, its own namespaces, an empty jail as its root, in its
// cgroup leaf with the policy's limits — and after the run nothing of it is left.
// Runs in the lab VM only (--force-lab): it creates cgroups and jail roots as root.
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>

#include "lab/support/process.hpp"
#include "policy/privileges.hpp"

namespace stockade {
namespace {

namespace fs = std::filesystem;

std::string slurp(const std::string& path) {
    return lab::read_text(path);
}

std::vector<std::string> dir_entries(const std::string& path) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path.c_str())) {
        while (dirent* e = ::readdir(d))
            if (std::string n = e->d_name; n != "." && n != "..") out.push_back(n);
        ::closedir(d);
    }
    return out;
}

// A `stockade run` started in the background, its stdout read until a marker.
struct LiveSandbox {
    pid_t supervisor = -1;
    int out = -1;
    std::string seen;

    static LiveSandbox start(std::vector<std::string> args) {
        int p[2];
        EXPECT_EQ(::pipe(p), 0);
        LiveSandbox s;
        s.supervisor = ::fork();
        if (s.supervisor == 0) {
            ::dup2(p[1], 1);
            ::close(p[0]);
            std::vector<std::string> argv{lab::build_dir() + "/runner/stockade", "run"};
            argv.insert(argv.end(), args.begin(), args.end());
            std::vector<char*> c;
            for (auto& a : argv)
                c.push_back(a.data());
            c.push_back(nullptr);
            ::execv(c[0], c.data());
            ::_exit(127);
        }
        ::close(p[1]);
        s.out = p[0];
        return s;
    }
    bool wait_for(const std::string& marker, int seconds = 120) {
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
        char buf[4096];
        while (seen.find(marker) == std::string::npos) {
            if (std::chrono::steady_clock::now() > end) return false;
            ssize_t n = ::read(out, buf, sizeof buf);
            if (n <= 0) return false;
            seen.append(buf, static_cast<std::size_t>(n));
        }
        return true;
    }
    // The sandbox process: the supervisor's only child.
    [[nodiscard]] pid_t sandbox() const {
        std::istringstream in(
            slurp(fmt::format("/proc/{}/task/{}/children", supervisor, supervisor)));
        pid_t child = -1;
        in >> child;
        return child;
    }
    int finish() {
        ::close(out);
        int st = 0;
        ::waitpid(supervisor, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
};

std::string ns_link(const std::string& pid, const char* ns) {
    char buf[128] = {};
    const auto n = ::readlink(fmt::format("/proc/{}/ns/{}", pid, ns).c_str(), buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
}

TEST(Hardening, LiveSandboxIsJailedUnprivilegedAndFiltered) {
    const std::string id = "sb-hardening-test";
    const std::string leaf = "/sys/fs/cgroup/stockade/" + id;
    auto s =
        LiveSandbox::start({"--id", id, "--vcpus", "2", "--", "sh", "-c", "echo ready; sleep 600"});
    ASSERT_TRUE(s.wait_for("ready")) << s.seen;
    const pid_t child = s.sandbox();
    ASSERT_GT(child, 0);
    const std::string pid = std::to_string(child);

    // Ids and privileges of the process and of every one of its threads.
    auto status = policy::read_process_status(pid);
    ASSERT_TRUE(status) << status.error().message;
    EXPECT_TRUE(policy::verify_dropped(*status, 65534, 65534)) << slurp("/proc/" + pid + "/status");
    EXPECT_EQ(status->seccomp, 2);
    const auto threads = dir_entries("/proc/" + pid + "/task");
    EXPECT_GE(threads.size(), 5u)
        << "the event loop, the stdio relay, the control API and two vCPU threads";
    for (const auto& tid : threads) {
        auto t = policy::read_process_status(pid + "/task/" + tid);
        ASSERT_TRUE(t) << t.error().message;
        EXPECT_EQ(t->seccomp, 2) << "thread " << tid;
        EXPECT_GE(t->seccomp_filters, 1) << "thread " << tid;
        EXPECT_EQ(t->cap_eff | t->cap_prm | t->cap_bnd | t->cap_amb, 0u) << "thread " << tid;
        EXPECT_EQ(t->no_new_privs, 1);
    }

    // Namespaces: every one of the default policy's differs from ours (user is not in it).
    for (const char* ns : {"mnt", "pid", "ipc", "uts", "cgroup", "net"})
        EXPECT_NE(ns_link(pid, ns), ns_link("self", ns)) << ns;
    EXPECT_EQ(ns_link(pid, "user"), ns_link("self", "user"));

    // The root is the empty jail (a read-only tmpfs with nothing in it).
    EXPECT_TRUE(dir_entries("/proc/" + pid + "/root").empty())
        << "jail root has entries: " << dir_entries("/proc/" + pid + "/root").size();
    struct stat jail {
    }, host_root{};
    ASSERT_EQ(::stat(("/proc/" + pid + "/root/").c_str(), &jail), 0);
    ASSERT_EQ(::stat("/", &host_root), 0);
    EXPECT_NE(jail.st_dev, host_root.st_dev);

    // The cgroup leaf holds the process and has the default policy's limits.
    EXPECT_NE(slurp("/proc/" + pid + "/cgroup").find("/stockade/" + id), std::string::npos)
        << slurp("/proc/" + pid + "/cgroup");
    EXPECT_EQ(slurp(leaf + "/pids.max"), "128\n");
    EXPECT_EQ(slurp(leaf + "/memory.swap.max"), "0\n");
    EXPECT_NE(slurp(leaf + "/cgroup.procs").find(pid), std::string::npos);

    // Descriptors: nothing that names a host path but /dev/vhost-vsock (the workload's
    // stdio) and the inherited stdio. /dev/kvm itself is closed once the VM exists (the VM
    // and vCPUs are anonymous inodes).
    for (const auto& fd : dir_entries("/proc/" + pid + "/fd")) {
        char target[256] = {};
        ASSERT_GT(::readlink(("/proc/" + pid + "/fd/" + fd).c_str(), target, sizeof target - 1), 0);
        const std::string t = target;
        const bool ok = t.starts_with("anon_inode:") || t.starts_with("pipe:") ||
                        t.starts_with("socket:") || t == "/dev/vhost-vsock" || t == "/dev/null" ||
                        std::stoi(fd) <= 2;
        EXPECT_TRUE(ok) << "fd " << fd << " -> " << t;
    }

    ::kill(s.supervisor, SIGTERM);
    EXPECT_EQ(s.finish(), 128 + SIGTERM);
    // Teardown leaves no cgroup leaf, no jail root and no process.
    EXPECT_FALSE(fs::exists(leaf));
    EXPECT_FALSE(fs::exists("/run/stockade/jail/" + id));
    EXPECT_FALSE(fs::exists("/run/stockade/" + id)) << "the state directory and its API socket";
    EXPECT_FALSE(fs::exists("/proc/" + pid));
}

// With --net the sandbox process also holds its tap and /dev/vhost-net (beside
// /dev/vhost-vsock for the workload's stdio), opened by the
// supervisor before the jail; every thread is still filtered, and the tap goes with it.
TEST(Hardening, NetSandboxHoldsOnlyItsTapAndVhostNet) {
    const std::string id = "sb-hardnet";  // short enough for its tap to be stk-sb-hardnet
    auto s = LiveSandbox::start({"--id", id, "--net", "vhost=on", "--", "sh", "-c",
                                 "ip link set eth0 up && echo ready; sleep 600"});
    ASSERT_TRUE(s.wait_for("ready")) << s.seen;
    const pid_t child = s.sandbox();
    ASSERT_GT(child, 0);
    const std::string pid = std::to_string(child);
    for (const auto& tid : dir_entries("/proc/" + pid + "/task")) {
        auto t = policy::read_process_status(pid + "/task/" + tid);
        ASSERT_TRUE(t) << t.error().message;
        EXPECT_EQ(t->seccomp, 2) << "thread " << tid;
    }
    std::vector<std::string> devices;
    for (const auto& fd : dir_entries("/proc/" + pid + "/fd")) {
        char target[256] = {};
        ASSERT_GT(::readlink(("/proc/" + pid + "/fd/" + fd).c_str(), target, sizeof target - 1), 0);
        const std::string t = target;
        if (t.starts_with("/") && std::stoi(fd) > 2) devices.push_back(t);
    }
    std::sort(devices.begin(), devices.end());
    devices.erase(std::unique(devices.begin(), devices.end()), devices.end());
    EXPECT_EQ(devices,
              (std::vector<std::string>{"/dev/net/tun", "/dev/vhost-net", "/dev/vhost-vsock"}));
    EXPECT_TRUE(fs::exists("/sys/class/net/stk-sb-hardnet"));
    ::kill(s.supervisor, SIGTERM);
    EXPECT_EQ(s.finish(), 128 + SIGTERM);
    EXPECT_FALSE(fs::exists("/sys/class/net/stk-sb-hardnet"));
    EXPECT_FALSE(fs::exists("/run/stockade/net/" + id + ".json"));
}

TEST(Hardening, GuestStillBootsAndRunsUnderTheDefaultPolicy) {
    auto r = lab::run_stockade({"--rng", "--", "sh", "-c", "head -c 4 /dev/hwrng | wc -c; exit 9"});
    EXPECT_EQ(r.status, 9) << r.describe();
    EXPECT_EQ(r.out, "4\n") << r.describe();
}

TEST(Hardening, MemoryMaxBelowGuestMemoryFailsCleanlyAtStart) {
    const std::string policy = "/tmp/stockade-small-memory.json";
    std::ofstream(policy) << R"({"version": 1, "cgroup": {"memory_max": "128M"}})";
    const auto before = dir_entries("/sys/fs/cgroup/stockade");
    auto r = lab::run_stockade(
        {"--policy", policy, "--memory", "256", "--id", "sb-too-small", "--", "true"});
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find("memory"), std::string::npos) << r.describe();
    EXPECT_EQ(dir_entries("/sys/fs/cgroup/stockade"), before) << "no cgroup leaf left";
    EXPECT_FALSE(fs::exists("/run/stockade/jail/sb-too-small"));
}

// A policy that pins the boot images' digests (the supervisor then reads them and hashes the
// bytes it boots, where unpinned images are mapped): the right pins boot, a wrong one is
// refused before anything starts, naming the image.
TEST(Hardening, PinnedBootImagesAreCheckedAndBooted) {
    const std::string kernel = lab::build_dir() + "/guest/vmlinux",
                      initrd = lab::build_dir() + "/guest/initramfs.cpio",
                      policy = "/tmp/stockade-pinned-images.json";
    auto digest = [](const std::string& path) {
        return lab::run_process({"/usr/bin/sha256sum", path}).out.substr(0, 64);
    };
    const std::string right = digest(kernel), initrd_digest = digest(initrd);
    ASSERT_EQ(right.size(), 64u);
    ASSERT_EQ(initrd_digest.size(), 64u);
    auto pin = [&](const std::string& kernel_digest) {
        std::ofstream(policy) << fmt::format(
            R"({{"version": 1, "digests": {{"kernel": "{}", "initrd": "{}"}}}})", kernel_digest,
            initrd_digest);
    };
    pin(right);
    auto r = lab::run_stockade({"--policy", policy, "--kernel", kernel, "--initrd", initrd, "--",
                                "sh", "-c", "echo booted; exit 4"});
    EXPECT_EQ(r.status, 4) << r.describe();
    EXPECT_EQ(r.out, "booted\n") << r.describe();

    std::string wrong = right;
    wrong[0] = wrong[0] == '0' ? '1' : '0';
    pin(wrong);
    auto w = lab::run_stockade({"--policy", policy, "--kernel", kernel, "--initrd", initrd, "--id",
                                "sb-wrong-pin", "--", "true"});
    EXPECT_EQ(w.status, 125) << w.describe();
    EXPECT_NE(w.err.find("digest mismatch for " + kernel), std::string::npos) << w.describe();
    EXPECT_FALSE(fs::exists("/sys/fs/cgroup/stockade/sb-wrong-pin"));
    fs::remove(policy);
}

TEST(Hardening, SandboxIdInUseIsRefusedAndTheOtherKeepsRunning) {
    auto a = LiveSandbox::start({"--id", "sb-twice", "--", "sh", "-c", "echo ready; sleep 600"});
    ASSERT_TRUE(a.wait_for("ready")) << a.seen;
    auto b = lab::run_stockade({"--id", "sb-twice", "--", "true"});
    EXPECT_EQ(b.status, 125) << b.describe();
    EXPECT_TRUE(fs::exists("/sys/fs/cgroup/stockade/sb-twice")) << "the first keeps its leaf";
    ::kill(a.supervisor, SIGTERM);
    EXPECT_EQ(a.finish(), 128 + SIGTERM);
    EXPECT_FALSE(fs::exists("/sys/fs/cgroup/stockade/sb-twice"));
}

}  // namespace
}  // namespace stockade
