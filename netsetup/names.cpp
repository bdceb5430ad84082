#include "netsetup/names.hpp"

#include "base/sha256.hpp"

namespace stockade::net {

Result<> validate_ifname(std::string_view field, std::string_view name) {
    if (name.empty()) return fail("{}: an interface name cannot be empty", field);
    if (name.size() > kMaxIfnameLength)
        return fail("{}: interface name '{}' is {} bytes, longer than the kernel's limit of {}",
                    field, name, name.size(), kMaxIfnameLength);
    if (name == "." || name == "..")
        return fail("{}: '{}' is not a valid interface name", field, name);
    for (char c : name) {
        auto u = static_cast<unsigned char>(c);
        if (c == '/' || c == ':' || c == '%' || u <= 0x20 || u >= 0x7f)
            return fail(
                "{}: interface name '{}' contains '{}', which is not allowed "
                "(no '/', ':', '%', whitespace or control characters)",
                field, name,
                u <= 0x20 || u >= 0x7f ? fmt::format("\\x{:02x}", u) : std::string(1, c));
    }
    return {};
}

Result<> validate_sandbox_id(std::string_view id) {
    if (auto ok = check_sandbox_id(id); !ok)
        return std::unexpected(std::move(ok).error().context("id"));
    return {};
}

std::string derive_tap_name(std::string_view sandbox_id) {
    constexpr std::string_view prefix = "stk-";
    if (prefix.size() + sandbox_id.size() <= kMaxIfnameLength)
        return fmt::format("{}{}", prefix, sandbox_id);
    auto digest = sha256(fmt::format("stockade-tap:{}", sandbox_id));
    std::string hex;
    for (auto b : digest)
        hex += fmt::format("{:02x}", b);
    return fmt::format("{}{}", prefix, hex.substr(0, kMaxIfnameLength - prefix.size()));
}

}  // namespace stockade::net
