#pragma once
// The runner's seccomp allowlists, one per thread kind (startup step 8). Each is data: the
// call sites below read as the policy, and `stockade policy show` prints them.
//
//   vcpu        KVM_RUN and the exits it handles: port/MMIO device emulation, which may
//               raise interrupts (KVM_IRQ_LINE), reroute MSI-X (KVM_SET_GSI_ROUTING,
//               KVM_IRQFD), follow a moved BAR (KVM_IOEVENTFD, event-loop registration),
//               and start or reset a device (what its kind adds).
//   event-loop  epoll, the console and the workload's streams, signals, stopping the vCPUs
//               (tgkill), and what each device kind adds for the queues it serves there;
//               with a terminal (SandboxSpec::terminal), reading stdin's window size.
//   stdio-relay the workload's stdio over vsock: poll, accept on the listening socket the
//               supervisor made, read and write, shutdown (runner/stdio/stdio_relay.hpp).
//   api         the control API (runner/api/api_server.hpp): poll, accept on the listening
//               socket the supervisor bound, read and write; pausing and resuming the vCPUs
//               (tgkill to this process's threads) and the guest's clock (KVM_GET_CLOCK,
//               KVM_SET_CLOCK).
//   host-output the UART's bytes for the host's stdout or stderr (runner/stdio/host_output.hpp):
//               blocking writes, and poll for a descriptor someone made non-blocking.
//   lazy-memory after a lazy sealed restore, the watch on its memory loader
//               (runner/vmm/lazy_memory.hpp): poll and read on its socket, closing the
//               userfaultfd, and ending the process (exit_group) when the loader fails.
//   device-io   a device's own serving thread (runner/vmm/device_thread.hpp; a disk's): its
//               epoll loop and eventfds, and what the device's kind adds for its backend.
// None may open a path, create a process, exec, or map executable memory. A sandbox's
// vcpu, event-loop and device-io filters carry the additions of the device kinds it has, no others
// (runner/registry/device_registry.hpp).
#include <vector>

#include "policy/policy.hpp"
#include "policy/seccomp.hpp"
#include "runner/registry/device_registry.hpp"

namespace stockade {

struct SandboxSeccompProfiles {
    policy::SeccompProfile vcpu;
    policy::SeccompProfile event_loop;
    policy::SeccompProfile stdio_relay;
    policy::SeccompProfile api;
    policy::SeccompProfile host_output;
    policy::SeccompProfile device_io;
    policy::SeccompProfile lazy_memory;
};

// The profiles of a sandbox with the devices `present` (engaged entries) hands over.
// `terminal`: the sandbox's stdin is its terminal.
[[nodiscard]] SandboxSeccompProfiles sandbox_seccomp_profiles(policy::SeccompMode mode,
                                                              const DeviceKinds::Handed& present,
                                                              bool terminal = false);
// Every thread's profile with every device kind's additions: the most a sandbox may get.
[[nodiscard]] std::vector<policy::SeccompProfile> runner_seccomp_profiles(const policy::Policy& p);
[[nodiscard]] policy::SeccompProfile stdio_relay_seccomp_profile(policy::SeccompMode mode);
[[nodiscard]] policy::SeccompProfile api_seccomp_profile(policy::SeccompMode mode);
[[nodiscard]] policy::SeccompProfile host_output_seccomp_profile(policy::SeccompMode mode);
[[nodiscard]] policy::SeccompProfile device_io_seccomp_profile(policy::SeccompMode mode);
[[nodiscard]] policy::SeccompProfile lazy_memory_seccomp_profile(policy::SeccompMode mode);

}  // namespace stockade
