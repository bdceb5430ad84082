#include "runner/supervisor/sandbox_spec.hpp"

#include <sys/sysinfo.h>

#include <algorithm>

#include <cctype>

namespace stockade {
namespace {

bool valid_hostname(const std::string& h) {
    if (h.empty() || h.size() > 64 || h.front() == '-' || h.front() == '.') return false;
    return std::all_of(h.begin(), h.end(),
                       [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '.'; });
}

}  // namespace

Result<> check_vcpus(std::uint32_t vcpus, std::uint32_t host_max) {
    const std::uint32_t max_vcpus = std::min(host_max, kMaxVcpus);
    if (vcpus > max_vcpus)
        return fail("--vcpus: {} is more than the {} this host's KVM supports", vcpus, max_vcpus);
    return {};
}

Result<> validate(const SandboxSpec& s, const HostLimits& host) {
    if (s.kernel.empty()) return fail("--kernel: no kernel image given");
    if (s.initrd.empty()) return fail("--initrd: no initramfs given");
    if (s.argv.empty())
        return fail("no command given: use `stockade run [options] -- CMD [ARGS...]`");
    if (s.argv.front().empty()) return fail("the command name is empty");
    if (s.vcpus == 0) return fail("--vcpus: must be at least 1");
    STOCKADE_TRY_VOID(check_vcpus(s.vcpus, host.max_vcpus));
    if (s.memory_mib < kMinMemoryMiB)
        return fail("--memory: {} MiB is below the minimum of {} MiB", s.memory_mib, kMinMemoryMiB);
    if (host.ram_bytes != 0 && s.memory_mib > host.ram_bytes / (1024 * 1024))
        return fail("--memory: {} MiB is more than this host's {} MiB of RAM", s.memory_mib,
                    host.ram_bytes / (1024 * 1024));
    for (const std::string& e : s.env) {
        auto eq = e.find('=');
        if (eq == std::string::npos || eq == 0) return fail("--env: '{}' is not NAME=value", e);
        if (e.find('\0') != std::string::npos) return fail("--env: '{}' contains a NUL byte", e);
    }
    for (const std::string& a : s.argv)
        if (a.find('\0') != std::string::npos) return fail("command argument contains a NUL byte");
    if (s.workdir.empty() || s.workdir.front() != '/')
        return fail("--workdir: '{}' is not an absolute path", s.workdir);
    if (!valid_hostname(s.hostname))
        return fail("--hostname: '{}' is not a valid host name", s.hostname);
    if (s.extra_cmdline.find('\n') != std::string::npos)
        return fail("--cmdline: contains a newline");
    return DeviceKinds::each_until_error(
        [&]<class K>(std::type_identity<K>) { return K::validate(s.device<K>()); });
}

std::uint64_t host_ram_bytes() {
    struct sysinfo si {};
    if (::sysinfo(&si) != 0) return 0;
    return std::uint64_t{si.totalram} * si.mem_unit;
}

}  // namespace stockade
