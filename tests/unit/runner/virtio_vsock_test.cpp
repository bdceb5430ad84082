// virtio-vsock's one userspace duty (runner/virtio/vsock.hpp): telling a restored guest that
// its transport was reset, in the first buffer its driver left on the event queue, against
// a driver that left none, a buffer too small, a chain it may only read, or a ring that
// disagrees with the saved position.
#include <gtest/gtest.h>

#include "runner/virtio/vsock.hpp"
#include "tests/unit/runner/virtio_test_support.hpp"

namespace stockade::virtio {
namespace {

using fake::GuestRing;

struct Posted {
    Result<> result;
    QueuePosition at;
    int notified = 0;
};

Posted post(GuestRing& ring, QueuePosition at, bool event_idx = false) {
    Posted p{{}, at, 0};
    p.result = post_transport_reset(ring.mem(), ring.setup(), event_idx, 256, p.at,
                                    [&p] { ++p.notified; });
    return p;
}

TEST(VsockTransportReset, GoesIntoTheFirstEventBufferAndInterruptsTheGuest) {
    GuestRing ring(8);
    // The driver's event buffers, 4 bytes each and filled with junk, as it leaves them.
    for (std::uint16_t i = 0; i < 3; ++i) {
        const std::uint64_t buf = ring.alloc(4);
        ASSERT_TRUE(ring.mem().write_obj<std::uint32_t>(buf, 0xdeadbeef));
        ring.desc(i, buf, 4, kDescWrite);
        ring.make_available(i);
    }
    Posted p = post(ring, {});
    ASSERT_TRUE(p.result) << p.result.error().message;
    EXPECT_EQ(p.at.next_avail, 1);
    EXPECT_EQ(p.at.next_used, 1);
    EXPECT_EQ(p.notified, 1);
    EXPECT_EQ(ring.used_idx(), 1);
    EXPECT_EQ(ring.used_elem(0).id, 0u);
    EXPECT_EQ(ring.used_elem(0).len, 4u);
    const std::uint64_t first = ring.mem().read_obj<std::uint64_t>(ring.desc_table()).value();
    EXPECT_EQ(ring.mem().read_obj<std::uint32_t>(first).value(), 0u)
        << "VIRTIO_VSOCK_EVENT_TRANSPORT_RESET";

    // A second restore of a snapshot of this guest takes the next buffer.
    p = post(ring, p.at);
    ASSERT_TRUE(p.result) << p.result.error().message;
    EXPECT_EQ(p.at.next_used, 2);
    EXPECT_EQ(ring.used_elem(1).id, 1u);
}

TEST(VsockTransportReset, AGuestWithoutAUsableEventBufferIsRefusedWithTheRingConsistent) {
    {
        GuestRing ring(8);
        Posted p = post(ring, {});
        ASSERT_FALSE(p.result);
        EXPECT_NE(p.result.error().message.find("no buffer"), std::string::npos);
        EXPECT_EQ(p.at.next_used, 0);
        EXPECT_EQ(p.notified, 0);
    }
    for (std::uint32_t len : {0u, 1u, 3u}) {
        GuestRing ring(8);
        ring.desc(0, ring.alloc(4), len, kDescWrite);
        ring.make_available(0);
        Posted p = post(ring, {});
        ASSERT_FALSE(p.result) << len;
        EXPECT_NE(p.result.error().message.find("takes no event"), std::string::npos)
            << p.result.error().message;
        // Handed back empty, and where the queue stands moved with it.
        EXPECT_EQ(ring.used_idx(), 1);
        EXPECT_EQ(ring.used_elem(0).len, 0u);
        EXPECT_EQ(p.at.next_used, 1);
    }
    {
        // A chain the device may only read.
        GuestRing ring(8);
        ring.desc(0, ring.alloc(4), 4, 0);
        ring.make_available(0);
        Posted p = post(ring, {});
        ASSERT_FALSE(p.result);
        EXPECT_EQ(ring.used_elem(0).len, 0u);
    }
    {
        // A descriptor outside guest memory.
        GuestRing ring(8);
        ring.desc(0, ~0ull - 2, 4, kDescWrite);
        ring.make_available(0);
        EXPECT_FALSE(post(ring, {}).result);
        EXPECT_EQ(ring.used_idx(), 0);
    }
    {
        // The saved position disagrees with the used index in guest memory.
        GuestRing ring(8);
        ring.desc(0, ring.alloc(4), 4, kDescWrite);
        ring.make_available(0);
        Posted p = post(ring, {1, 1});
        ASSERT_FALSE(p.result);
        EXPECT_NE(p.result.error().message.find("used index"), std::string::npos);
        EXPECT_EQ(ring.used_idx(), 0);
    }
}

}  // namespace
}  // namespace stockade::virtio
