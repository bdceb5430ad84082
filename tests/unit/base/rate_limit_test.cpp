// The rate limit on guest-triggerable warnings: a burst, then one per interval, and a count of
// what was held back, on a clock the test moves.
#include "base/rate_limit.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "base/log.hpp"
#include "tests/support/log_capture.hpp"

namespace stockade {
namespace {

using namespace std::chrono_literals;

// A clock that stands still until the test moves it (shared with the limiter by pointer).
struct FakeClock {
    std::chrono::nanoseconds now{0};
    MonotonicClock fn() {
        return [this] { return now; };
    }
};

TEST(RateLimiter, LetsTheBurstThroughThenHoldsBack) {
    FakeClock clock;
    RateLimiter limiter({10, 10s}, clock.fn());
    for (int i = 0; i < 10; ++i)
        EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(0)) << i;
    for (int i = 0; i < 5; ++i)
        EXPECT_EQ(limiter.admit(), std::nullopt) << i;
    EXPECT_EQ(limiter.admitted(), 10u);
    EXPECT_EQ(limiter.suppressed(), 5u);
}

TEST(RateLimiter, RefillsOneTokenPerInterval) {
    FakeClock clock;
    RateLimiter limiter({10, 10s}, clock.fn());
    for (int i = 0; i < 10; ++i)
        ASSERT_TRUE(limiter.admit());
    clock.now += 9s;
    EXPECT_FALSE(limiter.admit()) << "not a whole interval yet";
    clock.now += 1s;
    EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(1)) << "one held back before it";
    EXPECT_FALSE(limiter.admit()) << "only one token came back";
    clock.now += 25s;  // two and a half intervals: two tokens
    EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(1));
    EXPECT_EQ(limiter.admit(), std::optional<std::uint64_t>(0));
    EXPECT_FALSE(limiter.admit());
    EXPECT_EQ(limiter.admitted(), 13u);
    EXPECT_EQ(limiter.suppressed(), 3u);
}

TEST(RateLimiter, AQuietSpellRefillsTheWholeBurstAndNoMore) {
    FakeClock clock;
    RateLimiter limiter({3, 1s}, clock.fn());
    for (int i = 0; i < 3; ++i)
        ASSERT_TRUE(limiter.admit());
    ASSERT_FALSE(limiter.admit());
    clock.now += 1h;
    for (int i = 0; i < 3; ++i)
        EXPECT_TRUE(limiter.admit()) << i;
    EXPECT_FALSE(limiter.admit()) << "the bucket holds the burst, never more";
}

TEST(RateLimiter, ThreadsTogetherGetTheBurstAndEveryOtherCallIsCounted) {
    FakeClock clock;
    RateLimiter limiter({10, 10s}, clock.fn());
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i)
                (void)limiter.admit();
        });
    for (auto& t : threads)
        t.join();
    EXPECT_EQ(limiter.admitted(), 10u);
    EXPECT_EQ(limiter.suppressed(), 3990u);
}

TEST(GuestWarnings, SaysHowManyWereSuppressedAndCountsBoth) {
    FakeClock clock;
    log::set_format(log::Format::text);
    GuestWarnings warnings({2, 10s}, clock.fn());
    const GuestWarnings same = warnings;  // a copy shares the bucket and the counts
    const std::string out = test::captured_log([&] {
        for (int i = 0; i < 5; ++i)
            warnings.warn("bad thing {}", i);
        clock.now += 10s;
        same.warn("bad thing {}", 5);
    });
    EXPECT_EQ(out,
              "stockade: warning: bad thing 0\n"
              "stockade: warning: bad thing 1\n"
              "stockade: warning: bad thing 5 (3 similar suppressed)\n");
    EXPECT_EQ(warnings.counts(), (GuestWarnings::Counts{3, 3}));
    EXPECT_EQ(describe(same.counts()), "warnings 3 (suppressed 3)");
}

TEST(GuestWarnings, SeparateDevicesHaveSeparateBuckets) {
    FakeClock clock;
    GuestWarnings a({1, 10s}, clock.fn()), b({1, 10s}, clock.fn());
    const std::string out = test::captured_log([&] {
        a.warn("a");
        a.warn("a");
        b.warn("b");
    });
    EXPECT_EQ(out, "stockade: warning: a\nstockade: warning: b\n");
    EXPECT_EQ(a.counts(), (GuestWarnings::Counts{1, 1}));
    EXPECT_EQ(b.counts(), (GuestWarnings::Counts{1, 0}));
}

}  // namespace
}  // namespace stockade
