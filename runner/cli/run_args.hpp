#pragma once
// Parsing of `stockade run` and `stockade create` arguments into a SandboxSpec (pure; unit-tested).
#include <string>
#include <vector>

#include "base/error.hpp"
#include "runner/supervisor/sandbox_spec.hpp"

namespace CLI {
class App;
}

namespace stockade {

struct RunArgs {
    SandboxSpec spec;
    bool verbose = false;
    std::string log_level;  // error, warning, info, debug; empty: warning (-v: debug)
    std::string log_path;   // stockade's own messages appended here instead of stderr
    std::string help;       // non-empty when --help was asked for: print it and exit 0
    DeviceKinds::Options device_options;  // what each device kind's options were given
};

// The kernel or initramfs (`name`: "vmlinux", "initramfs.cpio") `stockade run` boots by
// default: an installed stockade's own, PREFIX/lib/stockade/NAME when `executable` is
// PREFIX/bin/stockade and that file exists; else `built` (the build tree's, for a stockade
// run from the tree it was built in).
[[nodiscard]] std::string default_boot_file(const std::string& executable, const std::string& name,
                                            const std::string& built);

// Parses the arguments after `stockade run`. Everything after the first "--" is the
// command; without "--", the command starts at the first argument that is not an option.
[[nodiscard]] Result<RunArgs> parse_run_args(const std::vector<std::string>& args);
// `stockade create`: run's options, --id required (no -d: it always detaches), and the
// sandbox waits for `stockade start ID` before running its command.
[[nodiscard]] Result<RunArgs> parse_create_args(const std::vector<std::string>& args);

}  // namespace stockade
