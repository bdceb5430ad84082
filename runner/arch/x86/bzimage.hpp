#pragma once
// The Linux/x86 boot protocol: parse and validate a bzImage's setup header, load its
// protected-mode kernel, place the initrd and command line, and write the zero page.
// Entry is the 64-bit one (startup_64 at load address + 0x200); the real-mode setup
// code is never run.
#include <cstdint>
#include <span>
#include <string_view>

#include "base/error.hpp"
#include "base/uapi.hpp"
#include "runner/memory/guest_memory.hpp"

#include <asm/bootparam.h>

namespace stockade::x86 {

struct BzImage {
    setup_header header{};
    std::uint32_t setup_bytes = 0;                 // real-mode part, skipped
    std::span<const std::uint8_t> protected_mode;  // loaded at kKernelLoadAddr
    [[nodiscard]] std::uint16_t version() const { return header.version; }
};

// Minimum boot protocol: 2.12 brought xloadflags and the 64-bit entry flag.
inline constexpr std::uint16_t kMinBootProtocol = 0x020c;

[[nodiscard]] Result<BzImage> parse_bzimage(std::span<const std::uint8_t> file);

struct BootLayout {
    std::uint64_t kernel_addr = 0;
    std::uint64_t entry = 0;       // 64-bit entry point
    std::uint64_t kernel_end = 0;  // end of what the kernel may use while decompressing
    std::uint64_t initrd_addr = 0;
    std::uint64_t initrd_size = 0;
    std::uint64_t cmdline_addr = 0;
};

// Decides where everything goes for `mem` without writing anything, so bad sizes are
// reported before the VM exists. `initrd_size` may be 0.
[[nodiscard]] Result<BootLayout> plan_boot(const BzImage& image, std::span<const MemoryRegion> ram,
                                           std::uint64_t initrd_size, std::string_view cmdline);

// Copies the kernel, initrd (the concatenated parts, in order) and command line into
// guest memory and writes the zero page (with `e820` and the ACPI RSDP address).
[[nodiscard]] Result<> load_boot(const GuestMemory& mem, const BzImage& image,
                                 const BootLayout& layout,
                                 std::span<const std::span<const std::uint8_t>> initrd_parts,
                                 std::string_view cmdline, std::span<const boot_e820_entry> e820,
                                 std::uint64_t rsdp_addr);

}  // namespace stockade::x86
