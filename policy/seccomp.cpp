#include "policy/seccomp.hpp"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>

#include "base/unique_fd.hpp"

namespace stockade::policy {
namespace {

struct CtxRelease {
    void operator()(void* ctx) const noexcept { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxRelease>;

struct FreeDeleter {
    void operator()(char* p) const noexcept { std::free(p); }  // NOLINT: libseccomp mallocs
};

// clone flags that make a new process or namespace rather than a thread.
constexpr std::uint64_t kCloneNewFlags = CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS |
                                         CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET;

// glibc's internal signal for set*id broadcasts: SIGRTMIN + 1 of the kernel (33).
constexpr std::uint64_t kGlibcSigSetxid = 33;

std::string condition_text(const ArgCondition& c) {
    std::string text;
    switch (c.op) {
        case ArgCondition::Op::eq:
            text = fmt::format("arg{} == {:#x}", c.arg, c.value);
            break;
        case ArgCondition::Op::ne:
            text = fmt::format("arg{} != {:#x}", c.arg, c.value);
            break;
        case ArgCondition::Op::masked_eq:
            text = fmt::format("(arg{} & {:#x}) == {:#x}", c.arg, c.mask, c.value);
            break;
    }
    if (!c.note.empty()) text += fmt::format(" ({})", c.note);
    return text;
}

std::string action_text(const SeccompProfile::Rule& r) {
    switch (r.action) {
        case SeccompProfile::Action::allow:
            return "allow";
        case SeccompProfile::Action::kill:
            return "kill";
        case SeccompProfile::Action::errno_:
            return fmt::format("errno {}", strerrorname_np(r.errno_value)
                                               ? strerrorname_np(r.errno_value)
                                               : std::to_string(r.errno_value).c_str());
    }
    return "?";
}

}  // namespace

std::string syscall_name(int syscall) {
    std::unique_ptr<char, FreeDeleter> name(
        seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, syscall));
    return name ? std::string(name.get()) : fmt::format("syscall_{}", syscall);
}

ArgCondition arg_eq(unsigned arg, std::uint64_t value) {
    return ArgCondition{arg, ArgCondition::Op::eq, value, ~std::uint64_t{0}, {}};
}
ArgCondition arg_ne(unsigned arg, std::uint64_t value) {
    return ArgCondition{arg, ArgCondition::Op::ne, value, ~std::uint64_t{0}, {}};
}
ArgCondition arg_masked_eq(unsigned arg, std::uint64_t mask, std::uint64_t value) {
    return ArgCondition{arg, ArgCondition::Op::masked_eq, value, mask, {}};
}

SeccompProfile::SeccompProfile(std::string name, SeccompMode mode)
    : name_(std::move(name)), mode_(mode) {
    deny_execve();
}

void SeccompProfile::add(Rule rule) {
    for (const auto& c : rule.conditions)
        if (c.arg > 5) {
            errors_.push_back(
                fmt::format("{}: argument {} does not exist", syscall_name(rule.syscall), c.arg));
            return;
        }
    for (const auto& r : rules_) {
        if (r.syscall != rule.syscall) continue;
        if (r == rule) return;  // stated twice (e.g. baseline() and allow_clone_threads_only())
        const bool both_allow = r.action == Action::allow && rule.action == Action::allow;
        if (!both_allow) {
            errors_.push_back(fmt::format("{} has conflicting rules ({} and {})",
                                          syscall_name(rule.syscall), action_text(r),
                                          action_text(rule)));
            return;
        }
        if (r.conditions.empty() != rule.conditions.empty()) {
            errors_.push_back(
                fmt::format("{} is allowed both unconditionally and only with conditions; keep one",
                            syscall_name(rule.syscall)));
            return;
        }
    }
    rules_.push_back(std::move(rule));
}

SeccompProfile& SeccompProfile::allow(std::initializer_list<int> syscalls) {
    for (int nr : syscalls)
        add(Rule{nr, Action::allow, 0, {}});
    return *this;
}

SeccompProfile& SeccompProfile::allow_if(int syscall, std::vector<ArgCondition> conditions) {
    if (conditions.empty())
        errors_.push_back(
            fmt::format("allow_if({}) without conditions; use allow()", syscall_name(syscall)));
    else
        add(Rule{syscall, Action::allow, 0, std::move(conditions)});
    return *this;
}

SeccompProfile& SeccompProfile::allow_ioctl(std::initializer_list<IoctlRequest> requests) {
    for (const auto& req : requests) {
        if (req.number > 0xffffffffu) {
            errors_.push_back(fmt::format(
                "ioctl request {:#x} does not fit the kernel's 32-bit request", req.number));
            continue;
        }
        auto cond = arg_masked_eq(1, 0xffffffffu, req.number);
        cond.note = std::string(req.name);
        add(Rule{SYS_ioctl, Action::allow, 0, {cond}});
        if (std::none_of(ioctls_.begin(), ioctls_.end(),
                         [&](const IoctlRequest& r) { return r.number == req.number; }))
            ioctls_.push_back(req);
    }
    return *this;
}

SeccompProfile& SeccompProfile::allow_ioctl(std::initializer_list<std::uint64_t> requests) {
    for (auto n : requests)
        allow_ioctl({IoctlRequest(n)});
    return *this;
}

SeccompProfile& SeccompProfile::allow_mmap_no_exec() {
    auto cond = arg_masked_eq(2, PROT_EXEC, 0);
    cond.note = "no PROT_EXEC";
    add(Rule{SYS_mmap, Action::allow, 0, {cond}});
    return *this;
}

SeccompProfile& SeccompProfile::allow_mprotect_no_exec() {
    auto cond = arg_masked_eq(2, PROT_EXEC, 0);
    cond.note = "no PROT_EXEC";
    add(Rule{SYS_mprotect, Action::allow, 0, {cond}});
    return *this;
}

SeccompProfile& SeccompProfile::allow_clone_threads_only() {
    auto cond = arg_masked_eq(0, CLONE_THREAD | kCloneNewFlags, CLONE_THREAD);
    cond.note = "CLONE_THREAD, no CLONE_NEW*";
    add(Rule{SYS_clone, Action::allow, 0, {cond}});
    fail_with(SYS_clone3, ENOSYS);
    allow({SYS_set_robust_list, SYS_rseq});
    // The first pthread_create of a process installs glibc's SIGSETXID handler (the signal
    // glibc uses to apply setuid & co. to every thread): that one rt_sigaction only.
    auto setxid = arg_eq(0, kGlibcSigSetxid);
    setxid.note = "glibc's SIGSETXID";
    add(Rule{SYS_rt_sigaction, Action::allow, 0, {setxid}});
    allow_mmap_no_exec();
    allow_mprotect_no_exec();
    return *this;
}

SeccompProfile& SeccompProfile::deny(std::initializer_list<int> syscalls) {
    for (int nr : syscalls)
        add(Rule{nr, Action::kill, 0, {}});
    return *this;
}

SeccompProfile& SeccompProfile::deny_execve() {
    return deny({SYS_execve, SYS_execveat});
}

SeccompProfile& SeccompProfile::fail_with(int syscall, int errno_value) {
    add(Rule{syscall, Action::errno_, errno_value, {}});
    return *this;
}

SeccompProfile& SeccompProfile::baseline() {
    allow({SYS_read, SYS_write, SYS_close, SYS_futex, SYS_exit, SYS_exit_group, SYS_rt_sigreturn,
           SYS_rt_sigprocmask, SYS_restart_syscall, SYS_madvise, SYS_munmap, SYS_brk,
           SYS_clock_gettime, SYS_sched_yield});
    allow_mmap_no_exec();
    allow_mprotect_no_exec();
    return *this;
}

std::vector<std::string> SeccompProfile::allowed_syscalls() const {
    std::set<std::string> names;
    for (const auto& r : rules_)
        if (r.action == Action::allow) names.insert(syscall_name(r.syscall));
    return {names.begin(), names.end()};
}

namespace {

Result<Ctx> build(const SeccompProfile& p, const std::vector<std::string>& errors) {
    auto where = [&p] { return fmt::format("seccomp profile {}", p.name()); };
    if (!errors.empty()) return fail("{}: {}", where(), fmt::join(errors, "; "));
    const std::uint32_t default_action =
        p.mode() == SeccompMode::log ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
    Ctx ctx(seccomp_init(default_action));
    if (!ctx) return fail("{}: seccomp_init failed", where());
    if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS); rc)
        return fail_sys(fmt::format("{}: setting the bad-architecture action", where()), -rc);
    // Each thread loads its own filter: never synchronise onto the other threads.
    if (int rc = seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_TSYNC, 0); rc)
        return fail_sys(fmt::format("{}: clearing TSYNC", where()), -rc);
    for (const auto& r : p.rules()) {
        std::uint32_t action = SCMP_ACT_ALLOW;
        if (r.action == SeccompProfile::Action::kill) action = SCMP_ACT_KILL_PROCESS;
        if (r.action == SeccompProfile::Action::errno_)
            action = SCMP_ACT_ERRNO(static_cast<std::uint32_t>(r.errno_value));
        if (action == default_action) continue;  // libseccomp refuses rules that repeat it
        std::vector<scmp_arg_cmp> cmps;
        for (const auto& c : r.conditions) {
            scmp_arg_cmp cmp{};
            cmp.arg = c.arg;
            switch (c.op) {
                case ArgCondition::Op::eq:
                    cmp.op = SCMP_CMP_EQ;
                    cmp.datum_a = c.value;
                    break;
                case ArgCondition::Op::ne:
                    cmp.op = SCMP_CMP_NE;
                    cmp.datum_a = c.value;
                    break;
                case ArgCondition::Op::masked_eq:
                    cmp.op = SCMP_CMP_MASKED_EQ;
                    cmp.datum_a = c.mask;
                    cmp.datum_b = c.value;
                    break;
            }
            cmps.push_back(cmp);
        }
        int rc = seccomp_rule_add_array(ctx.get(), action, r.syscall,
                                        static_cast<unsigned>(cmps.size()), cmps.data());
        if (rc != 0)
            return fail_sys(
                fmt::format("{}: adding the rule for {}", where(), syscall_name(r.syscall)), -rc);
    }
    return ctx;
}

}  // namespace

Result<std::vector<std::uint8_t>> SeccompProfile::export_bpf() const {
    auto ctx = STOCKADE_TRY(build(*this, errors_));
    int fd = ::memfd_create("stockade-seccomp-bpf", MFD_CLOEXEC);
    if (fd < 0) return fail_sys("memfd_create for the seccomp export");
    UniqueFd mem(fd);
    if (int rc = seccomp_export_bpf(ctx.get(), mem.get()); rc != 0)
        return fail_sys(fmt::format("seccomp profile {}: seccomp_export_bpf", name_), -rc);
    struct stat st {};
    if (::fstat(mem.get(), &st) != 0) return fail_sys("fstat of the seccomp export");
    std::vector<std::uint8_t> out(static_cast<std::size_t>(st.st_size));
    if (::pread(mem.get(), out.data(), out.size(), 0) != static_cast<ssize_t>(out.size()))
        return fail_sys("reading the seccomp export");
    return out;
}

Result<std::size_t> SeccompProfile::bpf_instruction_count() const {
    auto bpf = STOCKADE_TRY(export_bpf());
    constexpr std::size_t kInsnSize = 8;  // struct sock_filter: u16 code, u8 jt, u8 jf, u32 k
    if (bpf.size() % kInsnSize != 0)
        return fail("seccomp profile {}: BPF export of {} bytes is not whole instructions", name_,
                    bpf.size());
    return bpf.size() / kInsnSize;
}

std::string SeccompProfile::describe() const {
    std::string out = fmt::format("seccomp profile \"{}\": default action {}\n", name_,
                                  mode_ == SeccompMode::log ? "log (and allow)" : "kill process");
    for (const auto& r : rules_) {
        out += fmt::format("  {} {}", action_text(r), syscall_name(r.syscall));
        if (!r.conditions.empty()) {
            std::vector<std::string> parts;
            for (const auto& c : r.conditions)
                parts.push_back(condition_text(c));
            out += fmt::format(" if {}", fmt::join(parts, " and "));
        }
        out += '\n';
    }
    return out;
}

nlohmann::json SeccompProfile::to_json() const {
    using nlohmann::json;
    json rules = json::array();
    for (const auto& r : rules_) {
        json conds = json::array();
        for (const auto& c : r.conditions)
            conds.push_back(condition_text(c));
        rules.push_back(
            {{"syscall", syscall_name(r.syscall)}, {"action", action_text(r)}, {"if", conds}});
    }
    json ioctls = json::array();
    for (const auto& i : ioctls_) {
        json e = {{"request", fmt::format("{:#x}", i.number)}};
        if (!i.name.empty()) e["name"] = i.name;
        ioctls.push_back(std::move(e));
    }
    json j = {{"name", name_},
              {"mode", seccomp_mode_name(mode_)},
              {"default_action", mode_ == SeccompMode::log ? "log" : "kill_process"},
              {"allow", allowed_syscalls()},
              {"ioctls", ioctls},
              {"rules", rules}};
    if (auto n = bpf_instruction_count())
        j["bpf_instructions"] = *n;
    else
        j["error"] = n.error().message;
    return j;
}

Result<> load_bpf(std::span<const std::uint8_t> program) {
    if (program.empty() || program.size() % sizeof(sock_filter) != 0 ||
        program.size() / sizeof(sock_filter) > BPF_MAXINSNS)
        return fail("seccomp: a BPF program of {} bytes", program.size());
    // The kernel copies the program; sock_fprog only points at the caller's bytes.
    const sock_fprog prog{
        static_cast<unsigned short>(program.size() / sizeof(sock_filter)),
        reinterpret_cast<sock_filter*>(const_cast<std::uint8_t*>(program.data()))};
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0)
        return fail_sys("loading a seccomp BPF program");
    return {};
}

Result<> SeccompProfile::load() const {
    auto ctx = STOCKADE_TRY(build(*this, errors_));
    if (int rc = seccomp_load(ctx.get()); rc != 0)
        return fail_sys(fmt::format("loading seccomp profile {}", name_), -rc);
    return {};
}

}  // namespace stockade::policy
