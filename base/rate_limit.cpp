#include "base/rate_limit.hpp"

#include <algorithm>
#include <limits>

#include "base/log.hpp"

namespace stockade {

std::chrono::nanoseconds steady_clock_now() {
    return std::chrono::steady_clock::now().time_since_epoch();
}

RateLimiter::RateLimiter(RateLimit limit, MonotonicClock clock)
    : interval_ns_(std::max<std::int64_t>(limit.interval.count(), 1)),
      tolerance_ns_(interval_ns_ * (std::max<std::uint32_t>(limit.burst, 1) - 1)),
      clock_(std::move(clock)),
      full_at_(std::numeric_limits<std::int64_t>::min()) {}

std::optional<std::uint64_t> RateLimiter::admit() {
    const std::int64_t now = clock_().count();
    std::int64_t full = full_at_.load();
    for (;;) {
        // Each event admitted moves the time the bucket is full again one interval later;
        // an event is held back while that time is more than burst - 1 intervals away.
        const std::int64_t from = std::max(full, now);
        if (from - now > tolerance_ns_) {
            suppressed_.fetch_add(1);
            held_since_last_.fetch_add(1);
            return std::nullopt;
        }
        if (full_at_.compare_exchange_weak(full, from + interval_ns_)) break;
    }
    admitted_.fetch_add(1);
    return held_since_last_.exchange(0);
}

GuestWarnings::GuestWarnings(RateLimit limit, MonotonicClock clock)
    : limiter_(std::make_shared<RateLimiter>(limit, std::move(clock))) {}

GuestWarnings::Counts GuestWarnings::counts() const {
    return {limiter_->admitted(), limiter_->suppressed()};
}

void GuestWarnings::emit(std::string message, std::uint64_t suppressed_before) const {
    if (suppressed_before != 0)
        message += fmt::format(" ({} similar suppressed)", suppressed_before);
    if (log::level() >= log::Level::warn) log::write(log::Level::warn, message);
}

std::string describe(const GuestWarnings::Counts& counts) {
    return fmt::format("warnings {} (suppressed {})", counts.warned, counts.suppressed);
}

}  // namespace stockade
