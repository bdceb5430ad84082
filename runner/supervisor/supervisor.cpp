// `stockade run`: the supervisor. It prepares everything (steps 1-4 of the startup
// contract), does the privileged host setup (cgroup leaf, jail root, SELinux categories),
// forks the sandbox process into its namespaces, waits for it while forwarding
// termination signals and keeping the state file true, and removes everything it set up.
// The supervisor never runs guest code and never touches guest memory.
#include "runner/supervisor/supervisor.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <functional>

#include "base/io.hpp"
#include "base/log.hpp"
#include "policy/cgroup.hpp"
#include "policy/jail.hpp"
#include "policy/namespaces.hpp"
#include "policy/selinux_context.hpp"
#include "runner/supervisor/api_socket.hpp"
#include "runner/supervisor/preparation.hpp"
#include "runner/supervisor/state_file.hpp"
#include "runner/vmm/sandbox_process.hpp"
#include "runner/vmm/sandbox_status.hpp"
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

// The sandbox's state file as the supervisor keeps it: written on every change. Unless
// keep() was called (a detached sandbox that became ready: its state and logs stay until
// `stockade rm`), the file and the logs go with this object, so that the directory can too.
class StateKeeper {
  public:
    StateKeeper(std::string dir, StateRecord record)
        : dir_(std::move(dir)), record_(std::move(record)) {}
    StateKeeper(const StateKeeper&) = delete;
    StateKeeper& operator=(const StateKeeper&) = delete;
    ~StateKeeper() {
        if (kept_) return;
        for (const char* name : {"state.json", "stdout.log", "stderr.log", "supervisor.log"})
            ::unlink(fmt::format("{}/{}", dir_, name).c_str());
    }

    [[nodiscard]] StateRecord& record() { return record_; }
    [[nodiscard]] std::string file(std::string_view name) const {
        return fmt::format("{}/{}", dir_, name);
    }
    void keep() { kept_ = true; }

    // A sandbox that runs on does not stop for a state file that could not be written.
    void save() {
        if (auto r = write_state_file(dir_, record_); !r) log::error("{}", r.error().message);
    }
    void set(SandboxState state) {
        record_.state = state;
        save();
    }

  private:
    std::string dir_;
    StateRecord record_;
    bool kept_ = false;
};

StateRecord first_record(const SandboxSpec& spec, std::string_view id) {
    StateRecord r;
    r.id = std::string(id);
    r.pid = ::getpid();
    r.pid_start_time = process_start_time(r.pid).value_or(0);
    r.created = rfc3339_utc(std::chrono::system_clock::now());
    r.vcpus = spec.vcpus;
    r.memory_mib = spec.memory_mib;
    r.argv = spec.argv;
    r.detached = spec.detach;
    return r;
}

// What must go when the sandbox goes, for `stockade rm` after a supervisor that could not
// remove it itself.
HostRecord host_record(const HostSetup& host, const SupervisorState& supervisor) {
    HostRecord r{host.leaf.path(), host.root.path(), {}, {}};
    if (host.label) r.mcs_file = host.label->reservation.path();
    if (const auto& net = part_of<NetKind>(supervisor.hosts); net && *net)
        for (const auto& res : (*net)->state().resources)
            if (res.kind == net::ResourceKind::tap) r.taps.push_back(res.link);
    return r;
}

// The pipe on which the sandbox process reports its status (SandboxResources::status_pipe):
// neither end ever blocks.
struct StatusPipe {
    UniqueFd read, write;
};
Result<StatusPipe> status_pipe() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return fail_sys("the sandbox's status pipe");
    return StatusPipe{UniqueFd(p[0]), UniqueFd(p[1])};
}

// A detached sandbox's stdio: its workload's stdout and stderr to the logs, no stdin. Opened
// by the supervisor: the sandbox process opens no paths.
struct DetachedStdio {
    UniqueFd null, out, err;
};
Result<UniqueFd> open_log(const std::string& path) {
    return open_file(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0600);
}

using StatusHandler = std::function<void(SandboxStatus)>;

// Reads what the sandbox process reported, at most one small buffer (a wake is a change or
// two, never a stream). Returns read()'s result: 0 once the sandbox process closed its end.
ssize_t read_status(int fd, const StatusHandler& on_status) {
    char buf[16];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    for (ssize_t i = 0; i < n; ++i)
        if (auto s = sandbox_status_of(buf[i])) on_status(*s);
    return n;
}

// Waits for the sandbox process; SIGINT/SIGTERM/SIGHUP/SIGQUIT to the supervisor are passed
// on to it (it stops its VM cleanly and exits 128+signal), and its status bytes go to
// on_status. Returns the wait status.
Result<int> supervise(pid_t child, int sigfd, int status_fd, const StatusHandler& on_status) {
    int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
    UniqueFd owned(pidfd);
    for (;;) {
        // poll() skips negative descriptors: a status pipe at its end, or none.
        pollfd fds[3] = {{sigfd, POLLIN, 0}, {status_fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
        const int n = ::poll(fds, pidfd >= 0 ? 3 : 2, pidfd >= 0 ? -1 : 100);
        if (n < 0 && errno != EINTR) return fail_sys("poll in the supervisor");
        if (fds[0].revents & POLLIN) {
            signalfd_siginfo si{};
            while (::read(sigfd, &si, sizeof si) == sizeof si)
                ::kill(child, static_cast<int>(si.ssi_signo));
        }
        if (fds[1].revents & (POLLIN | POLLHUP) && read_status(status_fd, on_status) == 0)
            status_fd = -1;
        int status = 0;
        const pid_t r = ::waitpid(child, &status, WNOHANG);
        if (r == child) {
            // What it reported just before it ended still counts.
            while (status_fd >= 0 && read_status(status_fd, on_status) > 0) {
            }
            return status;
        }
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

// The supervisor's own stdout and stderr, once a detached sandbox runs: its log, so that it
// holds no terminal.
void detach_own_stdio(const std::string& log_path) {
    auto log = open_log(log_path);
    if (!log) {
        log::error("{}", log.error().message);
        return;
    }
    ::dup2(log->get(), STDOUT_FILENO);
    ::dup2(log->get(), STDERR_FILENO);
}

// `ready_fd` (detached: the waiting `stockade run -d`) gets one byte once the sandbox is ready
// and is closed; it is never the sandbox's.
Result<int> run(const SandboxSpec& spec, UniqueFd ready) {
    // Descriptors inherited from whoever started us are never the sandbox's.
    // Kept: the ready pipe and the log file (--log-path), when there are any.
    std::vector<int> keep;
    if (ready) keep.push_back(ready.get());
    if (log::output_fd() != STDERR_FILENO) keep.push_back(log::output_fd());
    close_fds_except(keep);
    if (spec.detach && ::geteuid() != 0)
        return fail("a detached sandbox needs root: its state and logs live in {}", kStateRoot);
    auto [supervisor, sandbox] = STOCKADE_TRY(prepare(spec));
    // The state directory and the control API's socket first: the directory is the id's
    // (a second sandbox with a live id stops here). Root only: an unprivileged start has no
    // /run/stockade to put it in, and so no state file and no status to keep.
    std::optional<ApiSocket> api;
    std::optional<StateKeeper> state;  // after `api`: it must go first, emptying the directory
    StatusPipe status;
    if (::geteuid() == 0) {
        api.emplace(STOCKADE_TRY(
            ApiSocket::create(supervisor.id, kStateRoot, supervisor.policy.api_socket_gid)));
        sandbox.api_listener = api->take_listener();
        state.emplace(state_dir(supervisor.id), first_record(spec, supervisor.id));
        state->save();
        status = STOCKADE_TRY(status_pipe());
        sandbox.status_pipe = std::move(status.write);
    }
    HostSetup host = STOCKADE_TRY(set_up_host(supervisor));
    if (state) {
        state->record().host = host_record(host, supervisor);
        state->save();
    }
    DetachedStdio stdio;
    if (spec.detach) {
        stdio.null = STOCKADE_TRY(open_file("/dev/null", O_RDWR));
        state->record().stdout_log = state->file("stdout.log");
        state->record().stderr_log = state->file("stderr.log");
        stdio.out = STOCKADE_TRY(open_log(state->record().stdout_log));
        stdio.err = STOCKADE_TRY(open_log(state->record().stderr_log));
    }
    auto sigfd = STOCKADE_TRY(watch_termination_signals());

    const policy::Policy& pol = supervisor.policy;
    auto forked = policy::fork_into_namespaces(
        {pol.namespaces, pol.uid, pol.gid, host.leaf.dir_fd(), host.leaf.path()});
    if (!forked) return std::unexpected(std::move(forked).error().context("starting the sandbox"));
    if (forked->in_child()) {
        ready.reset();
        if (spec.detach) {
            ::dup2(stdio.null.get(), STDIN_FILENO);
            ::dup2(stdio.out.get(), STDOUT_FILENO);
            ::dup2(stdio.err.get(), STDERR_FILENO);
        }
        SandboxJail jail{host.root.path(), std::nullopt};
        if (host.label) jail.selinux_context = host.label->context;
        ::_exit(run_sandbox_process(std::move(sandbox), jail));
    }
    // The supervisor keeps nothing of the VM: the sandbox's resources end here.
    { SandboxResources handed_over = std::move(sandbox); }
    stdio = {};
    if (state) {
        state->record().sandbox_pid = forked->pid;
        state->save();
    }

    const auto now = [] { return rfc3339_utc(std::chrono::system_clock::now()); };
    auto on_status = [&](SandboxStatus s) {
        StateRecord& r = state->record();
        switch (s) {
            case SandboxStatus::ready:
                if (r.state != SandboxState::creating) return;  // once
                if (!spec.wait_for_start) r.started = now();
                state->set(spec.wait_for_start ? SandboxState::created : SandboxState::running);
                if (ready) {
                    // Off the terminal first: whoever waits for `run -d` to end sees its
                    // output end with it.
                    state->keep();
                    detach_own_stdio(state->file("supervisor.log"));
                    if (auto w = write_all(ready.get(), "R"); !w)
                        log::error("{}", w.error().message);
                    ready.reset();
                }
                return;
            case SandboxStatus::started:
                if (r.started.empty()) r.started = now();
                state->set(SandboxState::running);
                return;
            case SandboxStatus::paused:
                state->set(SandboxState::paused);
                return;
            case SandboxStatus::resumed:
                state->set(SandboxState::running);
                return;
        }
    };
    auto waited = supervise(forked->pid, sigfd.get(), status.read.get(), on_status);
    const int code = waited ? exit_status(*waited) : 125;
    if (!waited) log::error("{}", waited.error().message);
    // Teardown: the leaf kills anything left in it; the jail root must be empty again; the
    // device kinds' host state (a tap) and the SELinux categories go with their handles.
    if (auto r = host.leaf.remove(); !r) log::error("cleaning up: {}", r.error().message);
    if (auto r = host.root.remove(); !r) log::error("cleaning up: {}", r.error().message);
    supervisor.hosts = {};
    host.label.reset();
    if (state) {
        StateRecord& r = state->record();
        // What could not be removed (its path is kept) stays listed, for `stockade rm`.
        r.host = HostRecord{host.leaf.path(), host.root.path(), {}, {}};
        r.exit_status = code;
        r.finished = now();
        state->set(SandboxState::stopped);
    }
    return code;
}

}  // namespace

int run_sandbox(const SandboxSpec& spec, UniqueFd ready) {
    auto r = run(spec, std::move(ready));
    if (!r) {
        log::error("{}", r.error().message);
        return 125;
    }
    return *r;
}

int run_detached(SandboxSpec spec) {
    if (spec.id.empty()) spec.id = new_sandbox_id();
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
        log::error("{}", fail_sys("the detached sandbox's ready pipe").error().message);
        return 125;
    }
    UniqueFd ready_read(p[0]), ready_write(p[1]);
    const pid_t child = ::fork();
    if (child < 0) {
        log::error("{}", fail_sys("fork").error().message);
        return 125;
    }
    if (child == 0) {
        // The supervisor: a session of its own (no terminal's signals reach it), no stdin;
        // stderr stays ours until the sandbox is ready, so that a failed start is seen.
        ready_read.reset();
        ::setsid();
        if (const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC); null >= 0)
            ::dup2(null, STDIN_FILENO);
        ::_exit(run_sandbox(spec, std::move(ready_write)));
    }
    ready_write.reset();
    char byte = 0;
    ssize_t n;
    while ((n = ::read(ready_read.get(), &byte, 1)) < 0 && errno == EINTR) {
    }
    if (n == 1) {
        std::printf("%s\n", spec.id.c_str());
        return 0;
    }
    // It ended before the sandbox was ready: its status is ours (it said why on stderr).
    int status = 0;
    while (::waitpid(child, &status, 0) < 0)
        if (errno != EINTR) return 125;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
}

}  // namespace stockade
