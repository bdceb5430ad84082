#pragma once
// The supervisor's look at a host PCI device before it is passed through with VFIO
// (`--device vfio=ADDR`): what sysfs says of it (driver, IOMMU group and every device in that
// group), and whether it can be assigned: bound to vfio-pci, in a viable group. No ioctl and
// no /dev/vfio here; the sysfs root is a parameter so that tests read a fake tree.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/pci_address.hpp"

namespace stockade::vfio {

struct GroupMember {
    PciAddress address;
    std::string driver;  // "" when bound to no driver

    bool operator==(const GroupMember&) const = default;
};

struct HostDevice {
    PciAddress address;
    std::string driver;  // "" when bound to no driver
    unsigned iommu_group = 0;
    std::vector<GroupMember> group;  // every device in the group, this one included, by address
    std::uint16_t vendor = 0;
    std::uint16_t device_id = 0;
};

// Reads <sysfs>/bus/pci/devices/<address>/: the `driver` and `iommu_group` links (the last
// component of each target is the driver's name and the group's number; no `driver` link is
// no driver), the `vendor` and `device` files ("0x1af4\n"), then the group's members from
// <sysfs>/kernel/iommu_groups/<N>/devices/ with each one's driver. Each error is a sentence
// that names the device: no such PCI device on this host; no IOMMU group (the host has no
// IOMMU enabled); a file or link that cannot be read (its path and errno); sysfs content
// that is not what the kernel writes.
[[nodiscard]] Result<HostDevice> inspect_host_device(const PciAddress& address,
                                                     const std::filesystem::path& sysfs = "/sys");

// The drivers that leave a device's group viable for VFIO besides none at all: vfio-pci
// itself, and those the kernel lets share a group with an assigned device because they never
// do DMA on their own (pci-stub; pcieport, the PCIe bridges' port driver).
[[nodiscard]] bool driver_keeps_group_viable(std::string_view driver);

// Whether the device can be assigned: it must be bound to vfio-pci (else the error says to
// which driver it is bound, or to none, and how to rebind it), and every other device of its
// group must be bound to vfio-pci, to no driver, or to one that driver_keeps_group_viable
// accepts (else the error names each member that is not, with its driver).
[[nodiscard]] Result<> check_assignable(const HostDevice& device);

// The VFIO group's character device: "/dev/vfio/<group>".
[[nodiscard]] std::filesystem::path group_device_node(unsigned group);

}  // namespace stockade::vfio
