// The Linux boot protocol: setup header validation, boot planning, the zero page.
#include <gtest/gtest.h>

#include <elf.h>

#include <cstring>
#include <span>
#include <vector>

#include "base/io.hpp"
#include "runner/arch/x86/kernel_image.hpp"
#include "runner/arch/x86/layout.hpp"
#include "runner/arch/x86/memory_map.hpp"
#include "tests/support/bzimage.hpp"
#include "tests/support/vmlinux.hpp"

namespace stockade::x86 {
namespace {

using test::fake_bzimage;

template <typename F>
std::vector<std::uint8_t> with_header(F change) {
    auto f = fake_bzimage();
    setup_header h;
    std::memcpy(&h, f.data() + 0x1f1, sizeof h);
    change(h);
    std::memcpy(f.data() + 0x1f1, &h, sizeof h);
    return f;
}

// A kernel file a parser must refuse, with a word its message must contain.
struct BadKernel {
    const char* what;
    std::vector<std::uint8_t> file;
    const char* message;
};

template <typename Parse>
void expect_each_refused(std::span<const BadKernel> cases, Parse parse) {
    for (const BadKernel& c : cases) {
        auto r = parse(c.file);
        ASSERT_FALSE(r) << c.what;
        EXPECT_NE(r.error().message.find(c.message), std::string::npos)
            << c.what << ": " << r.error().message;
    }
}

TEST(BzImage, AcceptsAValidHeader) {
    auto f = fake_bzimage();
    auto img = parse_bzimage(f);
    ASSERT_TRUE(img) << img.error().message;
    EXPECT_EQ(img->setup_bytes, 5u * 512);
    EXPECT_EQ(img->protected_mode.size(), 64u * 1024);
    EXPECT_EQ(img->version(), 0x020f);
}

TEST(BzImage, RejectsCorruptHeaders) {
    const BadKernel cases[] = {
        {"tiny", std::vector<std::uint8_t>(100), "too small"},
        {"no boot flag", with_header([](setup_header& h) { h.boot_flag = 0; }),
         "neither a bzImage"},
        {"no HdrS", with_header([](setup_header& h) { h.header = 0x12345678; }),
         "neither a bzImage"},
        {"old protocol", with_header([](setup_header& h) { h.version = 0x0206; }), "too old"},
        {"no 64-bit entry", with_header([](setup_header& h) { h.xloadflags = 0; }), "64-bit"},
        {"zImage", with_header([](setup_header& h) { h.loadflags = 0; }), "zImage"},
        {"setup past end", with_header([](setup_header& h) { h.setup_sects = 200; }), "setup size"},
        {"truncated", with_header([](setup_header& h) { h.syssize = 1u << 20; }), "truncated"},
        {"init_size", with_header([](setup_header& h) { h.init_size = 100; }), "init_size"},
        {"alignment", with_header([](setup_header& h) { h.kernel_alignment = 3; }), "power of two"},
    };
    expect_each_refused(cases, [](const auto& f) { return parse_bzimage(f); });
}

TEST(BzImage, ParsesStockadesKernelAndDebiansCloudKernel) {
    for (const char* path : {STOCKADE_TEST_KERNEL, STOCKADE_TEST_CLOUD_KERNEL}) {
        SCOPED_TRACE(path);
        auto file = read_file(path, 256u << 20);
        ASSERT_TRUE(file) << file.error().message;
        auto img = parse_bzimage(*file);
        ASSERT_TRUE(img) << img.error().message;
        EXPECT_GE(img->version(), 0x020f);
        EXPECT_TRUE(img->header.xloadflags & 1);
        EXPECT_GT(img->header.init_size, img->protected_mode.size());
    }
}

TEST(BootPlan, PlacesInitrdAtTopOfLowRamAboveTheKernel) {
    auto f = fake_bzimage();
    auto img = parse_bzimage(f).value();
    auto ram = ram_regions(256 * kMiB);
    auto plan = plan_boot(img, ram, 3 * kMiB + 123, "console=ttyS0");
    ASSERT_TRUE(plan) << plan.error().message;
    EXPECT_EQ(plan->entry, kKernelLoadAddr + 0x200);
    EXPECT_EQ(plan->initrd_addr % 4096, 0u);
    EXPECT_LE(plan->initrd_addr + plan->initrd_size, 256 * kMiB);
    EXPECT_GE(plan->initrd_addr, plan->kernel_end);
    EXPECT_GE(plan->kernel_end, 0x1000000u + (8 << 20)) << "decompression target reserved";
}

TEST(BootPlan, RefusesWhatDoesNotFit) {
    auto f = fake_bzimage();
    auto img = parse_bzimage(f).value();
    auto small = plan_boot(img, ram_regions(16 * kMiB), 0, "");
    ASSERT_FALSE(small);
    EXPECT_NE(small.error().message.find("too little"), std::string::npos) << small.error().message;
    auto big_initrd = plan_boot(img, ram_regions(64 * kMiB), 60 * kMiB, "");
    ASSERT_FALSE(big_initrd);
    EXPECT_NE(big_initrd.error().message.find("initrd"), std::string::npos);
    auto long_cmdline = plan_boot(img, ram_regions(64 * kMiB), 0, std::string(3000, 'x'));
    ASSERT_FALSE(long_cmdline);
    EXPECT_NE(long_cmdline.error().message.find("command line"), std::string::npos);
}

TEST(BootPlan, RespectsInitrdAddrMax) {
    auto f = with_header([](setup_header& h) { h.initrd_addr_max = 0x3fffffff; });
    auto img = parse_bzimage(f).value();
    auto plan = plan_boot(img, ram_regions(2048 * kMiB), 10 * kMiB, "");
    ASSERT_TRUE(plan);
    EXPECT_LE(plan->initrd_addr + plan->initrd_size, 0x40000000u);
}

TEST(ZeroPage, CarriesCmdlineInitrdE820AndRsdp) {
    auto f = fake_bzimage();
    auto img = parse_bzimage(f).value();
    auto ram = ram_regions(128 * kMiB);
    auto mem = GuestMemory::create_unregistered(128 * kMiB).value();
    const std::vector<std::uint8_t> a(5000, 1), b(3000, 2);
    const std::string cmdline = "console=ttyS0 quiet";
    auto plan = plan_boot(img, ram, a.size() + b.size(), cmdline).value();
    auto e820 = e820_map(ram);
    std::vector<std::span<const std::uint8_t>> parts{a, b};
    ASSERT_TRUE(load_boot(mem, img, plan, parts, cmdline, e820, kAcpiAddr));

    auto bp = mem.read_obj<boot_params>(kZeroPageAddr).value();
    EXPECT_EQ(bp.hdr.type_of_loader, 0xff);
    EXPECT_EQ(bp.hdr.cmd_line_ptr, kCmdlineAddr);
    EXPECT_EQ(bp.hdr.ramdisk_image, plan.initrd_addr);
    EXPECT_EQ(bp.hdr.ramdisk_size, 8000u);
    EXPECT_EQ(bp.acpi_rsdp_addr, kAcpiAddr);
    ASSERT_EQ(bp.e820_entries, e820.size());
    EXPECT_EQ(bp.e820_table[2].addr, kHighMemStart);
    auto cmd = mem.slice(kCmdlineAddr, cmdline.size() + 1).value();
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(cmd.data())), cmdline);
    EXPECT_EQ(mem.read_obj<std::uint8_t>(plan.initrd_addr + 4999).value(), 1);
    EXPECT_EQ(mem.read_obj<std::uint8_t>(plan.initrd_addr + 5000).value(), 2);
    EXPECT_EQ(mem.read_obj<std::uint8_t>(kKernelLoadAddr).value(), 0xcc);
}

// A minimal vmlinux with one PT_LOAD per (paddr, filesz, memsz), file bytes 0xa0 + segment
// index, entry at the start of the first segment.
struct Seg {
    std::uint64_t paddr, filesz, memsz;
};
std::vector<std::uint8_t> fake_vmlinux(std::vector<Seg> segs = {{0x1000000, 0x3000, 0x5000},
                                                                {0x1005000, 0x1000, 0x3000}}) {
    std::vector<test::ElfSegment> elf;
    for (std::size_t i = 0; i < segs.size(); ++i)
        elf.push_back(
            {segs[i].paddr,
             std::vector<std::uint8_t>(segs[i].filesz, static_cast<std::uint8_t>(0xa0 + i)),
             segs[i].memsz});
    return test::elf_vmlinux(elf, segs.empty() ? 0 : segs[0].paddr);
}

template <typename F>
std::vector<std::uint8_t> with_elf(F change, std::vector<std::uint8_t> f = fake_vmlinux()) {
    Elf64_Ehdr eh;
    std::memcpy(&eh, f.data(), sizeof eh);
    Elf64_Phdr ph;
    std::memcpy(&ph, f.data() + eh.e_phoff, sizeof ph);
    change(eh, ph);
    std::memcpy(f.data(), &eh, sizeof eh);
    std::memcpy(f.data() + sizeof eh, &ph, sizeof ph);
    return f;
}

TEST(ElfKernel, LoadsSegmentsAtTheirPhysicalAddresses) {
    auto f = fake_vmlinux();
    auto img = parse_kernel(f);
    ASSERT_TRUE(img) << img.error().message;
    EXPECT_EQ(img->format, KernelFormat::elf);
    ASSERT_EQ(img->segments.size(), 2u);
    EXPECT_EQ(img->elf_entry, 0x1000000u);
    EXPECT_EQ(img->header.init_size, 0x8000u) << "from the first segment to the end of the last";

    auto ram = ram_regions(64 * kMiB);
    auto mem = GuestMemory::create_unregistered(64 * kMiB).value();
    auto plan = plan_boot(*img, ram, 4096, "console=ttyS0");
    ASSERT_TRUE(plan) << plan.error().message;
    EXPECT_EQ(plan->entry, 0x1000000u);
    EXPECT_EQ(plan->kernel_end, 0x1008000u);
    EXPECT_GE(plan->initrd_addr, plan->kernel_end);
    const std::vector<std::uint8_t> initrd(4096, 7);
    std::vector<std::span<const std::uint8_t>> parts{initrd};
    ASSERT_TRUE(load_boot(mem, *img, *plan, parts, "console=ttyS0", e820_map(ram), kAcpiAddr));
    EXPECT_EQ(mem.read_obj<std::uint8_t>(0x1000000).value(), 0xa0);
    EXPECT_EQ(mem.read_obj<std::uint8_t>(0x1002fff).value(), 0xa0);
    EXPECT_EQ(mem.read_obj<std::uint8_t>(0x1003000).value(), 0) << "bss stays zero";
    EXPECT_EQ(mem.read_obj<std::uint8_t>(0x1005000).value(), 0xa1);
    EXPECT_EQ(mem.read_obj<std::uint8_t>(0x1006000).value(), 0);
    EXPECT_EQ(mem.read_obj<std::uint8_t>(kKernelLoadAddr).value(), 0) << "nothing at 1 MiB";
    auto bp = mem.read_obj<boot_params>(kZeroPageAddr).value();
    EXPECT_EQ(bp.hdr.boot_flag, 0xaa55);
    EXPECT_EQ(bp.hdr.header, 0x53726448u);
    EXPECT_EQ(bp.hdr.type_of_loader, 0xff);
    EXPECT_EQ(bp.hdr.ramdisk_image, plan->initrd_addr);
    EXPECT_EQ(bp.hdr.cmd_line_ptr, kCmdlineAddr);
}

TEST(ElfKernel, RejectsMalformedFiles) {
    const auto whole = fake_vmlinux();
    auto truncated = whole;
    truncated.resize(truncated.size() - 100);
    const BadKernel cases[] = {
        {"header only", std::vector<std::uint8_t>(whole.begin(), whole.begin() + 20), "too small"},
        {"32-bit", with_elf([](Elf64_Ehdr& e, Elf64_Phdr&) { e.e_ident[EI_CLASS] = ELFCLASS32; }),
         "64-bit"},
        {"not x86-64", with_elf([](Elf64_Ehdr& e, Elf64_Phdr&) { e.e_machine = EM_AARCH64; }),
         "x86-64"},
        {"shared object", with_elf([](Elf64_Ehdr& e, Elf64_Phdr&) { e.e_type = ET_DYN; }),
         "not an executable"},
        {"huge phnum", with_elf([](Elf64_Ehdr& e, Elf64_Phdr&) { e.e_phnum = 5000; }), "malformed"},
        {"table outside", with_elf([](Elf64_Ehdr& e, Elf64_Phdr&) { e.e_phoff = ~0ull - 8; }),
         "outside"},
        {"segment outside", truncated, "outside"},
        {"offset wraps", with_elf([](Elf64_Ehdr&, Elf64_Phdr& p) { p.p_offset = ~0ull; }),
         "outside"},
        {"filesz > memsz", with_elf([](Elf64_Ehdr&, Elf64_Phdr& p) { p.p_memsz = 1; }),
         "more file bytes"},
        {"below 1 MiB",
         with_elf([](Elf64_Ehdr& e, Elf64_Phdr& p) { p.p_paddr = e.e_entry = 0x7000; }),
         "not between"},
        {"into the MMIO hole",
         with_elf([](Elf64_Ehdr&, Elf64_Phdr& p) { p.p_memsz = 0xffff'ffff'0000'0000ull; }),
         "not between"},
        {"overlap", fake_vmlinux({{0x1000000, 0x1000, 0x6000}, {0x1005000, 0x1000, 0x1000}}),
         "overlap"},
        {"entry in bss", with_elf([](Elf64_Ehdr& e, Elf64_Phdr&) { e.e_entry = 0x1004000; }),
         "entry point"},
        {"nothing to load", fake_vmlinux({}), "malformed"},
    };
    expect_each_refused(cases, [](const auto& f) { return parse_kernel(f); });
}

TEST(ElfKernel, MemoryMustHoldTheWholeImage) {
    auto f = fake_vmlinux({{0x1000000, 0x1000, 60 * kMiB}});
    auto img = parse_kernel(f).value();
    auto r = plan_boot(img, ram_regions(64 * kMiB), 0, "");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("too little"), std::string::npos) << r.error().message;
    EXPECT_TRUE(plan_boot(img, ram_regions(128 * kMiB), 0, ""));
}

TEST(ElfKernel, ParsesStockadesVmlinuxAndTheOneTakenOutOfTheCloudKernel) {
    for (const char* path : {STOCKADE_TEST_VMLINUX, STOCKADE_TEST_CLOUD_VMLINUX}) {
        SCOPED_TRACE(path);
        auto file = read_file(path, 512u << 20);
        ASSERT_TRUE(file) << file.error().message;
        auto img = parse_kernel(*file);
        ASSERT_TRUE(img) << img.error().message;
        EXPECT_EQ(img->format, KernelFormat::elf);
        EXPECT_EQ(img->elf_entry, 0x1000000u) << "startup_64 at the kernel's physical start";
        auto plan = plan_boot(*img, ram_regions(256 * kMiB), 8 * kMiB, "console=ttyS0");
        ASSERT_TRUE(plan) << plan.error().message;
    }
}

TEST(MemoryMap, SplitsAroundTheMmioHole) {
    auto small = ram_regions(256 * kMiB);
    ASSERT_EQ(small.size(), 1u);
    EXPECT_EQ(small[0].size, 256 * kMiB);
    auto big = ram_regions(4096 * kMiB);
    ASSERT_EQ(big.size(), 2u);
    EXPECT_EQ(big[0].size, kMmioHoleStart);
    EXPECT_EQ(big[1].guest_phys, kHighRamStart);
    EXPECT_EQ(big[0].size + big[1].size, 4096 * kMiB);
    auto e820 = e820_map(big);
    ASSERT_EQ(e820.size(), 4u);
    EXPECT_EQ(e820[0].type, kE820Ram);
    EXPECT_EQ(e820[0].size, kEbdaStart);
    EXPECT_EQ(e820[1].type, kE820Reserved);
    EXPECT_EQ(e820[1].addr + e820[1].size, kHighMemStart);
    EXPECT_EQ(e820[3].addr, kHighRamStart);
    std::uint64_t ram_total = 0;
    for (const auto& e : e820)
        ram_total += e.type == kE820Ram ? e.size : 0;
    EXPECT_EQ(ram_total, 4096 * kMiB - (kHighMemStart - kEbdaStart));
}

}  // namespace
}  // namespace stockade::x86
