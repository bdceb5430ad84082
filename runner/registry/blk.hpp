#pragma once
// virtio-blk disks: `--disk PATH[,ro]` (repeatable) and `--rootfs PATH[,ro]`, the first disk
// and the workload's root file system (runner/virtio/blk.hpp is the device).
#include <string>
#include <vector>

#include "policy/selinux_images.hpp"
#include "runner/registry/device_kind.hpp"

namespace stockade {

struct DiskSpec {
    std::string path;
    bool read_only = false;
    bool operator==(const DiskSpec&) const = default;
};

struct BlkKind {
    static constexpr std::string_view kName = "blk";
    static constexpr std::uint32_t kVirtioId = virtio::kTypeBlock;
    static constexpr std::size_t kMaxDisks = 16;

    struct Options {
        std::vector<std::string> disks;
        std::string rootfs;
    };
    struct Spec {
        std::vector<DiskSpec> disks;  // /dev/vda, /dev/vdb, ... in order
        bool rootfs = false;          // the first disk is the workload's root file system
    };
    struct Disk {
        UniqueFd fd;
        bool read_only = false;
        std::string path;
    };
    using Handed = std::vector<Disk>;
    // The images, for their SELinux labels during the run (the supervisor's, by descriptor).
    [[nodiscard]] static std::vector<policy::ImageFile> images(const Handed& disks);
    using Host = NoHostState;

    static void add_options(CLI::App& app, Options& options);
    [[nodiscard]] static Result<> apply(const Options& options, Spec& spec);
    [[nodiscard]] static Result<> validate(const Spec& spec);
    [[nodiscard]] static Result<std::optional<Handed>> open(const Spec& spec, OpenContext& ctx);
    [[nodiscard]] static Result<Host> claim(Handed&, const Spec&, ClaimContext&) { return {}; }
    [[nodiscard]] static std::vector<int> fds(const Handed& disks);
    [[nodiscard]] static std::size_t device_count(const Handed& disks) { return disks.size(); }
    [[nodiscard]] static Result<std::vector<BuiltDevice>> build(Handed disks, BuildContext& ctx);
    static void add_seccomp_rules(DeviceThreadProfiles profiles);
};

// "PATH", "PATH,ro" or "PATH,rw" (the text of --disk and --rootfs).
[[nodiscard]] Result<DiskSpec> parse_disk_arg(const std::string& arg);

}  // namespace stockade
