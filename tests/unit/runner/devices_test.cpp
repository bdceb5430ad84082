// UART, bus and platform devices, driven the way the guest's drivers drive them.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runner/arch/x86/acpi.hpp"
#include "runner/devices/bus.hpp"
#include "runner/devices/platform.hpp"
#include "runner/devices/serial.hpp"

namespace stockade {
namespace {

struct SerialRig {
    std::string console, terminal;
    std::vector<bool> irq_edges;
    Serial uart{[this](SerialStream s, std::span<const std::uint8_t> d) {
                    (s == SerialStream::console ? console : terminal).append(d.begin(), d.end());
                },
                [this](bool level) { irq_edges.push_back(level); }};
    std::uint8_t in(std::uint64_t reg) {
        std::uint8_t v = 0;
        uart.read(reg, std::span(&v, 1));
        return v;
    }
    void out(std::uint64_t reg, std::uint8_t v) { uart.write(reg, std::span(&v, 1)); }
    [[nodiscard]] bool irq() const { return !irq_edges.empty() && irq_edges.back(); }
};

enum : std::uint64_t {
    THR = 0,
    IER = 1,
    IIR = 2,
    FCR = 2,
    LCR = 3,
    MCR = 4,
    LSR = 5,
    MSR = 6,
    SCR = 7
};

TEST(Serial, RegistersHoldWhatTheDriverProbes) {
    SerialRig r;
    r.out(IER, 0x0f);
    EXPECT_EQ(r.in(IER), 0x0f);
    r.out(IER, 0xff);
    EXPECT_EQ(r.in(IER), 0x0f) << "only four IER bits exist";
    r.out(IER, 0);
    r.out(SCR, 0xa5);
    EXPECT_EQ(r.in(SCR), 0xa5);
    r.out(LCR, 0x80);  // DLAB
    r.out(THR, 0x01);
    r.out(IER, 0x00);
    EXPECT_EQ(r.in(THR), 0x01) << "DLL";
    EXPECT_EQ(r.in(IER), 0x00) << "DLM";
    r.out(LCR, 0x03);
    EXPECT_EQ(r.in(LCR), 0x03);
    EXPECT_EQ(r.in(LSR)&0x60, 0x60) << "THRE and TEMT: transmitter always empty";
    EXPECT_EQ(r.in(IIR), 0x01) << "no interrupt, FIFOs off";
    r.out(FCR, 0x01);
    EXPECT_EQ(r.in(IIR)&0xc0, 0xc0) << "16550A FIFO bits";
    EXPECT_EQ(r.in(MSR)&0xb0, 0xb0) << "DCD, DSR, CTS";
    r.out(MCR, 0x10 | 0x0a);  // loopback with RTS and OUT2
    EXPECT_EQ(r.in(MSR)&0xf0, 0x90) << "loopback maps RTS->CTS, OUT2->DCD";
    EXPECT_TRUE(r.console.empty() && r.terminal.empty());
}

TEST(Serial, OutputIsClassifiedByWhoWroteIt) {
    SerialRig r;
    for (char c : std::string("boot msg"))
        r.out(THR, static_cast<std::uint8_t>(c));
    (void)r.in(LSR);   // the console driver polls LSR between bytes
    r.out(IER, 0x02);  // the tty layer enables THRI, then writes from its interrupt
    for (char c : std::string("workload"))
        r.out(THR, static_cast<std::uint8_t>(c));
    r.out(IER, 0x00);
    r.uart.flush();
    EXPECT_EQ(r.console, "boot msg");
    EXPECT_EQ(r.terminal, "workload");
}

TEST(Serial, ThrEmptyInterruptFollowsTheDriverProtocol) {
    SerialRig r;
    r.out(IER, 0x02);
    EXPECT_TRUE(r.irq()) << "enabling THRI with an empty THR interrupts";
    EXPECT_EQ(r.in(IIR)&0x0f, 0x02);
    EXPECT_FALSE(r.irq()) << "reading IIR acknowledges THRE";
    EXPECT_EQ(r.in(IIR)&0x0f, 0x01);
    r.out(THR, 'x');
    EXPECT_TRUE(r.irq()) << "sent at once: THR empty again";
    r.out(IER, 0x00);
    EXPECT_FALSE(r.irq()) << "masked";
}

TEST(Serial, ReceivedBytesRaiseDataReadyAndAreReadInOrder) {
    SerialRig r;
    const std::uint8_t in[] = {'h', 'i', 0xff, 0x00};
    r.uart.push_input(in);
    EXPECT_FALSE(r.irq()) << "receive interrupt not enabled yet";
    EXPECT_EQ(r.in(LSR)&0x01, 0x01);
    r.out(IER, 0x01);
    EXPECT_TRUE(r.irq());
    EXPECT_EQ(r.in(IIR)&0x0f, 0x04);
    std::vector<std::uint8_t> got;
    while (r.in(LSR)&0x01)
        got.push_back(r.in(THR));
    EXPECT_EQ(got, std::vector<std::uint8_t>(std::begin(in), std::end(in)));
    EXPECT_FALSE(r.irq());
    EXPECT_EQ(r.uart.pending_input(), 0u);
    EXPECT_EQ(r.in(THR), 0) << "empty receiver reads 0";
}

TEST(Serial, StateRoundTripsForSnapshots) {
    SerialRig a;
    a.out(IER, 0x03);
    a.out(LCR, 0x1b);
    a.out(SCR, 0x42);
    const std::uint8_t in[] = {'q'};
    a.uart.push_input(in);
    SerialRig b;
    b.uart.restore(a.uart.state());
    EXPECT_EQ(b.in(IER), 0x03);
    EXPECT_EQ(b.in(LCR), 0x1b);
    EXPECT_EQ(b.in(SCR), 0x42);
    EXPECT_TRUE(b.irq());
    EXPECT_EQ(b.in(THR), 'q');
}

// A guest looping on THR in loopback mode fills a 16550's receive FIFO and no more.
TEST(Serial, LoopbackHoldsOnlyItsFifoAndReportsTheOverrun) {
    SerialRig r;
    r.out(MCR, 0x10);
    for (int i = 0; i < 1'000'000; ++i)
        r.out(THR, static_cast<std::uint8_t>(i));
    EXPECT_LE(r.uart.pending_input(), kSerialFifo);
    EXPECT_EQ(r.in(LSR)&0x03, 0x03) << "data ready, overrun";
    EXPECT_EQ(r.in(LSR)&0x02, 0x00) << "reading LSR clears OE";
    for (int i = 0; i < 16; ++i)
        EXPECT_EQ(r.in(THR), i) << "the first sixteen, in order";
    EXPECT_EQ(r.uart.pending_input(), 0u);
    EXPECT_TRUE(r.console.empty() && r.terminal.empty()) << "loopback sends nothing out";
}

TEST(Serial, AnOverrunRaisesTheLineStatusInterruptWhenEnabled) {
    SerialRig r;
    r.out(MCR, 0x10);
    r.out(IER, 0x04);  // receiver line status only
    for (int i = 0; i < 16; ++i)
        r.out(THR, 'x');
    EXPECT_FALSE(r.irq());
    r.out(THR, 'y');
    EXPECT_TRUE(r.irq());
    EXPECT_EQ(r.in(IIR)&0x0f, 0x06);
    EXPECT_EQ(r.in(LSR)&0x02, 0x02);
    EXPECT_FALSE(r.irq()) << "reading LSR acknowledges it";
}

TEST(Serial, HostInputWaitingForTheGuestIsBounded) {
    SerialRig r;
    const std::vector<std::uint8_t> input(kMaxSerialInput + 1000, 'a');
    EXPECT_EQ(r.uart.push_input(input), kMaxSerialInput);
    EXPECT_EQ(r.uart.push_input(input), 0u);
    EXPECT_EQ(r.uart.pending_input(), kMaxSerialInput);
    EXPECT_EQ(r.in(LSR)&0x03, 0x03) << "data ready, overrun";
}

struct Recorder : BusDevice {
    std::vector<std::pair<std::uint64_t, std::size_t>> reads, writes;
    void read(std::uint64_t off, std::span<std::uint8_t> d) override {
        reads.emplace_back(off, d.size());
        std::fill(d.begin(), d.end(), 0x5a);
    }
    void write(std::uint64_t off, std::span<const std::uint8_t> d) override {
        writes.emplace_back(off, d.size());
    }
};

TEST(Bus, DispatchesByRangeAndRefusesOverlapsAndStraddles) {
    Bus bus("test");
    Recorder a, b;
    ASSERT_TRUE(bus.add(0x100, 8, a, "a"));
    ASSERT_TRUE(bus.add(0x108, 4, b, "b"));
    auto overlap = bus.add(0x104, 8, b, "c");
    ASSERT_FALSE(overlap);
    EXPECT_NE(overlap.error().message.find("overlaps a"), std::string::npos);
    EXPECT_FALSE(bus.add(0x200, 0, a, "empty"));
    EXPECT_FALSE(bus.add(~0ull - 1, 8, a, "wraps"));

    std::uint8_t buf[4];
    EXPECT_TRUE(bus.read(0x103, std::span(buf, 1)));
    EXPECT_EQ(a.reads.back(), std::make_pair(std::uint64_t{3}, std::size_t{1}));
    EXPECT_TRUE(bus.write(0x10b, std::span<const std::uint8_t>(buf, 1)));
    EXPECT_EQ(b.writes.back().first, 3u);
    EXPECT_FALSE(bus.read(0x106, std::span(buf, 4))) << "straddles a and b";
    EXPECT_EQ(buf[0], 0xff) << "unmapped reads see all ones";
    EXPECT_FALSE(bus.write(0x0ff, std::span<const std::uint8_t>(buf, 2)));
    EXPECT_FALSE(bus.read(0x10c, std::span(buf, 1)));
}

TEST(Platform, EachDeviceReportsOnlyItsEvent) {
    std::vector<PlatformEvent> seen;
    PlatformEventSink sink = [&](const PlatformEvent& e) { seen.push_back(e); };
    I8042 kbd(sink);
    AcpiSleep sleep(sink);
    PvPanic panic(sink);
    AgentPort agent(sink);
    auto w8 = [](BusDevice& d, std::uint64_t off, std::uint8_t v) {
        d.write(off, std::span(&v, 1));
    };

    w8(kbd, 0, 0xfe);  // data port: not a command
    w8(kbd, 4, 0xd1);  // another command
    EXPECT_TRUE(seen.empty());
    std::uint8_t status = 0xff;
    kbd.read(4, std::span(&status, 1));
    EXPECT_EQ(status & 0x02, 0) << "input buffer empty, so the reset loop proceeds";
    w8(kbd, 4, 0xfe);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_EQ(seen.back().kind, PlatformEventKind::reset);

    w8(sleep, 0, 5u << 2);                                                   // S5 without SLP_EN
    w8(sleep, 0, static_cast<std::uint8_t>((3u << 2) | x86::kSleepEnable));  // S3
    EXPECT_EQ(seen.size(), 1u);
    w8(sleep, 0, static_cast<std::uint8_t>((5u << 2) | x86::kSleepEnable));
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen.back().kind, PlatformEventKind::poweroff);

    std::uint8_t caps = 0;
    panic.read(0, std::span(&caps, 1));
    EXPECT_EQ(caps & 1, 1);
    w8(panic, 0, 2);  // crash kernel loaded: not a panic
    EXPECT_EQ(seen.size(), 2u);
    w8(panic, 0, 1);
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_EQ(seen.back().kind, PlatformEventKind::panic);

    auto w32 = [&](std::uint32_t v) {
        agent.write(0, std::span(reinterpret_cast<std::uint8_t*>(&v), 4));
    };
    w32(0x0000'0207);    // no magic
    w8(agent, 0, 0x53);  // a byte write
    EXPECT_EQ(seen.size(), 3u);
    w32(guest_abi::encode(guest_abi::Event::exited, 42));
    ASSERT_EQ(seen.size(), 4u);
    EXPECT_EQ(seen.back().kind, PlatformEventKind::agent);
    EXPECT_EQ(guest_abi::arg_of(seen.back().agent_value), 42);
}

}  // namespace
}  // namespace stockade
