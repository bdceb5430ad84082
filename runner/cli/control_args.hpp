#pragma once
// The command lines of exec, kill, stop, pause, resume and start (control_commands.hpp),
// parsed without doing anything, so unit tests drive them.
#include <array>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"

namespace stockade::cli {

inline constexpr std::array<std::string_view, 6> kControlCommands{"exec",  "kill",   "stop",
                                                                  "pause", "resume", "start"};

struct ExecArgs {
    std::string id;
    std::vector<std::string> argv, env;
    std::string workdir = "/";
    bool interactive = false;  // -i: stdin goes to the command
    std::string help;          // --help: the text to print, nothing else set
};
// `stockade exec [-e NAME=value]... [-w DIR] [-i] ID [--] CMD [ARGS...]`
[[nodiscard]] Result<ExecArgs> parse_exec_args(std::span<const std::string> args);

struct ControlArgs {
    std::string id;
    int signal = 15;  // kill: SIGTERM unless named
    int time = 10;    // stop: seconds before the VM is stopped without the guest
    std::string help;
};
// kill ID [SIGNAL], stop [--time S] ID, pause ID, resume ID, start ID.
[[nodiscard]] Result<ControlArgs> parse_control_args(std::string_view command,
                                                     std::span<const std::string> args);

}  // namespace stockade::cli
