#pragma once
// A PCI bus with its MMIO bus, driven as a guest drives it through configuration mechanism #1
// (ports 0xcf8-0xcff): for the tests of the bus and of the functions on it.
#include <cstdint>
#include <optional>
#include <span>

#include "runner/devices/bus.hpp"
#include "runner/pci/config_space.hpp"
#include "runner/pci/pci_bus.hpp"

namespace stockade::pci {

inline constexpr MmioWindows kWindows{0xc000'0000, 0xe000'0000, 0x10'0000'0000, 0x20'0000'0000};
inline constexpr std::uint32_t kEnable = 0x8000'0000u;

struct Rig {
    Bus mmio{"mmio"};
    PciBus pci{mmio, kWindows};

    static std::uint32_t address(std::uint8_t dev, std::size_t reg, std::uint8_t fn = 0,
                                 std::uint8_t bus = 0) {
        return kEnable | std::uint32_t{bus} << 16 | std::uint32_t{dev} << 11 |
               std::uint32_t{fn} << 8 | static_cast<std::uint32_t>(reg & 0xfc);
    }
    void select(std::uint32_t addr) {
        pci.write(0, std::span(reinterpret_cast<const std::uint8_t*>(&addr), 4));
    }
    // A configuration read of `size` bytes at `reg` through CONFIG_DATA, as the guest does.
    std::uint32_t cfg_read(std::uint8_t dev, std::size_t reg, std::size_t size = 4) {
        return raw_read(address(dev, reg), reg & 3, size);
    }
    std::uint32_t raw_read(std::uint32_t addr, std::size_t port, std::size_t size) {
        select(addr);
        std::uint32_t v = 0;
        pci.read(4 + port, std::span(reinterpret_cast<std::uint8_t*>(&v), size));
        return v;
    }
    void cfg_write(std::uint8_t dev, std::size_t reg, std::uint32_t v, std::size_t size = 4) {
        raw_write(address(dev, reg), reg & 3, v, size);
    }
    void raw_write(std::uint32_t addr, std::size_t port, std::uint32_t v, std::size_t size) {
        select(addr);
        pci.write(4 + port, std::span(reinterpret_cast<const std::uint8_t*>(&v), size));
    }
    void decode(std::uint8_t dev, bool on) {
        const std::uint32_t cmd = cfg_read(dev, kOffCommand, 2);
        cfg_write(dev, kOffCommand,
                  on ? (cmd | kCommandMemory) : (cmd & ~std::uint32_t{kCommandMemory}), 2);
    }
    // An MMIO read at a guest physical address: nullopt when nothing answers.
    std::optional<std::uint32_t> mmio_read(std::uint64_t gpa) {
        std::uint32_t v = 0;
        if (!mmio.read(gpa, std::span(reinterpret_cast<std::uint8_t*>(&v), 4))) return {};
        return v;
    }
};

}  // namespace stockade::pci
