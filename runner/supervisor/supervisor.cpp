// `stockade run`: the supervisor. It prepares everything (steps 1-4 of the startup
// contract), does the privileged host setup (cgroup leaf, jail root, SELinux categories),
// forks the sandbox process into its namespaces, waits for it while forwarding
// termination signals, and removes everything it set up. The supervisor never runs guest
// code and never touches guest memory.
#include "runner/supervisor/supervisor.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

#include "base/io.hpp"
#include "base/log.hpp"
#include "policy/cgroup.hpp"
#include "policy/jail.hpp"
#include "policy/namespaces.hpp"
#include "policy/selinux_context.hpp"
#include "runner/supervisor/api_socket.hpp"
#include "runner/supervisor/preparation.hpp"
#include "runner/vmm/sandbox_process.hpp"
#include "runner/vmm/signals.hpp"

namespace stockade {
namespace {

constexpr const char* kMcsRegistry = "/run/stockade/mcs";

// What the supervisor set up on the host for one sandbox; each part undoes itself.
struct HostSetup {
    policy::CgroupLeaf leaf;
    policy::JailRoot root;
    std::optional<policy::SandboxLabel> label;
};

Result<HostSetup> set_up_host(const SupervisorState& p) {
    if (::geteuid() != 0 && !p.policy.namespaces.has(policy::Namespace::user))
        return fail(
            "stockade run needs root (cgroups, namespaces, pivot_root); an unprivileged "
            "start needs a policy with the user namespace");
    auto leaf = STOCKADE_TRY(policy::CgroupLeaf::create(p.policy.cgroup, p.id));
    auto root = STOCKADE_TRY(policy::JailRoot::create(p.policy.jail.root_parent, p.id,
                                                      policy::jail_root_owner(p.policy)));
    auto label = STOCKADE_TRY(policy::plan_sandbox_label(p.policy.selinux, p.id, kMcsRegistry));
    return HostSetup{std::move(leaf), std::move(root), std::move(label)};
}

// Waits for the sandbox process; SIGINT/SIGTERM/SIGHUP/SIGQUIT to the supervisor are passed
// on to it (it stops its VM cleanly and exits 128+signal). Returns the wait status.
Result<int> supervise(pid_t child, int sigfd) {
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
    UniqueFd owned(pidfd);
    for (;;) {
        pollfd fds[2] = {{sigfd, POLLIN, 0}, {pidfd, POLLIN, 0}};
        const int n = ::poll(fds, pidfd >= 0 ? 2 : 1, pidfd >= 0 ? -1 : 100);
        if (n < 0 && errno != EINTR) return fail_sys("poll in the supervisor");
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo si{};
            while (::read(sigfd, &si, sizeof si) == sizeof si)
                ::kill(child, static_cast<int>(si.ssi_signo));
        }
        int status = 0;
        const pid_t r = ::waitpid(child, &status, WNOHANG);
        if (r == child) return status;
        if (r < 0 && errno != EINTR) return fail_sys("waitpid for the sandbox process");
    }
}

int exit_status(int wait_status) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    const int sig = WTERMSIG(wait_status);
    if (sig == SIGSYS)
        log::error(
            "the sandbox process was killed by SIGSYS: it made a system call outside its "
            "seccomp allowlist (a policy with \"seccomp\": {{\"mode\": \"log\"}} logs "
            "the call instead)");
    else
        log::error("the sandbox process was killed by signal {} ({})", sig, ::strsignal(sig));
    return 125;
}

Result<int> run(const SandboxSpec& spec) {
    // Descriptors inherited from whoever started us are never the sandbox's.
    close_fds_except({});
    auto [supervisor, sandbox] = STOCKADE_TRY(prepare(spec));
    // The state directory and the control API's socket first: the directory is the id's
    // (a second sandbox with a live id stops here). Root only: an unprivileged start has no
    // /run/stockade to put it in.
    std::optional<ApiSocket> api;
    if (::geteuid() == 0) {
        api.emplace(STOCKADE_TRY(ApiSocket::create(supervisor.id)));
        sandbox.api_listener = api->take_listener();
    }
    HostSetup host = STOCKADE_TRY(set_up_host(supervisor));
    auto sigfd = STOCKADE_TRY(watch_termination_signals());

    const policy::Policy& pol = supervisor.policy;
    auto forked = policy::fork_into_namespaces(
        {pol.namespaces, pol.uid, pol.gid, host.leaf.dir_fd(), host.leaf.path()});
    if (!forked) return std::unexpected(std::move(forked).error().context("starting the sandbox"));
    if (forked->in_child()) {
        SandboxJail jail{host.root.path(), std::nullopt};
        if (host.label) jail.selinux_context = host.label->context;
        ::_exit(run_sandbox_process(std::move(sandbox), jail));
    }
    // The supervisor keeps nothing of the VM: the sandbox's resources end here.
    { SandboxResources handed_over = std::move(sandbox); }

    auto waited = supervise(forked->pid, sigfd.get());
    int status = waited ? exit_status(*waited) : 125;
    if (!waited) log::error("{}", waited.error().message);
    // Teardown: the leaf kills anything left in it; the jail root must be empty again; the
    // device kinds' host state (a tap) goes with `supervisor`.
    if (auto r = host.leaf.remove(); !r) log::error("cleaning up: {}", r.error().message);
    if (auto r = host.root.remove(); !r) log::error("cleaning up: {}", r.error().message);
    return status;
}

}  // namespace

int run_sandbox(const SandboxSpec& spec) {
    auto r = run(spec);
    if (!r) {
        log::error("{}", r.error().message);
        return 125;
    }
    return *r;
}

}  // namespace stockade
