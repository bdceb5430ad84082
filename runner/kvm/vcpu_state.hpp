#pragma once
// What a snapshot keeps of KVM's side of a machine, and putting it back into a fresh one.
// A vCPU: general, special, FPU/SSE/AVX (XSAVE) and extended control registers, the local
// APIC, its MSRs (kvmclock and the TSC among them), pending events (exceptions, interrupts,
// NMI, SMI), debug registers, MP state and TSC frequency. The VM: both PICs, the IOAPIC,
// the PIT and the kvmclock.
//
// Captured while the vCPU is out of KVM_RUN (paused), after KVM finished what its last exit
// left pending (Vcpu::settle), so that no half-done port or MMIO access is lost. Restore order
// matters to KVM: MP state, registers and special registers first, then XSAVE and XCRs, debug
// registers, the LAPIC, MSRs (after the LAPIC: the TSC deadline), and pending events last (they
// refer to the restored LAPIC). The CPUID the guest saw is set before any of it, by the machine.
#include <cstdint>
#include <vector>

#include "base/error.hpp"
#include "runner/kvm/vcpu.hpp"
#include "runner/kvm/vm.hpp"

namespace stockade::kvm {

struct VcpuState {
    kvm_regs regs{};
    kvm_sregs sregs{};
    kvm_xsave xsave{};
    kvm_xcrs xcrs{};
    kvm_lapic_state lapic{};
    std::vector<kvm_msr_entry> msrs;
    kvm_vcpu_events events{};
    kvm_debugregs debugregs{};
    std::uint32_t mp_state = 0;
    std::uint32_t tsc_khz = 0;
};

struct VmState {
    kvm_irqchip pic_master{}, pic_slave{}, ioapic{};
    kvm_pit_state2 pit{};
    kvm_clock_data clock{};
};

// The MSRs a snapshot saves: every MSR KVM lists as saved and emulated
// (KVM_GET_MSR_INDEX_LIST), those this CPU cannot read are dropped when read.
[[nodiscard]] Result<std::vector<std::uint32_t>> snapshot_msr_indices(const Kvm& kvm);

[[nodiscard]] Result<VcpuState> capture_vcpu(Vcpu& vcpu, std::span<const std::uint32_t> msrs);
[[nodiscard]] Result<> restore_vcpu(Vcpu& vcpu, const VcpuState& state);

[[nodiscard]] Result<VmState> capture_vm(const Vm& vm);
// Before any vCPU runs: the interrupt controllers and timer, then the clock.
[[nodiscard]] Result<> restore_vm(Vm& vm, const VmState& state);

}  // namespace stockade::kvm
