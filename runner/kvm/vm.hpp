#pragma once
// A KVM virtual machine: memory slots, the in-kernel irqchip and PIT, interrupt lines,
// irqfds and ioeventfds. Thin and explicit: each method is one ioctl with a named error.
#include "base/uapi.hpp"

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "runner/kvm/kvm.hpp"

namespace stockade::kvm {

// Registering ioeventfds, which is all the virtio-pci transport needs of the VM. An
// interface only so that the transport can be unit-tested without KVM.
class IoEventRegistry {
  public:
    virtual ~IoEventRegistry() = default;
    [[nodiscard]] virtual Result<> ioeventfd(int event_fd, std::uint64_t addr, std::uint32_t len,
                                             bool pio, bool assign) = 0;
};

class Vm : public IoEventRegistry {
  public:
    [[nodiscard]] static Result<Vm> create(const Kvm& kvm);

    [[nodiscard]] Result<> set_user_memory_region(std::uint32_t slot, std::uint64_t guest_phys,
                                                  std::uint64_t size, void* host,
                                                  std::uint32_t flags = 0);
    // x86 needs three pages for the TSS and one for the EPT identity map below 4 GiB.
    [[nodiscard]] Result<> set_tss_addr(std::uint64_t addr);
    [[nodiscard]] Result<> set_identity_map_addr(std::uint64_t addr);
    [[nodiscard]] Result<> create_irqchip();
    [[nodiscard]] Result<> create_pit2();
    [[nodiscard]] Result<> irq_line(std::uint32_t irq, bool level);
    [[nodiscard]] Result<> set_gsi_routing(std::span<const kvm_irq_routing_entry> entries);
    [[nodiscard]] Result<> irqfd(int event_fd, std::uint32_t gsi, bool assign = true);
    [[nodiscard]] Result<> ioeventfd(int event_fd, std::uint64_t addr, std::uint32_t len, bool pio,
                                     bool assign = true) override;
    [[nodiscard]] Result<> set_clock(std::uint64_t ns);
    [[nodiscard]] Result<kvm_clock_data> get_clock() const;
    // The in-kernel interrupt controllers and timer, for snapshots (runner/kvm/vcpu_state.hpp).
    // `chip`: KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE or _IOAPIC.
    [[nodiscard]] Result<kvm_irqchip> irqchip(std::uint32_t chip) const;
    [[nodiscard]] Result<> set_irqchip(const kvm_irqchip& c);
    [[nodiscard]] Result<kvm_pit_state2> pit2() const;
    [[nodiscard]] Result<> set_pit2(const kvm_pit_state2& p);

    [[nodiscard]] int fd() const { return fd_.get(); }

  private:
    explicit Vm(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
};

}  // namespace stockade::kvm
