// The supervisor's inspection of a host PCI device for VFIO, on fake sysfs trees laid out as
// the kernel lays out /sys (real directories under devices/, symbolic links under bus/ and
// kernel/iommu_groups/), and the assignability rules on what it read.
#include "vfio/host_device.hpp"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>

#include "tests/support/temp_dir.hpp"

namespace stockade::vfio {
namespace {

namespace fs = std::filesystem;

PciAddress addr(std::string_view text) {
    auto a = parse_pci_address(text);
    EXPECT_TRUE(a) << text;
    return a.value_or(PciAddress{});
}

void write(const fs::path& path, std::string_view content) {
    std::ofstream out(path);
    out << content;
    ASSERT_TRUE(out.good()) << path;
}

// A /sys of our own making: each device is a directory under devices/pci0000:00/ with its
// vendor and device files, linked from bus/pci/devices/, with a `driver` link into
// bus/pci/drivers/ and an `iommu_group` link into kernel/iommu_groups/ whose devices/ lists it.
class FakeSysfs {
  public:
    FakeSysfs() : tmp_("stockade-vfio") {
        EXPECT_FALSE(tmp_.path.empty());
        fs::create_directories(root() / "bus/pci/devices");
        fs::create_directories(root() / "kernel/iommu_groups");
    }

    const fs::path& root() const { return tmp_.path; }
    fs::path device_dir(std::string_view a) const { return root() / "devices/pci0000:00" / a; }

    // `driver` "" leaves the device unbound; no `group` leaves it without an IOMMU group.
    void add(std::string_view a, std::string_view driver, std::optional<unsigned> group,
             std::string_view vendor = "0x8086\n", std::string_view device = "0x10d3\n") {
        const fs::path dir = device_dir(a);
        fs::create_directories(dir);
        write(dir / "vendor", vendor);
        write(dir / "device", device);
        fs::create_directory_symlink(fs::path("../../../devices/pci0000:00") / a,
                                     root() / "bus/pci/devices" / a);
        if (!driver.empty()) bind(a, driver);
        if (group) {
            const fs::path members =
                root() / "kernel/iommu_groups" / std::to_string(*group) / "devices";
            fs::create_directories(members);
            fs::create_directory_symlink(fs::path("../../../../devices/pci0000:00") / a,
                                         members / a);
            fs::create_directory_symlink(
                fs::path("../../../kernel/iommu_groups") / std::to_string(*group),
                dir / "iommu_group");
        }
    }

    void bind(std::string_view a, std::string_view driver) {
        fs::create_directories(root() / "bus/pci/drivers" / driver);
        fs::create_directory_symlink(fs::path("../../../bus/pci/drivers") / driver,
                                     device_dir(a) / "driver");
    }

  private:
    test::TempDir tmp_;
};

// The error's message, or a failure when there is none.
template <typename T>
std::string error_of(const Result<T>& r) {
    EXPECT_FALSE(r) << "succeeded";
    return r ? std::string() : r.error().message;
}

bool has(const std::string& msg, std::string_view part) {
    return msg.find(part) != std::string::npos;
}

TEST(vfio_host_device, ReadsDeviceDriverIdsAndTheWholeGroupSorted) {
    FakeSysfs sys;
    // Made out of order: the listing's order is the file system's, the result's the address's.
    sys.add("0000:01:00.1", "", 7);
    sys.add("0000:01:00.0", "vfio-pci", 7, "0x1af4\n", "0x1041\n");
    sys.add("0000:00:1c.0", "pcieport", 7);
    sys.add("0000:02:00.0", "nvme", 8);  // another group: not a member

    auto d = inspect_host_device(addr("0000:01:00.0"), sys.root());
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->address, addr("0000:01:00.0"));
    EXPECT_EQ(d->driver, "vfio-pci");
    EXPECT_EQ(d->iommu_group, 7u);
    EXPECT_EQ(d->vendor, 0x1af4);
    EXPECT_EQ(d->device_id, 0x1041);
    const std::vector<GroupMember> want{{addr("0000:00:1c.0"), "pcieport"},
                                        {addr("0000:01:00.0"), "vfio-pci"},
                                        {addr("0000:01:00.1"), ""}};
    EXPECT_EQ(d->group, want);
    EXPECT_TRUE(check_assignable(*d)) << check_assignable(*d).error().message;
}

TEST(vfio_host_device, ReadsIdsOfEitherCaseAndAGroupOfOne) {
    FakeSysfs sys;
    sys.add("0000:03:00.0", "vfio-pci", 12, "0x10DE\n", "0x1eb8\n");
    auto d = inspect_host_device(addr("0000:03:00.0"), sys.root());
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->iommu_group, 12u);
    EXPECT_EQ(d->vendor, 0x10de);
    EXPECT_EQ(d->device_id, 0x1eb8);
    ASSERT_EQ(d->group.size(), 1u);
    EXPECT_EQ(d->group[0], (GroupMember{addr("0000:03:00.0"), "vfio-pci"}));
    EXPECT_TRUE(check_assignable(*d));
}

TEST(vfio_host_device, GroupEntriesMayBeDirectoriesAndDevicesNeedNoLinks) {
    // Plain directories everywhere: only the driver and iommu_group links are links.
    FakeSysfs sys;
    const fs::path root = sys.root();
    for (const char* a : {"0000:05:00.0", "0000:05:00.1"}) {
        fs::create_directories(root / "bus/pci/devices" / a);
        fs::create_directories(root / "kernel/iommu_groups/3/devices" / a);
        write(root / "bus/pci/devices" / a / "vendor", "0x8086\n");
        write(root / "bus/pci/devices" / a / "device", "0x1533\n");
    }
    fs::create_directory_symlink("../../../../kernel/iommu_groups/3",
                                 root / "bus/pci/devices/0000:05:00.0/iommu_group");
    fs::create_directory_symlink("../../../../bus/pci/drivers/vfio-pci",
                                 root / "bus/pci/devices/0000:05:00.0/driver");
    fs::create_directory_symlink("../../../../bus/pci/drivers/igb",
                                 root / "bus/pci/devices/0000:05:00.1/driver");

    auto d = inspect_host_device(addr("0000:05:00.0"), root);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->iommu_group, 3u);
    EXPECT_EQ(d->vendor, 0x8086);
    EXPECT_EQ(d->device_id, 0x1533);
    const std::vector<GroupMember> want{{addr("0000:05:00.0"), "vfio-pci"},
                                        {addr("0000:05:00.1"), "igb"}};
    EXPECT_EQ(d->group, want);
}

TEST(vfio_host_device, RefusesADeviceTheHostDoesNotHave) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "vfio-pci", 1);
    const std::string msg = error_of(inspect_host_device(addr("0000:02:00.0"), sys.root()));
    EXPECT_TRUE(has(msg, "PCI device 0000:02:00.0")) << msg;
    EXPECT_TRUE(has(msg, "no such PCI device on this host")) << msg;
    EXPECT_TRUE(has(msg, (sys.root() / "bus/pci/devices/0000:02:00.0").string())) << msg;
    EXPECT_TRUE(has(msg, "lspci")) << msg;
}

TEST(vfio_host_device, RefusesADeviceWithoutAnIommuGroup) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "vfio-pci", std::nullopt);
    const std::string msg = error_of(inspect_host_device(addr("0000:01:00.0"), sys.root()));
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0")) << msg;
    EXPECT_TRUE(has(msg, "no IOMMU group")) << msg;
    EXPECT_TRUE(has(msg, "the host has no IOMMU enabled")) << msg;
    EXPECT_TRUE(has(msg, "intel_iommu=on")) << msg;
    EXPECT_TRUE(has(msg, "amd_iommu=on")) << msg;
}

TEST(vfio_host_device, NamesAnUnreadableIdFileAndItsErrno) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "vfio-pci", 1);
    const fs::path vendor = sys.device_dir("0000:01:00.0") / "vendor";
    fs::remove(vendor);
    fs::create_directory(vendor);  // read(2) of a directory: EISDIR, even for root
    auto r = inspect_host_device(addr("0000:01:00.0"), sys.root());
    const std::string msg = error_of(r);
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0")) << msg;
    EXPECT_TRUE(has(msg, (sys.root() / "bus/pci/devices/0000:01:00.0/vendor").string())) << msg;
    EXPECT_TRUE(has(msg, std::strerror(EISDIR))) << msg;
    EXPECT_EQ(r ? 0 : r.error().code, EISDIR);
}

TEST(vfio_host_device, NamesAMissingIdFileAndItsErrno) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "vfio-pci", 1);
    fs::remove(sys.device_dir("0000:01:00.0") / "device");
    auto r = inspect_host_device(addr("0000:01:00.0"), sys.root());
    const std::string msg = error_of(r);
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0")) << msg;
    EXPECT_TRUE(has(msg, "0000:01:00.0/device")) << msg;
    EXPECT_TRUE(has(msg, std::strerror(ENOENT))) << msg;
    EXPECT_EQ(r ? 0 : r.error().code, ENOENT);
}

TEST(vfio_host_device, RefusesIdFilesThatAreNotSixteenBitHex) {
    for (const char* bad : {"8086\n", "0x\n", "0x18086\n", "0xg086\n", "0x-1\n", "\n", "",
                            "0x8086 \n", "0x8086\n\n"}) {
        FakeSysfs sys;
        sys.add("0000:01:00.0", "vfio-pci", 1, bad);
        const std::string msg = error_of(inspect_host_device(addr("0000:01:00.0"), sys.root()));
        EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0")) << msg;
        EXPECT_TRUE(has(msg, "0000:01:00.0/vendor")) << msg;
        EXPECT_TRUE(has(msg, "not a 16-bit id")) << msg;
    }
}

TEST(vfio_host_device, NamesADriverEntryThatIsNotALink) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "", 1);
    write(sys.device_dir("0000:01:00.0") / "driver", "vfio-pci\n");  // readlink(2): EINVAL
    auto r = inspect_host_device(addr("0000:01:00.0"), sys.root());
    const std::string msg = error_of(r);
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0")) << msg;
    EXPECT_TRUE(has(msg, "readlink")) << msg;
    EXPECT_TRUE(has(msg, "0000:01:00.0/driver")) << msg;
    EXPECT_TRUE(has(msg, std::strerror(EINVAL))) << msg;
    EXPECT_EQ(r ? 0 : r.error().code, EINVAL);
}

TEST(vfio_host_device, RefusesAGroupLinkWithoutANumber) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "vfio-pci", std::nullopt);
    fs::create_directory_symlink("../../../kernel/iommu_groups/x1",
                                 sys.device_dir("0000:01:00.0") / "iommu_group");
    const std::string msg = error_of(inspect_host_device(addr("0000:01:00.0"), sys.root()));
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0")) << msg;
    EXPECT_TRUE(has(msg, "iommu_groups/x1")) << msg;
    EXPECT_TRUE(has(msg, "names no IOMMU group number")) << msg;
}

TEST(vfio_host_device, NamesAGroupWhoseListingCannotBeRead) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "vfio-pci", std::nullopt);
    fs::create_directory_symlink("../../../kernel/iommu_groups/9",
                                 sys.device_dir("0000:01:00.0") / "iommu_group");
    auto r = inspect_host_device(addr("0000:01:00.0"), sys.root());
    const std::string msg = error_of(r);
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0")) << msg;
    EXPECT_TRUE(has(msg, (sys.root() / "kernel/iommu_groups/9/devices").string())) << msg;
    EXPECT_TRUE(has(msg, std::strerror(ENOENT))) << msg;
    EXPECT_EQ(r ? 0 : r.error().code, ENOENT);
}

TEST(vfio_host_device, RefusesAGroupEntryThatIsNotAPciAddress) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "vfio-pci", 4);
    fs::create_directories(sys.root() / "kernel/iommu_groups/4/devices/fe000000.ethernet");
    const std::string msg = error_of(inspect_host_device(addr("0000:01:00.0"), sys.root()));
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0")) << msg;
    EXPECT_TRUE(has(msg, "IOMMU group 4")) << msg;
    EXPECT_TRUE(has(msg, "'fe000000.ethernet'")) << msg;
}

TEST(vfio_host_device, RefusesAGroupThatDoesNotListTheDevice) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "vfio-pci", std::nullopt);
    sys.add("0000:01:00.1", "vfio-pci", 4);
    fs::create_directory_symlink("../../../kernel/iommu_groups/4",
                                 sys.device_dir("0000:01:00.0") / "iommu_group");
    const std::string msg = error_of(inspect_host_device(addr("0000:01:00.0"), sys.root()));
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0")) << msg;
    EXPECT_TRUE(has(msg, "IOMMU group 4")) << msg;
    EXPECT_TRUE(has(msg, "does not list the device")) << msg;
}

TEST(vfio_host_device, RefusesAGroupMemberTheBusDoesNotHave) {
    // A member that sysfs does not show cannot be taken for one bound to no driver.
    FakeSysfs sys;
    sys.add("0000:01:00.0", "vfio-pci", 4);
    fs::create_directories(sys.root() / "kernel/iommu_groups/4/devices/0000:01:00.1");
    const std::string msg = error_of(inspect_host_device(addr("0000:01:00.0"), sys.root()));
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0")) << msg;
    EXPECT_TRUE(has(msg, "IOMMU group 4 lists 0000:01:00.1")) << msg;
    EXPECT_TRUE(has(msg, (sys.root() / "bus/pci/devices/0000:01:00.1").string())) << msg;
}

TEST(vfio_host_device, ADeviceBoundToAnotherDriverIsNotAssignable) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "e1000e", 2);
    auto d = inspect_host_device(addr("0000:01:00.0"), sys.root());
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->driver, "e1000e");
    const std::string msg = error_of(check_assignable(*d));
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0 [8086:10d3]")) << msg;
    EXPECT_TRUE(has(msg, "is bound to e1000e, not to vfio-pci")) << msg;
    EXPECT_TRUE(has(msg, "echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override"))
        << msg;
    EXPECT_TRUE(has(msg, "echo 0000:01:00.0 > /sys/bus/pci/drivers/e1000e/unbind")) << msg;
    EXPECT_TRUE(has(msg, "echo 0000:01:00.0 > /sys/bus/pci/drivers_probe")) << msg;
}

TEST(vfio_host_device, ADeviceBoundToNoDriverIsNotAssignable) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "", 2);
    auto d = inspect_host_device(addr("0000:01:00.0"), sys.root());
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->driver, "");
    const std::string msg = error_of(check_assignable(*d));
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0 [8086:10d3]")) << msg;
    EXPECT_TRUE(has(msg, "is bound to no driver, not to vfio-pci")) << msg;
    EXPECT_TRUE(has(msg, "modprobe vfio-pci")) << msg;
    EXPECT_TRUE(has(msg, "echo vfio-pci > /sys/bus/pci/devices/0000:01:00.0/driver_override"))
        << msg;
    EXPECT_TRUE(has(msg, "echo 0000:01:00.0 > /sys/bus/pci/drivers_probe")) << msg;
    EXPECT_FALSE(has(msg, "unbind")) << msg;
}

TEST(vfio_host_device, AGroupWithAMemberBoundToAnotherDriverIsNotViable) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "vfio-pci", 5);
    sys.add("0000:01:00.1", "snd_hda_intel", 5);
    sys.add("0000:01:00.2", "vfio-pci", 5);
    sys.add("0000:01:00.3", "xhci_hcd", 5);
    auto d = inspect_host_device(addr("0000:01:00.0"), sys.root());
    ASSERT_TRUE(d) << d.error().message;
    const std::string msg = error_of(check_assignable(*d));
    EXPECT_TRUE(has(msg, "PCI device 0000:01:00.0")) << msg;
    EXPECT_TRUE(has(msg, "IOMMU group 5 is not viable")) << msg;
    EXPECT_TRUE(has(msg, "0000:01:00.1 is bound to snd_hda_intel")) << msg;
    EXPECT_TRUE(has(msg, "0000:01:00.3 is bound to xhci_hcd")) << msg;
    EXPECT_FALSE(has(msg, "0000:01:00.2")) << msg;
    EXPECT_TRUE(has(msg, "driver_override")) << msg;
}

TEST(vfio_host_device, BridgesOnPcieportAndStubsLeaveTheGroupViable) {
    FakeSysfs sys;
    sys.add("0000:00:01.0", "pcieport", 1);
    sys.add("0000:00:01.1", "pcieport", 1);
    sys.add("0000:01:00.0", "vfio-pci", 1);
    sys.add("0000:01:00.1", "pci-stub", 1);
    auto d = inspect_host_device(addr("0000:01:00.0"), sys.root());
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->group.size(), 4u);
    auto ok = check_assignable(*d);
    EXPECT_TRUE(ok) << ok.error().message;
}

TEST(vfio_host_device, AFullyViableGroupIsAssignable) {
    FakeSysfs sys;
    sys.add("0000:01:00.0", "vfio-pci", 6);
    sys.add("0000:01:00.1", "vfio-pci", 6);
    sys.add("0000:01:00.2", "", 6);
    auto d = inspect_host_device(addr("0000:01:00.0"), sys.root());
    ASSERT_TRUE(d) << d.error().message;
    auto ok = check_assignable(*d);
    EXPECT_TRUE(ok) << ok.error().message;
    // Rebinding one member to a host driver makes the same group not viable.
    fs::remove(sys.device_dir("0000:01:00.2") / "driver");
    sys.bind("0000:01:00.2", "i40e");
    d = inspect_host_device(addr("0000:01:00.0"), sys.root());
    ASSERT_TRUE(d) << d.error().message;
    const std::string msg = error_of(check_assignable(*d));
    EXPECT_TRUE(has(msg, "0000:01:00.2 is bound to i40e")) << msg;
}

TEST(vfio_host_device, CheckAssignableJudgesTheGivenDescription) {
    HostDevice d;
    d.address = addr("0000:0a:00.0");
    d.driver = "vfio-pci";
    d.iommu_group = 17;
    d.vendor = 0x1af4;
    d.device_id = 0x1000;
    d.group = {{addr("0000:00:03.0"), "pcieport"}, {d.address, "vfio-pci"}};
    EXPECT_TRUE(check_assignable(d));

    d.group.push_back({addr("0000:0a:00.1"), "nvme"});
    std::string msg = error_of(check_assignable(d));
    EXPECT_TRUE(has(msg, "PCI device 0000:0a:00.0 [1af4:1000]")) << msg;
    EXPECT_TRUE(has(msg, "IOMMU group 17 is not viable: 0000:0a:00.1 is bound to nvme")) << msg;

    d.driver = "virtio-pci";
    msg = error_of(check_assignable(d));
    EXPECT_TRUE(has(msg, "is bound to virtio-pci, not to vfio-pci")) << msg;
}

TEST(vfio_host_device, DriversThatKeepAGroupViable) {
    for (const char* ok : {"", "vfio-pci", "pcieport", "pci-stub"})
        EXPECT_TRUE(driver_keeps_group_viable(ok)) << ok;
    for (const char* bad : {"e1000e", "nvme", "vfio", "vfio-pci2", "pcieport ", "VFIO-PCI"})
        EXPECT_FALSE(driver_keeps_group_viable(bad)) << bad;
}

TEST(vfio_host_device, GroupDeviceNode) {
    EXPECT_EQ(group_device_node(0), fs::path("/dev/vfio/0"));
    EXPECT_EQ(group_device_node(42), fs::path("/dev/vfio/42"));
}

}  // namespace
}  // namespace stockade::vfio
