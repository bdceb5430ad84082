#pragma once
// The sandbox policy: what the jailed VMM runs as, which namespaces it gets, its root, its
// cgroup and rlimits, its SELinux domain, the artefact digests it must match and its seccomp
// mode. Parsed from a versioned JSON file (schema: policy/README.md) into a validated value
// that the runner holds as `const Policy` from then on; every field has a secure default
// (default_policy()), so a file only states what it changes.
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/error.hpp"
#include "base/sandbox_id.hpp"
#include "policy/digest.hpp"

namespace stockade::policy {

inline constexpr int kPolicyVersion = 1;

// A limit value meaning "no limit" ("max" in cgroup files, RLIM_INFINITY for rlimits).
inline constexpr std::uint64_t kUnlimited = std::numeric_limits<std::uint64_t>::max();

enum class Namespace : std::uint8_t { mount, pid, ipc, uts, cgroup, net, user };
inline constexpr std::array kAllNamespaces = {Namespace::mount, Namespace::pid,    Namespace::ipc,
                                              Namespace::uts,   Namespace::cgroup, Namespace::net,
                                              Namespace::user};
[[nodiscard]] std::string_view namespace_name(Namespace ns);
[[nodiscard]] std::optional<Namespace> namespace_from_name(std::string_view name);
[[nodiscard]] int namespace_clone_flag(Namespace ns);  // CLONE_NEWNS, CLONE_NEWPID, ...

class NamespaceSet {
  public:
    constexpr NamespaceSet() = default;
    constexpr NamespaceSet(std::initializer_list<Namespace> list) {
        for (Namespace ns : list)
            add(ns);
    }
    [[nodiscard]] constexpr bool has(Namespace ns) const {
        return (bits_ >> static_cast<unsigned>(ns)) & 1u;
    }
    constexpr void add(Namespace ns) {
        bits_ |= static_cast<std::uint8_t>(1u << static_cast<unsigned>(ns));
    }
    constexpr void remove(Namespace ns) {
        bits_ &= static_cast<std::uint8_t>(~(1u << static_cast<unsigned>(ns)));
    }
    [[nodiscard]] constexpr bool empty() const { return bits_ == 0; }
    // The CLONE_NEW* flags of every member.
    [[nodiscard]] int clone_flags() const;
    // Names in the order of kAllNamespaces.
    [[nodiscard]] std::vector<std::string> names() const;
    bool operator==(const NamespaceSet&) const = default;

  private:
    std::uint8_t bits_ = 0;
};

struct BindMount {
    std::string source;     // absolute path on the host
    std::string target;     // absolute path inside the jail root
    bool writable = false;  // read-only unless the policy says otherwise
    bool operator==(const BindMount&) const = default;
};

struct JailPolicy {
    // The per-sandbox root is <root_parent>/<sandbox id>, an empty directory made at start and
    // removed at teardown; inside the jail it carries a read-only tmpfs with the bind mounts.
    std::string root_parent;
    bool mount_proc = false;  // a fresh /proc of the sandbox's own PID namespace
    std::vector<BindMount> binds;
    bool operator==(const JailPolicy&) const = default;
};

struct CpuMax {
    std::uint64_t quota_us = kUnlimited;  // kUnlimited: "max"
    std::uint64_t period_us = 100000;
    bool operator==(const CpuMax&) const = default;
};

struct IoMax {
    std::uint32_t major = 0;
    std::uint32_t minor = 0;
    // Unset: not written. kUnlimited: "max".
    std::optional<std::uint64_t> rbps, wbps, riops, wiops;
    bool operator==(const IoMax&) const = default;
};

struct CgroupPolicy {
    std::string parent;  // the sandbox's leaf is <parent>/<sandbox id>
    // Unset: the file is left at the kernel's default. kUnlimited: "max".
    std::optional<std::uint64_t> memory_max;
    std::optional<std::uint64_t> memory_swap_max;
    std::optional<std::uint64_t> pids_max;
    std::optional<CpuMax> cpu_max;
    std::vector<IoMax> io_max;
    bool operator==(const CgroupPolicy&) const = default;
};

enum class Rlimit : std::uint8_t { nofile, nproc, fsize, core, memlock };
inline constexpr std::array kAllRlimits = {Rlimit::nofile, Rlimit::nproc, Rlimit::fsize,
                                           Rlimit::core, Rlimit::memlock};
[[nodiscard]] std::string_view rlimit_name(Rlimit r);  // "nofile"
[[nodiscard]] int rlimit_resource(Rlimit r);           // RLIMIT_NOFILE
[[nodiscard]] bool rlimit_is_bytes(Rlimit r);          // fsize, core, memlock

enum class SelinuxMode : std::uint8_t { required, if_enabled, off };
[[nodiscard]] std::string_view selinux_mode_name(SelinuxMode m);
[[nodiscard]] std::optional<SelinuxMode> selinux_mode_from_name(std::string_view name);

// An MCS category pair cLOW,cHIGH with LOW < HIGH < 1024 (sVirt style).
struct McsPair {
    std::uint16_t low = 0;
    std::uint16_t high = 1;
    auto operator<=>(const McsPair&) const = default;
};
inline constexpr std::uint16_t kMcsCategories = 1024;

struct SelinuxPolicy {
    SelinuxMode mode = SelinuxMode::if_enabled;
    std::string user = "system_u";
    std::string role = "system_r";
    std::string type = "stockade_t";
    std::string sensitivity = "s0";
    std::optional<McsPair> categories;  // unset: "auto" (see selinux_context.hpp)
    bool operator==(const SelinuxPolicy&) const = default;
};

struct DigestPolicy {
    std::optional<Sha256> kernel;
    std::optional<Sha256> initrd;
    std::map<std::string, Sha256> disks;  // by the disk's name in the sandbox spec
    bool operator==(const DigestPolicy&) const = default;
};

enum class SeccompMode : std::uint8_t { kill, log };
[[nodiscard]] std::string_view seccomp_mode_name(SeccompMode m);
[[nodiscard]] std::optional<SeccompMode> seccomp_mode_from_name(std::string_view name);

struct Policy {
    std::uint32_t uid = 0;
    std::uint32_t gid = 0;
    NamespaceSet namespaces;
    JailPolicy jail;
    CgroupPolicy cgroup;
    std::map<Rlimit, std::uint64_t> rlimits;  // kUnlimited: RLIM_INFINITY; soft = hard
    SelinuxPolicy selinux;
    DigestPolicy digests;
    SeccompMode seccomp_mode = SeccompMode::kill;
    // Host PCI devices a sandbox may take with VFIO ("0000:01:00.0", canonical, sorted);
    // empty: none.
    std::vector<std::string> vfio_devices;
    // The group whose members may use a sandbox's control API: its socket is then mode 0660
    // and its directory 0710, both of that group; nullopt: root only (0600, 0700).
    std::optional<std::uint32_t> api_socket_gid;
    bool operator==(const Policy&) const = default;
};

// What applies when no policy file is given, and what a file's missing fields take.
[[nodiscard]] Policy default_policy();

// Parses and validates a policy document. Errors name the JSON path:
// `policy: /cgroup/memory_max: expected a string like "512M", got 12.5`.
[[nodiscard]] Result<Policy> parse_policy(std::string_view json_text);
// Reads and parses a file; errors carry the file name.
[[nodiscard]] Result<Policy> load_policy_file(const std::string& path);

// The complete effective policy as a policy document (parse_policy(to_json(p)) == p).
[[nodiscard]] nlohmann::json to_json(const Policy& policy);

// A guest whose memory does not fit under memory.max would be OOM-killed mid-run; refuse
// before anything starts. `overhead` is what the VMM itself needs beside guest memory.
[[nodiscard]] Result<> check_guest_memory_fits(const Policy& policy, std::uint64_t guest_bytes,
                                               std::uint64_t overhead_bytes);

// A sandbox id names the cgroup leaf, the jail root and the MCS reservation; the rule is
// base/sandbox_id.hpp's, shared with netsetup.
using stockade::check_sandbox_id;

// "512M" style sizes (binary units K, M, G, T; plain digits are bytes) and back.
[[nodiscard]] std::optional<std::uint64_t> parse_size(std::string_view text);
[[nodiscard]] std::string format_size(std::uint64_t bytes);

}  // namespace stockade::policy
