#pragma once
// The commands that talk to a running sandbox through its control API: exec, kill, stop,
// pause, resume, start. Each returns the process exit status (125: stockade's own error).
#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/error.hpp"

namespace stockade::cli {

// True for a command name control_cli handles.
[[nodiscard]] bool is_control_command(std::string_view command);
// `stockade COMMAND ARGS...` for one of those commands.
[[nodiscard]] int control_cli(std::string_view command, std::span<const std::string> args);

// `PUT /exec` with `request` (the API's exec body) in sandbox `id`, relaying our stdin (when
// `interactive`), stdout and stderr: the command's status. `started` runs once the sandbox
// has accepted the exec (its command runs), before anything is relayed, with the exec's id
// (PUT /exec/resize names it; 0 when the sandbox did not say).
[[nodiscard]] Result<int> exec_relayed(std::string_view id, const nlohmann::json& request,
                                       bool interactive,
                                       const std::function<void(std::uint32_t)>& started);

// Runs `argv` in sandbox `id` as `stockade exec` does (no stdin, the sandbox's environment
// and working directory), its stdout and stderr written to `out` and `err`: the command's
// status, or why it could not be run. A guest whose init is not connected yet (a restore's,
// reconnecting) is waited for until `until`, as `stockade exec` waits a minute.
[[nodiscard]] Result<int> exec_in(std::string_view id, const std::vector<std::string>& argv,
                                  int out, int err, std::chrono::steady_clock::time_point until);

}  // namespace stockade::cli
