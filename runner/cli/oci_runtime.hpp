#pragma once
// stockade as an OCI runtime: the runc command line that containerd's runc shim
// (io.containerd.runc.v2 with BinaryName, `ctr run --runc-binary`) and podman (--runtime)
// drive. One container is one micro-VM: `create` boots the sandbox from the bundle (its root
// directory made an ext4 image, runner/oci/rootfs_image.hpp) and leaves it waiting; the pid it
// writes to --pid-file is the sandbox's supervisor, a host process that exits with the
// container's status; the workload's stdio are the engine's descriptors `create` was given.
//
// Global flags: --root (accepted; stockade's state stays in /run/stockade/ID, so container
// ids are one namespace across roots), --log FILE and --log-format text|json (stockade's own
// messages go there, as runc's do), --debug, --systemd-cgroup (accepted and ignored: the
// VM's host cgroup is the policy's leaf, not a systemd unit).
#include <span>
#include <string>
#include <string_view>

namespace stockade::cli {

// True when `args` (the command line after the program's name) is a runc-style invocation:
// one of runc's global flags before the command, or a command only the runtime has (state,
// delete, features), or `create` with --bundle.
[[nodiscard]] bool is_oci_invocation(std::span<const std::string> args);

// Runs it; the process's exit status (0; 1 for a refused operation, as runc).
[[nodiscard]] int oci_cli(std::span<const std::string> args);

}  // namespace stockade::cli
