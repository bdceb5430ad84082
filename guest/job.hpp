#pragma once
// The job archive (guest/abi.hpp): argv, environment, working directory, host name, root
// disk, network, vsock stdio and whether to wait for start, as a cpio appended to the
// initramfs. No size limit beyond guest memory, binary-safe. The format lives here alone:
// the runner writes a Job with build_job_archive, stockade-init reads it back with
// parse_job_files, and a unit test proves the one inverts the other. This header and
// job_files.cpp use the standard library only: stockade-init (static, no fmt) compiles them
// too.
#include <array>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "guest/abi.hpp"

namespace stockade {

struct JobRoot {
    std::string device;  // e.g. /dev/vda; empty: the workload runs in the initramfs
    bool read_only = false;
    bool operator==(const JobRoot&) const = default;
};

struct JobNet {
    std::string mac;      // "02:1a:2b:3c:4d:5e": which interface (lower case, as sysfs shows it)
    std::string address;  // "169.254.10.2/16"
    std::string gateway = {};  // "169.254.10.1": the default route's; empty: none
    bool operator==(const JobNet&) const = default;
};

// One resource limit (setrlimit): RLIMIT_* number, soft and hard (RLIM_INFINITY allowed).
struct JobRlimit {
    std::uint32_t resource = 0;
    std::uint64_t soft = 0, hard = 0;
    bool operator==(const JobRlimit&) const = default;
};

// One file system mounted inside the workload's root disk, in order: mount(2)'s arguments
// (MS_* flags, the file system's own options as data). A tmpfs at /dev also gets the
// standard device nodes (null, zero, full, random, urandom, tty) and links (fd, stdin,
// stdout, stderr, ptmx). Type kCopyMount is a host file's content written at `destination`
// instead (an OCI bind mount of a file, such as /etc/hosts): `source` holds the bytes, `data`
// the file's mode in octal, MS_RDONLY in `flags` makes it read-only.
inline constexpr std::string_view kCopyMount = "copy";
inline constexpr std::size_t kMaxCopyBytes = 64 * 1024;
struct JobMount {
    std::string type, source, destination;
    std::uint64_t flags = 0;
    std::string data;
    bool operator==(const JobMount&) const = default;
};

// Capability sets as bit masks of CAP_* numbers (capabilities(7)).
struct JobCaps {
    std::uint64_t bounding = 0, effective = 0, permitted = 0, inheritable = 0, ambient = 0;
    bool operator==(const JobCaps&) const = default;
};

// How the workload (and every exec) runs, as an OCI runtime configures a container's
// process: user and groups, resource limits, capabilities, no_new_privs, and the root
// disk's mounts (own_mounts: `mounts` replace the guest's /proc, /sys and /dev, bound in by
// default), masked paths (a directory gets an empty read-only tmpfs, anything else
// /dev/null) and read-only paths (bound read-only onto themselves).
struct JobProcess {
    std::uint32_t uid = 0, gid = 0;
    std::vector<std::uint32_t> groups;
    std::vector<JobRlimit> rlimits;
    std::optional<JobCaps> caps;  // nullopt: left as they are (all of root's)
    bool no_new_privileges = false;
    bool own_mounts = false;
    std::vector<JobMount> mounts;
    // The root disk (attached writable) is remounted read-only once the mounts are made
    bool read_only_root = false;
    std::vector<std::string> masked, readonly;
    // Kernel parameters set before the workload runs (KEY as sysctl names it, "net.ipv4.x")
    std::vector<std::pair<std::string, std::string>> sysctl;
    // A seccomp filter (struct sock_filter instructions, as libseccomp exports them), loaded
    // last before the command runs (before the user changes when no_new_privileges is off, so
    // that CAP_SYS_ADMIN allows it); empty: none
    std::string seccomp;
    std::optional<std::uint32_t> umask{};  // the file mode creation mask (0 to 0777)
    // The container's processes (the workload and every exec) at most this many, through a
    // cgroup of their own in the guest (the pids controller); nullopt: no limit
    std::optional<std::uint64_t> pids_max{};
    bool operator==(const JobProcess&) const = default;
};

struct Job {
    std::vector<std::string> argv;
    std::vector<std::string> env;
    std::string workdir = "/";
    std::string hostname = "sandbox";
    JobRoot root;
    std::optional<JobNet> net;
    // stdio over vsock on this host port; written in a fixed width (ten digits), so the
    // archive's size does not depend on it and the boot can be planned before it is known
    std::optional<std::uint32_t> vsock_port;
    // run the workload only once the control stream says start (`stockade create`)
    bool wait_for_start = false;
    std::optional<JobProcess> process{};
    // the workload runs on a pseudo-terminal (guest/abi.hpp, kJobTerminal)
    bool terminal = false;
    bool operator==(const Job&) const = default;
};

// The archive's files, each one's bytes or nullopt where the archive has none.
struct JobFiles {
    std::optional<std::string> argv, env, workdir, hostname, root, net, vsock, wait_start, process,
        terminal;
    bool operator==(const JobFiles&) const = default;
};

// Where each file lives in the archive: the one list the writer, stockade-init and the
// tests walk.
struct JobFile {
    std::string_view path;
    std::optional<std::string> JobFiles::*member;
};
inline constexpr std::array<JobFile, 10> kJobFiles{{
    {guest_abi::kJobArgv, &JobFiles::argv},
    {guest_abi::kJobEnv, &JobFiles::env},
    {guest_abi::kJobWorkdir, &JobFiles::workdir},
    {guest_abi::kJobHostname, &JobFiles::hostname},
    {guest_abi::kJobRoot, &JobFiles::root},
    {guest_abi::kJobNet, &JobFiles::net},
    {guest_abi::kJobVsock, &JobFiles::vsock},
    {guest_abi::kJobWaitStart, &JobFiles::wait_start},
    {guest_abi::kJobProcess, &JobFiles::process},
    {guest_abi::kJobTerminal, &JobFiles::terminal},
}};

// The files that carry `job`: argv and env as NUL-terminated items, workdir and hostname
// always, root, net, vsock and wait-start only when the job has them. `job` is expected to
// be valid (the runner's SandboxSpec checks); parse_job_files refuses what is not.
[[nodiscard]] JobFiles job_files(const Job& job);

// The files back into the Job, checking each: argv (required) and env are NUL-terminated
// items, argv[0] not empty, each env item NAME=value; workdir an absolute path; hostname 1
// to 64 bytes; root "DEVICE ro|rw" with DEVICE an absolute path; net "MAC A.B.C.D/N" with a
// lower-case MAC and N 1 to 32; vsock a decimal port 1 to 4294967294; wait-start exactly
// "wait"; terminal exactly "pty"; process lines as guest/abi.hpp's kJobProcess says. No file may
// hold a NUL except argv and env. An absent optional file leaves Job's default. The error names the
// file and what is wrong, e.g.
// "/stockade/root: \"/dev/vda rx\" is not \"DEVICE ro|rw\"".
[[nodiscard]] std::expected<Job, std::string> parse_job_files(const JobFiles& files);

// A kernel parameter's name as sysctl writes it ("net.ipv4.ping_group_range"): of
// [A-Za-z0-9_.-], no empty part. The process file's sysctl lines and the OCI bundle's
// linux.sysctl keys are held to it.
[[nodiscard]] bool is_sysctl_name(std::string_view key);

// "A.B.C.D/N" (N 1 to 32, decimal, no leading zeros): the address in host byte order.
struct Ipv4Prefix {
    std::uint32_t address = 0;
    unsigned length = 0;
};
[[nodiscard]] std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string_view text);

// The /stockade directory and job_files(job), as a newc cpio.
[[nodiscard]] std::vector<std::uint8_t> build_job_archive(const Job& job);

}  // namespace stockade
