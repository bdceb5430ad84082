#include "runner/arch/x86/kernel_image.hpp"

#include <elf.h>

#include <algorithm>
#include <cstring>

#include "runner/arch/x86/layout.hpp"

namespace stockade::x86 {
namespace {

constexpr std::size_t kHeaderOffset = 0x1f1;
constexpr std::uint16_t kBootFlag = 0xaa55;
constexpr std::uint32_t kHdrMagic = 0x53726448;  // "HdrS"
constexpr std::uint8_t kLoadedHigh = 0x01;
constexpr std::uint16_t kXlfKernel64 = 0x01;
constexpr std::size_t kMaxElfSegments = 64;

std::uint64_t align_down(std::uint64_t v, std::uint64_t a) {
    return v & ~(a - 1);
}
std::uint64_t align_up(std::uint64_t v, std::uint64_t a) {
    return (v + a - 1) & ~(a - 1);
}

}  // namespace

Result<KernelImage> parse_bzimage(std::span<const std::uint8_t> file) {
    if (file.size() < kHeaderOffset + sizeof(setup_header))
        return fail("kernel: {} bytes is too small to be a bzImage", file.size());
    KernelImage img;
    img.format = KernelFormat::bzimage;
    std::memcpy(&img.header, file.data() + kHeaderOffset, sizeof(setup_header));
    const setup_header& h = img.header;
    if (h.boot_flag != kBootFlag || h.header != kHdrMagic)
        return fail(
            "kernel: neither a bzImage (no boot signature 0xaa55 / \"HdrS\" header) nor an "
            "x86-64 ELF vmlinux");
    if (h.version < kMinBootProtocol)
        return fail("kernel: boot protocol {}.{:02} is too old (need {}.{:02} or later)",
                    h.version >> 8, h.version & 0xff, kMinBootProtocol >> 8,
                    kMinBootProtocol & 0xff);
    if ((h.xloadflags & kXlfKernel64) == 0)
        return fail("kernel: the bzImage has no 64-bit entry point (XLF_KERNEL_64 clear)");
    if ((h.loadflags & kLoadedHigh) == 0)
        return fail("kernel: a zImage (loaded low) is not supported; use a bzImage");
    std::uint32_t setup_sects = h.setup_sects == 0 ? 4 : h.setup_sects;
    img.setup_bytes = (setup_sects + 1) * 512;
    if (img.setup_bytes >= file.size())
        return fail("kernel: setup size {} is not inside the {}-byte file", img.setup_bytes,
                    file.size());
    img.protected_mode = file.subspan(img.setup_bytes);
    if (std::uint64_t{h.syssize} * 16 > img.protected_mode.size())
        return fail("kernel: truncated (header says {} bytes of kernel, file has {})",
                    std::uint64_t{h.syssize} * 16, img.protected_mode.size());
    if (h.init_size < img.protected_mode.size())
        return fail("kernel: init_size {} is smaller than the kernel itself", h.init_size);
    if (h.kernel_alignment == 0 || (h.kernel_alignment & (h.kernel_alignment - 1)) != 0)
        return fail("kernel: kernel_alignment {:#x} is not a power of two", h.kernel_alignment);
    return img;
}

Result<KernelImage> parse_elf_kernel(std::span<const std::uint8_t> file) {
    Elf64_Ehdr eh;
    if (file.size() < sizeof eh)
        return fail("kernel: {} bytes is too small to be an ELF vmlinux", file.size());
    std::memcpy(&eh, file.data(), sizeof eh);
    if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) return fail("kernel: not an ELF file");
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
        eh.e_machine != EM_X86_64)
        return fail("kernel: the ELF file is not a 64-bit little-endian x86-64 one");
    if (eh.e_type != ET_EXEC) return fail("kernel: the ELF file is not an executable (a vmlinux)");
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > kMaxElfSegments)
        return fail("kernel: the ELF program header table is malformed ({} entries of {} bytes)",
                    eh.e_phnum, eh.e_phentsize);
    const std::uint64_t table_bytes = std::uint64_t{eh.e_phnum} * sizeof(Elf64_Phdr);
    if (eh.e_phoff > file.size() || table_bytes > file.size() - eh.e_phoff)
        return fail("kernel: the ELF program header table lies outside the {}-byte file",
                    file.size());

    KernelImage img;
    img.format = KernelFormat::elf;
    for (std::size_t i = 0; i < eh.e_phnum; ++i) {
        Elf64_Phdr ph;
        std::memcpy(&ph, file.data() + eh.e_phoff + i * sizeof ph, sizeof ph);
        if (ph.p_type != PT_LOAD || ph.p_memsz == 0) continue;
        if (ph.p_filesz > ph.p_memsz)
            return fail("kernel: ELF segment {} has more file bytes than memory bytes", i);
        if (ph.p_offset > file.size() || ph.p_filesz > file.size() - ph.p_offset)
            return fail("kernel: ELF segment {} lies outside the {}-byte file", i, file.size());
        if (ph.p_paddr < kHighMemStart || ph.p_paddr >= kMmioHoleStart ||
            ph.p_memsz > kMmioHoleStart - ph.p_paddr)
            return fail("kernel: ELF segment {} at {:#x}+{:#x} is not between 1 MiB and {:#x}", i,
                        ph.p_paddr, ph.p_memsz, kMmioHoleStart);
        img.segments.push_back({ph.p_paddr, file.subspan(ph.p_offset, ph.p_filesz), ph.p_memsz});
    }
    if (img.segments.empty()) return fail("kernel: the ELF file has nothing to load");
    auto sorted = img.segments;
    std::sort(sorted.begin(), sorted.end(),
              [](const auto& a, const auto& b) { return a.guest_phys < b.guest_phys; });
    for (std::size_t i = 1; i < sorted.size(); ++i)
        if (sorted[i - 1].guest_phys + sorted[i - 1].mem_size > sorted[i].guest_phys)
            return fail("kernel: ELF segments at {:#x} and {:#x} overlap", sorted[i - 1].guest_phys,
                        sorted[i].guest_phys);
    const bool entry_loaded = std::any_of(sorted.begin(), sorted.end(), [&](const auto& s) {
        return eh.e_entry >= s.guest_phys && eh.e_entry < s.guest_phys + s.data.size();
    });
    if (!entry_loaded)
        return fail("kernel: the ELF entry point {:#x} is not in a loaded segment", eh.e_entry);
    img.elf_entry = eh.e_entry;

    // The setup header the kernel finds in the zero page, as a boot loader fills it in.
    setup_header& h = img.header;
    h.boot_flag = kBootFlag;
    h.header = kHdrMagic;
    h.version = 0x020f;
    h.loadflags = kLoadedHigh;
    h.kernel_alignment = 0x200000;
    h.cmdline_size = 2047;  // COMMAND_LINE_SIZE - 1 on x86
    h.initrd_addr_max = 0x7fffffff;
    h.xloadflags = kXlfKernel64;
    h.pref_address = sorted.front().guest_phys;
    h.init_size = static_cast<std::uint32_t>(sorted.back().guest_phys + sorted.back().mem_size -
                                             sorted.front().guest_phys);
    return img;
}

Result<KernelImage> parse_kernel(std::span<const std::uint8_t> file) {
    if (file.size() >= SELFMAG && std::memcmp(file.data(), ELFMAG, SELFMAG) == 0)
        return parse_elf_kernel(file);
    return parse_bzimage(file);
}

Result<BootLayout> plan_boot(const KernelImage& image, std::span<const MemoryRegion> ram,
                             std::uint64_t initrd_size, std::string_view cmdline) {
    const setup_header& h = image.header;
    BootLayout l;
    l.cmdline_addr = kCmdlineAddr;
    if (image.format == KernelFormat::elf) {
        // The kernel runs where it was linked; bss and the early brk area end at its _end.
        l.kernel_addr = h.pref_address;
        l.entry = image.elf_entry;
        l.kernel_end = align_up(std::uint64_t{h.pref_address} + h.init_size, 4096);
    } else {
        l.kernel_addr = kKernelLoadAddr;
        l.entry = kKernelLoadAddr + 0x200;
        // The decompressor runs in [load, load + init_size) and then writes the kernel at
        // pref_address (relocatable kernels never go lower). Nothing else may live there.
        std::uint64_t decompress_end =
            std::max(kKernelLoadAddr, std::uint64_t{h.pref_address}) + h.init_size;
        l.kernel_end =
            align_up(std::max(decompress_end, kKernelLoadAddr + image.protected_mode.size()), 4096);
    }

    if (cmdline.size() + 1 >
        std::min<std::uint64_t>(std::uint64_t{h.cmdline_size} + 1, kCmdlineMax))
        return fail("kernel command line: {} bytes is longer than the kernel's limit of {}",
                    cmdline.size(), h.cmdline_size);

    // Low RAM is the region that starts at 0; the kernel and initrd must fit in it.
    const MemoryRegion* low = nullptr;
    for (const MemoryRegion& r : ram)
        if (r.guest_phys == 0) low = &r;
    if (low == nullptr) return fail("guest memory has no region at address 0");
    if (low->size < l.kernel_end)
        return fail("memory: {} MiB is too little for this kernel (it needs {} MiB to load)",
                    low->size / kMiB, (l.kernel_end + kMiB - 1) / kMiB);

    if (initrd_size > 0) {
        std::uint64_t top = std::min(low->size, std::uint64_t{h.initrd_addr_max} + 1);
        if (initrd_size > top)
            return fail("initrd: {} MiB does not fit below {} MiB", initrd_size / kMiB, top / kMiB);
        l.initrd_addr = align_down(top - initrd_size, 4096);
        l.initrd_size = initrd_size;
        if (l.initrd_addr < l.kernel_end)
            return fail(
                "initrd: {} MiB does not fit beside the kernel in {} MiB of memory "
                "(needs about {} MiB)",
                (initrd_size + kMiB - 1) / kMiB, low->size / kMiB,
                (l.kernel_end + initrd_size) / kMiB + 1);
    }
    return l;
}

Result<> load_boot(const GuestMemory& mem, const KernelImage& image, const BootLayout& layout,
                   std::span<const std::span<const std::uint8_t>> initrd_parts,
                   std::string_view cmdline, std::span<const boot_e820_entry> e820,
                   std::uint64_t rsdp_addr) {
    if (image.format == KernelFormat::elf) {
        for (const KernelSegment& seg : image.segments)
            STOCKADE_TRY_VOID(mem.write(seg.guest_phys, seg.data));
    } else {
        STOCKADE_TRY_VOID(mem.write(layout.kernel_addr, image.protected_mode));
    }
    std::uint64_t at = layout.initrd_addr;
    for (auto part : initrd_parts) {
        STOCKADE_TRY_VOID(mem.write(at, part));
        at += part.size();
    }
    if (at - layout.initrd_addr != layout.initrd_size)
        return fail("initrd: parts add up to {} bytes, the plan said {}", at - layout.initrd_addr,
                    layout.initrd_size);
    auto cmd = STOCKADE_TRY(mem.slice(layout.cmdline_addr, cmdline.size() + 1));
    std::memcpy(cmd.data(), cmdline.data(), cmdline.size());
    cmd[cmdline.size()] = 0;

    if (e820.size() > E820_MAX_ENTRIES_ZEROPAGE)
        return fail("e820: {} entries is more than the zero page holds", e820.size());
    boot_params bp{};
    bp.hdr = image.header;
    bp.hdr.type_of_loader = 0xff;  // "undefined" boot loader
    bp.hdr.loadflags = static_cast<std::uint8_t>(bp.hdr.loadflags & ~0x20);  // no QUIET_FLAG
    bp.hdr.code32_start = static_cast<std::uint32_t>(layout.kernel_addr);
    bp.hdr.cmd_line_ptr = static_cast<std::uint32_t>(layout.cmdline_addr);
    bp.hdr.ramdisk_image = static_cast<std::uint32_t>(layout.initrd_addr);
    bp.hdr.ramdisk_size = static_cast<std::uint32_t>(layout.initrd_size);
    bp.hdr.vid_mode = 0xffff;  // "normal": no video mode change
    bp.acpi_rsdp_addr = rsdp_addr;
    bp.e820_entries = static_cast<std::uint8_t>(e820.size());
    std::copy(e820.begin(), e820.end(), bp.e820_table);
    return mem.write_obj(kZeroPageAddr, bp);
}

}  // namespace stockade::x86
