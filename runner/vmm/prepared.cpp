#include "runner/vmm/prepared.hpp"

#include <fcntl.h>
#include <malloc.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
// after sys/socket.h, which it needs
#include <linux/vm_sockets.h>
#include <sys/stat.h>

#include "base/io.hpp"
#include "base/log.hpp"
#include "guest/job.hpp"
#include "policy/artefacts.hpp"
#include "runner/arch/x86/memory_map.hpp"
#include "runner/vmm/sandbox.hpp"
#include "vhost/vhost.hpp"

namespace stockade {
namespace {

constexpr std::size_t kMaxKernelBytes = 256u << 20;
constexpr std::size_t kMaxInitrdBytes = 2048u << 20;
// What the runner itself may use beside guest memory under memory.max: page tables, thread
// stacks, buffers (measured well under 16 MiB; the margin is deliberate).
constexpr std::uint64_t kVmmOverhead = 64u << 20;

// The whole of a boot image, read once into fresh anonymous memory of its exact size (the
// file's size at open; a file that changes size while it is read is refused rather than
// half-booted). Not a vector, which would zero-fill 50 MB the kernel has already zeroed;
// huge pages make the read fault once per 2 MiB.
Result<Mapping> read_all_fd(int fd, std::size_t max, const std::string& what) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail_sys(fmt::format("stat {}", what));
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > max) return fail("{}: larger than {} MiB", what, max >> 20);
    Mapping out;
    if (size > 0) {
        out = STOCKADE_TRY(Mapping::anonymous(static_cast<std::size_t>(size), 0, kHugePageSize));
        (void)::madvise(out.data(), out.size(), MADV_HUGEPAGE);  // a hint: speed only
        STOCKADE_TRY_VOID(pread_exact(fd, out.bytes(), 0, what));
    }
    std::uint8_t probe = 0;
    ssize_t more = 0;
    do
        more = ::pread(fd, &probe, 1, static_cast<off_t>(size));
    while (more < 0 && errno == EINTR);
    if (more != 0) return fail("{}: changed size while being read", what);
    return out;
}

// Opens a file the sandbox boots from; only regular files (or block devices for disks).
Result<UniqueFd> open_artefact(const std::string& path, int flags, bool allow_block) {
    auto fd = STOCKADE_TRY(open_file(path, flags));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return fail_sys(fmt::format("stat {}", path));
    if (!S_ISREG(st.st_mode) && !(allow_block && S_ISBLK(st.st_mode)))
        return fail("{}: not a regular file", path);
    return fd;
}

constexpr const char* kVhostNetDevice = "/dev/vhost-net";

// /dev/vhost-net for the chosen datapath: required with vhost=on, used when it opens with
// the default, never with vhost=off.
Result<UniqueFd> open_vhost_net(VhostMode mode) {
    if (mode == VhostMode::off) return UniqueFd{};
    auto fd = open_file(kVhostNetDevice, O_RDWR);
    if (fd) return std::move(*fd);
    if (mode == VhostMode::on)
        return std::unexpected(std::move(fd).error().context("--net vhost=on"));
    log::debug("{}; using the userspace network datapath", fd.error().message);
    return UniqueFd{};
}

constexpr const char* kVhostVsockDevice = "/dev/vhost-vsock";
// Guest CIDs are host-wide; a random one is taken again only when another VM holds it.
constexpr int kCidAttempts = 32;

Result<PreparedVsock> open_vsock() {
    PreparedVsock v;
    v.vhost = STOCKADE_TRY(open_file(kVhostVsockDevice, O_RDWR));
    for (int attempt = 0;; ++attempt) {
        std::uint32_t r = 0;
        if (::getrandom(&r, sizeof r, 0) != sizeof r) return fail_sys("getrandom");
        const std::uint32_t cid = 3 + r % (0xffff'fffeu - 3);  // 3 .. U32_MAX-1
        auto claimed = vhost::vsock_set_guest_cid(v.vhost.get(), cid);
        if (claimed) {
            v.cid = cid;
            break;
        }
        if (claimed.error().code != EADDRINUSE || attempt + 1 == kCidAttempts)
            return std::unexpected(std::move(claimed).error());
    }
    v.listener = UniqueFd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!v.listener) return fail_sys("socket(AF_VSOCK)");
    sockaddr_vm addr{};
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = VMADDR_CID_ANY;
    addr.svm_port = VMADDR_PORT_ANY;
    socklen_t len = sizeof addr;
    if (::bind(v.listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
        return fail_sys("binding the vsock stdio socket");
    if (::listen(v.listener.get(), 4) != 0) return fail_sys("listening on the vsock stdio socket");
    if (::getsockname(v.listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        return fail_sys("getsockname on the vsock stdio socket");
    v.port = addr.svm_port;
    return v;
}

// The workload's stdio: vsock when asked (then required) or by default when the host
// has vhost-vsock; the serial console otherwise.
Result<std::optional<PreparedVsock>> prepare_stdio(StdioMode mode) {
    if (mode == StdioMode::serial) return std::optional<PreparedVsock>{};
    auto v = open_vsock();
    if (v) return std::optional<PreparedVsock>(std::move(*v));
    if (mode == StdioMode::vsock)
        return std::unexpected(std::move(v).error().context("--stdio vsock"));
    log::debug("{}; the workload's stdio uses the serial console", v.error().message);
    return std::optional<PreparedVsock>{};
}

}  // namespace

void release_boot_images(Prepared& p) {
    p.kernel_file.reset();
    p.initrd.reset();
    // Swapping with an empty vector gives its storage back (assigning {} would keep it).
    std::vector<std::uint8_t>().swap(p.job);
    p.kernel = {};
    // Hand the freed pages back to the kernel now: glibc keeps a freed heap top until it
    // outgrows a trim threshold that its own large allocations raised (8 MiB stayed
    // resident in both the supervisor and the sandbox process before this).
    ::malloc_trim(0);
}

std::string new_sandbox_id() {
    std::uint8_t r[6] = {};
    (void)!::getrandom(r, sizeof r, 0);
    return fmt::format("sb-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", r[0], r[1], r[2], r[3], r[4],
                       r[5]);
}

Result<Prepared> prepare(const SandboxSpec& spec) {
    Prepared p;
    p.spec = spec;
    p.policy = spec.policy_file.empty() ? policy::default_policy()
                                        : STOCKADE_TRY(policy::load_policy_file(spec.policy_file));
    p.id = spec.id.empty() ? new_sandbox_id() : spec.id;
    STOCKADE_TRY_VOID(policy::check_sandbox_id(p.id));

    // Artefacts are opened once and checked on the same descriptors they are read from, so
    // nothing can be swapped between the digest check and the use.
    auto kernel_fd = STOCKADE_TRY(open_artefact(spec.kernel, O_RDONLY, false));
    auto initrd_fd = STOCKADE_TRY(open_artefact(spec.initrd, O_RDONLY, false));
    for (std::size_t i = 0; i < spec.disks.size(); ++i) {
        const DiskSpec& d = spec.disks[i];
        p.disks.push_back(
            {STOCKADE_TRY(open_artefact(d.path, d.read_only ? O_RDONLY : O_RDWR, true)),
             d.read_only, d.path});
    }
    // The boot images are read once and their digests checked on the bytes that boot.
    p.kernel_file = STOCKADE_TRY(read_all_fd(kernel_fd.get(), kMaxKernelBytes, spec.kernel));
    p.initrd = STOCKADE_TRY(read_all_fd(initrd_fd.get(), kMaxInitrdBytes, spec.initrd));
    policy::SandboxArtefacts artefacts{
        {spec.kernel, kernel_fd.get(), p.kernel_file.bytes()},
        policy::Artefact{spec.initrd, initrd_fd.get(), p.initrd.bytes()},
        {}};
    for (std::size_t i = 0; i < p.disks.size(); ++i)
        artefacts.disks[fmt::format("vd{}", char('a' + i))] = {p.disks[i].path,
                                                               p.disks[i].fd.get()};
    STOCKADE_TRY_VOID(policy::verify_artefacts(p.policy.digests, artefacts));

    auto kernel = x86::parse_kernel(p.kernel_file.bytes());
    if (!kernel) return std::unexpected(std::move(kernel).error().context(spec.kernel));
    p.kernel = *kernel;

    Job job{spec.argv, spec.env, spec.workdir, spec.hostname, {}, {}, {}};
    if (spec.rootfs) job.root = JobRoot{"/dev/vda", spec.disks.front().read_only};
    std::optional<net::NetSpec> net_spec;
    if (spec.net) {
        net::SpecDefaults defaults;
        defaults.id = p.id;
        auto parsed = net::parse_net_spec(spec.net->netsetup, defaults);
        if (!parsed) return std::unexpected(std::move(parsed).error().context("--net"));
        net_spec = std::move(*parsed);
        if (!spec.net->address.empty())
            job.net = JobNet{net_spec->mac.to_string(), spec.net->address};
    }
    p.vsock = STOCKADE_TRY(prepare_stdio(spec.stdio));
    if (p.vsock) job.vsock_port = p.vsock->port;
    p.job = build_job_archive(job);
    const bool has_pci =
        !spec.disks.empty() || spec.rng || spec.net.has_value() || p.vsock.has_value();
    p.cmdline = default_kernel_cmdline(has_pci);
    if (!spec.extra_cmdline.empty()) p.cmdline += " " + spec.extra_cmdline;
    // Sizes against memory, and memory against the policy's memory.max, before KVM.
    STOCKADE_TRY_VOID(x86::plan_boot(p.kernel, x86::ram_regions(spec.memory_mib << 20),
                                     p.initrd.size() + p.job.size(), p.cmdline));
    STOCKADE_TRY_VOID(
        policy::check_guest_memory_fits(p.policy, spec.memory_mib << 20, kVmmOverhead));

    p.kvm = STOCKADE_TRY(kvm::Kvm::open());
    const HostLimits host{host_ram_bytes(), static_cast<std::uint32_t>(std::max(
                                                1, p.kvm->check_extension(KVM_CAP_MAX_VCPUS)))};
    STOCKADE_TRY_VOID(validate(spec, host));
    STOCKADE_TRY_VOID(kvm::check_required_capabilities(*p.kvm));

    // Host networking last: everything that can be refused has been checked.
    if (net_spec) {
        PreparedNet n;
        n.vhost = STOCKADE_TRY(open_vhost_net(spec.net->vhost));
        n.mac = net_spec->mac;
        n.mtu = net_spec->mtu;
        net::NetOptions options;
        options.persistent = false;  // a per-run tap: gone with its last fd
        auto handle = net::NetworkHandle::open(*net_spec, options);
        if (!handle) return std::unexpected(std::move(handle).error().context("--net"));
        auto fds = handle->take_tap_fds();
        if (fds.size() != 1) return fail("--net: expected one tap queue, got {}", fds.size());
        n.tap = std::move(fds.front());
        n.handle = std::move(*handle);
        p.net = std::move(n);
    }
    return p;
}

}  // namespace stockade
