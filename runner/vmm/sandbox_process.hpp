#pragma once
// The sandbox process (the child the supervisor forked into its namespaces and cgroup):
// builds the VM from the resources the supervisor handed over, hardens itself (jail,
// SELinux, privileges, per-thread seccomp) and only then releases the vCPUs; runs the
// workload and reports how it ended.
#include <optional>
#include <string>

#include "runner/vmm/sandbox_resources.hpp"

namespace stockade {

// Where the supervisor prepared the jail, and the SELinux context to switch to.
struct SandboxJail {
    std::string root;                            // the empty per-sandbox directory
    std::optional<std::string> selinux_context;  // nullopt: no switch
};

// Returns the exit status (docker convention); errors are printed. Closes, first, every
// inherited descriptor that `resources` does not carry.
[[nodiscard]] int run_sandbox_process(SandboxResources resources, const SandboxJail& jail);

}  // namespace stockade
