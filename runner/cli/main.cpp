// stockade: run untrusted workloads in hardened KVM micro-VMs.
#include <fcntl.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/io.hpp"
#include "base/log.hpp"
#include "netsetup/cli.hpp"
#include "policy/cli.hpp"
#include "runner/cli/control_commands.hpp"
#include "runner/cli/drill_command.hpp"
#include "runner/cli/manage.hpp"
#include "runner/cli/oci_runtime.hpp"
#include "runner/cli/run_args.hpp"
#include "runner/cli/snapshot_commands.hpp"
#include "runner/supervisor/supervisor.hpp"
#include "runner/vmm/seccomp_profiles.hpp"

namespace {

// `run` and `create` (which always detaches).
int run_command(const std::vector<std::string>& args, bool create) {
    auto parsed = create ? stockade::parse_create_args(args) : stockade::parse_run_args(args);
    if (!parsed) {
        stockade::log::error("{}", parsed.error().message);
        return 125;
    }
    if (!parsed->help.empty()) {
        std::fputs(parsed->help.c_str(), stdout);
        return 0;
    }
    using stockade::log::Level;
    const std::string& level = parsed->log_level;
    if (!level.empty())
        stockade::log::set_level(level == "error"     ? Level::error
                                 : level == "warning" ? Level::warn
                                 : level == "info"    ? Level::info
                                                      : Level::debug);
    if (parsed->verbose) stockade::log::set_level(Level::debug);
    if (!parsed->log_path.empty()) {
        auto file = stockade::open_file(
            parsed->log_path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (!file) {
            stockade::log::error("--log-path: {}", file.error().message);
            return 125;
        }
        stockade::log::set_output(file->release());
    }
    parsed->spec.run_args = args;
    if (char* cwd = ::getcwd(nullptr, 0)) {
        parsed->spec.run_cwd = cwd;
        std::free(cwd);
    }
    if (parsed->spec.detach) return stockade::run_detached(std::move(parsed->spec));
    return stockade::run_sandbox(parsed->spec);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    // The runc command line engines drive (runner/cli/oci_runtime.hpp).
    if (stockade::cli::is_oci_invocation(args)) return stockade::cli::oci_cli(args);
    // Global options come before the command: --log-format text|json.
    while (!args.empty() && args.front().starts_with("--log-format")) {
        std::string value;
        if (args.front() == "--log-format" && args.size() > 1) {
            value = args[1];
            args.erase(args.begin(), args.begin() + 2);
        } else if (args.front().starts_with("--log-format=")) {
            value = args.front().substr(13);
            args.erase(args.begin());
        }
        if (value != "text" && value != "json") {
            stockade::log::error("--log-format: expected text or json");
            return 125;
        }
        stockade::log::set_format(value == "json" ? stockade::log::Format::json
                                                  : stockade::log::Format::text);
    }
    // Subcommands own their arguments (run's command line is the workload's).
    const std::string command = args.empty() ? "" : args.front();
    const auto rest = std::span(args).subspan(args.empty() ? 0 : 1);
    // `create --restore DIR [restore's options]` (anywhere among create's options): a
    // restored sandbox that waits for `start`.
    if (command == "create")
        if (auto restore = stockade::cli::create_restore_args({rest.begin(), rest.end()}))
            return stockade::cli::snapshot_cli(*restore);
    if (command == "run" || command == "create")
        return run_command({rest.begin(), rest.end()}, command == "create");
    if (stockade::cli::is_manage_command(command)) return stockade::cli::manage_cli(command, rest);
    if (stockade::cli::is_control_command(command))
        return stockade::cli::control_cli(command, rest);
    if (command == "snapshot") return stockade::cli::snapshot_cli(rest);
    if (command == "drill") return stockade::cli::drill_cli(rest);
    if (command == "net") return stockade::net::net_cli(rest);
    if (command == "policy")
        return stockade::policy::policy_cli(rest, {stockade::runner_seccomp_profiles});

    CLI::App app{"stockade: run untrusted workloads in hardened KVM micro-VMs"};
    app.set_version_flag("--version", "stockade " STOCKADE_VERSION);
    app.add_option("--log-format",
                   "stockade's own messages on stderr: text (default) or json "
                   "lines {\"time\", \"level\", \"msg\"}; before the command");
    app.require_subcommand(1);
    app.add_subcommand("run",
                       "run a command in a fresh sandbox VM; -d leaves it in the background "
                       "(stockade run --help)");
    app.add_subcommand("create",
                       "boot a sandbox in the background that waits for `start`; `create "
                       "--restore DIR [--id ID] ...` restores a snapshot that waits so (stockade "
                       "create --help)");
    app.add_subcommand("start", "start a created sandbox's command");
    app.add_subcommand("ps", "list sandboxes (-a: stopped ones too, --json)");
    app.add_subcommand("inspect", "show a sandbox's state, configuration and metrics as JSON");
    app.add_subcommand("logs", "print a detached sandbox's stdout and stderr (-f: follow)");
    app.add_subcommand("exec", "run another command in a running sandbox");
    app.add_subcommand("kill", "send a signal to a sandbox's command");
    app.add_subcommand("stop", "stop a sandbox");
    app.add_subcommand("pause", "pause a sandbox's vCPUs");
    app.add_subcommand("resume", "resume a paused sandbox");
    app.add_subcommand("rm", "remove stopped sandboxes and what they left (-f: stop them first)");
    app.add_subcommand("snapshot",
                       "save a running sandbox and restore it: create, restore, rollback, verify "
                       "(stockade snapshot --help)");
    app.add_subcommand("drill",
                       "rehearse a recovery: restore a snapshot into an isolated sandbox, run a "
                       "check in it, report as JSON, remove it all (stockade drill --help)");
    app.add_subcommand("net",
                       "set up, tear down or show a sandbox's host network (stockade net --help)");
    app.add_subcommand("policy", "check or show a sandbox policy (stockade policy --help)");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int rc = app.exit(e);
        return e.get_exit_code() == 0 ? rc : 125;
    }
    return 125;
}
