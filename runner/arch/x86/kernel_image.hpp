#pragma once
// The Linux/x86 boot protocol for the two kernel formats stockade boots:
// - an uncompressed vmlinux (ELF64): its PT_LOAD segments are copied to their physical
//   addresses and the kernel is entered at its ELF entry point (startup_64), so the guest
//   runs no decompressor (and, with none, gets no KASLR: the kernel runs where it was
//   linked);
// - a bzImage: its setup header is parsed and validated, the protected-mode part is loaded
//   and entered at its 64-bit entry (load address + 0x200); the decompressor runs in the
//   guest.
// Either way the real-mode setup code is never run: the VMM writes the zero page, places
// the initrd and command line, and starts the vCPU in 64-bit mode.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/guest_memory.hpp"
#include "base/uapi.hpp"

#include <asm/bootparam.h>

namespace stockade::x86 {

enum class KernelFormat { bzimage, elf };

// One PT_LOAD segment of a vmlinux: `data` is copied to `guest_phys`; the rest of
// `mem_size` (bss) is left as the fresh guest memory's zeroes.
struct KernelSegment {
    std::uint64_t guest_phys = 0;
    std::span<const std::uint8_t> data;
    std::uint64_t mem_size = 0;
};

struct KernelImage {
    KernelFormat format = KernelFormat::bzimage;
    // bzImage: the file's own header. vmlinux: one written for it (boot protocol 2.15,
    // loaded high, 64-bit), which is what the kernel reads back from the zero page.
    setup_header header{};
    std::uint32_t setup_bytes = 0;                 // bzImage: real-mode part, skipped
    std::span<const std::uint8_t> protected_mode;  // bzImage: loaded at kKernelLoadAddr
    std::vector<KernelSegment> segments;           // vmlinux: in file order
    std::uint64_t elf_entry = 0;                   // vmlinux: physical entry point
    [[nodiscard]] std::uint16_t version() const { return header.version; }
};

// Minimum boot protocol: 2.12 brought xloadflags and the 64-bit entry flag.
inline constexpr std::uint16_t kMinBootProtocol = 0x020c;

// By content: an ELF64 x86-64 executable is a vmlinux, anything else must be a bzImage.
[[nodiscard]] Result<KernelImage> parse_kernel(std::span<const std::uint8_t> file);
[[nodiscard]] Result<KernelImage> parse_bzimage(std::span<const std::uint8_t> file);
[[nodiscard]] Result<KernelImage> parse_elf_kernel(std::span<const std::uint8_t> file);

struct BootLayout {
    std::uint64_t kernel_addr = 0;
    std::uint64_t entry = 0;       // 64-bit entry point
    std::uint64_t kernel_end = 0;  // end of what the kernel may use (decompressing, or bss)
    std::uint64_t initrd_addr = 0;
    std::uint64_t initrd_size = 0;
    std::uint64_t cmdline_addr = 0;
};

// Decides where everything goes for `mem` without writing anything, so bad sizes are
// reported before the VM exists. `initrd_size` may be 0.
[[nodiscard]] Result<BootLayout> plan_boot(const KernelImage& image,
                                           std::span<const MemoryRegion> ram,
                                           std::uint64_t initrd_size, std::string_view cmdline);

// Copies the kernel, initrd (the concatenated parts, in order) and command line into
// guest memory and writes the zero page (with `e820` and the ACPI RSDP address).
[[nodiscard]] Result<> load_boot(const GuestMemory& mem, const KernelImage& image,
                                 const BootLayout& layout,
                                 std::span<const std::span<const std::uint8_t>> initrd_parts,
                                 std::string_view cmdline, std::span<const boot_e820_entry> e820,
                                 std::uint64_t rsdp_addr);

}  // namespace stockade::x86
