#include "runner/cli/control_commands.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <thread>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "base/log.hpp"
#include "base/signal_name.hpp"
#include "runner/api/exec_stream.hpp"
#include "runner/cli/api_client.hpp"
#include "runner/cli/control_args.hpp"
#include "runner/supervisor/state_file.hpp"

namespace stockade::cli {
namespace {

using namespace std::chrono_literals;

// One request whose reply has no body worth showing; 0, or the fault printed and 1 (the
// sandbox refused) / 125 (it could not be asked).
int call(std::string_view id, std::string_view method, std::string_view target,
         const nlohmann::json& body) {
    auto reply = api_request(id, method, target, body.dump());
    if (!reply) {
        log::error("{}", reply.error().message);
        return 125;
    }
    if (reply->status / 100 == 2) return 0;
    log::error("sandbox {}: {}", id, fault_text(*reply));
    return 1;
}

// Copies stdin (with -i) to the exec's connection and its frames to `out` and `err`;
// returns the exec's status.
Result<int> relay_exec(int conn, std::string first, bool interactive, int out = STDOUT_FILENO,
                       int err = STDERR_FILENO) {
    api::ExecFrameDecoder decoder;
    decoder.feed(first);
    bool in_open = interactive;
    if (!in_open) (void)::shutdown(conn, SHUT_WR);
    STOCKADE_TRY_VOID(set_nonblocking(conn, "the exec connection"));
    std::string to_send;  // stdin read, not yet taken by the connection
    std::optional<int> status;
    std::array<char, 16 * 1024> buf{};
    for (;;) {
        for (;;) {
            auto frame = decoder.next();
            if (!frame) return fail("{}", frame.error());
            if (!*frame) break;
            const auto& f = **frame;
            if (f.kind == api::ExecFrame::exit) {
                status = f.status;
            } else {
                // A reader of ours that went away (EPIPE) does not end the exec.
                (void)write_all(f.kind == api::ExecFrame::out ? out : err, f.payload);
            }
        }
        pollfd fds[2] = {{conn, POLLIN, 0}, {-1, POLLIN, 0}};
        if (!to_send.empty())
            fds[0].events |= POLLOUT;
        else if (in_open)
            fds[1].fd = STDIN_FILENO;
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            return fail_sys("poll");
        }
        if (fds[1].revents != 0) {
            const ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
            if (n > 0) {
                to_send.assign(buf.data(), static_cast<std::size_t>(n));
            } else if (n == 0 || errno != EINTR) {
                in_open = false;
                (void)::shutdown(conn, SHUT_WR);
            }
        }
        if ((fds[0].revents & POLLOUT) && !to_send.empty()) {
            const ssize_t n = ::send(conn, to_send.data(), to_send.size(), MSG_NOSIGNAL);
            if (n > 0) {
                to_send.erase(0, static_cast<std::size_t>(n));
                if (to_send.empty() && !in_open) (void)::shutdown(conn, SHUT_WR);
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                to_send.clear();  // the exec no longer takes input
                in_open = false;
            }
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            const ssize_t n = ::read(conn, buf.data(), buf.size());
            if (n > 0) {
                decoder.feed({buf.data(), static_cast<std::size_t>(n)});
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (status && decoder.buffered() == 0) return *status;
            return fail("the sandbox ended the exec before it reported a status");
        }
    }
}

// A command line that was wrong (125, said why) or asked for --help (0, printed it): the exit
// status; nullopt: go on.
template <class Args>
std::optional<int> finished_parsing(const Result<Args>& parsed) {
    if (!parsed) {
        log::error("{}", parsed.error().message);
        return 125;
    }
    if (!parsed->help.empty()) {
        std::fputs(parsed->help.c_str(), stdout);
        return 0;
    }
    return std::nullopt;
}

// Opens an exec stream. A sandbox that cannot take it yet (503: its guest's init is not
// connected yet, booting or reconnecting after `snapshot restore -d`; or too many API
// connections) is asked again until it can, up to `end` (by default a minute): the exec runs
// once, when the guest can take it.
Result<ApiStream> open_exec(
    std::string_view id, const nlohmann::json& request,
    std::chrono::steady_clock::time_point end = std::chrono::steady_clock::now() + 60s) {
    for (;;) {
        auto stream = STOCKADE_TRY(api_open_stream(id, "PUT", "/exec", request.dump()));
        if (stream.reply.status != 503 || std::chrono::steady_clock::now() >= end) return stream;
        std::this_thread::sleep_for(100ms);
    }
}

int exec_command(std::span<const std::string> args) {
    auto parsed = parse_exec_args(args);
    if (auto done = finished_parsing(parsed)) return *done;
    const ExecArgs& a = *parsed;
    const nlohmann::json body{
        {"cmd", a.argv}, {"env", a.env}, {"workdir", a.workdir}, {"stdin", a.interactive}};
    ::signal(SIGPIPE, SIG_IGN);
    auto stream = open_exec(a.id, body);
    if (!stream) {
        log::error("{}", stream.error().message);
        return 125;
    }
    if (stream->reply.status != 200) {
        log::error("sandbox {}: {}", a.id, fault_text(stream->reply));
        return 125;
    }
    auto status = relay_exec(stream->conn.get(), std::move(stream->body), a.interactive);
    if (!status) {
        log::error("exec in sandbox {}: {}", a.id, status.error().message);
        return 125;
    }
    return *status;
}

// Waits until the sandbox has stopped and its supervisor cleaned up (its state file says
// stopped, or is gone with its directory: a foreground run's); false after `limit`.
bool wait_stopped(std::string_view id, std::chrono::milliseconds limit) {
    const auto end = std::chrono::steady_clock::now() + limit;
    for (;;) {
        auto st = read_live_state(state_dir(id));
        if (!st || st->state == SandboxState::stopped) return true;
        if (std::chrono::steady_clock::now() >= end) return false;
        std::this_thread::sleep_for(100ms);
    }
}

// The supervisor's pid, while it is the process the state file names.
Result<pid_t> supervisor_pid(std::string_view id) {
    const StateRecord st = STOCKADE_TRY(read_live_state(state_dir(id)));
    if (st.state == SandboxState::stopped) return fail("sandbox {}: not running", id);
    return st.pid;
}

int stop_command(const ControlArgs& a) {
    // Already stopped: nothing to do, as docker stop.
    if (!api_request(a.id, "GET", "/", {}, 2s)) return 0;
    const int asked = call(a.id, "PUT", "/actions", {{"action_type", "SendCtrlAltDel"}});
    if (asked == 125) return asked;
    if (wait_stopped(a.id, std::chrono::seconds(a.time))) return 0;
    log::warn("sandbox {}: still running after {} s: stopping its VM", a.id, a.time);
    auto pid = supervisor_pid(a.id);
    if (!pid) {
        log::error("{}", pid.error().message);
        return 125;
    }
    (void)::kill(*pid, SIGTERM);  // the supervisor stops the VM at once and cleans up
    if (wait_stopped(a.id, 10s)) return 0;
    (void)::kill(*pid, SIGKILL);
    return wait_stopped(a.id, 5s) ? 0 : 125;
}

}  // namespace

Result<int> exec_relayed(std::string_view id, const nlohmann::json& request, bool interactive,
                         const std::function<void(std::uint32_t)>& started) {
    auto stream = STOCKADE_TRY(open_exec(id, request));
    if (stream.reply.status != 200) return fail("sandbox {}: {}", id, fault_text(stream.reply));
    if (started) started(stream.exec_id);
    return relay_exec(stream.conn.get(), std::move(stream.body), interactive);
}

Result<int> exec_in(std::string_view id, const std::vector<std::string>& argv, int out, int err,
                    std::chrono::steady_clock::time_point until) {
    const nlohmann::json body{{"cmd", argv}, {"stdin", false}};
    auto stream = STOCKADE_TRY(open_exec(id, body, until));
    if (stream.reply.status != 200) return fail("sandbox {}: {}", id, fault_text(stream.reply));
    return relay_exec(stream.conn.get(), std::move(stream.body), false, out, err);
}

bool is_control_command(std::string_view command) {
    for (std::string_view c : kControlCommands)
        if (c == command) return true;
    return false;
}

int control_cli(std::string_view command, std::span<const std::string> args) {
    if (command == "exec") return exec_command(args);
    auto parsed = parse_control_args(command, args);
    if (auto done = finished_parsing(parsed)) return *done;
    const ControlArgs& a = *parsed;
    if (command == "kill") return call(a.id, "PUT", "/kill", {{"signal", a.signal}});
    if (command == "stop") return stop_command(a);
    if (command == "pause") return call(a.id, "PATCH", "/vm", {{"state", "Paused"}});
    if (command == "resume") return call(a.id, "PATCH", "/vm", {{"state", "Resumed"}});
    if (command == "start")
        return call(a.id, "PUT", "/actions", {{"action_type", "InstanceStart"}});
    log::error("unknown command {}", command);
    return 125;
}

}  // namespace stockade::cli
