#pragma once
// A container's terminal on the host (process.terminal, `create --console-socket`): a
// pseudo-terminal whose master goes to the engine over its console socket (one SCM_RIGHTS
// message, as runc sends it), and whose slave, in raw mode, is the sandbox's stdin, stdout and
// stderr. The guest has a terminal of its own (guest/abi.hpp, kJobTerminal) that does the
// echo, line editing and signals; the host's only carries bytes and the window size, which
// the sandbox follows (SandboxSpec::terminal).
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade::oci {

struct ConsolePty {
    UniqueFd master, slave;  // both close-on-exec; the slave in raw mode, nobody's controlling
};

// `size`: the window size it starts with (process.consoleSize), rows then columns.
[[nodiscard]] Result<ConsolePty> open_console_pty(
    std::optional<std::pair<std::uint16_t, std::uint16_t>> size = std::nullopt);

// Connects to the Unix socket at `socket_path` and sends `master` with its name as the
// message (runc's way; containerd and conmon read the descriptor and ignore the name).
[[nodiscard]] Result<> send_console_master(const std::string& socket_path, int master);

}  // namespace stockade::oci
