#pragma once
// The small platform devices: the i8042 (only what a reset needs), the ACPI sleep
// control register (S5 = power off), pvpanic, and the stockade agent port. Each turns a
// guest write into a PlatformEvent for the runner; none keeps meaningful state.
#include <cstdint>
#include <functional>

#include "guest/abi.hpp"
#include "runner/devices/bus.hpp"

namespace stockade {

enum class PlatformEventKind {
    reset,     // i8042 pulse-reset (0xfe to port 0x64): reboot
    poweroff,  // ACPI S5 through the sleep control register
    panic,     // pvpanic: the guest kernel panicked
    agent,     // stockade-init reported something (agent_value is valid)
};

struct PlatformEvent {
    PlatformEventKind kind;
    std::uint32_t agent_value = 0;
};

using PlatformEventSink = std::function<void(const PlatformEvent&)>;

// The shape all four share: the sink that a guest write's event goes to, and reads that
// return zeros unless a device says otherwise. Each device decodes its own writes.
class PlatformPort : public BusDevice {
  public:
    explicit PlatformPort(PlatformEventSink sink) : sink_(std::move(sink)) {}
    void read(std::uint64_t offset, std::span<std::uint8_t> data) override;

  protected:
    void raise(const PlatformEvent& event) const { sink_(event); }

  private:
    PlatformEventSink sink_;
};

// Ports 0x60..0x64. Status reads 0 (input buffer empty), so the kernel's reset loop
// proceeds to write the reset command.
class I8042 final : public PlatformPort {
  public:
    using PlatformPort::PlatformPort;
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;
};

// Two one-byte registers: sleep control (offset 0) and sleep status (offset 1).
class AcpiSleep final : public PlatformPort {
  public:
    using PlatformPort::PlatformPort;
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;
};

// pvpanic: reads tell the driver which events are supported; bit 0 written = panicked.
class PvPanic final : public PlatformPort {
  public:
    using PlatformPort::PlatformPort;
    void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;
};

// 32-bit writes of guest_abi values; anything without the magic is ignored.
class AgentPort final : public PlatformPort {
  public:
    using PlatformPort::PlatformPort;
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;
};

}  // namespace stockade
