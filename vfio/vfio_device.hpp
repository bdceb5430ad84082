#pragma once
// The kernel's VFIO interface for one passed-through PCI function: a type1 IOMMU container,
// the function's IOMMU group and the device itself. The supervisor opens all three and checks
// them before the jail (open_passthrough); the sandbox process uses the descriptors it is
// handed (DMA mappings of guest RAM, configuration space and BAR access, MSI-X, reset).
// iommufd is not used: the lab's 6.1 kernel has none, and the type1 container is all it needs.
#include "base/uapi.hpp"

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade::vfio {

// The descriptors one passthrough device needs, in the order they must be opened.
struct Handles {
    UniqueFd container;  // /dev/vfio/vfio, type1 IOMMU set
    UniqueFd group;      // /dev/vfio/<group>, attached to the container
    UniqueFd device;     // VFIO_GROUP_GET_DEVICE_FD
};

// Opens the container, the group and the device `name` ("0000:01:00.0") of IOMMU group
// `group`, under `dev_root` (/dev/vfio). Each refusal is a sentence naming the device: no
// VFIO, a group that is not viable, a group or device another process holds.
[[nodiscard]] Result<Handles> open_passthrough(const std::string& name, unsigned group,
                                               const std::filesystem::path& dev_root = "/dev/vfio");

// A region of the device (BARs 0-5, ROM, configuration space) as VFIO describes it.
struct Region {
    std::uint32_t index = 0;
    std::uint32_t flags = 0;   // VFIO_REGION_INFO_FLAG_*
    std::uint64_t size = 0;    // 0: the device does not implement it
    std::uint64_t offset = 0;  // where it starts in the device descriptor
    // Where mmap is allowed, as (offset, size) within the region: the whole region when the
    // kernel gives no sparse list, nothing when it may not be mapped at all.
    std::vector<std::pair<std::uint64_t, std::uint64_t>> mappable;
    [[nodiscard]] bool readable() const { return flags & VFIO_REGION_INFO_FLAG_READ; }
};

struct DeviceInfo {
    std::uint32_t flags = 0;  // VFIO_DEVICE_FLAGS_*
    std::vector<Region> regions;
    std::uint32_t msix_vectors = 0;  // VFIO_PCI_MSIX_IRQ_INDEX's count
};

// VFIO_DEVICE_GET_INFO, VFIO_DEVICE_GET_REGION_INFO (with the sparse mmap capability) and
// the MSI-X interrupt count. Refuses a device that is not PCI.
[[nodiscard]] Result<DeviceInfo> device_info(int device_fd);

// Reads and writes at an offset of the device descriptor (a region's offset plus the
// offset within it); short transfers are errors.
[[nodiscard]] Result<> read_at(int device_fd, std::uint64_t offset, std::span<std::uint8_t> out);
[[nodiscard]] Result<> write_at(int device_fd, std::uint64_t offset,
                                std::span<const std::uint8_t> in);

// MSI-X: every vector triggers its eventfd (VFIO_DEVICE_SET_IRQS, ACTION_TRIGGER); an empty
// list turns MSI-X off on the device.
[[nodiscard]] Result<> set_msix(int device_fd, std::span<const int> event_fds);

// VFIO_DEVICE_RESET: a function-level (or bus) reset, whichever the kernel can do.
[[nodiscard]] Result<> reset(int device_fd);

// VFIO_IOMMU_MAP_DMA / UNMAP_DMA: guest-physical `iova` to this process's `host` memory,
// readable and writable by the device.
[[nodiscard]] Result<> map_dma(int container_fd, std::uint64_t iova, std::uint64_t size,
                               void* host);
[[nodiscard]] Result<> unmap_dma(int container_fd, std::uint64_t iova, std::uint64_t size);

}  // namespace stockade::vfio
