#pragma once
// `stockade run`: boot a sandbox, run the workload, return its exit status.
#include "runner/supervisor/sandbox_spec.hpp"

namespace stockade {

// Returns the process exit status (docker convention). Errors are printed.
[[nodiscard]] int run_sandbox(const SandboxSpec& spec);

}  // namespace stockade
