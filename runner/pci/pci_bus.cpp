#include "runner/pci/pci_bus.hpp"

#include <cstring>

namespace stockade::pci {
namespace {

constexpr std::uint32_t kConfigEnable = 0x8000'0000u;
constexpr std::uint32_t kBarMem64 = 0x4, kBarPrefetch = 0x8;

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
    return (v + a - 1) & ~(a - 1);
}

// The host bridge at 00:00.0: an identity and nothing else.
class HostBridge : public PciDevice {
  public:
    HostBridge() : config_({0x1b36, 0x0008, 0, 0x060000, 0x1b36, 0x0008}) {}
    std::string name() const override { return "host bridge"; }
    std::vector<BarSpec> bar_specs() const override { return {}; }
    void config_read(std::size_t off, std::span<std::uint8_t> out) override {
        config_.read(off, out);
    }
    void config_write(std::size_t off, std::span<const std::uint8_t> in) override {
        config_.write(off, in);
    }
    void bar_read(std::size_t, std::uint64_t, std::span<std::uint8_t> out) override {
        std::fill(out.begin(), out.end(), 0xff);
    }
    void bar_write(std::size_t, std::uint64_t, std::span<const std::uint8_t>) override {}

  private:
    ConfigSpace config_;
};

}  // namespace

// The MMIO-bus face of one BAR: forwards accesses to the device with the BAR's offset.
struct PciBus::Window : BusDevice {
    Window(PciDevice& d, std::size_t b) : device(d), bar(b) {}
    void read(std::uint64_t offset, std::span<std::uint8_t> data) override {
        device.bar_read(bar, offset, data);
    }
    void write(std::uint64_t offset, std::span<const std::uint8_t> data) override {
        device.bar_write(bar, offset, data);
    }
    PciDevice& device;
    std::size_t bar;
};

PciBus::PciBus(Bus& mmio, const MmioWindows& windows)
    : mmio_(mmio),
      windows_(windows),
      next_low_(windows.low_start),
      next_high_(windows.high_start),
      host_bridge_(std::make_unique<HostBridge>()) {
    slots_[0].device = host_bridge_.get();
}

PciBus::~PciBus() {
    for (auto& s : slots_)
        for (auto& b : s.bars)
            if (b.mapped_at != 0) mmio_.remove(b.mapped_at, *b.window);
}

Result<std::uint8_t> PciBus::add(PciDevice& device) {
    std::lock_guard lock(mu_);
    std::uint8_t slot = 1;
    while (slot < slots_.size() && slots_[slot].device != nullptr)
        ++slot;
    if (slot == slots_.size()) return fail("PCI bus 0 is full (31 devices)");
    const auto specs = device.bar_specs();
    // Assigned into copies, committed only when every BAR fits: a refused device leaves no
    // BARs (with windows into it) behind for the next device placed in this slot.
    std::array<Bar, 6> bars;
    std::uint64_t next_low = next_low_, next_high = next_high_;
    std::size_t index = 0;
    for (const BarSpec& spec : specs) {
        if (index >= 6) return fail("PCI {}: more BARs than fit in the header", device.name());
        Bar& b = bars[index];
        b.size = spec.size;
        b.is_64bit = spec.is_64bit;
        if (spec.size != 0) {
            if (spec.size < 4096 || (spec.size & (spec.size - 1)) != 0)
                return fail("PCI {}: BAR {} size {:#x} is not a power of two >= 4 KiB",
                            device.name(), index, spec.size);
            std::uint64_t& next = spec.is_64bit ? next_high : next_low;
            const std::uint64_t end = spec.is_64bit ? windows_.high_end : windows_.low_end;
            const std::uint64_t at = align_up(next, spec.size);
            if (at + spec.size > end)
                return fail("PCI {}: no room for BAR {} ({:#x} bytes)", device.name(), index,
                            spec.size);
            b.address = at;
            next = at + spec.size;
            b.window = std::make_unique<Window>(device, index);
        }
        if (spec.is_64bit) {
            if (index + 1 >= 6)
                return fail("PCI {}: 64-bit BAR {} has no upper half", device.name(), index);
            bars[index + 1].upper_half = true;
            index += 2;
        } else {
            ++index;
        }
    }
    Slot& s = slots_[slot];
    s.bars = std::move(bars);
    next_low_ = next_low;
    next_high_ = next_high;
    s.device = &device;
    return slot;
}

std::size_t PciBus::device_count() const {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (std::size_t i = 1; i < slots_.size(); ++i)
        n += slots_[i].device != nullptr;
    return n;
}

std::uint64_t PciBus::bar_address(std::uint8_t slot, std::size_t bar) const {
    std::lock_guard lock(mu_);
    return slot < slots_.size() && bar < 6 ? slots_[slot].bars[bar].mapped_at : 0;
}

PciBusState PciBus::state() const {
    std::lock_guard lock(mu_);
    PciBusState st{address_, {}};
    for (std::size_t slot = 1; slot < slots_.size(); ++slot) {
        if (slots_[slot].device == nullptr) continue;
        for (std::size_t i = 0; i < 6; ++i) {
            const Bar& b = slots_[slot].bars[i];
            if (b.size != 0 && !b.upper_half)
                st.bars.push_back({static_cast<std::uint8_t>(slot), static_cast<std::uint8_t>(i),
                                   b.size, b.address});
        }
    }
    return st;
}

Result<> PciBus::restore(const PciBusState& st) {
    std::lock_guard lock(mu_);
    std::size_t implemented = 0;
    for (std::size_t slot = 1; slot < slots_.size(); ++slot)
        if (slots_[slot].device != nullptr)
            for (const Bar& b : slots_[slot].bars)
                implemented += b.size != 0 && !b.upper_half;
    if (st.bars.size() != implemented)
        return fail("PCI: the saved bus has {} BARs, this one {}", st.bars.size(), implemented);
    std::array<std::array<bool, 6>, 32> seen{};
    for (const PciBusState::Bar& saved : st.bars) {
        const bool exists = saved.slot > 0 && saved.slot < slots_.size() && saved.index < 6 &&
                            slots_[saved.slot].device != nullptr &&
                            !slots_[saved.slot].bars[saved.index].upper_half &&
                            slots_[saved.slot].bars[saved.index].size == saved.size &&
                            saved.size != 0;
        if (!exists || seen[saved.slot][saved.index])
            return fail("PCI: the saved BAR {} of slot {} ({:#x} bytes) is not this bus's",
                        saved.index, saved.slot, saved.size);
        const Bar& b = slots_[saved.slot].bars[saved.index];
        if (!b.is_64bit && saved.address > 0xffff'ffffu)
            return fail("PCI: the saved 32-bit BAR {} of slot {} is at {:#x}", saved.index,
                        saved.slot, saved.address);
        seen[saved.slot][saved.index] = true;
    }
    address_ = st.config_address;
    for (const PciBusState::Bar& saved : st.bars) {
        Bar& b = slots_[saved.slot].bars[saved.index];
        b.address = saved.address & ~(b.size - 1);  // as a guest write leaves it
    }
    for (std::uint8_t slot = 1; slot < slots_.size(); ++slot)
        if (slots_[slot].device != nullptr) remap(slot);
    return {};
}

std::uint16_t PciBus::command(std::uint8_t slot) {
    std::uint16_t cmd = 0;
    slots_[slot].device->config_read(kOffCommand,
                                     std::span(reinterpret_cast<std::uint8_t*>(&cmd), 2));
    return cmd;
}

// Puts every memory BAR of `slot` where the guest programmed it, if decoding is on.
// Called with mu_ held; takes the MMIO bus lock, never the device's.
void PciBus::remap(std::uint8_t slot) {
    Slot& s = slots_[slot];
    const bool decode = (command(slot) & kCommandMemory) != 0;
    for (std::size_t i = 0; i < 6; ++i) {
        Bar& b = s.bars[i];
        if (b.size == 0 || b.upper_half) continue;
        const std::uint64_t want = decode && b.address != 0 ? b.address : 0;
        if (want == b.mapped_at) continue;
        if (b.mapped_at != 0) mmio_.remove(b.mapped_at, *b.window);
        b.mapped_at = 0;
        if (want != 0) {
            if (auto r = mmio_.add(want, b.size, *b.window, s.device->name() + " BAR"); r) {
                b.mapped_at = want;
            } else {
                // A guest may point BARs anywhere; a clash leaves this BAR unreachable.
                s.device->warnings().warn("PCI {}: BAR {} at {:#x}: {}", s.device->name(), i, want,
                                          r.error().message);
            }
        }
        s.device->bar_placed(i, b.mapped_at);
    }
}

void PciBus::bar_register_read(Slot& s, std::size_t index, std::span<std::uint8_t> out) const {
    std::uint32_t v = 0;
    const Bar& b = s.bars[index];
    if (b.upper_half) {
        const Bar& lo = s.bars[index - 1];
        v = static_cast<std::uint32_t>(lo.address >> 32);
    } else if (b.size != 0) {
        v = static_cast<std::uint32_t>(b.address & ~(b.size - 1) & 0xffff'fff0u) |
            (b.is_64bit ? kBarMem64 | kBarPrefetch : 0);
    }
    std::memcpy(out.data(), &v, out.size());
}

void PciBus::bar_register_write(Slot& s, std::size_t index, std::size_t byte,
                                std::span<const std::uint8_t> in) {
    Bar& b = s.bars[index];
    Bar& target = b.upper_half ? s.bars[index - 1] : b;
    if (target.size == 0) return;
    std::uint32_t reg = 0;
    bar_register_read(s, index, std::span(reinterpret_cast<std::uint8_t*>(&reg), 4));
    std::memcpy(reinterpret_cast<std::uint8_t*>(&reg) + byte, in.data(), in.size());
    if (b.upper_half) {
        target.address = (target.address & 0xffff'ffffu) | (std::uint64_t{reg} << 32);
    } else {
        // Only the address bits above the size are writable: writing all ones and reading
        // back is how the guest learns the size.
        const std::uint64_t low = std::uint64_t{reg} & ~(target.size - 1) & 0xffff'fff0u;
        target.address = (target.address & ~0xffff'ffffull) | low;
    }
    target.address &= ~(target.size - 1);
}

void PciBus::config_read(std::uint8_t slot, std::size_t offset, std::span<std::uint8_t> out) {
    std::lock_guard lock(mu_);
    if (slot >= slots_.size() || slots_[slot].device == nullptr ||
        offset + out.size() > kConfigSize) {
        std::fill(out.begin(), out.end(), 0xff);
        return;
    }
    Slot& s = slots_[slot];
    if (offset >= kOffBar0 && offset < kOffBarEnd) {
        const std::size_t index = (offset - kOffBar0) / 4;
        std::uint8_t reg[4];
        bar_register_read(s, index, reg);
        std::memcpy(out.data(), reg + (offset & 3),
                    std::min<std::size_t>(out.size(), 4 - (offset & 3)));
        return;
    }
    if (offset >= 0x30 && offset < 0x34) {  // no expansion ROM
        std::fill(out.begin(), out.end(), 0);
        return;
    }
    s.device->config_read(offset, out);
}

void PciBus::config_write(std::uint8_t slot, std::size_t offset, std::span<const std::uint8_t> in) {
    std::lock_guard lock(mu_);
    if (slot >= slots_.size() || slots_[slot].device == nullptr || offset + in.size() > kConfigSize)
        return;
    Slot& s = slots_[slot];
    if (offset >= kOffBar0 && offset < kOffBarEnd) {
        const std::size_t index = (offset - kOffBar0) / 4;
        const std::size_t byte = offset & 3;
        bar_register_write(s, index, byte, in.first(std::min<std::size_t>(in.size(), 4 - byte)));
        remap(slot);
        return;
    }
    if (offset >= 0x30 && offset < 0x34) return;
    s.device->config_write(offset, in);
    if (offset < kOffCommand + 2 && offset + in.size() > kOffCommand) remap(slot);
}

std::optional<PciBus::ConfigTarget> PciBus::config_target(std::uint64_t offset,
                                                          std::size_t len) const {
    if (offset < 4) return std::nullopt;
    std::uint32_t addr;
    {
        std::lock_guard lock(mu_);
        addr = address_;
    }
    // CONFIG_ADDRESS: enable bit 31, bus 23:16, device 15:11, function 10:8, dword 7:2.
    const std::uint8_t bus = (addr >> 16) & 0xff, dev = (addr >> 11) & 0x1f, fn = (addr >> 8) & 7;
    if (!(addr & kConfigEnable) || bus != 0 || fn != 0) return std::nullopt;
    const std::size_t reg = (addr & 0xfc) + (offset - 4);
    if (reg + len > kConfigSize) return std::nullopt;
    return ConfigTarget{dev, reg};
}

void PciBus::read(std::uint64_t offset, std::span<std::uint8_t> data) {
    std::fill(data.begin(), data.end(), 0xff);
    if (offset == 0 && data.size() == 4) {
        std::lock_guard lock(mu_);
        std::memcpy(data.data(), &address_, 4);
        return;
    }
    if (auto t = config_target(offset, data.size())) config_read(t->slot, t->offset, data);
}

void PciBus::write(std::uint64_t offset, std::span<const std::uint8_t> data) {
    if (offset == 0 && data.size() == 4) {
        std::lock_guard lock(mu_);
        std::memcpy(&address_, data.data(), 4);
        return;
    }
    if (auto t = config_target(offset, data.size())) config_write(t->slot, t->offset, data);
}

}  // namespace stockade::pci
