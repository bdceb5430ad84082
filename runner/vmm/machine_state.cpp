#include "runner/vmm/machine_state.hpp"

#include <algorithm>
#include <cstring>

#include "base/state_codec.hpp"

namespace stockade {
namespace {

constexpr char kMagic[8] = {'s', 't', 'o', 'c', 'k', 'a', 'd', 'e'};
constexpr std::size_t kMaxVcpusInState = 254;
constexpr std::size_t kMaxFunctions = 31;
constexpr std::size_t kMaxQueues = 1024;
constexpr std::size_t kMaxMsixVectors = 2048;
constexpr std::size_t kMaxMsrs = 1024;
constexpr std::size_t kMaxBars = kMaxFunctions * 6;

// Every structure is described once, as a walk over its fields that both directions take:
// Out writes each field, In reads it back into place (so the two cannot disagree, and the
// encoding stays canonical). A sequence is its count, then its elements.
struct Out {
    StateWriter& w;
    template <typename T>
    void number(std::string_view, const T& v) {
        if constexpr (sizeof(T) == 1) w.u8(v);
        if constexpr (sizeof(T) == 2) w.u16(v);
        if constexpr (sizeof(T) == 4) w.u32(v);
        if constexpr (sizeof(T) == 8) w.u64(v);
    }
    void boolean(std::string_view, bool v) { w.boolean(v); }
    template <typename T>
    void raw(std::string_view, const T& v) {
        w.raw(v);
    }
    template <typename Seq, typename Each>
    void sequence(std::string_view, std::size_t, std::size_t, const Seq& s, Each each) {
        w.count(s.size());
        for (const auto& e : s)
            each(*this, e);
    }
    void bytes(std::string_view, std::span<const std::uint8_t> b, std::size_t) { w.bytes(b); }
};

struct In {
    StateReader& r;
    template <typename T>
    void number(std::string_view what, T& v) {
        if constexpr (sizeof(T) == 1) v = r.u8(what);
        if constexpr (sizeof(T) == 2) v = r.u16(what);
        if constexpr (sizeof(T) == 4) v = r.u32(what);
        if constexpr (sizeof(T) == 8) v = r.u64(what);
    }
    void boolean(std::string_view what, bool& v) { v = r.boolean(what); }
    template <typename T>
    void raw(std::string_view what, T& v) {
        r.raw(what, v);
    }
    // At most `max` elements, each at least `min_bytes` of the input.
    template <typename Seq, typename Each>
    void sequence(std::string_view what, std::size_t max, std::size_t min_bytes, Seq& s,
                  Each each) {
        s.resize(r.count(what, max, min_bytes));
        for (auto& e : s)
            each(*this, e);
    }
    std::span<const std::uint8_t> bytes(std::string_view what, std::size_t max) {
        return r.bytes(what, max);
    }
};

template <typename IO, typename V>
void vcpu(IO& io, V& v) {
    io.raw("registers", v.regs);
    io.raw("special registers", v.sregs);
    io.raw("XSAVE", v.xsave);
    io.raw("XCRs", v.xcrs);
    io.raw("LAPIC", v.lapic);
    io.sequence("MSRs", kMaxMsrs, 12, v.msrs, [](auto& o, auto& m) {
        o.number("MSR index", m.index);
        o.number("MSR value", m.data);
    });
    io.raw("pending events", v.events);
    io.raw("debug registers", v.debugregs);
    io.number("MP state", v.mp_state);
    io.number("TSC frequency", v.tsc_khz);
}

template <typename IO, typename V>
void vm(IO& io, V& v) {
    io.raw("master PIC", v.pic_master);
    io.raw("slave PIC", v.pic_slave);
    io.raw("IOAPIC", v.ioapic);
    io.raw("PIT", v.pit);
    io.raw("kvmclock", v.clock);
}

template <typename IO, typename S>
void serial_registers(IO& io, S& s) {
    for (auto* reg : {&s.ier, &s.lcr, &s.mcr, &s.scr, &s.dll, &s.dlm, &s.fcr})
        io.number("UART register", *reg);
    io.boolean("UART THR interrupt", s.thr_interrupt);
    io.boolean("UART overrun", s.overrun);
}

template <typename IO, typename S>
void pci_bus(IO& io, S& s) {
    io.number("CONFIG_ADDRESS", s.config_address);
    io.sequence("BARs", kMaxBars, 18, s.bars, [](auto& o, auto& b) {
        o.number("BAR slot", b.slot);
        o.number("BAR index", b.index);
        o.number("BAR size", b.size);
        o.number("BAR address", b.address);
    });
}

template <typename IO, typename S>
void msix(IO& io, S& s) {
    io.number("MSI-X control", s.control);
    io.sequence("MSI-X vectors", kMaxMsixVectors, 16, s.entries, [](auto& o, auto& e) {
        o.number("MSI-X address", e.address);
        o.number("MSI-X data", e.data);
        o.number("MSI-X vector control", e.control);
    });
}

// The transport without its configuration space and pending bits (their encodings differ by
// direction: encode_function and decode_function).
template <typename IO, typename S>
void transport_registers(IO& io, S& s) {
    msix(io, s.msix);
    io.number("device feature select", s.device_feature_select);
    io.number("driver feature select", s.driver_feature_select);
    io.number("driver features", s.driver_features);
    io.number("configuration vector", s.msix_config);
    io.number("device status", s.status);
    io.number("ISR", s.isr);
    io.number("configuration generation", s.config_generation);
    io.number("queue select", s.queue_select);
    io.sequence("queues", kMaxQueues, 29, s.queues, [](auto& o, auto& q) {
        o.number("queue size", q.size);
        o.number("descriptor table", q.desc);
        o.number("driver area", q.driver);
        o.number("device area", q.device);
        o.number("queue vector", q.msix_vector);
        o.boolean("queue enabled", q.enabled);
    });
}

template <typename IO, typename S>
void device(IO& io, S& s) {
    io.sequence("queue positions", kMaxQueues, 4, s.queues, [](auto& o, auto& p) {
        o.number("next available", p.next_avail);
        o.number("next used", p.next_used);
    });
}

void encode_function(Out& o, const FunctionState& f) {
    o.number("function slot", f.slot);
    o.bytes("configuration space", f.transport.config, f.transport.config.size());
    transport_registers(o, f.transport);
    std::vector<std::uint8_t> pending(f.transport.msix.entries.size(), 0);
    for (std::size_t v = 0; v < pending.size() && v < f.transport.msix.pending.size(); ++v)
        pending[v] = f.transport.msix.pending[v] ? 1 : 0;
    o.bytes("MSI-X pending", pending, kMaxMsixVectors);
    device(o, f.device);
}

void decode_function(In& i, FunctionState& f, std::uint8_t& previous) {
    i.number("function slot", f.slot);
    // Bus 0's slots 1..31 (0 is the host bridge), each once, in slot order.
    if (i.r.ok() && (f.slot <= previous || f.slot > kMaxFunctions))
        i.r.invalid("function slot", "slot {} after slot {}", f.slot, previous);
    previous = f.slot;
    const auto config = i.bytes("configuration space", f.transport.config.size());
    if (config.size() == f.transport.config.size())
        std::memcpy(f.transport.config.data(), config.data(), config.size());
    else
        i.r.invalid("configuration space", "{} bytes, not {}", config.size(),
                    f.transport.config.size());
    transport_registers(i, f.transport);
    const auto pending = i.bytes("MSI-X pending", kMaxMsixVectors);
    if (i.r.ok() && (pending.size() != f.transport.msix.entries.size() ||
                     std::any_of(pending.begin(), pending.end(), [](auto b) { return b > 1; })))
        i.r.invalid("MSI-X pending", "{} bits of 0 or 1 wanted, one per vector",
                    f.transport.msix.entries.size());
    f.transport.msix.pending.assign(pending.begin(), pending.end());
    device(i, f.device);
}

}  // namespace

std::vector<std::uint8_t> encode_machine_state(const MachineState& state) {
    StateWriter w;
    Out o{w};
    for (char c : kMagic)
        w.u8(static_cast<std::uint8_t>(c));
    w.u32(kMachineStateVersion);
    o.sequence("vCPUs", kMaxVcpusInState, 0, state.vcpus,
               [](Out& io, const kvm::VcpuState& v) { vcpu(io, v); });
    vm(o, state.vm);
    serial_registers(o, state.serial);
    w.bytes(std::vector<std::uint8_t>(state.serial.rx.begin(), state.serial.rx.end()));
    pci_bus(o, state.pci);
    o.sequence("PCI functions", kMaxFunctions, 0, state.functions,
               [](Out& io, const FunctionState& f) { encode_function(io, f); });
    return w.take();
}

Result<MachineState> decode_machine_state(std::span<const std::uint8_t> bytes) {
    StateReader r(bytes);
    In i{r};
    char magic[sizeof kMagic];
    for (char& c : magic)
        c = static_cast<char>(r.u8("magic"));
    if (r.ok() && std::memcmp(magic, kMagic, sizeof kMagic) != 0)
        r.invalid("magic", "not a stockade machine state");
    if (const std::uint32_t version = r.u32("version"); r.ok() && version != kMachineStateVersion)
        r.invalid("version", "{} (this stockade reads {})", version, kMachineStateVersion);
    MachineState s;
    // Each vCPU's state is several KiB (XSAVE alone is 4 KiB): a count is checked against
    // the bytes left at the smallest a vCPU can take.
    i.sequence("vCPUs", kMaxVcpusInState, sizeof(kvm_xsave), s.vcpus,
               [](In& io, kvm::VcpuState& v) { vcpu(io, v); });
    vm(i, s.vm);
    serial_registers(i, s.serial);
    const auto rx = r.bytes("UART receive bytes", kMaxSerialInput + kSerialFifo);
    s.serial.rx.assign(rx.begin(), rx.end());
    pci_bus(i, s.pci);
    std::uint8_t previous = 0;
    i.sequence("PCI functions", kMaxFunctions, 256, s.functions,
               [&previous](In& io, FunctionState& f) { decode_function(io, f, previous); });
    STOCKADE_TRY_VOID(r.finish("machine state"));
    return s;
}

}  // namespace stockade
