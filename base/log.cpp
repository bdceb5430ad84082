#include "base/log.hpp"

#include <unistd.h>

#include <atomic>
#include <string>

namespace stockade::log {
namespace {
// Process-wide verbosity: written once at start-up, read by every thread.
std::atomic<Level> g_level{Level::warn};
}  // namespace

void set_level(Level l) {
    g_level.store(l, std::memory_order_relaxed);
}
Level level() {
    return g_level.load(std::memory_order_relaxed);
}

void write(Level l, std::string_view message) {
    static constexpr std::string_view kTags[] = {"error: ", "warning: ", "", "debug: "};
    std::string line = fmt::format("stockade: {}{}\n", kTags[static_cast<int>(l)], message);
    // One write(2) per line so lines from different threads do not interleave.
    (void)!::write(STDERR_FILENO, line.data(), line.size());
}

}  // namespace stockade::log
