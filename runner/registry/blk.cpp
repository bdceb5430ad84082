#include "runner/registry/blk.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <CLI/CLI.hpp>

#include "base/io.hpp"
#include "runner/virtio/blk.hpp"

namespace stockade {
namespace {

std::string disk_name(std::size_t index) {
    return fmt::format("vd{}", static_cast<char>('a' + index));
}

}  // namespace

Result<DiskSpec> parse_disk_arg(const std::string& arg) {
    DiskSpec d{arg, false};
    if (auto comma = arg.rfind(','); comma != std::string::npos) {
        const std::string opt = arg.substr(comma + 1);
        if (opt == "ro")
            d = {arg.substr(0, comma), true};
        else if (opt == "rw")
            d = {arg.substr(0, comma), false};
        else
            return fail("--disk {}: unknown option '{}' (ro or rw)", arg, opt);
    }
    return d;
}

void BlkKind::add_options(CLI::App& app, Options& options) {
    app.add_option("--disk", options.disks,
                   "raw disk image as virtio-blk (/dev/vda, vdb, ...); PATH[,ro] (repeatable)");
    app.add_option("--rootfs", options.rootfs,
                   "ext4 image PATH[,ro] as /dev/vda and the workload's root file system");
}

Result<> BlkKind::apply(const Options& options, Spec& spec) {
    if (!options.rootfs.empty()) {
        spec.disks.push_back(STOCKADE_TRY(parse_disk_arg(options.rootfs)));
        spec.rootfs = true;
    }
    for (const auto& a : options.disks)
        spec.disks.push_back(STOCKADE_TRY(parse_disk_arg(a)));
    return {};
}

Result<> BlkKind::validate(const Spec& spec) {
    for (const DiskSpec& d : spec.disks)
        if (d.path.empty()) return fail("--disk: empty path");
    if (spec.disks.size() > kMaxDisks) return fail("--disk: at most {} disks", kMaxDisks);
    if (spec.rootfs && spec.disks.empty()) return fail("--rootfs: no disk to use as the root");
    return {};
}

Result<std::optional<BlkKind::Handed>> BlkKind::open(const Spec& spec, OpenContext& ctx) {
    if (spec.disks.empty()) return std::optional<Handed>{};
    Handed disks;
    for (const DiskSpec& d : spec.disks) {
        auto fd = STOCKADE_TRY(open_file(d.path, d.read_only ? O_RDONLY : O_RDWR));
        struct stat st {};
        if (::fstat(fd.get(), &st) != 0) return fail_sys(fmt::format("stat {}", d.path));
        if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode))
            return fail("{}: not a regular file", d.path);
        disks.push_back({std::move(fd), d.read_only, d.path});
    }
    // The policy may pin each disk's digest; it is checked on these very descriptors.
    for (std::size_t i = 0; i < disks.size(); ++i)
        ctx.artefacts.disks[disk_name(i)] = {disks[i].path, disks[i].fd.get()};
    if (spec.rootfs) ctx.job.root = JobRoot{"/dev/vda", spec.disks.front().read_only};
    return std::optional<Handed>(std::move(disks));
}

std::vector<policy::ImageFile> BlkKind::images(const Handed& disks) {
    std::vector<policy::ImageFile> out;
    for (const Disk& d : disks)
        out.push_back({d.fd.get(), d.read_only, d.path});
    return out;
}

std::vector<int> BlkKind::fds(const Handed& disks) {
    std::vector<int> out;
    for (const Disk& d : disks)
        out.push_back(d.fd.get());
    return out;
}

Result<std::vector<BuiltDevice>> BlkKind::build(Handed disks, BuildContext&) {
    std::vector<BuiltDevice> out;
    for (std::size_t i = 0; i < disks.size(); ++i) {
        auto blk = virtio::Blk::create(std::move(disks[i].fd), disks[i].read_only,
                                       "stockade-" + disk_name(i));
        if (!blk) return std::unexpected(std::move(blk).error().context(disks[i].path));
        out.push_back({std::move(*blk), "disk " + disk_name(i)});
    }
    return out;
}

void BlkKind::add_seccomp_rules(DeviceThreadProfiles profiles) {
    // Requests are served on each disk's own thread: zero-copy vectored I/O on the image,
    // and flushes that reach stable storage.
    profiles.device_io.allow({SYS_preadv, SYS_pwritev, SYS_fdatasync});
}

}  // namespace stockade
