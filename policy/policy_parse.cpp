// The policy reader: JSON document to a validated Policy, every error naming its JSON path.
// Missing sections and fields keep default_policy()'s values.
#include <fcntl.h>

#include <algorithm>
#include <charconv>

#include "base/io.hpp"
#include "base/pci_address.hpp"
#include "policy/json_reader.hpp"
#include "policy/policy.hpp"

namespace stockade::policy {
namespace {

using detail::fail_at;
using detail::json;
using detail::ObjectReader;

constexpr std::uint64_t kMaxId = 4294967294;  // (uid_t)-1 means "unchanged" to setresuid

// A normalized absolute path: "/", no empty, "." or ".." components, no trailing slash.
bool is_clean_absolute(std::string_view p) {
    if (p.empty() || p.front() != '/' || p.find('\0') != std::string_view::npos) return false;
    if (p == "/") return true;
    if (p.back() == '/') return false;
    std::size_t pos = 1;
    while (pos <= p.size()) {
        std::size_t next = p.find('/', pos);
        if (next == std::string_view::npos) next = p.size();
        std::string_view part = p.substr(pos, next - pos);
        if (part.empty() || part == "." || part == "..") return false;
        pos = next + 1;
    }
    return true;
}

Result<std::string> read_path(const json& v, std::string_view path) {
    auto s = STOCKADE_TRY(detail::read_string(v, path));
    if (!is_clean_absolute(s))
        return fail_at(path, "expected an absolute path without \".\", \"..\" or \"//\", got {}",
                       detail::describe(v));
    return s;
}

// memory.max style: a size string or "max".
Result<std::uint64_t> read_size_or_max(const json& v, std::string_view path) {
    if (v.is_string()) {
        auto s = v.get<std::string>();
        if (s == "max") return kUnlimited;
        if (auto size = parse_size(s)) return *size;
    }
    return fail_at(path, "expected a string like \"512M\" or \"max\", got {}", detail::describe(v));
}

// pids.max style: an integer or "max".
Result<std::uint64_t> read_count_or_max(const json& v, std::string_view path, std::uint64_t max) {
    if (v.is_string() && v.get<std::string>() == "max") return kUnlimited;
    if (v.is_number_unsigned() && v.get<std::uint64_t>() >= 1 && v.get<std::uint64_t>() <= max)
        return v.get<std::uint64_t>();
    return fail_at(path, "expected an integer in 1..{} or \"max\", got {}", max,
                   detail::describe(v));
}

std::optional<std::uint64_t> to_uint(std::string_view s) {
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}

// "QUOTA PERIOD" as in cpu.max; QUOTA may be "max". The kernel takes 1 ms .. 1 s periods.
Result<CpuMax> read_cpu_max(const json& v, std::string_view path) {
    auto bad = [&] {
        return fail_at(path,
                       "expected a string \"QUOTA PERIOD\" in microseconds like \"200000 100000\" "
                       "(QUOTA >= 1000 or \"max\", PERIOD 1000..1000000), got {}",
                       detail::describe(v));
    };
    if (!v.is_string()) return bad();
    auto s = v.get<std::string>();
    auto space = s.find(' ');
    if (space == std::string::npos) return bad();
    std::string_view quota(s.data(), space);
    std::string_view period(s.data() + space + 1, s.size() - space - 1);
    CpuMax out;
    auto p = to_uint(period);
    if (!p || *p < 1000 || *p > 1000000) return bad();
    out.period_us = *p;
    if (quota == "max") {
        out.quota_us = kUnlimited;
    } else {
        auto q = to_uint(quota);
        if (!q || *q < 1000 || *q > 1000000ull * 1000000ull) return bad();
        out.quota_us = *q;
    }
    return out;
}

Result<IoMax> read_io_max(const json& v, const std::string& path) {
    auto obj = STOCKADE_TRY(ObjectReader::open(v, path));
    IoMax out;
    const json* dev = obj.get("device");
    if (!dev) return fail_at(obj.path_of("device"), "missing (a block device as \"MAJOR:MINOR\")");
    auto dev_s = STOCKADE_TRY(detail::read_string(*dev, obj.path_of("device")));
    auto colon = dev_s.find(':');
    auto major = colon == std::string::npos ? std::nullopt : to_uint(dev_s.substr(0, colon));
    auto minor = colon == std::string::npos ? std::nullopt : to_uint(dev_s.substr(colon + 1));
    if (!major || !minor || *major > 0xfff || *minor > 0xfffff)
        return fail_at(obj.path_of("device"), "expected \"MAJOR:MINOR\" like \"8:0\", got {}",
                       detail::describe(*dev));
    out.major = static_cast<std::uint32_t>(*major);
    out.minor = static_cast<std::uint32_t>(*minor);
    for (auto [key, field, bytes] :
         {std::tuple{"rbps", &out.rbps, true}, std::tuple{"wbps", &out.wbps, true},
          std::tuple{"riops", &out.riops, false}, std::tuple{"wiops", &out.wiops, false}}) {
        if (const json* e = obj.get(key))
            *field = bytes ? STOCKADE_TRY(read_size_or_max(*e, obj.path_of(key)))
                           : STOCKADE_TRY(read_count_or_max(*e, obj.path_of(key), kUnlimited - 1));
    }
    if (!out.rbps && !out.wbps && !out.riops && !out.wiops)
        return fail_at(path, "gives no limit (rbps, wbps, riops or wiops)");
    STOCKADE_TRY_VOID(obj.finish());
    return out;
}

Result<> read_user(const json& v, Policy& p) {
    auto obj = STOCKADE_TRY(ObjectReader::open(v, "/user"));
    if (const json* e = obj.get("uid"))
        p.uid =
            static_cast<std::uint32_t>(STOCKADE_TRY(detail::read_uint(*e, "/user/uid", 1, kMaxId)));
    if (const json* e = obj.get("gid"))
        p.gid =
            static_cast<std::uint32_t>(STOCKADE_TRY(detail::read_uint(*e, "/user/gid", 1, kMaxId)));
    return obj.finish();
}

Result<> read_namespaces(const json& v, Policy& p) {
    if (!v.is_array())
        return fail_at("/namespaces", "expected an array of namespace names, got {}",
                       detail::describe(v));
    NamespaceSet set;
    for (std::size_t i = 0; i < v.size(); ++i) {
        auto path = detail::child_path("/namespaces", i);
        auto name = STOCKADE_TRY(detail::read_string(v[i], path));
        auto ns = namespace_from_name(name);
        if (!ns)
            return fail_at(path,
                           "unknown namespace \"{}\" (known: mount, pid, ipc, uts, cgroup, net, "
                           "user)",
                           name);
        if (set.has(*ns)) return fail_at(path, "namespace \"{}\" listed twice", name);
        set.add(*ns);
    }
    p.namespaces = set;
    return {};
}

Result<> read_jail(const json& v, Policy& p) {
    auto obj = STOCKADE_TRY(ObjectReader::open(v, "/jail"));
    if (const json* e = obj.get("root_parent"))
        p.jail.root_parent = STOCKADE_TRY(read_path(*e, "/jail/root_parent"));
    if (p.jail.root_parent == "/") return fail_at("/jail/root_parent", "must not be \"/\"");
    if (const json* e = obj.get("mount_proc"))
        p.jail.mount_proc = STOCKADE_TRY(detail::read_bool(*e, "/jail/mount_proc"));
    if (const json* e = obj.get("binds")) {
        if (!e->is_array())
            return fail_at("/jail/binds", "expected an array, got {}", detail::describe(*e));
        p.jail.binds.clear();
        for (std::size_t i = 0; i < e->size(); ++i) {
            auto path = detail::child_path("/jail/binds", i);
            auto b = STOCKADE_TRY(ObjectReader::open((*e)[i], path));
            BindMount m;
            const json* src = b.get("source");
            const json* dst = b.get("target");
            if (!src) return fail_at(b.path_of("source"), "missing");
            if (!dst) return fail_at(b.path_of("target"), "missing");
            m.source = STOCKADE_TRY(read_path(*src, b.path_of("source")));
            m.target = STOCKADE_TRY(read_path(*dst, b.path_of("target")));
            if (m.target == "/") return fail_at(b.path_of("target"), "must not be \"/\"");
            if (m.target == "/proc" && p.jail.mount_proc)
                return fail_at(b.path_of("target"), "/proc is taken by mount_proc");
            if (const json* w = b.get("writable"))
                m.writable = STOCKADE_TRY(detail::read_bool(*w, b.path_of("writable")));
            STOCKADE_TRY_VOID(b.finish());
            for (const auto& other : p.jail.binds)
                if (other.target == m.target)
                    return fail_at(b.path_of("target"), "\"{}\" is already a bind target",
                                   m.target);
            p.jail.binds.push_back(std::move(m));
        }
    }
    return obj.finish();
}

Result<> read_cgroup(const json& v, Policy& p) {
    auto obj = STOCKADE_TRY(ObjectReader::open(v, "/cgroup"));
    auto& cg = p.cgroup;
    if (const json* e = obj.get("parent"))
        cg.parent = STOCKADE_TRY(read_path(*e, "/cgroup/parent"));
    if (const json* e = obj.get("memory_max")) {
        if (!e->is_string())
            return fail_at("/cgroup/memory_max", "expected a string like \"512M\", got {}",
                           detail::describe(*e));
        cg.memory_max = STOCKADE_TRY(read_size_or_max(*e, "/cgroup/memory_max"));
    }
    if (const json* e = obj.get("memory_swap_max"))
        cg.memory_swap_max = STOCKADE_TRY(read_size_or_max(*e, "/cgroup/memory_swap_max"));
    if (const json* e = obj.get("pids_max"))
        cg.pids_max = STOCKADE_TRY(read_count_or_max(*e, "/cgroup/pids_max", 4194304));
    if (const json* e = obj.get("cpu_max"))
        cg.cpu_max = STOCKADE_TRY(read_cpu_max(*e, "/cgroup/cpu_max"));
    if (const json* e = obj.get("io_max")) {
        if (!e->is_array())
            return fail_at("/cgroup/io_max", "expected an array, got {}", detail::describe(*e));
        cg.io_max.clear();
        for (std::size_t i = 0; i < e->size(); ++i) {
            auto path = detail::child_path("/cgroup/io_max", i);
            auto io = STOCKADE_TRY(read_io_max((*e)[i], path));
            for (const auto& other : cg.io_max)
                if (other.major == io.major && other.minor == io.minor)
                    return fail_at(path, "device {}:{} is listed twice", io.major, io.minor);
            cg.io_max.push_back(io);
        }
    }
    return obj.finish();
}

Result<> read_rlimits(const json& v, Policy& p) {
    auto obj = STOCKADE_TRY(ObjectReader::open(v, "/rlimits"));
    for (Rlimit r : kAllRlimits) {
        auto key = rlimit_name(r);
        const json* e = obj.get(key);
        if (!e) continue;
        auto path = obj.path_of(key);
        std::uint64_t value = 0;
        if (e->is_string() && e->get<std::string>() == "unlimited") {
            value = kUnlimited;
        } else if (e->is_number_unsigned() && e->get<std::uint64_t>() != kUnlimited) {
            value = e->get<std::uint64_t>();
        } else if (rlimit_is_bytes(r) && e->is_string() && parse_size(e->get<std::string>())) {
            value = *parse_size(e->get<std::string>());
        } else {
            return fail_at(path, "expected {}, got {}",
                           rlimit_is_bytes(r) ? "a size like \"64M\", a byte count or \"unlimited\""
                                              : "an integer or \"unlimited\"",
                           detail::describe(*e));
        }
        // A core dump of the VMM is a copy of guest memory.
        if (r == Rlimit::core && value != 0)
            return fail_at(path, "must be 0: a core dump would hold guest memory");
        if (r == Rlimit::nofile && value < 16)
            return fail_at(path, "{} is too few descriptors for any VMM (at least 16)", value);
        p.rlimits[r] = value;
    }
    return obj.finish();
}

bool is_selinux_identifier(std::string_view s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    return true;
}

Result<> read_selinux(const json& v, Policy& p) {
    auto obj = STOCKADE_TRY(ObjectReader::open(v, "/selinux"));
    auto& se = p.selinux;
    if (const json* e = obj.get("mode")) {
        auto m = STOCKADE_TRY(detail::read_string(*e, "/selinux/mode"));
        auto mode = selinux_mode_from_name(m);
        if (!mode)
            return fail_at("/selinux/mode",
                           "expected \"required\", \"if-enabled\" or \"off\", got {}",
                           detail::describe(*e));
        se.mode = *mode;
    }
    for (auto [key, field] :
         {std::pair{"user", &se.user}, std::pair{"role", &se.role}, std::pair{"type", &se.type}}) {
        if (const json* e = obj.get(key)) {
            auto s = STOCKADE_TRY(detail::read_string(*e, obj.path_of(key)));
            if (!is_selinux_identifier(s))
                return fail_at(obj.path_of(key), "expected an SELinux identifier, got {}",
                               detail::describe(*e));
            *field = std::move(s);
        }
    }
    if (const json* e = obj.get("sensitivity")) {
        auto s = STOCKADE_TRY(detail::read_string(*e, "/selinux/sensitivity"));
        auto n =
            s.size() > 1 && s[0] == 's' ? to_uint(std::string_view(s).substr(1)) : std::nullopt;
        if (!n || *n > 15)
            return fail_at("/selinux/sensitivity", "expected \"s0\"..\"s15\", got {}",
                           detail::describe(*e));
        se.sensitivity = std::move(s);
    }
    if (const json* e = obj.get("categories")) {
        if (e->is_string() && e->get<std::string>() == "auto") {
            se.categories.reset();
        } else {
            auto bad = [&] {
                return fail_at("/selinux/categories",
                               "expected \"auto\" or two different category numbers in 0..{} "
                               "like [12, 345], got {}",
                               kMcsCategories - 1, detail::describe(*e));
            };
            if (!e->is_array() || e->size() != 2) return bad();
            const json& a = (*e)[0];
            const json& b = (*e)[1];
            if (!a.is_number_unsigned() || !b.is_number_unsigned()) return bad();
            auto x = a.get<std::uint64_t>(), y = b.get<std::uint64_t>();
            if (x >= kMcsCategories || y >= kMcsCategories || x == y) return bad();
            se.categories = McsPair{static_cast<std::uint16_t>(std::min(x, y)),
                                    static_cast<std::uint16_t>(std::max(x, y))};
        }
    }
    return obj.finish();
}

Result<Sha256> read_digest(const json& v, std::string_view path) {
    if (v.is_string())
        if (auto d = parse_sha256_hex(v.get<std::string>())) return *d;
    return fail_at(path, "expected a SHA-256 digest as 64 hex digits, got {}", detail::describe(v));
}

Result<> read_digests(const json& v, Policy& p) {
    auto obj = STOCKADE_TRY(ObjectReader::open(v, "/digests"));
    if (const json* e = obj.get("kernel"))
        p.digests.kernel = STOCKADE_TRY(read_digest(*e, "/digests/kernel"));
    if (const json* e = obj.get("initrd"))
        p.digests.initrd = STOCKADE_TRY(read_digest(*e, "/digests/initrd"));
    if (const json* e = obj.get("disks")) {
        auto disks = STOCKADE_TRY(ObjectReader::open(*e, "/digests/disks"));
        p.digests.disks.clear();
        for (const auto& [name, d] : e->items()) {
            auto path = disks.path_of(name);
            (void)disks.get(name);
            if (name.empty()) return fail_at(path, "a disk name must not be empty");
            p.digests.disks[name] = STOCKADE_TRY(read_digest(d, path));
        }
    }
    return obj.finish();
}

Result<> read_seccomp(const json& v, Policy& p) {
    auto obj = STOCKADE_TRY(ObjectReader::open(v, "/seccomp"));
    if (const json* e = obj.get("mode")) {
        auto m = STOCKADE_TRY(detail::read_string(*e, "/seccomp/mode"));
        auto mode = seccomp_mode_from_name(m);
        if (!mode)
            return fail_at("/seccomp/mode", "expected \"kill\" or \"log\", got {}",
                           detail::describe(*e));
        p.seccomp_mode = *mode;
    }
    return obj.finish();
}

Result<> read_vfio_devices(const json& v, Policy& p) {
    if (!v.is_array())
        return fail_at("/vfio_devices",
                       "expected a list of PCI addresses like \"0000:01:00.0\", got {}",
                       detail::describe(v));
    p.vfio_devices.clear();
    for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string path = fmt::format("/vfio_devices/{}", i);
        const std::string text = STOCKADE_TRY(detail::read_string(v[i], path));
        auto address = parse_pci_address(text);
        if (!address) return fail_at(path, "{}", address.error().message);
        p.vfio_devices.push_back(address->str());
    }
    std::sort(p.vfio_devices.begin(), p.vfio_devices.end());
    if (auto d = std::adjacent_find(p.vfio_devices.begin(), p.vfio_devices.end());
        d != p.vfio_devices.end())
        return fail_at("/vfio_devices", "{} is listed twice", *d);
    return {};
}

}  // namespace

Result<Policy> parse_policy(std::string_view json_text) {
    auto doc = STOCKADE_TRY(detail::parse_json_strict(json_text));
    auto top = STOCKADE_TRY(ObjectReader::open(doc, ""));
    const json* version = top.get("version");
    if (!version)
        return fail_at("/version", "missing (this stockade reads version {})", kPolicyVersion);
    if (!version->is_number_unsigned() || version->get<std::uint64_t>() != kPolicyVersion)
        return fail_at("/version", "unsupported version {} (this stockade reads version {})",
                       detail::describe(*version), kPolicyVersion);

    Policy p = default_policy();
    if (const json* e = top.get("user")) STOCKADE_TRY_VOID(read_user(*e, p));
    if (const json* e = top.get("namespaces")) STOCKADE_TRY_VOID(read_namespaces(*e, p));
    if (const json* e = top.get("jail")) STOCKADE_TRY_VOID(read_jail(*e, p));
    if (const json* e = top.get("cgroup")) STOCKADE_TRY_VOID(read_cgroup(*e, p));
    if (const json* e = top.get("rlimits")) STOCKADE_TRY_VOID(read_rlimits(*e, p));
    if (const json* e = top.get("selinux")) STOCKADE_TRY_VOID(read_selinux(*e, p));
    if (const json* e = top.get("digests")) STOCKADE_TRY_VOID(read_digests(*e, p));
    if (const json* e = top.get("seccomp")) STOCKADE_TRY_VOID(read_seccomp(*e, p));
    if (const json* e = top.get("vfio_devices")) STOCKADE_TRY_VOID(read_vfio_devices(*e, p));
    if (const json* e = top.get("api_socket_gid"))
        p.api_socket_gid = static_cast<std::uint32_t>(
            STOCKADE_TRY(detail::read_uint(*e, "/api_socket_gid", 0, kMaxId)));
    STOCKADE_TRY_VOID(top.finish());

    // Cross-field rules.
    if (p.jail.mount_proc && !p.namespaces.has(Namespace::pid))
        return fail_at("/jail/mount_proc",
                       "a fresh /proc needs the \"pid\" namespace (else it shows the host's "
                       "processes)");
    // The jail itself (a private tmpfs root, pivot_root) lives in the sandbox's own mount
    // namespace; without one there would be no jail.
    if (!p.namespaces.has(Namespace::mount))
        return fail_at("/namespaces", "must include \"mount\": the jail root needs it");
    if (p.cgroup.memory_swap_max && *p.cgroup.memory_swap_max != 0 && !p.cgroup.memory_max)
        return fail_at("/cgroup/memory_swap_max", "swap is allowed but memory_max is not set");
    return p;
}

Result<Policy> load_policy_file(const std::string& path) {
    auto text = read_text_file(path, 1u << 20);
    if (!text) return std::unexpected(std::move(text).error().context("reading policy"));
    auto p = parse_policy(*text);
    if (!p) return std::unexpected(std::move(p).error().context(path));
    return p;
}

}  // namespace stockade::policy
