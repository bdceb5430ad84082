// stockade: run untrusted workloads in hardened KVM micro-VMs.
#include <cstdio>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/log.hpp"
#include "netsetup/cli.hpp"
#include "policy/cli.hpp"
#include "runner/cli/control_commands.hpp"
#include "runner/cli/run_args.hpp"
#include "runner/supervisor/supervisor.hpp"
#include "runner/vmm/seccomp_profiles.hpp"

namespace {

int run_command(const std::vector<std::string>& args) {
    auto parsed = stockade::parse_run_args(args);
    if (!parsed) {
        stockade::log::error("{}", parsed.error().message);
        return 125;
    }
    if (!parsed->help.empty()) {
        std::fputs(parsed->help.c_str(), stdout);
        return 0;
    }
    if (parsed->verbose) stockade::log::set_level(stockade::log::Level::debug);
    return stockade::run_sandbox(parsed->spec);
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    // Subcommands own their arguments (run's command line is the workload's).
    if (!args.empty() && args.front() == "run") return run_command({args.begin() + 1, args.end()});
    if (!args.empty() && stockade::cli::is_control_command(args.front()))
        return stockade::cli::control_cli(args.front(), std::span(args).subspan(1));
    if (!args.empty() && args.front() == "net")
        return stockade::net::net_cli(std::span(args).subspan(1));
    if (!args.empty() && args.front() == "policy")
        return stockade::policy::policy_cli(std::span(args).subspan(1),
                                            {stockade::runner_seccomp_profiles});

    CLI::App app{"stockade: run untrusted workloads in hardened KVM micro-VMs"};
    app.set_version_flag("--version", "stockade " STOCKADE_VERSION);
    app.require_subcommand(1);
    app.add_subcommand("run", "run a command in a fresh sandbox VM (stockade run --help)");
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
