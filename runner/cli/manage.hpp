#pragma once
// The commands that read and remove sandboxes through their state directories
// (/run/stockade/ID, runner/supervisor/state_file.hpp), without talking to them: ps, inspect,
// logs, rm. Each returns the process exit status: 0, 1 for a refused operation or an
// unknown id, 125 for stockade's own failure.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runner/supervisor/state_file.hpp"

namespace CLI {
class App;
}

namespace stockade::cli {

// True for a command name manage_cli handles.
[[nodiscard]] bool is_manage_command(std::string_view command);
// `stockade COMMAND ARGS...` for one of those commands.
[[nodiscard]] int manage_cli(std::string_view command, std::span<const std::string> args);

// Parses a command's arguments (after its name) into `app`: nullopt to go on, else the status
// to exit with (0 after --help, `status_on_error` for arguments it refused).
[[nodiscard]] std::optional<int> parse_command(CLI::App& app, std::span<const std::string> args,
                                               int status_on_error);
// Every sandbox with a state file under /run/stockade, as it stands now, by id.
[[nodiscard]] std::vector<StateRecord> all_sandboxes();
// `rm` of one sandbox (`force`: a live one is stopped first): 0, 1 (refused), 125 (failed).
[[nodiscard]] int remove_sandbox(const std::string& id, bool force);

}  // namespace stockade::cli
