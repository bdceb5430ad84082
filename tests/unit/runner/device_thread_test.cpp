// A device's own serving thread (runner/vmm/device_thread.hpp): what it watches runs on it,
// after its filter step; a hold returns only once no callback runs (a long one is asked to
// yield), and nothing watched is served until the release; the stop ends a callback's turn
// early and joins.
#include "runner/vmm/device_thread.hpp"

#include <gtest/gtest.h>

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace stockade {
namespace {

using namespace std::chrono_literals;

UniqueFd an_eventfd() {
    UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    EXPECT_TRUE(fd);
    return fd;
}

void signal(const UniqueFd& fd) {
    const std::uint64_t one = 1;
    ASSERT_EQ(::write(fd.get(), &one, sizeof one), static_cast<ssize_t>(sizeof one));
}

void drain(const UniqueFd& fd) {
    std::uint64_t n = 0;
    (void)!::read(fd.get(), &n, sizeof n);
}

template <class F>
bool eventually(F done, std::chrono::milliseconds limit = 2s) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

TEST(DeviceThread, CallbacksRunOnTheThreadAfterItsFilterStep) {
    std::atomic<std::thread::id> setup_on{}, served_on{};
    auto t = DeviceThread::start([&]() -> Result<> {
        setup_on = std::this_thread::get_id();
        return {};
    });
    ASSERT_TRUE(t) << t.error().message;
    UniqueFd kick = an_eventfd();
    std::atomic<int> calls{0};
    ASSERT_TRUE((*t)->watch(kick.get(), [&] {
        drain(kick);
        served_on = std::this_thread::get_id();
        ++calls;
    }));
    signal(kick);
    ASSERT_TRUE(eventually([&] { return calls.load() == 1; }));
    EXPECT_EQ(served_on.load(), setup_on.load());
    EXPECT_NE(served_on.load(), std::this_thread::get_id());
    (*t)->unwatch(kick.get());
    signal(kick);
    std::this_thread::sleep_for(50ms);
    EXPECT_EQ(calls.load(), 1) << "served after unwatch";
    (*t)->stop();
    (*t)->stop();  // idempotent
}

TEST(DeviceThread, AFailedFilterStepFailsTheStart) {
    auto t = DeviceThread::start([] { return Result<>(fail("no filter")); });
    ASSERT_FALSE(t);
    EXPECT_NE(t.error().message.find("no filter"), std::string::npos) << t.error().message;
}

// The pause: hold() waits for the callback that runs (which sees yield_requested and ends
// its turn), then nothing watched is served until the release, which serves what came in.
TEST(DeviceThread, AHoldWaitsForTheRunningCallbackAndServesNothingUntilTheRelease) {
    auto started = DeviceThread::start([] { return Result<>{}; });
    ASSERT_TRUE(started) << started.error().message;
    DeviceThread& t = **started;
    UniqueFd kick = an_eventfd();
    std::atomic<bool> in_turn{false}, saw_yield{false};
    std::atomic<int> calls{0};
    ASSERT_TRUE(t.watch(kick.get(), [&] {
        drain(kick);
        ++calls;
        if (calls == 1) {
            // A long turn: it ends when asked to.
            in_turn = true;
            eventually([&] { return t.yield_requested(); }, 5s);
            saw_yield = t.yield_requested();
            std::this_thread::sleep_for(100ms);
            in_turn = false;
        }
    }));
    signal(kick);
    ASSERT_TRUE(eventually([&] { return in_turn.load(); }));
    const auto t0 = std::chrono::steady_clock::now();
    t.hold(true);
    EXPECT_FALSE(in_turn.load()) << "hold returned while the callback ran";
    EXPECT_TRUE(saw_yield.load());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    EXPECT_FALSE(t.yield_requested()) << "the hold was taken";
    signal(kick);
    std::this_thread::sleep_for(100ms);
    EXPECT_EQ(calls.load(), 1) << "served while held";
    t.hold(false);
    EXPECT_TRUE(eventually([&] { return calls.load() == 2; })) << "not served after the release";
}

TEST(DeviceThread, TheStopEndsALongTurnAndJoins) {
    auto started = DeviceThread::start([] { return Result<>{}; });
    ASSERT_TRUE(started) << started.error().message;
    DeviceThread& t = **started;
    UniqueFd kick = an_eventfd();
    std::atomic<bool> in_turn{false};
    ASSERT_TRUE(t.watch(kick.get(), [&] {
        drain(kick);
        in_turn = true;
        eventually([&] { return t.yield_requested(); }, 10s);
    }));
    signal(kick);
    ASSERT_TRUE(eventually([&] { return in_turn.load(); }));
    const auto t0 = std::chrono::steady_clock::now();
    t.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
    t.hold(true);  // a stopped thread takes no hold, and does not wait for one
}

}  // namespace
}  // namespace stockade
