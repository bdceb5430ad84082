#pragma once
// Where guest RAM goes (below the 32-bit MMIO hole, the rest above 4 GiB) and the e820
// map the guest is told about.
#include <cstdint>
#include <vector>

#include "base/guest_memory.hpp"
#include "base/uapi.hpp"

#include <asm/bootparam.h>

namespace stockade::x86 {

// e820 entry types (the uapi headers do not define them).
inline constexpr std::uint32_t kE820Ram = 1;
inline constexpr std::uint32_t kE820Reserved = 2;

[[nodiscard]] std::vector<MemoryRegion> ram_regions(std::uint64_t bytes);
[[nodiscard]] std::vector<boot_e820_entry> e820_map(const std::vector<MemoryRegion>& ram);

}  // namespace stockade::x86
