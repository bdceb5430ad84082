#include "netsetup/mac.hpp"

#include <algorithm>

#include "base/sha256.hpp"

namespace stockade::net {
bool MacAddress::is_zero() const {
    return std::all_of(bytes.begin(), bytes.end(), [](std::uint8_t b) { return b == 0; });
}

std::string MacAddress::to_string() const {
    return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", bytes[0], bytes[1], bytes[2],
                       bytes[3], bytes[4], bytes[5]);
}

Result<MacAddress> parse_mac(std::string_view text) {
    // Exactly six two-digit groups: "2:0:..." or "02-..." are rejected rather than guessed at.
    if (text.size() != 17)
        return fail("'{}' is not a MAC address (expected xx:xx:xx:xx:xx:xx)", text);
    MacAddress mac;
    for (std::size_t i = 0; i < 6; ++i) {
        int hi = hex_digit_value(text[i * 3]);
        int lo = hex_digit_value(text[i * 3 + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':'))
            return fail("'{}' is not a MAC address (expected xx:xx:xx:xx:xx:xx)", text);
        mac.bytes[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return mac;
}

Result<MacAddress> parse_sandbox_mac(std::string_view text) {
    auto mac = STOCKADE_TRY(parse_mac(text));
    if (mac.is_multicast())
        return fail(
            "{} is a multicast address (the first octet is odd); a sandbox needs a unicast MAC",
            text);
    if (mac.is_zero()) return fail("{} is the all-zero address", text);
    return mac;
}

MacAddress derive_mac(std::string_view sandbox_id) {
    auto digest = sha256(fmt::format("stockade-mac:{}", sandbox_id));
    MacAddress mac;
    mac.bytes[0] = 0x02;
    std::copy_n(digest.begin(), 5, mac.bytes.begin() + 1);
    return mac;
}

MacAddress host_side_mac(const MacAddress& sandbox_mac) {
    MacAddress mac = sandbox_mac;
    mac.bytes[0] = sandbox_mac.bytes[0] == 0xfe ? 0xfa : 0xfe;
    return mac;
}

}  // namespace stockade::net
