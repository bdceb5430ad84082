#pragma once
// The last bytes the guest kernel printed on its console, kept to explain an abnormal end.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <span>
#include <string>

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

  private:
    mutable std::mutex mu_;
    std::deque<char> buf_;
};

}  // namespace stockade
