// `stockade run`: the supervisor. It prepares everything (steps 1-4 of the startup
// contract), does the privileged host setup (cgroup leaf, jail root, SELinux categories),
// forks the sandbox process into its namespaces, waits for it while forwarding
// termination signals and keeping the state file true, and removes everything it set up.
// The supervisor never runs guest code and never touches guest memory.
#include "runner/supervisor/supervisor.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "base/io.hpp"
#include "base/log.hpp"
#include "base/printable.hpp"
#include "netsetup/netns.hpp"
#include "policy/cgroup.hpp"
#include "policy/jail.hpp"
#include "policy/namespaces.hpp"
#include "policy/selinux_context.hpp"
#include "policy/selinux_images.hpp"
#include "runner/supervisor/api_socket.hpp"
#include "runner/supervisor/preparation.hpp"
#include "runner/supervisor/state_file.hpp"
#include "runner/supervisor/supervise.hpp"
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
    // The disk images' labels for the run (sVirt), restored when this goes.
    policy::ImageLabels images;
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
    return HostSetup{std::move(leaf), std::move(root), std::move(label), {}};
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
    r.run_args = spec.run_args;
    r.run_cwd = spec.run_cwd;
    r.detached = spec.detach;
    r.bundle = spec.oci_bundle;
    return r;
}

// What must go when the sandbox goes, for `stockade rm` after a supervisor that could not
// remove it itself.
HostRecord host_record(const HostSetup& host, const SupervisorState& supervisor) {
    HostRecord r{host.leaf.path(), host.root.path(), {}, {}};
    if (host.label) r.mcs_file = host.label->reservation.path();
    if (const auto& net = part_of<NetKind>(supervisor.hosts); net && net->network)
        for (const auto& res : net->network->state().resources)
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

// What the sandbox process said about its end (its lines that begin "stockade: ", escaped:
// the log also holds what the guest wrote) in the last 4 KiB of its stderr log at `path`,
// written to `fd`.
void echo_sandbox_lines(const std::string& path, int fd) {
    auto file = open_file(path, O_RDONLY | O_NOFOLLOW);
    if (!file) return;
    constexpr off_t kTail = 4096;
    const off_t end = ::lseek(file->get(), 0, SEEK_END);
    if (end <= 0) return;
    std::string text(static_cast<std::size_t>(std::min(end, kTail)), '\0');
    const ssize_t n =
        ::pread(file->get(), text.data(), text.size(), end - static_cast<off_t>(text.size()));
    if (n <= 0) return;
    text.resize(static_cast<std::size_t>(n));
    std::string out;
    std::size_t at = 0;
    while (at < text.size()) {
        std::size_t nl = text.find('\n', at);
        if (nl == std::string::npos) nl = text.size();
        const std::string_view line(text.data() + at, nl - at);
        if (line.starts_with("stockade: ")) out += printable(line) + "\n";
        at = nl + 1;
    }
    (void)write_all(fd, out);
}

// The supervisor's own stdout and stderr, once a detached sandbox runs: its log, so that it
// holds no terminal.
void detach_own_stdio(const std::string& log_path) {
    auto log = open_log(log_path);
    if (!log) {
        log::error("{}", log.error().message);
        // Still off the caller's descriptors, whose reader waits for them to close.
        log = open_file("/dev/null", O_WRONLY);
        if (!log) return;
    }
    ::dup2(log->get(), STDOUT_FILENO);
    ::dup2(log->get(), STDERR_FILENO);
}

std::string now_text() {
    return rfc3339_utc(std::chrono::system_clock::now());
}

// Everything one run holds between preparation and teardown, in the order it must go: the
// API socket after the state (which empties the directory first).
struct RunContext {
    const SandboxSpec& spec;
    UniqueFd ready;  // detached: the waiting `stockade run -d`'s pipe, until ready
    SupervisorState supervisor;
    SandboxResources sandbox;
    RestoreSteps restore;  // a restore's last steps (prepare), until they ran
    std::optional<ApiSocket> api;
    std::optional<StateKeeper> state;
    StatusPipe status;
    std::optional<HostSetup> host;
    DetachedStdio stdio;
};

// The state directory and the control API's socket first: the directory is the id's (a
// second sandbox with a live id stops here). Root only: an unprivileged start has no
// /run/stockade to put it in, and so no state file and no status to keep.
Result<> claim_state_dir(RunContext& run) {
    if (::geteuid() != 0) return {};
    const SupervisorState& sup = run.supervisor;
    run.api.emplace(STOCKADE_TRY(ApiSocket::create(sup.id, kStateRoot, sup.policy.api_socket_gid)));
    run.sandbox.api_listener = run.api->take_listener();
    run.state.emplace(state_dir(sup.id), first_record(run.spec, sup.id));
    run.state->save();
    run.status = STOCKADE_TRY(status_pipe());
    run.sandbox.status_pipe = std::move(run.status.write);
    return {};
}

// A copy of one of our own standard descriptors, kept for the sandbox process.
Result<UniqueFd> copy_of(int fd) {
    const int copy = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) return fail_sys("keeping the caller's stdio for the workload");
    return UniqueFd(copy);
}

// A detached sandbox's stdio: /dev/null and the two logs in its state directory; or, for an
// OCI runtime's create, the caller's own three (the engine's pipes), which the supervisor
// lets go of once the sandbox process has them.
Result<> open_detached_stdio(RunContext& run) {
    if (!run.spec.detach) return {};
    if (run.spec.inherit_stdio) {
        const int tty = run.spec.terminal_fd;
        run.stdio.null = STOCKADE_TRY(copy_of(tty >= 0 ? tty : STDIN_FILENO));
        run.stdio.out = STOCKADE_TRY(copy_of(tty >= 0 ? tty : STDOUT_FILENO));
        run.stdio.err = STOCKADE_TRY(copy_of(tty >= 0 ? tty : STDERR_FILENO));
        // The terminal is the sandbox's alone from here: the engine sees its end when the
        // sandbox's copies close, not when this process does.
        if (tty >= 0) ::close(tty);  // (terminal_fd is not used after this)
        return {};
    }
    StateRecord& r = run.state->record();
    run.stdio.null = STOCKADE_TRY(open_file("/dev/null", O_RDWR));
    r.stdout_log = run.state->file("stdout.log");
    r.stderr_log = run.state->file("stderr.log");
    run.stdio.out = STOCKADE_TRY(open_log(r.stdout_log));
    run.stdio.err = STOCKADE_TRY(open_log(r.stderr_log));
    return {};
}

// Steps 1-4 of the startup contract and the host set-up, in that order: nothing is claimed
// before the spec and policy passed every check.
Result<> prepare_run(RunContext& run) {
    // Descriptors inherited from whoever started us are never the sandbox's.
    // Kept: the ready pipe, the log file (--log-path) and an OCI create's terminal, when
    // there are any.
    std::vector<int> keep;
    if (run.ready) keep.push_back(run.ready.get());
    if (run.spec.terminal_fd >= 0) keep.push_back(run.spec.terminal_fd);
    if (log::output_fd() != STDERR_FILENO) keep.push_back(log::output_fd());
    close_fds_except(keep);
    if (run.spec.detach && ::geteuid() != 0)
        return fail("a detached sandbox needs root: its state and logs live in {}", kStateRoot);
    auto [supervisor, sandbox, restore] = STOCKADE_TRY(prepare(run.spec));
    run.supervisor = std::move(supervisor);
    run.sandbox = std::move(sandbox);
    run.restore = std::move(restore);
    STOCKADE_TRY_VOID(claim_state_dir(run));
    run.host.emplace(STOCKADE_TRY(set_up_host(run.supervisor)));
    if (run.host->label)
        run.host->images = STOCKADE_TRY(policy::ImageLabels::apply(
            disk_images(run.sandbox.devices), run.host->label->context,
            [](std::string_view c) { return policy::McsReservation::held(kMcsRegistry, c); }));
    if (run.state) {
        run.state->record().host = host_record(*run.host, run.supervisor);
        if (const auto& vsock = part_of<VsockKind>(run.supervisor.hosts))
            run.state->record().guest_cid = vsock->cid;
        run.state->save();
    }
    STOCKADE_TRY_VOID(open_detached_stdio(run));
    // A restore's decryption and disks, last: nothing before this can be refused any more,
    // and the state file already names what `stockade rm` removes should this be killed.
    for (const auto& step : run.restore)
        STOCKADE_TRY_VOID(step(run.sandbox, run.host->leaf.dir_fd()));
    run.restore.clear();
    return {};
}

// Forks the sandbox process into its namespaces and cgroup leaf; the supervisor keeps
// nothing of the VM: the sandbox's resources end here on its side.
Result<pid_t> start_sandbox(RunContext& run) {
    const policy::Policy& pol = run.supervisor.policy;
    const HostSetup& host = *run.host;
    auto forked = policy::fork_into_namespaces(
        {pol.namespaces, pol.uid, pol.gid, host.leaf.dir_fd(), host.leaf.path()});
    if (!forked) return std::unexpected(std::move(forked).error().context("starting the sandbox"));
    if (forked->in_child()) {
        run.ready.reset();
        if (run.spec.detach) {
            ::dup2(run.stdio.null.get(), STDIN_FILENO);
            ::dup2(run.stdio.out.get(), STDOUT_FILENO);
            ::dup2(run.stdio.err.get(), STDERR_FILENO);
        }
        SandboxJail jail{host.root.path(), std::nullopt};
        if (host.label) jail.selinux_context = host.label->context;
        ::_exit(run_sandbox_process(std::move(run.sandbox), jail));
    }
    { SandboxResources handed_over = std::move(run.sandbox); }
    run.stdio = {};
    if (run.state) {
        run.state->record().sandbox_pid = forked->pid;
        run.state->save();
    }
    return forked->pid;
}

// A restored sandbox's guest told so (VsockKind::tell_restored_guest), once it runs.
void tell_restored_guest(RunContext& run) {
    if (const auto& vsock = part_of<VsockKind>(run.supervisor.hosts); vsock && vsock->restoring)
        if (auto told = VsockKind::tell_restored_guest(*vsock); !told)
            log::warn("{}; its stdio, exec and status are not reconnected", told.error().message);
}

// The state file follows what the sandbox process reports; a detached run's waiting CLI is
// released once it is ready.
void on_sandbox_status(RunContext& run, SandboxStatus s) {
    StateKeeper& state = *run.state;
    StateRecord& r = state.record();
    switch (s) {
        case SandboxStatus::ready:
            if (r.state != SandboxState::creating) return;  // once
            if (!run.spec.wait_for_start) r.started = now_text();
            state.set(run.spec.wait_for_start ? SandboxState::created : SandboxState::running);
            // A restored guest's init learns where its streams are now (and gets the clock and
            // fresh entropy) before `snapshot restore -d` returns; one that waits for `start`
            // (create --restore), once started.
            if (!run.spec.wait_for_start) tell_restored_guest(run);
            if (run.ready) {
                // Off the terminal first: whoever waits for `run -d` to end sees its output
                // end with it.
                state.keep();
                detach_own_stdio(state.file("supervisor.log"));
                if (run.spec.inherit_stdio)
                    if (const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC); null >= 0) {
                        ::dup2(null, STDIN_FILENO);
                        ::close(null);
                    }
                if (auto w = write_all(run.ready.get(), "R"); !w)
                    log::error("{}", w.error().message);
                run.ready.reset();
            }
            return;
        case SandboxStatus::started:
            if (r.started.empty()) r.started = now_text();
            state.set(SandboxState::running);
            tell_restored_guest(run);
            return;
        case SandboxStatus::paused:
            state.set(SandboxState::paused);
            return;
        case SandboxStatus::resumed:
            state.set(SandboxState::running);
            return;
    }
}

// Teardown: the leaf kills anything left in it; the jail root must be empty again; the
// device kinds' host state (a tap) and the SELinux categories go with their handles.
void tear_down(RunContext& run, int code) {
    HostSetup& host = *run.host;
    if (auto r = host.leaf.remove(); !r) log::error("cleaning up: {}", r.error().message);
    if (auto r = host.root.remove(); !r) log::error("cleaning up: {}", r.error().message);
    run.supervisor.hosts = {};
    host.images.restore();
    host.label.reset();
    if (run.state) {
        StateRecord& r = run.state->record();
        // What could not be removed (its path is kept) stays listed, for `stockade rm`.
        r.host = HostRecord{host.leaf.path(), host.root.path(), {}, {}};
        r.exit_status = code;
        r.finished = now_text();
        run.state->set(SandboxState::stopped);
    }
}

// `ready` (detached: the waiting `stockade run -d`) gets one byte once the sandbox is ready
// and is closed; it is never the sandbox's.
Result<int> run(const SandboxSpec& spec, UniqueFd ready) {
    if (!spec.hold_netns.empty()) {
        const UniqueFd netns = STOCKADE_TRY(net::open_netns(spec.hold_netns));
        if (::setns(netns.get(), CLONE_NEWNET) != 0)
            return fail_sys(fmt::format("joining the pod's network namespace {}", spec.hold_netns));
    }
    RunContext run{spec, std::move(ready), {}, {}, {}, {}, {}, {}, {}, {}};
    STOCKADE_TRY_VOID(prepare_run(run));
    auto sigfd = STOCKADE_TRY(watch_termination_signals());
    const pid_t child = STOCKADE_TRY(start_sandbox(run));
    auto waited = supervise(child, sigfd.get(), run.status.read.get(),
                            [&run](SandboxStatus s) { on_sandbox_status(run, s); });
    const int code = waited ? exit_status(*waited) : 125;
    if (!waited) log::error("{}", waited.error().message);
    // A detached sandbox that ended before it was ready: why it did (its process wrote that to
    // its stderr log) goes to the waiting caller too, whose stderr this still is.
    if (run.ready && run.state && !run.state->record().stderr_log.empty())
        echo_sandbox_lines(run.state->record().stderr_log, STDERR_FILENO);
    tear_down(run, code);
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

int run_detached(SandboxSpec spec, bool print_id) {
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
        if (const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            null >= 0 && !spec.inherit_stdio)
            ::dup2(null, STDIN_FILENO);
        ::_exit(run_sandbox(spec, std::move(ready_write)));
    }
    ready_write.reset();
    char byte = 0;
    ssize_t n;
    while ((n = ::read(ready_read.get(), &byte, 1)) < 0 && errno == EINTR) {
    }
    if (n == 1) {
        if (print_id && !spec.inherit_stdio) std::printf("%s\n", spec.id.c_str());
        return 0;
    }
    // It ended before the sandbox was ready: its status is ours (it said why on stderr).
    int status = 0;
    while (::waitpid(child, &status, 0) < 0)
        if (errno != EINTR) return 125;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 125;
}

}  // namespace stockade
