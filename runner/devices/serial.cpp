#include "runner/devices/serial.hpp"

namespace stockade {
namespace {

constexpr std::uint8_t kIerRdi = 0x01, kIerThri = 0x02, kIerRlsi = 0x04, kIerMsi = 0x08;
constexpr std::uint8_t kIirNone = 0x01, kIirThri = 0x02, kIirRdi = 0x04, kIirFifo = 0xc0;
constexpr std::uint8_t kFcrEnable = 0x01;
constexpr std::uint8_t kLcrDlab = 0x80;
constexpr std::uint8_t kMcrLoop = 0x10;
constexpr std::uint8_t kLsrDr = 0x01, kLsrThre = 0x20, kLsrTemt = 0x40;
constexpr std::uint8_t kMsrCts = 0x10, kMsrDsr = 0x20, kMsrRi = 0x40, kMsrDcd = 0x80;
constexpr std::size_t kFlushAt = 512;

}  // namespace

std::uint8_t Serial::iir() const {
    const std::uint8_t fifo = (s_.fcr & kFcrEnable) ? kIirFifo : 0;
    if ((s_.ier & kIerRdi) && !s_.rx.empty()) return fifo | kIirRdi;
    if ((s_.ier & kIerThri) && s_.thr_interrupt) return fifo | kIirThri;
    return fifo | kIirNone;
}

void Serial::update_irq() {
    const bool level = (iir() & kIirNone) == 0;
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
    const bool dlab = (s_.lcr & kLcrDlab) != 0;
    switch (offset) {
        case 0:
            if (dlab) {
                v = s_.dll;
            } else if (!s_.rx.empty()) {
                v = s_.rx.front();
                s_.rx.pop_front();
            }
            break;
        case 1:
            v = dlab ? s_.dlm : s_.ier;
            break;
        case 2:
            v = iir();
            if ((v & 0x0f) == kIirThri) s_.thr_interrupt = false;  // reading IIR acknowledges THRE
            break;
        case 3:
            v = s_.lcr;
            break;
        case 4:
            v = s_.mcr;
            break;
        case 5:
            v = kLsrThre | kLsrTemt | (s_.rx.empty() ? 0 : kLsrDr);
            break;
        case 6:
            if (s_.mcr & kMcrLoop) {
                // Loopback: RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
                v = static_cast<std::uint8_t>(
                    ((s_.mcr & 0x02) ? kMsrCts : 0) | ((s_.mcr & 0x01) ? kMsrDsr : 0) |
                    ((s_.mcr & 0x04) ? kMsrRi : 0) | ((s_.mcr & 0x08) ? kMsrDcd : 0));
            } else {
                v = kMsrDcd | kMsrDsr | kMsrCts;
            }
            break;
        case 7:
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
    const bool dlab = (s_.lcr & kLcrDlab) != 0;
    switch (offset) {
        case 0:
            if (dlab) {
                s_.dll = v;
            } else {
                if (s_.mcr & kMcrLoop)
                    s_.rx.push_back(v);
                else
                    emit((s_.ier & kIerThri) ? SerialStream::terminal : SerialStream::console, v);
                s_.thr_interrupt = true;  // sent at once: THR is empty again
            }
            break;
        case 1:
            if (dlab) {
                s_.dlm = v;
            } else {
                const std::uint8_t old = s_.ier;
                s_.ier = v & (kIerRdi | kIerThri | kIerRlsi | kIerMsi);
                if ((s_.ier & kIerThri) && !(old & kIerThri)) s_.thr_interrupt = true;
            }
            break;
        case 2:
            // FIFO control. Received host input is not discarded on "clear RX FIFO": the
            // runner only sends it once the guest asked for it (the agent's ready event).
            s_.fcr = v & 0xc9;
            break;
        case 3:
            s_.lcr = v;
            break;
        case 4:
            s_.mcr = v & 0x1f;
            break;
        case 7:
            s_.scr = v;
            break;
        default:
            break;  // LSR and MSR are read-only
    }
    update_irq();
}

void Serial::push_input(std::span<const std::uint8_t> bytes) {
    std::lock_guard lock(mu_);
    s_.rx.insert(s_.rx.end(), bytes.begin(), bytes.end());
    update_irq();
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
