#pragma once
// PCI bus 0 behind a host bridge, with configuration mechanism #1 (ports 0xcf8-0xcff).
// The bus assigns BARs (32-bit ones in the MMIO hole below 4 GiB, 64-bit ones above
// RAM), maps them on the MMIO bus while memory decoding is on, and follows the guest
// when it moves them.
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/error.hpp"
#include "runner/devices/bus.hpp"
#include "runner/pci/config_space.hpp"
#include "runner/pci/device.hpp"

namespace stockade::pci {

struct MmioWindows {
    std::uint64_t low_start, low_end;    // 32-bit BARs
    std::uint64_t high_start, high_end;  // 64-bit BARs
};

// What a snapshot keeps of the bus: CONFIG_ADDRESS and where the guest put each BAR (the
// functions keep their own configuration, the command register among it).
struct PciBusState {
    struct Bar {
        std::uint8_t slot = 0, index = 0;
        std::uint64_t size = 0, address = 0;
    };
    std::uint32_t config_address = 0;
    std::vector<Bar> bars;  // every implemented BAR of every function, in slot order
};

class PciBus : public BusDevice {
  public:
    PciBus(Bus& mmio, const MmioWindows& windows);
    ~PciBus() override;

    // Places `device` in the next free slot (1..31) and assigns its BARs.
    [[nodiscard]] Result<std::uint8_t> add(PciDevice& device);
    [[nodiscard]] std::size_t device_count() const;

    // Port I/O at 0xcf8 (8 ports): CONFIG_ADDRESS and CONFIG_DATA.
    void read(std::uint64_t offset, std::span<std::uint8_t> data) override;
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override;

    // Where a device's BAR currently is (0: not decoded), for tests and diagnostics.
    [[nodiscard]] std::uint64_t bar_address(std::uint8_t slot, std::size_t bar) const;

    // Snapshots. restore() is for a bus with the same functions in the same slots, each
    // with its own state already back (its command register says whether its BARs decode):
    // each BAR goes where it was and is mapped if its function decodes memory. A state
    // that names a BAR the bus does not have, or leaves one out, is refused whole.
    [[nodiscard]] PciBusState state() const;
    [[nodiscard]] Result<> restore(const PciBusState& s);

    // Direct configuration access by (slot, offset), as the guest sees it.
    void config_read(std::uint8_t slot, std::size_t offset, std::span<std::uint8_t> out);
    void config_write(std::uint8_t slot, std::size_t offset, std::span<const std::uint8_t> in);

  private:
    struct Window;
    struct Bar {
        std::uint64_t size = 0;
        bool is_64bit = false;
        bool upper_half = false;      // the high dword of the previous 64-bit BAR
        std::uint64_t address = 0;    // as programmed
        std::uint64_t mapped_at = 0;  // 0: not on the MMIO bus
        std::unique_ptr<Window> window;
    };
    struct Slot {
        PciDevice* device = nullptr;
        std::array<Bar, 6> bars;
    };

    struct ConfigTarget {
        std::uint8_t slot;
        std::size_t offset;
    };
    // Where a CONFIG_DATA access (port offset 4..7) goes; nullopt: nowhere (all ones).
    [[nodiscard]] std::optional<ConfigTarget> config_target(std::uint64_t offset,
                                                            std::size_t len) const;
    void remap(std::uint8_t slot);
    void bar_register_read(Slot& s, std::size_t index, std::span<std::uint8_t> out) const;
    void bar_register_write(Slot& s, std::size_t index, std::size_t byte,
                            std::span<const std::uint8_t> in);
    [[nodiscard]] std::uint16_t command(std::uint8_t slot);

    Bus& mmio_;
    MmioWindows windows_;
    std::uint64_t next_low_, next_high_;
    mutable std::mutex mu_;
    std::uint32_t address_ = 0;
    std::array<Slot, 32> slots_;
    std::unique_ptr<PciDevice> host_bridge_;
};

}  // namespace stockade::pci
