#pragma once
// Port I/O and MMIO dispatch: address ranges mapped to devices. Mostly built before the
// vCPUs start; PCI BARs can move while they run (the guest reprograms a BAR), so the
// range table is behind a reader/writer lock. Devices lock their own state.
#include <cstdint>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace stockade {

class BusDevice {
  public:
    virtual ~BusDevice() = default;
    // `offset` is relative to the base the device was registered at; `data` is 1..8 bytes.
    virtual void read(std::uint64_t offset, std::span<std::uint8_t> data) = 0;
    virtual void write(std::uint64_t offset, std::span<const std::uint8_t> data) = 0;
};

class Bus {
  public:
    explicit Bus(std::string name) : name_(std::move(name)) {}
    // Fails when [base, base+length) overlaps a registered range.
    [[nodiscard]] Result<> add(std::uint64_t base, std::uint64_t length, BusDevice& device,
                               std::string what);
    // Removes the range starting at `base` that belongs to `device`; false if none.
    bool remove(std::uint64_t base, const BusDevice& device);
    // False when nothing is mapped there (reads then see all ones).
    bool read(std::uint64_t addr, std::span<std::uint8_t> data) const;
    bool write(std::uint64_t addr, std::span<const std::uint8_t> data) const;

  private:
    struct Range {
        std::uint64_t base, length;
        BusDevice* device;
        std::string what;
    };
    [[nodiscard]] const Range* find(std::uint64_t addr, std::uint64_t len) const;
    std::string name_;
    mutable std::shared_mutex mu_;
    std::vector<Range> ranges_;  // sorted by base
};

}  // namespace stockade
