#include "runner/arch/x86/memory_map.hpp"

#include <algorithm>

#include "runner/arch/x86/layout.hpp"

namespace stockade::x86 {

std::vector<MemoryRegion> ram_regions(std::uint64_t bytes) {
    std::vector<MemoryRegion> r;
    std::uint64_t low = std::min(bytes, kMmioHoleStart);
    r.push_back({0, low});
    if (bytes > low) r.push_back({kHighRamStart, bytes - low});
    return r;
}

std::vector<boot_e820_entry> e820_map(const std::vector<MemoryRegion>& ram) {
    std::vector<boot_e820_entry> map;
    for (const MemoryRegion& r : ram) {
        if (r.guest_phys == 0) {
            // Real-mode RAM, then the EBDA/ROM area (ACPI tables live there), then the rest.
            map.push_back({0, kEbdaStart, kE820Ram});
            map.push_back({kEbdaStart, kHighMemStart - kEbdaStart, kE820Reserved});
            if (r.size > kHighMemStart)
                map.push_back({kHighMemStart, r.size - kHighMemStart, kE820Ram});
        } else {
            map.push_back({r.guest_phys, r.size, kE820Ram});
        }
    }
    return map;
}

}  // namespace stockade::x86
