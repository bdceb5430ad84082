// stockade-relay, the first child of a start with a user namespace and a PID namespace: its
// filter allows exactly its loop's calls (and kills on anything else), and the real one holds
// no capability, has no_new_privs and its filter, forwards SIGTERM, mirrors the sandbox's
// status (its exit code or its death signal) and does not outlive the supervisor.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "base/io.hpp"
#include "policy/namespaces.hpp"
#include "policy/privileges.hpp"
#include "policy/seccomp.hpp"
#include "tests/support/child.hpp"

namespace stockade::policy {
namespace {

using test::describe_status;
using test::exit_code_of;
using test::exited_ok;
using test::killed_by;
using test::run_in_child;
using test::wait_status;

TEST(policy_relay, FilterAllowsExactlyItsLoopsCalls) {
    const SeccompProfile p = relay_seccomp_profile(1234, 99);
    EXPECT_EQ(p.mode(), SeccompMode::kill);
    EXPECT_EQ(p.allowed_syscalls(),
              (std::vector<std::string>{"exit_group", "kill", "rt_sigaction", "rt_sigprocmask",
                                        "rt_sigtimedwait", "wait4"}));
    EXPECT_TRUE(p.allowed_ioctls().empty());
    for (const auto& r : p.rules()) {
        if (r.syscall != SYS_wait4 && r.syscall != SYS_kill) continue;
        ASSERT_EQ(r.conditions.size(), 1u) << syscall_name(r.syscall);
        const ArgCondition& c = r.conditions.front();
        EXPECT_EQ(c.arg, 0u);
        EXPECT_EQ(c.op, ArgCondition::Op::eq);
        if (r.syscall == SYS_wait4) {
            EXPECT_EQ(c.value, 1234u) << "wait4 for the sandbox only";
        } else {
            EXPECT_TRUE(c.value == 1234u || c.value == 99u) << "kill of " << c.value;
        }
    }
    auto bpf = p.export_bpf();
    ASSERT_TRUE(bpf) << bpf.error().message;
    EXPECT_FALSE(bpf->empty());
}

// In a fresh child: a child of its own to play the sandbox (it exits 3 at once), then the
// relay's filter loaded as the relay loads it, then `action(sandbox, self)`.
int with_relay_filter(const std::function<int(pid_t, pid_t)>& action) {
    return run_in_child([&] {
        const pid_t sandbox = ::fork();
        if (sandbox < 0) return 90;
        if (sandbox == 0) ::_exit(3);
        const pid_t self = ::getpid();
        const auto bpf = relay_seccomp_profile(sandbox, self).export_bpf();
        if (!bpf || ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || !load_bpf(*bpf)) return 91;
        return action(sandbox, self);
    });
}

TEST(policy_relay, FilterLetsTheLoopWaitSignalAndExit) {
    const int st = with_relay_filter([](pid_t sandbox, pid_t self) {
        sigset_t all;
        sigfillset(&all);
        if (::sigprocmask(SIG_BLOCK, &all, nullptr) != 0) return 1;
        int status = 0;
        if (::waitpid(sandbox, &status, 0) != sandbox || WEXITSTATUS(status) != 3) return 2;
        if (::kill(sandbox, SIGTERM) != -1 || errno != ESRCH) return 3;  // reaped, but allowed
        if (::kill(self, SIGUSR1) != 0) return 4;
        siginfo_t info{};
        if (::sigwaitinfo(&all, &info) != SIGUSR1) return 5;
        ::signal(SIGUSR2, SIG_DFL);
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, SIGUSR2);
        if (::sigprocmask(SIG_UNBLOCK, &one, nullptr) != 0) return 6;
        ::_exit(0);
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_relay, FilterKillsOnAnythingElse) {
    // Another call, a wait for any child, a signal to a process other than the two.
    const std::vector<std::function<int(pid_t, pid_t)>> forbidden = {
        [](pid_t, pid_t) { return static_cast<int>(::syscall(SYS_getppid)); },
        [](pid_t, pid_t) { return static_cast<int>(::waitpid(-1, nullptr, WNOHANG)); },
        [](pid_t sandbox, pid_t self) { return ::kill(sandbox + self, 0); },
        [](pid_t, pid_t) { return ::open("/dev/null", O_RDONLY | O_CLOEXEC); },
    };
    for (std::size_t i = 0; i < forbidden.size(); ++i) {
        const int st = with_relay_filter(forbidden[i]);
        EXPECT_TRUE(killed_by(st, SIGSYS)) << i << ": " << describe_status(st);
    }
}

// What a test's "supervisor" child returns besides 0, with a line on stderr.
int failed(int code, const std::string& why) {
    (void)write_all(2, why + "\n");
    return code;
}

// The relay's /proc status once it has loaded its filter (it hardens after forking the
// sandbox, so a moment later).
Result<ProcessStatus> hardened_status(pid_t relay) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    for (;;) {
        auto st = read_process_status(std::to_string(relay));
        if (!st || st->seccomp == 2 || std::chrono::steady_clock::now() > deadline) return st;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
}

NamespaceSpec user_and_pid() {
    NamespaceSpec spec;
    spec.namespaces = {Namespace::user, Namespace::pid};
    spec.uid = spec.gid = 1000;
    return spec;
}

TEST(policy_relay, HoldsNothingAndForwardsTermination) {
    const int st = run_in_child([] {
        int up[2];
        if (::pipe2(up, O_CLOEXEC) != 0) return failed(20, "pipe");
        auto forked = fork_into_namespaces(user_and_pid());
        if (!forked) return failed(21, forked.error().message);
        if (forked->in_child()) {
            // The sandbox, PID 1 of its namespace: SIGTERM reaches it only blocked (or handled).
            sigset_t term;
            sigemptyset(&term);
            sigaddset(&term, SIGTERM);
            ::sigprocmask(SIG_BLOCK, &term, nullptr);
            (void)!::write(up[1], "u", 1);
            int sig = 0;
            ::sigwait(&term, &sig);
            ::_exit(sig == SIGTERM ? 42 : 43);
        }
        ::close(up[1]);
        char c = 0;
        if (::read(up[0], &c, 1) != 1) return failed(22, "the sandbox did not start");
        auto status = hardened_status(forked->pid);
        if (!status) return failed(23, status.error().message);
        const ProcessStatus& s = *status;
        if (s.seccomp != 2) return failed(24, "the relay has no seccomp filter");
        if (s.no_new_privs != 1) return failed(25, "the relay has no no_new_privs");
        if (s.cap_inh || s.cap_prm || s.cap_eff || s.cap_bnd || s.cap_amb)
            return failed(26,
                          fmt::format("the relay holds capabilities: prm {:x} bnd {:x} amb {:x}",
                                      s.cap_prm, s.cap_bnd, s.cap_amb));
        ::kill(forked->pid, SIGTERM);
        const int code = exit_code_of(forked->pid);
        return code == 42 ? 0 : failed(27, fmt::format("the relay ended with {}", code));
    });
    EXPECT_TRUE(exited_ok(st)) << describe_status(st);
}

TEST(policy_relay, MirrorsTheSandboxsDeathSignal) {
    const int st = run_in_child([] {
        auto forked = fork_into_namespaces(user_and_pid());
        if (!forked) return failed(21, forked.error().message);
        if (forked->in_child()) {
            ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // no core file
            __builtin_trap();                      // SIGILL, which even PID 1 gets
        }
        // 100 + the signal: the relay died of SIGILL too (of SIGSYS, its filter was short).
        return exit_code_of(forked->pid) - 100;
    });
    EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == SIGILL) << describe_status(st);
}

TEST(policy_relay, DoesNotOutliveTheSupervisor) {
    int up[2], told[2];
    ASSERT_EQ(::pipe2(up, O_CLOEXEC), 0);
    ASSERT_EQ(::pipe2(told, O_CLOEXEC), 0);
    const pid_t supervisor = ::fork();
    ASSERT_GE(supervisor, 0);
    if (supervisor == 0) {
        ::close(up[0]);
        ::close(told[0]);
        auto forked = fork_into_namespaces(user_and_pid());
        if (!forked) ::_exit(failed(21, forked.error().message));
        if (forked->in_child()) {
            // The sandbox holds the last write end of `up` until it dies.
            (void)!::write(up[1], "u", 1);
            for (;;)
                ::pause();
        }
        ::close(up[1]);
        (void)!::write(told[1], &forked->pid, sizeof forked->pid);
        for (;;)
            ::pause();
    }
    ::close(up[1]);
    ::close(told[1]);
    pid_t relay = -1;
    char c = 0;
    const bool started =
        ::read(told[0], &relay, sizeof relay) == sizeof relay && ::read(up[0], &c, 1) == 1;
    ::close(told[0]);
    ::kill(supervisor, SIGKILL);
    EXPECT_TRUE(killed_by(wait_status(supervisor), SIGKILL));
    ASSERT_TRUE(started);
    pollfd p{up[0], POLLIN, 0};
    const bool gone = ::poll(&p, 1, 10'000) == 1 && ::read(up[0], &c, 1) == 0;
    if (!gone) ::kill(relay, SIGKILL);  // the sandbox dies with it
    ::close(up[0]);
    EXPECT_TRUE(gone) << "the relay and the sandbox outlived a supervisor killed with SIGKILL";
}

}  // namespace
}  // namespace stockade::policy
