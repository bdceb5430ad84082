#pragma once
// GSI routing for the VM: the PC's irqchip routes (PIC and IOAPIC pins) plus one MSI route
// per MSI-X vector, and the irqfds that inject them. KVM replaces the whole table on each
// update, so the router keeps it and rewrites it.
#include <cstdint>
#include <map>
#include <mutex>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "runner/kvm/vm.hpp"

namespace stockade::kvm {

inline constexpr std::uint32_t kFirstMsiGsi = 24;  // after the IOAPIC's 24 pins

// What MSI-X emulation (pci::Msix) needs from GSI routing. An interface only so that the
// device models can be unit-tested without a VM, against a fake that records the calls.
class MsiRouter {
  public:
    virtual ~MsiRouter() = default;
    // A new GSI for an MSI vector (routed nowhere until set_msi()).
    [[nodiscard]] virtual Result<std::uint32_t> allocate_msi() = 0;
    [[nodiscard]] virtual Result<> set_msi(std::uint32_t gsi, std::uint64_t address,
                                           std::uint32_t data) = 0;
    // Connects (or disconnects) an eventfd so that a write to it injects `gsi`.
    [[nodiscard]] virtual Result<> attach(std::uint32_t gsi, int event_fd) = 0;
    [[nodiscard]] virtual Result<> detach(std::uint32_t gsi, int event_fd) = 0;
};

class IrqRouter : public MsiRouter {
  public:
    explicit IrqRouter(Vm& vm) : vm_(vm) {}

    [[nodiscard]] Result<std::uint32_t> allocate_msi() override;
    [[nodiscard]] Result<> set_msi(std::uint32_t gsi, std::uint64_t address,
                                   std::uint32_t data) override;
    [[nodiscard]] Result<> attach(std::uint32_t gsi, int event_fd) override;
    [[nodiscard]] Result<> detach(std::uint32_t gsi, int event_fd) override;

  private:
    [[nodiscard]] Result<> commit();
    Vm& vm_;
    std::mutex mu_;
    std::uint32_t next_gsi_ = kFirstMsiGsi;
    std::map<std::uint32_t, std::pair<std::uint64_t, std::uint32_t>> msi_;  // gsi -> (addr, data)
};

}  // namespace stockade::kvm
