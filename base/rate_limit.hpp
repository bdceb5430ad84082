#pragma once
// Rate limits for the warnings a guest can cause. A hostile guest repeats whatever makes a
// device warn (a BAR placed where it cannot go, a FEATURES_OK with a bit never offered, a
// device that cannot start) as often as it likes; unlimited, every repeat is a write(2) on a
// vCPU thread and a line in the host's log. Each device gets one token bucket: a burst of
// lines, then one per interval; what the bucket holds back is counted, the next line that goes
// out says how many ("(N similar suppressed)"), and `stockade run --stats` shows the totals.
//
//   const GuestWarnings& w = device.warnings();  // one per device; copies share it
//   w.warn("virtio {}: driver features {:#x} refused", name, features);
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <fmt/format.h>

namespace stockade {

struct RateLimit {
    std::uint32_t burst = 10;                                      // let through at once
    std::chrono::nanoseconds interval = std::chrono::seconds(10);  // then one per interval
};

// A monotonic clock, as time since some fixed point; tests inject their own.
using MonotonicClock = std::function<std::chrono::nanoseconds()>;
[[nodiscard]] std::chrono::nanoseconds steady_clock_now();

// A token bucket kept as one atomic time (GCRA: the time at which the bucket is full again),
// so any thread may ask without a lock, vCPU threads included. The clock is read on every
// call (steady_clock: clock_gettime, which every seccomp profile's baseline allows).
class RateLimiter {
  public:
    explicit RateLimiter(RateLimit limit = {}, MonotonicClock clock = steady_clock_now);
    RateLimiter(const RateLimiter&) = delete;
    RateLimiter& operator=(const RateLimiter&) = delete;

    // Whether one more event may go out now: nullopt when it is held back; otherwise how many
    // were held back since the last one that went out.
    [[nodiscard]] std::optional<std::uint64_t> admit();
    [[nodiscard]] std::uint64_t admitted() const { return admitted_.load(); }
    [[nodiscard]] std::uint64_t suppressed() const { return suppressed_.load(); }

  private:
    const std::int64_t interval_ns_;
    const std::int64_t tolerance_ns_;  // (burst - 1) intervals
    const MonotonicClock clock_;
    std::atomic<std::int64_t> full_at_;  // the bucket is full again at this time
    std::atomic<std::uint64_t> admitted_{0}, suppressed_{0}, held_since_last_{0};
};

// The warnings of one device: a handle on one shared RateLimiter, so the device, its MSI-X
// table and the bus that places its BARs all count against (and report) the same bucket.
class GuestWarnings {
  public:
    explicit GuestWarnings(RateLimit limit = {}, MonotonicClock clock = steady_clock_now);

    // A warning (log::warn), unless the bucket holds it back. Formats only what goes out.
    template <typename... Args>
    void warn(fmt::format_string<Args...> f, Args&&... args) const {
        if (const auto held = limiter_->admit())
            emit(fmt::format(f, std::forward<Args>(args)...), *held);
    }

    struct Counts {
        std::uint64_t warned = 0;      // written (or only filtered by --log-level)
        std::uint64_t suppressed = 0;  // held back by the rate limit
        Counts& operator+=(const Counts& o) {
            warned += o.warned;
            suppressed += o.suppressed;
            return *this;
        }
        bool operator==(const Counts&) const = default;
    };
    [[nodiscard]] Counts counts() const;

  private:
    void emit(std::string message, std::uint64_t suppressed_before) const;
    std::shared_ptr<RateLimiter> limiter_;
};

// "warnings N (suppressed M)", as --stats shows a device's.
[[nodiscard]] std::string describe(const GuestWarnings::Counts& counts);

}  // namespace stockade
