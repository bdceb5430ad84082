#pragma once
// The supervisor's wait for its sandbox process: termination signals passed on, a sandbox
// that does not stop when asked killed after a grace period, status bytes read as they come.
#include <sys/types.h>

#include <chrono>
#include <functional>

#include "base/error.hpp"
#include "runner/vmm/sandbox_status.hpp"

namespace stockade {

// How long the sandbox process has to stop after a termination signal was passed on to it
// before the supervisor kills it. A sandbox stops within a second whatever its guest does
// (queues are served with budgets, no vCPU blocks on host output); this is the backstop for
// one that does not (a host-side hang), so that the supervisor still reports and cleans up.
inline constexpr std::chrono::milliseconds kStopGrace{2000};

using StatusHandler = std::function<void(SandboxStatus)>;

// What supervise() saw end.
struct Supervised {
    int wait_status = 0;
    int escalated_signal = 0;  // the termination signal it was killed for, else 0
};

// Waits for `child`. Whatever arrives on `sigfd` (a signalfd) is passed on to it, and if it
// has not ended `grace` after the first, it is killed with SIGKILL. The status bytes it
// writes on `status_fd` (-1: none) go to on_status, those written just before it ended too.
[[nodiscard]] Result<Supervised> supervise(pid_t child, int sigfd, int status_fd,
                                           const StatusHandler& on_status,
                                           std::chrono::milliseconds grace = kStopGrace);

// The run's exit status for how the sandbox process ended (errors are printed): its own exit
// status; 128+N when it was killed for not stopping on signal N; else 125.
[[nodiscard]] int exit_status(const Supervised& ended);

}  // namespace stockade
