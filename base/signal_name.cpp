#include "base/signal_name.hpp"

#include <signal.h>
#include <string.h>

#include <cctype>
#include <charconv>
#include <string>

namespace stockade {

std::optional<int> parse_signal(std::string_view text) {
    int n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (!text.empty() && ec == std::errc() && end == text.data() + text.size())
        return n >= 1 && n <= 64 ? std::optional(n) : std::nullopt;
    std::string name;
    for (char c : text)
        name.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(c))));
    if (name.starts_with("SIG")) name.erase(0, 3);
    if (name.empty()) return std::nullopt;
    for (int sig = 1; sig < SIGRTMIN; ++sig)
        if (const char* abbrev = ::sigabbrev_np(sig); abbrev != nullptr && name == abbrev)
            return sig;
    return std::nullopt;
}

}  // namespace stockade
