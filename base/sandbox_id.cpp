#include "base/sandbox_id.hpp"

#include <string>

#include "base/printable.hpp"

namespace stockade {
namespace {

constexpr bool is_alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
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
