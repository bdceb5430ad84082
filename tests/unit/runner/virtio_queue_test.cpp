// Split virtqueues against a hostile driver: every index, address, length and flag the
// guest wrote is checked before use; a violation is an Error, never a crash or a hang.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "runner/virtio/queue.hpp"
#include "tests/unit/runner/virtio_test_support.hpp"

namespace stockade::virtio {
namespace {

using fake::GuestRing;

template <typename T>
::testing::AssertionResult fails_with(const Result<T>& r, const std::string& text) {
    if (r) return ::testing::AssertionFailure() << "succeeded; expected an error about " << text;
    if (r.error().message.find(text) == std::string::npos)
        return ::testing::AssertionFailure()
               << "error \"" << r.error().message << "\" does not mention \"" << text << "\"";
    return ::testing::AssertionSuccess();
}

// Pops one chain that must be there.
Chain pop_one(SplitQueue& q) {
    auto r = q.pop();
    EXPECT_TRUE(r) << r.error().message;
    if (!r || !*r) {
        ADD_FAILURE() << "no chain available";
        return {};
    }
    return std::move(**r);
}

// --- creating a queue from what the driver wrote in the common configuration ---

TEST(SplitQueueCreate, RefusesSizesThatAreNotPowersOfTwoOrTooBig) {
    GuestRing ring(256);
    for (std::uint16_t size : {0, 3, 6, 255, 257, 384, 65535}) {
        QueueSetup s = ring.setup();
        s.size = size;
        EXPECT_TRUE(fails_with(SplitQueue::create(ring.mem(), s, false, 65535), "power of two"))
            << "size " << size;
    }
    QueueSetup s = ring.setup();
    EXPECT_TRUE(SplitQueue::create(ring.mem(), s, false, 256));
    EXPECT_TRUE(fails_with(SplitQueue::create(ring.mem(), s, false, 128), "power of two"))
        << "larger than the device's maximum";
    for (std::uint16_t size : {1, 2, 4, 128})
        EXPECT_TRUE(SplitQueue::create(ring.mem(), {size, s.desc, s.driver, s.device}, false, 256))
            << "size " << size;
}

TEST(SplitQueueCreate, AcceptsTheLargestQueueTheSpecAllows) {
    GuestRing big(kMaxQueueSize, 4 << 20);
    auto q = big.queue(true, 65535);
    ASSERT_TRUE(q) << q.error().message;
    EXPECT_EQ(q->size(), kMaxQueueSize);
}

TEST(SplitQueueCreate, RefusesMisalignedRings) {
    GuestRing ring(16);
    const QueueSetup good = ring.setup();
    for (std::uint64_t skew : {1, 2, 4, 8}) {
        QueueSetup s = good;
        s.desc += skew;
        EXPECT_TRUE(fails_with(SplitQueue::create(ring.mem(), s, false, 256), "misaligned"))
            << "descriptor table +" << skew;
    }
    QueueSetup s = good;
    s.driver += 1;
    EXPECT_TRUE(fails_with(SplitQueue::create(ring.mem(), s, false, 256), "misaligned"));
    for (std::uint64_t skew : {1, 2}) {
        s = good;
        s.device += skew;
        EXPECT_TRUE(fails_with(SplitQueue::create(ring.mem(), s, false, 256), "misaligned"));
    }
    s = good;
    s.driver += 2;  // 2-byte alignment is all the avail ring needs
    s.device += 4;  // and 4 bytes for the used ring
    EXPECT_TRUE(SplitQueue::create(ring.mem(), s, false, 256));
}

TEST(SplitQueueCreate, RefusesRingsOutsideRamIncludingAtItsVeryEnd) {
    const std::uint64_t ram = 1 << 20;
    GuestRing ring(256, ram);
    const std::uint64_t n = 256;
    const QueueSetup good = ring.setup();
    auto with = [&](std::uint64_t desc, std::uint64_t avail, std::uint64_t used) {
        QueueSetup s = good;
        s.desc = desc;
        s.driver = avail;
        s.device = used;
        return SplitQueue::create(ring.mem(), s, true, 256);
    };
    // Each ring ending exactly at the end of RAM is fine; one element further is not.
    EXPECT_TRUE(with(ram - 16 * n, good.driver, good.device));
    EXPECT_TRUE(fails_with(with(ram - 16 * n + 16, good.driver, good.device), "not in guest RAM"));
    // avail: flags, idx, ring[n], used_event; used: flags, idx, ring[n], avail_event.
    const std::uint64_t avail_len = 6 + 2 * n, used_len = 6 + 8 * n;
    EXPECT_TRUE(with(good.desc, (ram - avail_len) & ~1ull, good.device));
    EXPECT_TRUE(fails_with(with(good.desc, ram - avail_len + 2, good.device), "not in guest RAM"));
    EXPECT_TRUE(with(good.desc, good.driver, (ram - used_len) & ~3ull));
    EXPECT_TRUE(fails_with(with(good.desc, good.driver, ((ram - used_len) & ~3ull) + 4),
                           "not in guest RAM"));
    // Addresses whose end wraps around the address space.
    const std::uint64_t top = ~0ull;
    EXPECT_TRUE(fails_with(with(top & ~15ull, good.driver, good.device), "not in guest RAM"));
    EXPECT_TRUE(fails_with(with(good.desc, top & ~1ull, good.device), "not in guest RAM"));
    EXPECT_TRUE(fails_with(with(good.desc, good.driver, top & ~3ull), "not in guest RAM"));
    EXPECT_TRUE(fails_with(with(ram, good.driver, good.device), "not in guest RAM"));
}

// --- popping chains ---

TEST(SplitQueuePop, EmptyRingHasNothing) {
    GuestRing ring(8);
    auto q = ring.queue().value();
    EXPECT_FALSE(q.has_available().value());
    auto r = q.pop();
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->has_value());
    EXPECT_EQ(q.last_avail(), 0);
}

TEST(SplitQueuePop, CopiesAChainOfReadableThenWritableBuffers) {
    GuestRing ring(8);
    const std::uint64_t a = ring.alloc(16), b = ring.alloc(100), c = ring.alloc(7);
    ring.desc(5, a, 16, kDescNext, 2);
    ring.desc(2, b, 100, kDescNext, 7);
    ring.desc(7, c, 7, kDescWrite);
    ring.make_available(5);
    auto q = ring.queue().value();
    EXPECT_TRUE(q.has_available().value());
    const Chain chain = pop_one(q);
    EXPECT_EQ(chain.head, 5);
    ASSERT_EQ(chain.readable.size(), 2u);
    ASSERT_EQ(chain.writable.size(), 1u);
    EXPECT_EQ(chain.readable[0].addr, a);
    EXPECT_EQ(chain.readable[0].len, 16u);
    EXPECT_EQ(chain.readable[1].addr, b);
    EXPECT_EQ(chain.readable[1].len, 100u);
    EXPECT_EQ(chain.writable[0].addr, c);
    EXPECT_EQ(chain.readable_bytes(), 116u);
    EXPECT_EQ(chain.writable_bytes(), 7u);
    EXPECT_EQ(q.last_avail(), 1);
    EXPECT_FALSE(q.has_available().value());
}

TEST(SplitQueuePop, RefusesAHeadOutsideTheTable) {
    for (std::uint16_t head : {8, 9, 0xffff}) {
        GuestRing ring(8);
        ring.make_available(head);
        auto q = ring.queue().value();
        EXPECT_TRUE(fails_with(q.pop(), "outside a table")) << "head " << head;
    }
}

TEST(SplitQueuePop, RefusesANextIndexOutsideTheTable) {
    GuestRing ring(8);
    ring.desc(0, ring.alloc(8), 8, kDescNext, 8);
    ring.make_available(0);
    auto q = ring.queue().value();
    EXPECT_TRUE(fails_with(q.pop(), "outside a table"));
}

TEST(SplitQueuePop, RefusesBuffersOutsideRamAndLengthsThatWrap) {
    const std::uint64_t ram = 1 << 20;
    struct Case {
        std::uint64_t addr;
        std::uint32_t len;
        const char* what;
    };
    const Case cases[] = {
        {ram, 1, "starts at the end of RAM"},
        {ram - 8, 9, "runs one byte past the end"},
        {0x20000, 0xffff'ffff, "longer than RAM"},
        {~0ull - 0xf, 0x20, "addr + len wraps past 2^64"},
        {~0ull, 1, "last byte of the address space"},
        {1ull << 63, 0x1000, "far above RAM"},
    };
    for (const Case& c : cases) {
        for (std::uint16_t flags : {std::uint16_t{0}, kDescWrite}) {
            GuestRing ring(8, ram);
            ring.desc(0, ring.alloc(16), 16, kDescNext, 1);
            ring.desc(1, c.addr, c.len, flags);
            ring.make_available(0);
            auto q = ring.queue().value();
            EXPECT_TRUE(fails_with(q.pop(), "outside guest RAM")) << c.what;
        }
    }
    // The last byte of RAM itself is a fine buffer.
    GuestRing ring(8, ram);
    ring.desc(0, ram - 1, 1, kDescWrite);
    ring.make_available(0);
    auto q = ring.queue().value();
    EXPECT_EQ(pop_one(q).writable_bytes(), 1u);
}

TEST(SplitQueuePop, DescriptorLoopsEndWithAnError) {
    GuestRing self(256);
    self.desc(3, self.alloc(8), 8, kDescNext, 3);
    self.make_available(3);
    auto q1 = self.queue().value();
    EXPECT_TRUE(fails_with(q1.pop(), "longer than the queue"));

    GuestRing cycle(256);
    const std::uint64_t buf = cycle.alloc(8);
    cycle.desc(0, buf, 8, kDescNext, 1);
    cycle.desc(1, buf, 8, kDescNext, 2);
    cycle.desc(2, buf, 8, kDescNext | kDescWrite, 1);  // back into the chain
    cycle.make_available(0);
    auto q2 = cycle.queue().value();
    EXPECT_FALSE(q2.pop());
}

TEST(SplitQueuePop, AChainMayUseEveryDescriptorOnce) {
    GuestRing ring(64);
    const std::uint64_t buf = ring.alloc(64);
    for (std::uint16_t i = 0; i < 64; ++i)  // a chain visiting 63, 62, ..., 0
        ring.desc(i, buf + i, 1, i == 0 ? 0 : kDescNext, static_cast<std::uint16_t>(i - 1));
    ring.make_available(63);
    auto q = ring.queue().value();
    const Chain chain = pop_one(q);
    ASSERT_EQ(chain.readable.size(), 64u);
    EXPECT_EQ(chain.readable.front().addr, buf + 63);
    EXPECT_EQ(chain.readable.back().addr, buf);
}

TEST(SplitQueuePop, RefusesAReadableBufferAfterAWritableOne) {
    GuestRing ring(8);
    ring.desc(0, ring.alloc(8), 8, kDescWrite | kDescNext, 1);
    ring.desc(1, ring.alloc(8), 8, 0);
    ring.make_available(0);
    auto q = ring.queue().value();
    EXPECT_TRUE(fails_with(q.pop(), "follows a writable"));
}

TEST(SplitQueuePop, RefusesAnAvailIndexThatJumpsPastTheQueueSize) {
    GuestRing ring(8);
    ring.desc(0, ring.alloc(8), 8);
    for (std::uint16_t i = 0; i < 8; ++i)
        ring.set_avail_slot(i, 0);
    ring.set_avail_idx(9);
    auto q = ring.queue().value();
    EXPECT_TRUE(fails_with(q.pop(), "avail index moved by 9"));

    ring.set_avail_idx(0xffff);  // "backwards" is the same as far forwards
    auto q2 = ring.queue().value();
    EXPECT_TRUE(fails_with(q2.pop(), "avail index moved"));

    ring.set_avail_idx(8);  // a full ring is fine
    auto q3 = ring.queue().value();
    for (int i = 0; i < 8; ++i)
        EXPECT_EQ(pop_one(q3).head, 0);
    EXPECT_FALSE(q3.pop().value());
}

// --- indirect descriptor tables (VIRTIO_F_INDIRECT_DESC) ---

TEST(SplitQueueIndirect, FollowsAValidTable) {
    GuestRing ring(8);
    const std::uint64_t table = ring.alloc(16 * 4);
    const std::uint64_t hdr = ring.alloc(16), data = ring.alloc(512), status = ring.alloc(1);
    ring.put_desc(table, 0, hdr, 16, kDescNext, 2);
    ring.put_desc(table, 2, data, 512, kDescNext | kDescWrite, 3);
    ring.put_desc(table, 3, status, 1, kDescWrite);
    ring.desc(4, table, 16 * 4, kDescIndirect);
    ring.make_available(4);
    auto q = ring.queue().value();
    const Chain chain = pop_one(q);
    EXPECT_EQ(chain.head, 4);
    ASSERT_EQ(chain.readable.size(), 1u);
    ASSERT_EQ(chain.writable.size(), 2u);
    EXPECT_EQ(chain.readable[0].addr, hdr);
    EXPECT_EQ(chain.writable[0].addr, data);
    EXPECT_EQ(chain.writable[1].addr, status);
}

TEST(SplitQueueIndirect, DirectBuffersMayPrecedeTheTable) {
    GuestRing ring(8);
    const std::uint64_t table = ring.alloc(32), a = ring.alloc(8), b = ring.alloc(8);
    ring.put_desc(table, 0, b, 8, kDescWrite);
    ring.desc(0, a, 8, kDescNext, 1);
    ring.desc(1, table, 16, kDescIndirect);
    ring.make_available(0);
    auto q = ring.queue().value();
    const Chain chain = pop_one(q);
    ASSERT_EQ(chain.readable.size(), 1u);
    ASSERT_EQ(chain.writable.size(), 1u);
    EXPECT_EQ(chain.writable[0].addr, b);
}

// Offers one chain whose head descriptor refers to an indirect table and pops it.
Result<std::optional<Chain>> pop_indirect(GuestRing& ring, std::uint64_t table, std::uint32_t len,
                                          std::uint16_t extra_flags = 0, std::uint16_t next = 0) {
    ring.desc(0, table, len, kDescIndirect | extra_flags, next);
    ring.desc(1, ring.alloc(8), 8, kDescWrite);
    ring.make_available(0);
    auto q = ring.queue().value();
    return q.pop();
}

TEST(SplitQueueIndirect, RefusesTablesOfBadLength) {
    for (std::uint32_t len : {0u, 1u, 8u, 15u, 17u, 24u, 40u}) {
        GuestRing ring(8);
        const std::uint64_t table = ring.alloc(64);
        for (std::uint32_t i = 0; i < 4; ++i)
            ring.put_desc(table, i, ring.alloc(8), 8);
        EXPECT_TRUE(fails_with(pop_indirect(ring, table, len), "not a multiple of 16"))
            << "length " << len;
    }
}

TEST(SplitQueueIndirect, RefusesTablesOutsideRam) {
    const std::uint64_t ram = 1 << 20;
    struct Case {
        std::uint64_t addr;
        std::uint32_t len;
    };
    for (const Case c : {Case{ram, 16}, Case{ram - 16, 32}, Case{~0ull & ~15ull, 32},
                         Case{ram - 0x40000, 16 * kMaxQueueSize}}) {
        GuestRing ring(8, ram);
        EXPECT_TRUE(fails_with(pop_indirect(ring, c.addr, c.len), "outside guest RAM"))
            << std::hex << c.addr << "+" << c.len;
    }
    GuestRing huge(8, ram);  // a table longer than any queue, even if it were in RAM
    EXPECT_TRUE(fails_with(pop_indirect(huge, 0, 16 * (kMaxQueueSize + 1)), "too long"));
}

TEST(SplitQueueIndirect, RefusesNestedTables) {
    GuestRing ring(8);
    const std::uint64_t inner = ring.alloc(16), outer = ring.alloc(32);
    ring.put_desc(inner, 0, ring.alloc(8), 8);
    ring.put_desc(outer, 0, ring.alloc(8), 8, kDescNext, 1);
    ring.put_desc(outer, 1, inner, 16, kDescIndirect);
    EXPECT_TRUE(fails_with(pop_indirect(ring, outer, 32), "another indirect table"));
}

TEST(SplitQueueIndirect, RefusesIndirectTogetherWithNext) {
    GuestRing ring(8);
    const std::uint64_t table = ring.alloc(16);
    ring.put_desc(table, 0, ring.alloc(8), 8);
    EXPECT_TRUE(fails_with(pop_indirect(ring, table, 16, kDescNext, 1), "indirect and chained"));
}

TEST(SplitQueueIndirect, RefusesANextIndexOutsideTheTable) {
    GuestRing ring(8);
    const std::uint64_t table = ring.alloc(32);
    // Entry 2 would be in RAM (and in the ring's own table range) but not in this table.
    ring.put_desc(table, 0, ring.alloc(8), 8, kDescNext, 1);
    ring.put_desc(table, 1, ring.alloc(8), 8, kDescNext, 2);
    ring.put_desc(table, 2, ring.alloc(8), 8);
    EXPECT_TRUE(fails_with(pop_indirect(ring, table, 32), "outside a table of 2"));
}

TEST(SplitQueueIndirect, LoopsInsideATableEndWithAnError) {
    GuestRing ring(256);
    const std::uint64_t table = ring.alloc(48), buf = ring.alloc(8);
    ring.put_desc(table, 0, buf, 8, kDescNext, 1);
    ring.put_desc(table, 1, buf, 8, kDescNext, 2);
    ring.put_desc(table, 2, buf, 8, kDescNext, 0);
    EXPECT_TRUE(fails_with(pop_indirect(ring, table, 48), "longer than the queue"));
}

TEST(SplitQueueIndirect, RefusesAChainLongerThanTheQueue) {
    GuestRing ring(8);
    const std::uint32_t n = 9;
    const std::uint64_t table = ring.alloc(16 * n), buf = ring.alloc(n);
    for (std::uint32_t i = 0; i < n; ++i)
        ring.put_desc(table, i, buf + i, 1, i + 1 < n ? kDescNext : 0,
                      static_cast<std::uint16_t>(i + 1));
    EXPECT_TRUE(fails_with(pop_indirect(ring, table, 16 * n), "longer than the queue"));
}

// Linux puts a whole request in one indirect table whenever it can. A virtio-blk request
// with seg_max data segments plus its header and status is queue-size descriptors long,
// which the spec allows ("no longer than the Queue Size"): the descriptor that points to
// the table is not a buffer of the chain.
TEST(SplitQueueIndirect, ATableMayHoldAsManyDescriptorsAsTheQueue) {
    for (std::uint16_t size : {std::uint16_t{8}, std::uint16_t{256}}) {
        GuestRing ring(size);
        const std::uint64_t table = ring.alloc(16ull * size), buf = ring.alloc(size);
        for (std::uint32_t i = 0; i < size; ++i)
            ring.put_desc(table, i, buf + i, 1, i + 1 < size ? kDescNext : 0,
                          static_cast<std::uint16_t>(i + 1));
        ring.desc(0, table, 16u * size, kDescIndirect);
        ring.make_available(0);
        auto q = ring.queue().value();
        auto r = q.pop();
        ASSERT_TRUE(r) << "size " << size << ": " << r.error().message;
        ASSERT_TRUE(r->has_value());
        EXPECT_EQ((*r)->readable.size(), size);
    }
}

// --- copy semantics: what was validated is what is used ---

TEST(SplitQueuePop, TheGuestRewritingDescriptorsAfterPopChangesNothing) {
    GuestRing ring(8);
    const std::uint64_t table = ring.alloc(32), a = ring.alloc(16), b = ring.alloc(16),
                        c = ring.alloc(16);
    ring.desc(0, a, 16, kDescNext, 1);
    ring.desc(1, table, 32, kDescIndirect);
    ring.put_desc(table, 0, b, 16, kDescNext, 1);
    ring.put_desc(table, 1, c, 16, kDescWrite);
    ring.make_available(0);
    auto q = ring.queue().value();
    const Chain chain = pop_one(q);
    // The guest now points everything outside RAM, makes it huge and loops it.
    const std::uint64_t evil = 1ull << 40;
    ring.desc(0, evil, 0xffff'ffff, kDescNext, 0);
    ring.desc(1, evil, 0xffff'ffff, kDescWrite);
    ring.put_desc(table, 0, evil, 0xffff'ffff, kDescNext, 0);
    ring.put_desc(table, 1, evil, 0xffff'ffff, kDescWrite);
    ASSERT_EQ(chain.readable.size(), 2u);
    ASSERT_EQ(chain.writable.size(), 1u);
    EXPECT_EQ(chain.readable[0].addr, a);
    EXPECT_EQ(chain.readable[1].addr, b);
    EXPECT_EQ(chain.writable[0].addr, c);
    EXPECT_EQ(chain.readable_bytes(), 32u);
    EXPECT_EQ(chain.writable_bytes(), 16u);
    // Reading and writing through the chain still hits only the validated buffers.
    std::vector<std::uint8_t> in(32);
    ChainReader reader(ring.mem(), chain.readable);
    EXPECT_TRUE(reader.read(in));
    ChainWriter writer(ring.mem(), chain.writable);
    const std::vector<std::uint8_t> out(16, 0x5a);
    EXPECT_TRUE(writer.write(out));
    EXPECT_EQ(ring.mem().read_obj<std::uint8_t>(c + 15).value(), 0x5a);
}

// --- the used ring and notifications ---

TEST(SplitQueueUsed, PushUsedFillsTheUsedRingInOrder) {
    GuestRing ring(4);
    auto q = ring.queue().value();
    const std::uint16_t heads[] = {3, 0, 2, 1, 3};
    for (std::uint32_t i = 0; i < 5; ++i) {
        ASSERT_TRUE(q.push_used(heads[i], 100 + i));
        EXPECT_EQ(ring.used_idx(), i + 1);
        const auto e = ring.used_elem(static_cast<std::uint16_t>(i));
        EXPECT_EQ(e.id, heads[i]);
        EXPECT_EQ(e.len, 100 + i);
    }
    EXPECT_EQ(ring.used_elem(4).id, 3u) << "slot 4 of a 4-entry ring is slot 0 again";
}

TEST(SplitQueueUsed, IndicesWrapAt65536) {
    GuestRing ring(4);
    const std::uint64_t buf = ring.alloc(4);
    for (std::uint16_t i = 0; i < 4; ++i)
        ring.desc(i, buf + i, 1, kDescWrite);
    auto q = ring.queue(true).value();
    const std::uint32_t total = 65536 * 2 + 7;
    for (std::uint32_t n = 0; n < total; ++n) {
        const auto head = static_cast<std::uint16_t>((n * 3) % 4);
        ring.make_available(head);
        auto r = q.pop();
        ASSERT_TRUE(r) << "request " << n << ": " << r.error().message;
        ASSERT_TRUE(r->has_value()) << "request " << n;
        ASSERT_EQ((*r)->head, head);
        ASSERT_EQ(q.last_avail(), static_cast<std::uint16_t>(n + 1));
        ASSERT_FALSE(q.pop().value().has_value());  // drained: asks for the next kick
        ASSERT_EQ(ring.avail_event(), static_cast<std::uint16_t>(n + 1));
        ASSERT_TRUE(q.push_used(head, n));
        ASSERT_EQ(ring.used_idx(), static_cast<std::uint16_t>(n + 1));
        ASSERT_EQ(ring.used_elem(static_cast<std::uint16_t>(n)).len, n);
    }
    EXPECT_EQ(q.next_used(), static_cast<std::uint16_t>(total));
}

TEST(SplitQueueUsed, AFullRingAcrossTheWrapIsNotAJump) {
    GuestRing ring(8);
    const std::uint64_t buf = ring.alloc(8);
    for (std::uint16_t i = 0; i < 8; ++i)
        ring.desc(i, buf + i, 1);
    auto q = ring.queue().value();
    // Bring last_avail to 65533, then offer 8 at once so avail idx wraps to 5.
    for (std::uint32_t n = 0; n < 65533; ++n) {
        ring.make_available(0);
        ASSERT_TRUE(q.pop().value().has_value());
    }
    for (std::uint16_t i = 0; i < 8; ++i)
        ring.make_available(i);
    for (std::uint16_t i = 0; i < 8; ++i) {
        auto c = q.pop();
        ASSERT_TRUE(c) << c.error().message;
        ASSERT_TRUE(c->has_value());
        EXPECT_EQ((*c)->head, i);
    }
    EXPECT_EQ(q.last_avail(), 5);
    EXPECT_FALSE(q.pop().value().has_value());
}

TEST(SplitQueueNotify, WithoutEventIdxTheNoInterruptFlagDecides) {
    GuestRing ring(8);
    auto q = ring.queue(false).value();
    ASSERT_TRUE(q.push_used(0, 0));
    EXPECT_TRUE(q.should_notify().value());
    ring.set_avail_flags(kAvailNoInterrupt);
    ASSERT_TRUE(q.push_used(0, 0));
    EXPECT_FALSE(q.should_notify().value());
    ring.set_avail_flags(0xfffe);  // every other bit is not NO_INTERRUPT
    EXPECT_TRUE(q.should_notify().value());
}

// vring_need_event() of the spec (2.7.7.2): interrupt when the used index has passed
// used_event since the last interrupt, all in 16-bit arithmetic.
bool spec_need_event(std::uint16_t event, std::uint16_t now, std::uint16_t old) {
    return static_cast<std::uint16_t>(now - event - 1) < static_cast<std::uint16_t>(now - old);
}

TEST(SplitQueueNotify, WithEventIdxTheDriversUsedEventDecides) {
    GuestRing ring(8);
    auto q = ring.queue(true).value();
    ring.set_avail_flags(kAvailNoInterrupt);  // must be ignored with EVENT_IDX
    ring.set_used_event(2);                   // "interrupt me once entry 2 is used"
    ASSERT_TRUE(q.push_used(0, 0));
    (void)q.should_notify();         // the first check after start may notify spuriously
    ASSERT_TRUE(q.push_used(0, 0));  // used idx 2: entry 1 used, 2 not yet
    EXPECT_FALSE(q.should_notify().value());
    ASSERT_TRUE(q.push_used(0, 0));  // used idx 3: entry 2 used
    EXPECT_TRUE(q.should_notify().value());
    ASSERT_TRUE(q.push_used(0, 0));  // past the event already signalled
    EXPECT_FALSE(q.should_notify().value());
    EXPECT_FALSE(q.should_notify().value()) << "nothing new was used";
    ring.set_used_event(4);  // the driver re-arms: "after the next one" (used idx is 4)
    ASSERT_TRUE(q.push_used(0, 0));
    EXPECT_TRUE(q.should_notify().value());
    ring.set_used_event(10);  // several at once, crossing the event
    for (int i = 0; i < 4; ++i)
        ASSERT_TRUE(q.push_used(0, 0));  // used idx 5 -> 9
    EXPECT_FALSE(q.should_notify().value());
    for (int i = 0; i < 3; ++i)
        ASSERT_TRUE(q.push_used(0, 0));  // 9 -> 12 passes entry 10
    EXPECT_TRUE(q.should_notify().value());
}

TEST(SplitQueueNotify, EventIdxFollowsTheSpecFormulaAcrossWraparound) {
    GuestRing ring(16);
    auto q = ring.queue(true).value();
    std::mt19937 rng(6);
    ASSERT_TRUE(q.push_used(0, 0));
    (void)q.should_notify();
    std::uint16_t signalled = q.next_used();
    int notified = 0, quiet = 0, pushed = 0;
    for (int round = 0; round < 40000; ++round) {
        const int pushes = static_cast<int>(rng() % 6);
        for (int i = 0; i < pushes; ++i)
            ASSERT_TRUE(q.push_used(0, 0));
        pushed += pushes;
        const std::uint16_t now = q.next_used();
        // The driver's used_event, somewhere around the current index (both sides).
        const auto event = static_cast<std::uint16_t>(now + static_cast<int>(rng() % 16) - 10);
        ring.set_used_event(event);
        const bool want = spec_need_event(event, now, signalled);
        ASSERT_EQ(q.should_notify().value(), want)
            << "event " << event << " now " << now << " old " << signalled;
        signalled = now;
        (want ? notified : quiet)++;
    }
    EXPECT_GT(notified, 1000);
    EXPECT_GT(quiet, 1000);
    EXPECT_GT(pushed, 65536) << "the used index wrapped at least once";
}

TEST(SplitQueueNotify, PopAsksForTheNextKickWithEventIdxOnceDrained) {
    GuestRing ring(8);
    ring.desc(0, ring.alloc(8), 8);
    ASSERT_TRUE(ring.mem().write_obj<std::uint16_t>(ring.used_ring() + 4 + 8 * 8, 0));
    for (int i = 0; i < 3; ++i)
        ring.make_available(0);
    auto q = ring.queue(true).value();
    // While chains are being served, the driver is not asked to kick for each new one.
    (void)pop_one(q);
    (void)pop_one(q);
    EXPECT_EQ(ring.avail_event(), 0);
    ring.make_available(0);  // added meanwhile: no kick asked for, and none needed
    (void)pop_one(q);
    (void)pop_one(q);
    EXPECT_EQ(ring.avail_event(), 0);
    // Drained: the next chain must kick.
    EXPECT_FALSE(q.pop().value().has_value());
    EXPECT_EQ(ring.avail_event(), 4);
    ring.make_available(0);
    EXPECT_TRUE(q.has_available().value());
    (void)pop_one(q);
    EXPECT_FALSE(q.has_available().value());  // has_available() asks as well
    EXPECT_EQ(ring.avail_event(), 5);

    GuestRing plain(8);  // without EVENT_IDX the field is not touched
    plain.desc(0, plain.alloc(8), 8);
    plain.make_available(0);
    ASSERT_TRUE(plain.mem().write_obj<std::uint16_t>(plain.used_ring() + 4 + 8 * 8, 0x7777));
    auto q2 = plain.queue(false).value();
    (void)pop_one(q2);
    EXPECT_EQ(plain.avail_event(), 0x7777);
}

// --- serving in turns (QueueDevice's budget) ---

TEST(SplitQueueTurn, PopHandsOutAtMostTheTurnsChains) {
    GuestRing ring(8);
    ring.desc(0, ring.alloc(8), 8);
    ASSERT_TRUE(ring.mem().write_obj<std::uint16_t>(ring.used_ring() + 4 + 8 * 8, 0));
    for (int i = 0; i < 8; ++i)
        ring.make_available(0);
    auto q = ring.queue(true).value();
    q.begin_turn(3);
    for (int i = 0; i < 3; ++i)
        (void)pop_one(q);
    EXPECT_FALSE(q.turn_cut_short());
    EXPECT_FALSE(q.pop().value().has_value()) << "the turn is spent";
    EXPECT_TRUE(q.turn_cut_short()) << "with chains left";
    EXPECT_EQ(ring.avail_event(), 0) << "no kick asked for: the device comes back by itself";
    EXPECT_EQ(q.last_avail(), 3);
    // A new turn; the ring runs dry before its budget does.
    q.begin_turn(10);
    EXPECT_FALSE(q.turn_cut_short());
    for (int i = 0; i < 5; ++i)
        (void)pop_one(q);
    EXPECT_FALSE(q.pop().value().has_value());
    EXPECT_FALSE(q.turn_cut_short()) << "drained, not cut short";
    EXPECT_EQ(ring.avail_event(), 8) << "drained: the next chain must kick";
    // end_turn spends what is left.
    ring.make_available(0);
    q.begin_turn(10);
    q.end_turn();
    EXPECT_FALSE(q.pop().value().has_value());
    EXPECT_TRUE(q.turn_cut_short());
    // Outside turns (a queue never given one) pop has no limit.
    GuestRing plain(256);
    plain.desc(0, plain.alloc(8), 8);
    for (int i = 0; i < 256; ++i)
        plain.make_available(0);
    auto q2 = plain.queue().value();
    for (int i = 0; i < 256; ++i)
        (void)pop_one(q2);
    EXPECT_FALSE(q2.turn_cut_short());
}

// --- reading and writing across a chain's buffers ---

TEST(ChainReaderWriter, StreamAcrossDescriptorsAndStopAtTheEnd) {
    auto mem = GuestMemory::create_unregistered(0x10000).value();
    for (std::uint32_t i = 0; i < 64; ++i)
        ASSERT_TRUE(mem.write_obj<std::uint8_t>(0x1000 + i, static_cast<std::uint8_t>(i)));
    // 0x1000..0x1003, an empty buffer, 0x1010..0x101b.
    const std::vector<Descriptor> d = {{0x1000, 4}, {0x5000, 0}, {0x1010, 12}};
    ChainReader r(mem, d);
    EXPECT_EQ(r.remaining(), 16u);
    std::uint8_t buf[6];
    ASSERT_TRUE(r.read(buf));
    EXPECT_EQ(buf[3], 3);
    EXPECT_EQ(buf[4], 0x10);
    EXPECT_EQ(buf[5], 0x11);
    EXPECT_EQ(r.remaining(), 10u);
    auto spans = r.spans(4).value();
    ASSERT_EQ(spans.size(), 1u);
    EXPECT_EQ(spans[0].size(), 4u);
    EXPECT_EQ(spans[0][0], 0x12);
    std::uint8_t rest[7];
    EXPECT_FALSE(r.read(rest)) << "only 6 bytes are left";

    ChainWriter w(mem, d);
    EXPECT_EQ(w.remaining(), 16u);
    const std::uint8_t five[5] = {0xa0, 0xa1, 0xa2, 0xa3, 0xa4};
    ASSERT_TRUE(w.write(five));
    EXPECT_EQ(w.written(), 5u);
    EXPECT_EQ(mem.read_obj<std::uint8_t>(0x1003).value(), 0xa3);
    EXPECT_EQ(mem.read_obj<std::uint8_t>(0x1010).value(), 0xa4);
    auto ws = w.spans(100).value();
    ASSERT_EQ(ws.size(), 1u);
    EXPECT_EQ(ws[0].size(), 11u);
    w.advance(11);
    EXPECT_EQ(w.remaining(), 0u);
    EXPECT_FALSE(w.write(five)) << "the buffers are full";
}

// ---- snapshots ----

// A queue saved with chains taken and chains still waiting goes on, in a fresh queue on the
// same ring, from the next chain it had not taken.
TEST(SplitQueueResume, AFreshQueueGoesOnFromTheSavedPosition) {
    GuestRing ring(8);
    for (std::uint16_t i = 0; i < 5; ++i) {
        ring.desc(i, ring.alloc(4), 4, kDescWrite);
        ring.make_available(i);
    }
    auto q = ring.queue().value();
    for (int i = 0; i < 3; ++i) {
        auto c = q.pop().value();
        ASSERT_TRUE(c);
        ASSERT_TRUE(q.push_used(c->head, 4));
    }
    const QueuePosition p = q.position();
    EXPECT_EQ(p.next_avail, 3);
    EXPECT_EQ(p.next_used, 3);
    auto fresh = ring.queue().value();
    ASSERT_TRUE(fresh.resume_at(p));
    auto c = fresh.pop().value();
    ASSERT_TRUE(c);
    EXPECT_EQ(c->head, 3) << "the first chain the saved queue had not taken";
    ASSERT_TRUE(fresh.push_used(c->head, 4));
    EXPECT_EQ(ring.used_idx(), 4);
    EXPECT_EQ(ring.used_elem(3).id, 3u);
}

// Positions the ring cannot have: refused, the queue untouched.
TEST(SplitQueueResume, APositionTheRingCannotHaveIsRefused) {
    GuestRing ring(8);
    ring.set_avail_idx(5);
    auto q = ring.queue().value();
    EXPECT_FALSE(q.resume_at({3, 2})) << "used index in memory is 0, not 2";
    EXPECT_FALSE(q.resume_at({3, 0})) << "3 taken and never used: not saved quiescent";
    ASSERT_TRUE(ring.mem().write_obj<std::uint16_t>(ring.used_ring() + 2, 0xfffc));
    EXPECT_FALSE(q.resume_at({0xfffc, 0xfffc})) << "9 chains waiting, in an 8-entry queue";
    EXPECT_EQ(q.position().next_avail, 0);
    ASSERT_TRUE(ring.mem().write_obj<std::uint16_t>(ring.used_ring() + 2, 2));
    EXPECT_TRUE(q.resume_at({2, 2}));
    EXPECT_EQ(q.position().next_avail, 2);
}

}  // namespace
}  // namespace stockade::virtio
