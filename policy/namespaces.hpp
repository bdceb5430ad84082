#pragma once
// Creating the sandbox process in its own namespaces (the first half of startup step 5).
//
// Why a fork and not unshare() in the caller: the supervisor must stay in the host's
// namespaces to clean up (cgroup leaf, jail root, taps), unshare(CLONE_NEWNS) fails in a
// multi-threaded process, and CLONE_NEWPID only moves the caller's future children. So
// fork_into_namespaces() forks, like fork(2): it returns in the parent with the child's pid
// and in the child with pid 0, the child already inside every requested namespace:
//
//   auto forked = STOCKADE_TRY(fork_into_namespaces(spec));   // supervisor, single-threaded
//   if (forked.in_child()) { ...enter_jail, SELinux, drop, seccomp, run...; _exit(status); }
//   ...supervisor: wait for forked.pid, then remove cgroup leaf, jail root, taps...
//
// In the child the order is: join the cgroup leaf (so that the cgroup namespace made next is
// rooted at the leaf), the user namespace when asked (its id maps written by the parent), then
// mount, ipc, uts, net and cgroup namespaces, every mount made private (nothing propagates back
// to the host), and the child is PID 1 of a new PID namespace. The child gets SIGKILL when
// the parent dies (PR_SET_PDEATHSIG): a sandbox never outlives its supervisor.
//
// Without a user namespace, the PID namespace is made by unshare(CLONE_NEWPID) in the parent
// just around the fork and undone with setns() right after, so the parent's later children
// are unaffected (needs CAP_SYS_ADMIN, as everything without a user namespace does). With a
// user namespace (an unprivileged start), the PID namespace has to belong to it, so the child
// makes it after entering the user namespace and forks once more: the first child then only
// waits for the sandbox process, forwards termination signals to it and exits with its status,
// so the parent still sees the sandbox's status under the pid it was given. That first child
// (stockade-relay) holds no descriptor and no capability, has no_new_privs and a seccomp filter
// of exactly its loop's calls, and dies with the supervisor.
//
// A child-side error is returned in the child: report it (e.g. to stderr) and _exit(125).
#include <sys/types.h>

#include <cstdint>
#include <string>

#include "base/error.hpp"
#include "policy/policy.hpp"
#include "policy/seccomp.hpp"

namespace stockade::policy {

struct NamespaceSpec {
    NamespaceSet namespaces;
    // The ids the sandbox will run as. With a user namespace they are the only ids mapped in
    // it: to the same ids outside when the parent is root, else to the parent's own ids.
    std::uint32_t uid = 65534;
    std::uint32_t gid = 65534;
    int cgroup_dir_fd = -1;   // CgroupLeaf::dir_fd(), or -1 to stay in the parent's cgroup
    std::string cgroup_name;  // for messages
};

struct Forked {
    pid_t pid = -1;  // the child's pid in the parent, 0 in the child
    [[nodiscard]] bool in_child() const { return pid == 0; }
};

[[nodiscard]] Result<Forked> fork_into_namespaces(const NamespaceSpec& spec);

// stockade-relay's filter (default action: kill the process): exactly what its loop calls once
// it has dropped every capability, with wait4 for the sandbox only and kill for the sandbox
// and itself only. Loaded with load_bpf() (policy/seccomp.hpp).
[[nodiscard]] SeccompProfile relay_seccomp_profile(pid_t sandbox, pid_t relay_pid);

}  // namespace stockade::policy
