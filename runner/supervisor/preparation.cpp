#include "runner/supervisor/preparation.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <tuple>

#include "base/io.hpp"
#include "base/log.hpp"
#include "guest/job.hpp"
#include "policy/artefacts.hpp"
#include "runner/arch/x86/kernel_release.hpp"
#include "runner/arch/x86/memory_map.hpp"
#include "runner/kvm/kvm.hpp"
#include "runner/supervisor/seal_helper.hpp"
#include "runner/supervisor/snapshot_files.hpp"
#include "runner/vmm/lazy_memory.hpp"
#include "runner/vmm/machine_state.hpp"
#include "runner/vmm/snapshot_io.hpp"

namespace stockade {
namespace {

constexpr std::size_t kMaxKernelBytes = 256u << 20;
constexpr std::size_t kMaxInitrdBytes = 2048u << 20;
// What the runner itself may use beside guest memory under memory.max: page tables, thread
// stacks, buffers (measured well under 16 MiB; the margin is deliberate).
constexpr std::uint64_t kVmmOverhead = 64u << 20;

// A boot image's size, refused above `max`.
Result<std::size_t> image_size(int fd, std::size_t max, const std::string& what) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail_sys(fmt::format("stat {}", what));
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size > max) return fail("{}: larger than {} MiB", what, max >> 20);
    return static_cast<std::size_t>(size);
}

// The whole of a boot image, read once into fresh anonymous memory of its exact size (the
// file's size at open; a file whose size has changed by the time the images are checked is
// refused rather than half-booted: read_boot_images). Not a vector, which would zero-fill
// 50 MB the kernel has already zeroed; huge pages make the read fault once per 2 MiB.
Result<Mapping> read_all_fd(int fd, std::size_t max, const std::string& what) {
    const std::size_t size = STOCKADE_TRY(image_size(fd, max, what));
    Mapping out;
    if (size > 0) {
        out = STOCKADE_TRY(Mapping::anonymous(size, 0, kHugePageSize));
        (void)::madvise(out.data(), out.size(), MADV_HUGEPAGE);  // a hint: speed only
        STOCKADE_TRY_VOID(pread_exact(fd, out.bytes(), 0, what));
    }
    return out;
}

// A boot image whose digest the policy does not pin: mapped from its file, private and
// read-only, so that the only copy is the one into guest memory. Populated here, so that its
// page cache is read (and charged) in the supervisor as a read would be, not in the sandbox's
// cgroup. The file is the operator's: replace it by renaming a new one over it, as package
// managers do (the mapping keeps the old one); one rewritten in place while a sandbox starts
// could boot torn, and one truncated would fault (SIGBUS) before the guest runs. A size
// change until the images are checked is refused (read_boot_images).
Result<Mapping> map_all_fd(int fd, std::size_t max, const std::string& what) {
    const std::size_t size = STOCKADE_TRY(image_size(fd, max, what));
    if (size == 0) return Mapping{};
    auto mapped = Mapping::of_fd(fd, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, 0, 0);
    if (mapped) return mapped;
    // A file system that cannot map files: read it, as a pinned image is.
    log::debug("{}: {}; reading it instead", what, mapped.error().message);
    return read_all_fd(fd, max, what);
}

// Opens a boot image: only a regular file.
Result<UniqueFd> open_boot_image(const std::string& path) {
    auto fd = STOCKADE_TRY(open_file(path, O_RDONLY));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return fail_sys(fmt::format("stat {}", path));
    if (!S_ISREG(st.st_mode)) return fail("{}: not a regular file", path);
    return fd;
}

// The job archive stockade-init reads: the workload, and what each device kind added.
Job core_job(const SandboxSpec& spec) {
    Job job{spec.argv, spec.env, spec.workdir, spec.hostname, {}, {}, {}};
    job.wait_for_start = spec.wait_for_start;
    job.terminal = spec.terminal;
    job.process = spec.process;
    return job;
}

// Phase 1 of every device kind: files and device nodes, nothing the host sees.
Result<> open_devices(const SandboxSpec& spec, OpenContext& ctx, DeviceKinds::Handed& handed) {
    return DeviceKinds::each_until_error([&]<class K>(std::type_identity<K>) -> Result<> {
        part_of<K>(handed) = STOCKADE_TRY(K::open(spec.device<K>(), ctx));
        return {};
    });
}

// Phase 2: host resources, once every check has passed.
Result<> claim_devices(const SandboxSpec& spec, ClaimContext& ctx, DeviceKinds::Handed& handed,
                       DeviceKinds::Hosts& hosts) {
    return DeviceKinds::each_until_error([&]<class K>(std::type_identity<K>) -> Result<> {
        if (auto& h = part_of<K>(handed))
            part_of<K>(hosts) = STOCKADE_TRY(K::claim(*h, spec.device<K>(), ctx));
        return {};
    });
}

// Reads (or maps) the boot images and checks every pinned digest on the bytes that were read.
Result<> read_boot_images(const SandboxSpec& spec, BootPlan& boot,
                          policy::SandboxArtefacts& artefacts, const policy::Policy& policy) {
    auto kernel_fd = STOCKADE_TRY(open_boot_image(spec.kernel));
    auto initrd_fd = STOCKADE_TRY(open_boot_image(spec.initrd));
    // Read when a digest is pinned (the bytes hashed are then the bytes booted), else mapped.
    auto load = [](bool pinned, int fd, std::size_t max, const std::string& what) {
        return pinned ? read_all_fd(fd, max, what) : map_all_fd(fd, max, what);
    };
    boot.kernel_file = STOCKADE_TRY(
        load(policy.digests.kernel.has_value(), kernel_fd.get(), kMaxKernelBytes, spec.kernel));
    boot.initrd = STOCKADE_TRY(
        load(policy.digests.initrd.has_value(), initrd_fd.get(), kMaxInitrdBytes, spec.initrd));
    artefacts.kernel = {spec.kernel, kernel_fd.get(), boot.kernel_file.bytes()};
    artefacts.initrd = policy::Artefact{spec.initrd, initrd_fd.get(), boot.initrd.bytes()};
    STOCKADE_TRY_VOID(policy::verify_artefacts(policy.digests, artefacts));
    auto kernel = x86::parse_kernel(boot.kernel_file.bytes());
    if (!kernel) return std::unexpected(std::move(kernel).error().context(spec.kernel));
    boot.kernel = *kernel;
    STOCKADE_TRY_VOID(x86::check_initramfs_format(boot.initrd.bytes(), spec.initrd));
    // Each image must still be the size it was read or mapped at, now that it has been checked.
    for (const auto& [fd, image, what] :
         {std::tuple{kernel_fd.get(), &boot.kernel_file, &spec.kernel},
          std::tuple{initrd_fd.get(), &boot.initrd, &spec.initrd}})
        if (STOCKADE_TRY(image_size(fd, SIZE_MAX, *what)) != image->size())
            return fail("{}: changed size while being read", *what);
    // A kernel whose release differs from the initramfs's modules would fail only inside
    // the guest ("the console could not be configured"): name both releases now.
    return x86::check_kernel_matches_initramfs(boot.kernel_file.bytes(), boot.initrd.bytes(),
                                               spec.kernel, spec.initrd);
}

// The one checked boot plan: command line, job and where everything goes in guest memory.
Result<> plan(const SandboxSpec& spec, const Job& job, bool has_pci, BootPlan& boot) {
    boot.job = build_job_archive(job);
    boot.has_pci = has_pci;
    boot.cmdline = default_kernel_cmdline(has_pci);
    if (!spec.extra_cmdline.empty()) boot.cmdline += " " + spec.extra_cmdline;
    boot.layout = STOCKADE_TRY(x86::plan_boot(boot.kernel, x86::ram_regions(spec.memory_mib << 20),
                                              boot.initrd.size() + boot.job.size(), boot.cmdline));
    return {};
}

// /dev/kvm, and what this host's KVM can do for the spec.
Result<kvm::Kvm> open_kvm(const SandboxSpec& spec) {
    auto kvm = STOCKADE_TRY(kvm::Kvm::open());
    STOCKADE_TRY_VOID(check_vcpus(spec.vcpus, static_cast<std::uint32_t>(std::max(
                                                  1, kvm.check_extension(KVM_CAP_MAX_VCPUS)))));
    STOCKADE_TRY_VOID(kvm::check_required_capabilities(kvm));
    return kvm;
}

}  // namespace

bool plans_pci_bus(const DeviceKinds::Handed& handed) {
    std::size_t n = 0;
    DeviceKinds::each([&]<class K>(std::type_identity<K>) {
        if (const auto& h = part_of<K>(handed)) n += K::device_count(*h);
    });
    return n > 0;
}

std::vector<policy::ImageFile> disk_images(const DeviceKinds::Handed& handed) {
    std::vector<policy::ImageFile> out;
    DeviceKinds::each([&]<class K>(std::type_identity<K>) {
        if constexpr (requires(const typename K::Handed& h) { K::images(h); })
            if (const auto& h = part_of<K>(handed))
                for (auto& image : K::images(*h))
                    out.push_back(std::move(image));
    });
    return out;
}

std::string new_sandbox_id() {
    std::uint8_t r[6] = {};
    (void)!::getrandom(r, sizeof r, 0);
    return fmt::format("sb-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}", r[0], r[1], r[2], r[3], r[4],
                       r[5]);
}

std::string default_kernel_cmdline(bool has_pci) {
    // console on COM1 but quiet (every byte on a UART is a VM exit); reset through the
    // keyboard controller; reboot at once on panic (pvpanic has told us by then); one
    // legacy UART to probe; no PCI bus scan when the machine has no PCI devices; no boot-time
    // self-tests of the kernel's crypto algorithms (a diagnostic outside FIPS mode, as in Kata
    // Containers' defaults: 0.35 s of a 2.7 s boot in the lab; `--cmdline
    // cryptomgr.notests=0` brings them back).
    std::string c = "console=ttyS0 quiet reboot=k panic=-1 8250.nr_uarts=1 cryptomgr.notests";
    if (!has_pci) c += " pci=off";
    return c;
}

namespace {

// A restore: the snapshot opened and checked (lengths, digests: the memory's unless the
// caller skips it), its state and memory handed over, and each writable disk given back the
// contents it had in the steps the caller runs last (RestoreSteps), once nothing else can
// refuse; a sealed snapshot's state and memory are decrypted there too, before the disks.

// A sealed part's plaintext in a memory file of its own, every chunk authenticated by
// stockade-seal on the way; the helper runs in `cgroup`, which its pages are charged to.
Result<UniqueFd> unsealed_memfd(const OpenedSnapshot& snap, const std::string& part, int cgroup) {
    UniqueFd fd(::memfd_create(("stockade-" + part).c_str(), MFD_CLOEXEC));
    if (!fd) return fail_sys("memfd_create");
    if (auto o = open_sealed_part(snap.seal_key, part, snap.fd(part), snap.sealed_manifest.get(),
                                  fd.get(), false, cgroup);
        !o)
        return std::unexpected(std::move(o).error().context(snap.dir));
    return fd;
}

// A sealed disk copy's plaintext in an unnamed file in the image's directory (its file system
// takes the image's size), or in a memory file where that cannot be made.
Result<UniqueFd> unsealed_beside(const OpenedSnapshot& snap, const std::string& part,
                                 const std::string& image) {
    const std::string dir = std::filesystem::path(image).parent_path().string();
    UniqueFd fd(::open(dir.empty() ? "." : dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!fd) fd = UniqueFd(::memfd_create(("stockade-" + part).c_str(), MFD_CLOEXEC));
    if (!fd) return fail_sys(fmt::format("a file for {} beside {}", part, image));
    STOCKADE_TRY_VOID(
        open_sealed_part(snap.seal_key, part, snap.fd(part), snap.sealed_manifest.get(), fd.get()));
    return fd;
}

Result<> open_restore(const SandboxSpec& spec, SandboxResources& sandbox, RestoreSteps& disks_out) {
    // A sealed memory part is loaded lazily where this host lets the sandbox make a
    // userfaultfd for KVM's faults: authenticated whole first unless the caller skips that,
    // and each chunk again as it is placed. Else it is decrypted eagerly, below, which
    // authenticates every chunk, as it does the state.
    const bool user_ns = sandbox.policy.namespaces.has(policy::Namespace::user);
    const bool lazy_sealed = !spec.seal_key.empty() && lazy_sealed_restore_possible(user_ns);
    // The loader runs as the sandbox: its ids (root starts it), else ours (an unprivileged
    // start, whose sandbox's ids inside its user namespace are ours outside).
    const bool root = ::geteuid() == 0;
    const std::uint32_t loader_uid = root ? sandbox.policy.uid : ::geteuid();
    const std::uint32_t loader_gid = root ? sandbox.policy.gid : ::getegid();
    const bool memory_decrypted_below = !spec.seal_key.empty() && !lazy_sealed;
    std::vector<std::string> skip;
    if (!spec.seal_key.empty()) skip.push_back("state");
    if (memory_decrypted_below || !spec.verify_memory) skip.push_back("memory");
    // The sealed state is decrypted by stockade-seal below, which checks its header then: no
    // separate run of it for that here. Nor of the memory's header when its loader checks
    // it: the loader says so (or fails) before any disk is given back its copy.
    std::vector<std::string> opened_later;
    if (!spec.seal_key.empty()) opened_later.push_back("state");
    if (lazy_sealed && !spec.verify_memory) opened_later.push_back("memory");
    OpenedSnapshot snap =
        STOCKADE_TRY(open_snapshot(spec.restore_from, true, skip, spec.seal_key, opened_later));
    const SnapshotManifest& m = snap.manifest;
    // Before anything is mapped: the sizes this sandbox can take.
    if (m.parts.at("state").size > kMaxSnapshotState ||
        m.parts.at("memory").size != (spec.memory_mib << 20))
        return fail(
            "{}: a state of {} bytes (at most {}) and memory of {} bytes (the sandbox "
            "has {} MiB)",
            spec.restore_from, m.parts.at("state").size, kMaxSnapshotState,
            m.parts.at("memory").size, spec.memory_mib);
    if (m.machine_state_version != kMachineStateVersion)
        return fail("{}: machine state of version {}; this stockade restores version {}",
                    spec.restore_from, m.machine_state_version, kMachineStateVersion);
    if (m.vcpus != spec.vcpus || m.memory_mib != spec.memory_mib)
        return fail("{}: the snapshot has {} vCPUs and {} MiB, the sandbox {} and {}",
                    spec.restore_from, m.vcpus, m.memory_mib, spec.vcpus, spec.memory_mib);
    std::vector<BlkKind::Disk*> writable;
    if (auto& disks = part_of<BlkKind>(sandbox.devices))
        for (auto& d : *disks)
            if (!d.read_only) writable.push_back(&d);
    if (writable.size() != m.disks.size())
        return fail("{}: the snapshot has copies of {} writable disks, the sandbox has {}",
                    spec.restore_from, m.disks.size(), writable.size());
    auto same_file = [](int fd, const std::string& path) {
        struct stat a {
        }, b{};
        return ::fstat(fd, &a) == 0 && ::stat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
               a.st_ino == b.st_ino && S_ISREG(a.st_mode);
    };
    for (std::size_t i = 0; i < writable.size(); ++i)
        if (!same_file(writable[i]->fd.get(), m.disks[i].image))
            return fail("{}: disk {} is {}, the snapshot's copy is of {} (a regular file)",
                        spec.restore_from, i, writable[i]->path, m.disks[i].image);
    if (!m.sealed) {
        sandbox.restore_state = std::move(snap.parts.at("state"));
        sandbox.restore_memory = std::move(snap.parts.at("memory"));
    }
    // The disk parts stay open for the copies, which come last.
    const std::vector<SnapshotDisk> copies = m.disks;  // `m` goes with `snap`, below
    auto kept = std::make_shared<OpenedSnapshot>(std::move(snap));
    if (kept->manifest.sealed)
        // Sealed, with the host's other resources, last: the state decrypted into a memory
        // file of its own; the memory served lazily by its loader in the sandbox's cgroup, or
        // decrypted into a memory file too (mapped shared, as nothing else holds it). Before
        // any disk is written: a chunk that fails leaves the images as they were.
        disks_out.push_back([kept, lazy_sealed, loader_uid, loader_gid](SandboxResources& to,
                                                                        int cgroup) -> Result<> {
            if (lazy_sealed) {
                // The loader decrypts the state too (one helper started, not two).
                UniqueFd state(::memfd_create("stockade-state", MFD_CLOEXEC));
                if (!state) return fail_sys("memfd_create");
                auto loader = start_memory_loader(kept->seal_key, "memory", kept->fd("memory"),
                                                  kept->sealed_manifest.get(), cgroup, loader_uid,
                                                  loader_gid, kept->fd("state"), state.get());
                if (!loader) return std::unexpected(std::move(loader).error().context(kept->dir));
                to.restore_loader = std::move(*loader);
                to.restore_state = std::move(state);
                return {};
            }
            to.restore_state = STOCKADE_TRY(unsealed_memfd(*kept, "state", cgroup));
            to.restore_memory = STOCKADE_TRY(unsealed_memfd(*kept, "memory", cgroup));
            to.restore_memory_shared = true;
            return {};
        });
    for (std::size_t i = 0; i < writable.size(); ++i) {
        const int image = writable[i]->fd.get();
        const std::string part_name = copies[i].part, image_path = writable[i]->path;
        disks_out.push_back(
            [kept, image, part_name, image_path](SandboxResources&, int) -> Result<> {
                // A sealed copy was authenticated whole by open_snapshot; it is again as it is
                // decrypted into the image.
                Result<> c;
                if (kept->manifest.sealed) {
                    // Decrypted beside the image first (every chunk authenticated on the way),
                    // then copied in: a chunk that fails leaves the image as it was.
                    auto plain = unsealed_beside(*kept, part_name, image_path);
                    if (!plain)
                        c = std::unexpected(std::move(plain).error());
                    else if (auto r = restore_disk(plain->get(), image); !r)
                        c = std::unexpected(std::move(r).error());
                } else if (auto r = restore_disk(kept->fd(part_name), image); !r) {
                    c = std::unexpected(std::move(r).error());
                }
                if (!c)
                    return std::unexpected(std::move(c).error().context(
                        fmt::format("putting {} back into {}", part_name, image_path)));
                return {};
            });
    }
    return {};
}

}  // namespace

Result<Preparation> prepare(const SandboxSpec& spec) {
    const auto started = std::chrono::steady_clock::now();
    // Step 1: the spec and the policy, checked without touching anything.
    STOCKADE_TRY_VOID(validate(spec, HostLimits{host_ram_bytes(), kMaxVcpus}));
    Preparation prep;
    SupervisorState& supervisor = prep.supervisor;
    SandboxResources& sandbox = prep.sandbox;
    sandbox.prepare_started = started;
    supervisor.policy = spec.policy_file.empty()
                            ? policy::default_policy()
                            : STOCKADE_TRY(policy::load_policy_file(spec.policy_file));
    supervisor.id = spec.id.empty() ? new_sandbox_id() : spec.id;
    STOCKADE_TRY_VOID(policy::check_sandbox_id(supervisor.id));
    sandbox.spec = spec;
    sandbox.policy = supervisor.policy;
    sandbox.id = supervisor.id;

    // Steps 2 and 4: every file and device node, opened once; pinned digests checked on the
    // descriptors that were read, so nothing can be swapped between the check and the use.
    policy::SandboxArtefacts artefacts;
    Job job = core_job(spec);
    OpenContext open{supervisor.id, supervisor.policy, artefacts, job};
    STOCKADE_TRY_VOID(open_devices(spec, open, sandbox.devices));
    if (!spec.restore_from.empty()) STOCKADE_TRY_VOID(open_restore(spec, sandbox, prep.restore));
    const auto reading = std::chrono::steady_clock::now();
    STOCKADE_TRY_VOID(read_boot_images(spec, sandbox.boot, artefacts, supervisor.policy));
    sandbox.images_read_us = std::chrono::duration_cast<std::chrono::microseconds>(
                                 std::chrono::steady_clock::now() - reading)
                                 .count();
    STOCKADE_TRY_VOID(plan(spec, job, plans_pci_bus(sandbox.devices), sandbox.boot));
    STOCKADE_TRY_VOID(
        policy::check_guest_memory_fits(supervisor.policy, spec.memory_mib << 20, kVmmOverhead));
    sandbox.kvm = STOCKADE_TRY(open_kvm(spec));
    if (!spec.metrics_path.empty()) {
        auto metrics = open_file(spec.metrics_path,
                                 O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (!metrics) return std::unexpected(std::move(metrics).error().context("--metrics-path"));
        sandbox.metrics_file = std::move(*metrics);
    }

    // Step 3, last: host resources, now that nothing can be refused.
    ClaimContext claim{supervisor.id, job, !spec.restore_from.empty()};
    STOCKADE_TRY_VOID(claim_devices(spec, claim, sandbox.devices, supervisor.hosts));
    // Only the control stream can say start.
    // (A restore that waits is started by letting its vCPUs go, not on the control stream.)
    if (spec.wait_for_start && !job.vsock_port && spec.restore_from.empty())
        return fail("stockade create needs stdio over vsock (/dev/vhost-vsock and --stdio vsock)");
    if (spec.terminal && !job.vsock_port)
        return fail("a terminal needs stdio over vsock (/dev/vhost-vsock and --stdio vsock)");
    const std::size_t planned = sandbox.boot.job.size();
    sandbox.boot.job = build_job_archive(job);
    if (sandbox.boot.job.size() != planned)
        return fail("the job archive changed size after the boot was planned ({} -> {} bytes)",
                    planned, sandbox.boot.job.size());
    return prep;
}

}  // namespace stockade
