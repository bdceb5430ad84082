#include "base/sandbox_id.hpp"

#include <string>

namespace stockade {
namespace {

constexpr bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// The id as it can be shown on one line: bytes outside printable ASCII as \xNN.
std::string printable(std::string_view id) {
    std::string out;
    for (char c : id) {
        const auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f || c == '\\')
            out += fmt::format("\\x{:02x}", u);
        else
            out.push_back(c);
    }
    return out;
}

}  // namespace

Result<> check_sandbox_id(std::string_view id) {
    if (id.empty())
        return fail("sandbox id: cannot be empty (1 to {} bytes of [A-Za-z0-9_.-])",
                    kMaxSandboxIdLength);
    if (id.size() > kMaxSandboxIdLength)
        return fail("sandbox id '{}': {} bytes, longer than the limit of {}", printable(id),
                    id.size(), kMaxSandboxIdLength);
    if (!is_alnum(id.front()))
        return fail("sandbox id '{}': must start with a letter or digit", printable(id));
    for (char c : id)
        if (!is_alnum(c) && c != '_' && c != '.' && c != '-')
            return fail("sandbox id '{}': contains '{}' (allowed: letters, digits, '_', '.', '-')",
                        printable(id), printable(std::string_view(&c, 1)));
    return {};
}

}  // namespace stockade
