#pragma once
// One KVM vCPU: its fd, the shared kvm_run page, and register state accessors.
// Exit data in kvm_run is handed out only through pio()/mmio(), which check that
// offsets and lengths stay inside the mapped page.
#include "base/uapi.hpp"

#include <cstdint>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/mapping.hpp"
#include "base/unique_fd.hpp"
#include "runner/kvm/kvm.hpp"
#include "runner/kvm/vm.hpp"

namespace stockade::kvm {

struct PioAccess {
    std::uint16_t port;
    bool write;
    std::uint8_t size;             // 1, 2 or 4
    std::uint32_t count;           // >1 for string instructions
    std::span<std::uint8_t> data;  // size * count bytes inside the kvm_run page
};

struct MmioAccess {
    std::uint64_t addr;
    bool write;
    std::span<std::uint8_t> data;  // 1..8 bytes
};

class Vcpu {
  public:
    [[nodiscard]] static Result<Vcpu> create(Vm& vm, std::uint32_t id, std::size_t mmap_size);

    // KVM_RUN. Returns the exit reason; a signal interrupting the call gives KVM_EXIT_INTR.
    [[nodiscard]] Result<std::uint32_t> run();
    // Makes the next (or current) KVM_RUN return at once; used to stop vCPU threads.
    void set_immediate_exit(bool on) { run_->immediate_exit = on ? 1 : 0; }

    [[nodiscard]] Result<PioAccess> pio() const;
    [[nodiscard]] Result<MmioAccess> mmio() const;
    [[nodiscard]] kvm_run& run_state() const { return *run_; }

    [[nodiscard]] Result<kvm_regs> regs() const;
    [[nodiscard]] Result<> set_regs(const kvm_regs& r);
    [[nodiscard]] Result<kvm_sregs> sregs() const;
    [[nodiscard]] Result<> set_sregs(const kvm_sregs& s);
    [[nodiscard]] Result<> set_fpu(const kvm_fpu& f);
    [[nodiscard]] Result<> set_cpuid(std::span<const kvm_cpuid_entry2> entries);
    [[nodiscard]] Result<> set_msrs(std::span<const kvm_msr_entry> entries);
    [[nodiscard]] Result<kvm_lapic_state> lapic() const;
    [[nodiscard]] Result<> set_lapic(const kvm_lapic_state& l);
    [[nodiscard]] Result<> set_mp_state(std::uint32_t state);
    [[nodiscard]] Result<> set_tsc_khz(std::uint32_t khz);
    [[nodiscard]] Result<std::uint32_t> tsc_khz() const;

    // Lets KVM finish what the last exit left pending (the rest of a port or MMIO access)
    // without running guest code: KVM_RUN with immediate_exit. Before reading state to save.
    [[nodiscard]] Result<> settle();
    // The rest of the state a snapshot saves (runner/kvm/vcpu_state.hpp); set_* of each.
    [[nodiscard]] Result<std::uint32_t> mp_state() const;
    [[nodiscard]] Result<kvm_xsave> xsave() const;
    [[nodiscard]] Result<> set_xsave(const kvm_xsave& x);
    [[nodiscard]] Result<kvm_xcrs> xcrs() const;
    [[nodiscard]] Result<> set_xcrs(const kvm_xcrs& x);
    [[nodiscard]] Result<kvm_vcpu_events> events() const;
    [[nodiscard]] Result<> set_events(const kvm_vcpu_events& e);
    [[nodiscard]] Result<kvm_debugregs> debugregs() const;
    [[nodiscard]] Result<> set_debugregs(const kvm_debugregs& d);
    // Reads the MSRs `indices` names. An MSR this CPU does not have is left out of the
    // result (KVM stops at the first it cannot read; the rest are read again after it).
    [[nodiscard]] Result<std::vector<kvm_msr_entry>> msrs(
        std::span<const std::uint32_t> indices) const;

  private:
    Vcpu(UniqueFd fd, Mapping run, std::uint32_t id)
        : fd_(std::move(fd)),
          run_map_(std::move(run)),
          run_(reinterpret_cast<kvm_run*>(run_map_.data())),
          id_(id) {}
    UniqueFd fd_;
    Mapping run_map_;
    kvm_run* run_;
    std::uint32_t id_;
};

}  // namespace stockade::kvm
