// Figures for the closing note, and a guard against a bloated baseline: a vCPU-thread profile
// built on baseline() beside a transcription of Firecracker's x86_64 vCPU filter
// (resources/seccomp/x86_64-unknown-linux-musl.json), both compiled by libseccomp here so
// that instruction counts compare like with like.
#include <gtest/gtest.h>
#include <sys/syscall.h>

#include <cstdio>

#include "base/uapi.hpp"
#include "policy/seccomp.hpp"

namespace stockade::policy {
namespace {

#define KVM_IOCTLS                                                                 \
    {                                                                              \
        STOCKADE_IOCTL(KVM_RUN), STOCKADE_IOCTL(KVM_GET_MP_STATE),                 \
            STOCKADE_IOCTL(KVM_SET_MP_STATE), STOCKADE_IOCTL(KVM_GET_VCPU_EVENTS), \
            STOCKADE_IOCTL(KVM_SET_VCPU_EVENTS), STOCKADE_IOCTL(KVM_GET_LAPIC),    \
            STOCKADE_IOCTL(KVM_GET_SREGS), STOCKADE_IOCTL(KVM_SET_CPUID2),         \
            STOCKADE_IOCTL(KVM_SET_LAPIC), STOCKADE_IOCTL(KVM_SET_MSRS),           \
            STOCKADE_IOCTL(KVM_SET_REGS), STOCKADE_IOCTL(KVM_SET_SREGS),           \
            STOCKADE_IOCTL(KVM_GET_PIT2), STOCKADE_IOCTL(KVM_GET_REGS),            \
            STOCKADE_IOCTL(KVM_GET_MSRS), STOCKADE_IOCTL(KVM_GET_CPUID2),          \
            STOCKADE_IOCTL(KVM_GET_DEBUGREGS), STOCKADE_IOCTL(KVM_SET_DEBUGREGS),  \
            STOCKADE_IOCTL(KVM_GET_XSAVE), STOCKADE_IOCTL(KVM_SET_XSAVE),          \
            STOCKADE_IOCTL(KVM_GET_XCRS), STOCKADE_IOCTL(KVM_SET_XCRS),            \
            STOCKADE_IOCTL(KVM_SET_TSC_KHZ), STOCKADE_IOCTL(KVM_GET_TSC_KHZ)       \
    }

SeccompProfile stockade_vcpu_example() {
    return SeccompProfile("vcpu-example").baseline().allow_ioctl(KVM_IOCTLS);
}

SeccompProfile firecracker_vcpu() {
    auto dword = [](unsigned arg, std::uint64_t v) { return arg_masked_eq(arg, 0xffffffffu, v); };
    SeccompProfile p("firecracker-vcpu");
    p.allow({SYS_exit, SYS_exit_group, SYS_write, SYS_open, SYS_close, SYS_fstat, SYS_brk,
             SYS_clock_gettime, SYS_mremap, SYS_munmap, SYS_rt_sigprocmask, SYS_rt_sigreturn,
             SYS_sigaltstack, SYS_sched_yield});
    for (std::uint64_t op : {0, 1, 128, 137, 129})
        p.allow_if(SYS_futex, {dword(1, op)});
    p.allow_if(SYS_madvise, {dword(2, 4)});
    p.allow_if(SYS_mmap, {dword(3, 1)});
    p.allow_if(SYS_rt_sigaction, {dword(0, 6)});
    p.allow_if(SYS_timerfd_settime, {dword(1, 0)});
    p.allow_if(SYS_tkill, {dword(1, 6)});
    p.allow_ioctl(KVM_IOCTLS);
    return p;
}
#undef KVM_IOCTLS

TEST(policy_seccomp_figures, VcpuProfileBesideFirecrackers) {
    auto ours = stockade_vcpu_example();
    auto theirs = firecracker_vcpu();
    auto n_ours = ours.bpf_instruction_count();
    auto n_theirs = theirs.bpf_instruction_count();
    ASSERT_TRUE(n_ours) << n_ours.error().message;
    ASSERT_TRUE(n_theirs) << n_theirs.error().message;
    auto base = SeccompProfile("baseline").baseline();
    std::printf(
        "FIGURE seccomp: baseline %zu syscalls, %zu BPF instructions; vCPU example (baseline + "
        "24 KVM ioctls) %zu syscalls, %zu instructions; Firecracker's vCPU filter through the "
        "same libseccomp %zu syscalls, %zu instructions\n",
        base.allowed_syscalls().size(), *base.bpf_instruction_count(),
        ours.allowed_syscalls().size(), *n_ours, theirs.allowed_syscalls().size(), *n_theirs);
    EXPECT_LT(ours.allowed_syscalls().size(), theirs.allowed_syscalls().size());
    EXPECT_LE(*n_ours, *n_theirs);
    EXPECT_EQ(ours.allowed_ioctls().size(), 24u);
}

}  // namespace
}  // namespace stockade::policy
