#include "runner/devices/serial.hpp"

// Register offsets and bits by the names the kernel's 8250 driver uses.
#include <linux/serial_reg.h>

namespace stockade {
namespace {

// IIR bits 7:6: FIFOs enabled (this header names no constant for them).
constexpr std::uint8_t kIirFifoEnabled = 0xc0;
// The bits of IER, FCR and MCR that are state (FCR's FIFO clear bits are commands).
constexpr std::uint8_t kFcrKept =
    UART_FCR_ENABLE_FIFO | UART_FCR_DMA_SELECT | UART_FCR_TRIGGER_MASK;
constexpr std::uint8_t kMcrKept =
    UART_MCR_DTR | UART_MCR_RTS | UART_MCR_OUT1 | UART_MCR_OUT2 | UART_MCR_LOOP;
constexpr std::uint8_t kIerKept = UART_IER_RDI | UART_IER_THRI | UART_IER_RLSI | UART_IER_MSI;
constexpr std::size_t kFlushAt = 512;

}  // namespace

std::uint8_t Serial::iir() const {
    const std::uint8_t fifo = (s_.fcr & UART_FCR_ENABLE_FIFO) ? kIirFifoEnabled : 0;
    if ((s_.ier & UART_IER_RLSI) && s_.overrun) return fifo | UART_IIR_RLSI;
    if ((s_.ier & UART_IER_RDI) && !s_.rx.empty()) return fifo | UART_IIR_RDI;
    if ((s_.ier & UART_IER_THRI) && s_.thr_interrupt) return fifo | UART_IIR_THRI;
    return fifo | UART_IIR_NO_INT;
}

void Serial::update_irq() {
    const bool level = (iir() & UART_IIR_NO_INT) == 0;
    if (level != irq_level_) {
        irq_level_ = level;
        if (irq_) irq_(level);
    }
}

void Serial::emit(SerialStream stream, std::uint8_t byte) {
    if (stream != out_stream_ || out_.size() >= kFlushAt) flush_locked();
    out_stream_ = stream;
    out_.push_back(byte);
}

void Serial::loop_back(std::uint8_t byte) {
    // Without a bound, a guest looping on THR grew this without end on the host.
    if (s_.rx.size() >= kSerialFifo) {
        s_.overrun = true;
        return;
    }
    s_.rx.push_back(byte);
}

void Serial::flush_locked() {
    if (out_.empty()) return;
    if (output_) output_(out_stream_, out_);
    out_.clear();
}

void Serial::flush() {
    std::lock_guard lock(mu_);
    flush_locked();
}

void Serial::read(std::uint64_t offset, std::span<std::uint8_t> data) {
    std::lock_guard lock(mu_);
    // The guest reading anything ends a burst of transmit writes: pass the output on.
    flush_locked();
    std::uint8_t v = 0;
    const bool dlab = (s_.lcr & UART_LCR_DLAB) != 0;
    switch (offset) {
        case UART_RX:  // UART_DLL with DLAB set
            if (dlab) {
                v = s_.dll;
            } else if (!s_.rx.empty()) {
                v = s_.rx.front();
                s_.rx.pop_front();
            }
            break;
        case UART_IER:  // UART_DLM with DLAB set
            v = dlab ? s_.dlm : s_.ier;
            break;
        case UART_IIR:
            v = iir();
            // Reading IIR acknowledges THRE. (The interrupt is only reported while no other
            // is pending, so UART_IIR_NO_INT is clear whenever the ID is THRI.)
            if ((v & UART_IIR_ID) == UART_IIR_THRI) s_.thr_interrupt = false;
            break;
        case UART_LCR:
            v = s_.lcr;
            break;
        case UART_MCR:
            v = s_.mcr;
            break;
        case UART_LSR:
            v = UART_LSR_THRE | UART_LSR_TEMT | (s_.rx.empty() ? 0 : UART_LSR_DR) |
                (s_.overrun ? UART_LSR_OE : 0);
            s_.overrun = false;  // reading LSR clears its error bits
            break;
        case UART_MSR:
            if (s_.mcr & UART_MCR_LOOP) {
                // Loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
                v = static_cast<std::uint8_t>(((s_.mcr & UART_MCR_RTS) ? UART_MSR_CTS : 0) |
                                              ((s_.mcr & UART_MCR_DTR) ? UART_MSR_DSR : 0) |
                                              ((s_.mcr & UART_MCR_OUT1) ? UART_MSR_RI : 0) |
                                              ((s_.mcr & UART_MCR_OUT2) ? UART_MSR_DCD : 0));
            } else {
                v = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
            }
            break;
        case UART_SCR:
            v = s_.scr;
            break;
        default:
            v = 0xff;
            break;
    }
    update_irq();
    std::fill(data.begin(), data.end(), 0);
    if (!data.empty()) data[0] = v;
}

void Serial::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
    if (data.empty()) return;
    const std::uint8_t v = data[0];
    std::lock_guard lock(mu_);
    const bool dlab = (s_.lcr & UART_LCR_DLAB) != 0;
    switch (offset) {
        case UART_TX:  // UART_DLL with DLAB set
            if (dlab) {
                s_.dll = v;
            } else {
                if (s_.mcr & UART_MCR_LOOP)
                    loop_back(v);
                else
                    emit((s_.ier & UART_IER_THRI) ? SerialStream::terminal : SerialStream::console,
                         v);
                s_.thr_interrupt = true;  // sent at once: THR is empty again
            }
            break;
        case UART_IER:  // UART_DLM with DLAB set
            if (dlab) {
                s_.dlm = v;
            } else {
                const std::uint8_t old = s_.ier;
                s_.ier = v & kIerKept;
                if ((s_.ier & UART_IER_THRI) && !(old & UART_IER_THRI)) s_.thr_interrupt = true;
            }
            break;
        case UART_FCR:
            // FIFO control. Received host input is not discarded on "clear RX FIFO": the
            // runner only sends it once the guest asked for it (the agent's ready event).
            s_.fcr = v & kFcrKept;
            break;
        case UART_LCR:
            s_.lcr = v;
            break;
        case UART_MCR:
            s_.mcr = v & kMcrKept;
            break;
        case UART_SCR:
            s_.scr = v;
            break;
        default:
            break;  // LSR and MSR are read-only
    }
    update_irq();
}

std::size_t Serial::push_input(std::span<const std::uint8_t> bytes) {
    std::lock_guard lock(mu_);
    const std::size_t room = kMaxSerialInput - std::min(s_.rx.size(), kMaxSerialInput);
    const std::size_t n = std::min(room, bytes.size());
    s_.rx.insert(s_.rx.end(), bytes.begin(), bytes.begin() + static_cast<std::ptrdiff_t>(n));
    if (n < bytes.size()) s_.overrun = true;
    update_irq();
    return n;
}

std::size_t Serial::pending_input() const {
    std::lock_guard lock(mu_);
    return s_.rx.size();
}

SerialState Serial::state() const {
    std::lock_guard lock(mu_);
    return s_;
}

void Serial::restore(const SerialState& s) {
    std::lock_guard lock(mu_);
    s_ = s;
    irq_level_ = false;
    update_irq();
}

}  // namespace stockade
