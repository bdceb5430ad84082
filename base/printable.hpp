#pragma once
// Text from a user or a file, made safe to show on one line of an error message: bytes
// outside printable ASCII (and the backslash) as \xNN.
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace stockade {

[[nodiscard]] inline std::string printable(std::string_view text) {
    std::string out;
    for (char c : text) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f || c == '\\')
            out += fmt::format("\\x{:02x}", u);
        else
            out.push_back(c);
    }
    return out;
}

}  // namespace stockade
