#include "guest/job.hpp"

#include <cstdio>

#include "guest/abi.hpp"
#include "guest/cpio.hpp"

namespace stockade {
namespace {

std::string nul_joined(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& s : items) {
        out += s;
        out.push_back('\0');
    }
    return out;
}

}  // namespace

std::vector<std::uint8_t> build_job_archive(const Job& job) {
    cpio::Writer w;
    w.add_directory(guest_abi::kJobDir, 0700);
    w.add_file(guest_abi::kJobArgv, nul_joined(job.argv), 0600);
    w.add_file(guest_abi::kJobEnv, nul_joined(job.env), 0600);
    w.add_file(guest_abi::kJobWorkdir, job.workdir, 0600);
    w.add_file(guest_abi::kJobHostname, job.hostname, 0600);
    if (!job.root.device.empty())
        w.add_file(guest_abi::kJobRoot, job.root.device + (job.root.read_only ? " ro" : " rw"),
                   0600);
    if (job.net) w.add_file(guest_abi::kJobNet, job.net->mac + " " + job.net->address, 0600);
    if (job.vsock_port) {
        // Ten digits whatever the port: the archive's size does not depend on it, so the
        // boot can be planned before the port is known.
        char port[16];
        std::snprintf(port, sizeof port, "%010u", static_cast<unsigned>(*job.vsock_port));
        w.add_file(guest_abi::kJobVsock, port, 0600);
    }
    return w.finish();
}

}  // namespace stockade
