#pragma once
// A built micro-VM: KVM VM and vCPUs, guest memory with the kernel, initrd, ACPI tables
// and page tables in place, and the platform devices on the port bus. create() opens
// everything the VM will ever need; start() only spawns threads.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/error.hpp"
#include "base/guest_memory.hpp"
#include "base/rate_limit.hpp"
#include "runner/arch/x86/kernel_image.hpp"
#include "runner/devices/bus.hpp"
#include "runner/devices/platform.hpp"
#include "runner/devices/serial.hpp"
#include "runner/kvm/irq_router.hpp"
#include "runner/kvm/kvm.hpp"
#include "runner/kvm/vcpu.hpp"
#include "runner/kvm/vm.hpp"
#include "runner/pci/passthrough.hpp"
#include "runner/pci/pci_bus.hpp"
#include "runner/virtio/pci_transport.hpp"
#include "runner/virtio/virtio.hpp"
#include "runner/vmm/machine_state.hpp"
#include "runner/vmm/vm_control.hpp"

namespace stockade {

// The machine takes its boot as planned and checked in preparation (runner/supervisor/
// preparation.hpp): it never plans or validates a second time.
struct MachineConfig {
    std::uint32_t vcpus = 1;
    std::uint64_t memory_bytes = 256ull << 20;
    MemoryOptions memory;
    std::string cmdline;
    x86::BootLayout layout;  // x86::plan_boot for this kernel, initrd, memory and cmdline
    bool has_pci = false;    // whether the guest has a PCI bus: exactly when it has devices
    // A snapshot's restore: guest RAM is this file (the snapshot's memory part, exactly the
    // RAM's size), mapped copy-on-write, so pages load when the guest first touches them and
    // nothing is written back; nothing is loaded or set up for a boot (restore_state follows).
    int restore_memory_fd = -1;
    bool restore_memory_shared = false;  // the file is this machine's alone: mapped shared
    // A lazy sealed restore: guest RAM is anonymous memory that the memory loader fills
    // (runner/vmm/lazy_memory.hpp, attached once the machine exists); nothing is loaded or
    // set up for a boot either.
    bool restore_lazily = false;
};

// Devices on the PCI bus, in slot order (virtio first, then passed-through functions);
// virtio queues are served through `watcher`.
struct MachineDevices {
    std::vector<std::unique_ptr<virtio::VirtioDevice>> virtio;
    std::vector<std::unique_ptr<pci::PassthroughSource>> passthrough;
    FdWatcher* watcher = nullptr;
};

struct BootImages {
    const x86::KernelImage* kernel = nullptr;
    std::vector<std::span<const std::uint8_t>> initrd_parts;  // concatenated in order
};

// CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID); 0 if unavailable.
[[nodiscard]] std::uint64_t this_thread_cpu_ns();

struct ExitCounts {
    std::uint64_t io = 0, mmio = 0, interrupted = 0, other = 0;
    std::int64_t first_exit_us = -1;  // after start(); -1: none yet
    std::uint64_t vcpu_cpu_ns = 0;    // CPU time of the vCPU threads that have ended
};

class Machine {
  public:
    [[nodiscard]] static Result<std::unique_ptr<Machine>> create(
        const kvm::Kvm& kvm, const MachineConfig& config, const BootImages& images,
        MachineDevices devices, Serial::Output serial_output, PlatformEventSink events);
    ~Machine();
    Machine(const Machine&) = delete;
    Machine& operator=(const Machine&) = delete;

    // Spawns one thread per vCPU. Each first runs `thread_setup` (its seccomp filter), then
    // waits for release() before entering the guest, and runs until `control` says stop.
    using ThreadSetup = std::function<Result<>()>;
    [[nodiscard]] Result<> start(VmControl& control, ThreadSetup thread_setup = {});
    // Lets the vCPUs run (startup step 9). start() alone never runs guest code.
    void release();
    // Makes every vCPU leave KVM_RUN and joins the threads. Idempotent.
    void stop();
    // Parks every vCPU outside KVM_RUN and holds the guest's clock (KVM_GET_CLOCK); returns
    // once all are parked. resume() restores the clock (the guest does not see the paused
    // time pass) and lets them run. Both are idempotent; a stop ends a pause.
    [[nodiscard]] Result<> pause();
    [[nodiscard]] Result<> resume();
    // Before start(): the vCPUs, once released, park before their first KVM_RUN, and the
    // guest's clock is held where it is now (a restore that waits for `start`); resume()
    // lets them run.
    [[nodiscard]] Result<> start_paused();
    [[nodiscard]] bool paused() const { return pause_requested_.load(); }
    // Every virtio device's host side held or released (VirtioDevice::hold); while paused.
    void hold_devices(bool held);

    // Snapshots. capture_state: while paused with the devices held, the whole machine's state
    // (each vCPU's is read by its own parked thread, after KVM finished its last exit; the
    // clock is the one the pause holds). Refused for a machine with a passed-through function
    // or a device that cannot be saved, naming it. restore_state: into a machine made with
    // MachineConfig::restore_memory_fd, before start(): the state must be of this machine
    // (as many vCPUs, the same functions in the same slots).
    [[nodiscard]] Result<MachineState> capture_state();
    [[nodiscard]] Result<> restore_state(const MachineState& state);

    [[nodiscard]] Serial& serial() { return *serial_; }
    [[nodiscard]] const GuestMemory& memory() const { return memory_; }
    [[nodiscard]] ExitCounts exit_counts() const;
    // The warnings the guest caused, and those their rate limits held back, in all and by
    // device (those with any), for --stats: "guest-triggered warnings 3 (suppressed 120):
    // 00:02.0 virtio-net 3 (suppressed 120)".
    [[nodiscard]] std::string warnings_report() const;
    [[nodiscard]] std::size_t vcpu_count() const { return vcpus_.size(); }
    [[nodiscard]] kvm::Vm& vm() { return vm_; }
    [[nodiscard]] pci::PciBus* pci_bus() { return pci_.get(); }
    [[nodiscard]] virtio::PciTransport& transport(std::size_t i) { return *transports_.at(i); }
    [[nodiscard]] std::size_t transport_count() const { return transports_.size(); }

  private:
    Machine(kvm::Vm vm, GuestMemory memory);
    [[nodiscard]] Result<> add_devices(Serial::Output serial_output, PlatformEventSink events);
    [[nodiscard]] Result<> add_pci(MachineDevices devices);
    class VmBarSlots;
    void vcpu_main(std::size_t index, VmControl& control, const ThreadSetup& setup);
    void park_if_paused(std::size_t index, VmControl& control);
    void handle_exit(std::size_t index, std::uint32_t exit, VmControl& control);

    kvm::Vm vm_;
    GuestMemory memory_;
    std::vector<kvm::Vcpu> vcpus_;
    Bus pio_{"port I/O"};
    Bus mmio_{"MMIO"};
    std::unique_ptr<Serial> serial_;
    std::vector<std::unique_ptr<BusDevice>> devices_;
    std::unique_ptr<kvm::IrqRouter> irq_router_;
    std::unique_ptr<pci::PciBus> pci_;
    std::vector<std::unique_ptr<virtio::PciTransport>> transports_;
    // Passed-through functions: the sources own the host side and outlive the functions.
    std::vector<std::unique_ptr<pci::PassthroughSource>> passthrough_sources_;
    std::unique_ptr<pci::BarSlots> bar_slots_;
    std::vector<std::unique_ptr<pci::PciDevice>> passthrough_;
    // Every function on the PCI bus and its slot, in slot order (warnings_report).
    std::vector<std::pair<std::uint8_t, const pci::PciDevice*>> pci_functions_;
    // The guest-triggered warnings of the platform devices (the serial port's interrupt).
    GuestWarnings platform_warnings_;
    std::vector<std::thread> threads_;
    std::mutex release_mu_;
    std::condition_variable release_cv_;
    bool released_ = false;
    // Pausing: the API thread asks, vCPU threads park (under pause_mu_).
    std::mutex pause_mu_;
    std::condition_variable pause_cv_;
    std::atomic<bool> pause_requested_{false};
    std::size_t parked_ = 0;
    std::uint64_t paused_clock_ = 0;
    // A capture asked of the parked vCPU threads (under pause_mu_): each one whose generation
    // is behind reads its own state into its slot.
    struct Capture {
        std::uint64_t generation = 0;
        std::size_t pending = 0;
        std::vector<kvm::VcpuState> vcpus;
        std::vector<std::string> errors;  // per vCPU; empty: read
        std::optional<kvm::VmState> vm;   // read by vCPU 0's thread
        std::string vm_error;
    };
    Capture capture_;
    void capture_parked(std::size_t index, std::uint64_t& seen, std::unique_lock<std::mutex>& lock);
    // The MSRs a snapshot reads (KVM's list, taken while /dev/kvm was open).
    std::vector<std::uint32_t> msr_indices_;
    VmControl* control_ = nullptr;
    struct Counters {
        std::atomic<std::uint64_t> io{0}, mmio{0}, interrupted{0}, other{0}, cpu_ns{0};
    };
    std::unique_ptr<Counters[]> counters_;
    std::chrono::steady_clock::time_point started_;
    std::atomic<std::int64_t> first_exit_us_{-1};
};

}  // namespace stockade
