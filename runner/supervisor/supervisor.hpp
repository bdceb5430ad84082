#pragma once
// `stockade run`: boot a sandbox, run the workload, return its exit status; or leave it
// running in the background.
#include "base/unique_fd.hpp"
#include "runner/supervisor/sandbox_spec.hpp"

namespace stockade {

// Returns the process exit status (docker convention). Errors are printed. `ready`: a pipe
// that gets one byte once the sandbox is ready (run_detached's).
[[nodiscard]] int run_sandbox(const SandboxSpec& spec, UniqueFd ready = {});

// `stockade run -d` / `stockade create`: forks the supervisor into a session of its own and
// returns once the sandbox is ready, having printed its id (0); or, when it failed to start,
// with the supervisor's status.
[[nodiscard]] int run_detached(SandboxSpec spec, bool print_id = true);

}  // namespace stockade
