#pragma once
// 8250/16550A UART (COM1). Transmission is instant: THR is always empty again after a
// write. Output is classified by who wrote it: the kernel's console driver writes with
// interrupts off (IER.THRI clear) — "console"; the tty layer writes from its THR-empty
// interrupt (IER.THRI set) — "terminal", which is the workload's output. That lets the
// runner keep kernel messages off the workload's stdout on a single UART.
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <span>
#include <vector>

#include "runner/devices/bus.hpp"

namespace stockade {

enum class SerialStream { console, terminal };

// A 16550's receive FIFO: what the guest's own bytes in loopback mode (MCR bit 4) may fill.
inline constexpr std::size_t kSerialFifo = 16;
// Host input (stdin) waiting for the guest. The stdin forwarder stops reading well before
// this (kMaxPendingInput); beyond it bytes are dropped, as an overrun.
inline constexpr std::size_t kMaxSerialInput = 128u << 10;

// Everything the UART is, as a plain value (for snapshots and tests).
struct SerialState {
    std::uint8_t ier = 0, lcr = 0, mcr = 0, scr = 0, dll = 0x0c, dlm = 0, fcr = 0;
    bool thr_interrupt = false;   // THR-empty interrupt pending
    bool overrun = false;         // LSR.OE: a received byte was lost; cleared by reading LSR
    std::deque<std::uint8_t> rx;  // received bytes not yet read by the guest
};

class Serial : public BusDevice {
  public:
    using Output = std::function<void(SerialStream, std::span<const std::uint8_t>)>;
    using IrqLine = std::function<void(bool level)>;
    Serial(Output output, IrqLine irq) : output_(std::move(output)), irq_(std::move(irq)) {}

    void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

    // Host input for the guest (stdin). Raises the receive interrupt when enabled. Takes at
    // most kMaxSerialInput waiting bytes and returns how many it took (the rest: overrun).
    std::size_t push_input(std::span<const std::uint8_t> bytes);
    [[nodiscard]] std::size_t pending_input() const;
    // Hands any buffered output to the sink.
    void flush();

    [[nodiscard]] SerialState state() const;
    void restore(const SerialState& s);

  private:
    [[nodiscard]] std::uint8_t iir() const;
    void update_irq();
    void emit(SerialStream stream, std::uint8_t byte);
    // A byte the guest sent itself in loopback mode, into the 16-byte receive FIFO.
    void loop_back(std::uint8_t byte);
    void flush_locked();

    mutable std::mutex mu_;
    SerialState s_;
    bool irq_level_ = false;
    SerialStream out_stream_ = SerialStream::console;
    std::vector<std::uint8_t> out_;
    Output output_;
    IrqLine irq_;
};

}  // namespace stockade
