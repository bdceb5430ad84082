#include "runner/cli/oci_runtime.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <optional>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "base/log.hpp"
#include "base/sandbox_id.hpp"
#include "base/signal_name.hpp"
#include "runner/cli/api_client.hpp"
#include "runner/cli/control_commands.hpp"
#include "runner/cli/exit_status.hpp"
#include "runner/cli/manage.hpp"
#include "runner/cli/run_args.hpp"
#include "runner/oci/bundle.hpp"
#include "runner/oci/console.hpp"
#include "runner/oci/rootfs_image.hpp"
#include "runner/supervisor/state_file.hpp"
#include "runner/supervisor/supervisor.hpp"

namespace stockade::cli {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

constexpr std::string_view kSpecVersion = "1.1.0";
constexpr std::size_t kMaxConfigBytes = 4 << 20;

// runc's global flags: those that take a value, and those that do not.
constexpr std::array<std::string_view, 5> kValueFlags{"--root", "--log", "--log-format", "--criu",
                                                      "--rootless"};
constexpr std::array<std::string_view, 2> kPlainFlags{"--debug", "--systemd-cgroup"};

template <std::size_t N>
bool one_of(const std::array<std::string_view, N>& names, std::string_view s) {
    return std::find(names.begin(), names.end(), s) != names.end();
}

struct Globals {
    std::string root, log, log_format = "text";
    bool debug = false;
};

// The global flags before the command; `at` is left at the command. Nullopt: a flag that is
// not runc's, or one without its value.
std::optional<Globals> parse_globals(std::span<const std::string> args, std::size_t& at) {
    Globals g;
    for (at = 0; at < args.size() && args[at].starts_with("-"); ++at) {
        std::string name = args[at], value;
        bool has_value = false;
        if (const auto eq = name.find('='); eq != std::string::npos) {
            value = name.substr(eq + 1);
            name.resize(eq);
            has_value = true;
        }
        if (one_of(kPlainFlags, name)) {
            g.debug = g.debug || name == "--debug";
            continue;
        }
        if (!one_of(kValueFlags, name)) return std::nullopt;
        if (!has_value) {
            if (at + 1 >= args.size()) return std::nullopt;
            value = args[++at];
        }
        if (name == "--root") g.root = value;
        if (name == "--log") g.log = value;
        if (name == "--log-format") g.log_format = value;
    }
    return g;
}

// Where a command's messages go: the --log file when there is one (the engine reads it), as
// JSON lines with --log-format json.
int set_up_logging(const Globals& g) {
    if (g.log_format != "text" && g.log_format != "json") {
        log::error("--log-format: expected text or json");
        return kFailed;
    }
    log::set_format(g.log_format == "json" ? log::Format::json : log::Format::text);
    if (g.debug) log::set_level(log::Level::debug);
    if (!g.log.empty()) {
        auto file = open_file(g.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (!file) {
            log::error("--log: {}", file.error().message);
            return kFailed;
        }
        log::set_output(file->release());
    }
    return 0;
}

int refused(std::string_view message) {
    log::error("{}", message);
    return kRefused;
}

// The container's record, or the runc-style error for one that does not exist.
std::optional<StateRecord> container(const std::string& id) {
    if (auto valid = check_sandbox_id(id); !valid) {
        log::error("{}", valid.error().message);
        return std::nullopt;
    }
    std::error_code ec;
    if (!std::filesystem::exists(state_file_path(state_dir(id)), ec)) {
        log::error("container \"{}\" does not exist", id);
        return std::nullopt;
    }
    auto r = read_live_state(state_dir(id));
    if (!r) {
        log::error("{}", r.error().message);
        return std::nullopt;
    }
    return std::move(*r);
}

std::string_view oci_status(SandboxState s) {
    switch (s) {
        case SandboxState::creating:
            return "creating";
        case SandboxState::created:
            return "created";
        case SandboxState::running:
            return "running";
        case SandboxState::paused:
            return "paused";
        case SandboxState::stopped:
            return "stopped";
    }
    return "stopped";
}

// The bundle's container as it was created (for its annotations and process settings);
// nullopt when the bundle is gone or changed beyond reading.
std::optional<oci::Container> bundle_container(const std::string& bundle) {
    if (bundle.empty()) return std::nullopt;
    auto text = read_text_file(bundle + "/config.json", kMaxConfigBytes);
    if (!text) return std::nullopt;
    auto c = oci::parse_config(*text, bundle);
    return c ? std::optional(std::move(*c)) : std::nullopt;
}

// Writes `pid` to `path` as runc does: whole, by rename.
Result<> write_pid_file(const std::string& path, pid_t pid) {
    const std::string abs = std::filesystem::absolute(path).string();
    return write_file_atomic(abs, std::to_string(pid), 0644);
}

std::string absolute_dir(const std::string& dir) {
    std::error_code ec;
    auto p = std::filesystem::canonical(dir, ec);
    return ec ? std::filesystem::absolute(dir).string() : p.string();
}

void remove_container_image(const std::string& id) {
    ::unlink(oci::container_image_path(id).c_str());
}

int create(std::span<const std::string> args) {
    CLI::App app{
        "Create a container: boot its sandbox VM, waiting for `start`.\nUsage: stockade "
        "[global flags] create [--bundle DIR] [--pid-file FILE] ID",
        "create"};
    std::string id, bundle = ".", pid_file, console_socket;
    bool no_pivot = false, no_keyring = false;
    unsigned preserve_fds = 0;
    app.add_option("ID", id, "the container's id (the sandbox's)")->required();
    app.add_option("-b,--bundle", bundle, "the bundle directory (config.json, root)");
    app.add_option("--pid-file", pid_file,
                   "where to write the pid of the host process whose exit is the container's "
                   "(the sandbox's supervisor)");
    app.add_option("--console-socket", console_socket,
                   "the Unix socket the terminal's master is sent to (process.terminal)");
    app.add_flag("--no-pivot", no_pivot, "accepted: the guest's root is the bundle's image");
    app.add_flag("--no-new-keyring", no_keyring, "accepted: the guest has its own keyrings");
    app.add_option("--preserve-fds", preserve_fds, "refused when not 0: nothing crosses into a VM");
    if (auto done = parse_command(app, args, kFailed)) return *done;
    if (auto valid = check_sandbox_id(id); !valid) return refused(valid.error().message);
    std::error_code ec;
    if (std::filesystem::exists(state_dir(id), ec))
        return refused(fmt::format("container with id {} exists already", id));
    if (preserve_fds != 0) return refused("--preserve-fds: descriptors cannot be passed into a VM");
    bundle = absolute_dir(bundle);
    auto text = read_text_file(bundle + "/config.json", kMaxConfigBytes);
    if (!text) return refused(fmt::format("the bundle {}: {}", bundle, text.error().message));
    auto c = oci::parse_config(*text, bundle);
    if (!c) return refused(fmt::format("{}/config.json: {}", bundle, c.error().message));
    for (auto [value, name] : {std::pair{&c->kernel, oci::kAnnotationKernel},
                               {&c->initrd, oci::kAnnotationInitrd},
                               {&c->policy, oci::kAnnotationPolicy}}) {
        if (value->empty()) continue;
        std::error_code fec;
        const std::string real = std::filesystem::canonical(*value, fec).string();
        if (fec || !real.starts_with(std::string(oci::kAnnotationFileDir) + "/"))
            return refused(fmt::format("annotations.{}: {} is not a file in {}", name, *value,
                                       oci::kAnnotationFileDir));
        *value = real;
    }
    if (c->process.terminal && console_socket.empty())
        return refused(
            "process.terminal: a terminal needs --console-socket (where its master goes)");
    if (!c->process.terminal && !console_socket.empty())
        return refused("--console-socket: the container has no terminal (process.terminal)");
    if (auto copied = oci::read_copied_files(*c); !copied) return refused(copied.error().message);
    struct stat st {};
    if (::stat(c->root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
        return refused(fmt::format("root.path: {} is not a directory", c->root));
    remove_container_image(id);  // what a create that failed before ours may have left
    auto image = oci::container_image(c->root, id, c->rootfs_size_mib, oci::mkimage_path());
    if (!image) return refused(fmt::format("root.path: {}", image.error().message));
    log::debug("container {}: root image {} ({}, {:.2f} s, copy {:.2f} s)", id, image->path,
               image->cached ? "cached" : "built", image->build_seconds, image->copy_seconds);
    const std::vector<std::string> run_args = oci::create_args(*c, id, image->path);
    auto parsed = parse_create_args(run_args);
    if (!parsed) {
        remove_container_image(id);
        return refused(parsed.error().message);
    }
    SandboxSpec& spec = parsed->spec;
    spec.process = c->process.settings;
    spec.inherit_stdio = true;
    spec.terminal = c->process.terminal;
    spec.oci_bundle = bundle;
    spec.hold_netns = c->pod_network_namespace;
    spec.run_args = run_args;
    spec.run_cwd = bundle;
    if (c->process.oom_score_adj)
        // The VM's host processes inherit it: the host's OOM killer weighs the whole VM.
        (void)write_file("/proc/self/oom_score_adj", std::to_string(*c->process.oom_score_adj));
    // A terminal: its slave is the sandbox's stdio; ours stay the engine's.
    std::optional<oci::ConsolePty> pty;
    if (spec.terminal) {
        auto opened = oci::open_console_pty(c->process.console_size);
        if (!opened) {
            remove_container_image(id);
            return refused(opened.error().message);
        }
        pty = std::move(*opened);
        spec.terminal_fd = pty->slave.get();
    }
    const int rc = run_detached(std::move(spec), false);
    if (pty) pty->slave.reset();
    if (rc != 0) {
        remove_container_image(id);
        return rc;
    }
    // The engine never gets the container: the sandbox goes again, with what it made.
    const auto give_up = [&](std::string_view what, const Error& e) {
        log::error("{}{}", what, e.message);
        (void)remove_sandbox(id, true);
        remove_container_image(id);
        return kRefused;
    };
    if (pty)
        if (auto sent = oci::send_console_master(console_socket, pty->master.get()); !sent)
            return give_up("", sent.error());
    if (!pid_file.empty()) {
        auto r = read_state_file(state_dir(id));
        Result<> written =
            r ? write_pid_file(pid_file, r->pid) : Result<>(std::unexpected(r.error()));
        if (!written) return give_up("--pid-file: ", written.error());  // nobody would wait
    }
    return 0;
}

std::optional<std::string> one_id(std::span<const std::string> args, std::string_view what,
                                  int& status) {
    CLI::App app{fmt::format("{}\nUsage: stockade [global flags] {} ID", what, what), ""};
    std::string id;
    app.add_option("ID", id, "the container's id")->required();
    if (auto done = parse_command(app, args, kFailed)) {
        status = *done;
        return std::nullopt;
    }
    return id;
}

int start(std::span<const std::string> args) {
    int status = 0;
    auto id = one_id(args, "start", status);
    if (!id) return status;
    auto r = container(*id);
    if (!r) return kRefused;
    if (r->state != SandboxState::created)
        return refused(fmt::format("cannot start a container that is {}", oci_status(r->state)));
    return control_cli("start", std::vector<std::string>{*id}) == 0 ? 0 : kRefused;
}

int state(std::span<const std::string> args) {
    int status = 0;
    auto id = one_id(args, "state", status);
    if (!id) return status;
    auto r = container(*id);
    if (!r) return kRefused;
    json out = {{"ociVersion", kSpecVersion},
                {"id", r->id},
                {"pid", r->state == SandboxState::stopped ? 0 : r->pid},
                {"status", oci_status(r->state)},
                {"bundle", r->bundle},
                {"rootfs", ""},
                {"created", r->created},
                {"owner", ""}};
    if (auto c = bundle_container(r->bundle)) {
        out["rootfs"] = c->root;
        if (!c->annotations.empty()) out["annotations"] = c->annotations;
    }
    std::puts(out.dump(2).c_str());
    return 0;
}

// SIGTERM to the supervisor: it stops the VM and cleans up (the container's status is 143).
int stop_vm(const StateRecord& r) {
    if (::kill(r.pid, SIGTERM) != 0 && errno != ESRCH)
        return refused(fmt::format("container {}: its supervisor: {}", r.id, std::strerror(errno)));
    return 0;
}

int kill(std::span<const std::string> args) {
    CLI::App app{
        "Send a signal to the container's process (TERM by default).\nUsage: stockade "
        "[global flags] kill [--all] ID [SIGNAL]",
        "kill"};
    std::string id, signal = "TERM";
    bool all = false;
    app.add_option("ID", id, "the container's id")->required();
    app.add_option("SIGNAL", signal, "a name (TERM, SIGKILL) or number");
    app.add_flag("-a,--all", all,
                 "every process of the container: the workload's process group, as without it");
    if (auto done = parse_command(app, args, kFailed)) return *done;
    const auto sig = parse_signal(signal);
    if (!sig) return refused(fmt::format("{}: not a signal", signal));
    auto r = container(id);
    if (!r) return kRefused;
    if (r->state == SandboxState::stopped) return refused("container not running");
    // Before start there is no workload to signal: the signal ends the sandbox.
    if (r->state == SandboxState::created || r->state == SandboxState::creating) return stop_vm(*r);
    const std::vector<std::string> kill_args{id, std::to_string(*sig)};
    if (control_cli("kill", kill_args) == 0) return 0;
    // SIGKILL must end the container even when its guest no longer answers.
    if (*sig == SIGKILL) return stop_vm(*r);
    return kRefused;
}

int delete_container(std::span<const std::string> args) {
    CLI::App app{
        "Delete a container: its sandbox's state, image and everything it left.\nUsage: "
        "stockade [global flags] delete [--force] ID",
        "delete"};
    std::string id;
    bool force = false;
    app.add_option("ID", id, "the container's id")->required();
    app.add_flag("-f,--force", force, "stop a running container first (SIGTERM to its VM)");
    if (auto done = parse_command(app, args, kFailed)) return *done;
    std::error_code ec;
    if (check_sandbox_id(id) && !std::filesystem::exists(state_dir(id), ec)) {
        remove_container_image(id);
        return refused(fmt::format("container \"{}\" does not exist", id));
    }
    // A container that never started has nothing to lose (runc deletes it too; containerd
    // deletes it so when its start failed).
    auto r = container(id);
    const bool created =
        r && (r->state == SandboxState::created || r->state == SandboxState::creating);
    const int rc = remove_sandbox(id, force || created);
    if (rc == 0) remove_container_image(id);
    return rc;
}

int ps(std::span<const std::string> args) {
    CLI::App app{
        "The container's host processes.\nUsage: stockade [global flags] ps [--format "
        "table|json] ID",
        "ps"};
    std::string id, format = "table";
    app.add_option("ID", id, "the container's id")->required();
    app.add_option("-f,--format", format, "table or json")->check(CLI::IsMember({"table", "json"}));
    if (auto done = parse_command(app, args, kFailed)) return *done;
    auto r = container(id);
    if (!r) return kRefused;
    std::vector<pid_t> pids;
    if (r->state != SandboxState::stopped) {
        pids.push_back(r->pid);
        if (r->sandbox_pid != 0) pids.push_back(r->sandbox_pid);
    }
    if (format == "json") {
        std::puts(json(pids).dump().c_str());
    } else {
        std::puts("PID");
        for (pid_t p : pids)
            std::printf("%d\n", p);
    }
    return 0;
}

// A terminal exec's window size follows the engine's: its slave is our controlling terminal
// (stdin), SIGWINCH (blocked in every thread) says it changed, and a thread of ours sends the
// size to the sandbox (PUT /exec/resize), once at once and then at each change.
void follow_window_size(std::string id, std::uint32_t exec_id) {
    if (exec_id == 0) return;  // a sandbox that did not say which exec this is
    std::thread([id = std::move(id), exec_id] {
        sigset_t winch;
        sigemptyset(&winch);
        sigaddset(&winch, SIGWINCH);
        for (;;) {
            winsize ws{};
            if (::ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) {
                const json body{{"id", exec_id}, {"rows", ws.ws_row}, {"columns", ws.ws_col}};
                if (auto r = api_request(id, "PUT", "/exec/resize", body.dump()); !r)
                    log::debug("exec: resizing its terminal: {}", r.error().message);
            }
            int sig = 0;
            if (::sigwait(&winch, &sig) != 0) return;
        }
    }).detach();
}

// `exec`: the process from --process (containerd's way) or the command line. The guest runs
// every exec with the container's user, limits and capabilities, so a process asking for
// other ones is refused.
int exec(std::span<const std::string> args) {
    CLI::App app{
        "Run a process in a running container.\nUsage: stockade [global flags] exec "
        "[--process FILE | ARGS] [--detach] [--pid-file F] ID [COMMAND ARGS...]",
        "exec"};
    std::string id, process_file, pid_file, console_socket, cwd;
    std::vector<std::string> env, command;
    bool detach = false, tty = false;
    app.add_option("-p,--process", process_file, "the process, as config.json's process object");
    app.add_flag("-d,--detach", detach,
                 "return once it runs; --pid-file names a host process that exits with its "
                 "status");
    app.add_option("--pid-file", pid_file, "where to write that process's pid");
    app.add_option("--console-socket", console_socket,
                   "the Unix socket the exec's terminal's master is sent to (with --tty)");
    app.add_flag("-t,--tty", tty, "a terminal for the exec (as process.terminal)");
    app.add_option("-e,--env", env, "NAME=value (repeatable)");
    app.add_option("--cwd", cwd, "its working directory in the container");
    // The first argument that is no option is ID; everything after it is the command.
    app.prefix_command();
    if (auto done = parse_command(app, args, kFailed)) return *done;
    std::vector<std::string> rest = app.remaining();
    if (!rest.empty() && rest.front().size() > 1 && rest.front().front() == '-')
        return refused(
            fmt::format("exec: {} is not supported (every exec runs with the container's user, "
                        "capabilities and limits)",
                        rest.front()));
    if (rest.empty()) return refused("exec: no container id");
    id = rest.front();
    rest.erase(rest.begin());
    if (!rest.empty() && rest.front() == "--") rest.erase(rest.begin());
    command = std::move(rest);
    oci::Process p;
    if (!process_file.empty()) {
        auto text = read_text_file(process_file, kMaxConfigBytes);
        if (!text) return refused(fmt::format("--process: {}", text.error().message));
        auto parsed = oci::parse_process(*text);
        if (!parsed)
            return refused(fmt::format("--process {}: {}", process_file, parsed.error().message));
        p = std::move(*parsed);
    } else {
        if (command.empty()) return refused("exec: no command");
        p.args = command;
    }
    p.env.insert(p.env.end(), env.begin(), env.end());
    if (!cwd.empty()) p.cwd = cwd;
    auto r = container(id);
    if (!r) return kRefused;
    if (r->state != SandboxState::running)
        return refused(fmt::format("cannot exec in a container that is {}", oci_status(r->state)));
    if (!process_file.empty()) {
        const auto c = bundle_container(r->bundle);
        if (!c)
            return refused(
                fmt::format("exec: the container's bundle {} can no longer be read, so its process "
                            "settings cannot be checked against the exec's",
                            r->bundle));
        const JobProcess &mine = p.settings, &theirs = c->process.settings;
        // What an exec's process can say; the rest (mounts, paths, sysctls, seccomp) is the
        // container's alone and applies to every exec.
        if (mine.uid != theirs.uid || mine.gid != theirs.gid || mine.groups != theirs.groups ||
            mine.rlimits != theirs.rlimits || mine.caps != theirs.caps ||
            mine.no_new_privileges != theirs.no_new_privileges ||
            (mine.umask && *mine.umask != theirs.umask.value_or(022)))
            return refused(
                "exec: its user, umask, rlimits, capabilities or noNewPrivileges differ from the "
                "container's; stockade runs every exec with the container's");
    }
    const bool terminal = tty || p.terminal;
    if (terminal && console_socket.empty())
        return refused("exec: a terminal needs --console-socket (where its master goes)");
    if (!terminal && !console_socket.empty())
        return refused("--console-socket: the exec has no terminal (--tty, process.terminal)");
    json request{
        {"cmd", p.args}, {"env", p.env}, {"workdir", p.cwd}, {"stdin", true}, {"tty", terminal}};
    // A terminal: its master goes to the engine now; its slave becomes the relaying
    // process's stdin, stdout and stderr (and controlling terminal, so resizes reach it). The
    // engine's stdout and stderr must not stay open in a process that outlives this command:
    // an engine that reads them to their end (containerd's shim does, for a terminal exec)
    // would wait for the exec to end.
    std::optional<oci::ConsolePty> pty;
    if (terminal) {
        auto opened = oci::open_console_pty(p.console_size);
        if (!opened) return refused(opened.error().message);
        pty = std::move(*opened);
        if (auto sent = oci::send_console_master(console_socket, pty->master.get()); !sent)
            return refused(sent.error().message);
        pty->master.reset();
        // The guest's terminal starts with this one's size (process.consoleSize) if it has one.
        if (winsize ws{};
            ::ioctl(pty->slave.get(), TIOCGWINSZ, &ws) == 0 && (ws.ws_row != 0 || ws.ws_col != 0))
            request["tty"] = {{"rows", ws.ws_row}, {"columns", ws.ws_col}};
    }
    const auto take_terminal = [&] {
        if (!pty) return;
        if (::setsid() < 0 || ::ioctl(pty->slave.get(), TIOCSCTTY, 0) != 0)
            log::debug("exec: the terminal's window size will not follow: {}",
                       std::strerror(errno));
        ::dup2(pty->slave.get(), STDIN_FILENO);
        ::dup2(pty->slave.get(), STDOUT_FILENO);
        ::dup2(pty->slave.get(), STDERR_FILENO);
        pty->slave.reset();
        sigset_t winch;
        sigemptyset(&winch);
        sigaddset(&winch, SIGWINCH);
        ::pthread_sigmask(SIG_BLOCK, &winch, nullptr);
    };
    const auto follow = [&, id](std::uint32_t exec_id) {
        if (terminal) follow_window_size(id, exec_id);
    };
    ::signal(SIGPIPE, SIG_IGN);
    if (!detach && !terminal) {
        auto status = exec_relayed(id, request, true, {});
        if (!status) return refused(status.error().message);
        return *status;
    }
    // Detached, or on a terminal: a child of ours holds the exec and exits with its status
    // (the engine, as subreaper, waits for it); we return once it runs, or, not detached,
    // with its status. On a terminal the child leads a session of its own, whose
    // controlling terminal the slave is (which a process group leader could not).
    int ready[2];
    if (::pipe2(ready, O_CLOEXEC) != 0) return refused("exec: a pipe");
    const pid_t child = ::fork();
    if (child < 0) return refused("exec: fork");
    if (child == 0) {
        ::close(ready[0]);
        take_terminal();
        auto status = exec_relayed(id, request, true, [&](std::uint32_t exec_id) {
            follow(exec_id);
            (void)write_all(ready[1], "R");
            ::close(ready[1]);
        });
        if (!status) log::error("{}", status.error().message);
        ::_exit(status ? *status : kFailed);
    }
    ::close(ready[1]);
    char byte = 0;
    ssize_t n;
    while ((n = ::read(ready[0], &byte, 1)) < 0 && errno == EINTR) {
    }
    ::close(ready[0]);
    if (n != 1) {
        int st = 0;
        (void)::waitpid(child, &st, 0);
        return WIFEXITED(st) && WEXITSTATUS(st) != 0 ? WEXITSTATUS(st) : kRefused;
    }
    if (!pid_file.empty())
        if (auto w = write_pid_file(pid_file, child); !w) return refused(w.error().message);
    if (!detach) {
        int st = 0;
        while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
        }
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return 0;
}

int pause_or_resume(std::string_view command, std::span<const std::string> args) {
    int status = 0;
    auto id = one_id(args, command, status);
    if (!id) return status;
    if (!container(*id)) return kRefused;
    return control_cli(command, std::vector<std::string>{*id}) == 0 ? 0 : kRefused;
}

int features() {
    json out = {
        {"ociVersionMin", "1.0.0"},
        {"ociVersionMax", kSpecVersion},
        {"hooks", json::array()},
        {"mountOptions", {"ro",       "rw",         "nosuid",      "suid",          "nodev",
                          "dev",      "noexec",     "exec",        "sync",          "async",
                          "dirsync",  "noatime",    "atime",       "nodiratime",    "diratime",
                          "relatime", "norelatime", "strictatime", "nostrictatime", "mand",
                          "nomand"}},
        {"linux",
         {{"namespaces", {"pid", "ipc", "uts", "mount", "network", "cgroup"}},
          {"cgroup", {{"v1", false}, {"v2", true}, {"systemd", false}}},
          {"seccomp", {{"enabled", true}}},
          {"apparmor", {{"enabled", false}}},
          {"selinux", {{"enabled", false}}}}},
        {"annotations",
         {{"io.stockade.runtime", "one container is one KVM micro-VM"},
          {std::string(oci::kAnnotationKernel), "the guest kernel to boot"},
          {std::string(oci::kAnnotationInitrd), "the initramfs (with stockade-init)"},
          {std::string(oci::kAnnotationVcpus), "vCPUs (default: from cpu quota, else 1)"},
          {std::string(oci::kAnnotationMemory), "guest MiB (default: memory limit, else 256)"},
          {std::string(oci::kAnnotationPolicy), "the sandbox policy file"},
          {std::string(oci::kAnnotationRootfsSize), "the root image's size in MiB"}}}};
    out["linux"]["capabilities"] = oci::capability_names();
    std::puts(out.dump(2).c_str());
    return 0;
}

constexpr const char* kHelp =
    R"(stockade as an OCI runtime (the runc command line containerd and podman drive):
  stockade [global flags] create [--bundle DIR] [--pid-file F] ID   boot the container's VM
  stockade [global flags] start ID | state ID | kill [--all] ID [SIGNAL] | delete [--force] ID
  stockade [global flags] exec [--process F] [--detach] [--pid-file F] ID [CMD...]
  stockade [global flags] ps [--format json] ID | pause ID | resume ID | features
Global flags: --root DIR (accepted; state stays in /run/stockade), --log FILE,
--log-format text|json, --debug, --systemd-cgroup (accepted, ignored).
)";

}  // namespace

bool is_oci_invocation(std::span<const std::string> args) {
    std::size_t at = 0;
    for (; at < args.size() && args[at].starts_with("--"); ++at) {
        const std::string name = args[at].substr(0, args[at].find('='));
        if (name == "--log-format") {
            if (args[at].find('=') == std::string::npos) ++at;
            continue;
        }
        if (one_of(kValueFlags, name) || one_of(kPlainFlags, name)) return true;
        return false;
    }
    if (at >= args.size()) return false;
    const std::string& command = args[at];
    if (command == "state" || command == "delete" || command == "features") return true;
    if (command == "create")
        for (std::size_t i = at + 1; i < args.size() && args[i] != "--"; ++i)
            if (args[i] == "--bundle" || args[i] == "-b" || args[i].starts_with("--bundle="))
                return true;
    if (command == "exec")
        for (std::size_t i = at + 1; i < args.size() && args[i] != "--"; ++i)
            if (args[i] == "--process" || args[i] == "-p" || args[i].starts_with("--process="))
                return true;
    return false;
}

int oci_cli(std::span<const std::string> args) {
    std::size_t at = 0;
    const auto globals = parse_globals(args, at);
    if (!globals) {
        log::error("unknown global flag (see stockade --help)");
        return kFailed;
    }
    // create's and exec's stderr are the container's (the engine reads their errors from
    // --log); the other commands' errors go to stderr, where engines read them, as runc's do.
    Globals where = *globals;
    if (at < args.size() && args[at] != "create" && args[at] != "exec") where.log.clear();
    if (const int rc = set_up_logging(where); rc != 0) return rc;
    if (at >= args.size() || args[at] == "help") {
        std::fputs(kHelp, stdout);
        return at >= args.size() ? kFailed : 0;
    }
    const std::string& command = args[at];
    const auto rest = args.subspan(at + 1);
    if (command == "create") return create(rest);
    if (command == "start") return start(rest);
    if (command == "state") return state(rest);
    if (command == "kill") return kill(rest);
    if (command == "delete") return delete_container(rest);
    if (command == "exec") return exec(rest);
    if (command == "ps") return ps(rest);
    if (command == "pause" || command == "resume") return pause_or_resume(command, rest);
    if (command == "features") return features();
    if (command == "run")
        return refused("run: use create and start (stockade's own `run` boots a command)");
    return refused(fmt::format("{}: not a command of the runtime (stockade --help)", command));
}

}  // namespace stockade::cli
