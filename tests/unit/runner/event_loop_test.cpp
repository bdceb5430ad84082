// The event loop's hold (pause): the descriptors devices watch are not served while held,
// the sandbox's own (signals, the stop eventfd) still are, and what came in meanwhile is
// served once released.
#include "runner/vmm/event_loop.hpp"

#include <gtest/gtest.h>

#include <sys/eventfd.h>
#include <unistd.h>

namespace stockade {
namespace {

UniqueFd ready_eventfd() {
    UniqueFd fd(::eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK));  // readable from the start
    EXPECT_TRUE(fd);
    return fd;
}

TEST(EventLoop, HeldDeviceDescriptorsWaitForTheRelease) {
    auto loop = EventLoop::create();
    ASSERT_TRUE(loop) << loop.error().message;
    UniqueFd device = ready_eventfd(), own = ready_eventfd();
    int device_calls = 0, own_calls = 0;
    ASSERT_TRUE(loop->watch(device.get(), [&] { ++device_calls; }));
    ASSERT_TRUE(loop->add(own.get(), EPOLLIN, [&](std::uint32_t) { ++own_calls; }));

    ASSERT_TRUE(loop->hold_watched(true));
    for (int i = 0; i < 3; ++i)
        ASSERT_TRUE(loop->run_once(0));
    EXPECT_EQ(device_calls, 0) << "a device was served while held";
    EXPECT_EQ(own_calls, 3) << "the loop's own descriptors are served while held";

    // A device that starts while held waits too.
    UniqueFd late = ready_eventfd();
    int late_calls = 0;
    ASSERT_TRUE(loop->watch(late.get(), [&] { ++late_calls; }));
    ASSERT_TRUE(loop->run_once(0));
    EXPECT_EQ(late_calls, 0);

    ASSERT_TRUE(loop->hold_watched(false));
    ASSERT_TRUE(loop->run_once(0));
    EXPECT_EQ(device_calls, 1);
    EXPECT_EQ(late_calls, 1);
    loop->remove(device.get());
    loop->remove(late.get());
    ASSERT_TRUE(loop->hold_watched(true)) << "removed descriptors are forgotten";
}

}  // namespace
}  // namespace stockade
