#include "runner/oci/seccomp.hpp"

#include <seccomp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/unique_fd.hpp"

namespace stockade::oci {
namespace {

using nlohmann::json;

struct CtxFree {
    void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxFree>;

// An action by its spec name; `errno_ret` for ERRNO (default EPERM) and TRACE.
Result<std::uint32_t> action(const std::string& name, std::uint32_t errno_ret,
                             std::string_view where) {
    if (name == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
    if (name == "SCMP_ACT_ERRNO") return SCMP_ACT_ERRNO(errno_ret);
    if (name == "SCMP_ACT_KILL" || name == "SCMP_ACT_KILL_THREAD") return SCMP_ACT_KILL_THREAD;
    if (name == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
    if (name == "SCMP_ACT_TRAP") return SCMP_ACT_TRAP;
    if (name == "SCMP_ACT_TRACE") return SCMP_ACT_TRACE(errno_ret);
    if (name == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
    if (name == "SCMP_ACT_NOTIFY")
        return fail("{}: SCMP_ACT_NOTIFY needs a listener, which the guest does not have", where);
    return fail("{}: unknown action {:?}", where, name);
}

Result<scmp_compare> op(const std::string& name, std::string_view where) {
    static constexpr std::array<std::pair<std::string_view, scmp_compare>, 7> kOps{{
        {"SCMP_CMP_NE", SCMP_CMP_NE},
        {"SCMP_CMP_LT", SCMP_CMP_LT},
        {"SCMP_CMP_LE", SCMP_CMP_LE},
        {"SCMP_CMP_EQ", SCMP_CMP_EQ},
        {"SCMP_CMP_GE", SCMP_CMP_GE},
        {"SCMP_CMP_GT", SCMP_CMP_GT},
        {"SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ},
    }};
    for (const auto& [n, v] : kOps)
        if (n == name) return v;
    return fail("{}: unknown operator {:?}", where, name);
}

std::uint32_t errno_of(const json& j, std::uint32_t fallback) {
    const auto it = j.find("errnoRet");
    return it != j.end() && it->is_number_unsigned() ? it->get<std::uint32_t>() : fallback;
}

}  // namespace

Result<std::string> compile_seccomp(const json& profile) {
    const std::string base = "linux.seccomp";
    if (!profile.is_object()) return fail("{}: not an object", base);
    for (const char* key : {"listenerPath", "listenerMetadata"})
        if (const auto it = profile.find(key);
            it != profile.end() && it->is_string() && !it->get<std::string>().empty())
            return fail("{}.{}: a listener is not supported", base, key);
    if (const auto it = profile.find("flags");
        it != profile.end() && !it->is_null() && !(it->is_array() && it->empty()))
        return fail("{}.flags: filter flags are not supported", base);
    const auto def = profile.find("defaultAction");
    if (def == profile.end() || !def->is_string()) return fail("{}.defaultAction: missing", base);
    const std::uint32_t default_errno = [&] {
        const auto it = profile.find("defaultErrnoRet");
        return it != profile.end() && it->is_number_unsigned() ? it->get<std::uint32_t>()
                                                               : std::uint32_t{EPERM};
    }();
    const std::uint32_t default_action =
        STOCKADE_TRY(action(def->get<std::string>(), default_errno, base + ".defaultAction"));
    Ctx ctx(seccomp_init(default_action));
    if (!ctx) return fail("{}: libseccomp refused the default action", base);
    // The filter checks the architecture; a program built for others would never match.
    if (const auto archs = profile.find("architectures");
        archs != profile.end() && archs->is_array())
        for (const json& a : *archs) {
            if (!a.is_string()) return fail("{}.architectures: not strings", base);
            std::string name = a.get<std::string>();
            if (name.starts_with("SCMP_ARCH_")) name = name.substr(10);
            for (char& c : name)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            const std::uint32_t arch = seccomp_arch_resolve_name(name.c_str());
            if (arch == 0 || (arch != SCMP_ARCH_X86 && arch != SCMP_ARCH_X32)) continue;
            if (const int rc = seccomp_arch_add(ctx.get(), arch); rc != 0 && rc != -EEXIST)
                return fail("{}.architectures: adding {}: {}", base, name, std::strerror(-rc));
        }
    const auto syscalls = profile.find("syscalls");
    if (syscalls != profile.end() && !syscalls->is_null()) {
        if (!syscalls->is_array()) return fail("{}.syscalls: not an array", base);
        for (std::size_t i = 0; i < syscalls->size(); ++i) {
            const json& rule = (*syscalls)[i];
            const std::string where = fmt::format("{}.syscalls[{}]", base, i);
            if (!rule.is_object() || !rule.contains("action") || !rule["action"].is_string())
                return fail("{}: needs an action", where);
            const std::uint32_t act = STOCKADE_TRY(
                action(rule["action"].get<std::string>(), errno_of(rule, EPERM), where));
            std::vector<scmp_arg_cmp> cmps;
            if (const auto args = rule.find("args"); args != rule.end() && !args->is_null()) {
                if (!args->is_array()) return fail("{}.args: not an array", where);
                for (const json& a : *args) {
                    const auto number = [&](const char* key) -> Result<std::uint64_t> {
                        const auto it = a.find(key);
                        if (it == a.end() || it->is_null()) return std::uint64_t{0};
                        if (!it->is_number_unsigned())
                            return fail("{}.args: {} is not a non-negative integer", where, key);
                        return it->get<std::uint64_t>();
                    };
                    if (!a.is_object() || !a.contains("index") ||
                        !a["index"].is_number_unsigned() || a["index"].get<std::uint64_t>() > 5 ||
                        !a.contains("op") || !a["op"].is_string())
                        return fail("{}.args: each needs an index 0-5 and an op", where);
                    scmp_arg_cmp c{};
                    c.arg = static_cast<unsigned>(a["index"].get<std::uint64_t>());
                    c.op = STOCKADE_TRY(op(a["op"].get<std::string>(), where));
                    c.datum_a = STOCKADE_TRY(number("value"));  // MASKED_EQ: the mask
                    c.datum_b = STOCKADE_TRY(number("valueTwo"));
                    cmps.push_back(c);
                }
            }
            // Two conditions on one argument cannot be one rule (libseccomp would AND them):
            // as runc does, each condition is then a rule of its own, so they OR.
            bool repeated = false;
            for (std::size_t x = 0; x < cmps.size(); ++x)
                for (std::size_t y = x + 1; y < cmps.size(); ++y)
                    repeated = repeated || cmps[x].arg == cmps[y].arg;
            std::vector<std::vector<scmp_arg_cmp>> rules;
            if (repeated)
                for (const scmp_arg_cmp& c : cmps)
                    rules.push_back({c});
            else
                rules.push_back(cmps);
            const auto names = rule.find("names");
            if (names == rule.end() || !names->is_array())
                return fail("{}.names: not an array", where);
            for (const json& n : *names) {
                if (!n.is_string()) return fail("{}.names: not strings", where);
                const int nr = seccomp_syscall_resolve_name(n.get<std::string>().c_str());
                if (nr == __NR_SCMP_ERROR) continue;  // a syscall this libseccomp does not know
                if (act == default_action)
                    continue;  // libseccomp refuses a rule that changes nothing
                for (const auto& conditions : rules)
                    if (const int rc = seccomp_rule_add_array(
                            ctx.get(), act, nr, static_cast<unsigned>(conditions.size()),
                            conditions.data());
                        rc != 0)
                        return fail("{}: the rule for {}: {}", where, n.get<std::string>(),
                                    std::strerror(-rc));
            }
        }
    }
    const int fd = ::memfd_create("stockade-oci-seccomp", MFD_CLOEXEC);
    if (fd < 0) return fail_sys("memfd_create for the seccomp export");
    UniqueFd mem(fd);
    if (const int rc = seccomp_export_bpf(ctx.get(), mem.get()); rc != 0)
        return fail("{}: exporting the filter: {}", base, std::strerror(-rc));
    struct stat st {};
    if (::fstat(mem.get(), &st) != 0) return fail_sys("fstat of the seccomp export");
    std::string out(static_cast<std::size_t>(st.st_size), '\0');
    if (::pread(mem.get(), out.data(), out.size(), 0) != static_cast<ssize_t>(out.size()))
        return fail_sys("reading the seccomp export");
    if (out.empty() || out.size() % 8 != 0 || out.size() / 8 > 4096)
        return fail("{}: the filter is {} bytes, not 1 to 4096 instructions", base, out.size());
    return out;
}

}  // namespace stockade::oci
