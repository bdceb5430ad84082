// The device registry and what is derived from it: options, the PCI bus, the seccomp
// additions; and the pure mapping from platform events to how a run ends.
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>

#include <algorithm>
#include <set>
#include <string>

#include "base/uapi.hpp"
#include "guest/abi.hpp"
#include "runner/cli/run_args.hpp"
#include "runner/registry/device_registry.hpp"
#include "runner/stdio/console_tail.hpp"
#include "runner/supervisor/preparation.hpp"
#include "runner/virtio/blk.hpp"
#include "runner/virtio/net.hpp"
#include "runner/virtio/rng.hpp"
#include "runner/vmm/platform_outcome.hpp"
#include "runner/vmm/seccomp_profiles.hpp"

namespace stockade {
namespace {

using Action = PlatformOutcome::Action;

PlatformEvent agent(guest_abi::Event e, std::uint8_t arg = 0) {
    return {PlatformEventKind::agent, guest_abi::encode(e, arg)};
}

TEST(PlatformOutcome, EachEventEndsTheRunAsDocumented) {
    struct Case {
        PlatformEvent event;
        Action action;
        StopKind kind;
        int status;
        const char* detail;
    };
    const Case cases[] = {
        {{PlatformEventKind::reset},
         Action::stop,
         StopKind::guest_reboot,
         0,
         "keyboard controller reset"},
        {{PlatformEventKind::poweroff}, Action::stop, StopKind::guest_poweroff, 0, "ACPI S5"},
        {{PlatformEventKind::panic},
         Action::stop_after_grace,
         StopKind::guest_panic,
         0,
         "reported through pvpanic"},
        {agent(guest_abi::Event::exited, 42), Action::stop, StopKind::workload_exited, 42, ""},
        {agent(guest_abi::Event::init_failed,
               static_cast<std::uint8_t>(guest_abi::InitFailure::rootfs)),
         Action::stop, StopKind::init_failed, 0, "the root disk could not be mounted"},
        {agent(guest_abi::Event::reboot), Action::stop, StopKind::guest_reboot, 0,
         "requested in the guest"},
        {agent(guest_abi::Event::poweroff), Action::stop, StopKind::guest_poweroff, 0,
         "requested in the guest"},
    };
    for (const Case& c : cases) {
        const PlatformOutcome o = outcome_of(c.event);
        EXPECT_EQ(o.action, c.action) << c.detail;
        EXPECT_EQ(o.reason.kind, c.kind) << c.detail;
        EXPECT_EQ(o.reason.status, c.status) << c.detail;
        EXPECT_EQ(o.reason.detail, c.detail);
    }
    EXPECT_EQ(outcome_of({PlatformEventKind::panic}).grace_ms, kPanicGraceMs);
}

TEST(PlatformOutcome, ReadyIsNotAStopAndUnknownEventsAreIgnored) {
    EXPECT_EQ(outcome_of(agent(guest_abi::Event::ready)).action, Action::ready);
    const PlatformEvent unknown{PlatformEventKind::agent, guest_abi::kMagic | (0x7f << 8)};
    EXPECT_EQ(outcome_of(unknown).action, Action::none);
    EXPECT_EQ(init_failure_text(200), "failure code 200");
}

// A panic's report is shown whole even when its call trace outgrows the usual tail.
TEST(ConsoleTail, APanicReportIsShownFromItsFirstLine) {
    ConsoleTail console;
    std::string text = "boot\n[ 1.0] Kernel panic - not syncing: sysrq triggered crash\n";
    for (int i = 0; i < 60; ++i)
        text += "[ 1.0]  ? frame+0x10/0x20\n";
    text += "[ 1.0] ---[ end Kernel panic - not syncing: sysrq triggered crash ]---\n";
    console.append(std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
    EXPECT_EQ(console.last_lines(40).find("] Kernel panic"), std::string::npos) << "cut off";
    const std::string report = console.from_last("Kernel panic - not syncing", 200);
    EXPECT_TRUE(report.starts_with("[ 1.0] Kernel panic - not syncing: sysrq")) << report;
    EXPECT_TRUE(report.ends_with("]---\n"));
    EXPECT_EQ(console.from_last("Kernel panic - not syncing", 10), "") << "too long: none";
    EXPECT_EQ(console.from_last("Oops", 200), "");
}

TEST(DeviceRegistry, KindsHaveDistinctNamesAndVirtioIds) {
    std::set<std::string> names;
    std::set<std::uint32_t> ids;
    std::size_t count = 0;
    DeviceKinds::each([&]<class K>(std::type_identity<K>) {
        names.insert(std::string(K::kName));
        ids.insert(K::kVirtioId);
        ++count;
    });
    EXPECT_EQ(names.size(), count);
    EXPECT_EQ(ids.size(), count);
}

// stockade-init loads the driver of every device the runner attaches from guest/abi.hpp's
// table: a kind without an entry there would boot a guest that never sees its device.
// A passed-through device is the one exception: the guest's driver is the device's own.
TEST(DeviceRegistry, EveryKindHasItsGuestDriverInTheContract) {
    DeviceKinds::each([&]<class K>(std::type_identity<K>) {
        if (K::kVirtioId == kNotVirtio) {
            EXPECT_EQ(K::kName, VfioKind::kName) << "only passthrough is not virtio";
            return;
        }
        EXPECT_FALSE(guest_abi::virtio_driver_module(K::kVirtioId).empty()) << K::kName;
    });
}

// The PCI class each device reports through its transport.
TEST(DeviceRegistry, DevicesSayTheirPciClass) {
    EXPECT_EQ(virtio::Rng().pci_class(), 0xff0000u);  // unclassified
    FILE* image = std::tmpfile();
    ASSERT_NE(image, nullptr);
    ASSERT_EQ(::ftruncate(::fileno(image), 1 << 20), 0);
    auto blk = virtio::Blk::create(UniqueFd(::dup(::fileno(image))), false, "t");
    std::fclose(image);
    ASSERT_TRUE(blk) << blk.error().message;
    EXPECT_EQ((*blk)->pci_class(), 0x010000u);  // mass storage
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    ::close(sv[1]);
    virtio::NetBackend backend{
        UniqueFd(sv[0]), {2, 0, 0, 0, 0, 1}, std::nullopt, std::nullopt, false};
    auto net = virtio::Net::create(std::move(backend));
    ASSERT_TRUE(net) << net.error().message;
    EXPECT_EQ((*net)->pci_class(), 0x020000u);  // network controller
}

TEST(DeviceRegistry, EveryKindsOptionsFillItsSpec) {
    auto a = parse_run_args({"--rootfs", "/r.img,ro", "--disk", "/d.img", "--rng", "--net",
                             "vhost=off,addr=169.254.1.2/16", "--stdio", "serial", "true"});
    ASSERT_TRUE(a) << a.error().message;
    const SandboxSpec& s = a->spec;
    const auto& blk = s.device<BlkKind>();
    ASSERT_EQ(blk.disks.size(), 2u);
    EXPECT_EQ(blk.disks[0], (DiskSpec{"/r.img", true}));
    EXPECT_EQ(blk.disks[1], (DiskSpec{"/d.img", false}));
    EXPECT_TRUE(blk.rootfs);
    EXPECT_TRUE(s.device<RngKind>().enabled);
    ASSERT_TRUE(s.device<NetKind>().has_value());
    EXPECT_EQ(s.device<NetKind>()->vhost, VhostMode::off);
    EXPECT_EQ(s.device<NetKind>()->address, "169.254.1.2/16");
    EXPECT_EQ(s.device<VsockKind>().stdio, StdioMode::serial);

    auto none = parse_run_args({"true"});
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->spec.device<BlkKind>().disks.empty());
    EXPECT_FALSE(none->spec.device<RngKind>().enabled);
    EXPECT_FALSE(none->spec.device<NetKind>().has_value());
    EXPECT_FALSE(parse_run_args({"--disk", "/d.img,rx", "true"}));
}

TEST(DeviceRegistry, TheGuestHasAPciBusExactlyWhenADeviceIsBuilt) {
    DeviceKinds::Handed handed;
    EXPECT_FALSE(plans_pci_bus(handed));
    part_of<BlkKind>(handed).emplace();  // a kind present with no instance builds nothing
    EXPECT_FALSE(plans_pci_bus(handed));
    part_of<RngKind>(handed).emplace();
    EXPECT_TRUE(plans_pci_bus(handed));
    DeviceKinds::Handed disk_only;
    part_of<BlkKind>(disk_only).emplace().push_back({});
    EXPECT_TRUE(plans_pci_bus(disk_only));
}

bool allows_ioctl(const policy::SeccompProfile& p, std::uint64_t request) {
    const auto& ioctls = p.allowed_ioctls();
    return std::any_of(ioctls.begin(), ioctls.end(),
                       [&](const policy::IoctlRequest& r) { return r.number == request; });
}

bool allows(const policy::SeccompProfile& p, const char* call) {
    const auto names = p.allowed_syscalls();
    return std::find(names.begin(), names.end(), call) != names.end();
}

TEST(DeviceRegistry, ASandboxsFiltersCarryOnlyItsOwnDevicesAdditions) {
    const DeviceKinds::Handed none;
    const auto bare = sandbox_seccomp_profiles(policy::SeccompMode::kill, none);
    for (const auto* p : {&bare.vcpu, &bare.event_loop, &bare.device_io}) {
        EXPECT_FALSE(allows_ioctl(*p, VHOST_SET_MEM_TABLE)) << p->name();
        EXPECT_FALSE(allows_ioctl(*p, TUNSETOFFLOAD)) << p->name();
        EXPECT_FALSE(allows(*p, "preadv")) << p->name();
        EXPECT_FALSE(allows(*p, "getrandom")) << p->name();
    }
    DeviceKinds::Handed disk;
    part_of<BlkKind>(disk).emplace();
    const auto with_disk = sandbox_seccomp_profiles(policy::SeccompMode::kill, disk);
    // A disk's requests are served on its own thread, never on the event loop or a vCPU.
    EXPECT_TRUE(allows(with_disk.device_io, "preadv"));
    EXPECT_TRUE(allows(with_disk.device_io, "pwritev"));
    EXPECT_TRUE(allows(with_disk.device_io, "fdatasync"));
    EXPECT_FALSE(allows(with_disk.event_loop, "preadv")) << "requests are served on their thread";
    EXPECT_FALSE(allows(with_disk.event_loop, "fdatasync"));
    EXPECT_FALSE(allows(with_disk.vcpu, "preadv")) << "requests are served on their thread";
    EXPECT_FALSE(allows_ioctl(with_disk.vcpu, VHOST_SET_MEM_TABLE));
    // VFIO: the vCPU threads serve the passed-through function's trapped accesses.
    for (const auto* p : {&bare.vcpu, &bare.event_loop, &with_disk.vcpu}) {
        EXPECT_FALSE(allows(*p, "pread64")) << p->name();
        EXPECT_FALSE(allows_ioctl(*p, VFIO_DEVICE_SET_IRQS)) << p->name();
        EXPECT_FALSE(allows_ioctl(*p, KVM_SET_USER_MEMORY_REGION)) << p->name();
    }
    DeviceKinds::Handed passthrough;
    part_of<VfioKind>(passthrough).emplace();
    const auto with_vfio = sandbox_seccomp_profiles(policy::SeccompMode::kill, passthrough);
    EXPECT_TRUE(allows(with_vfio.vcpu, "pread64"));
    EXPECT_TRUE(allows(with_vfio.vcpu, "pwrite64"));
    EXPECT_TRUE(allows_ioctl(with_vfio.vcpu, VFIO_DEVICE_SET_IRQS));
    EXPECT_TRUE(allows_ioctl(with_vfio.vcpu, KVM_SET_USER_MEMORY_REGION)) << "BARs that move";
    EXPECT_FALSE(allows(with_vfio.event_loop, "pread64"));
    EXPECT_FALSE(allows_ioctl(with_vfio.vcpu, VFIO_IOMMU_MAP_DMA)) << "mapped before the filters";
    EXPECT_FALSE(allows_ioctl(with_vfio.vcpu, VFIO_DEVICE_RESET)) << "reset before the filters";
}

// A terminal's window size: the event loop may read it from stdin and nothing more, and only
// in a sandbox that has one.
TEST(DeviceRegistry, OnlyATerminalsEventLoopReadsStdinsWindowSize) {
    const auto reads_window = [](const policy::SeccompProfile& p) {
        return std::any_of(p.rules().begin(), p.rules().end(), [](const auto& r) {
            return r.syscall == SYS_ioctl && r.conditions.size() == 2 && r.conditions[0].arg == 0 &&
                   r.conditions[0].value == STDIN_FILENO && r.conditions[1].arg == 1 &&
                   r.conditions[1].value == TIOCGWINSZ;
        });
    };
    const DeviceKinds::Handed none;
    const auto plain = sandbox_seccomp_profiles(policy::SeccompMode::kill, none);
    const auto tty = sandbox_seccomp_profiles(policy::SeccompMode::kill, none, true);
    EXPECT_FALSE(reads_window(plain.event_loop));
    EXPECT_TRUE(reads_window(tty.event_loop));
    for (const auto* p : {&tty.vcpu, &tty.api, &tty.stdio_relay, &tty.device_io})
        EXPECT_FALSE(reads_window(*p)) << p->name();
    EXPECT_FALSE(allows_ioctl(tty.event_loop, TIOCSWINSZ));
    EXPECT_TRUE(tty.event_loop.export_bpf()) << "the rule compiles beside the others";
}

// Calls no thread makes once its filter is loaded are in no profile: vhost features are
// read when the device is built (before the filters), MSIs go through irqfds, the tap's
// header size is set by netsetup, disk I/O is vectored, and only the vCPU threads touch a
// passed-through device (pread64/pwrite64 on its descriptor).
TEST(DeviceRegistry, NoProfileAllowsWhatNoThreadCalls) {
    for (const auto& p : runner_seccomp_profiles(policy::default_policy())) {
        for (std::uint64_t r : {std::uint64_t{KVM_SIGNAL_MSI}, std::uint64_t{VHOST_GET_FEATURES},
                                std::uint64_t{TUNSETVNETHDRSZ}, std::uint64_t{VFIO_IOMMU_MAP_DMA}})
            EXPECT_FALSE(allows_ioctl(p, r)) << p.name() << ": " << r;
        EXPECT_FALSE(allows(p, "readv")) << p.name();
        if (p.name() == "vcpu") continue;
        for (const char* call : {"pread64", "pwrite64"})
            EXPECT_FALSE(allows(p, call)) << p.name() << ": " << call;
    }
}

}  // namespace
}  // namespace stockade
