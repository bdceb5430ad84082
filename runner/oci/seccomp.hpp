#pragma once
// An OCI config's linux.seccomp as the BPF program the guest loads before the container's
// command (guest/job.hpp JobProcess::seccomp): compiled here with libseccomp for x86-64 (and
// the architectures the profile lists that libseccomp knows), exported as struct sock_filter
// instructions. The guest kernel is x86-64 as the host is, so the numbers match.
#include <string>

#include <nlohmann/json_fwd.hpp>

#include "base/error.hpp"

namespace stockade::oci {

// The profile's program. Refused by field: an unknown action or operator, a notify action or
// listener (nothing in the guest would answer), filter flags. Syscall names libseccomp does
// not know are skipped, as runc does (profiles name syscalls of newer kernels).
[[nodiscard]] Result<std::string> compile_seccomp(const nlohmann::json& profile);

}  // namespace stockade::oci
