#include "vfio/host_device.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include "base/io.hpp"

namespace stockade::vfio {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kVfioPci = "vfio-pci";

// The target of the symbolic link at `link`; nullopt when there is nothing at that path.
Result<std::optional<std::string>> read_link(const fs::path& link) {
    std::error_code ec;
    fs::path target = fs::read_symlink(link, ec);
    if (ec == std::errc::no_such_file_or_directory) return std::nullopt;
    if (ec) return fail_sys(fmt::format("readlink {}", link.string()), ec.value());
    return target.string();
}

// The last component of a link's target ("../../../bus/pci/drivers/e1000e" -> "e1000e").
std::string_view last_component(std::string_view target) {
    while (target.size() > 1 && target.back() == '/')
        target.remove_suffix(1);
    const auto slash = target.rfind('/');
    return slash == std::string_view::npos ? target : target.substr(slash + 1);
}

// Whether the device directory `dir` exists; an error when something else is there or
// stat fails for another reason than its absence.
Result<bool> is_device_dir(const fs::path& dir) {
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) {
        const int err = errno;
        if (err == ENOENT) return false;
        return fail_sys(fmt::format("stat {}", dir.string()), err);
    }
    if (!S_ISDIR(st.st_mode)) return fail("{} is not a directory", dir.string());
    return true;
}

// The name of the driver bound to the device whose sysfs directory is `dir`; "" for none.
Result<std::string> read_driver(const fs::path& dir) {
    const fs::path link = dir / "driver";
    const auto target = STOCKADE_TRY(read_link(link));
    if (!target) return std::string();
    const std::string_view name = last_component(*target);
    if (name.empty() || name == "." || name == ".." || name == "/")
        return fail("{} points to '{}', which names no driver", link.string(), *target);
    return std::string(name);
}

// The number of the IOMMU group whose link is `link`; nullopt when there is no link.
Result<std::optional<unsigned>> read_group(const fs::path& link) {
    const auto target = STOCKADE_TRY(read_link(link));
    if (!target) return std::nullopt;
    const std::string_view name = last_component(*target);
    unsigned n = 0;
    const char* end = name.data() + name.size();
    const auto [ptr, ec] = std::from_chars(name.data(), end, n);
    if (name.empty() || ec != std::errc() || ptr != end)
        return fail("{} points to '{}', which names no IOMMU group number", link.string(), *target);
    return n;
}

// A vendor or device id file: "0x1af4\n".
Result<std::uint16_t> read_id(const fs::path& path) {
    const std::string text = STOCKADE_TRY(read_text_file(path.string(), 64));
    std::string_view v = text;
    if (!v.empty() && v.back() == '\n') v.remove_suffix(1);
    std::uint16_t id = 0;
    if (v.size() > 2 && v.size() <= 6 && v.starts_with("0x")) {
        const char* end = v.data() + v.size();
        const auto [ptr, ec] = std::from_chars(v.data() + 2, end, id, 16);
        if (ec == std::errc() && ptr == end) return id;
    }
    return fail("{} holds '{}', not a 16-bit id such as 0x1af4", path.string(), v);
}

// The members of IOMMU group `group`, each with its driver, sorted by address.
Result<std::vector<GroupMember>> read_group_members(const fs::path& sysfs, unsigned group) {
    const fs::path dir = sysfs / "kernel/iommu_groups" / std::to_string(group) / "devices";
    std::vector<GroupMember> members;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        auto address = parse_pci_address(name);
        if (!address)
            return std::unexpected(std::move(address).error().context(
                fmt::format("IOMMU group {} lists {}", group, (dir / name).string())));
        const fs::path member_dir = sysfs / "bus/pci/devices" / address->str();
        if (!STOCKADE_TRY(is_device_dir(member_dir)))
            return fail("IOMMU group {} lists {}, but {} does not exist", group, address->str(),
                        member_dir.string());
        members.push_back({*address, STOCKADE_TRY(read_driver(member_dir))});
    }
    if (ec) return fail_sys(fmt::format("list {}", dir.string()), ec.value());
    std::sort(members.begin(), members.end(),
              [](const GroupMember& a, const GroupMember& b) { return a.address < b.address; });
    return members;
}

Result<HostDevice> inspect(const PciAddress& address, const fs::path& sysfs) {
    const fs::path dir = sysfs / "bus/pci/devices" / address.str();
    if (!STOCKADE_TRY(is_device_dir(dir)))
        return fail(
            "no such PCI device on this host ({} does not exist; `lspci -D` lists the host's "
            "PCI devices)",
            dir.string());

    HostDevice device;
    device.address = address;
    device.driver = STOCKADE_TRY(read_driver(dir));
    const fs::path group_link = dir / "iommu_group";
    const auto group = STOCKADE_TRY(read_group(group_link));
    if (!group)
        return fail(
            "no IOMMU group ({} does not exist): the host has no IOMMU enabled; enable VT-d or "
            "AMD-Vi in the firmware and boot with intel_iommu=on (Intel) or amd_iommu=on (AMD)",
            group_link.string());
    device.iommu_group = *group;
    device.vendor = STOCKADE_TRY(read_id(dir / "vendor"));
    device.device_id = STOCKADE_TRY(read_id(dir / "device"));
    device.group = STOCKADE_TRY(read_group_members(sysfs, device.iommu_group));
    const bool listed = std::any_of(device.group.begin(), device.group.end(),
                                    [&](const GroupMember& m) { return m.address == address; });
    if (!listed)
        return fail("IOMMU group {} ({}) does not list the device", device.iommu_group,
                    (sysfs / "kernel/iommu_groups" / std::to_string(device.iommu_group)).string());
    return device;
}

// "PCI device 0000:01:00.0 [8086:10d3]", as `lspci -nn` shows the ids.
std::string describe(const HostDevice& d) {
    return fmt::format("PCI device {} [{:04x}:{:04x}]", d.address.str(), d.vendor, d.device_id);
}

}  // namespace

Result<HostDevice> inspect_host_device(const PciAddress& address, const fs::path& sysfs) {
    auto device = inspect(address, sysfs);
    if (!device)
        return std::unexpected(
            std::move(device).error().context(fmt::format("PCI device {}", address.str())));
    return device;
}

bool driver_keeps_group_viable(std::string_view driver) {
    return driver.empty() || driver == kVfioPci || driver == "pci-stub" || driver == "pcieport";
}

Result<> check_assignable(const HostDevice& device) {
    const std::string addr = device.address.str();
    const std::string bind = fmt::format(
        "echo {} > /sys/bus/pci/devices/{}/driver_override && echo {} > "
        "/sys/bus/pci/drivers_probe",
        kVfioPci, addr, addr);
    if (device.driver.empty())
        return fail("{} is bound to no driver, not to {}; bind it (after modprobe {}): {}",
                    describe(device), kVfioPci, kVfioPci, bind);
    if (device.driver != kVfioPci)
        return fail(
            "{} is bound to {}, not to {}; rebind it: echo {} > "
            "/sys/bus/pci/devices/{}/driver_override && echo {} > /sys/bus/pci/drivers/{}/unbind "
            "&& echo {} > /sys/bus/pci/drivers_probe",
            describe(device), device.driver, kVfioPci, kVfioPci, addr, addr, device.driver, addr);

    std::string others;
    for (const GroupMember& m : device.group) {
        if (m.address == device.address || driver_keeps_group_viable(m.driver)) continue;
        others += fmt::format("{}{} is bound to {}", others.empty() ? "" : ", ", m.address.str(),
                              m.driver);
    }
    if (!others.empty())
        return fail(
            "{}: its IOMMU group {} is not viable: {}; every device of the group must be bound "
            "to {} or to no driver (pcieport and pci-stub are allowed too) before any of them "
            "is assigned: rebind each the same way (echo {} > "
            "/sys/bus/pci/devices/ADDR/driver_override, unbind it from its driver, echo ADDR > "
            "/sys/bus/pci/drivers_probe)",
            describe(device), device.iommu_group, others, kVfioPci, kVfioPci);
    return {};
}

std::filesystem::path group_device_node(unsigned group) {
    return fs::path("/dev/vfio") / std::to_string(group);
}

}  // namespace stockade::vfio
