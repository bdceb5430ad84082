#pragma once
// The commands that read and remove sandboxes through their state directories
// (/run/stockade/ID, runner/supervisor/state_file.hpp), without talking to them: ps, inspect,
// logs, rm. Each returns the process exit status: 0, 1 for a refused operation or an
// unknown id, 125 for stockade's own failure.
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runner/supervisor/state_file.hpp"

namespace stockade::cli {

// True for a command name manage_cli handles.
[[nodiscard]] bool is_manage_command(std::string_view command);
// `stockade COMMAND ARGS...` for one of those commands.
[[nodiscard]] int manage_cli(std::string_view command, std::span<const std::string> args);

// Every sandbox with a state file under /run/stockade, as it stands now, by id.
[[nodiscard]] std::vector<StateRecord> all_sandboxes();
// `rm` of one sandbox (`force`: a live one is stopped first): 0, 1 (refused), 125 (failed).
[[nodiscard]] int remove_sandbox(const std::string& id, bool force);

}  // namespace stockade::cli
