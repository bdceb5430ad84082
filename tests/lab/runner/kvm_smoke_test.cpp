// Against real KVM: a real-mode payload that writes 0..4 to a port in a loop and halts (the
// exact exit sequence the vCPU thread sees), and the same loop moved mid-way into a fresh VM
// through the state a snapshot saves.
#include <gtest/gtest.h>

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "base/mapping.hpp"
#include "runner/kvm/kvm.hpp"
#include "runner/kvm/vcpu.hpp"
#include "runner/kvm/vcpu_state.hpp"
#include "runner/kvm/vm.hpp"

namespace stockade {
namespace {

constexpr std::uint64_t kLoad = 0x1000;
constexpr std::uint16_t kPort = 0x10;
// mov dx,0x10; mov al,0; L: out dx,al; inc al; cmp al,5; jne L; hlt
constexpr std::uint8_t kPayload[] = {0xba, 0x10, 0x00, 0xb0, 0x00, 0xee, 0xfe,
                                     0xc0, 0x3c, 0x05, 0x75, 0xf9, 0xf4};

TEST(KvmSmoke, RealModePortLoopThenHalt) {
    auto kvm = kvm::Kvm::open();
    ASSERT_TRUE(kvm) << kvm.error().message;
    auto vm = kvm::Vm::create(*kvm);
    ASSERT_TRUE(vm) << vm.error().message;
    auto mem = Mapping::anonymous(0x10000);
    ASSERT_TRUE(mem) << mem.error().message;
    std::copy(std::begin(kPayload), std::end(kPayload), mem->data() + kLoad);
    ASSERT_TRUE(vm->set_user_memory_region(0, 0, mem->size(), mem->data()));
    auto mmap_size = kvm->vcpu_mmap_size();
    ASSERT_TRUE(mmap_size);
    auto vcpu = kvm::Vcpu::create(*vm, 0, *mmap_size);
    ASSERT_TRUE(vcpu) << vcpu.error().message;

    auto sregs = vcpu->sregs();
    ASSERT_TRUE(sregs);
    sregs->cs.base = 0;
    sregs->cs.selector = 0;
    ASSERT_TRUE(vcpu->set_sregs(*sregs));
    kvm_regs regs{};
    regs.rip = kLoad;
    regs.rflags = 0x2;
    ASSERT_TRUE(vcpu->set_regs(regs));

    std::vector<std::uint8_t> seen;
    for (int i = 0; i < 100; ++i) {
        auto exit = vcpu->run();
        ASSERT_TRUE(exit) << exit.error().message;
        if (*exit == KVM_EXIT_HLT) break;
        ASSERT_EQ(*exit, static_cast<std::uint32_t>(KVM_EXIT_IO)) << "unexpected exit " << *exit;
        auto pio = vcpu->pio();
        ASSERT_TRUE(pio) << pio.error().message;
        EXPECT_EQ(pio->port, kPort);
        EXPECT_TRUE(pio->write);
        ASSERT_EQ(pio->size, 1);
        ASSERT_EQ(pio->count, 1u);
        seen.push_back(pio->data[0]);
    }
    EXPECT_EQ(seen, (std::vector<std::uint8_t>{0, 1, 2, 3, 4}));
    auto final_regs = vcpu->regs();
    ASSERT_TRUE(final_regs);
    EXPECT_EQ(final_regs->rip, kLoad + sizeof kPayload) << "halted after the hlt instruction";
    EXPECT_EQ(final_regs->rax & 0xff, 5u);
}

TEST(KvmSmoke, RequiredCapabilitiesPresent) {
    auto kvm = kvm::Kvm::open();
    ASSERT_TRUE(kvm) << kvm.error().message;
    auto caps = kvm::check_required_capabilities(*kvm);
    EXPECT_TRUE(caps) << caps.error().message;
    auto cpuid = kvm->supported_cpuid();
    ASSERT_TRUE(cpuid) << cpuid.error().message;
    EXPECT_GT(cpuid->size(), 10u);
}

// The same loop, ending with a write to port 0x11 instead of a bare hlt: with the in-kernel
// LAPIC a hlt does not exit to userspace (the vCPU sleeps in KVM until an interrupt).
// mov dx,0x10; mov al,0; L: out dx,al; inc al; cmp al,5; jne L; mov dx,0x11; out dx,al; hlt
constexpr std::uint8_t kIrqchipPayload[] = {0xba, 0x10, 0x00, 0xb0, 0x00, 0xee, 0xfe, 0xc0, 0x3c,
                                            0x05, 0x75, 0xf9, 0xba, 0x11, 0x00, 0xee, 0xf4};
constexpr std::uint16_t kDonePort = 0x11;

// A machine with the in-kernel interrupt controllers and timer, running that loop.
struct LoopMachine {
    kvm::Vm vm;
    Mapping mem;
    kvm::Vcpu vcpu;
};

LoopMachine loop_machine(const kvm::Kvm& kvm, const std::uint8_t* ram) {
    auto vm = kvm::Vm::create(kvm);
    EXPECT_TRUE(vm) << vm.error().message;
    EXPECT_TRUE(vm->create_irqchip());
    EXPECT_TRUE(vm->create_pit2());
    auto mem = Mapping::anonymous(0x10000);
    EXPECT_TRUE(mem);
    if (ram != nullptr)
        std::copy(ram, ram + mem->size(), mem->data());
    else
        std::copy(std::begin(kIrqchipPayload), std::end(kIrqchipPayload), mem->data() + kLoad);
    EXPECT_TRUE(vm->set_user_memory_region(0, 0, mem->size(), mem->data()));
    auto vcpu = kvm::Vcpu::create(*vm, 0, kvm.vcpu_mmap_size().value());
    EXPECT_TRUE(vcpu) << vcpu.error().message;
    return LoopMachine{std::move(*vm), std::move(*mem), std::move(*vcpu)};
}

// Runs until `outs` writes to port 0x10 were seen or the loop's end; returns the values
// written, and `done` tells whether the end was reached. A SIGALRM (the test's deadline)
// makes a stuck KVM_RUN return, so a broken restore fails instead of hanging.
std::vector<std::uint8_t> run_outs(kvm::Vcpu& vcpu, int outs, bool* done = nullptr) {
    std::vector<std::uint8_t> seen;
    for (int i = 0; i < 100 && static_cast<int>(seen.size()) < outs; ++i) {
        auto exit = vcpu.run();
        if (!exit || *exit != KVM_EXIT_IO) break;
        const auto pio = vcpu.pio().value();
        if (pio.port == kDonePort) {
            if (done != nullptr) *done = true;
            break;
        }
        seen.push_back(pio.data[0]);
    }
    return seen;
}

// Snapshots' KVM half: a vCPU stopped right after a port write (the exit KVM still has to
// finish) and its VM move into a fresh VM and vCPU with a copy of the RAM, and the loop
// goes on exactly where it was; an MSR the guest had set comes along, and reading the state
// back from the new vCPU gives what was saved.
TEST(KvmSmoke, VcpuAndVmStateMoveToAFreshVm) {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};
    ASSERT_EQ(::sigaction(SIGALRM, &sa, nullptr), 0);  // no SA_RESTART: KVM_RUN returns
    ::alarm(20);
    auto kvm = kvm::Kvm::open();
    ASSERT_TRUE(kvm) << kvm.error().message;
    LoopMachine a = loop_machine(*kvm, nullptr);
    auto sregs = a.vcpu.sregs().value();
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    ASSERT_TRUE(a.vcpu.set_sregs(sregs));
    kvm_regs regs{};
    regs.rip = kLoad;
    regs.rflags = 0x2;
    ASSERT_TRUE(a.vcpu.set_regs(regs));
    constexpr std::uint32_t kSysenterCs = 0x174;
    const kvm_msr_entry msr{kSysenterCs, 0, 0x1234};
    ASSERT_TRUE(a.vcpu.set_msrs(std::span(&msr, 1)));
    EXPECT_EQ(run_outs(a.vcpu, 2), (std::vector<std::uint8_t>{0, 1}));

    auto indices = kvm::snapshot_msr_indices(*kvm);
    ASSERT_TRUE(indices) << indices.error().message;
    auto saved = kvm::capture_vcpu(a.vcpu, *indices);
    ASSERT_TRUE(saved) << saved.error().message;
    auto saved_vm = kvm::capture_vm(a.vm);
    ASSERT_TRUE(saved_vm) << saved_vm.error().message;
    EXPECT_GT(saved->msrs.size(), 10u);
    std::printf("FIGURE vcpu state: %zu MSRs of %zu listed\n", saved->msrs.size(), indices->size());

    LoopMachine b = loop_machine(*kvm, a.mem.data());
    auto vm_restored = kvm::restore_vm(b.vm, *saved_vm);
    ASSERT_TRUE(vm_restored) << vm_restored.error().message;
    auto restored = kvm::restore_vcpu(b.vcpu, *saved);
    ASSERT_TRUE(restored) << restored.error().message;

    auto again = kvm::capture_vcpu(b.vcpu, *indices);
    ASSERT_TRUE(again) << again.error().message;
    EXPECT_EQ(std::memcmp(&again->regs, &saved->regs, sizeof saved->regs), 0);
    EXPECT_EQ(again->sregs.cr0, saved->sregs.cr0);
    EXPECT_EQ(again->sregs.cs.selector, saved->sregs.cs.selector);
    EXPECT_EQ(again->mp_state, saved->mp_state);
    bool found = false;
    for (const auto& m : again->msrs)
        if (m.index == kSysenterCs) {
            found = true;
            EXPECT_EQ(m.data, 0x1234u);
        }
    EXPECT_TRUE(found) << "IA32_SYSENTER_CS was not saved";

    // The loop goes on from the third write to its end.
    bool done = false;
    EXPECT_EQ(run_outs(b.vcpu, 10, &done), (std::vector<std::uint8_t>{2, 3, 4}));
    EXPECT_TRUE(done);
    ::alarm(0);
}

}  // namespace
}  // namespace stockade
