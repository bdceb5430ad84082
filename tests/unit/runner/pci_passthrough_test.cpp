// A passed-through PCI function as the guest sees it, against a fake VFIO device: the
// device's identity with a filtered capability list, the command register, BAR sizes and
// moves with their direct memory slots, MSI-X trapped beside the mapped parts, and every
// refusal of a device stockade cannot offer.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "runner/pci/passthrough.hpp"
#include "tests/unit/runner/pci_test_support.hpp"
#include "tests/unit/runner/virtio_test_support.hpp"

namespace stockade::pci {
namespace {

using virtio::fake::FakeRouter;

constexpr std::uint16_t kPm = 0x01, kMsi = 0x05;

// A device's configuration space and regions, and every call the function makes on it.
class FakeIo : public PassthroughIo {
  public:
    FakeIo() {
        put16(0x00, 0x1af4);
        put16(0x02, 0x1041);
        config[0x08] = 1;                                      // revision
        config[0x09] = 0, config[0x0a] = 0, config[0x0b] = 2;  // network controller
        config[0x0e] = 0x80;                                   // multi-function bit set on the host
        put16(0x2c, 0x1af4);
        put16(0x2e, 0x1100);
        config[0x3d] = 1;  // INTA#
        put16(kOffStatus, kStatusCapList);
        config[kOffCapPtr] = 0x40;
        cap(0x40, kPm, 0x50, 8);
        cap(0x50, kCapVendor, 0x70, 16);
        config[0x52] = 16;  // the vendor capability's length
        for (std::size_t i = 0x53; i < 0x60; ++i)
            config[i] = static_cast<std::uint8_t>(i);
        cap(0x70, kCapMsix, 0x84, 12);
        put16(0x72, 2);           // 3 vectors
        put32(0x74, 0x0000 | 1);  // table: BAR 1 at 0
        put32(0x78, 0x0800 | 1);  // PBA: BAR 1 at 0x800
        cap(0x84, kMsi, 0x00, 12);
    }
    void put16(std::size_t at, std::uint16_t v) { std::memcpy(config.data() + at, &v, 2); }
    void put32(std::size_t at, std::uint32_t v) { std::memcpy(config.data() + at, &v, 4); }
    void cap(std::size_t at, std::uint8_t id, std::uint8_t next, std::size_t len) {
        config[at] = id;
        config[at + 1] = next;
        for (std::size_t i = 2; i < len; ++i)
            config[at + i] = 0xee;
    }

    Result<> read(std::uint32_t region, std::uint64_t offset,
                  std::span<std::uint8_t> out) override {
        reads.push_back({region, offset});
        if (region == kConfigRegion) {
            std::memcpy(out.data(), config.data() + offset, out.size());
            return {};
        }
        for (std::size_t i = 0; i < out.size(); ++i)
            out[i] = static_cast<std::uint8_t>(region * 16 + offset + i);
        return {};
    }
    Result<> write(std::uint32_t region, std::uint64_t offset,
                   std::span<const std::uint8_t> in) override {
        writes.push_back({region, offset});
        if (region == kConfigRegion) std::memcpy(config.data() + offset, in.data(), in.size());
        return {};
    }
    Result<> set_msix(std::span<const int> fds) override {
        msix_calls.emplace_back(fds.begin(), fds.end());
        return {};
    }
    std::uint16_t device_command() const {
        std::uint16_t v;
        std::memcpy(&v, config.data() + kOffCommand, 2);
        return v;
    }

    std::array<std::uint8_t, kConfigSize> config{};
    std::vector<std::pair<std::uint32_t, std::uint64_t>> reads, writes;
    std::vector<std::vector<int>> msix_calls;
};

class FakeSlots : public BarSlots {
  public:
    struct Slot {
        std::uint64_t guest_phys, size;
        void* host;
    };
    Result<std::uint32_t> map(std::uint64_t gpa, std::uint64_t size, void* host) override {
        slots[next] = {gpa, size, host};
        return next++;
    }
    Result<> unmap(std::uint32_t slot) override {
        if (!slots.erase(slot)) return fail("slot {} not mapped", slot);
        return {};
    }
    std::map<std::uint32_t, Slot> slots;
    std::uint32_t next = 10;
};

// BAR 1: 4 KiB with the MSI-X table and PBA; BAR 4: 16 KiB, 64-bit, mappable.
struct Device {
    FakeIo io;
    FakeSlots slots;
    FakeRouter router;
    std::vector<std::uint8_t> bar1 = std::vector<std::uint8_t>(0x1000);
    std::vector<std::uint8_t> bar4 = std::vector<std::uint8_t>(0x4000);

    PassthroughSetup setup() {
        PassthroughSetup s;
        s.name = "vfio 0000:00:05.0";
        s.config = io.config;
        s.bars[1] = {0x1000, false, bar1.data(), {{0, 0x1000}}};
        s.bars[4] = {0x4000, true, bar4.data(), {{0, 0x4000}}};
        s.msix_vectors = 3;
        return s;
    }
    Result<std::unique_ptr<PassthroughFunction>> make() {
        return PassthroughFunction::create(setup(), io, slots, router);
    }
};

std::vector<std::uint8_t> capability_ids(Rig& r, std::uint8_t dev) {
    std::vector<std::uint8_t> ids;
    std::size_t at = r.cfg_read(dev, kOffCapPtr, 1);
    for (int n = 0; at != 0 && n < 64; ++n) {
        ids.push_back(static_cast<std::uint8_t>(r.cfg_read(dev, at, 1)));
        at = r.cfg_read(dev, at + 1, 1);
    }
    return ids;
}

TEST(Passthrough, TheGuestSeesTheDevicesIdentityAsASingleFunctionWithoutIntx) {
    Device d;
    auto f = d.make();
    ASSERT_TRUE(f) << f.error().message;
    Rig r;
    ASSERT_EQ(r.pci.add(**f).value(), 1);
    EXPECT_EQ(r.cfg_read(1, 0x00), 0x1041'1af4u);
    EXPECT_EQ(r.cfg_read(1, 0x08), 0x0200'0001u) << "class and revision";
    EXPECT_EQ(r.cfg_read(1, 0x2c), 0x1100'1af4u) << "subsystem";
    EXPECT_EQ(r.cfg_read(1, 0x0e, 1), 0u) << "header type 0, single function";
    EXPECT_EQ(r.cfg_read(1, 0x3d, 1), 0u) << "no INTx pin";
    EXPECT_EQ(r.cfg_read(1, 0x30), 0u) << "no expansion ROM";
}

TEST(Passthrough, MsixAndVendorCapabilitiesStayTheRestAreHidden) {
    Device d;
    auto f = d.make();
    ASSERT_TRUE(f);
    Rig r;
    ASSERT_TRUE(r.pci.add(**f));
    EXPECT_EQ(capability_ids(r, 1), (std::vector<std::uint8_t>{kCapMsix, kCapVendor}));
    // The vendor capability's body is the device's, byte for byte, and read-only.
    std::size_t vendor = r.cfg_read(1, (*f)->msix_capability() + 1, 1);
    for (std::size_t i = 2; i < 16; ++i)
        EXPECT_EQ(r.cfg_read(1, vendor + i, 1), d.io.config[0x50 + i]) << "byte " << i;
    r.cfg_write(1, vendor + 4, 0xdead'beef);
    EXPECT_EQ(r.cfg_read(1, vendor + 4, 1), d.io.config[0x54]);
    // MSI-X: the device's vector count and table/PBA places.
    const std::size_t msix = (*f)->msix_capability();
    EXPECT_EQ(r.cfg_read(1, msix + 2, 2), 2u);
    EXPECT_EQ(r.cfg_read(1, msix + 4), 0x0000'0001u);
    EXPECT_EQ(r.cfg_read(1, msix + 8), 0x0000'0801u);
}

TEST(Passthrough, CapabilityListsThatLoopOrPointBelowTheHeaderEnd) {
    Device d;
    d.io.config[0x85] = 0x40;  // MSI points back at PM: a loop
    auto f = d.make();
    ASSERT_TRUE(f) << "the walk ends: " << f.error().message;
    Device low;
    low.io.config[0x51] = 0x20;  // into the header: the walk stops there, before MSI-X
    auto g = low.make();
    ASSERT_FALSE(g);
    EXPECT_NE(g.error().message.find("no MSI-X capability"), std::string::npos)
        << g.error().message;
}

TEST(Passthrough, RefusesWhatItCannotOffer) {
    {
        Device d;
        d.io.config[0x70] = kMsi;  // no MSI-X at all
        auto f = d.make();
        ASSERT_FALSE(f);
        EXPECT_NE(f.error().message.find("vfio 0000:00:05.0: the device has no MSI-X"),
                  std::string::npos)
            << f.error().message;
    }
    {
        Device d;
        d.io.put32(0x78, 0x2000 | 1);  // PBA beyond BAR 1's 4 KiB
        auto f = d.make();
        ASSERT_FALSE(f);
        EXPECT_NE(f.error().message.find("outside the BAR"), std::string::npos);
    }
    {
        Device d;
        d.io.put32(0x74, 0x0000 | 3);  // table in BAR 3, which does not exist
        EXPECT_FALSE(d.make());
    }
    {
        Device d;
        d.io.config[0x0e] = 0x01;  // a bridge
        auto f = d.make();
        ASSERT_FALSE(f);
        EXPECT_NE(f.error().message.find("bridges"), std::string::npos);
    }
    {
        Device d;
        d.io.put16(0x00, 0xffff);  // nothing answers
        EXPECT_FALSE(d.make());
    }
}

TEST(Passthrough, BarsHaveTheDevicesSizesAndSmallOnesAreWholePages) {
    Device d;
    PassthroughSetup s = d.setup();
    s.bars[0] = {0x100, false, nullptr, {}};  // a 256-byte register BAR, not mappable
    auto f = PassthroughFunction::create(std::move(s), d.io, d.slots, d.router);
    ASSERT_TRUE(f);
    const auto specs = (*f)->bar_specs();
    ASSERT_EQ(specs.size(), 5u) << "BARs 0-4, the 64-bit BAR 4 taking 4 and 5";
    EXPECT_EQ(specs[0].size, 0x1000u);
    EXPECT_EQ(specs[1].size, 0x1000u);
    EXPECT_EQ(specs[2].size, 0u);
    EXPECT_EQ(specs[4].size, 0x4000u);
    EXPECT_TRUE(specs[4].is_64bit);
    // The rounded-up tail of BAR 0 reads all ones and never reaches the device.
    std::uint32_t v = 0;
    d.io.reads.clear();
    (*f)->bar_read(0, 0x200, std::span(reinterpret_cast<std::uint8_t*>(&v), 4));
    EXPECT_EQ(v, 0xffff'ffffu);
    EXPECT_TRUE(d.io.reads.empty());
    (*f)->bar_read(0, 0x10, std::span(reinterpret_cast<std::uint8_t*>(&v), 4));
    ASSERT_EQ(d.io.reads.size(), 1u);
    EXPECT_EQ(d.io.reads[0], (std::pair<std::uint32_t, std::uint64_t>{0, 0x10}));
}

TEST(Passthrough, CommandRegisterReachesTheDeviceWithIntxDisabled) {
    Device d;
    auto f = d.make();
    ASSERT_TRUE(f);
    EXPECT_EQ(d.io.device_command(), kCommandIntxDisable) << "off until the guest turns it on";
    Rig r;
    ASSERT_TRUE(r.pci.add(**f));
    r.cfg_write(1, kOffCommand, kCommandMemory | kCommandBusMaster | kCommandIo, 2);
    EXPECT_EQ(d.io.device_command(), kCommandMemory | kCommandBusMaster | kCommandIntxDisable)
        << "no I/O decoding: no I/O BARs are offered";
    r.cfg_write(1, kOffCommand, 0, 2);
    EXPECT_EQ(d.io.device_command(), kCommandIntxDisable);
}

TEST(Passthrough, MappableBarPartsBecomeSlotsThatFollowTheBar) {
    Device d;
    auto f = d.make();
    ASSERT_TRUE(f);
    Rig r;
    ASSERT_TRUE(r.pci.add(**f));
    EXPECT_TRUE(d.slots.slots.empty()) << "nothing while decoding is off";
    r.decode(1, true);
    const std::uint64_t bar4 = r.pci.bar_address(1, 4);
    ASSERT_NE(bar4, 0u);
    // BAR 1 is the MSI-X page: trapped whole. BAR 4 is one slot.
    ASSERT_EQ(d.slots.slots.size(), 1u);
    const auto& s = d.slots.slots.begin()->second;
    EXPECT_EQ(s.guest_phys, bar4);
    EXPECT_EQ(s.size, 0x4000u);
    EXPECT_EQ(s.host, d.bar4.data());
    // The guest moves BAR 4: the slot goes along.
    const std::uint64_t moved = bar4 + 0x10'0000;
    r.decode(1, false);
    EXPECT_TRUE(d.slots.slots.empty());
    r.cfg_write(1, kOffBar0 + 16, static_cast<std::uint32_t>(moved) | 0xc);
    r.cfg_write(1, kOffBar0 + 20, static_cast<std::uint32_t>(moved >> 32));
    r.decode(1, true);
    ASSERT_EQ(d.slots.slots.size(), 1u);
    EXPECT_EQ(d.slots.slots.begin()->second.guest_phys, moved);
}

TEST(Passthrough, TheMsixTableIsTrappedBesideTheMappedRestOfItsBar) {
    Device d;
    PassthroughSetup s = d.setup();
    std::vector<std::uint8_t> big(0x4000);
    s.bars[1] = {0x4000, false, big.data(), {{0, 0x4000}}};
    d.io.put32(0x74, 0x1000 | 1);  // table at 0x1000 (one page), PBA at 0x3800
    d.io.put32(0x78, 0x3800 | 1);
    s.config = d.io.config;
    auto f = PassthroughFunction::create(std::move(s), d.io, d.slots, d.router);
    ASSERT_TRUE(f) << f.error().message;
    EXPECT_EQ((*f)->direct(1), (std::vector<Range>{{0, 0x1000}, {0x2000, 0x1000}}));
    // Table accesses reach the MSI-X emulation, never the device.
    d.io.reads.clear();
    d.io.writes.clear();
    const std::uint32_t data = 0x4041;
    (*f)->bar_write(1, 0x1000 + 16 + 8, std::span(reinterpret_cast<const std::uint8_t*>(&data), 4));
    std::uint32_t back = 0;
    (*f)->bar_read(1, 0x1000 + 16 + 8, std::span(reinterpret_cast<std::uint8_t*>(&back), 4));
    EXPECT_EQ(back, data);
    EXPECT_TRUE(d.io.reads.empty());
    EXPECT_TRUE(d.io.writes.empty());
    // Elsewhere in the trapped page: forwarded to the device's BAR 1.
    (*f)->bar_read(1, 0x1800, std::span(reinterpret_cast<std::uint8_t*>(&back), 4));
    ASSERT_EQ(d.io.reads.size(), 1u);
    EXPECT_EQ(d.io.reads[0], (std::pair<std::uint32_t, std::uint64_t>{1, 0x1800}));
}

TEST(Passthrough, MsixEnableHandsTheVectorsEventfdsToTheDevice) {
    Device d;
    auto f = d.make();
    ASSERT_TRUE(f);
    Rig r;
    ASSERT_TRUE(r.pci.add(**f));
    const std::size_t msix = (*f)->msix_capability();
    r.cfg_write(1, msix + 2, kMsixEnable, 2);
    ASSERT_EQ(d.io.msix_calls.size(), 1u);
    EXPECT_EQ(d.io.msix_calls[0].size(), 3u);
    for (int fd : d.io.msix_calls[0])
        EXPECT_GE(fd, 0);
    r.cfg_write(1, msix + 2, kMsixEnable | kMsixFunctionMask, 2);
    EXPECT_EQ(d.io.msix_calls.size(), 1u) << "masking is the router's business, not the device's";
    r.cfg_write(1, msix + 2, 0, 2);
    ASSERT_EQ(d.io.msix_calls.size(), 2u);
    EXPECT_TRUE(d.io.msix_calls[1].empty()) << "MSI-X off on the device";
    // A programmed, unmasked vector is routed to KVM with the device's eventfd.
    r.cfg_write(1, msix + 2, kMsixEnable, 2);
    const std::uint64_t address = 0xfee0'0000;
    (*f)->bar_write(1, 16, std::span(reinterpret_cast<const std::uint8_t*>(&address), 8));
    const std::uint32_t zero = 0;
    (*f)->bar_write(1, 16 + 12, std::span(reinterpret_cast<const std::uint8_t*>(&zero), 4));
    EXPECT_EQ(d.router.attached_fd(1), d.io.msix_calls.back()[1]);
}

TEST(Passthrough, DirectRangesArePageAlignedAndAvoidTrappedPages) {
    EXPECT_EQ(direct_ranges(std::vector<Range>{{0, 0x4000}}, {}),
              (std::vector<Range>{{0, 0x4000}}));
    EXPECT_EQ(direct_ranges(std::vector<Range>{{0, 0x4000}}, std::vector<Range>{{0x1010, 0x30}}),
              (std::vector<Range>{{0, 0x1000}, {0x2000, 0x2000}}));
    // Two trapped ranges in one page, one straddling a page boundary, given out of order.
    EXPECT_EQ(direct_ranges(std::vector<Range>{{0, 0x8000}},
                            std::vector<Range>{{0x6ff0, 0x20}, {0x10, 8}, {0x20, 8}}),
              (std::vector<Range>{{0x1000, 0x5000}}));
    // Unaligned mappable edges shrink to whole pages.
    EXPECT_EQ(direct_ranges(std::vector<Range>{{0x800, 0x2000}}, {}),
              (std::vector<Range>{{0x1000, 0x1000}}));
    EXPECT_TRUE(direct_ranges(std::vector<Range>{{0, 0x1000}}, std::vector<Range>{{0, 1}}).empty());
    EXPECT_TRUE(direct_ranges({}, {}).empty());
}

// A hostile guest: random configuration writes (BARs, command, MSI-X control, anywhere),
// random trapped BAR accesses of every size at any offset, random table programming. The
// function never reaches the device outside a BAR's real size or outside BARs 0-5, never
// maps a slot outside a BAR or over the MSI-X pages, and never crashes.
TEST(Passthrough, AHostileGuestReachesNothingOutsideTheDevicesRegions) {
    Device d;
    PassthroughSetup s = d.setup();
    s.bars[0] = {0x100, false, nullptr, {}};
    auto f = PassthroughFunction::create(std::move(s), d.io, d.slots, d.router);
    ASSERT_TRUE(f);
    Rig r;
    ASSERT_TRUE(r.pci.add(**f));
    std::mt19937_64 rng(20261205);
    const std::array<std::uint64_t, 6> sizes{0x100, 0x1000, 0, 0, 0x4000, 0};
    std::vector<std::uint8_t> buf(8);
    for (int i = 0; i < 20000; ++i) {
        const std::size_t len = std::size_t{1} << (rng() % 4);  // 1, 2, 4, 8
        const std::uint64_t v = rng();
        switch (rng() % 3) {
            case 0: {
                const std::size_t reg = rng() % kConfigSize;
                const std::size_t n = std::min<std::size_t>(len, 4);
                if (reg + n <= kConfigSize) r.cfg_write(1, reg, static_cast<std::uint32_t>(v), n);
                break;
            }
            case 1:
                (*f)->bar_read(rng() % 8, rng() % 0x8000, std::span(buf.data(), len));
                break;
            case 2:
                std::memcpy(buf.data(), &v, len);
                (*f)->bar_write(rng() % 8, rng() % 0x8000, std::span(buf.data(), len));
                break;
        }
    }
    for (const auto* list : {&d.io.reads, &d.io.writes})
        for (const auto& [region, offset] : *list) {
            if (region == kConfigRegion) {
                EXPECT_LT(offset, kConfigSize);
                continue;
            }
            ASSERT_LT(region, 6u);
            EXPECT_LT(offset, sizes[region]) << "region " << region;
        }
    for (const auto& [slot, m] : d.slots.slots) {
        EXPECT_TRUE(m.host == d.bar4.data() && m.size == 0x4000) << "only BAR 4 is ever mapped";
        EXPECT_NE(m.guest_phys, 0u);
    }
}

}  // namespace
}  // namespace stockade::pci
