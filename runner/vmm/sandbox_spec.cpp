#include "runner/vmm/sandbox_spec.hpp"

#include <sys/sysinfo.h>

#include <arpa/inet.h>
#include <algorithm>

#include <cctype>
#include <charconv>

#include "netsetup/spec.hpp"

namespace stockade {
namespace {

bool valid_hostname(const std::string& h) {
    if (h.empty() || h.size() > 64 || h.front() == '-' || h.front() == '.') return false;
    return std::all_of(h.begin(), h.end(),
                       [](unsigned char c) { return std::isalnum(c) || c == '-' || c == '.'; });
}

bool valid_ipv4_prefix(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) return false;
    const std::string ip(text.substr(0, slash));
    in_addr a{};
    if (::inet_pton(AF_INET, ip.c_str(), &a) != 1) return false;
    const std::string_view len = text.substr(slash + 1);
    unsigned prefix = 0;
    auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
    return ec == std::errc{} && end == len.data() + len.size() && !len.empty() && prefix >= 1 &&
           prefix <= 32;
}

}  // namespace

Result<NetDeviceSpec> parse_net_device_spec(std::string_view text) {
    NetDeviceSpec out;
    bool vhost_seen = false, addr_seen = false;
    std::size_t pos = 0;
    while (!text.empty() && pos <= text.size()) {
        auto next = text.find(',', pos);
        if (next == std::string_view::npos) next = text.size();
        const std::string_view item = text.substr(pos, next - pos);
        pos = next + 1;
        if (item.starts_with("vhost=")) {
            if (vhost_seen) return fail("--net: vhost: given twice");
            vhost_seen = true;
            const auto v = item.substr(6);
            if (v == "on")
                out.vhost = VhostMode::on;
            else if (v == "off")
                out.vhost = VhostMode::off;
            else
                return fail("--net: vhost: '{}' is not on or off", v);
        } else if (item.starts_with("addr=")) {
            if (addr_seen) return fail("--net: addr: given twice");
            addr_seen = true;
            out.address = std::string(item.substr(5));
            if (!valid_ipv4_prefix(out.address))
                return fail(
                    "--net: addr: '{}' is not an IPv4 address with a prefix length "
                    "(A.B.C.D/N)",
                    out.address);
        } else {
            if (!out.netsetup.empty()) out.netsetup += ',';
            out.netsetup += item;
        }
    }
    net::SpecDefaults defaults;
    defaults.id = "sandbox";
    auto checked = net::parse_net_spec(out.netsetup, defaults);
    if (!checked) return fail("--net: {}", checked.error().message);
    if (checked->queues != 1) return fail("--net: queues: stockade run uses one queue pair");
    return out;
}

Result<> validate(const SandboxSpec& s, const HostLimits& host) {
    if (s.kernel.empty()) return fail("--kernel: no kernel image given");
    if (s.initrd.empty()) return fail("--initrd: no initramfs given");
    if (s.argv.empty())
        return fail("no command given: use `stockade run [options] -- CMD [ARGS...]`");
    if (s.argv.front().empty()) return fail("the command name is empty");
    if (s.vcpus == 0) return fail("--vcpus: must be at least 1");
    const std::uint32_t max_vcpus = std::min(host.max_vcpus, kMaxVcpus);
    if (s.vcpus > max_vcpus)
        return fail("--vcpus: {} is more than the {} this host's KVM supports", s.vcpus, max_vcpus);
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
    for (const DiskSpec& d : s.disks)
        if (d.path.empty()) return fail("--disk: empty path");
    if (s.disks.size() > 16) return fail("--disk: at most 16 disks");
    if (s.rootfs && s.disks.empty()) return fail("--rootfs: no disk to use as the root");
    if (s.extra_cmdline.find('\n') != std::string::npos)
        return fail("--cmdline: contains a newline");
    return {};
}

std::uint64_t host_ram_bytes() {
    struct sysinfo si {};
    if (::sysinfo(&si) != 0) return 0;
    return std::uint64_t{si.totalram} * si.mem_unit;
}

}  // namespace stockade
