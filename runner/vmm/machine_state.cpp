#include "runner/vmm/machine_state.hpp"

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

// ---- vCPUs and the VM ----

void put(StateWriter& w, const kvm::VcpuState& v) {
    w.raw(v.regs);
    w.raw(v.sregs);
    w.raw(v.xsave);
    w.raw(v.xcrs);
    w.raw(v.lapic);
    w.count(v.msrs.size());
    for (const kvm_msr_entry& m : v.msrs) {
        w.u32(m.index);
        w.u64(m.data);
    }
    w.raw(v.events);
    w.raw(v.debugregs);
    w.u32(v.mp_state);
    w.u32(v.tsc_khz);
}

void get(StateReader& r, kvm::VcpuState& v) {
    r.raw("registers", v.regs);
    r.raw("special registers", v.sregs);
    r.raw("XSAVE", v.xsave);
    r.raw("XCRs", v.xcrs);
    r.raw("LAPIC", v.lapic);
    v.msrs.resize(r.count("MSRs", kMaxMsrs, 12));
    for (kvm_msr_entry& m : v.msrs) {
        m = kvm_msr_entry{};
        m.index = r.u32("MSR index");
        m.data = r.u64("MSR value");
    }
    r.raw("pending events", v.events);
    r.raw("debug registers", v.debugregs);
    v.mp_state = r.u32("MP state");
    v.tsc_khz = r.u32("TSC frequency");
}

void put(StateWriter& w, const kvm::VmState& v) {
    w.raw(v.pic_master);
    w.raw(v.pic_slave);
    w.raw(v.ioapic);
    w.raw(v.pit);
    w.raw(v.clock);
}

void get(StateReader& r, kvm::VmState& v) {
    r.raw("master PIC", v.pic_master);
    r.raw("slave PIC", v.pic_slave);
    r.raw("IOAPIC", v.ioapic);
    r.raw("PIT", v.pit);
    r.raw("kvmclock", v.clock);
}

// ---- the UART ----

void put(StateWriter& w, const SerialState& s) {
    for (std::uint8_t reg : {s.ier, s.lcr, s.mcr, s.scr, s.dll, s.dlm, s.fcr})
        w.u8(reg);
    w.boolean(s.thr_interrupt);
    w.boolean(s.overrun);
    w.bytes(std::vector<std::uint8_t>(s.rx.begin(), s.rx.end()));
}

void get(StateReader& r, SerialState& s) {
    for (std::uint8_t* reg : {&s.ier, &s.lcr, &s.mcr, &s.scr, &s.dll, &s.dlm, &s.fcr})
        *reg = r.u8("UART register");
    s.thr_interrupt = r.boolean("UART THR interrupt");
    s.overrun = r.boolean("UART overrun");
    const auto rx = r.bytes("UART receive bytes", kMaxSerialInput + kSerialFifo);
    s.rx.assign(rx.begin(), rx.end());
}

// ---- PCI ----

void put(StateWriter& w, const pci::PciBusState& s) {
    w.u32(s.config_address);
    w.count(s.bars.size());
    for (const auto& b : s.bars) {
        w.u8(b.slot);
        w.u8(b.index);
        w.u64(b.size);
        w.u64(b.address);
    }
}

void get(StateReader& r, pci::PciBusState& s) {
    s.config_address = r.u32("CONFIG_ADDRESS");
    s.bars.resize(r.count("BARs", kMaxBars, 18));
    for (auto& b : s.bars) {
        b.slot = r.u8("BAR slot");
        b.index = r.u8("BAR index");
        b.size = r.u64("BAR size");
        b.address = r.u64("BAR address");
    }
}

void put(StateWriter& w, const pci::MsixState& s) {
    w.u16(s.control);
    w.count(s.entries.size());
    for (std::size_t v = 0; v < s.entries.size(); ++v) {
        w.u64(s.entries[v].address);
        w.u32(s.entries[v].data);
        w.u32(s.entries[v].control);
        w.boolean(v < s.pending.size() && s.pending[v]);
    }
}

void get(StateReader& r, pci::MsixState& s) {
    s.control = r.u16("MSI-X control");
    const std::size_t n = r.count("MSI-X vectors", kMaxMsixVectors, 17);
    s.entries.resize(n);
    s.pending.assign(n, false);
    for (std::size_t v = 0; v < n; ++v) {
        s.entries[v].address = r.u64("MSI-X address");
        s.entries[v].data = r.u32("MSI-X data");
        s.entries[v].control = r.u32("MSI-X vector control");
        s.pending[v] = r.boolean("MSI-X pending");
    }
}

void put(StateWriter& w, const virtio::TransportState& s) {
    w.bytes(s.config);
    put(w, s.msix);
    w.u32(s.device_feature_select);
    w.u32(s.driver_feature_select);
    w.u64(s.driver_features);
    w.u16(s.msix_config);
    w.u8(s.status);
    w.u8(s.isr);
    w.u8(s.config_generation);
    w.u16(s.queue_select);
    w.count(s.queues.size());
    for (const virtio::QueueSetup& q : s.queues) {
        w.u16(q.size);
        w.u64(q.desc);
        w.u64(q.driver);
        w.u64(q.device);
        w.u16(q.msix_vector);
        w.boolean(q.enabled);
    }
}

void get(StateReader& r, virtio::TransportState& s) {
    const auto config = r.bytes("configuration space", s.config.size());
    if (config.size() == s.config.size())
        std::memcpy(s.config.data(), config.data(), config.size());
    else
        r.invalid("configuration space", "{} bytes, not {}", config.size(), s.config.size());
    get(r, s.msix);
    s.device_feature_select = r.u32("device feature select");
    s.driver_feature_select = r.u32("driver feature select");
    s.driver_features = r.u64("driver features");
    s.msix_config = r.u16("configuration vector");
    s.status = r.u8("device status");
    s.isr = r.u8("ISR");
    s.config_generation = r.u8("configuration generation");
    s.queue_select = r.u16("queue select");
    s.queues.resize(r.count("queues", kMaxQueues, 29));
    for (virtio::QueueSetup& q : s.queues) {
        q.size = r.u16("queue size");
        q.desc = r.u64("descriptor table");
        q.driver = r.u64("driver area");
        q.device = r.u64("device area");
        q.msix_vector = r.u16("queue vector");
        q.enabled = r.boolean("queue enabled");
    }
}

void put(StateWriter& w, const virtio::DeviceState& s) {
    w.count(s.queues.size());
    for (const virtio::QueuePosition& p : s.queues) {
        w.u16(p.next_avail);
        w.u16(p.next_used);
    }
}

void get(StateReader& r, virtio::DeviceState& s) {
    s.queues.resize(r.count("queue positions", kMaxQueues, 4));
    for (virtio::QueuePosition& p : s.queues) {
        p.next_avail = r.u16("next available");
        p.next_used = r.u16("next used");
    }
}

}  // namespace

std::vector<std::uint8_t> encode_machine_state(const MachineState& state) {
    StateWriter w;
    for (char c : kMagic)
        w.u8(static_cast<std::uint8_t>(c));
    w.u32(kMachineStateVersion);
    w.count(state.vcpus.size());
    for (const kvm::VcpuState& v : state.vcpus)
        put(w, v);
    put(w, state.vm);
    put(w, state.serial);
    put(w, state.pci);
    w.count(state.functions.size());
    for (const FunctionState& f : state.functions) {
        w.u8(f.slot);
        put(w, f.transport);
        put(w, f.device);
    }
    return w.take();
}

Result<MachineState> decode_machine_state(std::span<const std::uint8_t> bytes) {
    StateReader r(bytes);
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
    s.vcpus.resize(r.count("vCPUs", kMaxVcpusInState, sizeof(kvm_xsave)));
    for (kvm::VcpuState& v : s.vcpus)
        get(r, v);
    get(r, s.vm);
    get(r, s.serial);
    get(r, s.pci);
    s.functions.resize(r.count("PCI functions", kMaxFunctions, 256));
    std::uint8_t previous = 0;
    for (FunctionState& f : s.functions) {
        f.slot = r.u8("function slot");
        // Bus 0's slots 1..31 (0 is the host bridge), each once, in slot order.
        if (r.ok() && (f.slot <= previous || f.slot > kMaxFunctions))
            r.invalid("function slot", "slot {} after slot {}", f.slot, previous);
        previous = f.slot;
        get(r, f.transport);
        get(r, f.device);
    }
    STOCKADE_TRY_VOID(r.finish("machine state"));
    return s;
}

}  // namespace stockade
