#pragma once
// The last bytes the guest kernel printed on its console, kept to explain an abnormal end.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <string>
#include <string_view>

namespace stockade {

inline constexpr std::size_t kConsoleTail = 64u << 10;

class ConsoleTail {
  public:
    void append(std::span<const std::uint8_t> data) {
        std::lock_guard lock(mu_);
        buf_.insert(buf_.end(), data.begin(), data.end());
        while (buf_.size() > kConsoleTail)
            buf_.pop_front();
    }
    [[nodiscard]] std::string last_lines(std::size_t n) const {
        std::lock_guard lock(mu_);
        std::string s(buf_.begin(), buf_.end());
        std::size_t pos = s.size();
        for (std::size_t i = 0; i <= n && pos != std::string::npos && pos > 0; ++i)
            pos = s.rfind('\n', pos - 1);
        // An empty console (nothing printed yet) has no line to skip.
        return pos == std::string::npos ? s : s.substr(std::min(pos + 1, s.size()));
    }

    // From the start of the line that holds the last `marker` to the end, when that is at
    // most `max_lines` lines; empty otherwise. A kernel's panic report is longer than a
    // fixed tail whenever its call trace carries stale stack entries.
    [[nodiscard]] std::string from_last(std::string_view marker, std::size_t max_lines) const {
        std::lock_guard lock(mu_);
        const std::string s(buf_.begin(), buf_.end());
        // The last line where `marker` begins the message (after a printk timestamp at
        // most), not where a closing "---[ end <marker> ]---" line repeats it.
        std::size_t at = s.size(), start = 0;
        for (;;) {
            at = at == 0 ? std::string::npos : s.rfind(marker, at - 1);
            if (at == std::string::npos) return {};
            const std::size_t nl = at == 0 ? std::string::npos : s.rfind('\n', at - 1);
            start = nl == std::string::npos ? 0 : nl + 1;
            if (s.compare(start, at - start, "") == 0 || s[at - 1] == ' ') {
                const std::string_view before(s.data() + start, at - start);
                if (before.find("---[") == std::string_view::npos) break;
            }
        }
        std::string out = s.substr(start);
        if (static_cast<std::size_t>(std::count(out.begin(), out.end(), '\n')) > max_lines)
            return {};
        return out;
    }

  private:
    mutable std::mutex mu_;
    std::deque<char> buf_;
};

}  // namespace stockade
