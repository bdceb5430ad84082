#include "runner/cli/run_args.hpp"

#include <algorithm>
#include <filesystem>
#include <iterator>
#include <optional>

#include <CLI/CLI.hpp>

#include "base/io.hpp"
#include "runner/cli/firecracker_config.hpp"

namespace stockade {
namespace {

// This program's own path (/proc/self/exe); empty when it cannot be read.
std::string executable() {
    std::error_code ec;
    auto p = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::string() : p.string();
}

constexpr const char* kRunHelp = R"(Run CMD inside a fresh micro-VM and exit with its status.

CMD's stdout, stderr and exit status are passed through; stdin is forwarded to it. With
/dev/vhost-vsock on the host they travel over virtio-vsock, byte-exact and binary-safe,
stdout and stderr apart; otherwise (or with --stdio serial) over the serial console, where
stdout and stderr are merged and stdin is line-based with ^D reserved. Exit status
follows docker: CMD's own status; 125 when stockade (or the guest) failed before CMD
reported one; 126 when CMD could not be executed; 127 when it was not found; 128+N when
stockade was stopped by signal N.

The guest kernel's console is kept off stdout (use --console to see it on stderr).
Defaults boot stockade's guest kernel and initramfs installed with stockade
(PREFIX/lib/stockade beside PREFIX/bin/stockade), or those built with this tree.

With -d (--detach), stockade prints the sandbox's id and returns as soon as the sandbox is
ready, leaving it running in the background: CMD's stdin is /dev/null and its stdout and
stderr go to /run/stockade/ID/stdout.log and stderr.log (`stockade logs ID`). The sandbox
and its logs stay listed (`stockade ps -a`, `stockade inspect ID`) after CMD ends, with its
exit status, until `stockade rm ID`. An error before the sandbox is ready is printed and
stockade exits with its status, as without -d.)";

constexpr const char* kCreateHelp =
    R"(Boot a sandbox for CMD and leave it waiting in the background:
CMD runs at `stockade start ID`. Prints ID once the sandbox is ready. Options are run's; CMD's
stdin is /dev/null and its stdout and stderr go to /run/stockade/ID/stdout.log and stderr.log
(`stockade logs ID`). The sandbox stays listed after CMD ends until `stockade rm ID`.

`stockade create --restore DIR [--id ID] [--seal-key KEY] [--no-verify-memory]` restores the
snapshot in DIR instead, its vCPUs stopped before their first instruction until `stockade
start ID` (or `resume`) lets it go on (`stockade snapshot restore --help`).)";

}  // namespace

namespace {

constexpr std::string_view kConfigFile = "--config-file";
constexpr std::size_t kMaxConfigBytes = 1 << 20;

// The options a Firecracker configuration file may give (firecracker_config.hpp): given again
// on the command line after it, the last one counts.
constexpr const char* kConfigurable[] = {"--kernel",       "--initrd",     "--cmdline",  "--vcpus",
                                         "--memory",       "--huge-pages", "--rootfs",   "--rng",
                                         "--metrics-path", "--log-path",   "--log-level"};

// Where --config-file is among the options (before "--" or the command), and its file.
struct ConfigFileArg {
    std::size_t at = 0, count = 0;  // the arguments to take out
    std::string path;
};
std::optional<ConfigFileArg> find_config_file(const std::vector<std::string>& args) {
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& a = args[i];
        if (a == "--") return std::nullopt;
        if (a == kConfigFile && i + 1 < args.size()) return ConfigFileArg{i, 2, args[i + 1]};
        if (a.starts_with(std::string(kConfigFile) + "="))
            return ConfigFileArg{i, 1, a.substr(kConfigFile.size() + 1)};
    }
    return std::nullopt;
}

void add_run_options(CLI::App& run, RunArgs& out, std::string& huge, std::string& config_file,
                     bool create) {
    SandboxSpec& spec = out.spec;
    const std::string self = executable();  // an installed stockade boots its own images
    run.add_option(std::string(kConfigFile), config_file,
                   "Firecracker's JSON configuration (boot-source, machine-config, drives, "
                   "entropy; what stockade cannot honour is refused by its JSON path); options "
                   "given after it override it");
    run.add_option("--kernel", spec.kernel,
                   "kernel to boot: an uncompressed vmlinux (ELF, entered directly) or a bzImage")
        ->envname("STOCKADE_KERNEL")
        ->default_val(default_boot_file(self, "vmlinux", STOCKADE_DEFAULT_KERNEL));
    run.add_option("--initrd", spec.initrd, "initramfs with stockade-init as /init")
        ->envname("STOCKADE_INITRD")
        ->default_val(default_boot_file(self, "initramfs.cpio", STOCKADE_DEFAULT_INITRD));
    run.add_option("--cmdline", spec.extra_cmdline, "extra kernel command line arguments");
    run.add_option("--vcpus", spec.vcpus, "number of vCPUs (1..254)")->default_val(1);
    run.add_option("--memory", spec.memory_mib, "guest memory in MiB (at least 64)")
        ->default_val(256);
    run.add_option("--huge-pages", huge, "guest RAM backing: thp (transparent huge pages) or off")
        ->check(CLI::IsMember({"thp", "off"}))
        ->default_val("thp");
    run.add_option("-e,--env", spec.env, "environment variable NAME=value for CMD (repeatable)");
    run.add_option("-w,--workdir", spec.workdir, "working directory of CMD in the guest")
        ->default_val("/");
    run.add_option("--hostname", spec.hostname, "host name of the guest")->default_val("sandbox");
    run.add_option("--policy", spec.policy_file,
                   "sandbox policy file (JSON, see `stockade policy show`); default: the "
                   "built-in policy");
    auto* id = run.add_option("--id", spec.id,
                              "sandbox id (names its cgroup, jail root, SELinux categories and "
                              "/run/stockade/ID); default: a fresh sb-XXXXXXXXXXXX");
    if (create)
        id->required();
    else
        run.add_flag("-d,--detach", spec.detach,
                     "print the sandbox's id and leave it running in the background (see below)");
    run.add_flag("--console", spec.show_console, "copy the guest kernel console to stderr");
    run.add_flag("--stats", spec.print_stats,
                 "print timings, VM exit counts, CPU time and device counters to stderr");
    run.add_option("--metrics-path", spec.metrics_path,
                   "append the sandbox's metrics (the control API's GET /metrics) as a JSON line "
                   "to FILE on each PUT /actions FlushMetrics and when the sandbox ends");
    run.add_flag("-v,--verbose", out.verbose, "more diagnostics (--log-level debug)");
    run.add_option("--log-level", out.log_level,
                   "stockade's own messages: error, warning (default), info or debug")
        ->check(CLI::IsMember({"error", "warning", "info", "debug"}));
    run.add_option("--log-path", out.log_path,
                   "append stockade's own messages to FILE instead of stderr (the workload's "
                   "stderr stays stderr)");
    DeviceKinds::each([&]<class K>(std::type_identity<K>) {
        K::add_options(run, part_of<K>(out.device_options));
    });
    run.footer(create ? kCreateHelp : kRunHelp);
    for (const char* name : kConfigurable)
        run.get_option(name)->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    // Parsing stops at CMD or at "--"; everything from there on is left for CMD.
    run.prefix_command();
    run.allow_extras();
}

}  // namespace

namespace {

Result<RunArgs> parse(const std::vector<std::string>& given, bool create) {
    CLI::App app{create ? "Create a sandbox VM that waits for `stockade start ID`.\nUsage: "
                          "stockade create --id ID [OPTIONS] [--] CMD [ARGS...]"
                        : "Run a command in a fresh sandbox VM.\nUsage: stockade run [OPTIONS] "
                          "[--] CMD [ARGS...]",
                 create ? "stockade create" : "stockade run"};
    RunArgs out;
    std::string huge, config_file;
    add_run_options(app, out, huge, config_file, create);

    // A configuration file stands for the options it means, placed first so that the
    // command line's own come after it and win.
    std::vector<std::string> args = given;
    if (auto cfg = find_config_file(args)) {
        auto text = read_text_file(cfg->path, kMaxConfigBytes);
        if (!text) return std::unexpected(std::move(text).error().context("--config-file"));
        auto from_file = firecracker_config_args(*text);
        if (!from_file) return std::unexpected(std::move(from_file).error().context(cfg->path));
        args.erase(args.begin() + static_cast<std::ptrdiff_t>(cfg->at),
                   args.begin() + static_cast<std::ptrdiff_t>(cfg->at + cfg->count));
        args.insert(args.begin(), from_file->begin(), from_file->end());
    }
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 pops from the back
    try {
        app.parse(reversed);
    } catch (const CLI::CallForHelp&) {
        out.help = app.help();
        return out;
    } catch (const CLI::ParseError& e) {
        return fail("{}", e.what());
    }
    // What parsing left: "--" then CMD, or CMD itself, or an option we do not know
    // (refused: it would otherwise run as the command).
    std::vector<std::string> rest = app.remaining();
    if (!rest.empty() && rest.front() == "--") {
        rest.erase(rest.begin());
    } else if (!rest.empty() && rest.front().size() > 1 && rest.front().front() == '-') {
        return fail("unknown option {} (see {} --help)", rest.front(), app.get_name());
    }
    out.spec.argv = std::move(rest);
    STOCKADE_TRY_VOID(DeviceKinds::each_until_error([&]<class K>(std::type_identity<K>) {
        return K::apply(part_of<K>(out.device_options), out.spec.device<K>());
    }));
    out.spec.huge_pages = huge == "off" ? HugePages::off : HugePages::transparent;
    if (create) out.spec.detach = out.spec.wait_for_start = true;
    return out;
}

}  // namespace

std::string default_boot_file(const std::string& executable, const std::string& name,
                              const std::string& built) {
    namespace fs = std::filesystem;
    const fs::path exe(executable);
    if (exe.has_parent_path() && exe.parent_path().filename() == "bin") {
        const fs::path installed = exe.parent_path().parent_path() / "lib" / "stockade" / name;
        std::error_code ec;
        if (fs::is_regular_file(installed, ec)) return installed.string();
    }
    return built;
}

Result<RunArgs> parse_run_args(const std::vector<std::string>& args) {
    return parse(args, false);
}

Result<RunArgs> parse_create_args(const std::vector<std::string>& args) {
    return parse(args, true);
}

}  // namespace stockade
