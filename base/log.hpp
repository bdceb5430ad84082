#pragma once
// Diagnostics to stderr, prefixed with the program name, or as JSON lines
// ({"time": RFC 3339, "level": ..., "msg": ...}, runc's shape) for programs that read them.
// The level and format are process-wide (set once from the command line before any thread
// starts).
#include <cstdio>
#include <string>
#include <string_view>

#include <fmt/format.h>

namespace stockade::log {

enum class Level { error = 0, warn = 1, info = 2, debug = 3 };

enum class Format { text, json };

void set_level(Level level);
[[nodiscard]] Level level();
void set_format(Format format);
// Where lines go (default stderr): a log file the caller opened (--log-path). The descriptor
// must stay open for the process's life; processes that close inherited descriptors keep it.
void set_output(int fd);
[[nodiscard]] int output_fd();
void write(Level level, std::string_view message);
// The line write() emits (without writing it), for tests.
[[nodiscard]] std::string format_line(Level level, std::string_view message);

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
