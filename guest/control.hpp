#pragma once
// The control stream between the runner and stockade-init (guest/abi.hpp, VsockStream::
// control): how a sandbox that lives on is told to start its workload, to signal it, to
// power off, and to run more processes (exec). Only the host sends on it; stockade-init
// sends nothing back (an exec's status travels on the exec's own status stream).
//
// A message is a 4-byte little-endian length N (1..kMaxControlMessage) and N bytes: a type
// byte and its payload. Exec streams are connected by the process stockade-init forks for
// the exec: the stream byte (ExecStream) and the exec's id (4 bytes, little endian).
//
// A sandbox restored from a snapshot reaches stockade-init the other way round: its supervisor
// connects to init's listener (kRestoredPort, in the guest's CID) and sends one `restored`
// message there: where the five streams are to be connected again, the host's wall clock and
// fresh entropy for the guest's random number generator (clones must not share it).
//
// Standard library only: stockade-init (static, no fmt) compiles control.cpp too.
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace stockade::guest_control {

inline constexpr std::size_t kMaxControlMessage = 64 * 1024;

enum class MessageType : char {
    start = 'S',     // run the workload now (a sandbox made with `create`); no payload
    signal = 'K',    // signal the workload (its whole process group); payload: 1 byte signal
    poweroff = 'P',  // end the workload (SIGTERM to its group); the usual exit path follows
    exec = 'X',      // run another process; payload: an encoded ExecRequest
    restored = 'R',  // the sandbox was restored; payload: an encoded Restored (own stream)
    // a terminal has a new window size; payload: rows and columns, 2 bytes each, little
    // endian, for the workload's (guest/abi.hpp, kJobTerminal), or an exec's id (4 bytes)
    // first for that exec's terminal (ExecRequest::terminal); ignored for one without
    resize = 'W',
};

// The guest's vsock port stockade-init listens on for the `restored` message.
inline constexpr std::uint32_t kRestoredPort = 0x5354;  // "ST"
inline constexpr std::size_t kRestoredEntropy = 32;

struct Restored {
    std::uint32_t port = 0;  // the host's new stdio port (guest/abi.hpp, kJobVsock)
    std::int64_t realtime_sec = 0;
    std::uint32_t realtime_nsec = 0;  // < 1e9
    std::string entropy;              // kRestoredEntropy bytes
    bool operator==(const Restored&) const = default;
};

// After the `restored` message stockade-init asks for the clock once more (kClockRequest, one
// byte) and the host answers at once with its wall clock (encode_clock: seconds and
// nanoseconds, little endian). Init times that exchange and takes the reply plus half its
// round trip, so the time before init could read the notice (a restored guest is slow to
// wake) does not put its clock behind.
inline constexpr char kClockRequest = 'T';
inline constexpr std::size_t kClockReplySize = 12;
struct WallClock {
    std::int64_t sec = 0;
    std::uint32_t nsec = 0;  // < 1e9
    bool operator==(const WallClock&) const = default;
};
[[nodiscard]] std::string encode_clock(WallClock c);
// nullopt unless `bytes` is kClockReplySize bytes with nanoseconds below 1e9.
[[nodiscard]] std::optional<WallClock> decode_clock(std::span<const char> bytes);

struct WindowSize {
    std::uint16_t rows = 0, columns = 0;
    bool operator==(const WindowSize&) const = default;
};

struct ExecRequest {
    std::uint32_t id = 0;  // the host's, unique per sandbox; names the exec's streams
    std::vector<std::string> argv;
    std::vector<std::string> env;  // NAME=value
    std::string workdir = "/";
    bool stdin_open = false;  // false: the host shuts the in stream at once
    // on a terminal of its own in the guest: its in stream goes to the terminal and the
    // terminal to its out stream (err stays empty), resized by resize messages naming its id
    bool terminal = false;
    WindowSize window{};  // with a terminal: its size to start with (0 by 0: none given)
    bool operator==(const ExecRequest&) const = default;
};

struct Message {
    MessageType type = MessageType::start;
    int signal = 0;                                   // signal
    std::optional<ExecRequest> exec;                  // exec
    std::optional<Restored> restored = std::nullopt;  // restored
    WindowSize window{};                              // resize
    std::uint32_t resize_exec = 0;                    // resize: 0 the workload, else an exec
    bool operator==(const Message&) const = default;
};

// The message as bytes on the stream (length prefix included).
[[nodiscard]] std::string encode(const Message& m);

// Parses one message from the front of `bytes`: nullopt while it is incomplete, an error when
// it is malformed (the stream is then unusable), else the message and how many bytes it took.
struct Decoded {
    Message message;
    std::size_t used = 0;
};
[[nodiscard]] std::expected<std::optional<Decoded>, std::string> decode(
    std::span<const char> bytes);

// The streams of one exec: connected by the exec's process in the guest, each named by this
// byte followed by the exec's id. Status, in, out and err mean what the workload's do
// (guest/abi.hpp's VsockStream): the 4-byte status comes last, after out and err ended.
enum class ExecStream : char { status = 'S', in = 'I', out = 'O', err = 'E' };
inline constexpr std::size_t kExecStreamHeader = 5;  // stream byte + id
[[nodiscard]] std::string exec_stream_header(ExecStream s, std::uint32_t id);

}  // namespace stockade::guest_control
