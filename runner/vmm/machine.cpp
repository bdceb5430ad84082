#include "runner/vmm/machine.hpp"

#include <pthread.h>
#include <signal.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <set>

#include "base/log.hpp"
#include "base/mapping.hpp"
#include "runner/arch/x86/acpi.hpp"
#include "runner/arch/x86/cpu_setup.hpp"
#include "runner/arch/x86/cpuid.hpp"
#include "runner/arch/x86/layout.hpp"
#include "runner/arch/x86/memory_map.hpp"
#include "runner/arch/x86/page_tables.hpp"
#include "runner/kvm/vcpu_state.hpp"

namespace stockade {
namespace {

// A new VM generation id where the guest's vmgenid driver reads it (ACPI VMGenID: the DSDT's
// VGEN), at boot and after each restore, so that no two runs of one snapshot share it.
Result<> write_generation_id(const GuestMemory& mem) {
    std::array<std::uint8_t, x86::kVmGenIdSize> id{};
    if (::getrandom(id.data(), id.size(), 0) != static_cast<ssize_t>(id.size()))
        return fail_sys("getrandom, for the VM generation id");
    return mem.write(x86::kVmGenIdAddr, id);
}

// vCPU threads are kicked out of KVM_RUN with this signal; its handler does nothing,
// the point is the EINTR (together with kvm_run.immediate_exit).
int kick_signal() {
    return SIGRTMIN;
}
void on_kick(int) {}

Result<> install_kick_handler() {
    struct sigaction sa {};
    sa.sa_handler = on_kick;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: KVM_RUN must return
    if (::sigaction(kick_signal(), &sa, nullptr) != 0)
        return fail_sys("sigaction for the vCPU kick signal");
    return {};
}

}  // namespace

Machine::Machine(kvm::Vm vm, GuestMemory memory) : vm_(std::move(vm)), memory_(std::move(memory)) {}

Machine::~Machine() {
    stop();
}

namespace {

// Where PCI BARs go: the 32-bit hole below the IOAPIC, and 16 GiB above the top of RAM.
pci::MmioWindows pci_windows(const std::vector<MemoryRegion>& ram) {
    std::uint64_t top = x86::kHighRamStart;
    for (const auto& r : ram)
        top = std::max(top, r.guest_phys + r.size);
    const std::uint64_t high = (top + (1ull << 30) - 1) & ~((1ull << 30) - 1);
    return {x86::kMmioHoleStart, x86::kIoApicAddr, high, high + (16ull << 30)};
}

}  // namespace

Result<std::unique_ptr<Machine>> Machine::create(const kvm::Kvm& kvm, const MachineConfig& config,
                                                 const BootImages& images, MachineDevices devices,
                                                 Serial::Output serial_output,
                                                 PlatformEventSink events) {
    if (images.kernel == nullptr) return fail("no kernel image");
    // The plan's PCI bus and the devices given must agree: a device on a machine planned
    // without PCI (pci=off) would never be seen by the guest.
    const std::size_t built = devices.virtio.size() + devices.passthrough.size();
    if (config.has_pci != (built != 0))
        return fail("the boot plan {} a PCI bus but {} devices were built",
                    config.has_pci ? "has" : "has no", built);
    const auto ram = x86::ram_regions(config.memory_bytes);
    const x86::BootLayout& layout = config.layout;
    const pci::MmioWindows windows = pci_windows(ram);
    const x86::PciHostWindows host{static_cast<std::uint32_t>(windows.low_start),
                                   static_cast<std::uint32_t>(windows.low_end - 1),
                                   windows.high_start, windows.high_end - 1};
    const bool has_pci = config.has_pci;
    const auto acpi = STOCKADE_TRY(
        x86::build_acpi_tables(x86::kAcpiAddr, config.vcpus, has_pci ? &host : nullptr));
    const std::size_t run_size = STOCKADE_TRY(kvm.vcpu_mmap_size());
    const auto supported = STOCKADE_TRY(kvm.supported_cpuid());

    auto vm = STOCKADE_TRY(kvm::Vm::create(kvm));
    // Order matters to KVM: TSS and identity map before vCPUs, irqchip before vCPUs.
    STOCKADE_TRY_VOID(vm.set_tss_addr(x86::kTssAddr));
    STOCKADE_TRY_VOID(vm.set_identity_map_addr(x86::kIdentityMapAddr));
    STOCKADE_TRY_VOID(vm.create_irqchip());
    STOCKADE_TRY_VOID(vm.create_pit2());
    MemoryOptions memory_options = config.memory;
    const bool restoring = config.restore_memory_fd >= 0 || config.restore_lazily;
    if (config.restore_memory_fd >= 0) {
        // The file must be exactly guest RAM: a mapping past its end would fault (SIGBUS)
        // where the guest reads.
        std::uint64_t ram_bytes = 0;
        for (const auto& r : ram)
            ram_bytes += r.size;
        struct stat st {};
        if (::fstat(config.restore_memory_fd, &st) != 0) return fail_sys("the snapshot's memory");
        if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != ram_bytes)
            return fail("the snapshot's memory is {} bytes, the machine's RAM {}", st.st_size,
                        ram_bytes);
        memory_options.backing_fd = config.restore_memory_fd;
        memory_options.copy_on_write = !config.restore_memory_shared;
    }
    auto memory = STOCKADE_TRY(GuestMemory::create(ram, memory_options));
    std::uint32_t slot = 0;
    for (const auto& r : memory.host_regions())
        STOCKADE_TRY_VOID(vm.set_user_memory_region(slot++, r.guest_phys, r.size, r.host));

    std::unique_ptr<Machine> m(new Machine(std::move(vm), std::move(memory)));
    m->counters_ = std::make_unique<Counters[]>(config.vcpus);
    for (std::uint32_t i = 0; i < config.vcpus; ++i) {
        auto vcpu = STOCKADE_TRY(kvm::Vcpu::create(m->vm_, i, run_size));
        STOCKADE_TRY_VOID(vcpu.set_cpuid(x86::filter_cpuid(supported, i, config.vcpus)));
        STOCKADE_TRY_VOID(x86::setup_common_cpu_state(vcpu));
        STOCKADE_TRY_VOID(x86::setup_lapic_lint(vcpu));
        m->vcpus_.push_back(std::move(vcpu));
    }

    m->msr_indices_ = STOCKADE_TRY(kvm::snapshot_msr_indices(kvm));
    // A restored machine's memory already holds all of it, as the guest left it.
    if (!restoring) {
        const GuestMemory& mem = m->memory_;
        STOCKADE_TRY_VOID(mem.write(x86::kAcpiAddr, acpi.blob));
        STOCKADE_TRY_VOID(write_generation_id(mem));
        STOCKADE_TRY_VOID(x86::write_identity_page_tables(mem));
        const auto e820 = x86::e820_map(ram);
        STOCKADE_TRY_VOID(x86::load_boot(mem, *images.kernel, layout, images.initrd_parts,
                                         config.cmdline, e820, acpi.rsdp_addr));
        STOCKADE_TRY_VOID(x86::setup_boot_cpu(m->vcpus_.front(), mem, layout.entry));
    }
    STOCKADE_TRY_VOID(m->add_devices(std::move(serial_output), std::move(events)));
    m->irq_router_ = std::make_unique<kvm::IrqRouter>(m->vm_);
    if (has_pci) {
        m->pci_ = std::make_unique<pci::PciBus>(m->mmio_, windows);
        STOCKADE_TRY_VOID(m->pio_.add(0xcf8, 8, *m->pci_, "PCI configuration"));
        STOCKADE_TRY_VOID(m->add_pci(std::move(devices)));
    }
    return m;
}

// Guest memory slots for passed-through BARs, after the slots of guest RAM.
class Machine::VmBarSlots final : public pci::BarSlots {
  public:
    VmBarSlots(kvm::Vm& vm, std::uint32_t first) : vm_(vm), first_(first) {}
    Result<std::uint32_t> map(std::uint64_t guest_phys, std::uint64_t size, void* host) override {
        std::lock_guard lock(mu_);
        std::uint32_t slot = first_;
        while (used_.contains(slot))
            ++slot;
        if (slot >= kLastSlot) return fail("no KVM memory slot left for a BAR");
        STOCKADE_TRY_VOID(vm_.set_user_memory_region(slot, guest_phys, size, host));
        used_.insert(slot);
        return slot;
    }
    Result<> unmap(std::uint32_t slot) override {
        std::lock_guard lock(mu_);
        if (!used_.erase(slot)) return fail("KVM memory slot {} is not a BAR's", slot);
        return vm_.set_user_memory_region(slot, 0, 0, nullptr);
    }

  private:
    static constexpr std::uint32_t kLastSlot = 500;  // x86 KVM offers 509 user slots
    kvm::Vm& vm_;
    const std::uint32_t first_;
    std::mutex mu_;
    std::set<std::uint32_t> used_;
};

Result<> Machine::add_pci(MachineDevices devices) {
    if (devices.watcher == nullptr && !devices.virtio.empty())
        return fail("virtio devices need an event loop");
    for (auto& d : devices.virtio) {
        const std::string name = d->name();
        auto t = STOCKADE_TRY(virtio::PciTransport::create(std::move(d), vm_, *irq_router_, memory_,
                                                           *devices.watcher));
        auto slot = pci_->add(*t);
        if (!slot) return std::unexpected(std::move(slot).error().context("virtio-" + name));
        pci_functions_.emplace_back(*slot, t.get());
        transports_.push_back(std::move(t));
    }
    if (devices.passthrough.empty()) return {};
    bar_slots_ = std::make_unique<VmBarSlots>(
        vm_, static_cast<std::uint32_t>(memory_.host_regions().size()));
    for (auto& source : devices.passthrough) {
        auto f = source->attach(memory_, *bar_slots_, *irq_router_);
        if (!f) return std::unexpected(std::move(f).error());
        auto slot = pci_->add(**f);
        if (!slot) return std::unexpected(std::move(slot).error().context(source->name()));
        pci_functions_.emplace_back(*slot, f->get());
        passthrough_.push_back(std::move(*f));
        passthrough_sources_.push_back(std::move(source));
    }
    return {};
}

Result<> Machine::add_devices(Serial::Output serial_output, PlatformEventSink events) {
    kvm::Vm* vm = &vm_;
    serial_ = std::make_unique<Serial>(
        std::move(serial_output), [vm, warnings = platform_warnings_](bool level) {
            if (auto r = vm->irq_line(x86::kSerialIrq, level); !r)
                warnings.warn("serial interrupt: {}", r.error().message);
        });
    STOCKADE_TRY_VOID(pio_.add(0x3f8, 8, *serial_, "COM1"));
    auto add = [&](std::uint64_t base, std::uint64_t len, std::unique_ptr<BusDevice> d,
                   const char* what) -> Result<> {
        STOCKADE_TRY_VOID(pio_.add(base, len, *d, what));
        devices_.push_back(std::move(d));
        return {};
    };
    STOCKADE_TRY_VOID(add(0x60, 5, std::make_unique<I8042>(events), "i8042"));
    STOCKADE_TRY_VOID(add(x86::kPvPanicPort, 1, std::make_unique<PvPanic>(events), "pvpanic"));
    STOCKADE_TRY_VOID(
        add(x86::kSleepControlPort, 2, std::make_unique<AcpiSleep>(events), "ACPI sleep"));
    STOCKADE_TRY_VOID(
        add(guest_abi::kAgentPort, 4, std::make_unique<AgentPort>(events), "agent port"));
    return {};
}

Result<> Machine::start(VmControl& control, ThreadSetup thread_setup) {
    if (!threads_.empty()) return fail("the machine is already running");
    control_ = &control;
    STOCKADE_TRY_VOID(install_kick_handler());
    // vCPU threads start with every signal blocked but the kick; process signals go to
    // the event loop's signalfd.
    started_ = std::chrono::steady_clock::now();
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, kick_signal());
    ::pthread_sigmask(SIG_SETMASK, &all, &old);
    for (std::size_t i = 0; i < vcpus_.size(); ++i) {
        try {
            threads_.emplace_back(
                [this, i, &control, thread_setup] { vcpu_main(i, control, thread_setup); });
        } catch (const std::system_error& e) {
            ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
            control.stop({StopKind::host_error, 0, "starting vCPU threads"});
            stop();
            return fail("starting the thread of vCPU {}: {}", i, e.what());
        }
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    return {};
}

void Machine::release() {
    {
        std::lock_guard lock(release_mu_);
        released_ = true;
    }
    release_cv_.notify_all();
}

void Machine::stop() {
    if (threads_.empty()) return;
    release();  // threads still waiting to start must see the stop and leave
    {
        std::lock_guard lock(pause_mu_);  // parked threads must see the stop and leave
    }
    pause_cv_.notify_all();
    for (auto& v : vcpus_)
        v.set_immediate_exit(true);
    for (auto& t : threads_)
        ::pthread_kill(t.native_handle(), kick_signal());
    for (auto& t : threads_)
        t.join();
    threads_.clear();
}

Result<> Machine::pause() {
    std::unique_lock lock(pause_mu_);
    if (pause_requested_) return {};
    if (threads_.empty() || control_ == nullptr) return fail("the machine is not running");
    {
        std::lock_guard released(release_mu_);
        if (!released_) return fail("the sandbox is still starting");
    }
    if (control_->stopping()) return fail("the sandbox is stopping");
    pause_requested_ = true;
    for (auto& v : vcpus_)
        v.set_immediate_exit(true);
    for (auto& t : threads_)
        ::pthread_kill(t.native_handle(), kick_signal());
    const bool all = pause_cv_.wait_for(lock, std::chrono::seconds(5), [this] {
        return parked_ == threads_.size() || control_->stopping();
    });
    if (!all || control_->stopping()) {
        pause_requested_ = false;
        for (auto& v : vcpus_)
            if (!control_->stopping()) v.set_immediate_exit(false);
        pause_cv_.notify_all();
        if (control_->stopping()) return fail("the sandbox is stopping");
        return fail("the vCPUs did not stop within 5 s");
    }
    auto clock = vm_.get_clock();
    if (!clock) log::warn("pausing: {}", clock.error().message);
    paused_clock_ = clock ? clock->clock : 0;
    return {};
}

Result<> Machine::start_paused() {
    std::unique_lock lock(pause_mu_);
    if (!threads_.empty()) return fail("the machine has started");
    const auto clock = STOCKADE_TRY(vm_.get_clock());
    paused_clock_ = clock.clock;
    pause_requested_ = true;
    return {};
}

void Machine::hold_devices(bool held) {
    for (auto& t : transports_)
        t->device().hold(held);
}

Result<> Machine::resume() {
    std::unique_lock lock(pause_mu_);
    if (!pause_requested_) return {};
    if (paused_clock_ != 0)
        if (auto r = vm_.set_clock(paused_clock_); !r) log::warn("resuming: {}", r.error().message);
    for (auto& v : vcpus_)
        if (control_ == nullptr || !control_->stopping()) v.set_immediate_exit(false);
    pause_requested_ = false;
    pause_cv_.notify_all();
    return {};
}

// Called by a vCPU thread between runs: waits here while the machine is paused, and reads
// its own state when a capture asks for it (its filter has the reading ioctls; the API
// thread's has none).
void Machine::park_if_paused(std::size_t index, VmControl& control) {
    if (!pause_requested_.load()) return;
    std::unique_lock lock(pause_mu_);
    if (!pause_requested_) return;
    ++parked_;
    pause_cv_.notify_all();
    std::uint64_t seen = capture_.generation;
    for (;;) {
        pause_cv_.wait(lock, [&] {
            return !pause_requested_ || control.stopping() || capture_.generation != seen;
        });
        if (!pause_requested_ || control.stopping()) break;
        capture_parked(index, seen, lock);
    }
    --parked_;
}

void Machine::capture_parked(std::size_t index, std::uint64_t& seen,
                             std::unique_lock<std::mutex>& lock) {
    seen = capture_.generation;
    if (index >= vcpus_.size()) return;
    lock.unlock();
    auto vcpu = kvm::capture_vcpu(vcpus_[index], msr_indices_);
    std::optional<Result<kvm::VmState>> vm;
    if (index == 0) vm = kvm::capture_vm(vm_);
    lock.lock();
    // A capture given up on (nothing pending) or replaced by a newer one: dropped.
    if (seen != capture_.generation || capture_.pending == 0) return;
    if (vcpu)
        capture_.vcpus[index] = std::move(*vcpu);
    else
        capture_.errors[index] = vcpu.error().message;
    if (vm) {
        if (*vm)
            capture_.vm = std::move(**vm);
        else
            capture_.vm_error = vm->error().message;
    }
    --capture_.pending;
    pause_cv_.notify_all();
}

Result<MachineState> Machine::capture_state() {
    if (!passthrough_.empty())
        return fail(
            "a sandbox with a passed-through PCI function ({}) cannot be snapshotted: "
            "its state is in the hardware",
            passthrough_sources_.front()->name());
    MachineState state;
    for (std::size_t i = 0; i < transports_.size(); ++i) {
        virtio::PciTransport& t = *transports_[i];
        auto device = t.device().save_state();
        if (!device) return std::unexpected(std::move(device).error());
        state.functions.push_back({pci_functions_[i].first, t.state(), std::move(*device)});
    }
    if (pci_) state.pci = pci_->state();
    state.serial = serial_->state();
    std::unique_lock lock(pause_mu_);
    if (!pause_requested_ || parked_ != threads_.size() || threads_.empty())
        return fail("the machine is not paused");
    capture_.vcpus.assign(vcpus_.size(), {});
    capture_.errors.assign(vcpus_.size(), {});
    capture_.vm.reset();
    capture_.vm_error.clear();
    capture_.pending = vcpus_.size();
    ++capture_.generation;
    pause_cv_.notify_all();
    const bool done = pause_cv_.wait_for(lock, std::chrono::seconds(10), [this] {
        return capture_.pending == 0 || (control_ != nullptr && control_->stopping());
    });
    if (!done || capture_.pending != 0) {
        capture_.pending = 0;  // late answers to this one are dropped
        return fail("the vCPUs did not save their state within 10 s");
    }
    for (std::size_t i = 0; i < vcpus_.size(); ++i)
        if (!capture_.errors[i].empty()) return fail("saving vCPU {}: {}", i, capture_.errors[i]);
    if (!capture_.vm) return fail("saving the VM's interrupt controllers: {}", capture_.vm_error);
    state.vcpus = std::move(capture_.vcpus);
    state.vm = *capture_.vm;
    // The clock the pause holds, not the one that went on meanwhile.
    state.vm.clock.clock = paused_clock_;
    return state;
}

Result<> Machine::restore_state(const MachineState& s) {
    if (!threads_.empty()) return fail("restore into a machine that runs");
    if (s.vcpus.size() != vcpus_.size())
        return fail("the snapshot has {} vCPUs, this machine {}", s.vcpus.size(), vcpus_.size());
    if (s.functions.size() != transports_.size() || !passthrough_.empty())
        return fail("the snapshot has {} PCI functions, this machine {}", s.functions.size(),
                    transports_.size() + passthrough_.size());
    // Same slot, and the same vendor and device id (configuration bytes 0..3).
    for (std::size_t i = 0; i < s.functions.size(); ++i)
        if (s.functions[i].slot != pci_functions_[i].first ||
            !std::equal(s.functions[i].transport.config.begin(),
                        s.functions[i].transport.config.begin() + 4,
                        transports_[i]->state().config.begin()))
            return fail(
                "the snapshot's PCI function in slot {} is not this machine's ({} in slot "
                "{})",
                s.functions[i].slot, transports_[i]->device().name(), pci_functions_[i].first);
    // Only MSRs a capture reads here: KVM takes MSR writes from the VMM as the host's own.
    for (std::size_t i = 0; i < s.vcpus.size(); ++i)
        for (const kvm_msr_entry& e : s.vcpus[i].msrs)
            if (std::find(msr_indices_.begin(), msr_indices_.end(), e.index) == msr_indices_.end())
                return fail("the snapshot's vCPU {} has MSR {:#x}, which KVM does not save here", i,
                            e.index);
    STOCKADE_TRY_VOID(kvm::restore_vm(vm_, s.vm));
    for (std::size_t i = 0; i < vcpus_.size(); ++i) {
        auto r = kvm::restore_vcpu(vcpus_[i], s.vcpus[i]);
        if (!r) return std::unexpected(std::move(r).error().context(fmt::format("vCPU {}", i)));
    }
    serial_->restore(s.serial);
    // Each function's own state first (its command register), then where its BARs were.
    for (std::size_t i = 0; i < s.functions.size(); ++i)
        STOCKADE_TRY_VOID(
            transports_[i]->restore(s.functions[i].transport, s.functions[i].device.queues));
    if (pci_) STOCKADE_TRY_VOID(pci_->restore(s.pci));
    // A new generation, announced by the Generic Event Device's edge: with the interrupt
    // controllers restored, it waits in the guest's LAPIC for the first instruction, and a
    // kernel with the vmgenid driver reseeds its CRNG soon after it resumes (its interrupt
    // thread runs _EVT; the notify goes through ACPI's work queue). The guest's init hears of
    // the restore on the agent channel too. A guest whose kernel did not claim the line, or
    // had it masked when it was saved, does not see the edge.
    STOCKADE_TRY_VOID(write_generation_id(memory_));
    STOCKADE_TRY_VOID(vm_.irq_line(x86::kGedIrq, true));
    return vm_.irq_line(x86::kGedIrq, false);
}

std::uint64_t this_thread_cpu_ns() {
    timespec ts{};
    if (::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

ExitCounts Machine::exit_counts() const {
    ExitCounts c;
    c.first_exit_us = first_exit_us_.load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < vcpus_.size(); ++i) {
        c.io += counters_[i].io.load(std::memory_order_relaxed);
        c.mmio += counters_[i].mmio.load(std::memory_order_relaxed);
        c.interrupted += counters_[i].interrupted.load(std::memory_order_relaxed);
        c.other += counters_[i].other.load(std::memory_order_relaxed);
        c.vcpu_cpu_ns += counters_[i].cpu_ns.load(std::memory_order_relaxed);
    }
    return c;
}

std::string Machine::warnings_report() const {
    GuestWarnings::Counts all = platform_warnings_.counts();
    std::vector<std::string> by_device;
    if (all != GuestWarnings::Counts{})
        by_device.push_back(fmt::format("platform {} (suppressed {})", all.warned, all.suppressed));
    for (const auto& [slot, function] : pci_functions_) {
        const GuestWarnings::Counts c = function->warnings().counts();
        all += c;
        if (c != GuestWarnings::Counts{})
            by_device.push_back(fmt::format("00:{:02x}.0 {} {} (suppressed {})", slot,
                                            function->name(), c.warned, c.suppressed));
    }
    std::string out = "guest-triggered " + describe(all);
    if (!by_device.empty()) out += fmt::format(": {}", fmt::join(by_device, ", "));
    return out;
}

// One exit of vCPU `index`: device emulation, or why the run stops.
void Machine::handle_exit(std::size_t index, std::uint32_t exit, VmControl& control) {
    kvm::Vcpu& vcpu = vcpus_[index];
    Counters& n = counters_[index];
    auto stop_with = [&](StopKind kind, std::string detail) {
        control.stop({kind, 0, fmt::format("vCPU {}: {}", index, detail)});
    };
    switch (exit) {
        case KVM_EXIT_IO: {
            n.io.fetch_add(1, std::memory_order_relaxed);
            auto io = vcpu.pio();
            if (!io) {
                stop_with(StopKind::vcpu_error, io.error().message);
                break;
            }
            for (std::uint32_t k = 0; k < io->count; ++k) {
                auto chunk = io->data.subspan(std::size_t{k} * io->size, io->size);
                if (io->write)
                    pio_.write(io->port, chunk);
                else
                    pio_.read(io->port, chunk);
            }
            break;
        }
        case KVM_EXIT_MMIO: {
            n.mmio.fetch_add(1, std::memory_order_relaxed);
            auto mm = vcpu.mmio();
            if (!mm) {
                stop_with(StopKind::vcpu_error, mm.error().message);
                break;
            }
            if (mm->write)
                mmio_.write(mm->addr, mm->data);
            else
                mmio_.read(mm->addr, mm->data);
            break;
        }
        case KVM_EXIT_INTR:
            n.interrupted.fetch_add(1, std::memory_order_relaxed);
            break;
        case KVM_EXIT_SHUTDOWN:
            control.stop({StopKind::triple_fault, 0, fmt::format("on vCPU {}", index)});
            break;
        case KVM_EXIT_SYSTEM_EVENT: {
            const auto type = vcpu.run_state().system_event.type;
            control.stop({type == KVM_SYSTEM_EVENT_RESET   ? StopKind::guest_reboot
                          : type == KVM_SYSTEM_EVENT_CRASH ? StopKind::guest_panic
                                                           : StopKind::guest_poweroff,
                          0, fmt::format("system event {} on vCPU {}", type, index)});
            break;
        }
        case KVM_EXIT_FAIL_ENTRY:
            stop_with(StopKind::vcpu_error,
                      fmt::format("KVM_EXIT_FAIL_ENTRY, hardware reason {:#x}",
                                  vcpu.run_state().fail_entry.hardware_entry_failure_reason));
            break;
        case KVM_EXIT_INTERNAL_ERROR:
            stop_with(StopKind::vcpu_error, fmt::format("KVM_EXIT_INTERNAL_ERROR, suberror {}",
                                                        vcpu.run_state().internal.suberror));
            break;
        default:
            n.other.fetch_add(1, std::memory_order_relaxed);
            stop_with(StopKind::vcpu_error, fmt::format("unexpected exit reason {}", exit));
            break;
    }
}

void Machine::vcpu_main(std::size_t index, VmControl& control, const ThreadSetup& setup) {
    no_huge_pages_on_this_threads_stack();
    if (setup) {
        if (auto r = setup(); !r) {
            control.stop({StopKind::host_error, 0,
                          fmt::format("setting up vCPU {}: {}", index, r.error().message)});
            return;
        }
    }
    {
        std::unique_lock lock(release_mu_);
        release_cv_.wait(lock, [this] { return released_; });
    }
    kvm::Vcpu& vcpu = vcpus_[index];
    Counters& n = counters_[index];
    while (!control.stopping()) {
        park_if_paused(index, control);
        if (control.stopping()) break;
        auto exit = vcpu.run();
        if (!exit) {
            control.stop(
                {StopKind::vcpu_error, 0, fmt::format("vCPU {}: {}", index, exit.error().message)});
            break;
        }
        if (*exit != KVM_EXIT_INTR && first_exit_us_.load(std::memory_order_relaxed) < 0) {
            std::int64_t expected = -1;
            first_exit_us_.compare_exchange_strong(
                expected, std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::steady_clock::now() - started_)
                              .count());
        }
        handle_exit(index, *exit, control);
    }
    n.cpu_ns.store(this_thread_cpu_ns(), std::memory_order_relaxed);
}

}  // namespace stockade
