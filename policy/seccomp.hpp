#pragma once
// Seccomp allowlists (startup step 8), one per thread kind, written so the call site reads
// like the policy (after sandbox2's PolicyBuilder):
//
//   auto vcpu = SeccompProfile("vcpu", policy.seccomp_mode)
//                   .baseline()
//                   .allow_ioctl({STOCKADE_IOCTL(KVM_RUN), STOCKADE_IOCTL(KVM_GET_REGS)})
//                   .allow({SYS_pwrite64});
//   STOCKADE_TRY_VOID(vcpu.load());   // in the vCPU thread itself
//
// A profile is data (a list of rules) until load() or export: libseccomp builds the BPF then.
// Everything not allowed hits the default action: kill the whole process (SIGSYS), or in
// `log` mode let it through and log it (for finding what a new build needs). execve and
// execveat are killed in both modes. load() filters the calling thread only (no TSYNC): each
// thread loads the profile of its kind, and its later threads inherit it.
//
// The rules that compare arguments follow the kernel's own reading of them:
// - ioctl: the request is an `unsigned int` to the kernel, so only the low 32 bits are
//   compared (a caller's sign-extended request still matches; no garbage in the upper half can
//   smuggle a different request past the filter, as the kernel ignores it too);
// - mmap/mprotect: allowed only when PROT_EXEC is clear in the prot argument;
// - clone: only with CLONE_THREAD and no CLONE_NEW* flag (threads, never processes); clone3
//   passes its flags in memory that BPF cannot read, so it fails with ENOSYS and glibc falls
//   back to clone.
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "base/error.hpp"
#include "policy/policy.hpp"

// An ioctl request with its name, for descriptions: STOCKADE_IOCTL(KVM_RUN).
#define STOCKADE_IOCTL(request) (::stockade::policy::IoctlRequest{(request), #request})

namespace stockade::policy {

struct IoctlRequest {
    std::uint64_t number = 0;
    std::string_view name;  // may be empty
    IoctlRequest(std::uint64_t n, std::string_view nm = {}) : number(n), name(nm) {}  // NOLINT
};

// One comparison of a system call argument; a rule's comparisons must all hold.
struct ArgCondition {
    enum class Op : std::uint8_t { eq, ne, masked_eq };
    unsigned arg = 0;  // 0..5
    Op op = Op::eq;
    std::uint64_t value = 0;
    std::uint64_t mask = ~std::uint64_t{0};  // masked_eq: (arg & mask) == value
    std::string note;                        // how describe() shows it
    bool operator==(const ArgCondition&) const = default;
};
[[nodiscard]] ArgCondition arg_eq(unsigned arg, std::uint64_t value);
[[nodiscard]] ArgCondition arg_ne(unsigned arg, std::uint64_t value);
[[nodiscard]] ArgCondition arg_masked_eq(unsigned arg, std::uint64_t mask, std::uint64_t value);

class SeccompProfile {
  public:
    enum class Action : std::uint8_t { allow, kill, errno_ };
    struct Rule {
        int syscall = -1;
        Action action = Action::allow;
        int errno_value = 0;
        std::vector<ArgCondition> conditions;  // empty: unconditional
        bool operator==(const Rule&) const = default;
    };

    explicit SeccompProfile(std::string name, SeccompMode mode = SeccompMode::kill);

    // Unconditionally allowed system calls (SYS_* numbers).
    SeccompProfile& allow(std::initializer_list<int> syscalls);
    SeccompProfile& allow(int syscall) { return allow({syscall}); }
    // Allowed when every condition holds; several allow_if() for one call are alternatives.
    SeccompProfile& allow_if(int syscall, std::vector<ArgCondition> conditions);
    // ioctl(fd, request, ...) for exactly these requests.
    SeccompProfile& allow_ioctl(std::initializer_list<IoctlRequest> requests);
    SeccompProfile& allow_ioctl(std::initializer_list<std::uint64_t> requests);
    SeccompProfile& allow_mmap_no_exec();
    SeccompProfile& allow_mprotect_no_exec();
    // clone for threads (see above), clone3 -> ENOSYS, and what thread creation in glibc
    // does: set_robust_list, rseq, mmap/mprotect of the stack (no exec), and on the process's
    // first pthread_create, rt_sigaction of glibc's SIGSETXID (that signal only).
    SeccompProfile& allow_clone_threads_only();
    // Kills the process in every mode (also under `log`).
    SeccompProfile& deny(std::initializer_list<int> syscalls);
    // execve and execveat; always part of a profile, stated for call sites that read better.
    SeccompProfile& deny_execve();
    // Fails the call with errno instead of killing (a library probe that has a fallback).
    SeccompProfile& fail_with(int syscall, int errno_value);
    // What every thread of a C++ program needs once it only works on descriptors it holds:
    // read, write, close, futex, exit, exit_group, rt_sigreturn, rt_sigprocmask,
    // restart_syscall, madvise, munmap, brk, clock_gettime, sched_yield, plus mmap and
    // mprotect without PROT_EXEC (see policy/README.md for why each is there).
    SeccompProfile& baseline();

    [[nodiscard]] const std::string& name() const { return name_; }
    [[nodiscard]] SeccompMode mode() const { return mode_; }
    [[nodiscard]] const std::vector<Rule>& rules() const { return rules_; }

    // Names of the system calls with at least one allow rule, sorted.
    [[nodiscard]] std::vector<std::string> allowed_syscalls() const;
    // The ioctl requests allowed, in the order given.
    [[nodiscard]] const std::vector<IoctlRequest>& allowed_ioctls() const { return ioctls_; }
    // Length of the BPF program libseccomp generates (struct sock_filter instructions).
    [[nodiscard]] Result<std::size_t> bpf_instruction_count() const;
    // The raw BPF program (for tools and tests).
    [[nodiscard]] Result<std::vector<std::uint8_t>> export_bpf() const;
    // Human-readable listing, one rule a line.
    [[nodiscard]] std::string describe() const;
    // {"name", "mode", "default_action", "allow": [...], "ioctls": [...], "rules": [...],
    //  "bpf_instructions"}.
    [[nodiscard]] nlohmann::json to_json() const;

    // Installs the filter on the calling thread (sets no_new_privs as seccomp requires).
    [[nodiscard]] Result<> load() const;

  private:
    void add(Rule rule);
    std::string name_;
    SeccompMode mode_;
    std::vector<Rule> rules_;
    std::vector<IoctlRequest> ioctls_;
    std::vector<std::string> errors_;  // builder misuse, reported by load() and export
};

[[nodiscard]] std::string syscall_name(int syscall);

// Installs a program export_bpf() made (a whole number of struct sock_filter) on the calling
// thread, and makes no other system call and no allocation once it is in: for a process whose
// allowlist has no memory calls (stockade-relay), where load() would die freeing libseccomp's
// copy. The caller sets no_new_privs first (drop_privileges() does).
[[nodiscard]] Result<> load_bpf(std::span<const std::uint8_t> program);

}  // namespace stockade::policy
