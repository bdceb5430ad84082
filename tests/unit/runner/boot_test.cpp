// The Linux boot protocol: setup header validation, boot planning, the zero page.
#include <gtest/gtest.h>

#include <cstring>

#include "base/io.hpp"
#include "runner/arch/x86/bzimage.hpp"
#include "runner/arch/x86/layout.hpp"
#include "runner/arch/x86/memory_map.hpp"

namespace stockade::x86 {
namespace {

// A minimal, valid bzImage: 4 setup sectors + boot sector, then `pm_size` bytes of kernel.
std::vector<std::uint8_t> fake_bzimage(std::size_t pm_size = 64 * 1024) {
    std::vector<std::uint8_t> f(5 * 512 + pm_size, 0xcc);
    setup_header h{};
    h.setup_sects = 4;
    h.syssize = static_cast<std::uint32_t>(pm_size / 16);
    h.boot_flag = 0xaa55;
    h.header = 0x53726448;
    h.version = 0x020f;
    h.loadflags = 0x01;
    h.kernel_alignment = 0x200000;
    h.relocatable_kernel = 1;
    h.xloadflags = 0x1;
    h.cmdline_size = 2047;
    h.initrd_addr_max = 0x7fffffff;
    h.pref_address = 0x1000000;
    h.init_size = 8 << 20;
    std::memcpy(f.data() + 0x1f1, &h, sizeof h);
    return f;
}

template <typename F>
std::vector<std::uint8_t> with_header(F change) {
    auto f = fake_bzimage();
    setup_header h;
    std::memcpy(&h, f.data() + 0x1f1, sizeof h);
    change(h);
    std::memcpy(f.data() + 0x1f1, &h, sizeof h);
    return f;
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
    struct Case {
        const char* what;
        std::vector<std::uint8_t> file;
        const char* message;
    };
    const Case cases[] = {
        {"tiny", std::vector<std::uint8_t>(100), "too small"},
        {"no boot flag", with_header([](setup_header& h) { h.boot_flag = 0; }), "not a bzImage"},
        {"no HdrS", with_header([](setup_header& h) { h.header = 0x12345678; }), "not a bzImage"},
        {"old protocol", with_header([](setup_header& h) { h.version = 0x0206; }), "too old"},
        {"no 64-bit entry", with_header([](setup_header& h) { h.xloadflags = 0; }), "64-bit"},
        {"zImage", with_header([](setup_header& h) { h.loadflags = 0; }), "zImage"},
        {"setup past end", with_header([](setup_header& h) { h.setup_sects = 200; }), "setup size"},
        {"truncated", with_header([](setup_header& h) { h.syssize = 1u << 20; }), "truncated"},
        {"init_size", with_header([](setup_header& h) { h.init_size = 100; }), "init_size"},
        {"alignment", with_header([](setup_header& h) { h.kernel_alignment = 3; }), "power of two"},
    };
    for (const Case& c : cases) {
        auto r = parse_bzimage(c.file);
        ASSERT_FALSE(r) << c.what;
        EXPECT_NE(r.error().message.find(c.message), std::string::npos)
            << c.what << ": " << r.error().message;
    }
}

TEST(BzImage, ParsesTheDebianCloudKernel) {
    auto file = read_file(STOCKADE_TEST_KERNEL, 256u << 20);
    ASSERT_TRUE(file) << file.error().message;
    auto img = parse_bzimage(*file);
    ASSERT_TRUE(img) << img.error().message;
    EXPECT_GE(img->version(), 0x020f);
    EXPECT_TRUE(img->header.xloadflags & 1);
    EXPECT_GT(img->header.init_size, img->protected_mode.size());
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
