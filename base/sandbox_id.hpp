#pragma once
// The one rule for sandbox ids. An id names, unescaped: the cgroup leaf
// (<parent>/<id>), the jail root (<root_parent>/<id>), the network record
// (/run/stockade/net/<id>.json) and the default tap ("stk-" + id), and it seeds the MCS
// categories. So it must be a single, visible, ordinary path component that no tool can
// take for an option: 1 to 64 of [A-Za-z0-9_.-], starting with a letter or a digit (never
// ".", "..", a hidden ".x" that the network records' listing skips, "-x", or "_x").
#include <cstddef>
#include <string_view>

#include "base/error.hpp"

namespace stockade {

inline constexpr std::size_t kMaxSandboxIdLength = 64;

// The error names the id and the rule it breaks, e.g.
// "sandbox id '-x': must start with a letter or digit".
[[nodiscard]] Result<> check_sandbox_id(std::string_view id);

}  // namespace stockade
