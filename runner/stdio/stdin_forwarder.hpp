#pragma once
// Host stdin to the guest's serial console (stdio without vsock).
#include <unistd.h>

#include <cstddef>
#include <cstdint>

#include "guest/abi.hpp"
#include "runner/devices/serial.hpp"
#include "runner/vmm/event_loop.hpp"

namespace stockade {

// Host input waiting in the UART is bounded; stdin is read again when the guest catches up.
inline constexpr std::size_t kMaxPendingInput = 64u << 10;
inline constexpr std::size_t kStdinRead = 4096;
// One more read and the end-of-input bytes always fit in what the UART takes.
static_assert(kMaxPendingInput + kStdinRead + 2 <= kMaxSerialInput);

// Host stdin to the guest's console, started once stockade-init reports ready. The
// console runs in canonical mode with only VEOF active (guest/abi.hpp), so end of input
// is one VEOF at the start of a line — two when the last line had no newline.
class StdinForwarder {
  public:
    StdinForwarder(Serial& serial, EventLoop& loop) : serial_(serial), loop_(loop) {}

    void start() {
        if (started_) return;
        started_ = true;
        auto r = loop_.add(STDIN_FILENO, EPOLLIN, [this](std::uint32_t) { pump(); });
        if (!r) {
            // Regular files and /dev/null cannot be polled (EPERM); a closed stdin (EBADF)
            // is simply the end of input.
            pollable_ = false;
            if (r.error().code != EPERM) finish();
        }
    }

    // Called on every loop turn: resumes a paused or unpollable stdin.
    void tick() {
        if (!started_ || done_) return;
        if (!pollable_ || (paused_ && serial_.pending_input() < kMaxPendingInput / 2)) {
            if (paused_ && pollable_) {
                paused_ = false;
                (void)loop_.add(STDIN_FILENO, EPOLLIN, [this](std::uint32_t) { pump(); });
            }
            if (!pollable_) pump();
        }
    }

    // How long the loop may sleep: not at all while a file is being copied in.
    [[nodiscard]] int timeout_ms() const {
        if (!started_ || done_) return -1;
        if (paused_ || (!pollable_ && serial_.pending_input() >= kMaxPendingInput)) return 10;
        return pollable_ ? -1 : 0;
    }

  private:
    void pump() {
        if (serial_.pending_input() >= kMaxPendingInput) {
            if (pollable_ && !paused_) {
                paused_ = true;
                loop_.remove(STDIN_FILENO);
            }
            return;
        }
        std::uint8_t buf[kStdinRead];
        ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
        if (n <= 0) {
            finish();
            return;
        }
        serial_.push_input(std::span(buf, static_cast<std::size_t>(n)));
        line_open_ = buf[n - 1] != '\n';
    }

    void finish() {
        done_ = true;
        if (pollable_) loop_.remove(STDIN_FILENO);
        const std::uint8_t eof[2] = {guest_abi::kEndOfInput, guest_abi::kEndOfInput};
        serial_.push_input(std::span(eof, line_open_ ? 2 : 1));
    }

    Serial& serial_;
    EventLoop& loop_;
    bool started_ = false, pollable_ = true, paused_ = false, done_ = false, line_open_ = false;
};

}  // namespace stockade
