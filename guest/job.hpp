#pragma once
// The job archive (guest/abi.hpp): argv, environment, working directory and host name,
// as a cpio appended to the initramfs. No size limit beyond guest memory, binary-safe.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace stockade {

struct JobRoot {
    std::string device;  // e.g. /dev/vda; empty: the workload runs in the initramfs
    bool read_only = false;
};

struct JobNet {
    std::string mac;      // "02:1a:2b:3c:4d:5e": which interface
    std::string address;  // "169.254.10.2/16"
};

struct Job {
    std::vector<std::string> argv;
    std::vector<std::string> env;
    std::string workdir = "/";
    std::string hostname = "sandbox";
    JobRoot root;
    std::optional<JobNet> net;
    std::optional<std::uint32_t> vsock_port;  // stdio over vsock on this host port (fixed width)
};

[[nodiscard]] std::vector<std::uint8_t> build_job_archive(const Job& job);

}  // namespace stockade
