#pragma once
// Bytes for one of the host's output streams (stdout, stderr) from threads that must never
// wait for whoever reads it: the vCPU threads writing the UART (the workload's terminal
// output with the serial console, the guest console with --console). A host reader that
// stops reading (a pipe drained only at exit, a terminal paused with ^S) would otherwise
// hold a vCPU in write(2), and the stop that joins it, forever.
//
// append() copies into a bounded buffer and returns; when the buffer is full the bytes are
// dropped and counted. A writer thread of its own (its own seccomp filter) writes them out
// with ordinary blocking writes: the descriptor's file description is shared with the
// user's shell or terminal, so it is never made non-blocking. The writer never holds the
// buffer's lock while it writes.
//
// stop() lets the writer finish what it can: it waits while the writer makes progress,
// giving up after kHostOutputStall without a byte written or kHostOutputFlushMax in all.
// A writer still stuck in write(2) then is left behind (detached; the process's exit ends
// it) and what it had not written is counted as dropped. A reader that keeps up gets every
// byte, in order.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <thread>

#include "base/error.hpp"

namespace stockade {

// Per stream: about a second of a fast guest's console, far beyond what a reader that keeps
// up ever has waiting.
inline constexpr std::size_t kHostOutputBuffer = 1u << 20;
inline constexpr std::chrono::milliseconds kHostOutputStall{200};
inline constexpr std::chrono::milliseconds kHostOutputFlushMax{2000};

struct HostOutputCounters {
    std::uint64_t written = 0;  // bytes write(2) took
    std::uint64_t dropped = 0;  // bytes never written: buffer full, stream broken, or stopped
};

struct HostOutputConfig {
    int fd = -1;  // not owned; stays blocking
    std::size_t capacity = kHostOutputBuffer;
    std::chrono::milliseconds stall = kHostOutputStall;
    std::chrono::milliseconds flush_max = kHostOutputFlushMax;
    // Runs first on the writer thread (its seccomp filter); start() fails with its error.
    std::function<Result<>()> on_thread_start;
};

class HostOutput {
  public:
    // Starts the writer thread and waits until on_thread_start has run on it.
    [[nodiscard]] static Result<std::unique_ptr<HostOutput>> start(HostOutputConfig config);
    ~HostOutput();
    HostOutput(const HostOutput&) = delete;
    HostOutput& operator=(const HostOutput&) = delete;

    // Never waits for the reader: copies what fits and counts the rest as dropped. After
    // stop(), everything is dropped.
    void append(std::span<const std::uint8_t> bytes);
    void append(std::string_view text);
    // Bounded (see above); the second call does nothing.
    void stop();
    [[nodiscard]] HostOutputCounters counters() const;

    struct Shared;  // the buffer, shared with the writer thread (which may outlive this)

  private:
    HostOutput(std::shared_ptr<Shared> shared, std::thread writer);

    std::shared_ptr<Shared> shared_;
    std::thread writer_;
};

}  // namespace stockade
