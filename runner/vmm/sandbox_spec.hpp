#pragma once
// What `stockade run` was asked to do, validated before anything is created.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "runner/memory/guest_memory.hpp"

namespace stockade {

inline constexpr std::uint64_t kMinMemoryMiB = 64;
inline constexpr std::uint32_t kMaxVcpus = 254;  // APIC ids 0..253, the IOAPIC takes one more

struct DiskSpec {
    std::string path;
    bool read_only = false;
};

// --net: the sandbox's network interface. Everything but the runner's own keys is a netsetup
// spec (netsetup/README.md); `vhost=on|off` picks the datapath (default: vhost-net when the
// host has /dev/vhost-net), `addr=A.B.C.D/N` is the IPv4 address stockade-init gives the
// guest's interface (none: the workload configures it).
enum class VhostMode { automatic, on, off };
struct NetDeviceSpec {
    std::string netsetup;  // the spec handed to netsetup, runner keys removed
    VhostMode vhost = VhostMode::automatic;
    std::string address;  // "A.B.C.D/N", or empty
    bool operator==(const NetDeviceSpec&) const = default;
};

// Splits and checks the text of --net (no I/O; netsetup's part is validated with a
// placeholder id, the real one is the sandbox's).
[[nodiscard]] Result<NetDeviceSpec> parse_net_device_spec(std::string_view text);

// How the workload's stdio and status travel (guest/abi.hpp): virtio-vsock on the host's
// vhost-vsock, or the serial console. automatic: vsock when /dev/vhost-vsock opens.
enum class StdioMode { automatic, vsock, serial };

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
    std::vector<DiskSpec> disks;       // virtio-blk: /dev/vda, /dev/vdb, ... in order
    bool rootfs = false;               // the first disk is the workload's root file system
    bool rng = false;                  // a virtio-rng device
    std::optional<NetDeviceSpec> net;  // a virtio-net interface on a tap
    StdioMode stdio = StdioMode::automatic;
    bool show_console = false;  // kernel console to stderr
    bool print_stats = false;   // exit counts and timings to stderr at the end
    std::string policy_file;    // empty: the default policy
    std::string id;             // empty: a fresh one
};

struct HostLimits {
    std::uint64_t ram_bytes = 0;          // physical memory of the host
    std::uint32_t max_vcpus = kMaxVcpus;  // KVM_CAP_MAX_VCPUS, capped
};

// Checks every field on its own (no I/O): the first problem is returned, naming the field.
[[nodiscard]] Result<> validate(const SandboxSpec& spec, const HostLimits& host);
// The host's physical memory (sysinfo), for HostLimits.
[[nodiscard]] std::uint64_t host_ram_bytes();

}  // namespace stockade
