#include "runner/oci/console.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <array>
#include <cstring>

#include "base/io.hpp"

namespace stockade::oci {

Result<ConsolePty> open_console_pty(std::optional<std::pair<std::uint16_t, std::uint16_t>> size) {
    ConsolePty pty;
    pty.master = UniqueFd(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!pty.master) return fail_sys("opening a pseudo-terminal (/dev/ptmx)");
    if (::grantpt(pty.master.get()) != 0 || ::unlockpt(pty.master.get()) != 0)
        return fail_sys("unlocking the pseudo-terminal");
    pty.slave = UniqueFd(::ioctl(pty.master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (!pty.slave) return fail_sys("opening the pseudo-terminal's slave");
    termios t{};
    if (::tcgetattr(pty.slave.get(), &t) != 0) return fail_sys("reading the terminal's modes");
    ::cfmakeraw(&t);
    if (::tcsetattr(pty.slave.get(), TCSANOW, &t) != 0) return fail_sys("making the terminal raw");
    if (size) {
        const winsize ws{size->first, size->second, 0, 0};
        if (::ioctl(pty.master.get(), TIOCSWINSZ, &ws) != 0)
            return fail_sys("setting the terminal's size (process.consoleSize)");
    }
    return pty;
}

Result<> send_console_master(const std::string& socket_path, int master) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof addr.sun_path)
        return fail("--console-socket {:?}: not a socket path (1 to {} bytes)", socket_path,
                    sizeof addr.sun_path - 1);
    std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!sock) return fail_sys("a socket for the console");
    if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        return fail_sys(fmt::format("--console-socket {}", socket_path));
    const std::array<int, 1> fds{master};
    constexpr std::string_view kName = "/dev/ptmx";
    const std::size_t sent = STOCKADE_TRY(send_with_fds(sock.get(), kName, fds));
    if (sent != kName.size())
        return fail("--console-socket {}: the terminal's message was cut short", socket_path);
    return {};
}

}  // namespace stockade::oci
