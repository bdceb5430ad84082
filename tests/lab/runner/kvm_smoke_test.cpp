// The first test against real KVM: a real-mode payload that writes 0..4 to a port in a
// loop and halts. Asserts the exact exit sequence the vCPU thread sees.
#include <gtest/gtest.h>

#include "base/mapping.hpp"
#include "runner/kvm/kvm.hpp"
#include "runner/kvm/vcpu.hpp"
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

}  // namespace
}  // namespace stockade
