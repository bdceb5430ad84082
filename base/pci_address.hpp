#pragma once
// A PCI device's address on the host, as sysfs and `lspci -D` write it: domain, bus, device
// and function, "0000:01:00.0". The one parser of the addresses users give on the command
// line (`--device vfio=0000:01:00.0`) and that the kernel lists in an IOMMU group.
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace stockade {

struct PciAddress {
    std::uint16_t domain = 0;
    std::uint8_t bus = 0;
    std::uint8_t device = 0;    // 0 to 0x1f
    std::uint8_t function = 0;  // 0 to 7

    // The canonical form, lowercase hex: "0000:01:00.0".
    [[nodiscard]] std::string str() const;

    // Ordered as the fields are declared, which is also the order of str().
    auto operator<=>(const PciAddress&) const = default;
};

// Accepts "DDDD:BB:DD.F" and the short "BB:DD.F" (domain 0), each part exactly that many hex
// digits of either case, device at most 0x1f and function at most 7. Anything else (empty,
// spaces, signs, extra or missing parts, more digits) is refused with an error that names the
// text and the expected form, e.g. "PCI address '01:20.0': device 0x20 is above 0x1f;
// expected DDDD:BB:DD.F or BB:DD.F ...".
[[nodiscard]] Result<PciAddress> parse_pci_address(std::string_view text);

}  // namespace stockade
