// The jail without privileges: fork_into_namespaces() with a user namespace (the unprivileged
// start), then enter_jail() into a per-test root. Runs as root and as a normal user. The
// privileged path (no user namespace, real cgroup leaf) is proven in tests/lab/policy.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "base/io.hpp"
#include "policy/jail.hpp"
#include "policy/namespaces.hpp"
#include "policy/privileges.hpp"
#include "tests/support/child.hpp"
#include "tests/support/temp_dir.hpp"
#include "tests/unit/policy/namespace_child.hpp"

namespace stockade::policy {
namespace {

using test::describe_status;
using test::exit_code_of;
using test::exited_ok;
using test::run_in_child;

namespace fs = std::filesystem;
using test::TempDir;

std::string ns_inode(const std::string& pid, const std::string& ns) {
    struct stat st {};
    if (::stat(fmt::format("/proc/{}/ns/{}", pid, ns).c_str(), &st) != 0) return "?";
    return std::to_string(st.st_ino);
}

std::vector<std::string> list_dir(const char* path) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path)) {
        while (dirent* e = ::readdir(d))
            if (std::string(e->d_name) != "." && std::string(e->d_name) != "..")
                out.emplace_back(e->d_name);
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::string mountinfo() {
    auto text = read_text_file("/proc/self/mountinfo");
    return text ? *text : std::string();
}

// The sandbox process reports "key=value" lines through a kept pipe.
std::map<std::string, std::string> parse_report(const std::string& text) {
    std::map<std::string, std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        auto eq = line.find('=');
        if (eq != std::string::npos) out[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return out;
}

TEST(policy_jail, UnprivilegedSandboxEntersItsJail) {
    TempDir tmp;
    ASSERT_FALSE(tmp.path.empty());
    fs::create_directories(tmp.path / "data");
    { std::ofstream(tmp.path / "data" / "hello") << "hi"; }
    { std::ofstream(tmp.path / "settings.conf") << "answer=42"; }
    // Writable for everybody: only the read-only bind may refuse a write.
    fs::permissions(tmp.path / "settings.conf", fs::perms::all & ~fs::perms::owner_exec &
                                                    ~fs::perms::group_exec &
                                                    ~fs::perms::others_exec);
    fs::permissions(tmp.path / "data", fs::perms::all);
    const std::string mounts_before = mountinfo();

    // The sandbox runs as its mapped id (1000) before the jail: it must be able to reach its
    // root and the bind source.
    fs::permissions(tmp.path,
                    fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    std::optional<JailRoot::Owner> owner;
    if (::geteuid() == 0) owner = JailRoot::Owner{1000, 1000};
    auto root = JailRoot::create((tmp.path / "roots").string(), "sb-unit", owner);
    ASSERT_TRUE(root) << root.error().message;
    const std::string root_path = root->path();
    EXPECT_TRUE(fs::is_empty(root_path));

    int report[2];
    ASSERT_EQ(::pipe2(report, O_CLOEXEC), 0);
    int stray = ::open("/dev/null", O_RDONLY);  // opened before the jail, not kept
    ASSERT_GE(stray, 0);

    NamespaceSpec ns;
    ns.namespaces = {Namespace::user, Namespace::mount, Namespace::pid,   Namespace::ipc,
                     Namespace::uts,  Namespace::net,   Namespace::cgroup};
    ns.uid = 1000;
    ns.gid = 1000;
    JailSpec spec;
    spec.root = root_path;
    spec.binds = {
        BindMount{(tmp.path / "data").string(), "/srv/data", false},
        BindMount{(tmp.path / "settings.conf").string(), "/etc/stockade/settings.conf", false}};
    spec.mount_proc = true;
    spec.rlimits = {{Rlimit::nofile, 64}, {Rlimit::core, 0}, {Rlimit::fsize, 1 << 20}};
    spec.keep_fds = {report[1]};

    int st = run_in_child([&] {
        ::close(report[0]);
        auto forked = fork_into_namespaces(ns);
        if (!forked) {
            (void)write_all(2, forked.error().message + "\n");
            return 10;
        }
        if (!forked->in_child()) {
            ::close(report[1]);
            return exit_code_of(forked->pid);
        }
        // The sandbox process.
        if (auto r = enter_jail(spec); !r) {
            (void)write_all(2, r.error().message + "\n");
            ::_exit(11);
        }
        std::string out;
        out += fmt::format("pid={}\n", ::getpid());
        out += fmt::format("uid={}\n", ::getuid());
        for (const char* n : {"mnt", "pid", "ipc", "uts", "net", "cgroup", "user"})
            out += fmt::format("ns.{}={}\n", n, ns_inode("self", n));
        std::string root_list;
        for (const auto& e : list_dir("/"))
            root_list += e + ",";
        out += fmt::format("root={}\n", root_list);
        std::string srv;
        for (const auto& e : list_dir("/srv/data"))
            srv += e + ",";
        out += fmt::format("srv={}\n", srv);
        {
            auto conf = read_text_file("/etc/stockade/settings.conf");
            out += fmt::format("file_bind={}\n", conf ? *conf : "?");
            int cw = ::open("/etc/stockade/settings.conf", O_WRONLY | O_CLOEXEC);
            out += fmt::format("file_bind_write_errno={}\n", cw < 0 ? errno : 0);
        }
        int w = ::open("/srv/data/new", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        out += fmt::format("bind_write_errno={}\n", w < 0 ? errno : 0);
        out += fmt::format("root_mkdir_errno={}\n", ::mkdir("/tmp", 0755) != 0 ? errno : 0);
        out += fmt::format("stray_open={}\n", ::fcntl(stray, F_GETFD) == -1 ? 0 : 1);
        out += fmt::format("host_etc_visible={}\n", ::access("/etc/passwd", F_OK) == 0 ? 1 : 0);
        struct rlimit rl {};
        ::getrlimit(RLIMIT_NOFILE, &rl);
        out += fmt::format("nofile={}/{}\n", rl.rlim_cur, rl.rlim_max);
        ::getrlimit(RLIMIT_FSIZE, &rl);
        out += fmt::format("fsize={}/{}\n", rl.rlim_cur, rl.rlim_max);
        ::getrlimit(RLIMIT_CORE, &rl);
        out += fmt::format("core={}/{}\n", rl.rlim_cur, rl.rlim_max);
        (void)write_all(report[1], out);
        ::_exit(0);
    });
    ::close(report[1]);
    std::string text;
    char buf[4096];
    ssize_t got;
    while ((got = ::read(report[0], buf, sizeof buf)) > 0)
        text.append(buf, static_cast<std::size_t>(got));
    ::close(report[0]);
    ::close(stray);
    ASSERT_TRUE(exited_ok(st)) << describe_status(st) << "\n" << text;

    auto r = parse_report(text);
    EXPECT_EQ(r["pid"], "1") << "PID 1 of its own PID namespace";
    EXPECT_EQ(r["uid"], "1000") << "the mapped id";
    for (const char* n : {"mnt", "pid", "ipc", "uts", "net", "cgroup", "user"}) {
        EXPECT_NE(r[fmt::format("ns.{}", n)], ns_inode("self", n)) << n << " namespace is shared";
        EXPECT_NE(r[fmt::format("ns.{}", n)], "?") << n;
    }
    EXPECT_EQ(r["root"], "etc,proc,srv,") << "the jail root holds the binds and /proc only";
    EXPECT_EQ(r["file_bind"], "answer=42") << "a single file can be bound";
    EXPECT_EQ(r["file_bind_write_errno"], std::to_string(EROFS));
    EXPECT_EQ(r["srv"], "hello,") << "the bind shows the source";
    EXPECT_EQ(r["bind_write_errno"], std::to_string(EROFS)) << "binds are read-only by default";
    EXPECT_EQ(r["root_mkdir_errno"], std::to_string(EROFS)) << "the jail root is read-only";
    EXPECT_EQ(r["stray_open"], "0") << "descriptors not kept are closed";
    EXPECT_EQ(r["host_etc_visible"], "0") << "/etc holds the bound file only";
    EXPECT_EQ(r["nofile"], "64/64");
    EXPECT_EQ(r["fsize"], fmt::format("{0}/{0}", 1 << 20));
    EXPECT_EQ(r["core"], "0/0");

    // Teardown: the jail's mounts died with its namespace; the root is empty and goes.
    EXPECT_EQ(mountinfo(), mounts_before);
    EXPECT_TRUE(fs::is_empty(root_path)) << "nothing of the jail is visible on the host";
    EXPECT_FALSE(fs::exists(tmp.path / "data" / "new"));
    ASSERT_TRUE(root->remove());
    EXPECT_FALSE(fs::exists(root_path));
}

TEST(policy_jail, PrivilegesDropAfterAPivotWithoutProc) {
    // The runner's default: no /proc in the jail. The drop must not need it.
    TempDir tmp;
    fs::permissions(tmp.path,
                    fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);
    std::optional<JailRoot::Owner> owner;
    if (::geteuid() == 0) owner = JailRoot::Owner{1000, 1000};
    auto root = JailRoot::create(tmp.path.string(), "sb-noproc", owner);
    ASSERT_TRUE(root) << root.error().message;
    int st = run_in_child([&]() -> int {
        continue_in_namespaces({Namespace::user, Namespace::mount, Namespace::pid}, 1000);
        JailSpec spec;
        spec.root = root->path();
        if (!enter_jail(spec)) ::_exit(11);
        if (::access("/proc/self/status", F_OK) == 0) ::_exit(12);
        if (auto r = drop_privileges(1000, 1000); !r) {
            (void)write_all(2, r.error().message + "\n");
            ::_exit(13);
        }
        ::_exit(::prctl(PR_CAPBSET_READ, 0, 0, 0, 0) == 0 &&
                        ::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) == 1
                    ? 0
                    : 14);
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_jail, RootRefusesToBeRemovedWhenNotEmpty) {
    TempDir tmp;
    auto root = JailRoot::create(tmp.path.string(), "sb-x");
    ASSERT_TRUE(root) << root.error().message;
    auto again = JailRoot::create(tmp.path.string(), "sb-x");
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().message.find("already exists"), std::string::npos);
    { std::ofstream(fs::path(root->path()) / "intruder") << "x"; }
    auto r = root->remove();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("not empty"), std::string::npos) << r.error().message;
    EXPECT_TRUE(fs::exists(fs::path(root->path()) / "intruder")) << "never deletes content";
    fs::remove(fs::path(root->path()) / "intruder");
    EXPECT_TRUE(root->remove());
    EXPECT_FALSE(JailRoot::create(tmp.path.string(), "../escape"));
}

TEST(policy_jail, FailingStepIsNamed) {
    // pivot_root needs a mount namespace of its own; in a user namespace with none the tmpfs
    // mount already fails, and the error says which step.
    TempDir tmp;
    auto root = JailRoot::create(tmp.path.string(), "sb-fail");
    ASSERT_TRUE(root);
    int st = run_in_child([&]() -> int {
        continue_in_namespaces({Namespace::user}, 1000);
        JailSpec spec;
        spec.root = root->path();
        auto r = enter_jail(spec);
        if (r) ::_exit(1);
        bool named = r.error().message.starts_with(
            fmt::format("jail: mounting the jail's tmpfs on {}: ", root->path()));
        if (!named) (void)write_all(2, r.error().message + "\n");
        ::_exit(named ? 0 : 2);
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_rlimits, AppliedSoftAndHard) {
    struct rlimit nofile {};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &nofile), 0);
    TempDir tmp;
    const std::string big = (tmp.path / "big").string();
    int st = run_in_child([&] {
        ::signal(SIGXFSZ, SIG_IGN);
        int fd = ::open(big.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) return 5;
        if (!apply_rlimits({{Rlimit::nofile, 32},
                            {Rlimit::fsize, 4096},
                            {Rlimit::core, 0},
                            {Rlimit::memlock, 0}}))
            return 1;
        struct rlimit rl {};
        ::getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur != 32 || rl.rlim_max != 32) return 2;
        // Enforced: no 33rd descriptor, no byte past 4096.
        for (int i = 0; i < 40; ++i)
            if (::open("/dev/null", O_RDONLY) < 0) {
                if (errno != EMFILE) return 3;
                break;
            } else if (i == 39) {
                return 4;
            }
        std::string block(8192, 'x');
        ssize_t w = ::write(fd, block.data(), block.size());
        if (w != 4096) return 6;
        if (::write(fd, "y", 1) != -1 || errno != EFBIG) return 7;
        ::getrlimit(RLIMIT_CORE, &rl);
        if (rl.rlim_cur != 0 || rl.rlim_max != 0) return 8;
        ::getrlimit(RLIMIT_MEMLOCK, &rl);
        return rl.rlim_cur == 0 && rl.rlim_max == 0 ? 0 : 9;
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_rlimits, RaisingPastTheHardLimitIsRefusedByName) {
    // Not even root may raise a hard limit from inside a user namespace.
    int st = run_in_child([]() -> int {
        continue_in_namespaces({Namespace::user}, 1000);
        struct rlimit rl {};
        ::getrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_max == RLIM_INFINITY) ::_exit(3);
        auto r = apply_rlimits({{Rlimit::nofile, rl.rlim_max + 1}});
        if (r) ::_exit(1);
        ::_exit(r.error().message == fmt::format("setting RLIMIT_NOFILE to {}: Operation not "
                                                 "permitted",
                                                 rl.rlim_max + 1)
                    ? 0
                    : 2);
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_close_fds, KeepsOnlyTheKeepList) {
    int st = run_in_child([] {
        int a = ::open("/dev/null", O_RDONLY);
        int b = ::open("/dev/null", O_RDONLY);
        int c = ::open("/dev/null", O_RDONLY);
        int high = ::fcntl(a, F_DUPFD, 200);
        if (a < 0 || b < 0 || c < 0 || high < 0) return 1;
        std::vector<int> keep = {b, high};
        if (!close_fds_except_kept(keep)) return 2;
        if (::fcntl(a, F_GETFD) != -1 || ::fcntl(c, F_GETFD) != -1) return 3;
        if (::fcntl(b, F_GETFD) == -1 || ::fcntl(high, F_GETFD) == -1) return 4;
        for (int fd = 0; fd < 3; ++fd)
            if (::fcntl(fd, F_GETFD) == -1 && errno != EBADF) return 5;
        return 0;
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

}  // namespace
}  // namespace stockade::policy
