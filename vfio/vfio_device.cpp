#include "vfio/vfio_device.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace stockade::vfio {
namespace {

UniqueFd open_node(const std::filesystem::path& path) {
    return UniqueFd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
}

// VFIO_DEVICE_GET_REGION_INFO for `index`, with its capability chain when it has one.
Result<Region> region_info(int fd, std::uint32_t index) {
    std::vector<std::uint8_t> buf(sizeof(vfio_region_info));
    auto* info = reinterpret_cast<vfio_region_info*>(buf.data());
    info->argsz = sizeof(vfio_region_info);
    info->index = index;
    if (::ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, info) != 0)
        return fail_sys(fmt::format("VFIO_DEVICE_GET_REGION_INFO region {}", index));
    if (info->argsz > buf.size()) {  // capabilities follow: ask again with room for them
        const std::uint32_t argsz = info->argsz;
        if (argsz > 65536) return fail("VFIO region {}: {} bytes of information", index, argsz);
        buf.assign(argsz, 0);
        info = reinterpret_cast<vfio_region_info*>(buf.data());
        info->argsz = argsz;
        info->index = index;
        if (::ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, info) != 0)
            return fail_sys(fmt::format("VFIO_DEVICE_GET_REGION_INFO region {}", index));
    }
    Region r;
    r.index = index;
    r.flags = info->flags;
    r.size = info->size;
    r.offset = info->offset;
    bool sparse = false;
    if ((info->flags & VFIO_REGION_INFO_FLAG_CAPS) && info->cap_offset != 0) {
        std::uint32_t at = info->cap_offset;
        for (int hops = 0; at != 0 && hops < 16; ++hops) {
            if (at < sizeof(vfio_region_info) || at + sizeof(vfio_info_cap_header) > buf.size())
                return fail("VFIO region {}: capability at {} is outside its {} bytes", index, at,
                            buf.size());
            vfio_info_cap_header h;
            std::memcpy(&h, buf.data() + at, sizeof h);
            if (h.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
                vfio_region_info_cap_sparse_mmap s;
                if (at + sizeof s > buf.size())
                    return fail("VFIO region {}: truncated sparse mmap capability", index);
                std::memcpy(&s, buf.data() + at, sizeof s);
                const std::size_t areas = at + sizeof s;
                if (areas + std::size_t{s.nr_areas} * sizeof(vfio_region_sparse_mmap_area) >
                    buf.size())
                    return fail("VFIO region {}: {} sparse mmap areas overrun the reply", index,
                                s.nr_areas);
                sparse = true;
                for (std::uint32_t i = 0; i < s.nr_areas; ++i) {
                    vfio_region_sparse_mmap_area a;
                    std::memcpy(&a, buf.data() + areas + i * sizeof a, sizeof a);
                    if (a.size != 0 && a.offset <= r.size && a.size <= r.size - a.offset)
                        r.mappable.emplace_back(a.offset, a.size);
                }
            }
            at = h.next;
        }
    }
    if ((r.flags & VFIO_REGION_INFO_FLAG_MMAP) && !sparse && r.size != 0)
        r.mappable.emplace_back(0, r.size);
    if (!(r.flags & VFIO_REGION_INFO_FLAG_MMAP)) r.mappable.clear();
    return r;
}

}  // namespace

Result<Handles> open_passthrough(const std::string& name, unsigned group,
                                 const std::filesystem::path& dev_root) {
    Handles h;
    const auto container_path = dev_root / "vfio";
    h.container = open_node(container_path);
    if (!h.container)
        return fail_sys(
            fmt::format("PCI device {}: opening {} (is the vfio-pci module loaded? "
                        "modprobe vfio-pci)",
                        name, container_path.string()));
    if (const int v = ::ioctl(h.container.get(), VFIO_GET_API_VERSION); v != VFIO_API_VERSION)
        return fail("PCI device {}: the kernel's VFIO API is version {}, stockade speaks {}", name,
                    v, VFIO_API_VERSION);
    if (::ioctl(h.container.get(), VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) <= 0)
        return fail("PCI device {}: the kernel's VFIO has no type1 IOMMU (v2) backend", name);

    const auto group_path = dev_root / std::to_string(group);
    h.group = open_node(group_path);
    if (!h.group) {
        const int err = errno;
        if (err == EBUSY)
            return fail(
                "PCI device {}: IOMMU group {} is in use by another process (another "
                "sandbox or VMM holds {})",
                name, group, group_path.string());
        if (err == ENOENT)
            return fail(
                "PCI device {}: {} does not exist: no device of IOMMU group {} is bound "
                "to vfio-pci",
                name, group_path.string(), group);
        return fail_sys(fmt::format("PCI device {}: opening {}", name, group_path.string()), err);
    }
    vfio_group_status status{};
    status.argsz = sizeof status;
    if (::ioctl(h.group.get(), VFIO_GROUP_GET_STATUS, &status) != 0)
        return fail_sys(fmt::format("PCI device {}: VFIO_GROUP_GET_STATUS group {}", name, group));
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE))
        return fail(
            "PCI device {}: IOMMU group {} is not viable: every device in it must be bound "
            "to vfio-pci or to no driver",
            name, group);
    const int container_fd = h.container.get();
    if (::ioctl(h.group.get(), VFIO_GROUP_SET_CONTAINER, &container_fd) != 0)
        return fail_sys(
            fmt::format("PCI device {}: VFIO_GROUP_SET_CONTAINER group {}", name, group));
    if (::ioctl(h.container.get(), VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) != 0)
        return fail_sys(fmt::format("PCI device {}: VFIO_SET_IOMMU (type1 v2)", name));
    const int device = ::ioctl(h.group.get(), VFIO_GROUP_GET_DEVICE_FD, name.c_str());
    if (device < 0) {
        if (errno == EBUSY)
            return fail("PCI device {}: the device is in use by another process", name);
        return fail_sys(fmt::format("PCI device {}: VFIO_GROUP_GET_DEVICE_FD", name));
    }
    h.device = UniqueFd(device);
    if (::fcntl(device, F_SETFD, FD_CLOEXEC) != 0)
        return fail_sys(fmt::format("PCI device {}: FD_CLOEXEC", name));
    return h;
}

Result<DeviceInfo> device_info(int fd) {
    vfio_device_info info{};
    info.argsz = sizeof info;
    if (::ioctl(fd, VFIO_DEVICE_GET_INFO, &info) != 0) return fail_sys("VFIO_DEVICE_GET_INFO");
    if (!(info.flags & VFIO_DEVICE_FLAGS_PCI)) return fail("the VFIO device is not a PCI device");
    if (info.num_regions < VFIO_PCI_CONFIG_REGION_INDEX + 1)
        return fail("the VFIO device has {} regions, fewer than a PCI function's",
                    info.num_regions);
    DeviceInfo d;
    d.flags = info.flags;
    for (std::uint32_t i = 0; i <= VFIO_PCI_CONFIG_REGION_INDEX; ++i)
        d.regions.push_back(STOCKADE_TRY(region_info(fd, i)));
    if (info.num_irqs > VFIO_PCI_MSIX_IRQ_INDEX) {
        vfio_irq_info irq{};
        irq.argsz = sizeof irq;
        irq.index = VFIO_PCI_MSIX_IRQ_INDEX;
        if (::ioctl(fd, VFIO_DEVICE_GET_IRQ_INFO, &irq) != 0)
            return fail_sys("VFIO_DEVICE_GET_IRQ_INFO (MSI-X)");
        d.msix_vectors = irq.count;
    }
    return d;
}

Result<> read_at(int fd, std::uint64_t offset, std::span<std::uint8_t> out) {
    const ssize_t n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
    if (n < 0) return fail_sys(fmt::format("VFIO read of {} bytes at {:#x}", out.size(), offset));
    if (static_cast<std::size_t>(n) != out.size())
        return fail("VFIO read of {} bytes at {:#x}: {} read", out.size(), offset, n);
    return {};
}

Result<> write_at(int fd, std::uint64_t offset, std::span<const std::uint8_t> in) {
    const ssize_t n = ::pwrite(fd, in.data(), in.size(), static_cast<off_t>(offset));
    if (n < 0) return fail_sys(fmt::format("VFIO write of {} bytes at {:#x}", in.size(), offset));
    if (static_cast<std::size_t>(n) != in.size())
        return fail("VFIO write of {} bytes at {:#x}: {} written", in.size(), offset, n);
    return {};
}

Result<> set_msix(int fd, std::span<const int> event_fds) {
    std::vector<std::uint8_t> buf(sizeof(vfio_irq_set) + event_fds.size() * sizeof(std::int32_t));
    auto* set = reinterpret_cast<vfio_irq_set*>(buf.data());
    set->argsz = static_cast<std::uint32_t>(buf.size());
    set->index = VFIO_PCI_MSIX_IRQ_INDEX;
    set->start = 0;
    set->count = static_cast<std::uint32_t>(event_fds.size());
    set->flags = VFIO_IRQ_SET_ACTION_TRIGGER |
                 (event_fds.empty() ? VFIO_IRQ_SET_DATA_NONE : VFIO_IRQ_SET_DATA_EVENTFD);
    for (std::size_t i = 0; i < event_fds.size(); ++i) {
        const std::int32_t v = event_fds[i];
        std::memcpy(buf.data() + sizeof(vfio_irq_set) + i * sizeof v, &v, sizeof v);
    }
    if (::ioctl(fd, VFIO_DEVICE_SET_IRQS, set) != 0)
        return fail_sys(event_fds.empty() ? std::string("VFIO_DEVICE_SET_IRQS (MSI-X off)")
                                          : fmt::format("VFIO_DEVICE_SET_IRQS (MSI-X, {} vectors)",
                                                        event_fds.size()));
    return {};
}

Result<> reset(int fd) {
    if (::ioctl(fd, VFIO_DEVICE_RESET) != 0) return fail_sys("VFIO_DEVICE_RESET");
    return {};
}

Result<> map_dma(int container_fd, std::uint64_t iova, std::uint64_t size, void* host) {
    vfio_iommu_type1_dma_map m{};
    m.argsz = sizeof m;
    m.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    m.vaddr = reinterpret_cast<std::uint64_t>(host);
    m.iova = iova;
    m.size = size;
    if (::ioctl(container_fd, VFIO_IOMMU_MAP_DMA, &m) != 0)
        return fail_sys(fmt::format("VFIO_IOMMU_MAP_DMA {:#x} bytes at {:#x}", size, iova));
    return {};
}

Result<> unmap_dma(int container_fd, std::uint64_t iova, std::uint64_t size) {
    vfio_iommu_type1_dma_unmap u{};
    u.argsz = sizeof u;
    u.iova = iova;
    u.size = size;
    if (::ioctl(container_fd, VFIO_IOMMU_UNMAP_DMA, &u) != 0)
        return fail_sys(fmt::format("VFIO_IOMMU_UNMAP_DMA {:#x} bytes at {:#x}", size, iova));
    return {};
}

}  // namespace stockade::vfio
