#include "runner/vmm/seccomp_profiles.hpp"

#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/uapi.hpp"

namespace stockade {
namespace {

using policy::SeccompProfile;

// What emulating the PCI bus and its MSI-X tables on a vCPU thread needs from KVM, and what
// a device's (re)activation needs on whichever thread does it.
SeccompProfile& interrupt_routing(SeccompProfile& p) {
    return p.allow_ioctl({STOCKADE_IOCTL(KVM_IRQ_LINE), STOCKADE_IOCTL(KVM_SET_GSI_ROUTING),
                          STOCKADE_IOCTL(KVM_IRQFD), STOCKADE_IOCTL(KVM_IOEVENTFD)});
}

SeccompProfile vcpu_profile(policy::SeccompMode mode) {
    SeccompProfile p("vcpu", mode);
    p.baseline()
        .allow_ioctl({STOCKADE_IOCTL(KVM_RUN)})
        // a snapshot: each parked vCPU reads its own state, vCPU 0 the VM's too
        // (Machine::capture_state); reading only
        .allow_ioctl({STOCKADE_IOCTL(KVM_GET_REGS), STOCKADE_IOCTL(KVM_GET_SREGS),
                      STOCKADE_IOCTL(KVM_GET_XSAVE), STOCKADE_IOCTL(KVM_GET_XCRS),
                      STOCKADE_IOCTL(KVM_GET_DEBUGREGS), STOCKADE_IOCTL(KVM_GET_LAPIC),
                      STOCKADE_IOCTL(KVM_GET_MSRS), STOCKADE_IOCTL(KVM_GET_VCPU_EVENTS),
                      STOCKADE_IOCTL(KVM_GET_MP_STATE), STOCKADE_IOCTL(KVM_GET_TSC_KHZ),
                      STOCKADE_IOCTL(KVM_GET_IRQCHIP), STOCKADE_IOCTL(KVM_GET_PIT2),
                      STOCKADE_IOCTL(KVM_GET_CLOCK)})
        // registering a started device's queues with the event loop
        .allow({SYS_epoll_ctl})
        .deny_execve();
    return interrupt_routing(p);
}

SeccompProfile event_loop_profile(policy::SeccompMode mode, bool terminal) {
    SeccompProfile p("event-loop", mode);
    // a terminal's window size (SandboxSpec::terminal): reading it from stdin, nothing else
    if (terminal)
        p.allow_if(SYS_ioctl, {policy::arg_masked_eq(0, 0xffffffffu, STDIN_FILENO),
                               policy::arg_masked_eq(1, 0xffffffffu, TIOCGWINSZ)});
    p.baseline()
        .allow({SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_ctl,
                // guest RAM statistics (--stats)
                SYS_mincore})
        // stopping the vCPU threads: glibc's pthread_kill asks getpid, then signals a
        // thread of this process only
        .allow({SYS_getpid})
        .allow_if(SYS_tgkill, {policy::arg_eq(0, static_cast<std::uint64_t>(::getpid()))})
        .deny_execve();
    return interrupt_routing(p);
}

}  // namespace

SeccompProfile device_io_seccomp_profile(policy::SeccompMode mode) {
    SeccompProfile p("device-io", mode);
    // Its own epoll loop (the device's kicks, holding them while paused); interrupting the
    // guest is a write to an eventfd. What it does with its backend its kind adds.
    p.baseline().allow({SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_ctl}).deny_execve();
    return p;
}

SeccompProfile stdio_relay_seccomp_profile(policy::SeccompMode mode) {
    SeccompProfile p("stdio-relay", mode);
    // Accepting the guest's connections on the supervisor's listening socket, copying
    // between them and the host's stdio, ending host input; no socket of its own.
    p.baseline().allow({SYS_poll, SYS_ppoll, SYS_accept4, SYS_sendto, SYS_shutdown}).deny_execve();
    return p;
}

SeccompProfile api_seccomp_profile(policy::SeccompMode mode) {
    SeccompProfile p("api", mode);
    p.baseline()
        .allow({SYS_poll, SYS_ppoll, SYS_accept4})
        // pausing: kicking the vCPU threads out of KVM_RUN (glibc's pthread_kill asks getpid,
        // then signals a thread of this process only), and holding the guest's clock
        .allow({SYS_getpid})
        .allow_if(SYS_tgkill, {policy::arg_eq(0, static_cast<std::uint64_t>(::getpid()))})
        .allow_ioctl({STOCKADE_IOCTL(KVM_GET_CLOCK), STOCKADE_IOCTL(KVM_SET_CLOCK)})
        // a snapshot (PUT /snapshot/create): the pipes it is written into come with the
        // request (recvmsg); a disk goes into its pipe from the image (sendfile, at offsets)
        .allow({SYS_recvmsg, SYS_sendfile})
        .deny_execve();
    return p;
}

SeccompProfile host_output_seccomp_profile(policy::SeccompMode mode) {
    SeccompProfile p("host-output", mode);
    // Writing the buffered bytes to stdout or stderr (the baseline's write), waiting on the
    // buffer (futex); poll only for a descriptor someone else made non-blocking.
    p.baseline().allow({SYS_poll, SYS_ppoll}).deny_execve();
    return p;
}

SeccompProfile lazy_memory_seccomp_profile(policy::SeccompMode mode) {
    SeccompProfile p("lazy-memory", mode);
    // Waiting on the loader's socket and the sandbox's stop (poll), reading the loader's
    // lines, closing the userfaultfd, a line to stderr and exit_group on a failure.
    p.baseline().allow({SYS_poll, SYS_ppoll}).deny_execve();
    return p;
}

SandboxSeccompProfiles sandbox_seccomp_profiles(policy::SeccompMode mode,
                                                const DeviceKinds::Handed& present, bool terminal) {
    SandboxSeccompProfiles out{vcpu_profile(mode),
                               event_loop_profile(mode, terminal),
                               stdio_relay_seccomp_profile(mode),
                               api_seccomp_profile(mode),
                               host_output_seccomp_profile(mode),
                               device_io_seccomp_profile(mode),
                               lazy_memory_seccomp_profile(mode)};
    DeviceKinds::each([&]<class K>(std::type_identity<K>) {
        if (part_of<K>(present)) K::add_seccomp_rules({out.vcpu, out.event_loop, out.device_io});
    });
    return out;
}

std::vector<SeccompProfile> runner_seccomp_profiles(const policy::Policy& p) {
    SandboxSeccompProfiles all = sandbox_seccomp_profiles(p.seccomp_mode, {}, true);
    DeviceKinds::each([&]<class K>(std::type_identity<K>) {
        K::add_seccomp_rules({all.vcpu, all.event_loop, all.device_io});
    });
    return {std::move(all.vcpu),       std::move(all.event_loop),  std::move(all.stdio_relay),
            std::move(all.api),        std::move(all.host_output), std::move(all.device_io),
            std::move(all.lazy_memory)};
}

}  // namespace stockade
