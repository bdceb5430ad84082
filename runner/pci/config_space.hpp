#pragma once
// A PCI function's 256-byte configuration space (type 0 header) with per-bit write
// masks, and the capability list. BAR registers are handled by the PCI bus, not here.
#include <array>
#include <cstdint>
#include <span>

namespace stockade::pci {

inline constexpr std::size_t kConfigSize = 256;
inline constexpr std::uint16_t kCommandIo = 1u << 0, kCommandMemory = 1u << 1,
                               kCommandBusMaster = 1u << 2, kCommandIntxDisable = 1u << 10;
inline constexpr std::uint16_t kStatusCapList = 1u << 4;
inline constexpr std::size_t kOffCommand = 0x04, kOffStatus = 0x06, kOffBar0 = 0x10,
                             kOffBarEnd = 0x28, kOffCapPtr = 0x34, kOffIntLine = 0x3c;
inline constexpr std::uint8_t kCapMsix = 0x11, kCapVendor = 0x09;

struct DeviceIdentity {
    std::uint16_t vendor, device;
    std::uint8_t revision;
    std::uint32_t class_code;  // class << 16 | subclass << 8 | prog-if
    std::uint16_t subsystem_vendor, subsystem;
};

class ConfigSpace {
  public:
    explicit ConfigSpace(const DeviceIdentity& id);

    // Reads and writes of 1, 2 or 4 bytes anywhere in the 256 bytes; writes honour the
    // write mask, so read-only fields stay what the device says they are.
    void read(std::size_t offset, std::span<std::uint8_t> out) const;
    void write(std::size_t offset, std::span<const std::uint8_t> in);

    // Appends a capability (id, next pointer, then `body`) and returns its offset (0, and
    // nothing added, when it does not fit: see capability_room()).
    // `writable` marks which bytes of the body the guest may change (same size as body).
    std::size_t add_capability(std::uint8_t id, std::span<const std::uint8_t> body,
                               std::span<const std::uint8_t> writable = {});

    // How many body bytes the next capability may have and still fit in the 256 bytes.
    [[nodiscard]] std::size_t capability_room() const {
        return next_cap_ + 2 <= kConfigSize ? kConfigSize - next_cap_ - 2 : 0;
    }

    [[nodiscard]] std::uint16_t u16(std::size_t off) const;
    void set_u16(std::size_t off, std::uint16_t v);

  private:
    std::array<std::uint8_t, kConfigSize> bytes_{};
    std::array<std::uint8_t, kConfigSize> wmask_{};
    std::size_t next_cap_ = 0x40;
    std::size_t last_cap_ = 0;
};

}  // namespace stockade::pci
