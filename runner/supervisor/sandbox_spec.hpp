#pragma once
// What `stockade run` was asked to do, validated before anything is created.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/guest_memory.hpp"
#include "guest/job.hpp"
#include "runner/registry/device_registry.hpp"

namespace stockade {

inline constexpr std::uint64_t kMinMemoryMiB = 64;
inline constexpr std::uint32_t kMaxVcpus = 254;  // APIC ids 0..253, the IOAPIC takes one more

struct SandboxSpec {
    std::string kernel;
    std::string initrd;
    std::string extra_cmdline;
    std::uint32_t vcpus = 1;
    std::uint64_t memory_mib = 256;
    HugePages huge_pages = HugePages::transparent;
    std::vector<std::string> argv;  // the workload
    std::vector<std::string> env;   // NAME=value
    std::string workdir = "/";
    std::string hostname = "sandbox";
    DeviceKinds::Specs devices;  // each device kind's part (runner/registry/)
    bool show_console = false;   // kernel console to stderr
    bool print_stats = false;    // exit counts and timings to stderr at the end
    std::string metrics_path;    // JSON lines of metrics (FlushMetrics, and at the end)
    std::string policy_file;     // empty: the default policy
    std::string id;              // empty: a fresh one
    // `run -d` / `create`: the supervisor lives on in the background; the workload's stdout
    // and stderr go to the sandbox's logs (/run/stockade/ID/stdout.log, stderr.log)
    bool detach = false;
    // `create`: boot and connect, then wait for `stockade start ID` before running argv
    bool wait_for_start = false;
    // The workload's process as an OCI bundle configures it (user, limits, capabilities,
    // mounts; guest/job.hpp); nullopt: root with the guest's defaults
    std::optional<JobProcess> process;
    // An OCI runtime's create (runner/cli/oci_runtime.hpp): the workload's stdin, stdout and
    // stderr are the caller's (the engine's pipes), not /dev/null and the logs; nothing is
    // printed on stdout
    bool inherit_stdio = false;
    // The workload runs on a terminal in the guest (guest/abi.hpp, kJobTerminal); the
    // caller's stdin is a terminal too, whose window size the guest's follows
    bool terminal = false;
    // With `terminal` and inherit_stdio: the caller's terminal (the slave of the pseudo-terminal
    // an OCI create made), the sandbox's stdin, stdout and stderr instead of the caller's own
    // three, which stay the caller's (its errors go to the engine). Not owned.
    int terminal_fd = -1;
    std::string oci_bundle;  // its bundle directory, for the state file
    // The arguments `run` or `create` was given, as given: a snapshot keeps them and its
    // restore parses them again (the state file records them).
    std::vector<std::string> run_args;
    std::string run_cwd;  // the working directory they were given in
    // `stockade snapshot restore`: the snapshot directory the sandbox resumes from instead of
    // booting (its state, memory and disk copies; runner/supervisor/snapshot_files.hpp).
    std::string restore_from;
    bool verify_memory = true;  // the memory part's digest checked before the restore
    std::string seal_key;       // a sealed snapshot's key file (runner/supervisor/seal_helper.hpp)
    std::string restore_snapshot_id;  // the snapshot's id, as its manifest says
    // A Kubernetes pod's network namespace (an OCI create of CRI's pause container): the
    // supervisor's main thread joins it before anything else, so that the pod's containers
    // join it through /proc/PID/ns/net of the supervisor (the container's pid); the guest
    // gets nothing of it.
    std::string hold_netns;

    template <DeviceKind K>
    [[nodiscard]] typename K::Spec& device() {
        return part_of<K>(devices);
    }
    template <DeviceKind K>
    [[nodiscard]] const typename K::Spec& device() const {
        return part_of<K>(devices);
    }
};

struct HostLimits {
    std::uint64_t ram_bytes = 0;          // physical memory of the host
    std::uint32_t max_vcpus = kMaxVcpus;  // KVM_CAP_MAX_VCPUS, capped
};

// Checks every field on its own (no I/O), the devices' included: the first problem is
// returned, naming the field.
[[nodiscard]] Result<> validate(const SandboxSpec& spec, const HostLimits& host);
// --vcpus against the smaller of `host_max` (KVM_CAP_MAX_VCPUS) and kMaxVcpus.
[[nodiscard]] Result<> check_vcpus(std::uint32_t vcpus, std::uint32_t host_max);
// The host's physical memory (sysinfo), for HostLimits.
[[nodiscard]] std::uint64_t host_ram_bytes();

}  // namespace stockade
