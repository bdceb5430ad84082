#include "runner/cli/control_args.hpp"

#include <CLI/CLI.hpp>

#include "base/sandbox_id.hpp"
#include "base/signal_name.hpp"

namespace stockade::cli {
namespace {

constexpr const char* kExecHelp = R"(Run CMD in the running sandbox ID, next to its workload.

CMD's stdout and stderr are passed through byte-exact and apart; with -i, stdin is passed to
it (without -i it reads an empty stdin). Exit status as for run: CMD's own; 125 when
stockade failed (ID not running, or the sandbox ended before CMD did); 126 when CMD could
not be executed; 127 when it was not found. CMD runs in the workload's root file system,
with only the environment given here (and a default PATH).)";

// Parses with CLI11; CLI11 pops arguments from the back.
template <class Setup>
Result<std::string> parse(CLI::App& app, std::span<const std::string> args, Setup&& extra) {
    std::vector<std::string> reversed(args.rbegin(), args.rend());
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp&) {
        return app.help();
    } catch (const CLI::ParseError& e) {
        return fail("{}", e.what());
    }
    STOCKADE_TRY_VOID(extra());
    return std::string();
}

}  // namespace

Result<ExecArgs> parse_exec_args(std::span<const std::string> args) {
    CLI::App app{
        "Run a command in a running sandbox.\nUsage: stockade exec [OPTIONS] ID [--] CMD "
        "[ARGS...]",
        "stockade exec"};
    ExecArgs out;
    app.add_option("-e,--env", out.env, "environment variable NAME=value for CMD (repeatable)");
    app.add_option("-w,--workdir", out.workdir, "working directory of CMD in the guest")
        ->default_val("/");
    app.add_flag("-i,--interactive", out.interactive, "pass stdin to CMD");
    app.footer(kExecHelp);
    // The first argument that is no option is ID; everything after it is CMD.
    app.prefix_command();
    out.help = STOCKADE_TRY(parse(app, args, [] { return Result<>{}; }));
    if (!out.help.empty()) return out;
    std::vector<std::string> rest = app.remaining();
    if (rest.empty()) return fail("exec: no sandbox id (stockade exec --help)");
    if (rest.front().size() > 1 && rest.front().front() == '-')
        return fail("exec: unknown option {} (stockade exec --help)", rest.front());
    out.id = rest.front();
    STOCKADE_TRY_VOID(check_sandbox_id(out.id));
    rest.erase(rest.begin());
    if (!rest.empty() && rest.front() == "--") rest.erase(rest.begin());
    if (rest.empty() || rest.front().empty()) return fail("exec: no command to run");
    out.argv = std::move(rest);
    for (const std::string& e : out.env)
        if (e.find('=') == std::string::npos || e.front() == '=')
            return fail("exec: --env {}: not NAME=value", e);
    if (out.workdir.empty() || out.workdir.front() != '/')
        return fail("exec: --workdir {}: not an absolute path", out.workdir);
    return out;
}

Result<ControlArgs> parse_control_args(std::string_view command,
                                       std::span<const std::string> args) {
    const std::string name(command);
    ControlArgs out;
    std::string signal;
    CLI::App app{"", "stockade " + name};
    app.add_option("ID", out.id, "the sandbox")->required();
    if (command == "kill") {
        app.description(
            "Send a signal to the workload of a running sandbox (its whole process group).\n"
            "Usage: stockade kill ID [SIGNAL]");
        app.add_option("SIGNAL", signal, "a name (TERM, SIGKILL) or a number; TERM by default");
    } else if (command == "stop") {
        app.description(
            "Stop a running sandbox: its workload is sent SIGTERM and the guest powers off once "
            "it has ended; after --time seconds the VM is stopped without the guest.\n"
            "Usage: stockade stop [--time S] ID");
        app.add_option("-t,--time", out.time, "seconds to wait for the guest (default 10)")
            ->check(CLI::Range(0, 3600));
    } else if (command == "pause") {
        app.description(
            "Pause a sandbox: every vCPU stops and its clock with it.\nUsage: stockade pause ID");
    } else if (command == "resume") {
        app.description("Resume a paused sandbox.\nUsage: stockade resume ID");
    } else if (command == "start") {
        app.description(
            "Start the workload of a sandbox made with stockade create.\nUsage: stockade start "
            "ID");
    } else {
        return fail("unknown command {}", command);
    }
    out.help = STOCKADE_TRY(parse(app, args, [&]() -> Result<> {
        if (auto ok = check_sandbox_id(out.id); !ok) return ok;
        if (signal.empty()) return {};
        const auto sig = parse_signal(signal);
        if (!sig) return fail("kill: {}: not a signal", signal);
        out.signal = *sig;
        return {};
    }));
    return out;
}

}  // namespace stockade::cli
