#include "runner/oci/bundle.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/mount.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "runner/oci/seccomp.hpp"

namespace stockade::oci {
namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 41> kCapabilities{"CAP_CHOWN",
                                                         "CAP_DAC_OVERRIDE",
                                                         "CAP_DAC_READ_SEARCH",
                                                         "CAP_FOWNER",
                                                         "CAP_FSETID",
                                                         "CAP_KILL",
                                                         "CAP_SETGID",
                                                         "CAP_SETUID",
                                                         "CAP_SETPCAP",
                                                         "CAP_LINUX_IMMUTABLE",
                                                         "CAP_NET_BIND_SERVICE",
                                                         "CAP_NET_BROADCAST",
                                                         "CAP_NET_ADMIN",
                                                         "CAP_NET_RAW",
                                                         "CAP_IPC_LOCK",
                                                         "CAP_IPC_OWNER",
                                                         "CAP_SYS_MODULE",
                                                         "CAP_SYS_RAWIO",
                                                         "CAP_SYS_CHROOT",
                                                         "CAP_SYS_PTRACE",
                                                         "CAP_SYS_PACCT",
                                                         "CAP_SYS_ADMIN",
                                                         "CAP_SYS_BOOT",
                                                         "CAP_SYS_NICE",
                                                         "CAP_SYS_RESOURCE",
                                                         "CAP_SYS_TIME",
                                                         "CAP_SYS_TTY_CONFIG",
                                                         "CAP_MKNOD",
                                                         "CAP_LEASE",
                                                         "CAP_AUDIT_WRITE",
                                                         "CAP_AUDIT_CONTROL",
                                                         "CAP_SETFCAP",
                                                         "CAP_MAC_OVERRIDE",
                                                         "CAP_MAC_ADMIN",
                                                         "CAP_SYSLOG",
                                                         "CAP_WAKE_ALARM",
                                                         "CAP_BLOCK_SUSPEND",
                                                         "CAP_AUDIT_READ",
                                                         "CAP_PERFMON",
                                                         "CAP_BPF",
                                                         "CAP_CHECKPOINT_RESTORE"};

constexpr std::array<std::string_view, 16> kRlimits{
    "RLIMIT_CPU",      "RLIMIT_FSIZE", "RLIMIT_DATA",   "RLIMIT_STACK",
    "RLIMIT_CORE",     "RLIMIT_RSS",   "RLIMIT_NPROC",  "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",  "RLIMIT_AS",    "RLIMIT_LOCKS",  "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE", "RLIMIT_NICE",  "RLIMIT_RTPRIO", "RLIMIT_RTTIME"};

// The file systems a container may have mounted inside the guest: the guest's own kernel
// makes each one fresh. "cgroup" is the guest's cgroup v2 hierarchy.
constexpr std::array<std::string_view, 7> kMountTypes{"proc",   "sysfs",   "tmpfs", "devpts",
                                                      "mqueue", "cgroup2", "cgroup"};

// The namespaces the VM is: a container asking for them gets the guest.
constexpr std::array<std::string_view, 6> kVmNamespaces{"pid",   "ipc",     "uts",
                                                        "mount", "network", "cgroup"};

template <std::size_t N>
std::optional<unsigned> index_of(const std::array<std::string_view, N>& names,
                                 std::string_view name) {
    for (std::size_t i = 0; i < N; ++i)
        if (names[i] == name) return static_cast<unsigned>(i);
    return std::nullopt;
}

// A string the guest's process file can carry (guest/abi.hpp kJobProcess): no tab, newline
// or NUL.
bool plain(std::string_view s) {
    return s.find_first_of(std::string_view("\t\n\0", 3)) == std::string_view::npos;
}

// An absolute path inside the container's root: no ".." component, nothing the process file
// cannot carry.
bool container_path(std::string_view p) {
    if (p.empty() || p.front() != '/' || !plain(p)) return false;
    for (std::size_t at = 0; at != std::string_view::npos;) {
        const auto next = p.find('/', at + 1);
        if (p.substr(at + 1, next == std::string_view::npos ? next : next - at - 1) == "..")
            return false;
        at = next;
    }
    return true;
}

Result<const json*> member(const json& j, std::string_view key, std::string_view path,
                           json::value_t type, std::string_view type_name) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null()) return nullptr;
    const bool ok = type == json::value_t::number_unsigned
                        ? it->is_number_unsigned()
                        : (type == json::value_t::number_integer ? it->is_number_integer()
                                                                 : it->type() == type);
    if (!ok) return fail("{}{}: not {}", path, key, type_name);
    return &*it;
}
Result<const json*> object(const json& j, std::string_view key, std::string_view path) {
    return member(j, key, path, json::value_t::object, "an object");
}
Result<const json*> array(const json& j, std::string_view key, std::string_view path) {
    return member(j, key, path, json::value_t::array, "an array");
}
Result<std::optional<std::string>> string(const json& j, std::string_view key,
                                          std::string_view path) {
    const json* v = STOCKADE_TRY(member(j, key, path, json::value_t::string, "a string"));
    if (!v) return std::nullopt;
    return v->get<std::string>();
}
Result<std::optional<std::uint64_t>> unsigned_of(const json& j, std::string_view key,
                                                 std::string_view path) {
    const json* v = STOCKADE_TRY(
        member(j, key, path, json::value_t::number_unsigned, "a non-negative integer"));
    if (!v) return std::nullopt;
    return v->get<std::uint64_t>();
}
Result<std::vector<std::string>> strings(const json& j, std::string_view key,
                                         std::string_view path) {
    const json* a = STOCKADE_TRY(array(j, key, path));
    std::vector<std::string> out;
    if (!a) return out;
    for (std::size_t i = 0; i < a->size(); ++i) {
        if (!(*a)[i].is_string()) return fail("{}{}[{}]: not a string", path, key, i);
        out.push_back((*a)[i].get<std::string>());
    }
    return out;
}
// A field stockade cannot honour: refused when it is there and not empty.
Result<> refuse_if_set(const json& j, std::string_view key, std::string_view path,
                       std::string_view why) {
    const auto it = j.find(key);
    if (it == j.end() || it->is_null() || (it->is_string() && it->get<std::string>().empty()) ||
        ((it->is_array() || it->is_object()) && it->empty()))
        return {};
    return fail("{}{}: {}", path, key, why);
}

Result<std::uint64_t> capability_set(const json& caps, std::string_view key) {
    std::uint64_t mask = 0;
    for (const std::string& name : STOCKADE_TRY(strings(caps, key, "process.capabilities."))) {
        const auto n = capability_number(name);
        if (!n) return fail("process.capabilities.{}: unknown capability {}", key, name);
        mask |= std::uint64_t{1} << *n;
    }
    return mask;
}

Result<> parse_user(const json& p, Process& out) {
    const json* user = STOCKADE_TRY(object(p, "user", "process."));
    if (!user) return {};
    const auto id = [&](std::string_view key) -> Result<std::uint32_t> {
        const auto v = STOCKADE_TRY(unsigned_of(*user, key, "process.user."));
        if (v && *v > 0xffff'fffe) return fail("process.user.{}: out of range", key);
        return static_cast<std::uint32_t>(v.value_or(0));
    };
    out.settings.uid = STOCKADE_TRY(id("uid"));
    out.settings.gid = STOCKADE_TRY(id("gid"));
    if (const json* gids = STOCKADE_TRY(array(*user, "additionalGids", "process.user.")))
        for (std::size_t i = 0; i < gids->size(); ++i) {
            const json& g = (*gids)[i];
            if (!g.is_number_unsigned() || g.get<std::uint64_t>() > 0xffff'fffe)
                return fail("process.user.additionalGids[{}]: not a group id", i);
            out.settings.groups.push_back(g.get<std::uint32_t>());
        }
    if (const auto it = user->find("umask"); it != user->end() && !it->is_null()) {
        if (!it->is_number_unsigned() || it->get<std::uint64_t>() > 0777)
            return fail("process.user.umask: not a mode (0 to 0777)");
        out.settings.umask = it->get<std::uint32_t>();
    }
    return refuse_if_set(*user, "username", "process.user.", "is for Windows containers");
}

Result<> parse_limits(const json& p, Process& out) {
    if (const json* rl = STOCKADE_TRY(array(p, "rlimits", "process.")))
        for (std::size_t i = 0; i < rl->size(); ++i) {
            const json& r = (*rl)[i];
            const std::string where = fmt::format("process.rlimits[{}].", i);
            if (!r.is_object()) return fail("process.rlimits[{}]: not an object", i);
            const auto type = STOCKADE_TRY(string(r, "type", where));
            const auto n = type ? rlimit_number(*type) : std::nullopt;
            if (!n) return fail("{}type: unknown resource {}", where, type.value_or("(none)"));
            const auto soft = STOCKADE_TRY(unsigned_of(r, "soft", where));
            const auto hard = STOCKADE_TRY(unsigned_of(r, "hard", where));
            if (!soft || !hard) return fail("process.rlimits[{}]: needs soft and hard", i);
            if (*soft > *hard) return fail("process.rlimits[{}]: soft above hard", i);
            out.settings.rlimits.push_back({*n, *soft, *hard});
        }
    // No capabilities object: none at all, as runc gives.
    out.settings.caps = JobCaps{};
    if (const json* caps = STOCKADE_TRY(object(p, "capabilities", "process."))) {
        JobCaps c;
        c.bounding = STOCKADE_TRY(capability_set(*caps, "bounding"));
        c.effective = STOCKADE_TRY(capability_set(*caps, "effective"));
        c.permitted = STOCKADE_TRY(capability_set(*caps, "permitted"));
        c.inheritable = STOCKADE_TRY(capability_set(*caps, "inheritable"));
        c.ambient = STOCKADE_TRY(capability_set(*caps, "ambient"));
        out.settings.caps = c;
    }
    if (const auto it = p.find("noNewPrivileges"); it != p.end() && !it->is_null()) {
        if (!it->is_boolean()) return fail("process.noNewPrivileges: not a boolean");
        out.settings.no_new_privileges = it->get<bool>();
    }
    if (const auto it = p.find("oomScoreAdj"); it != p.end() && !it->is_null()) {
        if (!it->is_number_integer() || it->get<std::int64_t>() < -1000 ||
            it->get<std::int64_t>() > 1000)
            return fail("process.oomScoreAdj: not an integer from -1000 to 1000");
        out.oom_score_adj = it->get<int>();
    }
    return {};
}

Result<Process> process_of(const json& p) {
    Process out;
    out.args = STOCKADE_TRY(strings(p, "args", "process."));
    if (out.args.empty() || out.args.front().empty())
        return fail("process.args: the command is missing");
    out.env = STOCKADE_TRY(strings(p, "env", "process."));
    for (std::size_t i = 0; i < out.env.size(); ++i) {
        const auto eq = out.env[i].find('=');
        if (eq == std::string::npos || eq == 0)
            return fail("process.env[{}]: {:?} is not NAME=value", i, out.env[i]);
    }
    out.cwd = STOCKADE_TRY(string(p, "cwd", "process.")).value_or("/");
    if (out.cwd.empty() || out.cwd.front() != '/')
        return fail("process.cwd: {:?} is not an absolute path", out.cwd);
    if (const auto it = p.find("terminal"); it != p.end() && !it->is_null()) {
        if (!it->is_boolean()) return fail("process.terminal: not a boolean");
        out.terminal = it->get<bool>();
    }
    if (const auto it = p.find("consoleSize"); it != p.end() && !it->is_null()) {
        const auto dimension = [&](const char* key) -> std::optional<std::uint16_t> {
            const auto v = it->is_object() ? it->find(key) : it->end();
            if (v == it->end() || !v->is_number_unsigned() || v->get<std::uint64_t>() > 0xffff)
                return std::nullopt;
            return static_cast<std::uint16_t>(v->get<std::uint64_t>());
        };
        const auto rows = dimension("height"), columns = dimension("width");
        if (!rows || !columns)
            return fail(
                "process.consoleSize: not {{\"height\": ROWS, \"width\": COLUMNS}} (0 to 65535)");
        out.console_size = std::pair{*rows, *columns};
    }
    STOCKADE_TRY_VOID(parse_user(p, out));
    STOCKADE_TRY_VOID(parse_limits(p, out));
    STOCKADE_TRY_VOID(refuse_if_set(p, "apparmorProfile", "process.",
                                    "the guest has no AppArmor; the VM runs under stockade's "
                                    "own confinement"));
    STOCKADE_TRY_VOID(refuse_if_set(p, "selinuxLabel", "process.",
                                    "the guest has no SELinux; the VM runs under stockade's own "
                                    "SELinux context"));
    STOCKADE_TRY_VOID(refuse_if_set(p, "ioPriority", "process.", "is not supported"));
    STOCKADE_TRY_VOID(refuse_if_set(p, "scheduler", "process.", "is not supported"));
    return out;
}

Result<> parse_mounts(const json& config, JobProcess& settings, Container& out) {
    settings.own_mounts = true;
    const json* mounts = STOCKADE_TRY(array(config, "mounts", ""));
    if (!mounts) return {};
    for (std::size_t i = 0; i < mounts->size(); ++i) {
        const json& m = (*mounts)[i];
        const std::string where = fmt::format("mounts[{}].", i);
        if (!m.is_object()) return fail("mounts[{}]: not an object", i);
        const auto dest = STOCKADE_TRY(string(m, "destination", where));
        if (!dest || !container_path(*dest))
            return fail("{}destination: not an absolute path without \"..\"", where);
        const std::string type = STOCKADE_TRY(string(m, "type", where)).value_or("");
        const std::string source = STOCKADE_TRY(string(m, "source", where)).value_or(type);
        const MountOptions opts = mount_options(STOCKADE_TRY(strings(m, "options", where)));
        if ((opts.bind || type == "bind" || type == "rbind") && *dest == "/dev/shm") {
            // The engine's shared memory directory (podman binds one in): the IPC namespace
            // is the VM's own, so the guest gets a tmpfs of its own there.
            settings.mounts.push_back({"tmpfs", "shm", *dest,
                                       opts.flags & (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY),
                                       "mode=1777,size=65536k"});
            continue;
        }
        if (opts.bind || type == "bind" || type == "rbind") {
            // A host file is copied in (read_copied_files); a directory is refused there.
            if (source.empty() || source.front() != '/')
                return fail("{}source: a bind mount needs an absolute host path", where);
            out.copy_sources.emplace_back(settings.mounts.size(), source);
            settings.mounts.push_back(
                {std::string(kCopyMount), "", *dest, opts.flags & MS_RDONLY, "644"});
            continue;
        }
        if (!index_of(kMountTypes, type))
            return fail(
                "{}type: {:?} at {} is not supported (proc, sysfs, tmpfs, devpts, mqueue, "
                "cgroup)",
                where, type, *dest);
        if (!plain(source) || !plain(opts.data))
            return fail("{}: a tab, newline or NUL in its source or options", where);
        settings.mounts.push_back(
            {type == "cgroup" ? "cgroup2" : type, source, *dest, opts.flags, opts.data});
    }
    return {};
}

Result<> parse_linux(const json& config, Container& out) {
    const json* linux = STOCKADE_TRY(object(config, "linux", ""));
    if (!linux) return {};
    const std::string_view at = "linux.";
    if (const json* ns = STOCKADE_TRY(array(*linux, "namespaces", at)))
        for (std::size_t i = 0; i < ns->size(); ++i) {
            const json& n = (*ns)[i];
            const std::string where = fmt::format("linux.namespaces[{}].", i);
            if (!n.is_object()) return fail("linux.namespaces[{}]: not an object", i);
            const std::string type = STOCKADE_TRY(string(n, "type", where)).value_or("");
            if (!index_of(kVmNamespaces, type))
                return fail("linux.namespaces[{}]: a {} namespace is not supported", i,
                            type.empty() ? "(typeless)" : type);
            const auto path = STOCKADE_TRY(string(n, "path", where));
            // A network namespace made with CNI is joined: the guest takes its interface.
            if (type == "network" && path && !path->empty()) {
                if (path->front() != '/')
                    return fail("{}path: {:?} is not an absolute path", where, *path);
                // It travels in --net netns=PATH, whose items a comma separates.
                if (std::ranges::any_of(*path, [](char c) {
                        return c == ',' || static_cast<unsigned char>(c) < 0x20;
                    }))
                    return fail("{}path: {:?} has a comma or a control character", where, *path);
                out.network_namespace = *path;
            } else if ((type == "ipc" || type == "uts") && path && !path->empty()) {
                out.pod_joins.push_back({i, type, *path});  // checked in resolve_pod
            } else {
                STOCKADE_TRY_VOID(refuse_if_set(
                    n, "path", where,
                    "joining an existing namespace is not supported (but a network one)"));
            }
        }
    for (std::string_view key : {"uidMappings", "gidMappings"})
        STOCKADE_TRY_VOID(refuse_if_set(*linux, key, at, "user namespaces are not supported"));
    if (const json* sysctl = STOCKADE_TRY(object(*linux, "sysctl", at)))
        for (auto it = sysctl->begin(); it != sysctl->end(); ++it) {
            if (!is_sysctl_name(it.key()) || !it->is_string() || !plain(it->get<std::string>()))
                return fail("linux.sysctl.{}: not a kernel parameter and its value", it.key());
            out.process.settings.sysctl.emplace_back(it.key(), it->get<std::string>());
        }
    if (const auto it = linux->find("seccomp"); it != linux->end() && !it->is_null())
        out.process.settings.seccomp = STOCKADE_TRY(compile_seccomp(*it));
    for (std::string_view key : {"devices", "intelRdt", "personality", "mountLabel", "timeOffsets"})
        STOCKADE_TRY_VOID(refuse_if_set(*linux, key, at, "is not supported"));
    for (const char* key : {"maskedPaths", "readonlyPaths"}) {
        auto paths = STOCKADE_TRY(strings(*linux, key, at));
        for (const std::string& p : paths)
            if (!container_path(p))
                return fail("linux.{}: {:?} is not an absolute path without \"..\"", key, p);
        (std::string_view(key) == "maskedPaths" ? out.process.settings.masked
                                                : out.process.settings.readonly) = paths;
    }
    const json* res = STOCKADE_TRY(object(*linux, "resources", at));
    if (!res) return {};
    for (auto it = res->begin(); it != res->end(); ++it) {
        const std::string& key = it.key();
        if (key == "devices") continue;  // no host device is reachable from the VM
        if (key == "memory") {
            if (!it->is_object()) return fail("linux.resources.memory: not an object");
            for (auto m = it->begin(); m != it->end(); ++m) {
                if (m.key() != "limit" && !m->is_null())
                    return fail("linux.resources.memory.{}: is not supported (only limit)",
                                m.key());
                if (m.key() != "limit" || m->is_null()) continue;
                if (!m->is_number_integer() || m->get<std::int64_t>() == 0)
                    return fail("linux.resources.memory.limit: not a positive integer");
                if (m->get<std::int64_t>() < 0) continue;  // -1: unlimited, the default size
                const std::uint64_t mib = (m->get<std::uint64_t>() + (1 << 20) - 1) >> 20;
                out.memory_mib = mib;
            }
            continue;
        }
        if (key == "pids") {
            // Counted in the guest, where the container's processes are (JobProcess::pids_max).
            if (!it->is_object()) return fail("linux.resources.pids: not an object");
            for (auto q = it->begin(); q != it->end(); ++q) {
                if (q.key() != "limit" && !q->is_null())
                    return fail("linux.resources.pids.{}: is not supported (only limit)", q.key());
                if (q.key() != "limit" || q->is_null()) continue;
                if (!q->is_number_integer())
                    return fail("linux.resources.pids.limit: not an integer");
                // -1 or 0: no limit; nor above the most pids a Linux kernel has.
                constexpr std::int64_t kPidMaxLimit = 4'194'304;
                if (q->get<std::int64_t>() > 0 && q->get<std::int64_t>() < kPidMaxLimit)
                    out.process.settings.pids_max = q->get<std::uint64_t>();
            }
            continue;
        }
        if (key == "cpu") {
            if (!it->is_object()) return fail("linux.resources.cpu: not an object");
            std::optional<std::int64_t> quota;
            std::uint64_t period = 100'000;
            for (auto c = it->begin(); c != it->end(); ++c) {
                if (c->is_null() || (c->is_string() && c->get<std::string>().empty())) continue;
                // The default weight (cgroup v2's 100) is what the sandbox's leaf has.
                if (c.key() == "shares" && c->is_number_unsigned() &&
                    (c->get<std::uint64_t>() == 0 || c->get<std::uint64_t>() == 1024))
                    continue;
                if (c.key() == "quota" && c->is_number_integer()) {
                    quota = c->get<std::int64_t>();
                } else if (c.key() == "period" && c->is_number_unsigned() &&
                           c->get<std::uint64_t>() > 0) {
                    period = c->get<std::uint64_t>();
                } else if (c.key() == "shares" || c.key() == "cpus" || c.key() == "mems" ||
                           c.key() == "quota" || c.key() == "period" ||
                           c.key() == "realtimeRuntime" || c.key() == "realtimePeriod" ||
                           c.key() == "idle" || c.key() == "burst") {
                    return fail(
                        "linux.resources.cpu.{}: {} is not supported (only quota, "
                        "period and the default shares, 1024)",
                        c.key(), c->dump());
                }
            }
            if (quota && *quota > 0)
                out.vcpus = static_cast<std::uint32_t>(std::max<std::uint64_t>(
                    1, (static_cast<std::uint64_t>(*quota) + period - 1) / period));
            continue;
        }
        if (!it->is_null() && !(it->is_array() && it->empty()) && !(it->is_object() && it->empty()))
            return fail(
                "linux.resources.{}: is not supported (only memory.limit, cpu.quota "
                "and cpu.period)",
                key);
    }
    return {};
}

Result<std::optional<std::uint64_t>> number_annotation(const Container& c, std::string_view key,
                                                       std::uint64_t max) {
    const auto it = c.annotations.find(std::string(key));
    if (it == c.annotations.end()) return std::nullopt;
    std::uint64_t v = 0;
    const std::string& s = it->second;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (s.empty() || ec != std::errc{} || end != s.data() + s.size() || v == 0 || v > max)
        return fail("annotations.{}: {:?} is not a number from 1 to {}", key, s, max);
    return v;
}

// "/proc/PID/ns/TYPE": how CRI names the pause container's namespaces to a pod's containers.
bool is_proc_namespace(std::string_view path, std::string_view type) {
    constexpr std::string_view kProc = "/proc/";
    if (!path.starts_with(kProc)) return false;
    path.remove_prefix(kProc.size());
    const std::size_t digits = path.find_first_not_of("0123456789");
    return digits != 0 && digits != std::string_view::npos &&
           path.substr(digits) == fmt::format("/ns/{}", type);
}

// A Kubernetes pod (CRI, containerd's or CRI-O's annotation): the pause container ("sandbox")
// holds the pod's network namespace instead of taking it; the pod's containers ("container")
// join it, and the pause container's IPC and UTS namespaces, by /proc/PID/ns/TYPE paths.
Result<> resolve_pod(Container& out) {
    std::string role;
    for (const char* key :
         {"io.kubernetes.cri.container-type", "io.kubernetes.cri-o.ContainerType"})
        if (const auto it = out.annotations.find(key); it != out.annotations.end())
            role = it->second;
    if (role == "sandbox") out.pod_network_namespace = std::exchange(out.network_namespace, {});
    for (const Container::Join& j : out.pod_joins)
        if (role != "container" || !is_proc_namespace(j.path, j.type))
            return fail(
                "linux.namespaces[{}].path: joining an existing {} namespace is not supported "
                "(but a network one, and a Kubernetes pod's IPC and UTS ones as /proc/PID/ns/{})",
                j.index, j.type, j.type);
    return {};
}

Result<> parse_annotations(const json& config, Container& out) {
    if (const json* a = STOCKADE_TRY(object(config, "annotations", "")))
        for (auto it = a->begin(); it != a->end(); ++it) {
            if (!it->is_string()) return fail("annotations.{}: not a string", it.key());
            out.annotations[it.key()] = it->get<std::string>();
        }
    const auto text = [&](std::string_view key) {
        const auto it = out.annotations.find(std::string(key));
        return it == out.annotations.end() ? std::string() : it->second;
    };
    out.kernel = text(kAnnotationKernel);
    out.initrd = text(kAnnotationInitrd);
    out.policy = text(kAnnotationPolicy);
    if (auto v = STOCKADE_TRY(number_annotation(out, kAnnotationVcpus, 254)))
        out.vcpus = static_cast<std::uint32_t>(*v);
    if (auto v = STOCKADE_TRY(number_annotation(out, kAnnotationMemory, 1 << 24)))
        out.memory_mib = *v;
    out.rootfs_size_mib = STOCKADE_TRY(number_annotation(out, kAnnotationRootfsSize, 1 << 24));
    return {};
}

}  // namespace

std::optional<unsigned> capability_number(std::string_view name) {
    return index_of(kCapabilities, name);
}

std::vector<std::string> capability_names() {
    return {kCapabilities.begin(), kCapabilities.end()};
}

std::optional<unsigned> rlimit_number(std::string_view name) {
    return index_of(kRlimits, name);
}

MountOptions mount_options(const std::vector<std::string>& options) {
    struct Flag {
        std::string_view name;
        std::uint64_t set, clear;
    };
    static constexpr Flag kFlags[] = {
        {"ro", MS_RDONLY, 0},
        {"rw", 0, MS_RDONLY},
        {"nosuid", MS_NOSUID, 0},
        {"suid", 0, MS_NOSUID},
        {"nodev", MS_NODEV, 0},
        {"dev", 0, MS_NODEV},
        {"noexec", MS_NOEXEC, 0},
        {"exec", 0, MS_NOEXEC},
        {"sync", MS_SYNCHRONOUS, 0},
        {"async", 0, MS_SYNCHRONOUS},
        {"dirsync", MS_DIRSYNC, 0},
        {"noatime", MS_NOATIME, 0},
        {"atime", 0, MS_NOATIME},
        {"nodiratime", MS_NODIRATIME, 0},
        {"diratime", 0, MS_NODIRATIME},
        {"relatime", MS_RELATIME, 0},
        {"norelatime", 0, MS_RELATIME},
        {"strictatime", MS_STRICTATIME, 0},
        {"nostrictatime", 0, MS_STRICTATIME},
        {"mand", MS_MANDLOCK, 0},
        {"nomand", 0, MS_MANDLOCK},
    };
    // Propagation belongs to the host's mount namespace; the guest's fresh mounts have
    // nothing to propagate to.
    static constexpr std::string_view kPropagation[] = {
        "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable"};
    MountOptions out;
    for (const std::string& o : options) {
        if (o == "bind" || o == "rbind") {
            out.bind = true;
            continue;
        }
        if (std::find(std::begin(kPropagation), std::end(kPropagation), o) !=
            std::end(kPropagation))
            continue;
        const auto f = std::find_if(std::begin(kFlags), std::end(kFlags),
                                    [&](const Flag& x) { return x.name == o; });
        if (f != std::end(kFlags)) {
            out.flags = (out.flags | f->set) & ~f->clear;
            continue;
        }
        if (!out.data.empty()) out.data += ',';
        out.data += o;
    }
    return out;
}

Result<> read_copied_files(Container& c) {
    for (const auto& [index, host] : c.copy_sources) {
        JobMount& m = c.process.settings.mounts.at(index);
        const std::string what =
            fmt::format("mounts: the bind mount of {} at {}", host, m.destination);
        // Looked at before it is opened for reading: opening a device can do things (a
        // watchdog starts, a tape rewinds, a tty becomes ours).
        auto path_fd = open_file(host, O_PATH | O_NOFOLLOW);
        if (!path_fd) return fail("{}: {}", what, path_fd.error().message);
        struct stat st {};
        if (::fstat(path_fd->get(), &st) != 0) return fail_sys(what);
        if (S_ISDIR(st.st_mode))
            return fail(
                "{}: a directory cannot be bound in: the guest cannot see the host's "
                "files",
                what);
        if (!S_ISREG(st.st_mode)) return fail("{}: not a regular file", what);
        auto fd = open_file(fmt::format("/proc/self/fd/{}", path_fd->get()), O_RDONLY | O_NOCTTY);
        if (!fd) return fail("{}: {}", what, fd.error().message);
        // Read to its end, whatever its size said: one byte past the limit is too large.
        std::string bytes;
        char buf[16384];
        for (;;) {
            const ssize_t n = ::read(fd->get(), buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail_sys(what);
            if (n == 0) break;
            bytes.append(buf, static_cast<std::size_t>(n));
            if (bytes.size() > kMaxCopyBytes)
                return fail("{}: larger than {} bytes, the most a file is copied in", what,
                            kMaxCopyBytes);
        }
        m.source = std::move(bytes);
        // The copy belongs to the guest's root: no set-id or sticky bit of a host file's owner
        // survives onto it.
        m.data = fmt::format("{:o}", st.st_mode & 0777);
    }
    return {};
}

Result<Process> parse_process(std::string_view text) {
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail("the process: not a JSON object");
    return process_of(j);
}

Result<Container> parse_config(std::string_view text, std::string_view bundle) {
    const json config = json::parse(text, nullptr, false);
    if (config.is_discarded() || !config.is_object()) return fail("config.json: not a JSON object");
    Container out;
    out.oci_version = STOCKADE_TRY(string(config, "ociVersion", "")).value_or("");
    if (!out.oci_version.starts_with("1."))
        return fail("ociVersion: {:?} is not a version 1 of the runtime spec",
                    out.oci_version.empty() ? "(none)" : out.oci_version);
    const json* process = STOCKADE_TRY(object(config, "process", ""));
    if (!process) return fail("process: missing (stockade runs the container's process)");
    out.process = STOCKADE_TRY(process_of(*process));
    for (const std::string& s : out.process.args)
        if (s.find('\0') != std::string::npos) return fail("process.args: a NUL byte");
    const json* root = STOCKADE_TRY(object(config, "root", ""));
    const auto root_path = root ? STOCKADE_TRY(string(*root, "path", "root.")) : std::nullopt;
    if (!root_path || root_path->empty()) return fail("root.path: missing");
    out.root = root_path->front() == '/' ? *root_path : fmt::format("{}/{}", bundle, *root_path);
    if (const auto it = root->find("readonly"); it != root->end() && !it->is_null()) {
        if (!it->is_boolean()) return fail("root.readonly: not a boolean");
        out.root_readonly = it->get<bool>();
    }
    // The disk is the container's own copy, attached writable so that missing mount points
    // can be made; the guest remounts it read-only once they are.
    out.process.settings.read_only_root = out.root_readonly;
    out.hostname = STOCKADE_TRY(string(config, "hostname", "")).value_or("");
    if (out.hostname.size() > 64) return fail("hostname: longer than 64 bytes");
    STOCKADE_TRY_VOID(refuse_if_set(config, "domainname", "", "is not supported"));
    STOCKADE_TRY_VOID(refuse_if_set(config, "hooks", "", "stockade runs no hooks"));
    for (std::string_view key : {"solaris", "windows", "vm", "zos"})
        STOCKADE_TRY_VOID(refuse_if_set(config, key, "", "is not a Linux container's"));
    STOCKADE_TRY_VOID(parse_mounts(config, out.process.settings, out));
    STOCKADE_TRY_VOID(parse_linux(config, out));
    STOCKADE_TRY_VOID(parse_annotations(config, out));
    STOCKADE_TRY_VOID(resolve_pod(out));
    return out;
}

std::vector<std::string> create_args(const Container& c, std::string_view id,
                                     std::string_view rootfs_image) {
    std::vector<std::string> a = {
        "--id",      std::string(id),
        "--rootfs",  std::string(rootfs_image),
        "--memory",  std::to_string(c.memory_mib.value_or(kDefaultMemoryMiB)),
        "--vcpus",   std::to_string(c.vcpus.value_or(1)),
        "--workdir", c.process.cwd};
    if (!c.hostname.empty()) a.insert(a.end(), {"--hostname", c.hostname});
    if (!c.kernel.empty()) a.insert(a.end(), {"--kernel", c.kernel});
    if (!c.initrd.empty()) a.insert(a.end(), {"--initrd", c.initrd});
    if (!c.policy.empty()) a.insert(a.end(), {"--policy", c.policy});
    if (!c.network_namespace.empty()) a.insert(a.end(), {"--net", "netns=" + c.network_namespace});
    for (const std::string& e : c.process.env)
        a.insert(a.end(), {"--env", e});
    a.push_back("--");
    a.insert(a.end(), c.process.args.begin(), c.process.args.end());
    return a;
}

}  // namespace stockade::oci
