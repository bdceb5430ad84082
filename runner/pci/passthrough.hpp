#pragma once
// A PCI function passed through from the host (VFIO), as the guest sees it: its own
// identity and the capabilities a driver needs, with the BARs, the command register, the
// expansion ROM and MSI-X virtualised.
//
//   configuration space  vendor, device, class, revision and subsystem are the device's; the
//                        header says single-function, no INTx pin; the capability list keeps
//                        MSI-X (virtualised) and vendor-specific ones (read-only copies, e.g.
//                        virtio's structure pointers); every other capability is hidden
//   command register     memory decoding and bus mastering go through to the device, INTx
//                        stays disabled on it (only MSI-X is offered)
//   BARs                 placed by the PCI bus with the device's sizes (at least 4 KiB); the
//                        parts the kernel lets us mmap are guest memory slots at the BAR's
//                        address (no exit), except the pages of the MSI-X table and PBA,
//                        which are trapped; the rest is forwarded with pread/pwrite. A BAR
//                        the guest moves takes its slots along. I/O BARs are not offered.
//   MSI-X                the guest's table drives the vectors' KVM routes (pci::Msix); the
//                        device signals each vector's eventfd, which KVM injects (irqfd):
//                        no interrupt passes through stockade
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/guest_memory.hpp"
#include "runner/kvm/irq_router.hpp"
#include "runner/pci/config_space.hpp"
#include "runner/pci/device.hpp"
#include "runner/pci/msix.hpp"

namespace stockade::pci {

// VFIO's region numbering: BARs 0-5, then the ROM, then the configuration space.
inline constexpr std::uint32_t kConfigRegion = 7;

// What a passthrough function needs of its host device: an interface so that the function
// can be unit-tested against a fake.
class PassthroughIo {
  public:
    virtual ~PassthroughIo() = default;
    [[nodiscard]] virtual Result<> read(std::uint32_t region, std::uint64_t offset,
                                        std::span<std::uint8_t> out) = 0;
    [[nodiscard]] virtual Result<> write(std::uint32_t region, std::uint64_t offset,
                                         std::span<const std::uint8_t> in) = 0;
    // Each MSI-X vector of the device signals its eventfd; empty: MSI-X off.
    [[nodiscard]] virtual Result<> set_msix(std::span<const int> event_fds) = 0;
};

// Guest-physical memory slots for the BAR parts mapped straight into the guest.
class BarSlots {
  public:
    virtual ~BarSlots() = default;
    [[nodiscard]] virtual Result<std::uint32_t> map(std::uint64_t guest_phys, std::uint64_t size,
                                                    void* host) = 0;
    [[nodiscard]] virtual Result<> unmap(std::uint32_t slot) = 0;
};

using Range = std::pair<std::uint64_t, std::uint64_t>;  // offset, size

struct PassthroughBar {
    std::uint64_t size = 0;  // the region's size; 0: absent, an I/O BAR, or a 64-bit upper half
    bool is_64bit = false;
    std::uint8_t* host = nullptr;  // the region's mmap (the whole region); nullptr: none
    std::vector<Range> mappable;   // where the kernel allows the mmap to be used
};

struct PassthroughSetup {
    std::string name;                                // "vfio 0000:00:05.0"
    std::array<std::uint8_t, kConfigSize> config{};  // the device's configuration space
    std::array<PassthroughBar, 6> bars;
    std::uint32_t msix_vectors = 0;  // what VFIO offers (0: take the capability's count)
};

// The page-aligned parts of `mappable` that stay clear of every `trapped` range (each
// widened to whole pages), in order: what may become guest memory slots.
[[nodiscard]] std::vector<Range> direct_ranges(std::span<const Range> mappable,
                                               std::span<const Range> trapped);

class PassthroughFunction : public PciDevice {
  public:
    [[nodiscard]] static Result<std::unique_ptr<PassthroughFunction>> create(
        PassthroughSetup setup, PassthroughIo& io, BarSlots& slots, kvm::MsiRouter& router);
    ~PassthroughFunction() override;

    std::string name() const override { return setup_.name; }
    std::vector<BarSpec> bar_specs() const override;
    void config_read(std::size_t offset, std::span<std::uint8_t> out) override;
    void config_write(std::size_t offset, std::span<const std::uint8_t> in) override;
    void bar_read(std::size_t bar, std::uint64_t offset, std::span<std::uint8_t> out) override;
    void bar_write(std::size_t bar, std::uint64_t offset,
                   std::span<const std::uint8_t> in) override;
    void bar_placed(std::size_t bar, std::uint64_t address) override;

    // The parts of `bar` mapped straight into the guest (offset, size within the BAR).
    [[nodiscard]] std::vector<Range> direct(std::size_t bar) const;
    // Where the virtual MSI-X capability sits in the guest's configuration space.
    [[nodiscard]] std::size_t msix_capability() const { return msix_cap_; }

  private:
    PassthroughFunction(PassthroughSetup setup, PassthroughIo& io, BarSlots& slots, Msix msix,
                        ConfigSpace config);
    void push_command();
    void msix_control_changed();
    // Where the MSI-X table or PBA lies: its BAR and its bytes there.
    struct MsixPlace {
        std::uint8_t bar = 0;
        Range range;
        [[nodiscard]] bool covers(std::size_t b, std::uint64_t offset, std::size_t len) const;
    };

    PassthroughSetup setup_;
    PassthroughIo& io_;
    BarSlots& slots_;
    std::mutex mu_;
    Msix msix_;
    ConfigSpace config_;
    std::size_t msix_cap_ = 0;
    MsixPlace table_, pba_;
    bool msix_on_device_ = false;
    std::array<std::vector<std::uint32_t>, 6> bar_slots_;
};

// A passed-through function before its machine exists. attach() runs in the sandbox process
// once guest memory and the VM do, before the jail: it maps guest RAM for the device's DMA,
// resets the device, maps its BARs and makes the function. The source owns the host side
// (descriptors, mappings) and outlives the function it made.
class PassthroughSource {
  public:
    virtual ~PassthroughSource() = default;
    [[nodiscard]] virtual std::string name() const = 0;
    [[nodiscard]] virtual Result<std::unique_ptr<PciDevice>> attach(const GuestMemory& memory,
                                                                    BarSlots& slots,
                                                                    kvm::MsiRouter& router) = 0;
};

}  // namespace stockade::pci
