#pragma once
// Ethernet MAC addresses: parsing, validation and the stable derivation from a sandbox id.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace stockade::net {

struct MacAddress {
    std::array<std::uint8_t, 6> bytes{};

    [[nodiscard]] bool is_multicast() const { return (bytes[0] & 0x01) != 0; }
    [[nodiscard]] bool is_locally_administered() const { return (bytes[0] & 0x02) != 0; }
    [[nodiscard]] bool is_zero() const;
    [[nodiscard]] std::string to_string() const;  // "02:1a:2b:3c:4d:5e", lower case
    bool operator==(const MacAddress&) const = default;
};

// Parses "xx:xx:xx:xx:xx:xx" (hex, either case). Syntax only: multicast and zero
// addresses parse; use parse_sandbox_mac for a MAC a sandbox may be given.
[[nodiscard]] Result<MacAddress> parse_mac(std::string_view text);

// A MAC a sandbox may use as its source address: well-formed, unicast, not all zero.
[[nodiscard]] Result<MacAddress> parse_sandbox_mac(std::string_view text);

// The MAC of a sandbox that was given none: 02 followed by the first five bytes of
// SHA-256("stockade-mac:" + id). Fixed first octet 0x02 = locally administered (bit 1 set),
// unicast (bit 0 clear), and easy to recognise; the same id always gives the same MAC,
// so a restarted sandbox keeps its address (and the neighbours' ARP caches stay right).
[[nodiscard]] MacAddress derive_mac(std::string_view sandbox_id);

// The MAC of the host side of a sandbox's tap: the sandbox's MAC with the first octet set
// to 0xfe (libvirt's convention; 0xfa when it already is 0xfe; both unicast, locally
// administered). It must differ from
// the sandbox's own MAC: a bridge installs a local FDB entry for each port's address and
// would deliver frames for the sandbox to the host instead of forwarding them to the tap.
[[nodiscard]] MacAddress host_side_mac(const MacAddress& sandbox_mac);

}  // namespace stockade::net
