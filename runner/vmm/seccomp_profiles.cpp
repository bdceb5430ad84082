#include "runner/vmm/seccomp_profiles.hpp"

#include <linux/if_tun.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/uapi.hpp"

namespace stockade {
namespace {

using policy::SeccompProfile;

// What emulating a device on a vCPU thread may need from KVM and vhost.
SeccompProfile& device_control(SeccompProfile& p) {
    return p.allow_ioctl(
        {STOCKADE_IOCTL(KVM_IRQ_LINE), STOCKADE_IOCTL(KVM_SET_GSI_ROUTING),
         STOCKADE_IOCTL(KVM_IRQFD), STOCKADE_IOCTL(KVM_IOEVENTFD), STOCKADE_IOCTL(KVM_SIGNAL_MSI),
         // vhost-net / vhost-vsock start and reset (device activation)
         STOCKADE_IOCTL(VHOST_GET_FEATURES), STOCKADE_IOCTL(VHOST_SET_FEATURES),
         STOCKADE_IOCTL(VHOST_SET_MEM_TABLE), STOCKADE_IOCTL(VHOST_SET_VRING_NUM),
         STOCKADE_IOCTL(VHOST_SET_VRING_BASE), STOCKADE_IOCTL(VHOST_GET_VRING_BASE),
         STOCKADE_IOCTL(VHOST_SET_VRING_ADDR), STOCKADE_IOCTL(VHOST_SET_VRING_KICK),
         STOCKADE_IOCTL(VHOST_SET_VRING_CALL), STOCKADE_IOCTL(VHOST_NET_SET_BACKEND),
         // (the guest's CID is claimed by the supervisor, never by the sandbox)
         STOCKADE_IOCTL(VHOST_VSOCK_SET_RUNNING), STOCKADE_IOCTL(TUNSETOFFLOAD),
         STOCKADE_IOCTL(TUNSETVNETHDRSZ)});
}

}  // namespace

SeccompProfile vcpu_seccomp_profile(policy::SeccompMode mode) {
    SeccompProfile p("vcpu", mode);
    p.baseline()
        .allow_ioctl({STOCKADE_IOCTL(KVM_RUN)})
        // registering a started device's queues with the event loop
        .allow({SYS_epoll_ctl})
        .deny_execve();
    return device_control(p);
}

SeccompProfile event_loop_seccomp_profile(policy::SeccompMode mode) {
    SeccompProfile p("event-loop", mode);
    p.baseline()
        .allow({SYS_epoll_wait, SYS_epoll_pwait, SYS_epoll_ctl,
                // virtio-blk: zero-copy I/O on the image; flush reaches stable storage
                SYS_pread64, SYS_pwrite64, SYS_preadv, SYS_pwritev, SYS_fdatasync,
                // virtio-rng
                SYS_getrandom,
                // guest RAM statistics (--stats)
                SYS_mincore,
                // the serial console's streams
                SYS_readv, SYS_writev})
        // stopping the vCPU threads: glibc's pthread_kill asks getpid, then signals a
        // thread of this process only
        .allow({SYS_getpid})
        .allow_if(SYS_tgkill, {policy::arg_eq(0, static_cast<std::uint64_t>(::getpid()))})
        .deny_execve();
    return device_control(p);
}

SeccompProfile stdio_relay_seccomp_profile(policy::SeccompMode mode) {
    SeccompProfile p("stdio-relay", mode);
    // Accepting the guest's connections on the supervisor's listening socket, copying
    // between them and the host's stdio, ending host input; no socket of its own.
    p.baseline().allow({SYS_poll, SYS_ppoll, SYS_accept4, SYS_sendto, SYS_shutdown}).deny_execve();
    return p;
}

std::vector<SeccompProfile> runner_seccomp_profiles(const policy::Policy& p) {
    return {vcpu_seccomp_profile(p.seccomp_mode), event_loop_seccomp_profile(p.seccomp_mode),
            stdio_relay_seccomp_profile(p.seccomp_mode)};
}

}  // namespace stockade
