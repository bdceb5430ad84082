// stockade-init: PID 1 inside the guest.
//
// Mounts the pseudo file systems, loads the kernel modules the image lists, runs the job
// the runner appended to the initramfs with its stdio on vsock streams to the host (or on
// the console as its terminal), and reports the workload's exit status (on vsock, or
// through the agent port; guest/abi.hpp) before powering off. Over vsock it also serves the
// host's requests on the control stream (guest/control.hpp): start, signal, power off, exec,
// and copies the workload's stdio pipes to and from the host's streams, which a restored
// sandbox's supervisor has it connect again (a `restored` message on PID 1's own listener, with
// the host's clock and entropy for the kernel's CRNG).
// Statically linked and dependency-free: it is the only program the guest must have.

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <linux/random.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/io.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
// after sys/socket.h, which it needs
#include <linux/vm_sockets.h>

#include <array>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "guest/abi.hpp"
#include "guest/control.hpp"
#include "guest/job.hpp"

namespace abi = stockade::guest_abi;
namespace control = stockade::guest_control;
using stockade::Job;

namespace {

constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

bool g_port_ok = false;

void say(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void say(const char* fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    std::string line = "stockade-init: ";
    line.append(buf, std::min<std::size_t>(static_cast<std::size_t>(n), sizeof buf - 1));
    line.push_back('\n');
    (void)!::write(STDERR_FILENO, line.data(), line.size());
}

void report(abi::Event e, std::uint8_t arg = 0) {
    if (g_port_ok) outl(abi::encode(e, arg), abi::kAgentPort);
}

[[noreturn]] void power_off(int how = RB_POWER_OFF) {
    ::sync();
    ::reboot(how);
    for (;;)
        ::pause();  // PID 1 must never return
}

[[noreturn]] void fail_with(abi::InitFailure why, const std::string& message) {
    say("%s", message.c_str());
    report(abi::Event::init_failed, static_cast<std::uint8_t>(why));
    power_off();
}

[[noreturn]] void fail(abi::InitFailure why, const char* what) {
    fail_with(why, std::string(what) + ": " + std::strerror(errno));
}

bool read_file(const std::string& path, std::string& out) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[4096];
    ssize_t n;
    out.clear();
    while ((n = ::read(fd, buf, sizeof buf)) > 0)
        out.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return n == 0;
}

std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> parts;
    std::size_t start = 0;
    while (start < s.size()) {
        std::size_t end = s.find(sep, start);
        if (end == std::string::npos) end = s.size();
        if (end > start) parts.emplace_back(s, start, end - start);
        start = end + 1;
    }
    return parts;
}

void mount_or_fail(const char* src, const char* target, const char* type, unsigned long flags,
                   const char* data) {
    ::mkdir(target, 0755);
    if (::mount(src, target, type, flags, data) != 0 && errno != EBUSY)
        fail(abi::InitFailure::mount, target);
}

// Loads a module and its dependencies from the list the image builder wrote.
void load_module(const std::string& name) {
    std::string list;
    if (!read_file(std::string(abi::kModuleListDir) + "/" + name, list)) return;
    for (const std::string& path : split(list, '\n')) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            say("module %s: %s", path.c_str(), std::strerror(errno));
            continue;
        }
        if (::syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST)
            say("loading %s: %s", path.c_str(), std::strerror(errno));
        ::close(fd);
    }
}

bool file_equals(const std::string& path, std::string_view want) {
    std::string v;
    if (!read_file(path, v)) return false;
    while (!v.empty() && (v.back() == '\n' || v.back() == ' '))
        v.pop_back();
    return v == want;
}

// A sysfs id such as "0x1af4\n"; -1 when the file is missing or holds no number.
long sysfs_id(const std::string& path) {
    std::string v;
    if (!read_file(path, v)) return -1;
    char* end = nullptr;
    const unsigned long id = std::strtoul(v.c_str(), &end, 16);
    if (end == v.c_str() || (*end != '\0' && *end != '\n') || id > 0xffff) return -1;
    return static_cast<long>(id);
}

// Drivers for the virtio devices the runner attached (guest/abi.hpp's table).
void load_device_modules() {
    bool virtio = false;
    if (DIR* d = ::opendir("/sys/bus/pci/devices")) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.' && sysfs_id(std::string("/sys/bus/pci/devices/") + e->d_name +
                                                "/vendor") == abi::kVirtioPciVendor)
                virtio = true;
        ::closedir(d);
    }
    if (!virtio) return;
    load_module(std::string(abi::kVirtioTransportModule));
    if (DIR* d = ::opendir("/sys/bus/virtio/devices")) {
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;
            const long id =
                sysfs_id(std::string("/sys/bus/virtio/devices/") + e->d_name + "/device");
            if (id < 0) continue;
            const std::string_view module =
                abi::virtio_driver_module(static_cast<std::uint32_t>(id));
            if (!module.empty()) load_module(std::string(module));
        }
        ::closedir(d);
    }
}

// Canonical mode with every special character but VEOF disabled: output bytes pass
// unchanged, nothing is echoed, and the runner can signal end of input.
bool configure_console(int fd) {
    termios t{};
    if (::tcgetattr(fd, &t) != 0) return false;
    t.c_iflag = 0;
    t.c_oflag = 0;
    t.c_lflag = ICANON;
    t.c_cflag = (t.c_cflag & ~(CSIZE | PARENB | CSTOPB)) | CS8 | CREAD | CLOCAL;
    for (cc_t& c : t.c_cc)
        c = _POSIX_VDISABLE;
    t.c_cc[VEOF] = abi::kEndOfInput;
    t.c_cc[VMIN] = 1;
    return ::tcsetattr(fd, TCSANOW, &t) == 0;
}

// Sets an interface's IPv4 address and netmask and brings it up (the kernel adds the
// prefix route). ifname empty: only brings it up.
bool interface_up(int sock, const std::string& ifname, const in_addr* addr, unsigned prefix) {
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
    if (addr != nullptr) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
        sin->sin_family = AF_INET;
        sin->sin_addr = *addr;
        if (::ioctl(sock, SIOCSIFADDR, &ifr) != 0) return false;
        sin->sin_addr.s_addr = htonl(prefix == 0 ? 0 : ~0u << (32 - prefix));
        if (::ioctl(sock, SIOCSIFNETMASK, &ifr) != 0) return false;
    }
    if (::ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) return false;
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
    return ::ioctl(sock, SIOCSIFFLAGS, &ifr) == 0;
}

// The job's network ("MAC A.B.C.D/N", checked by the parser): finds the interface with that
// MAC, gives it the address and brings it and lo up.
void configure_network(const stockade::JobNet& net) {
    const auto prefix = stockade::parse_ipv4_prefix(net.address);
    if (!prefix) fail_with(abi::InitFailure::network, "the job's network address " + net.address);
    in_addr addr{};
    addr.s_addr = htonl(prefix->address);
    std::string ifname;
    if (DIR* d = ::opendir("/sys/class/net")) {
        while (dirent* e = ::readdir(d))
            if (e->d_name[0] != '.' &&
                file_equals(std::string("/sys/class/net/") + e->d_name + "/address", net.mac))
                ifname = e->d_name;
        ::closedir(d);
    }
    if (ifname.empty()) fail_with(abi::InitFailure::network, "no interface with MAC " + net.mac);
    const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) fail(abi::InitFailure::network, "socket");
    if (!interface_up(sock, "lo", nullptr, 0)) say("lo: %s", std::strerror(errno));
    if (!interface_up(sock, ifname, &addr, prefix->length))
        fail(abi::InitFailure::network, ifname.c_str());
    if (!net.gateway.empty()) {
        // A route to the gateway on the link first: CNI plugins that give a /32 address
        // (Calico, Cilium) have a gateway outside it. Then the default route through it.
        const auto gw = stockade::parse_ipv4_prefix(net.gateway + "/32");
        if (!gw) fail_with(abi::InitFailure::network, "the job's gateway " + net.gateway);
        for (bool on_link : {true, false}) {
            rtentry route{};
            auto* dst = reinterpret_cast<sockaddr_in*>(&route.rt_dst);
            auto* mask = reinterpret_cast<sockaddr_in*>(&route.rt_genmask);
            auto* via = reinterpret_cast<sockaddr_in*>(&route.rt_gateway);
            dst->sin_family = mask->sin_family = via->sin_family = AF_INET;
            if (on_link) {
                dst->sin_addr.s_addr = htonl(gw->address);
                mask->sin_addr.s_addr = 0xffffffffu;
                route.rt_flags = RTF_UP | RTF_HOST;
                route.rt_dev = ifname.data();
            } else {
                via->sin_addr.s_addr = htonl(gw->address);
                route.rt_flags = RTF_UP | RTF_GATEWAY;
            }
            if (::ioctl(sock, SIOCADDRT, &route) != 0 && !(on_link && errno == EEXIST))
                fail(abi::InitFailure::network,
                     ((on_link ? "a route to " : "a default route via ") + net.gateway).c_str());
        }
    }
    ::close(sock);
}

// The job the runner appended to the initramfs, through the one parser of its format
// (guest/job.hpp). Anything missing or malformed ends the boot with InitFailure::bad_job.
Job load_job() {
    stockade::JobFiles files;
    for (const stockade::JobFile& f : stockade::kJobFiles) {
        const std::string path(f.path);
        std::string data;
        if (read_file(path, data))
            files.*f.member = std::move(data);
        else if (errno != ENOENT)
            fail(abi::InitFailure::bad_job, path.c_str());
    }
    auto job = stockade::parse_job_files(files);
    if (!job) fail_with(abi::InitFailure::bad_job, "the job archive: " + job.error());
    return std::move(*job);
}

// The workload's root disk is mounted here, with proc, sys and dev inside it.
constexpr const char* kNewRoot = "/run/stockade-root";

// The container's cgroup in the guest (JobProcess::pids_max): the workload and every exec
// join it before their command runs, so the pids controller counts them all.
constexpr const char* kCgroupRoot = "/run/stockade-cgroup";
constexpr const char* kContainerCgroup = "/run/stockade-cgroup/container";

bool write_text(const std::string& path, const std::string& text) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    const bool ok =
        fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    if (fd >= 0) ::close(fd);
    return ok;
}

// PID 1, at boot: cgroup v2 where nothing in the container sees it, the pids controller for
// the root's children, and the container's cgroup with its limit.
void make_container_cgroup(std::uint64_t pids_max) {
    ::mkdir(kCgroupRoot, 0700);
    if (::mount("cgroup2", kCgroupRoot, "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) !=
            0 ||
        !write_text(std::string(kCgroupRoot) + "/cgroup.subtree_control", "+pids") ||
        (::mkdir(kContainerCgroup, 0755) != 0 && errno != EEXIST) ||
        !write_text(std::string(kContainerCgroup) + "/pids.max", std::to_string(pids_max)))
        fail(abi::InitFailure::mount, "the container's cgroup (its pids limit)");
}

// In a child about to run the container's command.
void join_container_cgroup(const Job& job) {
    if (!job.process || !job.process->pids_max) return;
    if (!write_text(std::string(kContainerCgroup) + "/cgroup.procs", "0")) {
        say("joining the container's cgroup: %s", std::strerror(errno));
        ::_exit(126);
    }
}
constexpr const char* kRootMounts[] = {"/proc", "/sys", "/dev"};

[[noreturn]] void fail_root(const std::string& what) {
    say("root disk: %s: %s", what.c_str(), std::strerror(errno));
    report(abi::Event::init_failed, static_cast<std::uint8_t>(abi::InitFailure::rootfs));
    power_off();
}

// An O_PATH descriptor of `path` (absolute) inside the new root, resolved as if that root
// were / (RESOLVE_IN_ROOT: neither ".." nor a symlink of the image leads out of it); with
// `make`, the directories missing on the way are made. -1 with errno set on failure.
int open_in_root(int root, const std::string& path, bool make) {
    open_how how{};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT;
    const auto open2 = [&](const std::string& rel) {
        return static_cast<int>(
            ::syscall(SYS_openat2, root, rel.empty() ? "." : rel.c_str(), &how, sizeof how));
    };
    const std::string rel =
        path.substr(path.find_first_not_of('/') == std::string::npos ? path.size()
                                                                     : path.find_first_not_of('/'));
    if (!make) return open2(rel);
    std::string walked;
    int fd = open2("");
    for (std::size_t at = 0; fd >= 0 && at < rel.size();) {
        std::size_t end = rel.find('/', at);
        if (end == std::string::npos) end = rel.size();
        const std::string name = rel.substr(at, end - at);
        at = end + 1;
        if (name.empty()) continue;
        const std::string next = walked.empty() ? name : walked + "/" + name;
        int child = open2(next);
        if (child < 0 && errno == ENOENT && ::mkdirat(fd, name.c_str(), 0755) == 0)
            child = open2(next);
        ::close(fd);
        fd = child;
        walked = next;
    }
    return fd;
}

// "/proc/self/fd/N": what mount(2) takes for a descriptor's file.
std::string fd_path(int fd) {
    return "/proc/self/fd/" + std::to_string(fd);
}

// The nodes and links a container's /dev has when it is a fresh tmpfs (as runc makes them),
// made in the directory `dev` refers to.
void populate_dev(int dev_path_fd) {
    const int dev = ::openat(dev_path_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dev < 0) return;
    struct Node {
        const char* name;
        unsigned major, minor;
    };
    for (const Node& n : {Node{"null", 1, 3}, Node{"zero", 1, 5}, Node{"full", 1, 7},
                          Node{"random", 1, 8}, Node{"urandom", 1, 9}, Node{"tty", 5, 0}})
        if (::mknodat(dev, n.name, S_IFCHR | 0666, makedev(n.major, n.minor)) == 0)
            ::fchmodat(dev, n.name, 0666, 0);  // past the umask
    for (auto [name, to] : {std::pair{"fd", "/proc/self/fd"},
                            {"stdin", "/proc/self/fd/0"},
                            {"stdout", "/proc/self/fd/1"},
                            {"stderr", "/proc/self/fd/2"},
                            {"ptmx", "pts/ptmx"},
                            {"core", "/proc/kcore"}})
        (void)::symlinkat(to, dev, name);
    ::close(dev);
}

// The mount flags a bind remount must keep (it replaces them all).
unsigned long kept_flags(const std::string& path) {
    struct statvfs sv {};
    if (::statvfs(path.c_str(), &sv) != 0) return 0;
    unsigned long flags = 0;
    if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
    if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
    return flags;
}

// Binds `path` (inside the root) onto itself read-only, keeping its other flags. Skipped when
// the image lacks it.
void make_read_only(int root, const std::string& path) {
    int target = open_in_root(root, path, false);
    if (target < 0) return;
    const std::string at = fd_path(target);
    if (::mount(at.c_str(), at.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
        fail_root("making " + path + " read-only");
    ::close(target);
    // The bind mount now at `path`, remounted read-only with the flags it had.
    target = open_in_root(root, path, false);
    const std::string bound = fd_path(target);
    if (target < 0 || ::mount(nullptr, bound.c_str(), nullptr,
                              MS_BIND | MS_REMOUNT | MS_RDONLY | kept_flags(bound), nullptr) != 0)
        fail_root("making " + path + " read-only");
    ::close(target);
}

// A host file's content (an OCI bind mount of a file) written at its destination inside the
// root, replacing what the image has there; read-only when asked.
void copy_in(int root, const stockade::JobMount& m) {
    const auto slash = m.destination.rfind('/');
    const std::string dir = m.destination.substr(0, slash), name = m.destination.substr(slash + 1);
    const int parent = open_in_root(root, dir.empty() ? "/" : dir, true);
    if (parent < 0 || name.empty()) fail_root("making the directory of " + m.destination);
    const int dirfd = ::openat(parent, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ::close(parent);
    const mode_t mode = static_cast<mode_t>(std::strtoul(m.data.c_str(), nullptr, 8));
    (void)::unlinkat(dirfd, name.c_str(), 0);
    const int fd =
        ::openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    ::close(dirfd);
    if (fd < 0) fail_root("writing " + m.destination);
    for (std::size_t done = 0; done < m.source.size();) {
        const ssize_t n = ::write(fd, m.source.data() + done, m.source.size() - done);
        if (n <= 0) fail_root("writing " + m.destination);
        done += static_cast<std::size_t>(n);
    }
    if (::fchmod(fd, mode) != 0) fail_root("the mode of " + m.destination);
    ::close(fd);
    if (m.flags & MS_RDONLY) make_read_only(root, m.destination);
}

// The job's own mounts inside the root disk, in order, then its masked and read-only paths
// (a path the image lacks is skipped, as runc does). Every path is resolved inside the root
// disk (open_in_root) and mounted through its descriptor, so nothing lands outside it.
void mount_own(const Job& job) {
    const stockade::JobProcess& p = *job.process;
    const int root = ::open(kNewRoot, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (root < 0) fail_root("opening the root disk");
    for (const stockade::JobMount& m : p.mounts) {
        if (m.type == stockade::kCopyMount) {
            copy_in(root, m);
            continue;
        }
        int target = open_in_root(root, m.destination, true);
        if (target < 0) fail_root("making " + m.destination);
        if (::mount(m.source.c_str(), fd_path(target).c_str(), m.type.c_str(), m.flags,
                    m.data.empty() ? nullptr : m.data.c_str()) != 0)
            fail_root("mounting " + m.type + " at " + m.destination);
        ::close(target);
        if (m.destination == "/dev" && m.type == "tmpfs") {
            target = open_in_root(root, m.destination, false);  // the new tmpfs
            if (target >= 0) populate_dev(target);
            ::close(target);
        }
    }
    for (const std::string& path : p.masked) {
        const int target = open_in_root(root, path, false);
        if (target < 0) continue;
        struct stat st {};
        const bool dir = ::fstat(target, &st) == 0 && S_ISDIR(st.st_mode);
        const int r =
            dir ? ::mount("tmpfs", fd_path(target).c_str(), "tmpfs", MS_RDONLY, "size=0")
                : ::mount("/dev/null", fd_path(target).c_str(), nullptr, MS_BIND, nullptr);
        if (r != 0) fail_root("masking " + path);
        ::close(target);
    }
    for (const std::string& path : p.readonly)
        make_read_only(root, path);
    for (const auto& [key, value] : p.sysctl) {
        std::string file = "/proc/sys/" + key;
        for (std::size_t i = 10; i < file.size(); ++i)
            if (file[i] == '.') file[i] = '/';
        if (!write_text(file, value)) fail_root("setting the kernel parameter " + key);
    }
    ::close(root);
}

// Mounts the job's ext4 root disk and the pseudo file systems inside it; the workload is
// chrooted into it. Reports InitFailure::rootfs when any of it fails.
void mount_root(const Job& job) {
    load_module(std::string(abi::kRootFsModule));
    ::mkdir(kNewRoot, 0755);
    const bool own = job.process && job.process->own_mounts;
    const unsigned long flags = MS_NOATIME | (job.root.read_only ? MS_RDONLY : 0);
    // The disk's node appears once virtio_blk has probed it; that is normally done by now.
    int tries = 0;
    while (::mount(job.root.device.c_str(), kNewRoot, "ext4", flags, nullptr) != 0) {
        if (errno != ENOENT || ++tries > 100) fail_root("mounting " + job.root.device);
        ::usleep(20'000);
    }
    if (own) {
        mount_own(job);
        // An OCI root marked read-only: only now that its mount points are made.
        if (job.process->read_only_root &&
            ::mount(nullptr, kNewRoot, nullptr, MS_REMOUNT | MS_RDONLY | MS_NOATIME, nullptr) != 0)
            fail_root("making the root disk read-only");
        return;
    }
    for (const char* dir : kRootMounts) {
        const std::string target = std::string(kNewRoot) + dir;
        if (!job.root.read_only) ::mkdir(target.c_str(), 0755);
        if (::mount(dir, target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
            fail_root(std::string("mounting ") + dir + " inside the root disk");
    }
}

// Before power-off: ends what the workload left running and unmounts the root disk and
// everything mounted inside it (newest first), so the image is clean (journal
// checkpointed) once the VM stops. What cannot be unmounted is remounted read-only.
void release_root(const Job& job) {
    if (job.root.device.empty()) return;
    ::kill(-1, SIGKILL);
    while (::waitpid(-1, nullptr, 0) > 0) {
    }
    std::string mounts;
    read_file("/proc/self/mounts", mounts);
    std::vector<std::string> targets;
    const std::string prefix = std::string(kNewRoot) + "/";
    for (const std::string& line : split(mounts, '\n')) {
        std::vector<std::string> fields = split(line, ' ');
        if (fields.size() > 1 && (fields[1] == kNewRoot || fields[1].starts_with(prefix)))
            targets.push_back(fields[1]);
    }
    for (auto it = targets.rbegin(); it != targets.rend(); ++it) {
        if (::umount(it->c_str()) == 0 || errno == EINVAL) continue;  // EINVAL: already gone
        if (::mount(nullptr, it->c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) != 0)
            say("unmounting %s: %s", it->c_str(), std::strerror(errno));
    }
}

// The workload's streams: the console (all three the same descriptor), or vsock connections
// to the host (guest/abi.hpp, kJobVsock). An exec's streams are the same but for control.
struct Stdio {
    int in = -1, out = -1, err = -1;
    int status = -1;   // vsock only
    int control = -1;  // vsock only, the workload's: the host's requests (guest/control.hpp)
    bool over_vsock = false;
    [[nodiscard]] bool vsock() const { return over_vsock; }
};

// One stream to the host: connect to CID 2 on `port` and send `name`, the bytes that name
// the stream. The transport driver has just been loaded; until it has probed the device a
// connect fails with ENODEV, so that is retried for a while.
int connect_stream(unsigned port, std::string_view name,
                   int timeout_seconds = abi::kVsockConnectTimeoutSeconds) {
    for (int tries = 0;; ++tries) {
        const int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            if ((errno == EAFNOSUPPORT || errno == ENODEV) && tries < 100) {
                ::usleep(20'000);
                continue;
            }
            return -1;
        }
        timeval timeout{timeout_seconds, 0};
        (void)::setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &timeout, sizeof timeout);
        sockaddr_vm addr{};
        addr.svm_family = AF_VSOCK;
        addr.svm_cid = VMADDR_CID_HOST;
        addr.svm_port = port;
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
            ::write(fd, name.data(), name.size()) == static_cast<ssize_t>(name.size()))
            return fd;
        const int err = errno;
        ::close(fd);
        if ((err != ENODEV && err != EINTR) || tries >= 100) {
            errno = err;
            return -1;
        }
        ::usleep(20'000);
    }
}

// The five streams on `port`: the control stream first, then the status stream, so the host
// knows the guest is there before any output; -1 for one that failed (said). PID 1 reads
// the control stream between signals and must never wait for a host that stops mid-message.
Stdio connect_streams(unsigned port, int timeout_seconds = abi::kVsockConnectTimeoutSeconds) {
    using S = abi::VsockStream;
    Stdio s;
    for (auto [fd, stream] :
         {std::pair{&s.control, S::control}, std::pair{&s.status, S::status},
          std::pair{&s.in, S::in}, std::pair{&s.out, S::out}, std::pair{&s.err, S::err}}) {
        const char name = static_cast<char>(stream);
        *fd = connect_stream(port, {&name, 1}, timeout_seconds);
        if (*fd < 0) say("connecting stream %c: %s", name, std::strerror(errno));
    }
    if (s.control >= 0 && ::fcntl(s.control, F_SETFL, O_NONBLOCK) != 0) {
        ::close(s.control);
        s.control = -1;
    }
    return s;
}

Stdio connect_stdio(const Job& job, int console) {
    if (!job.vsock_port) return {console, console, console, -1};
    Stdio s = connect_streams(*job.vsock_port);
    s.over_vsock = true;
    for (int fd : {s.control, s.status, s.in, s.out, s.err})
        if (fd < 0) fail(abi::InitFailure::console, "connecting the vsock stdio streams");
    return s;
}

// Where a restored sandbox's supervisor finds PID 1 (guest_control::Restored): a listener on the
// guest's own CID, made before the workload runs so that nothing else can take the port.
// Without it the sandbox still runs; a restore of it cannot reconnect its streams.
int listen_for_restores() {
    const int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_vm addr{};
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = VMADDR_CID_ANY;
    addr.svm_port = control::kRestoredPort;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd, 1) != 0) {
        say("listening for restores: %s", std::strerror(errno));
        if (fd >= 0) ::close(fd);
        return -1;
    }
    return fd;
}

// After the workload: its output streams end (for whatever it left running too), the status
// follows, and the host closes the status stream once it has written every byte of output
// and stops the VM. The console report is the fallback for a host that never does.
void finish_vsock(const Stdio& s, int status) {
    ::shutdown(s.out, SHUT_WR);
    ::shutdown(s.err, SHUT_WR);
    const abi::VsockStatus bytes = abi::encode_status(static_cast<std::uint32_t>(status));
    if (::write(s.status, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())) return;
    pollfd p{s.status, POLLIN, 0};
    char c;
    while (::poll(&p, 1, abi::kVsockConnectTimeoutSeconds * 1000) > 0 &&
           ::read(s.status, &c, 1) > 0) {
    }
}

int status_of(int wstatus) {
    if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
    return 125;
}

// Every signal back to its default disposition and none blocked: a command must not inherit
// what PID 1 or its own parent set for themselves (both survive exec).
void default_signals() {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; ++sig)
        if (sig != SIGKILL && sig != SIGSTOP) (void)::sigaction(sig, &dfl, nullptr);
}

[[noreturn]] void cannot_become(const char* what) {
    say("%s: %s", what, std::strerror(errno));
    ::_exit(126);
}

// The job's seccomp filter (libseccomp's export: struct sock_filter instructions), if any.
void load_seccomp(const std::string& program) {
    if (program.empty()) return;
    std::vector<sock_filter> filter(program.size() / sizeof(sock_filter));
    std::memcpy(filter.data(), program.data(), filter.size() * sizeof(sock_filter));
    sock_fprog prog{static_cast<unsigned short>(filter.size()), filter.data()};
    if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) != 0)
        cannot_become("loading the seccomp filter");
}

// The job's process settings on this process, before it runs the command: limits first
// (raising one needs CAP_SYS_RESOURCE), then the bounding set (needs CAP_SETPCAP), the user
// (keeping the permitted set across setuid), the other sets, ambient, no_new_privs. Any
// step that fails ends it with 126: the command never runs with more than it was given.
void become(const stockade::JobProcess& p) {
    if (p.umask) ::umask(static_cast<mode_t>(*p.umask));
    for (const stockade::JobRlimit& r : p.rlimits) {
        const rlimit lim{static_cast<rlim_t>(r.soft), static_cast<rlim_t>(r.hard)};
        if (::setrlimit(static_cast<__rlimit_resource>(r.resource), &lim) != 0)
            cannot_become("setrlimit");
    }
    if (p.caps)
        for (int cap = 0; cap < 64; ++cap)
            if (!(p.caps->bounding >> cap & 1) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 &&
                errno != EINVAL)  // EINVAL: past the kernel's last capability
                cannot_become("dropping a capability from the bounding set");
    // Without no_new_privs only CAP_SYS_ADMIN may load a filter: load it while there is one.
    if (!p.no_new_privileges) load_seccomp(p.seccomp);
    if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) cannot_become("PR_SET_KEEPCAPS");
    if (::setgroups(p.groups.size(), p.groups.data()) != 0) cannot_become("setgroups");
    if (::setresgid(p.gid, p.gid, p.gid) != 0) cannot_become("setgid");
    if (::setresuid(p.uid, p.uid, p.uid) != 0) cannot_become("setuid");
    (void)::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
    if (p.caps) {
        __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
        __user_cap_data_struct data[2]{};
        for (int i = 0; i < 2; ++i) {
            data[i].effective = static_cast<std::uint32_t>(p.caps->effective >> (32 * i));
            data[i].permitted = static_cast<std::uint32_t>(p.caps->permitted >> (32 * i));
            data[i].inheritable = static_cast<std::uint32_t>(p.caps->inheritable >> (32 * i));
        }
        if (::syscall(SYS_capset, &header, data) != 0) cannot_become("capset");
        (void)::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
        for (int cap = 0; cap < 64; ++cap)
            if ((p.caps->ambient >> cap & 1) &&
                ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) != 0)
                cannot_become("raising an ambient capability");
    }
    if (p.no_new_privileges) {
        if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) cannot_become("PR_SET_NO_NEW_PRIVS");
        load_seccomp(p.seccomp);
    }
}

// Runs a command as the workload runs: chrooted into the root disk when the job has one, in
// `workdir`, with `env` (and the default PATH when it sets none), on this process's stdio.
// Exits 127 when the command is not found and 126 when it cannot run, the reason on stderr.
[[noreturn]] void exec_command(const Job& job, const std::vector<std::string>& args,
                               const std::vector<std::string>& env, const std::string& workdir) {
    default_signals();
    join_container_cgroup(job);
    if (!job.root.device.empty() && (::chroot(kNewRoot) != 0 || ::chdir("/") != 0)) {
        say("chroot %s: %s", kNewRoot, std::strerror(errno));
        ::_exit(126);
    }
    if (job.process) become(*job.process);
    if (::chdir(workdir.c_str()) != 0) {
        say("%s: %s", workdir.c_str(), std::strerror(errno));
        ::_exit(126);
    }
    std::vector<char*> argv, envp;
    for (const auto& a : args)
        argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    bool has_path = false;
    for (const auto& e : env) {
        envp.push_back(const_cast<char*>(e.c_str()));
        if (e.starts_with("PATH=")) {
            has_path = true;
            ::setenv("PATH", e.c_str() + 5, 1);  // execvpe searches the caller's PATH
        }
    }
    std::string default_path = std::string("PATH=") + kDefaultPath;
    if (!has_path) envp.push_back(default_path.data());
    envp.push_back(nullptr);
    ::execvpe(argv[0], argv.data(), envp.data());
    int err = errno;
    say("%s: %s", argv[0], err == ENOENT ? "command not found" : std::strerror(err));
    ::_exit(err == ENOENT ? 127 : 126);
}

// `in`, `out`, `err`: the console (then the workload's controlling terminal) or, over vsock,
// the pipes PID 1 copies (HostLink).
[[noreturn]] void exec_workload(const Job& job, int in, int out, int err, bool terminal) {
    // The host signals the workload through its process group (kill(-leader)), which holds
    // this leader too: every signal it can block stays blocked here for good, so none ends
    // the leader (the workload starts from the defaults, exec_command). A signal sent before
    // the workload exists reaches only the leader, and is lost.
    sigset_t all;
    sigfillset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);
    ::setsid();
    // On the console the workload gets it as its controlling terminal; over vsock it has
    // none (as `docker run` without -t).
    if (terminal) ::ioctl(out, TIOCSCTTY, 0);
    // dup2 leaves the copies without FD_CLOEXEC; the originals go at exec.
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    // This process stays the session leader and the workload runs as its child. When a
    // session leader exits, the kernel hangs up its controlling terminal, and a hang-up
    // throws away output the UART has not sent yet: with more than one vCPU the workload
    // often ended while most of its last write was still queued. So the leader waits for the
    // workload, then for the terminal to send everything, and only then exits, with the
    // workload's status (128+N when it was killed by signal N, as init reports it).
    const pid_t workload = ::fork();
    if (workload < 0) {
        say("fork: %s", std::strerror(errno));
        ::_exit(126);
    }
    if (workload > 0) {
        int wstatus = 0;
        while (::waitpid(workload, &wstatus, 0) < 0 && errno == EINTR) {
        }
        while (::tcdrain(STDOUT_FILENO) != 0 && errno == EINTR) {
        }
        ::_exit(status_of(wstatus));
    }
    exec_command(job, job.argv, job.env, job.workdir);
}

// Over vsock the workload's stdin, stdout and stderr are pipes, and PID 1 copies between them
// and the host's streams: the streams of a restored sandbox are new connections (the
// snapshot's ended with its transport), which PID 1 connects again under a workload that
// never notices. PID 1 never waits on either side: its ends are non-blocking, and each
// direction holds at most kPumpBuffer bytes before it stops reading (the workload then waits
// in its own write, as it would on a slow host).
constexpr std::size_t kPumpBuffer = 64 * 1024;

struct Pump {
    int from = -1, to = -1;  // read end, write end; -1: none
    std::string buf;
    bool ended = false;        // `from` reached its end
    bool from_failed = false;  // reading failed (a reset stream): not watched until reconnected
    bool to_failed = false;    // writing failed: likewise

    short want_from() const {
        return from >= 0 && !ended && !from_failed && buf.size() < kPumpBuffer ? POLLIN : 0;
    }
    short want_to() const { return to >= 0 && !to_failed && !buf.empty() ? POLLOUT : 0; }
    void read_some() {
        char tmp[16 * 1024];
        const ssize_t n = ::read(from, tmp, std::min(sizeof tmp, kPumpBuffer - buf.size()));
        if (n > 0 && to >= 0) buf.append(tmp, static_cast<std::size_t>(n));
        if (n == 0) ended = true;
        if (n < 0 && errno != EAGAIN && errno != EINTR) from_failed = true;
    }
    void write_some() {
        const ssize_t n = ::write(to, buf.data(), buf.size());
        if (n > 0) buf.erase(0, static_cast<std::size_t>(n));
        if (n < 0 && errno != EAGAIN && errno != EINTR) to_failed = true;
    }
};

// A pseudo-terminal for the workload or an exec: from the container's own devpts when its
// root has one mounted at /dev/pts (so the name the command sees for its terminal is one it
// can open), else from the instance PID 1 mounted at /dev/pts. The slave belongs to the
// container's user. Both -1 (errno set) when it cannot be made.
//
// An exec's is made while the container runs, whose processes may have changed its
// /dev/pts: the directory is resolved inside the container's root, must be a devpts, and
// its ptmx is opened without leaving it (no symlink, no mount crossed), non-blocking, and
// must be the ptmx device (5:2), so PID 1 neither blocks nor opens another file.
struct Terminal {
    int master = -1, slave = -1;
};
int open_container_ptmx(int pts) {
    open_how how{};
    how.flags = O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV;
    const int fd = static_cast<int>(::syscall(SYS_openat2, pts, "ptmx", &how, sizeof how));
    struct stat st {};
    if (fd >= 0 && (::fstat(fd, &st) != 0 || !S_ISCHR(st.st_mode) || st.st_rdev != makedev(5, 2) ||
                    ::fcntl(fd, F_SETFL, 0) != 0)) {
        ::close(fd);
        errno = ENODEV;
        return -1;
    }
    return fd;
}
Terminal open_terminal(const Job& job) {
    Terminal t;
    int pts = -1;
    if (job.process && job.process->own_mounts)
        if (const int root = ::open(kNewRoot, O_PATH | O_DIRECTORY | O_CLOEXEC); root >= 0) {
            pts = open_in_root(root, "/dev/pts", false);
            ::close(root);
        }
    struct statfs fs {};
    if (pts >= 0 && ::fstatfs(pts, &fs) == 0 && fs.f_type == DEVPTS_SUPER_MAGIC)
        t.master = open_container_ptmx(pts);
    else
        t.master = ::open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (pts >= 0) ::close(pts);
    int unlock = 0;
    if (t.master >= 0 && ::ioctl(t.master, TIOCSPTLCK, &unlock) == 0)
        t.slave = ::ioctl(t.master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (t.slave < 0) {
        const int err = errno;
        if (t.master >= 0) ::close(t.master);
        errno = err;
        return {};
    }
    if (job.process && ::fchown(t.slave, job.process->uid, job.process->gid) != 0)
        say("terminal owner: %s", std::strerror(errno));
    return t;
}

// Waits for `pid` while watching `status`, an exec's status stream: the wait status, or
// nullopt once the host has closed or reset that stream before the command ended (its client
// left) or the wait failed. `pumps` (at most two: an exec on a terminal, its in stream to the
// master and the master to its out stream) move their bytes meanwhile.
std::optional<int> wait_watching(pid_t pid, int status, std::span<Pump> pumps = {}) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &chld, nullptr);
    // Without a signalfd the wait is polled instead (poll skips a negative descriptor).
    const int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC);
    pumps = pumps.first(std::min<std::size_t>(pumps.size(), 2));
    for (;;) {
        int wstatus = 0;
        const pid_t done = ::waitpid(pid, &wstatus, WNOHANG);
        if (done == pid) return wstatus;
        if (done < 0 && errno != EINTR) {
            say("waiting for the command: %s", std::strerror(errno));
            return std::nullopt;
        }
        pollfd p[6] = {{status, POLLIN, 0}, {sfd, POLLIN, 0}};
        nfds_t n = 2;
        for (const Pump& q : pumps) {
            p[n++] = {q.want_from() ? q.from : -1, q.want_from(), 0};
            p[n++] = {q.want_to() ? q.to : -1, q.want_to(), 0};
        }
        if (::poll(p, n, sfd < 0 ? 100 : -1) <= 0) continue;
        signalfd_siginfo si{};
        if ((p[1].revents & POLLIN) != 0) (void)!::read(sfd, &si, sizeof si);
        char c;
        if ((p[0].revents & (POLLHUP | POLLERR)) != 0 ||
            ((p[0].revents & POLLIN) != 0 && ::read(status, &c, 1) <= 0))
            return std::nullopt;
        for (std::size_t k = 0; k < pumps.size(); ++k) {
            if (p[2 + 2 * k].revents != 0) pumps[k].read_some();
            if (p[3 + 2 * k].revents != 0) pumps[k].write_some();
        }
    }
}

// What a command that ended left in its terminal (`out`: the master to the exec's out stream)
// goes out too: at most kFlushMore more bytes, each write waited for at most 2 s.
void flush_terminal(Pump& out) {
    constexpr std::size_t kFlushMore = 1u << 20;
    for (std::size_t taken = 0;;) {
        while (out.want_from() != 0 && taken < kFlushMore) {
            const std::size_t had = out.buf.size();
            out.read_some();
            if (out.buf.size() == had) break;
            taken += out.buf.size() - had;
        }
        if (out.want_to() == 0) return;
        pollfd p{out.to, POLLOUT, 0};
        if (::poll(&p, 1, 2000) <= 0) return;
        out.write_some();
    }
}

// An exec (guest/control.hpp), in a process PID 1 forked for it: connects the exec's streams
// itself (a connect may block, PID 1 must not), runs the command on them in a process group
// of its own, and reports its status as the workload's is reported. The host closing the
// status stream before that means its client left: the command's group is killed.
[[noreturn]] void run_exec(const Job& job, const control::ExecRequest& exec, Terminal tty) {
    ::setsid();
    ::signal(SIGPIPE, SIG_IGN);  // a stream the host closed fails a write, nothing more
    using S = control::ExecStream;
    Stdio s;
    for (auto [fd, stream] : {std::pair{&s.status, S::status}, std::pair{&s.in, S::in},
                              std::pair{&s.out, S::out}, std::pair{&s.err, S::err}}) {
        *fd = connect_stream(*job.vsock_port, control::exec_stream_header(stream, exec.id));
        if (*fd < 0) {
            say("exec %u: connecting its streams: %s", exec.id, std::strerror(errno));
            ::_exit(1);
        }
    }
    if (exec.terminal && tty.master < 0) {
        (void)!::write(s.err, "stockade-init: no pseudo-terminal for the exec\n", 47);
        finish_vsock(s, 126);
        ::_exit(0);
    }
    // The command's stdio (without a terminal), and where this process reports its own
    // failures from now on.
    if (tty.master < 0) {
        ::dup2(s.in, 0);
        ::dup2(s.out, 1);
    }
    ::dup2(s.err, 2);
    // On a terminal the command leads a session of its own, the slave its controlling terminal
    // and its stdio, and this process copies between the streams and the master; else it has
    // a process group of its own on the streams.
    const bool on_terminal = tty.master >= 0;
    const pid_t command = ::fork();
    if (command < 0) {
        say("fork: %s", std::strerror(errno));
        finish_vsock(s, 126);
        ::_exit(0);
    }
    if (command == 0) {
        if (on_terminal) {
            ::close(tty.master);
            ::setsid();
            ::ioctl(tty.slave, TIOCSCTTY, 0);
            for (int fd : {0, 1, 2})
                ::dup2(tty.slave, fd);
        } else {
            ::setpgid(0, 0);
        }
        exec_command(job, exec.argv, exec.env, exec.workdir);
    }
    std::optional<int> wstatus;
    if (on_terminal) {
        ::close(tty.slave);
        // The exec's in stream to the master, the master to its out stream, never blocking.
        std::array<Pump, 2> pumps;
        pumps[0].from = s.in;
        pumps[0].to = tty.master;
        pumps[1].from = ::fcntl(tty.master, F_DUPFD_CLOEXEC, 0);
        pumps[1].to = s.out;
        for (const Pump& q : pumps)
            for (int fd : {q.from, q.to})
                ::fcntl(fd, F_SETFL, O_NONBLOCK);
        wstatus = wait_watching(command, s.status, pumps);
        if (wstatus) flush_terminal(pumps[1]);
    } else {
        (void)::setpgid(command, command);  // as the child does: whichever runs first
        wstatus = wait_watching(command, s.status);
    }
    if (!wstatus) {
        // Its group, or the command itself before it made that group.
        ::kill(-command, SIGKILL);
        ::kill(command, SIGKILL);
        ::_exit(0);
    }
    finish_vsock(s, status_of(*wstatus));
    ::_exit(0);
}

// PID 1's end of the control stream: read a chunk at a time between signals, never waiting
// (non-blocking), and given up (closed) at its end or at the first malformed message, after
// which nothing on it can be trusted.
struct ControlReader {
    int fd = -1;
    std::string pending;  // an incomplete message: under 4 + kMaxControlMessage bytes

    // The messages that what has arrived completes.
    std::vector<control::Message> read() {
        std::vector<control::Message> messages;
        char buf[4096];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return messages;
        if (n <= 0) {
            stop(n == 0 ? "closed by the host" : std::strerror(errno));
            return messages;
        }
        pending.append(buf, static_cast<std::size_t>(n));
        std::span<const char> rest(pending);
        for (;;) {
            auto d = control::decode(rest);
            if (!d) {
                stop(d.error());
                return messages;
            }
            if (!*d) break;
            messages.push_back(std::move((*d)->message));
            rest = rest.subspan((*d)->used);
        }
        pending.erase(0, pending.size() - rest.size());
        return messages;
    }

    void stop(const std::string& why) {
        say("control stream: %s; no longer read", why.c_str());
        ::close(fd);
        fd = -1;
        pending.clear();
    }
};

struct HostLink {
    Pump in, out, err;               // host in -> pipe; pipes -> host out, err
    int workload[3] = {-1, -1, -1};  // the workload's ends, until it has them

    bool make(const Stdio& host) {
        int p[3][2];
        for (auto& fds : p)
            if (::pipe2(fds, O_CLOEXEC) != 0) return false;
        workload[0] = p[0][0];
        in.from = host.in;
        in.to = p[0][1];
        workload[1] = p[1][1];
        out.from = p[1][0];
        out.to = host.out;
        workload[2] = p[2][1];
        err.from = p[2][0];
        err.to = host.err;
        for (int fd : {in.from, in.to, out.from, out.to, err.from, err.to})
            ::fcntl(fd, F_SETFL, O_NONBLOCK);
        return true;
    }
    // A terminal (guest/abi.hpp, kJobTerminal): the host's in goes to the master and the
    // master to the host's out; the workload gets the slave three times (each end its own
    // descriptor, closed on its own). The err stream carries nothing.
    bool make_terminal(const Stdio& host, int master, int slave) {
        in.from = host.in;
        in.to = master;
        out.from = ::fcntl(master, F_DUPFD_CLOEXEC, 0);
        out.to = host.out;
        err.to = host.err;
        workload[0] = slave;
        workload[1] = ::fcntl(slave, F_DUPFD_CLOEXEC, 0);
        workload[2] = ::fcntl(slave, F_DUPFD_CLOEXEC, 0);
        for (int fd : {in.from, in.to, out.from, out.to, err.to})
            ::fcntl(fd, F_SETFL, O_NONBLOCK);
        return out.from >= 0 && workload[1] >= 0 && workload[2] >= 0;
    }
    void close_workload_ends() {
        for (int& fd : workload)
            if (fd >= 0) ::close(std::exchange(fd, -1));
    }
    // PID 1's own ends, closed in every child: one held elsewhere would keep the workload's
    // stdin from ever ending.
    void close_in_child() const {
        for (int fd : {in.from, in.to, out.from, out.to, err.from, err.to})
            if (fd >= 0) ::close(fd);
    }
    void add(std::vector<pollfd>& p) const {
        for (const Pump* x : {&in, &out, &err}) {
            p.push_back({x->want_from() ? x->from : -1, x->want_from(), 0});
            p.push_back({x->want_to() ? x->to : -1, x->want_to(), 0});
        }
    }
    void serve(std::span<const pollfd> p) {
        std::size_t i = 0;
        for (Pump* x : {&in, &out, &err}) {
            if (p[i++].revents != 0) x->read_some();
            if (p[i++].revents != 0) x->write_some();
        }
        // The host's input ended (or the workload closed its stdin): the workload sees the end.
        if (in.to >= 0 && ((in.ended && in.buf.empty()) || in.to_failed)) {
            ::close(std::exchange(in.to, -1));
            in.buf.clear();
        }
    }
    // The streams of a restored sandbox: what waits in either direction goes on to them.
    void reconnected(const Stdio& host) {
        ::close(std::exchange(in.from, host.in));
        ::close(std::exchange(out.to, host.out));
        ::close(std::exchange(err.to, host.err));
        for (int fd : {host.in, host.out, host.err})
            ::fcntl(fd, F_SETFL, O_NONBLOCK);
        in.ended = in.from_failed = out.to_failed = err.to_failed = false;
    }
    // The workload ended: what it wrote is in the pipes (its writes finished before it
    // exited), and goes to the host, which gets `timeout_ms` for each piece before it is
    // given up. Whatever the workload left running may still write: at most kFlushMore
    // bytes more are taken.
    void flush(int timeout_ms) {
        constexpr std::size_t kFlushMore = 1u << 20;
        for (Pump* x : {&out, &err}) {
            std::size_t taken = 0;
            for (;;) {
                while (x->want_from() != 0 && taken < kFlushMore) {
                    const std::size_t had = x->buf.size();
                    x->read_some();
                    if (x->buf.size() == had) break;
                    taken += x->buf.size() - had;
                }
                if (x->want_to() == 0) break;
                pollfd p{x->to, POLLOUT, 0};
                if (::poll(&p, 1, timeout_ms) <= 0) break;
                x->write_some();
            }
        }
    }
};

// The guest's own CID now (0: unknown).
unsigned local_cid() {
    unsigned cid = 0;
    const int fd = ::open("/dev/vsock", O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && ::ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) != 0) cid = 0;
    if (fd >= 0) ::close(fd);
    return cid;
}

long ms_since(const timespec& start) {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1'000'000;
}

// The host's clock asked for once the notice is read (guest/control.hpp, kClockRequest), plus
// half the exchange's round trip: the notice's own clock is as old as the time this guest took
// to read it. nullopt (the notice's clock stands) when the host does not answer within 1 s.
std::optional<control::WallClock> ask_clock_again(int conn) {
    timespec start{};
    ::clock_gettime(CLOCK_MONOTONIC, &start);
    if (::write(conn, &control::kClockRequest, 1) != 1) return std::nullopt;
    std::string got;
    while (got.size() < control::kClockReplySize) {
        const long left = 1000 - ms_since(start);
        pollfd p{conn, POLLIN, 0};
        char buf[control::kClockReplySize];
        const ssize_t n = left > 0 && ::poll(&p, 1, static_cast<int>(left)) == 1
                              ? ::read(conn, buf, control::kClockReplySize - got.size())
                              : -1;
        if (n <= 0) {
            say("restore notice: the host did not answer for the clock");
            return std::nullopt;
        }
        got.append(buf, static_cast<std::size_t>(n));
    }
    auto c = control::decode_clock(got);
    if (!c) return std::nullopt;
    timespec end{};
    ::clock_gettime(CLOCK_MONOTONIC, &end);
    const std::int64_t half_ns =
        ((end.tv_sec - start.tv_sec) * 1'000'000'000ll + (end.tv_nsec - start.tv_nsec)) / 2;
    const std::int64_t ns = std::int64_t{c->nsec} + half_ns;
    c->sec += ns / 1'000'000'000;
    c->nsec = static_cast<std::uint32_t>(ns % 1'000'000'000);
    return c;
}

// Reads the one message a restored sandbox's supervisor sends on a connection to PID 1's
// listener; nullopt (said why) for anything else. Only the host's root can send it: the
// peer must be the host (CID 2) on a reserved port (below 1024, which takes
// CAP_NET_BIND_SERVICE to bind), and the connection must be to a CID other than the one this
// guest had (`cid` becomes the new one): a restore is a new sandbox. The message comes at
// once: PID 1 waits for it at most a second, and as long for the clock's second look.
std::optional<control::Restored> read_restored(int listener, unsigned& cid) {
    sockaddr_vm peer{};
    socklen_t peer_len = sizeof peer;
    const int conn = ::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &peer_len,
                               SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (conn < 0) return std::nullopt;
    sockaddr_vm local{};
    socklen_t len = sizeof local;
    const unsigned to =
        ::getsockname(conn, reinterpret_cast<sockaddr*>(&local), &len) == 0 ? local.svm_cid : 0;
    std::optional<control::Restored> r;
    if (peer.svm_cid != VMADDR_CID_HOST || peer.svm_port > 1023) {
        say("restore notice from CID %u port %u: refused (not the host's root)", peer.svm_cid,
            peer.svm_port);
    } else if (to == 0 || to == cid) {
        say("restore notice to CID %u: refused (not a restored sandbox)", to);
    } else {
        std::string got;
        timespec start{};
        ::clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            const long left = 1000 - ms_since(start);
            pollfd p{conn, POLLIN, 0};
            char buf[128];
            const ssize_t n = left > 0 && ::poll(&p, 1, static_cast<int>(left)) == 1
                                  ? ::read(conn, buf, sizeof buf)
                                  : -1;
            if (n <= 0 || got.size() + static_cast<std::size_t>(n) > 256) {
                say("restore notice: not a whole message (%zu bytes)", got.size());
                break;
            }
            got.append(buf, static_cast<std::size_t>(n));
            auto d = control::decode(got);
            if (!d) {
                say("restore notice: %s", d.error().c_str());
                break;
            }
            if (!*d) continue;
            if ((*d)->message.type == control::MessageType::restored) {
                r = (*d)->message.restored;
                cid = to;
                if (auto c = ask_clock_again(conn)) {
                    r->realtime_sec = c->sec;
                    r->realtime_nsec = c->nsec;
                }
            } else {
                say("restore notice: another message");
            }
            break;
        }
    }
    ::close(conn);
    return r;
}

// How long each stream's connect may take after a restore: PID 1 waits for it (the host that
// sent the notice is listening).
constexpr int kReconnectSeconds = 5;

// The transport reset (runner/virtio/vsock.hpp) makes the guest read its new CID, then ends
// every connection of the snapshot's. Streams connected before that would go out under the
// old CID (dropped by the host) or be ended with the old ones: PID 1 waits (at most 2 s)
// until the guest has the CID the host reached, and a moment more for the reset to finish.
void wait_for_transport_reset(unsigned cid) {
    for (int i = 0; i < 100 && local_cid() != cid; ++i)
        ::usleep(20'000);
    ::usleep(20'000);
}

// A restored guest's randomness is the snapshot's, shared by every clone of it: the host's
// fresh bytes are mixed in (credited: they come from the host's getrandom) and the CRNG
// reseeded at once, so clones differ from here on. The wall clock is stepped to the host's.
void take_host_entropy_and_time(const control::Restored& r) {
    struct {
        int entropy_count;
        int buf_size;
        std::uint32_t buf[control::kRestoredEntropy / 4];
    } pool{};
    pool.entropy_count = static_cast<int>(control::kRestoredEntropy * 8);
    pool.buf_size = static_cast<int>(control::kRestoredEntropy);
    std::memcpy(pool.buf, r.entropy.data(), control::kRestoredEntropy);
    const int fd = ::open("/dev/urandom", O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::ioctl(fd, RNDADDENTROPY, &pool) != 0 || ::ioctl(fd, RNDRESEEDCRNG) != 0)
        say("reseeding after the restore: %s", std::strerror(errno));
    if (fd >= 0) ::close(fd);
    const timespec now{static_cast<time_t>(r.realtime_sec), static_cast<long>(r.realtime_nsec)};
    if (::clock_settime(CLOCK_REALTIME, &now) != 0)
        say("setting the clock after the restore: %s", std::strerror(errno));
}

// The end: the workload's status to the host (after its output) and power-off.
[[noreturn]] void finish(const Job& job, const Stdio& stdio, HostLink& link, int status) {
    release_root(job);
    ::sync();
    if (stdio.vsock()) {
        link.flush(abi::kVsockConnectTimeoutSeconds * 1000);
        finish_vsock(stdio, status);
    } else
        ::tcdrain(stdio.out);  // the console: every byte of output has left the UART
    report(abi::Event::exited, static_cast<std::uint8_t>(status));
    power_off();
}

bool cmdline_has(std::string_view word) {
    std::string cmdline;
    if (!read_file("/proc/cmdline", cmdline)) return false;
    for (const auto& w : split(cmdline, ' '))
        if (w == word || (w.back() == '\n' && std::string_view(w).substr(0, w.size() - 1) == word))
            return true;
    return false;
}

}  // namespace

int main() {
    if (::getpid() != 1) {
        say("must run as PID 1");
        return 1;
    }
    g_port_ok = ::ioperm(abi::kAgentPort, 4, 1) == 0;
    if (!g_port_ok) say("agent port: %s", std::strerror(errno));
    ::setenv("PATH", kDefaultPath, 1);

    mount_or_fail("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    // Booted by another VMM (the benchmarks' peers), which has no agent port to talk to.
    if (cmdline_has("stockade.agent=off")) g_port_ok = false;
    mount_or_fail("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
    mount_or_fail("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
    mount_or_fail("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
    mount_or_fail("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755");
    if (cmdline_has("stockade.announce")) {
        std::string up;
        read_file("/proc/uptime", up);
        say("up %s", split(up, ' ').empty() ? "?" : split(up, ' ')[0].c_str());
    }

    std::string autoload;
    if (read_file(std::string(abi::kAutoloadList), autoload))
        for (const auto& name : split(autoload, '\n'))
            load_module(name);
    load_device_modules();

    Job job = load_job();
    ::sethostname(job.hostname.data(), job.hostname.size());
    if (job.net) configure_network(*job.net);
    // A terminal's devpts, before the root disk binds /dev in with what is under it.
    if (job.terminal) {
        ::mkdir("/dev/pts", 0755);
        mount_or_fail("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
                      "newinstance,ptmxmode=0666,mode=0620");
    }
    // Before the root disk's own mounts: a container that mounts cgroup2 read-only would
    // otherwise make the one superblock read-only for this mount too.
    if (job.process && job.process->pids_max) make_container_cgroup(*job.process->pids_max);
    if (!job.root.device.empty()) mount_root(job);

    int console = ::open("/dev/ttyS0", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (console < 0) console = ::open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (console < 0 || !configure_console(console)) fail(abi::InitFailure::console, "console");

    // Signals PID 1 receives from busybox reboot (TERM), halt (USR1) and poweroff (USR2),
    // and SIGCHLD, arrive through a signalfd so the main loop is race-free.
    sigset_t sigs;
    sigemptyset(&sigs);
    for (int sig : {SIGTERM, SIGUSR1, SIGUSR2, SIGINT, SIGCHLD})
        sigaddset(&sigs, sig);
    ::sigprocmask(SIG_BLOCK, &sigs, nullptr);
    int sfd = ::signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) fail(abi::InitFailure::fork, "signalfd");

    Stdio stdio = connect_stdio(job, console);
    ControlReader requests{std::exchange(stdio.control, -1), {}};
    HostLink link;
    int restores = -1;  // PID 1's listener for a restored sandbox's supervisor
    int terminal = -1;  // the terminal's master, where the window size is set
    // Each running exec's terminal: its master, kept to set the window size, until the exec's
    // process is reaped.
    struct ExecTerminal {
        std::uint32_t id = 0;
        pid_t pid = -1;
        int master = -1;
    };
    std::vector<ExecTerminal> exec_terminals;
    if (stdio.vsock() && job.terminal) {
        const Terminal t = open_terminal(job);
        if (t.master < 0) fail(abi::InitFailure::console, "opening a pseudo-terminal");
        terminal = ::fcntl(t.master, F_DUPFD_CLOEXEC, 0);  // the in pump may close its own
        if (terminal < 0 || !link.make_terminal(stdio, t.master, t.slave))
            fail(abi::InitFailure::fork, "descriptors for the workload's terminal");
    } else if (stdio.vsock() && !link.make(stdio)) {
        fail(abi::InitFailure::fork, "pipes for the workload's stdio");
    }
    if (stdio.vsock()) restores = listen_for_restores();
    pid_t child = -1;  // the workload's session leader, once it runs
    // A child of PID 1 leaves PID 1's own descriptors behind: the host sees the control
    // stream end when PID 1 closes it.
    const auto fork_child = [&](bool workload) {
        const pid_t pid = ::fork();
        if (pid == 0) {
            if (!workload) link.close_workload_ends();
            ::close(sfd);
            if (requests.fd >= 0) ::close(requests.fd);
            if (restores >= 0) ::close(restores);
            if (terminal >= 0) ::close(terminal);
            for (const ExecTerminal& e : exec_terminals)
                ::close(e.master);
            link.close_in_child();  // the host's in, out and err among them
            if (stdio.status >= 0) ::close(stdio.status);
        }
        return pid;
    };
    const auto start = [&] {
        child = fork_child(true);
        if (child < 0) fail(abi::InitFailure::fork, "fork");
        if (child == 0) {
            if (!stdio.vsock()) exec_workload(job, console, console, console, true);
            exec_workload(job, link.workload[0], link.workload[1], link.workload[2], terminal >= 0);
        }
        link.close_workload_ends();
    };
    // A restored sandbox: new streams on the port its supervisor names.
    const auto restored = [&](const control::Restored& r) {
        if (requests.fd >= 0) ::close(std::exchange(requests.fd, -1));
        requests.pending.clear();
        if (stdio.status >= 0) ::close(stdio.status);
        job.vsock_port = r.port;
        Stdio again = connect_streams(r.port, kReconnectSeconds);
        requests.fd = std::exchange(again.control, -1);
        again.over_vsock = true;
        link.reconnected(again);  // takes the old in, out and err and closes them
        stdio = again;
        // As at boot: a workload waiting for a start that nothing can send now starts.
        if (child < 0 && requests.fd < 0) start();
        say("restored: streams connected again (port %u)", r.port);
    };
    const auto handle = [&](const control::Message& m) {
        switch (m.type) {
            case control::MessageType::start:
                if (child > 0)
                    say("control stream: start, but the workload runs already");
                else
                    start();
                break;
            case control::MessageType::signal:
                if (child < 0)
                    say("control stream: signal %d before start, ignored", m.signal);
                else if (::kill(-child, m.signal) != 0)
                    say("signal %d: %s", m.signal, std::strerror(errno));
                break;
            case control::MessageType::poweroff:
                // The workload's exit, when it comes, ends the sandbox. Before start it ends
                // now, as if the workload had been terminated.
                if (child < 0)
                    finish(job, stdio, link, 128 + SIGTERM);
                else if (::kill(-child, SIGTERM) != 0)
                    say("poweroff: %s", std::strerror(errno));
                break;
            case control::MessageType::restored:
                say("control stream: a restore notice belongs on its own connection; ignored");
                break;
            case control::MessageType::resize: {
                // The kernel signals the terminal's foreground group (SIGWINCH) itself.
                int fd = terminal;
                if (m.resize_exec != 0) {
                    fd = -1;
                    for (const ExecTerminal& e : exec_terminals)
                        if (e.id == m.resize_exec) fd = e.master;
                }
                const winsize ws{m.window.rows, m.window.columns, 0, 0};
                if (fd >= 0 && ::ioctl(fd, TIOCSWINSZ, &ws) != 0)
                    say("resize: %s", std::strerror(errno));
                break;
            }
            case control::MessageType::exec: {
                // An exec's terminal is made here, so that PID 1 keeps its master to resize.
                Terminal tty;
                if (m.exec->terminal) {
                    tty = open_terminal(job);
                    if (tty.master < 0)
                        say("exec %u: a pseudo-terminal: %s", m.exec->id, std::strerror(errno));
                    const winsize ws{m.exec->window.rows, m.exec->window.columns, 0, 0};
                    if (tty.master >= 0 && (ws.ws_row != 0 || ws.ws_col != 0))
                        (void)::ioctl(tty.master, TIOCSWINSZ, &ws);
                }
                const pid_t pid = fork_child(false);
                if (pid < 0)
                    say("exec %u: fork: %s", m.exec->id, std::strerror(errno));
                else if (pid == 0)
                    run_exec(job, *m.exec, tty);
                if (tty.slave >= 0) ::close(tty.slave);
                if (tty.master >= 0 && pid > 0)
                    exec_terminals.push_back({m.exec->id, pid, tty.master});
                else if (tty.master >= 0)
                    ::close(tty.master);
                break;
            }
        }
    };
    // Without a control stream nothing could say start.
    if (!job.wait_for_start || requests.fd < 0) start();
    report(abi::Event::ready);

    std::vector<pollfd> p;
    unsigned cid = restores >= 0 ? local_cid() : 0;  // the CID this guest has now
    for (;;) {
        // poll skips a negative descriptor: a closed stream, a pump with nothing to do
        p = {{sfd, POLLIN, 0}, {requests.fd, POLLIN, 0}, {restores, POLLIN, 0}};
        link.add(p);
        if (::poll(p.data(), p.size(), -1) <= 0) continue;
        if (p[1].revents != 0)
            for (const control::Message& m : requests.read())
                handle(m);
        if (p[2].revents != 0)
            if (auto r = read_restored(restores, cid)) {
                take_host_entropy_and_time(*r);  // at once: the clock is the host's of now
                wait_for_transport_reset(cid);
                restored(*r);
            }
        link.serve(std::span(p).subspan(3));
        signalfd_siginfo si{};
        if ((p[0].revents & POLLIN) == 0 || ::read(sfd, &si, sizeof si) != sizeof si) continue;
        if (si.ssi_signo == SIGCHLD) {
            int wstatus = 0;
            pid_t pid;
            // Anything else is an exec's process or an orphan PID 1 adopted.
            while ((pid = ::waitpid(-1, &wstatus, WNOHANG)) > 0) {
                if (pid == child) finish(job, stdio, link, status_of(wstatus));
                std::erase_if(exec_terminals, [pid](const ExecTerminal& e) {
                    if (e.pid == pid) ::close(e.master);
                    return e.pid == pid;
                });
            }
        } else if (si.ssi_signo == SIGTERM) {
            release_root(job);
            report(abi::Event::reboot);
            power_off(RB_AUTOBOOT);
        } else if (si.ssi_signo == SIGUSR1 || si.ssi_signo == SIGUSR2) {
            release_root(job);
            report(abi::Event::poweroff);
            power_off();
        }
    }
}
