#pragma once
// What a PCI function offers the bus: its configuration space, its BARs, and handlers for
// accesses to them. The bus owns BAR addresses and decoding; devices never see the bus.
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "base/rate_limit.hpp"
#include "runner/pci/config_space.hpp"

namespace stockade::pci {

struct BarSpec {
    std::uint64_t size = 0;  // power of two, at least 4 KiB for memory BARs; 0: unused
    bool is_64bit = false;
};

class PciDevice {
  public:
    virtual ~PciDevice() = default;
    [[nodiscard]] virtual std::string name() const = 0;
    [[nodiscard]] virtual std::vector<BarSpec> bar_specs() const = 0;  // up to 6 (64-bit take 2)

    // Configuration space beyond the BARs. Called with the device's own lock not held.
    virtual void config_read(std::size_t offset, std::span<std::uint8_t> out) = 0;
    virtual void config_write(std::size_t offset, std::span<const std::uint8_t> in) = 0;

    virtual void bar_read(std::size_t bar, std::uint64_t offset, std::span<std::uint8_t> out) = 0;
    virtual void bar_write(std::size_t bar, std::uint64_t offset,
                           std::span<const std::uint8_t> in) = 0;
    // The guest placed (or moved) a memory BAR, or turned decoding off (address 0 = unmapped).
    virtual void bar_placed(std::size_t /*bar*/, std::uint64_t /*address*/) {}

    // Every warning the guest can cause about this function goes through here: its own, its
    // MSI-X table's and the bus's about its BARs, one rate limit and one count (--stats).
    [[nodiscard]] const GuestWarnings& warnings() const { return warnings_; }

  private:
    GuestWarnings warnings_;
};

}  // namespace stockade::pci
