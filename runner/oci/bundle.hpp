#pragma once
// An OCI bundle's config.json (runtime spec 1.0 and later) as a stockade sandbox: what the
// container asks for, mapped onto the sandbox's options and the guest's process settings
// (guest/job.hpp). Pure: no I/O but what the caller read; unit-tested and fuzzed.
//
// What the VM gives by being a VM is accepted as honoured: the namespaces a container asks
// for (pid, ipc, uts, mount, network, cgroup: the guest is all of them), and device cgroup
// rules (the guest's devices are the VM's own; no host device is reachable). What stockade
// cannot honour is refused with the field's JSON path, never dropped: a terminal, user
// namespaces and id mappings, joining another namespace, hooks, bind mounts of directories,
// AppArmor/SELinux labels for the workload, extra device nodes, and resource settings other
// than the memory limit and the CPU quota. Bind mounts of files are copied in at create (a
// snapshot of /etc/hosts and the like, not a live view); sysctls are the guest's; seccomp is
// compiled here and loaded by the guest (runner/oci/seccomp.hpp). Unknown properties are
// ignored, as the spec asks.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "guest/job.hpp"

namespace stockade::oci {

// The annotations stockade reads (a bundle's own settings for the sandbox).
inline constexpr std::string_view kAnnotationKernel = "io.stockade.kernel";
inline constexpr std::string_view kAnnotationInitrd = "io.stockade.initrd";
inline constexpr std::string_view kAnnotationVcpus = "io.stockade.vcpus";
inline constexpr std::string_view kAnnotationMemory = "io.stockade.memory_mib";
inline constexpr std::string_view kAnnotationPolicy = "io.stockade.policy";
inline constexpr std::string_view kAnnotationRootfsSize = "io.stockade.rootfs_size_mib";

inline constexpr std::uint64_t kDefaultMemoryMiB = 256;

// The kernel, initramfs and policy annotations name files in this directory only: whoever
// writes config.json (a pod's annotations, through an engine) must not pick a weaker policy
// or have root load any host file into a guest. An administrator puts them there.
inline constexpr std::string_view kAnnotationFileDir = "/etc/stockade/oci";

// One process: config.json's `process`, or `runc exec --process FILE`'s.
struct Process {
    std::vector<std::string> args, env;
    std::string cwd = "/";
    bool terminal = false;
    // process.consoleSize: the terminal's size to start with (rows, columns)
    std::optional<std::pair<std::uint16_t, std::uint16_t>> console_size;
    JobProcess settings;  // user, limits, capabilities, no_new_privs (mounts: the container's)
    std::optional<int> oom_score_adj;
};

struct Container {
    std::string oci_version;
    Process process;
    std::string root;  // the root directory, absolute (the bundle's path joined)
    bool root_readonly = false;
    std::string hostname;  // empty: stockade's default
    std::optional<std::uint64_t> memory_mib;
    std::optional<std::uint32_t> vcpus;
    std::optional<std::uint64_t> rootfs_size_mib;
    std::string kernel, initrd, policy;  // from annotations; empty: the defaults
    // The network namespace the engine made with CNI (linux.namespaces' network `path`): the
    // guest's interface is joined to its veth and takes its address (--net netns=PATH)
    std::string network_namespace;
    // A Kubernetes pod's (CRI's pause container, annotation io.kubernetes.cri.container-type
    // "sandbox"): the pod's network namespace, which the container's supervisor holds
    // (SandboxSpec::hold_netns) for the pod's containers to join; its own guest has no network.
    std::string pod_network_namespace;
    // IPC and UTS namespaces joined by path (linux.namespaces[N].path), accepted only for a
    // pod's container (annotation "container") joining the pod's, as /proc/PID/ns/TYPE: the
    // container's VM has its own (README.md, "Kubernetes").
    struct Join {
        std::size_t index = 0;
        std::string type, path;
    };
    std::vector<Join> pod_joins;
    std::map<std::string, std::string> annotations;
    // Bind mounts of host files, copied in: the index of each one's kCopyMount in
    // process.settings.mounts and the host file whose content it gets (read_copied_files).
    std::vector<std::pair<std::size_t, std::string>> copy_sources;
};

// config.json's text, of the bundle at `bundle` (absolute). The error names the field, as
// runc's do, e.g. "linux.namespaces[5]: a user namespace is not supported".
[[nodiscard]] Result<Container> parse_config(std::string_view text, std::string_view bundle);
// Reads each bind-mounted host file (a regular file of at most 64 KiB, its last component
// not a symbolic link) into its copy mount, with its mode. A directory is refused: the guest
// cannot see host directories.
[[nodiscard]] Result<> read_copied_files(Container& c);
// `runc exec --process FILE`: a process object alone (its `cwd` defaults to "/").
[[nodiscard]] Result<Process> parse_process(std::string_view text);

// The capability's number ("CAP_NET_ADMIN" is 12); nullopt for a name Linux does not have.
[[nodiscard]] std::optional<unsigned> capability_number(std::string_view name);
// Every capability name stockade knows, in number order.
[[nodiscard]] std::vector<std::string> capability_names();
// "RLIMIT_NOFILE" is 7; nullopt for one Linux does not have.
[[nodiscard]] std::optional<unsigned> rlimit_number(std::string_view name);

// A mount's options as mount(2) takes them: MS_* flags, the rest as the file system's data
// ("nosuid,mode=755" is MS_NOSUID and "mode=755"). Bind options are the caller's to refuse.
struct MountOptions {
    std::uint64_t flags = 0;
    std::string data;
    bool bind = false;
};
[[nodiscard]] MountOptions mount_options(const std::vector<std::string>& options);

// The `stockade create` arguments that make this container's sandbox, its root file system
// being the ext4 image `rootfs_image`.
[[nodiscard]] std::vector<std::string> create_args(const Container& c, std::string_view id,
                                                   std::string_view rootfs_image);

}  // namespace stockade::oci
