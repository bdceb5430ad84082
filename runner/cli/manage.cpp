#include "runner/cli/manage.hpp"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "base/log.hpp"
#include "base/sandbox_id.hpp"
#include "netsetup/network.hpp"
#include "policy/cgroup.hpp"
#include "policy/jail.hpp"
#include "policy/selinux_context.hpp"
#include "runner/cli/api_client.hpp"
#include "runner/cli/exit_status.hpp"
#include "runner/supervisor/api_socket.hpp"
#include "runner/supervisor/state_file.hpp"

namespace stockade::cli {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// The sandbox `id`'s state as it stands (liveness-corrected). A sandbox that does not exist
// is refused (exit 1), one whose state cannot be read is our failure (125).
struct Lookup {
    std::optional<StateRecord> record;
    int status = 0;  // when there is no record
};
Lookup look_up(const std::string& id) {
    if (auto valid = check_sandbox_id(id); !valid) {
        log::error("{}", valid.error().message);
        return {std::nullopt, kRefused};
    }
    const std::string dir = state_dir(id);
    std::error_code ec;
    if (!std::filesystem::exists(state_file_path(dir), ec)) {
        log::error("no sandbox {} (no {})", id, state_file_path(dir));
        return {std::nullopt, kRefused};
    }
    auto r = read_live_state(dir);
    if (!r) {
        log::error("{}", r.error().message);
        return {std::nullopt, kFailed};
    }
    return {std::move(*r), 0};
}

}  // namespace

std::optional<int> parse_command(CLI::App& app, std::span<const std::string> args,
                                 int status_on_error) {
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
    try {
        app.parse(reversed);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return e.get_exit_code() == 0 ? rc : status_on_error;
    }
    return std::nullopt;
}

// Every sandbox with a state file, by id; other entries of /run/stockade (the MCS and network
// registries) are not sandboxes.
std::vector<StateRecord> all_sandboxes() {
    std::vector<StateRecord> out;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(kStateRoot, ec)) {
        const std::string dir = e.path().string();
        if (!check_sandbox_id(e.path().filename().string()) ||
            !std::filesystem::exists(state_file_path(dir), ec))
            continue;
        if (auto r = read_live_state(dir))
            out.push_back(std::move(*r));
        else
            log::warn("{}", r.error().message);
    }
    std::ranges::sort(out, {}, &StateRecord::id);
    return out;
}

namespace {

json to_json(const StateRecord& r) {
    return json::parse(state_to_json(r));
}

std::string state_column(const StateRecord& r) {
    if (r.state == SandboxState::stopped && r.exit_status)
        return fmt::format("stopped ({})", *r.exit_status);
    return std::string(to_string(r.state));
}

std::string command_column(const std::vector<std::string>& argv) {
    std::string out;
    for (const auto& a : argv)
        out += (out.empty() ? "" : " ") + a;
    constexpr std::size_t kWidth = 40;
    return out.size() > kWidth ? out.substr(0, kWidth - 3) + "..." : out;
}

std::optional<int> parse(CLI::App& app, std::span<const std::string> args) {
    return parse_command(app, args, kFailed);
}

int ps(std::span<const std::string> args) {
    CLI::App app{"List sandboxes from their state files (running ones; -a: all)", "stockade ps"};
    bool as_json = false, all = false;
    app.add_flag("--json", as_json, "a JSON array of the state files' contents");
    app.add_flag("-a,--all", all, "stopped sandboxes too (kept until `stockade rm ID`)");
    if (auto rc = parse(app, args)) return *rc;
    auto sandboxes = all_sandboxes();
    if (!all)
        std::erase_if(sandboxes,
                      [](const StateRecord& r) { return r.state == SandboxState::stopped; });
    if (as_json) {
        json out = json::array();
        for (const auto& r : sandboxes)
            out.push_back(to_json(r));
        std::puts(out.dump(2).c_str());
        return 0;
    }
    constexpr const char* kRow = "{:<24} {:<13} {:>8} {:<20} {:>5} {:>8}  {}\n";
    fmt::print(kRow, "ID", "STATE", "PID", "CREATED", "VCPUS", "MEMORY", "COMMAND");
    for (const auto& r : sandboxes)
        fmt::print(kRow, r.id, state_column(r), r.pid, r.created, r.vcpus,
                   fmt::format("{}MiB", r.memory_mib), command_column(r.argv));
    return 0;
}

// One GET of the control API, as inspect shows it: the reply's JSON, or what went wrong.
json api_get(const std::string& id, std::string_view target) {
    auto reply = api_request(id, "GET", target);
    if (!reply) return json{{"error", reply.error().message}};
    if (reply->status != 200)
        return json{{"error", fmt::format("HTTP {}: {}", reply->status, fault_text(*reply))}};
    json body = json::parse(reply->body, nullptr, false);
    if (body.is_discarded()) return json{{"error", "the reply is not JSON"}};
    return body;
}

int inspect(std::span<const std::string> args) {
    CLI::App app{"Show a sandbox's state file, and its configuration and metrics while it runs",
                 "stockade inspect"};
    std::string id;
    app.add_option("ID", id, "the sandbox")->required();
    if (auto rc = parse(app, args)) return *rc;
    const auto found = look_up(id);
    if (!found.record) return found.status;
    json out = to_json(*found.record);
    if (found.record->state != SandboxState::stopped)
        out["api"] = {{"vm_config", api_get(id, "/vm/config")},
                      {"metrics", api_get(id, "/metrics")}};
    std::puts(out.dump(2).c_str());
    return 0;
}

// Copies what `from` has beyond its current offset to `to`. False when it could not.
bool drain(int from, int to) {
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(from, buf, sizeof buf);
        if (n == 0) return true;
        if (n < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        if (!write_all(to, std::string_view(buf, static_cast<std::size_t>(n)))) return false;
    }
}

int logs(std::span<const std::string> args) {
    CLI::App app{"Print a detached sandbox's stdout and stderr (to stdout and stderr)",
                 "stockade logs"};
    std::string id;
    bool follow = false;
    app.add_flag("-f,--follow", follow, "keep printing what comes until the sandbox stops");
    app.add_option("ID", id, "the sandbox")->required();
    if (auto rc = parse(app, args)) return *rc;
    const auto found = look_up(id);
    if (!found.record) return found.status;
    if (found.record->stdout_log.empty()) {
        log::error("sandbox {} has no logs: it was not started with -d or create", id);
        return kRefused;
    }
    auto out = open_file(found.record->stdout_log, O_RDONLY);
    auto err = open_file(found.record->stderr_log, O_RDONLY);
    for (const auto* opened : {&out, &err})
        if (!*opened) {
            log::error("{}", opened->error().message);
            return kFailed;
        }
    for (;;) {
        // Whether it had stopped is asked before the last copy, so nothing written before it
        // stopped is missed.
        const bool stopped = !follow || [&] {
            auto r = read_live_state(state_dir(id));
            return !r || r->state == SandboxState::stopped;
        }();
        if (!drain(out->get(), STDOUT_FILENO) || !drain(err->get(), STDERR_FILENO)) {
            log::error("sandbox {}: copying its logs: {}", id, std::strerror(errno));
            return kFailed;
        }
        if (stopped) return 0;
        std::this_thread::sleep_for(200ms);
    }
}

// Waits until the supervisor `r` names is gone; false when it is still there after `timeout`.
bool wait_gone(const StateRecord& r, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (process_start_time(r.pid) == r.pid_start_time) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::sleep_for(50ms);
    }
    return true;
}

// Stops the supervisor of a live sandbox: SIGTERM (it stops the sandbox and cleans up), then
// SIGKILL after 10 s (the sandbox process dies with it; the rest is rm's).
Result<> stop_supervisor(const StateRecord& r) {
    if (::kill(r.pid, SIGTERM) != 0 && errno != ESRCH)
        return fail_sys(fmt::format("sandbox {}: SIGTERM to its supervisor {}", r.id, r.pid));
    if (wait_gone(r, 10s)) return {};
    log::warn("sandbox {}: its supervisor {} is still there after 10 s: SIGKILL", r.id, r.pid);
    if (::kill(r.pid, SIGKILL) != 0 && errno != ESRCH)
        return fail_sys(fmt::format("sandbox {}: SIGKILL to its supervisor {}", r.id, r.pid));
    if (!wait_gone(r, 5s)) return fail("sandbox {}: its supervisor {} does not go", r.id, r.pid);
    return {};
}

// What a supervisor that is gone left on the host; every part is tried, the first error is
// returned.
Result<> remove_host_state(const StateRecord& r) {
    Result<> first;
    auto note = [&](Result<> step) {
        if (!step && first) first = std::move(step);
    };
    if (!r.host.cgroup_leaf.empty()) {
        auto leaf = policy::CgroupLeaf::adopt(r.host.cgroup_leaf);
        if (!leaf)
            note(std::unexpected(std::move(leaf).error()));
        else if (*leaf)
            note((*leaf)->remove());
    }
    if (!r.host.jail_root.empty()) note(policy::JailRoot::adopt(r.host.jail_root).remove());
    if (!r.host.taps.empty()) {
        auto down = net::down(r.id);
        if (!down) note(std::unexpected(std::move(down).error()));
    }
    if (!r.host.mcs_file.empty()) note(policy::McsReservation::release_stale(r.host.mcs_file));
    return first;
}

}  // namespace

// rm of one sandbox: 0, kRefused or kFailed.
int remove_sandbox(const std::string& id, bool force) {
    const auto found = look_up(id);
    if (!found.record) return found.status;
    StateRecord r = *found.record;
    if (r.state != SandboxState::stopped) {
        if (!force) {
            log::error("sandbox {} is {}: stop it first or use --force", id, to_string(r.state));
            return kRefused;
        }
        if (auto stopped = stop_supervisor(r); !stopped) {
            log::error("{}", stopped.error().message);
            return kFailed;
        }
        // A supervisor that cleaned up said so in the file (a foreground one took the whole
        // directory along).
        const std::string dir = state_dir(id);
        std::error_code ec;
        if (!std::filesystem::exists(dir, ec)) return 0;
        if (auto now = read_state_file(dir)) r = std::move(*now);
    }
    if (auto cleaned = remove_host_state(r); !cleaned) {
        log::error("sandbox {}: {} (its state is kept: run `stockade rm {}` again)", id,
                   cleaned.error().message, id);
        return kFailed;
    }
    std::error_code ec;
    std::filesystem::remove_all(state_dir(id), ec);
    if (ec) {
        log::error("sandbox {}: removing {}: {}", id, state_dir(id), ec.message());
        return kFailed;
    }
    return 0;
}

namespace {

int rm(std::span<const std::string> args) {
    CLI::App app{"Remove stopped sandboxes: their logs, state and what is left of them on the host",
                 "stockade rm"};
    std::vector<std::string> ids;
    bool force = false;
    app.add_flag("-f,--force", force,
                 "stop a running sandbox first (SIGTERM to its supervisor, SIGKILL after 10 s)");
    app.add_option("ID", ids, "the sandboxes")->required();
    if (auto rc = parse(app, args)) return *rc;
    int status = 0;
    for (const auto& id : ids)
        status = std::max(status, remove_sandbox(id, force));
    return status;
}

}  // namespace

bool is_manage_command(std::string_view command) {
    return command == "ps" || command == "inspect" || command == "logs" || command == "rm";
}

int manage_cli(std::string_view command, std::span<const std::string> args) {
    if (command == "ps") return ps(args);
    if (command == "inspect") return inspect(args);
    if (command == "logs") return logs(args);
    return rm(args);
}

}  // namespace stockade::cli
