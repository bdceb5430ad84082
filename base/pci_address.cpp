#include "base/pci_address.hpp"

#include <cstddef>

#include "base/printable.hpp"

namespace stockade {
namespace {

constexpr std::string_view kExpected =
    "expected DDDD:BB:DD.F or BB:DD.F in hex, device 00-1f and function 0-7, e.g. 0000:01:00.0";

constexpr int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// The value of text[at, at + n) when every one of those characters is a hex digit.
bool hex_field(std::string_view text, std::size_t at, std::size_t n, unsigned& value) {
    value = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        const int v = hex_value(text[i]);
        if (v < 0) return false;
        value = value * 16 + static_cast<unsigned>(v);
    }
    return true;
}

}  // namespace

std::string PciAddress::str() const {
    return fmt::format("{:04x}:{:02x}:{:02x}.{:x}", domain, bus, device, function);
}

Result<PciAddress> parse_pci_address(std::string_view text) {
    // "DDDD:" is all the long form adds to the short one.
    std::string_view rest = text;
    unsigned domain = 0;
    if (text.size() == 12) {
        if (text[4] != ':' || !hex_field(text, 0, 4, domain))
            return fail("PCI address '{}': {}", printable(text), kExpected);
        rest = text.substr(5);
    }
    unsigned bus = 0, device = 0, function = 0;
    if (rest.size() != 7 || rest[2] != ':' || rest[5] != '.' || !hex_field(rest, 0, 2, bus) ||
        !hex_field(rest, 3, 2, device) || !hex_field(rest, 6, 1, function))
        return fail("PCI address '{}': {}", printable(text), kExpected);
    if (device > 0x1f)
        return fail("PCI address '{}': device {:#04x} is above 0x1f; {}", printable(text), device,
                    kExpected);
    if (function > 7)
        return fail("PCI address '{}': function {:#x} is above 7; {}", printable(text), function,
                    kExpected);
    return PciAddress{static_cast<std::uint16_t>(domain), static_cast<std::uint8_t>(bus),
                      static_cast<std::uint8_t>(device), static_cast<std::uint8_t>(function)};
}

}  // namespace stockade
