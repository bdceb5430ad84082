#include "runner/kvm/irq_router.hpp"

#include <vector>

namespace stockade::kvm {

Result<std::uint32_t> IrqRouter::allocate_msi() {
    std::lock_guard lock(mu_);
    if (next_gsi_ >= 1024) return fail("no GSIs left for MSI vectors");
    const std::uint32_t gsi = next_gsi_++;
    msi_[gsi] = {0, 0};
    return gsi;
}

Result<> IrqRouter::set_msi(std::uint32_t gsi, std::uint64_t address, std::uint32_t data) {
    std::lock_guard lock(mu_);
    auto it = msi_.find(gsi);
    if (it == msi_.end()) return fail("GSI {} is not an MSI vector", gsi);
    if (it->second == std::make_pair(address, data)) return {};
    it->second = {address, data};
    return commit();
}

Result<> IrqRouter::commit() {
    std::vector<kvm_irq_routing_entry> table;
    // The PC's routes that KVM installs by default: GSI 0-15 to the PICs and GSI 0-23 to
    // the IOAPIC pin of the same number.
    for (std::uint32_t gsi = 0; gsi < 24; ++gsi) {
        kvm_irq_routing_entry e{};
        e.gsi = gsi;
        e.type = KVM_IRQ_ROUTING_IRQCHIP;
        e.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
        e.u.irqchip.pin = gsi;
        table.push_back(e);
        if (gsi < 16) {
            e.u.irqchip.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE;
            e.u.irqchip.pin = gsi % 8;
            table.push_back(e);
        }
    }
    for (const auto& [gsi, msg] : msi_) {
        if (msg.first == 0) continue;  // never programmed
        kvm_irq_routing_entry e{};
        e.gsi = gsi;
        e.type = KVM_IRQ_ROUTING_MSI;
        e.u.msi.address_lo = static_cast<std::uint32_t>(msg.first);
        e.u.msi.address_hi = static_cast<std::uint32_t>(msg.first >> 32);
        e.u.msi.data = msg.second;
        table.push_back(e);
    }
    return vm_.set_gsi_routing(table);
}

Result<> IrqRouter::attach(std::uint32_t gsi, int event_fd) {
    return vm_.irqfd(event_fd, gsi, true);
}

Result<> IrqRouter::detach(std::uint32_t gsi, int event_fd) {
    return vm_.irqfd(event_fd, gsi, false);
}

}  // namespace stockade::kvm
