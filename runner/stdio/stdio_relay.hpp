#pragma once
// The workload's stdin, stdout, stderr and exit status over vsock (guest/abi.hpp,
// kJobVsock): one thread of the sandbox process accepts the guest's four connections on a
// listening socket the supervisor made, and copies
//   host stdin   -> the guest's `in` stream (shut down for writing at the end of input),
//   `out`, `err` -> host stdout, stderr, byte for byte,
// and reports the workload's status only once both output streams have ended and every
// byte of them has been written: a run's output is never cut short by the VM stopping.
//
// The same thread carries the control stream to stockade-init (guest/control.hpp: start,
// signal, power off, exec) and every exec's streams: an exec's client (the control API's
// connection, handed over by the API thread) gets the exec's output as frames
// (runner/api/exec_stream.hpp) and its bytes become the exec's stdin.
//
// The guest is hostile: a connection from any peer but the guest is closed unread, as is
// one naming an unknown or already connected stream, and at most a few unidentified ones
// are held. Nothing the guest sends is interpreted except the stream names and the statuses;
// what it sends on the control stream is read and dropped.
//
// The thread never blocks in a read or a write: sockets are non-blocking, and host
// descriptors are written only when poll says they take data, in pieces of at most
// PIPE_BUF for pipes and terminals (which then cannot block). A slow terminal slows only
// this thread (and, through vsock's flow control, the guest's writes) — never the vCPUs or
// the event loop — and stop() always returns promptly. A host stdout nobody reads gives
// EPIPE, and the process must ignore SIGPIPE for that (the runner does).
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "guest/control.hpp"

namespace stockade {

struct StdioRelayConfig {
    UniqueFd listener;  // a listening stream socket (made non-blocking here)
    // Whether a connection from this peer address is the guest's.
    std::function<bool(const sockaddr_storage&, socklen_t)> is_guest;
    int host_in = 0, host_out = 1, host_err = 2;
    // Called on the relay thread once the status arrived and all output is written.
    std::function<void(int status)> on_exit;
    // Runs first on the relay thread (its seccomp filter); start() fails with its error.
    std::function<Result<>()> on_thread_start;
};

class StdioRelay {
  public:
    // Starts the thread and waits until on_thread_start has run on it.
    [[nodiscard]] static Result<std::unique_ptr<StdioRelay>> start(StdioRelayConfig config);
    ~StdioRelay();
    StdioRelay(const StdioRelay&) = delete;
    StdioRelay& operator=(const StdioRelay&) = delete;

    // Ends the thread (whatever it was waiting for) and joins it.
    void stop();

    // Whether stockade-init's control stream is connected (and not ended).
    [[nodiscard]] bool control_connected() const;
    // Whether it was connected and has ended since (stockade-init is gone).
    [[nodiscard]] bool control_ended() const;
    // Queues a message for stockade-init (start, signal, power off); any thread.
    [[nodiscard]] Result<> send_control(const guest_control::Message& m);
    // Starts an exec (any thread): the request goes to stockade-init with an id of the
    // relay's; `client` is taken (left as it is on an error) and gets `head` and then the
    // exec's frames, and what it sends (after `client_input`, bytes it sent already) is the
    // exec's stdin when the request says so.
    [[nodiscard]] Result<> start_exec(guest_control::ExecRequest request, UniqueFd& client,
                                      std::string head, std::string client_input);
    // Sets the window size of exec `id`'s terminal (any thread); refused for an exec that is
    // not running or has no terminal.
    [[nodiscard]] Result<> resize_exec(std::uint32_t id, guest_control::WindowSize size);

    struct Counters {
        std::uint64_t in = 0, out = 0, err = 0;  // bytes relayed
        std::uint64_t refused = 0;               // connections closed unread
        std::uint64_t execs = 0;                 // execs started
    };
    [[nodiscard]] Counters counters() const;

    struct State;  // the thread's (stdio_relay.cpp)

  private:
    StdioRelay() = default;
    std::unique_ptr<State> state_;
    UniqueFd wake_;
    std::thread thread_;
};

}  // namespace stockade
