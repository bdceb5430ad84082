#pragma once
// Privilege drop (startup step 7) and the /proc/PID/status reader that proves it.
//
// drop_privileges(uid, gid) leaves the caller with: no supplementary groups, real = effective
// = saved uid and gid set to the given ids, every capability set empty (effective, permitted,
// inheritable, bounding, ambient; libcap-ng), no_new_privs set, and not dumpable (so no
// core dump, no ptrace attach and no /proc/PID access by other processes of the same uid).
// It then reads /proc/thread-self/status back when it can and fails unless all of that holds.
// Drop in each thread-creating process before the threads start: capabilities and ids are
// per thread in the kernel (glibc's setresuid broadcasts ids, but libcap-ng's capset and the
// bounding set apply to the calling thread).
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/error.hpp"

namespace stockade::policy {

[[nodiscard]] Result<> drop_privileges(std::uint32_t uid, std::uint32_t gid);

// The security-relevant lines of /proc/<pid>/status.
struct ProcessStatus {
    std::uint64_t cap_inh = 0, cap_prm = 0, cap_eff = 0, cap_bnd = 0, cap_amb = 0;
    int no_new_privs = -1;
    int seccomp = -1;           // 0 off, 1 strict, 2 filter
    int seccomp_filters = -1;   // -1 when the kernel does not report it
    std::uint32_t uid[4] = {};  // real, effective, saved, filesystem
    std::uint32_t gid[4] = {};
    std::vector<std::uint32_t> groups;
};

// "self", "thread-self" or a pid.
[[nodiscard]] Result<ProcessStatus> read_process_status(const std::string& which = "self");
[[nodiscard]] Result<ProcessStatus> parse_process_status(const std::string& text);

// Fails, listing every field that is not as drop_privileges() leaves it.
[[nodiscard]] Result<> verify_dropped(const ProcessStatus& status, std::uint32_t uid,
                                      std::uint32_t gid);

}  // namespace stockade::policy
