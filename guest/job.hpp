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
    bool operator==(const JobNet&) const = default;
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
    bool operator==(const Job&) const = default;
};

// The archive's files, each one's bytes or nullopt where the archive has none.
struct JobFiles {
    std::optional<std::string> argv, env, workdir, hostname, root, net, vsock, wait_start;
    bool operator==(const JobFiles&) const = default;
};

// Where each file lives in the archive: the one list the writer, stockade-init and the
// tests walk.
struct JobFile {
    std::string_view path;
    std::optional<std::string> JobFiles::*member;
};
inline constexpr std::array<JobFile, 8> kJobFiles{{
    {guest_abi::kJobArgv, &JobFiles::argv},
    {guest_abi::kJobEnv, &JobFiles::env},
    {guest_abi::kJobWorkdir, &JobFiles::workdir},
    {guest_abi::kJobHostname, &JobFiles::hostname},
    {guest_abi::kJobRoot, &JobFiles::root},
    {guest_abi::kJobNet, &JobFiles::net},
    {guest_abi::kJobVsock, &JobFiles::vsock},
    {guest_abi::kJobWaitStart, &JobFiles::wait_start},
}};

// The files that carry `job`: argv and env as NUL-terminated items, workdir and hostname
// always, root, net, vsock and wait-start only when the job has them. `job` is expected to
// be valid (the runner's SandboxSpec checks); parse_job_files refuses what is not.
[[nodiscard]] JobFiles job_files(const Job& job);

// The files back into the Job, checking each: argv (required) and env are NUL-terminated
// items, argv[0] not empty, each env item NAME=value; workdir an absolute path; hostname 1
// to 64 bytes; root "DEVICE ro|rw" with DEVICE an absolute path; net "MAC A.B.C.D/N" with a
// lower-case MAC and N 1 to 32; vsock a decimal port 1 to 4294967294; wait-start exactly
// "wait". No file may hold a NUL except argv and env. An absent optional file leaves Job's
// default. The error names the file and what is wrong, e.g.
// "/stockade/root: \"/dev/vda rx\" is not \"DEVICE ro|rw\"".
[[nodiscard]] std::expected<Job, std::string> parse_job_files(const JobFiles& files);

// "A.B.C.D/N" (N 1 to 32, decimal, no leading zeros): the address in host byte order.
struct Ipv4Prefix {
    std::uint32_t address = 0;
    unsigned length = 0;
};
[[nodiscard]] std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string_view text);

// The /stockade directory and job_files(job), as a newc cpio.
[[nodiscard]] std::vector<std::uint8_t> build_job_archive(const Job& job);

}  // namespace stockade
