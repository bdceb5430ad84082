#pragma once
// Diagnostics to stderr, prefixed with the program name. The level is process-wide
// (set once from the command line before any thread starts).
#include <cstdio>
#include <string_view>

#include <fmt/format.h>

namespace stockade::log {

enum class Level { error = 0, warn = 1, info = 2, debug = 3 };

void set_level(Level level);
[[nodiscard]] Level level();
void write(Level level, std::string_view message);

template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... args) {
    write(Level::error, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... args) {
    if (level() >= Level::warn) write(Level::warn, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... args) {
    if (level() >= Level::info) write(Level::info, fmt::format(f, std::forward<Args>(args)...));
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... args) {
    if (level() >= Level::debug) write(Level::debug, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace stockade::log
