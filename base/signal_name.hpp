#pragma once
// Signals by name or number, as `kill` takes them: "TERM", "SIGTERM", "sigterm" or "15".
#include <optional>
#include <string_view>

namespace stockade {

// 1..64 (real-time signals by number only); nullopt for anything else.
[[nodiscard]] std::optional<int> parse_signal(std::string_view text);

}  // namespace stockade
