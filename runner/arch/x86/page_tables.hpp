#pragma once
// Identity-mapped page tables for the 64-bit entry: the first 4 GiB with 2 MiB pages,
// enough for the kernel, zero page, command line and initrd wherever they are below 4 GiB.
#include "base/error.hpp"
#include "base/guest_memory.hpp"

namespace stockade::x86 {

[[nodiscard]] Result<> write_identity_page_tables(const GuestMemory& mem);

}  // namespace stockade::x86
