#pragma once
// What a device kind is. One kind (runner/registry/<kind>.hpp) holds everything stockade
// knows about one sort of device, and runner/registry/device_registry.hpp lists them:
//
//   Options, add_options, apply   its `stockade run` options and how they fill its Spec
//   Spec, validate                what the user asked for, checked without I/O
//   open                          supervisor, phase 1: the files and device nodes it needs
//                                 (nothing the host sees yet), its part of the guest's job
//   claim                         supervisor, phase 2, after every check passed: host
//                                 resources (a guest CID, a tap); returns what the supervisor
//                                 keeps (Host) and completes what the sandbox gets (Handed)
//   fds                           the descriptors Handed carries into the sandbox process:
//                                 the only inherited ones it keeps
//   device_count, build           sandbox process: the devices made from Handed (virtio
//                                 devices, or PCI functions passed through from the host)
//   kVirtioId                     which guest driver it needs (guest/abi.hpp's table);
//                                 kNotVirtio for a passed-through device, whose own driver
//                                 the guest loads
//   add_seccomp_rules             what the threads that serve it may call beyond the baseline
//
// Counters reach `--stats` through VirtioDevice::stats() (BuiltDevice::stats_label names
// the line). State save and restore for snapshots will be two more members here (each
// kind's Handed is already plain data; each device's state will be a plain struct).
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "guest/job.hpp"
#include "policy/artefacts.hpp"
#include "policy/policy.hpp"
#include "policy/seccomp.hpp"
#include "runner/pci/passthrough.hpp"
#include "runner/virtio/virtio.hpp"

namespace CLI {
class App;
}

namespace stockade {

// Virtio device id 0 is reserved (virtio 1.x, 5): a kind that is not virtio says so with it.
inline constexpr std::uint32_t kNotVirtio = 0;

// Supervisor, phase 1: opening files and device nodes, and telling stockade-init about them.
struct OpenContext {
    std::string_view sandbox_id;
    const policy::Policy& policy;
    policy::SandboxArtefacts& artefacts;  // descriptors the policy may pin digests of
    Job& job;
};

// Supervisor, phase 2: claiming host resources once nothing can be refused any more.
struct ClaimContext {
    std::string_view sandbox_id;
    Job& job;                // values known only now (a port); the archive's size must not change
    bool restoring = false;  // the sandbox resumes a snapshot's guest instead of booting
};

// Stdio over vsock: the listening socket the vsock kind hands to the stdio relay thread.
struct VsockStdio {
    UniqueFd listener;
    std::uint32_t cid = 0;
};

// Sandbox process: what building devices may leave for the rest of the process.
struct BuildContext {
    std::optional<VsockStdio> stdio;
};

// A device made in the sandbox process: a virtio device (and the name of its `--stats`
// line) or a PCI function passed through from the host.
struct BuiltDevice {
    std::unique_ptr<virtio::VirtioDevice> device;
    std::string stats_label;  // empty: no line
    std::unique_ptr<pci::PassthroughSource> passthrough = nullptr;
};

// The seccomp profiles of the threads that serve devices: a vCPU thread activates and
// resets them (the driver's status writes), the event loop serves userspace queues, a
// device's own thread (VirtioDevice::wants_own_thread) serves its queues instead.
struct DeviceThreadProfiles {
    policy::SeccompProfile& vcpu;
    policy::SeccompProfile& event_loop;
    policy::SeccompProfile& device_io;
};

// Nothing kept by the supervisor.
struct NoHostState {};

template <class K>
concept DeviceKind =
    requires(CLI::App& app, typename K::Options& options, const typename K::Spec& spec,
             typename K::Spec& mutable_spec, OpenContext& open, ClaimContext& claim,
             typename K::Handed& handed, const typename K::Handed& const_handed,
             BuildContext& build, DeviceThreadProfiles profiles) {
        { K::kName } -> std::convertible_to<std::string_view>;
        { K::kVirtioId } -> std::convertible_to<std::uint32_t>;
        K::add_options(app, options);
        { K::apply(options, mutable_spec) } -> std::same_as<Result<>>;
        { K::validate(spec) } -> std::same_as<Result<>>;
        { K::open(spec, open) } -> std::same_as<Result<std::optional<typename K::Handed>>>;
        { K::claim(handed, spec, claim) } -> std::same_as<Result<typename K::Host>>;
        { K::fds(const_handed) } -> std::same_as<std::vector<int>>;
        { K::device_count(const_handed) } -> std::same_as<std::size_t>;
        { K::build(std::move(handed), build) } -> std::same_as<Result<std::vector<BuiltDevice>>>;
        K::add_seccomp_rules(profiles);
    };

}  // namespace stockade
