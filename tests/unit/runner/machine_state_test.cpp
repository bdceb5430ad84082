// The bytes of a machine's snapshot state: a state with something in every field encodes and
// decodes to the same bytes; anything cut short, extended, of another version, or with a
// count beyond what the machine model allows is refused, naming what was being read.
#include <gtest/gtest.h>

#include "runner/vmm/machine_state.hpp"

namespace stockade {
namespace {

MachineState sample_machine_state() {
    MachineState s;
    for (int v = 0; v < 2; ++v) {
        kvm::VcpuState c;
        c.regs.rip = 0xfff0 + static_cast<std::uint64_t>(v);
        c.regs.rax = 0x1234;
        c.sregs.cr0 = 0x80050033;
        c.xsave.region[3] = 0x77;
        c.xcrs.nr_xcrs = 1;
        c.lapic.regs[0x20] = static_cast<char>(v);
        c.msrs = {{0x10, 0, 123456789}, {0x4b564d01, 0, 0xabcd}};
        c.events.exception.injected = 1;
        c.debugregs.dr7 = 0x400;
        c.mp_state = 1;
        c.tsc_khz = 2'100'000;
        s.vcpus.push_back(c);
    }
    s.vm.pic_master.chip_id = 0;
    s.vm.ioapic.chip.ioapic.id = 2;
    s.vm.pit.flags = 1;
    s.vm.clock.clock = 987654321;
    s.serial.ier = 1;
    s.serial.mcr = 0x10;
    s.serial.rx = {'h', 'i'};
    s.serial.overrun = true;
    s.pci.config_address = 0x8000'0810;
    s.pci.bars = {{1, 0, 0x8000, 0x10'0000'0000}, {2, 0, 0x8000, 0x10'0000'8000}};
    for (std::uint8_t slot : {1, 2}) {
        FunctionState f;
        f.slot = slot;
        f.transport.config[0] = 0xf4;
        f.transport.config[255] = slot;
        f.transport.msix.control = 0x8000;
        f.transport.msix.entries = {{0xfee0'0000, 0x41, 0}, {0, 0, 1}};
        f.transport.msix.pending = {false, true};
        f.transport.driver_features = 1ull << 32;
        f.transport.status = 0xf;
        f.transport.msix_config = 1;
        f.transport.queue_select = 1;
        f.transport.queues = {{256, 0x1000, 0x2000, 0x3000, 0, true},
                              {256, 0, 0, 0, 0xffff, false}};
        f.device.queues = {{7, 5}, {0, 0}};
        s.functions.push_back(f);
    }
    return s;
}

TEST(MachineState, EncodesAndDecodesToTheSameBytes) {
    const auto bytes = encode_machine_state(sample_machine_state());
    auto decoded = decode_machine_state(bytes);
    ASSERT_TRUE(decoded) << decoded.error().message;
    EXPECT_EQ(encode_machine_state(*decoded), bytes);
    EXPECT_EQ(decoded->vcpus.at(1).regs.rip, 0xfff1u);
    EXPECT_EQ(decoded->vcpus[0].msrs.at(1).data, 0xabcdu);
    EXPECT_EQ(decoded->serial.rx.size(), 2u);
    EXPECT_TRUE(decoded->functions.at(1).transport.msix.pending.at(1));
    EXPECT_EQ(decoded->functions[1].device.queues.at(0).next_avail, 7);
    EXPECT_EQ(decoded->pci.bars.at(1).address, 0x10'0000'8000u);
}

TEST(MachineState, EveryTruncationAndExtensionIsRefused) {
    const auto bytes = encode_machine_state(sample_machine_state());
    // Every prefix would take long at 20 KiB; every length near each field boundary does
    // the same work: all of the first 64 bytes, then every 61st, then the last 64.
    for (std::size_t n = 0; n < bytes.size(); n += (n < 64 || n + 64 > bytes.size()) ? 1 : 61) {
        auto r = decode_machine_state(std::span(bytes).first(n));
        ASSERT_FALSE(r) << n;
        EXPECT_EQ(r.error().message.rfind("machine state: ", 0), 0u) << r.error().message;
    }
    auto longer = bytes;
    longer.push_back(0);
    EXPECT_FALSE(decode_machine_state(longer));
}

TEST(MachineState, AnotherVersionOrNoMagicIsRefusedSaying) {
    auto bytes = encode_machine_state(sample_machine_state());
    bytes[8] = 2;  // the version after the 8-byte magic
    auto r = decode_machine_state(bytes);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("version"), std::string::npos) << r.error().message;
    bytes[8] = 1;
    bytes[0] = 'x';
    r = decode_machine_state(bytes);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("not a stockade machine state"), std::string::npos);
}

TEST(MachineState, CountsBeyondTheMachineModelAreRefused) {
    MachineState s = sample_machine_state();
    s.functions.resize(32);  // bus 0 has 31 slots
    auto r = decode_machine_state(encode_machine_state(s));
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("PCI functions"), std::string::npos) << r.error().message;
    for (std::uint8_t slot : {0, 2, 32}) {  // the host bridge's, the next one's, past the bus
        s = sample_machine_state();
        s.functions[0].slot = slot;
        r = decode_machine_state(encode_machine_state(s));
        ASSERT_FALSE(r) << int{slot};
        EXPECT_NE(r.error().message.find("function slot"), std::string::npos) << r.error().message;
    }
    s = sample_machine_state();
    s.functions[0].transport.queues.resize(1025);
    EXPECT_FALSE(decode_machine_state(encode_machine_state(s)));
    s = sample_machine_state();
    s.functions[0].transport.msix.entries.resize(2049);
    s.functions[0].transport.msix.pending.resize(2049);
    EXPECT_FALSE(decode_machine_state(encode_machine_state(s)));
}

}  // namespace
}  // namespace stockade
