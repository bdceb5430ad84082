#pragma once
// The termination signals stockade handles (SIGINT, SIGTERM, SIGHUP, SIGQUIT): blocked and
// read from a signalfd, in the supervisor and in the sandbox process alike. Blocked before
// any fork, so none is lost in between; blocked signals are queued even for PID 1 of a PID
// namespace, which would drop them if they were merely unhandled. SIGPIPE is ignored: a
// closed stdout must not kill the runner mid-run.
#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade {

// `window_changes`: SIGWINCH too (a sandbox whose controlling terminal is its stdin).
[[nodiscard]] Result<UniqueFd> watch_termination_signals(bool window_changes = false);

}  // namespace stockade
