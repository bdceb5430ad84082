// The policy model's pure parts: names, the defaults, sizes and the JSON writer.
// The reader is in policy_parse.cpp.
#include "policy/policy.hpp"

#include <sched.h>
#include <sys/resource.h>

#include <iterator>
#include <nlohmann/json.hpp>

#include "base/table.hpp"

namespace stockade::policy {

using nlohmann::json;

namespace {

// One row per value: its name in policy files and what it means to the kernel.
struct NamespaceRow {
    Namespace ns;
    std::string_view name;
    int clone_flag;
};
constexpr NamespaceRow kNamespaces[] = {
    {Namespace::mount, "mount", CLONE_NEWNS},       {Namespace::pid, "pid", CLONE_NEWPID},
    {Namespace::ipc, "ipc", CLONE_NEWIPC},          {Namespace::uts, "uts", CLONE_NEWUTS},
    {Namespace::cgroup, "cgroup", CLONE_NEWCGROUP}, {Namespace::net, "net", CLONE_NEWNET},
    {Namespace::user, "user", CLONE_NEWUSER},
};
static_assert(std::size(kNamespaces) == kAllNamespaces.size());

struct RlimitRow {
    Rlimit rlimit;
    std::string_view name;
    int resource;
    bool bytes;  // the limit is a size (policy files may write it with a unit)
};
constexpr RlimitRow kRlimits[] = {
    {Rlimit::nofile, "nofile", RLIMIT_NOFILE, false},
    {Rlimit::nproc, "nproc", RLIMIT_NPROC, false},
    {Rlimit::fsize, "fsize", RLIMIT_FSIZE, true},
    {Rlimit::core, "core", RLIMIT_CORE, true},
    {Rlimit::memlock, "memlock", RLIMIT_MEMLOCK, true},
};
static_assert(std::size(kRlimits) == kAllRlimits.size());

constexpr NamedValue<SelinuxMode> kSelinuxModes[] = {
    {SelinuxMode::required, "required"},
    {SelinuxMode::if_enabled, "if-enabled"},
    {SelinuxMode::off, "off"},
};

constexpr NamedValue<SeccompMode> kSeccompModes[] = {
    {SeccompMode::kill, "kill"},
    {SeccompMode::log, "log"},
};

const NamespaceRow* row_of(Namespace ns) {
    return find_row(kNamespaces, &NamespaceRow::ns, ns);
}

const RlimitRow* row_of(Rlimit r) {
    return find_row(kRlimits, &RlimitRow::rlimit, r);
}

}  // namespace

std::string_view namespace_name(Namespace ns) {
    const auto* row = row_of(ns);
    return row ? row->name : "?";
}

std::optional<Namespace> namespace_from_name(std::string_view name) {
    const auto* row = find_row(kNamespaces, &NamespaceRow::name, name);
    return row ? std::optional(row->ns) : std::nullopt;
}

int namespace_clone_flag(Namespace ns) {
    const auto* row = row_of(ns);
    return row ? row->clone_flag : 0;
}

int NamespaceSet::clone_flags() const {
    int flags = 0;
    for (Namespace ns : kAllNamespaces)
        if (has(ns)) flags |= namespace_clone_flag(ns);
    return flags;
}

std::vector<std::string> NamespaceSet::names() const {
    std::vector<std::string> out;
    for (Namespace ns : kAllNamespaces)
        if (has(ns)) out.emplace_back(namespace_name(ns));
    return out;
}

std::string_view rlimit_name(Rlimit r) {
    const auto* row = row_of(r);
    return row ? row->name : "?";
}

int rlimit_resource(Rlimit r) {
    const auto* row = row_of(r);
    return row ? row->resource : -1;
}

bool rlimit_is_bytes(Rlimit r) {
    const auto* row = row_of(r);
    return row && row->bytes;
}

std::string_view selinux_mode_name(SelinuxMode m) {
    return name_of(kSelinuxModes, m);
}

std::optional<SelinuxMode> selinux_mode_from_name(std::string_view name) {
    return value_named(kSelinuxModes, name);
}

std::string_view seccomp_mode_name(SeccompMode m) {
    return name_of(kSeccompModes, m, "kill");
}

std::optional<SeccompMode> seccomp_mode_from_name(std::string_view name) {
    return value_named(kSeccompModes, name);
}

Policy default_policy() {
    Policy p;
    // "nobody": owns no file on the host, and sandboxes that share it still cannot reach each
    // other (separate PID namespaces, no kill/ptrace in seccomp, not dumpable, MCS categories).
    p.uid = 65534;
    p.gid = 65534;
    // Everything but the user namespace: the runner starts as root and the jail needs real
    // root's powers only until the drop; "user" is for unprivileged starts.
    p.namespaces = {Namespace::mount, Namespace::pid,    Namespace::ipc,
                    Namespace::uts,   Namespace::cgroup, Namespace::net};
    p.jail.root_parent = "/run/stockade/jail";
    p.jail.mount_proc = false;
    p.cgroup.parent = "/sys/fs/cgroup/stockade";
    // Guest memory must never reach swap unasked (it may hold the workload's secrets);
    // pids.max bounds threads too: vCPUs + event loop + API with ample room.
    p.cgroup.memory_swap_max = 0;
    p.cgroup.pids_max = 128;
    // A core dump would be a copy of guest memory; 1024 fds cover disks, taps, vhost and
    // eventfds of a large sandbox; nothing the VMM does needs locked memory once VFIO has
    // mapped (before the jail).
    p.rlimits = {{Rlimit::nofile, 1024}, {Rlimit::core, 0}, {Rlimit::memlock, 0}};
    p.selinux = SelinuxPolicy{};
    p.seccomp_mode = SeccompMode::kill;
    return p;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    if (text.empty()) return std::nullopt;
    std::uint64_t shift = 0;
    switch (text.back()) {
        case 'K':
            shift = 10;
            break;
        case 'M':
            shift = 20;
            break;
        case 'G':
            shift = 30;
            break;
        case 'T':
            shift = 40;
            break;
        default:
            break;
    }
    if (shift != 0) text.remove_suffix(1);
    if (text.empty() || text.size() > 20) return std::nullopt;
    std::uint64_t value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
        if (value > (kUnlimited - digit) / 10) return std::nullopt;
        value = value * 10 + digit;
    }
    if (shift != 0 && value > (kUnlimited >> shift)) return std::nullopt;
    // kUnlimited itself is reserved for "max".
    std::uint64_t bytes = value << shift;
    if (bytes == kUnlimited) return std::nullopt;
    return bytes;
}

std::string format_size(std::uint64_t bytes) {
    static constexpr std::pair<std::uint64_t, char> kUnits[] = {
        {40, 'T'}, {30, 'G'}, {20, 'M'}, {10, 'K'}};
    if (bytes != 0)
        for (auto [shift, suffix] : kUnits)
            if (bytes % (std::uint64_t{1} << shift) == 0)
                return fmt::format("{}{}", bytes >> shift, suffix);
    return fmt::format("{}", bytes);
}

Result<> check_guest_memory_fits(const Policy& policy, std::uint64_t guest_bytes,
                                 std::uint64_t overhead_bytes) {
    const auto& max = policy.cgroup.memory_max;
    if (!max || *max == kUnlimited) return {};
    if (guest_bytes > *max || overhead_bytes > *max - guest_bytes)
        return fail(
            "policy: /cgroup/memory_max is {} but the guest needs {} of memory plus {} for the "
            "VMM: the sandbox would be killed by the OOM killer",
            format_size(*max), format_size(guest_bytes), format_size(overhead_bytes));
    return {};
}

namespace {

json limit_json(std::uint64_t v, bool bytes) {
    if (v == kUnlimited) return "max";
    if (bytes) return format_size(v);
    return v;
}

json rlimit_json(Rlimit r, std::uint64_t v) {
    if (v == kUnlimited) return "unlimited";
    if (rlimit_is_bytes(r) && v != 0) return format_size(v);
    return v;
}

}  // namespace

json to_json(const Policy& p) {
    json j = json::object();
    j["version"] = kPolicyVersion;
    j["user"] = {{"uid", p.uid}, {"gid", p.gid}};
    j["namespaces"] = p.namespaces.names();

    json binds = json::array();
    for (const auto& b : p.jail.binds)
        binds.push_back({{"source", b.source}, {"target", b.target}, {"writable", b.writable}});
    j["jail"] = {
        {"root_parent", p.jail.root_parent}, {"mount_proc", p.jail.mount_proc}, {"binds", binds}};

    json cg = {{"parent", p.cgroup.parent}};
    if (p.cgroup.memory_max) cg["memory_max"] = limit_json(*p.cgroup.memory_max, true);
    if (p.cgroup.memory_swap_max)
        cg["memory_swap_max"] = limit_json(*p.cgroup.memory_swap_max, true);
    if (p.cgroup.pids_max) cg["pids_max"] = limit_json(*p.cgroup.pids_max, false);
    if (p.cgroup.cpu_max) {
        const auto& c = *p.cgroup.cpu_max;
        cg["cpu_max"] = c.quota_us == kUnlimited ? fmt::format("max {}", c.period_us)
                                                 : fmt::format("{} {}", c.quota_us, c.period_us);
    }
    if (!p.cgroup.io_max.empty()) {
        json io = json::array();
        for (const auto& d : p.cgroup.io_max) {
            json e = {{"device", fmt::format("{}:{}", d.major, d.minor)}};
            if (d.rbps) e["rbps"] = limit_json(*d.rbps, true);
            if (d.wbps) e["wbps"] = limit_json(*d.wbps, true);
            if (d.riops) e["riops"] = limit_json(*d.riops, false);
            if (d.wiops) e["wiops"] = limit_json(*d.wiops, false);
            io.push_back(std::move(e));
        }
        cg["io_max"] = std::move(io);
    }
    j["cgroup"] = std::move(cg);

    json rl = json::object();
    for (const auto& [r, v] : p.rlimits)
        rl[std::string(rlimit_name(r))] = rlimit_json(r, v);
    j["rlimits"] = std::move(rl);

    json se = {{"mode", selinux_mode_name(p.selinux.mode)},
               {"user", p.selinux.user},
               {"role", p.selinux.role},
               {"type", p.selinux.type},
               {"sensitivity", p.selinux.sensitivity}};
    if (p.selinux.categories)
        se["categories"] = {p.selinux.categories->low, p.selinux.categories->high};
    else
        se["categories"] = "auto";
    j["selinux"] = std::move(se);

    json dg = json::object();
    if (p.digests.kernel) dg["kernel"] = to_hex(*p.digests.kernel);
    if (p.digests.initrd) dg["initrd"] = to_hex(*p.digests.initrd);
    if (!p.digests.disks.empty()) {
        json disks = json::object();
        for (const auto& [name, d] : p.digests.disks)
            disks[name] = to_hex(d);
        dg["disks"] = std::move(disks);
    }
    j["digests"] = std::move(dg);
    j["seccomp"] = {{"mode", seccomp_mode_name(p.seccomp_mode)}};
    j["vfio_devices"] = p.vfio_devices;
    if (p.api_socket_gid) j["api_socket_gid"] = *p.api_socket_gid;
    return j;
}

}  // namespace stockade::policy
