// libFuzzer target: the guest's port I/O to the legacy devices, as the vCPU thread hands it
// over on an I/O exit: COM1 (16550A), the i8042, pvpanic, the ACPI sleep registers and the
// stockade agent port, on one PIO bus at the machine's addresses. The input is a stream of
// 5-byte accesses (direction and width, port, value) with host input for the UART mixed in.
// Nothing may crash or hang, and the UART may hold no more than its FIFO beyond what the
// host gave it: a guest cannot make the host grow (loopback writes without reads).
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "base/log.hpp"
#include "guest/abi.hpp"
#include "runner/arch/x86/layout.hpp"
#include "runner/devices/bus.hpp"
#include "runner/devices/platform.hpp"
#include "runner/devices/serial.hpp"

using namespace stockade;

namespace {

constexpr std::size_t kUartFifo = 16;

struct Ports {
    std::size_t output_bytes = 0, events = 0;
    bool irq = false;
    Serial serial{
        [this](SerialStream, std::span<const std::uint8_t> b) { output_bytes += b.size(); },
        [this](bool level) { irq = level; }};
    PlatformEventSink sink = [this](const PlatformEvent&) { ++events; };
    I8042 i8042{sink};
    PvPanic pvpanic{sink};
    AcpiSleep sleep{sink};
    AgentPort agent{sink};
    Bus pio{"pio"};
    Ports() {
        if (!pio.add(0x3f8, 8, serial, "COM1") || !pio.add(0x60, 5, i8042, "i8042") ||
            !pio.add(x86::kPvPanicPort, 1, pvpanic, "pvpanic") ||
            !pio.add(x86::kSleepControlPort, 2, sleep, "ACPI sleep") ||
            !pio.add(guest_abi::kAgentPort, 4, agent, "agent port"))
            __builtin_trap();
    }
};

// The ports an access goes to: mostly the devices' own, sometimes anywhere near them.
std::uint16_t port_of(std::uint8_t selector) {
    static const std::uint16_t kBases[] = {0x3f8, 0x60, x86::kPvPanicPort, x86::kSleepControlPort,
                                           guest_abi::kAgentPort};
    return static_cast<std::uint16_t>(kBases[(selector >> 3) % 5] + (selector & 7));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    log::set_level(log::Level::error);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    Ports p;
    std::size_t given = 0;  // host input handed to the UART
    for (std::size_t at = 0; at + 5 <= size; at += 5) {
        const std::uint8_t op = data[at];
        std::uint32_t value;
        std::memcpy(&value, data + at + 1, 4);
        const std::size_t width = std::size_t{1} << (op & 3);  // 1, 2, 4 or 8 bytes
        const std::uint16_t port = port_of(data[at + 1]);
        std::uint8_t buf[8] = {};
        std::memcpy(buf, &value, 4);
        switch ((op >> 2) & 3) {
            case 0:
                (void)p.pio.read(port, std::span(buf, width));
                break;
            case 3: {
                // Host input (stdin): up to four bytes.
                const std::size_t n = (op >> 4) & 3;
                p.serial.push_input(std::span(buf, n + 1));
                given += n + 1;
                break;
            }
            default:
                (void)p.pio.write(port, std::span<const std::uint8_t>(buf, width));
                break;
        }
        // A guest that loops its UART back and never reads keeps at most a FIFO's worth.
        if (p.serial.pending_input() > given + kUartFifo) __builtin_trap();
        // Repeating the same write many times is what a storm is: 64 more of this one.
        if ((op & 0xc0) == 0xc0 && ((op >> 2) & 3) == 1)
            for (int i = 0; i < 64; ++i)
                (void)p.pio.write(port, std::span<const std::uint8_t>(buf, width));
    }
    p.serial.flush();
    if (p.serial.pending_input() > given + kUartFifo) __builtin_trap();
    return 0;
}
