#pragma once
// virtio-pci 1.x (modern) transport for one VirtioDevice. BAR0 (64-bit, 32 KiB) holds
//   0x0000 common configuration      0x1000 ISR status      0x2000 device configuration
//   0x3000 notifications (4 bytes per queue; each backed by a KVM ioeventfd)
//   0x4000 MSI-X table               0x5000 MSI-X PBA
// Every register the driver writes is checked; a driver that breaks the protocol gets a
// device in NEEDS_RESET, never a crashed runner.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "runner/kvm/irq_router.hpp"
#include "runner/kvm/vm.hpp"
#include "runner/pci/config_space.hpp"
#include "runner/pci/device.hpp"
#include "runner/pci/msix.hpp"
#include "runner/virtio/virtio.hpp"

namespace stockade::virtio {

inline constexpr std::uint64_t kBar0Size = 0x8000;
inline constexpr std::uint64_t kCommonOffset = 0x0000, kIsrOffset = 0x1000,
                               kDeviceCfgOffset = 0x2000, kNotifyOffset = 0x3000,
                               kMsixTableOffset = 0x4000, kMsixPbaOffset = 0x5000;
inline constexpr std::uint32_t kNotifyMultiplier = 4;

// What a snapshot keeps of one function's transport: its configuration space (the PCI bus
// keeps the BAR registers), MSI-X, and what the driver wrote to the common configuration.
// The device's own state (queue positions, backend) is the device's to keep.
struct TransportState {
    std::array<std::uint8_t, pci::kConfigSize> config{};
    pci::MsixState msix;
    std::uint32_t device_feature_select = 0, driver_feature_select = 0;
    std::uint64_t driver_features = 0;
    std::uint16_t msix_config = pci::kNoVector;
    std::uint8_t status = 0, isr = 0, config_generation = 0;
    std::uint16_t queue_select = 0;
    std::vector<QueueSetup> queues;
};

class PciTransport : public pci::PciDevice {
  public:
    [[nodiscard]] static Result<std::unique_ptr<PciTransport>> create(
        std::unique_ptr<VirtioDevice> device, kvm::IoEventRegistry& vm, kvm::MsiRouter& router,
        const GuestMemory& memory, FdWatcher& watcher);
    ~PciTransport() override;

    std::string name() const override;
    std::vector<pci::BarSpec> bar_specs() const override;
    void config_read(std::size_t offset, std::span<std::uint8_t> out) override;
    void config_write(std::size_t offset, std::span<const std::uint8_t> in) override;
    void bar_read(std::size_t bar, std::uint64_t offset, std::span<std::uint8_t> out) override;
    void bar_write(std::size_t bar, std::uint64_t offset,
                   std::span<const std::uint8_t> in) override;
    void bar_placed(std::size_t bar, std::uint64_t address) override;

    [[nodiscard]] std::uint8_t status() const;

    // Snapshots. state() is taken while the vCPUs are paused. restore() is for a transport
    // just created for the same kind of device, before any vCPU runs: the state is checked
    // as the driver's own writes would be (features the device offers, queue sizes and
    // vectors in range, known status bits; configuration space through its write mask, so
    // read-only fields stay the device's), and refused whole otherwise. A driver that had
    // reached DRIVER_OK gets its device activated again on the saved queues, going on from
    // the device's saved positions (`resume`, DeviceState::queues; empty: from 0).
    [[nodiscard]] TransportState state() const;
    [[nodiscard]] Result<> restore(const TransportState& s,
                                   std::span<const QueuePosition> resume = {});
    [[nodiscard]] VirtioDevice& device() { return *device_; }

  private:
    PciTransport(std::unique_ptr<VirtioDevice> device, kvm::IoEventRegistry& vm,
                 const GuestMemory& memory, FdWatcher& watcher, pci::Msix msix);
    void bar_read_locked(std::uint64_t offset, std::span<std::uint8_t> out);
    void bar_write_locked(std::uint64_t offset, std::span<const std::uint8_t> in);
    void common_read(std::uint64_t offset, std::span<std::uint8_t> out);
    void common_write(std::uint64_t offset, std::span<const std::uint8_t> in);
    void set_status(std::uint8_t status);
    void activate(std::span<const QueuePosition> resume = {});
    void reset_locked();
    void mark_needs_reset(const std::string& why);
    void register_notifiers(std::uint64_t bar_address);
    void pci_cfg_access(bool write);

    std::unique_ptr<VirtioDevice> device_;
    kvm::IoEventRegistry& vm_;
    const GuestMemory& memory_;
    FdWatcher& watcher_;
    pci::ConfigSpace config_;
    pci::Msix msix_;
    std::size_t pci_cfg_cap_ = 0;
    std::size_t msix_cap_ = 0;
    mutable std::mutex mu_;

    // Common configuration as the driver sees it.
    std::uint32_t device_feature_select_ = 0, driver_feature_select_ = 0;
    std::uint64_t driver_features_ = 0;
    // Also touched by the device's thread (mark_needs_reset), hence atomic.
    std::atomic<std::uint16_t> msix_config_{pci::kNoVector};
    std::atomic<std::uint8_t> status_{0};
    std::atomic<std::uint8_t> isr_{0};
    std::atomic<bool> reported_violation_{false};
    std::uint8_t config_generation_ = 0;
    std::uint16_t queue_select_ = 0;
    std::vector<QueueSetup> queues_;
    bool active_ = false;

    std::vector<UniqueFd> kick_fds_;
    std::uint64_t notify_base_ = 0;  // where the ioeventfds are registered (0: nowhere)
};

}  // namespace stockade::virtio
