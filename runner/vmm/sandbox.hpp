#pragma once
// `stockade run`: boot a sandbox, run the workload, return its exit status.
#include "runner/vmm/sandbox_spec.hpp"

namespace stockade {

// Returns the process exit status (docker convention). Errors are printed.
[[nodiscard]] int run_sandbox(const SandboxSpec& spec);

// The kernel command line stockade boots with, before the user's --cmdline.
[[nodiscard]] std::string default_kernel_cmdline(bool has_pci);

}  // namespace stockade
