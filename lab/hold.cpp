// stockade-lab-hold: keeps the lab kernel's KVM and networking static keys switched on
// for the whole life of a lab, so that no kernel code is patched while tests run.
//
// Why: every VM a test creates and destroys flips static keys in the lab kernel
// (preempt notifiers, the local APIC's "software disabled" key), and the kernel patches
// its code live for each flip (int3, then IPIs to the other CPU). QEMU 7.2's TCG loses
// such a cross-CPU code change now and then: a lab CPU keeps executing the old int3,
// the kernel sees no int3 there and retries, forever, with interrupts off (both lab CPUs
// loop in asm_exc_int3 / kprobe_int3_handler; docs/lab-notes.md). A key that is already on
// is only counted, never patched, so this process holds one of each for the lab's life:
// a VM with an in-kernel irqchip and one vCPU that never runs (its APIC stays software
// disabled), a VM whose vCPU has no in-kernel APIC, and a socket with receive timestamps
// on (netstamp_needed_key). lab/run also boots the lab with cgroup.memory=nosocket, so
// that creating and removing memory cgroups flips no key either.
//
// It prints "ready" on stdout once everything is held, then sleeps until killed.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "base/uapi.hpp"

namespace {

int fail(const char* what) {
    std::fprintf(stderr, "stockade-lab-hold: %s: %s\n", what, std::strerror(errno));
    return 1;
}

}  // namespace

int main() {
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) return fail("open /dev/kvm");
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) return fail("KVM_CREATE_VM");
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0) return fail("KVM_CREATE_IRQCHIP");
    if (ioctl(vm, KVM_CREATE_VCPU, 0) < 0) return fail("KVM_CREATE_VCPU");
    // A vCPU without an in-kernel APIC holds kvm_has_noapic_vcpu (the KVM smoke test's VMs).
    int bare_vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (bare_vm < 0) return fail("KVM_CREATE_VM (no irqchip)");
    if (ioctl(bare_vm, KVM_CREATE_VCPU, 0) < 0) return fail("KVM_CREATE_VCPU (no irqchip)");
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) return fail("socket");
    int on = 1;
    if (setsockopt(sock, SOL_SOCKET, SO_TIMESTAMP, &on, sizeof on) < 0) return fail("SO_TIMESTAMP");
    std::puts("ready");
    std::fflush(stdout);
    for (;;)
        pause();
}
