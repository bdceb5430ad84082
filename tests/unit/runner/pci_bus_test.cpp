// The PCI bus as a guest drives it through configuration mechanism #1 (ports 0xcf8-0xcff):
// identity and read-only fields, the command register, capability lists, BAR sizing and
// placement, and BARs moving on the MMIO bus wherever the guest points them.
#include <gtest/gtest.h>

#include <functional>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "runner/devices/bus.hpp"
#include "runner/pci/config_space.hpp"
#include "runner/pci/pci_bus.hpp"
#include "tests/support/log_capture.hpp"
#include "tests/unit/runner/pci_test_support.hpp"

namespace stockade::pci {
namespace {

// A PCI function with a plain configuration space and BARs that remember every access.
class FakeFunction : public PciDevice {
  public:
    FakeFunction(std::vector<BarSpec> bars, std::uint16_t device_id = 0x1234)
        : bars_(std::move(bars)), config_({0x1af4, device_id, 7, 0x0b4001, 0x1b36, 0x4242}) {}
    std::string name() const override { return "fake"; }
    std::vector<BarSpec> bar_specs() const override { return bars_; }
    void config_read(std::size_t off, std::span<std::uint8_t> out) override {
        config_.read(off, out);
    }
    void config_write(std::size_t off, std::span<const std::uint8_t> in) override {
        config_.write(off, in);
    }
    // Reads give a pattern that names the BAR and offset, so a test sees who answered.
    void bar_read(std::size_t bar, std::uint64_t offset, std::span<std::uint8_t> out) override {
        for (std::size_t i = 0; i < out.size(); ++i)
            out[i] = static_cast<std::uint8_t>(tag + bar * 16 + offset + i);
        reads.push_back({bar, offset});
    }
    void bar_write(std::size_t bar, std::uint64_t offset,
                   std::span<const std::uint8_t> in) override {
        writes.push_back({bar, offset});
        last_written.assign(in.begin(), in.end());
    }
    void bar_placed(std::size_t bar, std::uint64_t address) override {
        placed.push_back({bar, address});
    }

    struct Access {
        std::size_t bar;
        std::uint64_t where;
    };
    std::vector<Access> reads, writes, placed;
    std::vector<std::uint8_t> last_written;
    ConfigSpace& config() { return config_; }
    std::uint8_t tag = 0x10;

  private:
    std::vector<BarSpec> bars_;
    ConfigSpace config_;
};

TEST(PciBus, HostBridgeSitsAtSlotZero) {
    Rig r;
    EXPECT_EQ(r.cfg_read(0, 0x00), 0x0008'1b36u);
    EXPECT_EQ(r.cfg_read(0, 0x08) >> 8, 0x060000u) << "class: host bridge";
    EXPECT_EQ((r.cfg_read(0, 0x0c) >> 16) & 0x7f, 0u) << "header type 0";
    EXPECT_EQ(r.pci.device_count(), 0u);
}

TEST(PciBus, FunctionsShowTheirIdentity) {
    Rig r;
    FakeFunction f({});
    ASSERT_EQ(r.pci.add(f).value(), 1);
    EXPECT_EQ(r.pci.device_count(), 1u);
    EXPECT_EQ(r.cfg_read(1, 0x00), 0x1234'1af4u);
    EXPECT_EQ(r.cfg_read(1, 0x00, 2), 0x1af4u);
    EXPECT_EQ(r.cfg_read(1, 0x02, 2), 0x1234u);
    EXPECT_EQ(r.cfg_read(1, 0x08), 0x0b40'0107u) << "class 0b4001, revision 7";
    EXPECT_EQ(r.cfg_read(1, 0x09, 1), 0x01u);
    EXPECT_EQ(r.cfg_read(1, 0x0b, 1), 0x0bu);
    EXPECT_EQ(r.cfg_read(1, 0x2c), 0x4242'1b36u);
    // Byte by byte, the same dword.
    std::uint32_t bytes = 0;
    for (std::size_t i = 0; i < 4; ++i)
        bytes |= r.cfg_read(1, i, 1) << (8 * i);
    EXPECT_EQ(bytes, 0x1234'1af4u);
}

TEST(PciBus, EmptySlotsOtherFunctionsAndOtherBusesReadAllOnes) {
    Rig r;
    FakeFunction f({});
    ASSERT_TRUE(r.pci.add(f));
    EXPECT_EQ(r.cfg_read(2, 0x00), 0xffff'ffffu) << "empty slot";
    EXPECT_EQ(r.cfg_read(31, 0x00), 0xffff'ffffu);
    EXPECT_EQ(r.raw_read(Rig::address(1, 0, 1), 0, 4), 0xffff'ffffu) << "function 1";
    EXPECT_EQ(r.raw_read(Rig::address(1, 0, 7), 0, 4), 0xffff'ffffu) << "function 7";
    EXPECT_EQ(r.raw_read(Rig::address(1, 0, 0, 1), 0, 4), 0xffff'ffffu) << "bus 1";
    EXPECT_EQ(r.raw_read(Rig::address(1, 0) & ~kEnable, 0, 4), 0xffff'ffffu) << "enable clear";
    // Writes there go nowhere: function 0's command register is untouched.
    r.raw_write(Rig::address(1, kOffCommand, 1), 0, kCommandMemory, 2);
    r.raw_write(Rig::address(1, kOffCommand, 0, 3), 0, kCommandMemory, 2);
    r.raw_write(Rig::address(1, kOffCommand) & ~kEnable, 0, kCommandMemory, 2);
    EXPECT_EQ(r.cfg_read(1, kOffCommand, 2), 0u);
}

TEST(PciBus, ConfigAddressReadsBackOnlyAsADword) {
    Rig r;
    r.select(0x8000'0a0c);
    std::uint32_t v = 0;
    r.pci.read(0, std::span(reinterpret_cast<std::uint8_t*>(&v), 4));
    EXPECT_EQ(v, 0x8000'0a0cu);
    std::uint8_t b = 0;
    r.pci.read(0, std::span(&b, 1));
    EXPECT_EQ(b, 0xff) << "byte accesses to 0xcf8 are not CONFIG_ADDRESS";
    const std::uint8_t one = 0x12;
    r.pci.write(0, std::span(&one, 1));
    r.pci.read(0, std::span(reinterpret_cast<std::uint8_t*>(&v), 4));
    EXPECT_EQ(v, 0x8000'0a0cu);
}

TEST(PciBus, ReadOnlyFieldsStayReadOnly) {
    Rig r;
    FakeFunction f({{0x1000, false}});
    ASSERT_TRUE(r.pci.add(f));
    std::vector<std::uint32_t> before;
    const std::size_t ro[] = {0x00, 0x08, 0x2c, 0x30, 0x34};
    for (std::size_t reg : ro)
        before.push_back(r.cfg_read(1, reg));
    const std::uint32_t status_before = r.cfg_read(1, kOffStatus, 2);
    const std::uint32_t header_before = r.cfg_read(1, 0x0e, 1);
    for (std::size_t reg : ro)
        r.cfg_write(1, reg, 0xffff'ffff);
    r.cfg_write(1, kOffStatus, 0xffff, 2);
    r.cfg_write(1, 0x0e, 0xff, 1);
    for (std::size_t i = 0; i < std::size(ro); ++i)
        EXPECT_EQ(r.cfg_read(1, ro[i]), before[i]) << "register " << ro[i];
    EXPECT_EQ(r.cfg_read(1, kOffStatus, 2), status_before);
    EXPECT_EQ(r.cfg_read(1, 0x0e, 1), header_before);
    EXPECT_EQ(r.cfg_read(1, 0x30), 0u) << "no expansion ROM";
    // Writable ones keep what was written.
    r.cfg_write(1, kOffIntLine, 0x0b, 1);
    EXPECT_EQ(r.cfg_read(1, kOffIntLine, 1), 0x0bu);
    r.cfg_write(1, 0x0c, 0x0000'4010, 2);  // cache line size, latency timer
    EXPECT_EQ(r.cfg_read(1, 0x0c, 2), 0x4010u);
}

TEST(PciBus, CommandRegisterKeepsOnlyItsDefinedBits) {
    Rig r;
    FakeFunction f({});
    ASSERT_TRUE(r.pci.add(f));
    r.cfg_write(1, kOffCommand, 0xffff, 2);
    const std::uint32_t cmd = r.cfg_read(1, kOffCommand, 2);
    const std::uint32_t must =
        kCommandIo | kCommandMemory | kCommandBusMaster | kCommandIntxDisable;
    EXPECT_EQ(cmd & must, must);
    EXPECT_EQ(cmd & 0xf800u, 0u) << "bits 11-15 are reserved";
    EXPECT_EQ(cmd & (1u << 3 | 1u << 4 | 1u << 5 | 1u << 7 | 1u << 9), 0u)
        << "special cycles, MWI, VGA snoop, stepping, fast back-to-back are not implemented";
    // A byte write to the high half does not disturb the low half.
    r.cfg_write(1, kOffCommand + 1, 0x00, 1);
    EXPECT_EQ(r.cfg_read(1, kOffCommand, 2), cmd & 0xffu);
}

TEST(PciBus, CapabilityListIsWalkableAndEnds) {
    Rig r;
    FakeFunction f({});
    const std::uint8_t body_a[6] = {1, 2, 3, 4, 5, 6};
    const std::uint8_t body_b[2] = {9, 9};
    const std::uint8_t body_c[14] = {};
    const std::set<std::size_t> added = {f.config().add_capability(0x09, body_a),
                                         f.config().add_capability(0x05, body_b),
                                         f.config().add_capability(0x11, body_c)};
    ASSERT_TRUE(r.pci.add(f));
    EXPECT_TRUE(r.cfg_read(1, kOffStatus, 2) & kStatusCapList);
    std::set<std::size_t> seen;
    std::vector<std::uint32_t> ids;
    std::size_t cap = r.cfg_read(1, kOffCapPtr, 1);
    while (cap != 0) {
        ASSERT_GE(cap, 0x40u) << "capabilities live after the header";
        ASSERT_LE(cap, 0xfcu);
        ASSERT_EQ(cap % 4, 0u) << "pointers are dword-aligned";
        ASSERT_TRUE(seen.insert(cap).second) << "the list loops at " << cap;
        ids.push_back(r.cfg_read(1, cap, 1));
        cap = r.cfg_read(1, cap + 1, 1);
    }
    EXPECT_EQ(seen, added);
    EXPECT_EQ(ids, (std::vector<std::uint32_t>{0x09, 0x05, 0x11}));
    // Bodies are where they say, and read-only unless declared writable.
    const std::size_t first = *added.begin();
    EXPECT_EQ(r.cfg_read(1, first + 2, 1), 1u);
    r.cfg_write(1, first + 2, 0xee, 1);
    EXPECT_EQ(r.cfg_read(1, first + 2, 1), 1u);
}

TEST(PciBus, BarsAreAssignedAlignedInTheirWindows) {
    Rig r;
    FakeFunction a({{0x4000, false}, {0x8000, true}, {0, false}, {0x1000, false}});
    FakeFunction b({{0x10000, false}, {0x1000, true}});
    ASSERT_EQ(r.pci.add(a).value(), 1);
    ASSERT_EQ(r.pci.add(b).value(), 2);
    r.decode(1, true);
    r.decode(2, true);
    struct Bar {
        std::uint8_t slot;
        std::size_t index;
        std::uint64_t size;
        bool high;
    };
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;
    for (const Bar& bar :
         {Bar{1, 0, 0x4000, false}, Bar{1, 1, 0x8000, true}, Bar{1, 4, 0x1000, false},
          Bar{2, 0, 0x10000, false}, Bar{2, 1, 0x1000, true}}) {
        const std::uint64_t at = r.pci.bar_address(bar.slot, bar.index);
        EXPECT_EQ(at % bar.size, 0u);
        if (bar.high) {
            EXPECT_GE(at, kWindows.high_start);
            EXPECT_LE(at + bar.size, kWindows.high_end);
        } else {
            EXPECT_GE(at, kWindows.low_start);
            EXPECT_LE(at + bar.size, kWindows.low_end);
        }
        for (const auto& [s, e] : ranges)
            EXPECT_TRUE(at + bar.size <= s || e <= at) << "BARs overlap";
        ranges.push_back({at, at + bar.size});
    }
    EXPECT_EQ(r.pci.bar_address(1, 2), 0u) << "the upper half of BAR 1";
    EXPECT_EQ(r.pci.bar_address(1, 3), 0u) << "unused";
    // The registers say the same, with the memory type bits.
    const std::uint64_t bar1 = r.pci.bar_address(1, 1);
    EXPECT_EQ(r.cfg_read(1, kOffBar0 + 4), static_cast<std::uint32_t>(bar1) | 0xc)
        << "64-bit, prefetchable";
    EXPECT_EQ(r.cfg_read(1, kOffBar0 + 8), static_cast<std::uint32_t>(bar1 >> 32));
    EXPECT_EQ(r.cfg_read(1, kOffBar0), r.pci.bar_address(1, 0)) << "32-bit memory: type bits 0";
    EXPECT_EQ(r.cfg_read(1, kOffBar0 + 12), 0u);
}

TEST(PciBus, BarSizingProtocol) {
    Rig r;
    FakeFunction f({{0x4000, false}, {0x8000, true}});
    ASSERT_TRUE(r.pci.add(f));
    r.decode(1, true);
    const std::uint32_t bar0 = r.cfg_read(1, kOffBar0), bar1 = r.cfg_read(1, kOffBar0 + 4),
                        bar2 = r.cfg_read(1, kOffBar0 + 8);
    // What Linux does (__pci_read_base): decode off, write ones, read, restore.
    r.decode(1, false);
    r.cfg_write(1, kOffBar0, 0xffff'ffff);
    EXPECT_EQ(r.cfg_read(1, kOffBar0), ~(0x4000u - 1));
    r.cfg_write(1, kOffBar0, bar0);
    r.cfg_write(1, kOffBar0 + 4, 0xffff'ffff);
    r.cfg_write(1, kOffBar0 + 8, 0xffff'ffff);
    EXPECT_EQ(r.cfg_read(1, kOffBar0 + 4), (~(0x8000u - 1) & 0xffff'fff0u) | 0xc);
    EXPECT_EQ(r.cfg_read(1, kOffBar0 + 8), 0xffff'ffffu) << "every high bit is an address bit";
    r.cfg_write(1, kOffBar0 + 4, bar1);
    r.cfg_write(1, kOffBar0 + 8, bar2);
    EXPECT_EQ(r.cfg_read(1, kOffBar0), bar0);
    EXPECT_EQ(r.cfg_read(1, kOffBar0 + 4), bar1);
    EXPECT_EQ(r.cfg_read(1, kOffBar0 + 8), bar2);
    r.decode(1, true);
    EXPECT_EQ(r.pci.bar_address(1, 0), bar0);
    EXPECT_EQ(r.pci.bar_address(1, 1), (std::uint64_t{bar2} << 32) | (bar1 & ~0xfu));
}

TEST(PciBus, SizingWithDecodeOnNeitherCrashesNorLosesTheBar) {
    Rig r;
    FakeFunction f({{0x8000, true}});
    ASSERT_TRUE(r.pci.add(f));
    r.decode(1, true);
    const std::uint64_t home = r.pci.bar_address(1, 0);
    const std::uint32_t lo = r.cfg_read(1, kOffBar0), hi = r.cfg_read(1, kOffBar0 + 4);
    // All ones in both halves puts the BAR at the very top of the address space, where
    // it would wrap: it must simply not be mapped.
    r.cfg_write(1, kOffBar0, 0xffff'ffff);
    r.cfg_write(1, kOffBar0 + 4, 0xffff'ffff);
    EXPECT_EQ(r.pci.bar_address(1, 0), 0u);
    EXPECT_FALSE(r.mmio_read(home));
    EXPECT_FALSE(r.mmio_read(~0ull - 3));
    r.cfg_write(1, kOffBar0, lo);
    r.cfg_write(1, kOffBar0 + 4, hi);
    EXPECT_EQ(r.pci.bar_address(1, 0), home);
    EXPECT_TRUE(r.mmio_read(home));
}

TEST(PciBus, DecodeMapsAndUnmapsBars) {
    Rig r;
    FakeFunction f({{0x4000, false}});
    ASSERT_TRUE(r.pci.add(f));
    const std::uint64_t at = r.cfg_read(1, kOffBar0);
    EXPECT_EQ(r.pci.bar_address(1, 0), 0u) << "memory decoding starts off";
    EXPECT_FALSE(r.mmio_read(at));
    r.decode(1, true);
    EXPECT_EQ(r.pci.bar_address(1, 0), at);
    ASSERT_FALSE(f.placed.empty());
    EXPECT_EQ(f.placed.back().bar, 0u);
    EXPECT_EQ(f.placed.back().where, at);
    const auto v = r.mmio_read(at + 0x100);
    ASSERT_TRUE(v);
    ASSERT_FALSE(f.reads.empty());
    EXPECT_EQ(f.reads.back().bar, 0u);
    EXPECT_EQ(f.reads.back().where, 0x100u) << "devices see offsets into the BAR";
    const std::uint32_t w = 0xabcd;
    EXPECT_TRUE(r.mmio.write(at + 0x3ffc, std::span(reinterpret_cast<const std::uint8_t*>(&w), 4)));
    EXPECT_EQ(f.writes.back().where, 0x3ffcu);
    EXPECT_FALSE(r.mmio_read(at + 0x3ffe)) << "an access straddling the BAR's end";
    r.decode(1, false);
    EXPECT_EQ(r.pci.bar_address(1, 0), 0u);
    EXPECT_EQ(f.placed.back().where, 0u);
    EXPECT_FALSE(r.mmio_read(at));
}

TEST(PciBus, MovingABarRemapsIt) {
    Rig r;
    FakeFunction f({{0x4000, false}, {0x8000, true}});
    ASSERT_TRUE(r.pci.add(f));
    r.decode(1, true);
    const std::uint64_t old0 = r.pci.bar_address(1, 0), old1 = r.pci.bar_address(1, 1);
    const std::uint64_t new0 = 0xd000'0000;
    r.cfg_write(1, kOffBar0, static_cast<std::uint32_t>(new0));
    EXPECT_EQ(r.pci.bar_address(1, 0), new0);
    EXPECT_FALSE(r.mmio_read(old0)) << "the old address misses";
    EXPECT_TRUE(r.mmio_read(new0));
    EXPECT_EQ(f.placed.back().where, new0);
    // Low bits below the size are not address bits.
    r.cfg_write(1, kOffBar0, static_cast<std::uint32_t>(new0 + 0x1234));
    EXPECT_EQ(r.pci.bar_address(1, 0), new0);
    // A byte write moves it too (the guest may do partial writes).
    r.cfg_write(1, kOffBar0 + 3, 0xd1, 1);
    EXPECT_EQ(r.pci.bar_address(1, 0), 0xd100'0000u);
    // The 64-bit BAR moves above 4 GiB with its high dword.
    const std::uint64_t new1 = 0x18'0000'0000;
    r.cfg_write(1, kOffBar0 + 8, static_cast<std::uint32_t>(new1 >> 32));
    r.cfg_write(1, kOffBar0 + 4, static_cast<std::uint32_t>(new1));
    EXPECT_EQ(r.pci.bar_address(1, 1), new1);
    EXPECT_FALSE(r.mmio_read(old1));
    EXPECT_TRUE(r.mmio_read(new1 + 0x7ffc));
    EXPECT_EQ(f.reads.back().bar, 1u);
    // Address 0 means "unmapped" even with decoding on.
    r.cfg_write(1, kOffBar0, 0);
    EXPECT_EQ(r.pci.bar_address(1, 0), 0u);
    EXPECT_FALSE(r.mmio_read(new0));
}

TEST(PciBus, ABarMovedOntoAnotherDevicesBarStaysUnmapped) {
    Rig r;
    FakeFunction a({{0x4000, false}}), b({{0x4000, false}});
    b.tag = 0x80;
    ASSERT_TRUE(r.pci.add(a));
    ASSERT_TRUE(r.pci.add(b));
    r.decode(1, true);
    r.decode(2, true);
    const std::uint64_t at = r.pci.bar_address(1, 0), b_home = r.pci.bar_address(2, 0);
    // b's BAR exactly over a's.
    r.cfg_write(2, kOffBar0, static_cast<std::uint32_t>(at));
    EXPECT_EQ(r.pci.bar_address(2, 0), 0u);
    EXPECT_EQ(b.placed.back().where, 0u) << "b is told its BAR is unreachable";
    EXPECT_EQ(r.pci.bar_address(1, 0), at);
    const auto v = r.mmio_read(at);
    ASSERT_TRUE(v);
    EXPECT_EQ(*v & 0xff, a.tag) << "a still answers at its own address";
    EXPECT_FALSE(r.mmio_read(b_home));
    // Moving it somewhere free maps it again.
    r.cfg_write(2, kOffBar0, 0xd800'0000);
    EXPECT_EQ(r.pci.bar_address(2, 0), 0xd800'0000u);
    EXPECT_EQ(*r.mmio_read(0xd800'0000) & 0xff, b.tag);
    // a's BAR dropped onto b's new home is refused the same way.
    r.cfg_write(1, kOffBar0, 0xd800'0000);
    EXPECT_EQ(r.pci.bar_address(1, 0), 0u);
    EXPECT_EQ(*r.mmio_read(0xd800'0000) & 0xff, b.tag);
}

TEST(PciBus, UnalignedAndOutOfRangeConfigAccessesAreSafe) {
    Rig r;
    FakeFunction f({{0x4000, false}});
    ASSERT_TRUE(r.pci.add(f));
    const std::uint32_t id = r.cfg_read(1, 0);
    // A word at port 0xcfe is the upper half of the dword.
    EXPECT_EQ(r.raw_read(Rig::address(1, 0), 2, 2), id >> 16);
    EXPECT_EQ(r.raw_read(Rig::address(1, 0), 3, 1), id >> 24);
    // Past the end of the 256 bytes: all ones, and writes do nothing.
    EXPECT_EQ(r.raw_read(Rig::address(1, 0xfc), 3, 2), 0xffffu);
    EXPECT_EQ(r.raw_read(Rig::address(1, 0xfc), 1, 4), 0xffff'ffffu);
    r.raw_write(Rig::address(1, 0xfc), 2, 0, 4);
    // A BAR register read in pieces.
    const std::uint32_t bar = r.cfg_read(1, kOffBar0);
    EXPECT_EQ(r.cfg_read(1, kOffBar0 + 2, 2), bar >> 16);
    EXPECT_EQ(r.cfg_read(1, kOffBar0 + 1, 1), (bar >> 8) & 0xff);
    // Unused BAR registers read 0 and ignore writes.
    r.cfg_write(1, kOffBar0 + 4, 0xffff'ffff);
    EXPECT_EQ(r.cfg_read(1, kOffBar0 + 4), 0u);
    r.cfg_write(1, 0x30, 0xffff'ffff);  // expansion ROM
    EXPECT_EQ(r.cfg_read(1, 0x30), 0u);
}

TEST(PciBus, RefusesMalformedBarsAndAFullBus) {
    Rig r;
    FakeFunction odd({{0x3000, false}}), tiny({{0x800, false}}),
        last_half({{0, false}, {0, false}, {0, false}, {0, false}, {0, false}, {0x1000, true}});
    EXPECT_FALSE(r.pci.add(odd));
    EXPECT_FALSE(r.pci.add(tiny));
    EXPECT_FALSE(r.pci.add(last_half)) << "a 64-bit BAR 5 has no upper half";
    std::vector<std::unique_ptr<FakeFunction>> many;
    for (int i = 0; i < 31; ++i) {
        many.push_back(std::make_unique<FakeFunction>(std::vector<BarSpec>{}));
        ASSERT_TRUE(r.pci.add(*many.back())) << "device " << i;
    }
    FakeFunction one_more({});
    EXPECT_FALSE(r.pci.add(one_more));
    EXPECT_EQ(r.pci.device_count(), 31u);
}

// A device refused half-way through its BARs must not leave them behind for the next
// device placed in the same slot (with windows into a device that may be gone).
TEST(PciBus, AFailedAddLeavesNoTrace) {
    Rig r;
    {
        FakeFunction bad({{0x4000, false}, {0x1000, true}, {0x3000, false}});
        ASSERT_FALSE(r.pci.add(bad));
    }
    FakeFunction good({});
    ASSERT_EQ(r.pci.add(good).value(), 1);
    r.decode(1, true);
    for (std::size_t bar = 0; bar < 6; ++bar) {
        EXPECT_EQ(r.pci.bar_address(1, bar), 0u) << "BAR " << bar;
        EXPECT_EQ(r.cfg_read(1, kOffBar0 + 4 * bar), 0u) << "BAR " << bar;
    }
    EXPECT_FALSE(r.mmio_read(kWindows.low_start));
    EXPECT_FALSE(r.mmio_read(kWindows.high_start));
}

// Each remap retries a refused placement; the guest can ask for one as often as it likes. The
// log gets the rate limit's burst, and the refused device's count has every refusal.
TEST(PciBus, RefusedPlacementsRepeatedLogAtMostTheBurst) {
    Rig r;
    FakeFunction a({{0x4000, false}}), b({{0x4000, false}}), wide({{0x8000, true}});
    ASSERT_TRUE(r.pci.add(a));
    ASSERT_TRUE(r.pci.add(b));
    ASSERT_TRUE(r.pci.add(wide));
    for (std::uint8_t slot : {1, 2, 3})
        r.decode(slot, true);
    const std::uint64_t at = r.pci.bar_address(1, 0);
    const std::string log = test::captured_log([&] {
        for (int i = 0; i < 1000; ++i) {
            r.cfg_write(2, kOffBar0, static_cast<std::uint32_t>(at));  // on a's BAR
            r.cfg_write(3, kOffBar0, 0xffff'ffff);                     // base + size wraps
            r.cfg_write(3, kOffBar0 + 4, 0xffff'ffff);
        }
    });
    EXPECT_EQ(r.pci.bar_address(2, 0), 0u);
    EXPECT_EQ(r.pci.bar_address(3, 0), 0u);
    EXPECT_LE(test::lines_with(log, "PCI fake: BAR 0"), 2 * RateLimit{}.burst) << log;
    const GuestWarnings::Counts cb = b.warnings().counts(), cw = wide.warnings().counts();
    EXPECT_EQ(cb.warned + cb.suppressed, 1000u);
    EXPECT_LE(cb.warned, RateLimit{}.burst);
    EXPECT_GE(cw.warned + cw.suppressed, 1000u);
    EXPECT_LE(cw.warned, RateLimit{}.burst);
    EXPECT_EQ(a.warnings().counts(), GuestWarnings::Counts{}) << "a did nothing wrong";
}

// ---- snapshots ----

// The guest moved BARs and turned decoding on; a fresh bus with the same functions, each
// with its command register back, gets every BAR where the guest had it, mapped, and
// CONFIG_ADDRESS as it was.
TEST(PciBusState, BarsGoBackWhereTheGuestPutThem) {
    Rig a;
    FakeFunction f({{0x4000, false}, {0x8000, true}}), g({{0x1000, false}});
    ASSERT_TRUE(a.pci.add(f));
    ASSERT_TRUE(a.pci.add(g));
    a.decode(1, true);
    a.cfg_write(1, kOffBar0, 0xd000'0000u);
    a.cfg_write(1, kOffBar0 + 8, 0x18);
    a.cfg_write(1, kOffBar0 + 4, 0);
    a.select(Rig::address(2, 0x10));
    const PciBusState saved = a.pci.state();
    ASSERT_EQ(saved.bars.size(), 3u);

    Rig b;
    FakeFunction f2({{0x4000, false}, {0x8000, true}}), g2({{0x1000, false}});
    ASSERT_TRUE(b.pci.add(f2));
    ASSERT_TRUE(b.pci.add(g2));
    f2.config().write(kOffCommand, std::vector<std::uint8_t>{kCommandMemory, 0});  // its state
    ASSERT_TRUE(b.pci.restore(saved));
    EXPECT_EQ(b.pci.bar_address(1, 0), 0xd000'0000u);
    EXPECT_EQ(b.pci.bar_address(1, 1), 0x18'0000'0000u);
    EXPECT_EQ(b.pci.bar_address(2, 0), 0u) << "function 2 does not decode";
    EXPECT_TRUE(b.mmio_read(0xd000'0000));
    EXPECT_TRUE(b.mmio_read(0x18'0000'7ffc));
    EXPECT_EQ(f2.placed.back().where, 0x18'0000'0000u) << "the function was told";
    std::uint32_t addr = 0;
    b.pci.read(0, std::span(reinterpret_cast<std::uint8_t*>(&addr), 4));
    EXPECT_EQ(addr, Rig::address(2, 0x10));
    // What the guest reads back of the BARs is what it wrote.
    for (std::size_t reg = kOffBar0; reg < kOffBarEnd; reg += 4)
        EXPECT_EQ(b.cfg_read(1, reg), a.cfg_read(1, reg)) << reg;
}

TEST(PciBusState, ASavedBusThatIsNotThisOneIsRefused) {
    Rig a;
    FakeFunction f({{0x4000, false}, {0x8000, true}});
    ASSERT_TRUE(a.pci.add(f));
    const PciBusState good = a.pci.state();
    std::vector<std::pair<const char*, std::function<void(PciBusState&)>>> bad = {
        {"a BAR left out", [](PciBusState& s) { s.bars.pop_back(); }},
        {"a BAR twice", [](PciBusState& s) { s.bars[1] = s.bars[0]; }},
        {"another size", [](PciBusState& s) { s.bars[0].size = 0x8000; }},
        {"an empty slot", [](PciBusState& s) { s.bars[0].slot = 5; }},
        {"the host bridge", [](PciBusState& s) { s.bars[0].slot = 0; }},
        {"an upper half", [](PciBusState& s) { s.bars[1].index = 2; }},
        {"an index past the header", [](PciBusState& s) { s.bars[1].index = 9; }},
        {"a 32-bit BAR above 4 GiB", [](PciBusState& s) { s.bars[0].address = 1ull << 32; }},
    };
    for (auto& [why, change] : bad) {
        PciBusState s = good;
        change(s);
        EXPECT_FALSE(a.pci.restore(s)) << why;
        EXPECT_EQ(a.pci.state().bars[0].address, good.bars[0].address) << why;
    }
}

}  // namespace
}  // namespace stockade::pci
