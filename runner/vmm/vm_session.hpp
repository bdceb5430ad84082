#pragma once
// The sandbox process (the child the supervisor forked into its namespaces and cgroup):
// builds the VM from the descriptors the supervisor opened, hardens itself (jail, SELinux,
// privileges, per-thread seccomp) and only then releases the vCPUs; runs the workload.
#include <optional>
#include <string>
#include <vector>

#include "policy/policy.hpp"
#include "runner/vmm/prepared.hpp"

namespace stockade {

struct Hardening {
    const policy::Policy* policy = nullptr;
    std::string jail_root;                       // the empty per-sandbox directory
    std::optional<std::string> selinux_context;  // nullopt: no switch
    std::vector<int> close_fds;                  // supervisor-only descriptors
};

// Returns the exit status (docker convention); errors are printed.
[[nodiscard]] int run_vm(Prepared& prepared, const Hardening& hardening);

}  // namespace stockade
