#include "policy/namespaces.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>

#include "base/io.hpp"
#include "base/unique_fd.hpp"
#include "policy/cgroup.hpp"
#include "policy/privileges.hpp"

namespace stockade::policy {
namespace {

// Namespaces the child unshares for itself, in this order (cgroup last: after the join).
constexpr Namespace kChildOrder[] = {Namespace::mount, Namespace::ipc, Namespace::uts,
                                     Namespace::net, Namespace::cgroup};

Result<> unshare_one(Namespace ns) {
    if (::unshare(namespace_clone_flag(ns)) != 0)
        return fail_sys(fmt::format("unsharing the {} namespace", namespace_name(ns)));
    return {};
}

// A descriptor of the calling process that becomes readable when it exits: taken before the
// fork, so the child can tell whether its parent died before it asked to die with it.
Result<UniqueFd> own_pidfd() {
    int fd = static_cast<int>(::syscall(SYS_pidfd_open, ::getpid(), 0));
    if (fd < 0) return fail_sys("pidfd_open of the supervisor");
    return UniqueFd(fd);
}

// SIGKILL when the parent dies. The parent may already be gone by the time the child gets
// here (the signal would then never come); getppid() cannot tell inside a new PID namespace
// (it reads 0), the parent's pidfd can.
Result<> die_with_parent(UniqueFd parent_pidfd) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        return fail_sys("prctl(PR_SET_PDEATHSIG)");
    struct pollfd p {
        parent_pidfd.get(), POLLIN, 0
    };
    if (::poll(&p, 1, 0) != 0) return fail("the supervisor died before the sandbox started");
    return {};
}

// Everything the child does for itself once it is in its user namespace (if any).
Result<> unshare_rest(const NamespaceSpec& spec) {
    for (Namespace ns : kChildOrder) {
        if (!spec.namespaces.has(ns)) continue;
        STOCKADE_TRY_VOID(unshare_one(ns));
        if (ns == Namespace::mount &&
            ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
            return fail_sys("making every mount private in the new mount namespace");
    }
    return {};
}

Result<> join_leaf(const NamespaceSpec& spec) {
    if (spec.cgroup_dir_fd < 0) return {};
    return join_cgroup(spec.cgroup_dir_fd, spec.cgroup_name);
}

Result<Forked> fork_without_user_ns(const NamespaceSpec& spec) {
    const bool new_pid = spec.namespaces.has(Namespace::pid);
    auto parent = STOCKADE_TRY(own_pidfd());
    UniqueFd own_pid_ns;
    if (new_pid) {
        own_pid_ns = STOCKADE_TRY(open_file("/proc/self/ns/pid", O_RDONLY));
        if (::unshare(CLONE_NEWPID) != 0) return fail_sys("unsharing the pid namespace");
    }
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        if (new_pid) (void)::setns(own_pid_ns.get(), CLONE_NEWPID);
        return fail_sys("fork of the sandbox process", err);
    }
    if (pid > 0) {
        if (new_pid && ::setns(own_pid_ns.get(), CLONE_NEWPID) != 0) {
            int err = errno;
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
            return fail_sys("restoring the supervisor's pid namespace for its children", err);
        }
        return Forked{pid};
    }
    own_pid_ns.reset();
    STOCKADE_TRY_VOID(die_with_parent(std::move(parent)));
    STOCKADE_TRY_VOID(join_leaf(spec));
    STOCKADE_TRY_VOID(unshare_rest(spec));
    return Forked{0};
}

// Small messages over the parent/child socket: 'U' user namespace made, 'M' maps written,
// 'E' + text: the child failed.
Result<> send_msg(int fd, std::string_view msg) {
    return write_all(fd, msg);
}

std::string recv_msg(int fd) {
    char buf[1024];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    }
}

Result<> write_id_maps(pid_t child, const NamespaceSpec& spec) {
    const bool root = ::geteuid() == 0;
    const auto outer_uid = root ? spec.uid : ::geteuid();
    const auto outer_gid = root ? spec.gid : ::getegid();
    auto proc = fmt::format("/proc/{}", child);
    // An unprivileged writer may map its own gid only after giving up setgroups(2) in the
    // namespace (else it could drop a group that denies it access).
    if (!root) STOCKADE_TRY_VOID(write_file(proc + "/setgroups", "deny"));
    STOCKADE_TRY_VOID(write_file(proc + "/uid_map", fmt::format("{} {} 1\n", spec.uid, outer_uid)));
    STOCKADE_TRY_VOID(write_file(proc + "/gid_map", fmt::format("{} {} 1\n", spec.gid, outer_gid)));
    return {};
}

// What the relay does before its loop, while it may still call anything: it gives up every
// capability (bounding and ambient sets too) and sets no_new_privs (drop_privileges: it needs
// none to wait for its own child and to signal it, which has its uid); it dies with the
// supervisor again (taking the namespace's uid cleared the parent-death signal of a root
// start); and it builds its filter. Returns the filter, to be loaded last.
Result<std::vector<std::uint8_t>> prepare_relay(pid_t sandbox, pid_t self, pid_t supervisor,
                                                const NamespaceSpec& spec) {
    STOCKADE_TRY_VOID(drop_privileges(spec.uid, spec.gid));
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        return fail_sys("prctl(PR_SET_PDEATHSIG) in the relay");
    if (::getppid() != supervisor) return fail("the supervisor died before the relay ran");
    return relay_seccomp_profile(sandbox, self).export_bpf();
}

// The first child's life when it has to fork the sandbox into a PID namespace of its user
// namespace: wait, forward termination signals, mirror the sandbox's status. It holds no
// descriptors (the sandbox's are the sandbox's business), no capabilities, and a filter of
// exactly its loop's calls, and never returns; if it cannot harden, the sandbox goes.
[[noreturn]] void relay(pid_t sandbox, pid_t supervisor, const NamespaceSpec& spec) {
    ::prctl(PR_SET_NAME, "stockade-relay");
    ::close_range(0, ~0u, 0);
    sigset_t all;
    sigfillset(&all);
    ::sigprocmask(SIG_BLOCK, &all, nullptr);
    const pid_t self = ::getpid();
    // Lives until _exit: freeing it once the filter is in would call munmap or brk.
    const auto filter = prepare_relay(sandbox, self, supervisor, spec);
    if (!filter || !load_bpf(*filter)) {
        ::kill(sandbox, SIGKILL);
        ::_exit(125);
    }
    // From here on: wait4, rt_sigtimedwait, kill, rt_sigaction, rt_sigprocmask, exit_group.
    for (;;) {
        int status = 0;
        pid_t r = ::waitpid(sandbox, &status, WNOHANG);
        if (r == sandbox) {
            if (WIFEXITED(status)) ::_exit(WEXITSTATUS(status));
            int sig = WTERMSIG(status);
            ::signal(sig, SIG_DFL);
            sigset_t one;
            sigemptyset(&one);
            sigaddset(&one, sig);
            ::sigprocmask(SIG_UNBLOCK, &one, nullptr);
            ::kill(self, sig);
            ::_exit(128 + sig);
        }
        if (r < 0 && errno != EINTR) ::_exit(125);
        siginfo_t info{};
        int sig = ::sigwaitinfo(&all, &info);
        if (sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT)
            ::kill(sandbox, sig);
    }
}

Result<Forked> fork_with_user_ns(const NamespaceSpec& spec) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return fail_sys("socketpair for the user namespace handshake");
    UniqueFd parent_end(sv[0]), child_end(sv[1]);
    auto parent = STOCKADE_TRY(own_pidfd());
    const pid_t supervisor = ::getpid();
    pid_t pid = ::fork();
    if (pid < 0) return fail_sys("fork of the sandbox process");

    if (pid > 0) {
        child_end.reset();
        auto reap = [pid] {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        };
        auto msg = recv_msg(parent_end.get());
        if (msg != "U") {
            reap();
            if (!msg.empty() && msg[0] == 'E') return fail("{}", msg.substr(1));
            return fail("sandbox process ended before making its user namespace");
        }
        if (auto r = write_id_maps(pid, spec); !r) {
            reap();
            return std::unexpected(
                std::move(r).error().context("writing the user namespace's id maps"));
        }
        if (auto r = send_msg(parent_end.get(), "M"); !r) {
            reap();
            return std::unexpected(std::move(r).error());
        }
        return Forked{pid};
    }

    // The child: errors go to the parent too, which is waiting for the handshake.
    parent_end.reset();
    auto child_fail = [&](Error e) -> Result<Forked> {
        (void)send_msg(child_end.get(), "E" + e.message);
        return std::unexpected(std::move(e));
    };
    if (auto r = die_with_parent(std::move(parent)); !r) return child_fail(std::move(r).error());
    if (auto r = join_leaf(spec); !r) return child_fail(std::move(r).error());
    if (auto r = unshare_one(Namespace::user); !r) return child_fail(std::move(r).error());
    if (auto r = send_msg(child_end.get(), "U"); !r) return std::unexpected(std::move(r).error());
    if (recv_msg(child_end.get()) != "M")
        return fail("the supervisor did not map the user namespace's ids");
    child_end.reset();
    // Take the mapped ids now: started as root, the child's own ids are unmapped in the
    // namespace, and it could not create a file (EOVERFLOW), not even in its jail's tmpfs.
    // Its capabilities in the namespace stay (its old euid was not the namespace's root);
    // drop_privileges() clears them later.
    if (::setresgid(spec.gid, spec.gid, spec.gid) != 0)
        return fail_sys(fmt::format("taking gid {} in the user namespace", spec.gid));
    if (::setresuid(spec.uid, spec.uid, spec.uid) != 0)
        return fail_sys(fmt::format("taking uid {} in the user namespace", spec.uid));
    STOCKADE_TRY_VOID(unshare_rest(spec));
    if (!spec.namespaces.has(Namespace::pid)) return Forked{0};

    STOCKADE_TRY_VOID(unshare_one(Namespace::pid));
    auto relay_fd = STOCKADE_TRY(own_pidfd());
    pid_t sandbox = ::fork();
    if (sandbox < 0) return fail_sys("fork of the sandbox process into its pid namespace");
    if (sandbox > 0) relay(sandbox, supervisor, spec);
    STOCKADE_TRY_VOID(die_with_parent(std::move(relay_fd)));
    return Forked{0};
}

}  // namespace

SeccompProfile relay_seccomp_profile(pid_t sandbox, pid_t relay_pid) {
    SeccompProfile p("stockade-relay", SeccompMode::kill);
    // Its loop, and nothing else: waiting for the sandbox (glibc's waitpid is wait4) and for
    // signals (sigwaitinfo), forwarding them to the sandbox, and at the end re-raising the
    // sandbox's death signal on itself (signal, sigprocmask, kill) or _exit.
    p.allow_if(SYS_wait4, {arg_eq(0, static_cast<std::uint64_t>(sandbox))})
        .allow({SYS_rt_sigtimedwait, SYS_rt_sigaction, SYS_rt_sigprocmask, SYS_exit_group})
        .allow_if(SYS_kill, {arg_eq(0, static_cast<std::uint64_t>(sandbox))})
        .allow_if(SYS_kill, {arg_eq(0, static_cast<std::uint64_t>(relay_pid))});
    return p;
}

Result<Forked> fork_into_namespaces(const NamespaceSpec& spec) {
    if (spec.namespaces.has(Namespace::user)) return fork_with_user_ns(spec);
    return fork_without_user_ns(spec);
}

}  // namespace stockade::policy
