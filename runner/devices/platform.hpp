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

// Ports 0x60..0x64. Status reads 0 (input buffer empty), so the kernel's reset loop
// proceeds to write the reset command.
class I8042 : public BusDevice {
  public:
    explicit I8042(PlatformEventSink sink) : sink_(std::move(sink)) {}
    void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  private:
    PlatformEventSink sink_;
};

// Two one-byte registers: sleep control (offset 0) and sleep status (offset 1).
class AcpiSleep : public BusDevice {
  public:
    explicit AcpiSleep(PlatformEventSink sink) : sink_(std::move(sink)) {}
    void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  private:
    PlatformEventSink sink_;
};

// pvpanic: reads tell the driver which events are supported; bit 0 written = panicked.
class PvPanic : public BusDevice {
  public:
    explicit PvPanic(PlatformEventSink sink) : sink_(std::move(sink)) {}
    void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  private:
    PlatformEventSink sink_;
};

// 32-bit writes of guest_abi values; anything without the magic is ignored.
class AgentPort : public BusDevice {
  public:
    explicit AgentPort(PlatformEventSink sink) : sink_(std::move(sink)) {}
    void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

  private:
    PlatformEventSink sink_;
};

}  // namespace stockade
