// MSI-X emulation: the vector table and PBA as the guest reads and writes them, and what
// reaches KVM: a vector is routed and its eventfd attached only while MSI-X is enabled,
// the function is unmasked and the vector is unmasked.
#include <gtest/gtest.h>

#include <sys/eventfd.h>

#include <cstring>
#include <vector>

#include "runner/pci/msix.hpp"
#include "tests/unit/runner/virtio_test_support.hpp"

namespace stockade::pci {
namespace {

using virtio::fake::drain_eventfd;
using virtio::fake::FakeRouter;

std::uint32_t read32(const Msix& m, std::uint64_t off) {
    std::uint32_t v = 0;
    m.table_read(off, std::span(reinterpret_cast<std::uint8_t*>(&v), 4));
    return v;
}
std::uint64_t read64(const Msix& m, std::uint64_t off) {
    std::uint64_t v = 0;
    m.table_read(off, std::span(reinterpret_cast<std::uint8_t*>(&v), 8));
    return v;
}
void write32(Msix& m, std::uint64_t off, std::uint32_t v) {
    m.table_write(off, std::span(reinterpret_cast<const std::uint8_t*>(&v), 4));
}
void write64(Msix& m, std::uint64_t off, std::uint64_t v) {
    m.table_write(off, std::span(reinterpret_cast<const std::uint8_t*>(&v), 8));
}

// Programs vector `v` as a driver does: address, data, then unmask.
void program(Msix& m, std::uint16_t v, std::uint64_t address, std::uint32_t data) {
    write64(m, 16ull * v, address);
    write32(m, 16ull * v + 8, data);
    write32(m, 16ull * v + 12, 0);
}

constexpr std::uint64_t kApicAddress = 0xfee0'0000;

TEST(Msix, CreateRefusesVectorCountsOutsideTheSpec) {
    FakeRouter router;
    EXPECT_FALSE(Msix::create(router, 0));
    EXPECT_FALSE(Msix::create(router, 2049));
    auto m = Msix::create(router, 3);
    ASSERT_TRUE(m) << m.error().message;
    EXPECT_EQ(m->vector_count(), 3);
    // One GSI per vector, each a distinct eventfd.
    EXPECT_NE(m->event_fd(0), m->event_fd(1));
    EXPECT_GE(m->event_fd(2), 0);
}

TEST(Msix, CapabilityDescribesTableAndPba) {
    FakeRouter router;
    auto m = Msix::create(router, 5).value();
    const auto body = m.capability(2, 0x4000, 3, 0x5000);
    ASSERT_EQ(body.size(), 10u);
    std::uint16_t ctl;
    std::uint32_t table, pba;
    std::memcpy(&ctl, body.data(), 2);
    std::memcpy(&table, body.data() + 2, 4);
    std::memcpy(&pba, body.data() + 6, 4);
    EXPECT_EQ(ctl & 0x7ff, 4) << "table size is encoded as N-1";
    EXPECT_EQ(ctl & 0xc000, 0) << "starts disabled and unmasked";
    EXPECT_EQ(table & 7, 2u);
    EXPECT_EQ(table & ~7u, 0x4000u);
    EXPECT_EQ(pba & 7, 3u) << "the PBA may live in another BAR";
    EXPECT_EQ(pba & ~7u, 0x5000u);
}

TEST(Msix, VectorsStartMasked) {
    FakeRouter router;
    auto m = Msix::create(router, 4).value();
    for (std::uint16_t v = 0; v < 4; ++v) {
        EXPECT_EQ(read64(m, 16ull * v), 0u);
        EXPECT_EQ(read32(m, 16ull * v + 12), kMsixVectorMasked);
    }
}

TEST(Msix, TableTakesAlignedDwordAndQwordAccesses) {
    FakeRouter router;
    auto m = Msix::create(router, 2).value();
    write32(m, 16, 0xfee0'1000);
    write32(m, 20, 0x1);
    write32(m, 24, 0x4041);
    EXPECT_EQ(read64(m, 16), 0x1'fee0'1000u);
    EXPECT_EQ(read32(m, 20), 1u);
    EXPECT_EQ(read32(m, 24), 0x4041u);
    write64(m, 16, 0x2'0000'3000);
    EXPECT_EQ(read32(m, 16), 0x3000u);
    EXPECT_EQ(read32(m, 20), 2u);
    write64(m, 24, 0x0000'0000'0000'5050);  // data and vector control at once: unmasks
    EXPECT_EQ(read32(m, 24), 0x5050u);
    EXPECT_EQ(read32(m, 28), 0u);
    EXPECT_EQ(read64(m, 24), 0x5050u);
    // Only the mask bit of vector control exists.
    write32(m, 28, 0xffff'ffff);
    EXPECT_EQ(read32(m, 28), kMsixVectorMasked);
    EXPECT_EQ(m.entries()[1].control, kMsixVectorMasked);
    // Vector 0 was never touched.
    EXPECT_EQ(read64(m, 0), 0u);
}

TEST(Msix, MisalignedAndOddSizedTableWritesAreDropped) {
    FakeRouter router;
    auto m = Msix::create(router, 2).value();
    program(m, 0, kApicAddress, 0x30);
    const MsixEntry before = m.entries()[0];
    const std::uint8_t bytes[8] = {0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x11, 0x22};
    m.table_write(2, std::span(bytes, 4));   // dword not dword-aligned
    m.table_write(4, std::span(bytes, 8));   // qword not qword-aligned
    m.table_write(12, std::span(bytes, 8));  // qword running into the next entry
    m.table_write(8, std::span(bytes, 2));   // word
    m.table_write(12, std::span(bytes, 1));  // byte: would unmask or mask
    m.table_write(0, std::span(bytes, 3));
    const MsixEntry after = m.entries()[0];
    EXPECT_EQ(after.address, before.address);
    EXPECT_EQ(after.data, before.data);
    EXPECT_EQ(after.control, before.control);
    EXPECT_EQ(m.entries()[1].address, 0u);
    // Reads that straddle an entry read as zero rather than mixing entries.
    EXPECT_EQ(read64(m, 12), 0u);
}

TEST(Msix, OutOfRangeVectorsAreHarmless) {
    FakeRouter router;
    auto m = Msix::create(router, 2).value();
    write32(m, 16 * 2, 0x1234);  // entry 2 does not exist
    write64(m, 16 * 2047 + 8, 0);
    write32(m, ~0ull & ~3ull, 0);
    EXPECT_EQ(read32(m, 16 * 2), 0u);
    EXPECT_EQ(read32(m, ~0ull & ~3ull), 0u);
    EXPECT_EQ(m.event_fd(2), -1);
    EXPECT_EQ(m.event_fd(kNoVector), -1);
    m.notify(2);
    m.notify(kNoVector);
    EXPECT_EQ(drain_eventfd(m.event_fd(0)), 0u);
    EXPECT_EQ(drain_eventfd(m.event_fd(1)), 0u);
    EXPECT_EQ(router.attach_calls, 0);
}

TEST(Msix, DeliveryNeedsEnableAndNoMaskAtAnyLevel) {
    FakeRouter router;
    auto m = Msix::create(router, 3).value();
    program(m, 0, kApicAddress, 0x41);
    program(m, 1, kApicAddress | 0x1000, 0x42);
    EXPECT_TRUE(router.attached.empty()) << "MSI-X is not enabled yet";

    m.set_control(kMsixEnable);
    EXPECT_EQ(m.control(), kMsixEnable);
    ASSERT_EQ(router.attached.size(), 2u) << "vector 2 is still masked";
    EXPECT_EQ(router.attached_fd(0), m.event_fd(0));
    EXPECT_EQ(router.attached_fd(1), m.event_fd(1));
    EXPECT_EQ(router.routes[kvm::kFirstMsiGsi + 0].address, kApicAddress);
    EXPECT_EQ(router.routes[kvm::kFirstMsiGsi + 1].data, 0x42u);

    m.set_control(kMsixEnable | kMsixFunctionMask);
    EXPECT_TRUE(router.attached.empty()) << "function mask masks every vector";
    m.set_control(kMsixEnable);
    EXPECT_EQ(router.attached.size(), 2u);

    write32(m, 16 * 1 + 12, kMsixVectorMasked);
    EXPECT_EQ(router.attached.size(), 1u);
    EXPECT_EQ(router.attached_fd(1), -1);
    EXPECT_EQ(router.attached_fd(0), m.event_fd(0));

    // Retargeting a live vector updates its route without re-attaching.
    const int attaches = router.attach_calls;
    write32(m, 8, 0x77);
    EXPECT_EQ(router.routes[kvm::kFirstMsiGsi].data, 0x77u);
    EXPECT_EQ(router.attach_calls, attaches);

    m.set_control(0);
    EXPECT_TRUE(router.attached.empty());
    // Other bits of message control are not kept.
    m.set_control(0x7fff);
    EXPECT_EQ(m.control(), kMsixFunctionMask);
}

TEST(Msix, AVectorWithoutAnAddressIsNotDelivered) {
    FakeRouter router;
    auto m = Msix::create(router, 1).value();
    m.set_control(kMsixEnable);
    write32(m, 12, 0);  // unmasked but never programmed
    EXPECT_TRUE(router.attached.empty());
    write64(m, 0, kApicAddress);
    EXPECT_EQ(router.attached_fd(0), m.event_fd(0));
}

// While a vector is masked its interrupts wait in the eventfd (the PBA reads 0 because
// the pending state lives there); unmasking attaches the eventfd, and KVM delivers what
// it holds.
TEST(Msix, InterruptsRaisedWhileMaskedAreKeptForUnmask) {
    FakeRouter router;
    auto m = Msix::create(router, 2).value();
    program(m, 1, kApicAddress, 0x50);
    write32(m, 16 + 12, kMsixVectorMasked);
    m.set_control(kMsixEnable);
    m.notify(1);
    m.notify(1);
    std::uint64_t pba = 0xffff;
    m.pba_read(0, std::span(reinterpret_cast<std::uint8_t*>(&pba), 8));
    EXPECT_EQ(pba, 0u);
    EXPECT_EQ(router.attached_fd(1), -1);
    write32(m, 16 + 12, 0);
    ASSERT_EQ(router.attached_fd(1), m.event_fd(1));
    EXPECT_EQ(drain_eventfd(router.attached_fd(1)), 2u) << "both interrupts still pending";
    // PBA reads anywhere in its page are in range and side-effect free.
    std::uint8_t b[4] = {1, 2, 3, 4};
    m.pba_read(0xffc, b);
    EXPECT_EQ(b[0] | b[1] | b[2] | b[3], 0);
}

TEST(Msix, ResetMasksEverythingAndDropsPendingInterrupts) {
    FakeRouter router;
    auto m = Msix::create(router, 2).value();
    program(m, 0, kApicAddress, 1);
    program(m, 1, kApicAddress, 2);
    m.set_control(kMsixEnable);
    ASSERT_EQ(router.attached.size(), 2u);
    m.notify(0);
    m.reset();
    EXPECT_TRUE(router.attached.empty());
    EXPECT_EQ(m.control(), 0);
    for (const MsixEntry& e : m.entries()) {
        EXPECT_EQ(e.address, 0u);
        EXPECT_EQ(e.control, kMsixVectorMasked);
    }
    EXPECT_EQ(drain_eventfd(m.event_fd(0)), 0u);
    m.set_control(kMsixEnable);
    EXPECT_TRUE(router.attached.empty()) << "vectors stay masked after reset";
}

// ---- snapshots ----

// A function's MSI-X as a snapshot keeps it, put into a fresh function (another router):
// the same table and control, the same routes to KVM, and an interrupt raised while its
// vector was masked still waiting for the unmask.
TEST(MsixState, RestoredIntoAFreshFunctionAsItWas) {
    FakeRouter router;
    auto m = Msix::create(router, 3).value();
    program(m, 0, kApicAddress, 0x41);
    program(m, 2, kApicAddress | 0x1000, 0x43);
    write32(m, 2 * 16 + 12, kMsixVectorMasked);
    m.set_control(kMsixEnable);
    m.notify(2);  // masked: waits
    const MsixState s = m.state();
    EXPECT_EQ(s.control, kMsixEnable);
    ASSERT_EQ(s.pending.size(), 3u);
    EXPECT_FALSE(s.pending[0]);
    EXPECT_TRUE(s.pending[2]);
    EXPECT_EQ(drain_eventfd(m.event_fd(2)), 1u) << "capturing left the interrupt pending";

    FakeRouter other;
    auto r = Msix::create(other, 3).value();
    ASSERT_TRUE(r.restore(s));
    EXPECT_EQ(r.control(), kMsixEnable);
    for (std::uint64_t off = 0; off < 3 * 16; off += 4)
        EXPECT_EQ(read32(r, off), read32(m, off)) << "table offset " << off;
    EXPECT_EQ(other.attached_fd(0), r.event_fd(0));
    EXPECT_EQ(other.routes[kvm::kFirstMsiGsi].data, 0x41u);
    EXPECT_EQ(other.attached_fd(1), -1) << "never programmed: masked";
    EXPECT_EQ(other.attached_fd(2), -1) << "masked";
    write32(r, 2 * 16 + 12, 0);
    ASSERT_EQ(other.attached_fd(2), r.event_fd(2));
    EXPECT_EQ(drain_eventfd(r.event_fd(2)), 1u) << "the pending interrupt, delivered on unmask";
}

TEST(MsixState, AStateOfAnotherSizeOrWithStrayBitsIsRefusedOrMasked) {
    FakeRouter router;
    auto m = Msix::create(router, 2).value();
    MsixState s = m.state();
    s.entries.emplace_back();
    s.pending.push_back(false);
    EXPECT_FALSE(m.restore(s)) << "3 vectors into 2";
    s = m.state();
    s.pending.pop_back();
    EXPECT_FALSE(m.restore(s)) << "a pending list of another length";
    // Bits the guest cannot write do not come back through a state either.
    s = m.state();
    s.control = 0xffff;
    s.entries[0] = {kApicAddress, 7, 0xfffffffe};
    ASSERT_TRUE(m.restore(s));
    EXPECT_EQ(m.control(), kMsixEnable | kMsixFunctionMask);
    EXPECT_EQ(read32(m, 12), 0u) << "vector control keeps only the mask bit";
    EXPECT_TRUE(router.attached.empty()) << "the function mask holds every vector";
}

}  // namespace
}  // namespace stockade::pci
