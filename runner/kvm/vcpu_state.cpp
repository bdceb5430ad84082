#include "runner/kvm/vcpu_state.hpp"

namespace stockade::kvm {

Result<std::vector<std::uint32_t>> snapshot_msr_indices(const Kvm& kvm) {
    return kvm.msr_index_list();
}

Result<VcpuState> capture_vcpu(Vcpu& vcpu, std::span<const std::uint32_t> msrs) {
    STOCKADE_TRY_VOID(vcpu.settle());
    VcpuState s;
    s.mp_state = STOCKADE_TRY(vcpu.mp_state());
    s.regs = STOCKADE_TRY(vcpu.regs());
    s.sregs = STOCKADE_TRY(vcpu.sregs());
    s.xsave = STOCKADE_TRY(vcpu.xsave());
    s.xcrs = STOCKADE_TRY(vcpu.xcrs());
    s.debugregs = STOCKADE_TRY(vcpu.debugregs());
    s.lapic = STOCKADE_TRY(vcpu.lapic());
    s.msrs = STOCKADE_TRY(vcpu.msrs(msrs));
    s.events = STOCKADE_TRY(vcpu.events());
    s.tsc_khz = STOCKADE_TRY(vcpu.tsc_khz());
    return s;
}

Result<> restore_vcpu(Vcpu& vcpu, const VcpuState& s) {
    // The frequency first: the TSC MSR is scaled by it.
    if (auto have = vcpu.tsc_khz(); !have || *have != s.tsc_khz)
        STOCKADE_TRY_VOID(vcpu.set_tsc_khz(s.tsc_khz));
    STOCKADE_TRY_VOID(vcpu.set_mp_state(s.mp_state));
    STOCKADE_TRY_VOID(vcpu.set_regs(s.regs));
    STOCKADE_TRY_VOID(vcpu.set_sregs(s.sregs));
    STOCKADE_TRY_VOID(vcpu.set_xsave(s.xsave));
    STOCKADE_TRY_VOID(vcpu.set_xcrs(s.xcrs));
    STOCKADE_TRY_VOID(vcpu.set_debugregs(s.debugregs));
    STOCKADE_TRY_VOID(vcpu.set_lapic(s.lapic));
    STOCKADE_TRY_VOID(vcpu.set_msrs(s.msrs));
    // Everything pending, and the NMI/SMI/interrupt-shadow state, as it was.
    kvm_vcpu_events e = s.events;
    e.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
               KVM_VCPUEVENT_VALID_SHADOW;
    return vcpu.set_events(e);
}

Result<VmState> capture_vm(const Vm& vm) {
    VmState s;
    s.pic_master = STOCKADE_TRY(vm.irqchip(KVM_IRQCHIP_PIC_MASTER));
    s.pic_slave = STOCKADE_TRY(vm.irqchip(KVM_IRQCHIP_PIC_SLAVE));
    s.ioapic = STOCKADE_TRY(vm.irqchip(KVM_IRQCHIP_IOAPIC));
    s.pit = STOCKADE_TRY(vm.pit2());
    s.clock = STOCKADE_TRY(vm.get_clock());
    return s;
}

Result<> restore_vm(Vm& vm, const VmState& s) {
    for (const kvm_irqchip* c : {&s.pic_master, &s.pic_slave, &s.ioapic})
        STOCKADE_TRY_VOID(vm.set_irqchip(*c));
    STOCKADE_TRY_VOID(vm.set_pit2(s.pit));
    return vm.set_clock(s.clock.clock);
}

}  // namespace stockade::kvm
