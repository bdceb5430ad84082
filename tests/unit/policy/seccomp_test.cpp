// Seccomp profiles in forked children: what a profile lists works, each forbidden thing kills
// the child with SIGSYS, log mode does not kill, and the builder refuses contradictions.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "policy/seccomp.hpp"
#include "tests/support/child.hpp"

namespace stockade::policy {
namespace {

using test::describe_status;
using test::exited_ok;
using test::killed_by;
using test::run_in_child;

// The profile under test: a thread that may compute, use its descriptors, start threads,
// ask for its parent's pid and one ioctl (FIONREAD).
SeccompProfile test_profile(SeccompMode mode = SeccompMode::kill) {
    return SeccompProfile("test", mode)
        .baseline()
        .allow_clone_threads_only()
        .allow({SYS_getppid})
        .allow_ioctl({STOCKADE_IOCTL(FIONREAD)});
}

constexpr int kLoadFailed = 100;

// Loads the profile in a fresh child, then runs `action` there.
int with_profile(const SeccompProfile& profile, const std::function<int()>& action) {
    return run_in_child([&] {
        if (!profile.load()) return kLoadFailed;
        return action();
    });
}

TEST(policy_seccomp, AllowsWhatItLists) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    int st = with_profile(test_profile(), [&] {
        if (::syscall(SYS_getppid) <= 0) return 1;
        int n = -1;
        if (::ioctl(pipe_fds[0], FIONREAD, &n) != 0 || n != 0) return 2;
        if (::write(pipe_fds[1], "x", 1) != 1) return 3;
        char c = 0;
        if (::read(pipe_fds[0], &c, 1) != 1 || c != 'x') return 4;
        void* m =
            ::mmap(nullptr, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED) return 5;
        if (::mprotect(m, 4096, PROT_READ) != 0) return 6;
        if (::madvise(m, 1 << 20, MADV_DONTNEED) != 0) return 7;
        if (::munmap(m, 1 << 20) != 0) return 8;
        // Heap, threads (pthread_create: clone3 -> ENOSYS -> clone with CLONE_THREAD), futex.
        std::vector<int> v(1 << 16, 1);
        std::atomic<int> seen{0};
        std::thread t([&] { seen = static_cast<int>(v.size()); });
        t.join();
        if (seen != (1 << 16)) return 9;
        struct timespec ts {};
        if (::syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts) != 0) return 10;
        return 0;
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
}

TEST(policy_seccomp, IoctlComparesTheKernelsLow32Bits) {
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    // The kernel reads the request as unsigned int: upper garbage is ignored by it, so the
    // filter ignores it too (FIONREAD still), and cannot be used to smuggle another request.
    int st = with_profile(test_profile(), [&] {
        int n = -1;
        unsigned long req = (0xdeadbeefull << 32) | FIONREAD;
        return ::syscall(SYS_ioctl, pipe_fds[0], req, &n) == 0 && n == 0 ? 0 : 1;
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
    st = with_profile(test_profile(), [&] {
        int n = -1;
        unsigned long req = (std::uint64_t{FIONREAD} << 32) | TCGETS;
        return static_cast<int>(::syscall(SYS_ioctl, pipe_fds[0], req, &n)) == 0 ? 0 : 1;
    });
    EXPECT_TRUE(killed_by(st, SIGSYS)) << describe_status(st);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
}

struct Forbidden {
    const char* what;
    std::function<int()> action;
};

class policy_seccomp_kills : public ::testing::TestWithParam<Forbidden> {};

TEST_P(policy_seccomp_kills, WithSigsys) {
    int st = with_profile(test_profile(), GetParam().action);
    EXPECT_TRUE(killed_by(st, SIGSYS)) << GetParam().what << ": " << describe_status(st);
}

char kTrue[] = "/bin/true";

const Forbidden kForbidden[] = {
    {"execve",
     [] {
         char* argv[] = {kTrue, nullptr};
         ::execve(kTrue, argv, nullptr);
         return 1;
     }},
    {"execveat",
     [] {
         char* argv[] = {kTrue, nullptr};
         ::syscall(SYS_execveat, AT_FDCWD, kTrue, argv, nullptr, 0);
         return 1;
     }},
    {"open of a path",
     [] { return static_cast<int>(::syscall(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY)); }},
    {"socket", [] { return static_cast<int>(::syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0)); }},
    {"ptrace", [] { return static_cast<int>(::syscall(SYS_ptrace, PTRACE_TRACEME, 0, 0, 0)); }},
    {"ioctl outside the list",
     [] {
         struct termios t {};
         return static_cast<int>(::syscall(SYS_ioctl, 0, TCGETS, &t));
     }},
    {"mmap with PROT_EXEC",
     [] {
         void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
         return m == MAP_FAILED ? 1 : 2;
     }},
    {"mprotect to PROT_EXEC",
     [] {
         void* m =
             ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
         if (m == MAP_FAILED) return 1;
         return ::mprotect(m, 4096, PROT_READ | PROT_EXEC);
     }},
    {"fork (clone without CLONE_THREAD)",
     [] {
         pid_t p = ::fork();
         if (p == 0) ::_exit(0);
         return 1;
     }},
    {"clone of a thread into a new namespace",
     [] {
         return static_cast<int>(::syscall(SYS_clone,
                                           CLONE_THREAD | CLONE_SIGHAND | CLONE_VM | CLONE_NEWNET,
                                           nullptr, nullptr, nullptr, 0));
     }},
    {"unshare", [] { return ::unshare(CLONE_NEWUSER); }},
    {"a call nobody listed (getpid)", [] { return static_cast<int>(::syscall(SYS_getpid)); }},
    {"prctl", [] { return ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0); }},
};

INSTANTIATE_TEST_SUITE_P(Table, policy_seccomp_kills, ::testing::ValuesIn(kForbidden),
                         [](const ::testing::TestParamInfo<Forbidden>& param_info) {
                             std::string name = param_info.param.what;
                             for (char& c : name)
                                 if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                             return name;
                         });

TEST(policy_seccomp, Clone3FailsWithEnosysInsteadOfKilling) {
    int st = with_profile(test_profile(), [] {
        long r = ::syscall(SYS_clone3, nullptr, 0);
        return r == -1 && errno == ENOSYS ? 0 : 1;
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_seccomp, LogModeDoesNotKill) {
    int st = with_profile(test_profile(SeccompMode::log), [] {
        if (::syscall(SYS_getpid) <= 0) return 1;
        int fd = static_cast<int>(::syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0));
        if (fd < 0) return 2;
        void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return m == MAP_FAILED ? 3 : 0;
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_seccomp, LogModeStillKillsExecve) {
    int st = with_profile(test_profile(SeccompMode::log), [] {
        char* argv[] = {kTrue, nullptr};
        ::execve(kTrue, argv, nullptr);
        return 1;
    });
    EXPECT_TRUE(killed_by(st, SIGSYS)) << describe_status(st);
}

TEST(policy_seccomp, FilterIsPerThreadAndInherited) {
    // Loaded in one thread only: its sibling is unfiltered, its children are filtered.
    int st = run_in_child([] {
        std::atomic<int> sibling_pid{0};
        std::thread filtered([&] {
            if (!test_profile().allow({SYS_gettid}).load()) ::_exit(kLoadFailed);
            std::thread child([] {
                if (::syscall(SYS_gettid) <= 0) ::_exit(3);  // allowed, inherited filter
            });
            child.join();
        });
        filtered.join();
        sibling_pid = static_cast<int>(::syscall(SYS_getpid));  // unlisted, but unfiltered here
        return sibling_pid > 0 ? 0 : 1;
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_seccomp, ListsExactlyTheAllowedSyscalls) {
    auto names = test_profile().allowed_syscalls();
    std::vector<std::string> expected = {"brk",          "clock_gettime", "clone",
                                         "close",        "exit",          "exit_group",
                                         "futex",        "getppid",       "ioctl",
                                         "madvise",      "mmap",          "mprotect",
                                         "munmap",       "read",          "restart_syscall",
                                         "rseq",         "rt_sigaction",  "rt_sigprocmask",
                                         "rt_sigreturn", "sched_yield",   "set_robust_list",
                                         "write"};
    EXPECT_EQ(names, expected);
    ASSERT_EQ(test_profile().allowed_ioctls().size(), 1u);
    EXPECT_EQ(test_profile().allowed_ioctls()[0].name, "FIONREAD");
}

TEST(policy_seccomp, DescribesAndCountsInstructions) {
    auto p = test_profile();
    auto n = p.bpf_instruction_count();
    ASSERT_TRUE(n) << n.error().message;
    EXPECT_GT(*n, 20u);
    EXPECT_LT(*n, 200u);
    auto j = p.to_json();
    EXPECT_EQ(j["name"], "test");
    EXPECT_EQ(j["default_action"], "kill_process");
    EXPECT_EQ(j["bpf_instructions"], *n);
    EXPECT_EQ(j["ioctls"][0]["request"], fmt::format("{:#x}", FIONREAD));
    auto text = p.describe();
    EXPECT_NE(text.find("allow ioctl if (arg1 & 0xffffffff) == 0x541b (FIONREAD)"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("allow mmap if (arg2 & 0x4) == 0x0 (no PROT_EXEC)"), std::string::npos)
        << text;
    EXPECT_NE(text.find("kill execve"), std::string::npos) << text;
    EXPECT_NE(text.find("errno ENOSYS clone3"), std::string::npos) << text;
}

TEST(policy_seccomp, BuilderRefusesContradictions) {
    auto both = SeccompProfile("both").allow_mmap_no_exec().allow({SYS_mmap});
    auto r = both.load();
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("seccomp profile both: mmap is allowed both unconditionally"),
              std::string::npos)
        << r.error().message;

    auto exec = SeccompProfile("exec").allow({SYS_execve});
    auto n = exec.bpf_instruction_count();
    ASSERT_FALSE(n);
    EXPECT_NE(n.error().message.find("execve has conflicting rules"), std::string::npos)
        << n.error().message;

    auto wide = SeccompProfile("wide").allow_ioctl({std::uint64_t{1} << 32});
    auto w = wide.export_bpf();
    ASSERT_FALSE(w);
    EXPECT_NE(w.error().message.find("does not fit the kernel's 32-bit request"), std::string::npos)
        << w.error().message;
}

TEST(policy_seccomp, RepeatedRulesAreOneRule) {
    auto a = SeccompProfile("a").baseline().allow_clone_threads_only().baseline();
    auto b = SeccompProfile("b").baseline().allow_clone_threads_only();
    EXPECT_EQ(a.rules(), b.rules());
    EXPECT_TRUE(a.bpf_instruction_count());
}

}  // namespace
}  // namespace stockade::policy
