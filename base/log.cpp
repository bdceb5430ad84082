#include "base/log.hpp"

#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>

#include <nlohmann/json.hpp>

namespace stockade::log {
namespace {
// Process-wide verbosity: written once at start-up, read by every thread.
std::atomic<Level> g_level{Level::warn};
std::atomic<Format> g_format{Format::text};
std::atomic<int> g_fd{STDERR_FILENO};

std::string utc_now() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    tm t{};
    ::gmtime_r(&ts.tv_sec, &t);
    return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", t.tm_year + 1900, t.tm_mon + 1,
                       t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ts.tv_nsec / 1000);
}
}  // namespace

void set_level(Level l) {
    g_level.store(l, std::memory_order_relaxed);
}
Level level() {
    return g_level.load(std::memory_order_relaxed);
}

void set_output(int fd) {
    g_fd.store(fd, std::memory_order_relaxed);
}
int output_fd() {
    return g_fd.load(std::memory_order_relaxed);
}

void set_format(Format f) {
    g_format.store(f, std::memory_order_relaxed);
}

std::string format_line(Level l, std::string_view message) {
    if (g_format.load(std::memory_order_relaxed) == Format::json) {
        static constexpr const char* kNames[] = {"error", "warning", "info", "debug"};
        const nlohmann::json j{
            {"time", utc_now()}, {"level", kNames[static_cast<int>(l)]}, {"msg", message}};
        // A message may carry anyone's bytes: invalid UTF-8 is replaced, never thrown.
        return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    static constexpr std::string_view kTags[] = {"error: ", "warning: ", "", "debug: "};
    return fmt::format("stockade: {}{}\n", kTags[static_cast<int>(l)], message);
}

void write(Level l, std::string_view message) {
    const std::string line = format_line(l, message);
    // One write(2) per line so lines from different threads do not interleave.
    (void)!::write(output_fd(), line.data(), line.size());
}

}  // namespace stockade::log
