#pragma once
// The runner's seccomp allowlists, one per thread kind (startup step 8). Each is data: the
// call sites below read as the policy, and `stockade policy show` prints them.
//
//   vcpu        KVM_RUN and the exits it handles: port/MMIO device emulation, which may
//               raise interrupts (KVM_IRQ_LINE), reroute MSI-X (KVM_SET_GSI_ROUTING,
//               KVM_IRQFD), follow a moved BAR (KVM_IOEVENTFD), and start or reset a
//               device (vhost ioctls, tap offloads, event-loop registration).
//   event-loop  epoll, the console and the workload's streams, virtio-blk I/O, virtio-rng,
//               userspace queues, signals, and stopping the vCPUs (tgkill).
//   stdio-relay the workload's stdio over vsock: poll, accept on the listening socket the
//               supervisor made, read and write, shutdown (runner/vmm/stdio_relay.hpp).
// Neither may open a path, create a process, exec, or map executable memory.
#include <vector>

#include "policy/policy.hpp"
#include "policy/seccomp.hpp"

namespace stockade {

[[nodiscard]] policy::SeccompProfile vcpu_seccomp_profile(policy::SeccompMode mode);
[[nodiscard]] policy::SeccompProfile event_loop_seccomp_profile(policy::SeccompMode mode);
[[nodiscard]] policy::SeccompProfile stdio_relay_seccomp_profile(policy::SeccompMode mode);
[[nodiscard]] std::vector<policy::SeccompProfile> runner_seccomp_profiles(const policy::Policy& p);

}  // namespace stockade
