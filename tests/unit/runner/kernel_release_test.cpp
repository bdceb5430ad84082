// Kernel releases from bzImage and vmlinux files, and the check that the initramfs's
// modules are for the kernel booted.
#include <gtest/gtest.h>

#include <elf.h>

#include <cstring>
#include <string>
#include <vector>

#include "base/io.hpp"
#include "guest/abi.hpp"
#include "guest/cpio.hpp"
#include "guest/initramfs_modules.hpp"
#include "runner/arch/x86/kernel_image.hpp"
#include "runner/arch/x86/kernel_release.hpp"
#include "tests/support/bzimage.hpp"
#include "tests/support/vmlinux.hpp"

namespace stockade::x86 {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::size_t kSetupSize = test::kBzSetupSize;
constexpr std::size_t kVersionAt = test::kBzVersionAt;

// A bzImage parse_bzimage accepts, whose kernel_version points at `version` (NUL added).
Bytes bzimage(std::string_view version, std::size_t pm_size = 64 * 1024) {
    return test::fake_bzimage(pm_size, version);
}

void set_kernel_version(Bytes& f, std::uint16_t v) {
    setup_header h;
    std::memcpy(&h, f.data() + 0x1f1, sizeof h);
    h.kernel_version = v;
    std::memcpy(f.data() + 0x1f1, &h, sizeof h);
}

// A vmlinux parse_elf_kernel accepts, with `text` in its one segment after some code.
Bytes vmlinux(std::string_view text) {
    const std::string bytes = std::string(256, '\x90') + std::string(text);  // nops, then text
    test::ElfSegment seg{0x1000000, Bytes(bytes.begin(), bytes.end()), bytes.size() + 4096};
    return test::elf_vmlinux({seg}, 0x1000000);
}

// `elf` with `rodata` appended and a section header table that names it ".rodata";
// `change` may then spoil the table.
template <typename Change>
Bytes with_rodata(Bytes elf, std::string_view rodata, Change change) {
    const std::uint64_t rodata_at = elf.size();
    elf.insert(elf.end(), rodata.begin(), rodata.end());
    const std::string_view names("\0.shstrtab\0.rodata\0", 19);
    const std::uint64_t names_at = elf.size();
    elf.insert(elf.end(), names.begin(), names.end());
    elf.resize((elf.size() + 7) / 8 * 8);
    Elf64_Ehdr eh;
    std::memcpy(&eh, elf.data(), sizeof eh);
    eh.e_shoff = elf.size();
    eh.e_shentsize = sizeof(Elf64_Shdr);
    eh.e_shnum = 3;
    eh.e_shstrndx = 1;
    Elf64_Shdr sh[3]{};
    sh[1].sh_name = 1;
    sh[1].sh_type = SHT_STRTAB;
    sh[1].sh_offset = names_at;
    sh[1].sh_size = names.size();
    sh[2].sh_name = 11;
    sh[2].sh_type = SHT_PROGBITS;
    sh[2].sh_offset = rodata_at;
    sh[2].sh_size = rodata.size();
    change(eh, sh);
    std::memcpy(elf.data(), &eh, sizeof eh);
    const auto* table = reinterpret_cast<const std::uint8_t*>(sh);
    elf.insert(elf.end(), table, table + sizeof sh);
    return elf;
}

Bytes with_rodata(Bytes elf, std::string_view rodata) {
    return with_rodata(std::move(elf), rodata, [](Elf64_Ehdr&, Elf64_Shdr*) {});
}

Bytes initramfs(const std::string& release) {
    cpio::Writer w;
    w.add_file("/init", std::string_view("init"), 0755);
    if (!release.empty())
        w.add_file("/lib/modules/" + release + "/kernel/drivers/virtio/virtio_pci.ko",
                   std::string_view("module"));
    return w.finish();
}

// An initramfs without modules for a kernel with its drivers built in, as
// `stockade-mkimage initramfs --kernel-release RELEASE` writes it.
Bytes builtin_initramfs(const std::string& text) {
    cpio::Writer w;
    w.add_file("/init", std::string_view("init"), 0755);
    w.add_file(std::string(guest_abi::kKernelReleaseFile), text);
    return w.finish();
}

constexpr std::string_view kDebianVersion =
    "6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian "
    "6.1.119-1 (2024-11-22)";
constexpr std::string_view kDebianBanner =
    "Linux version 6.1.0-28-cloud-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian "
    "12.2.0-14) 12.2.0, GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian "
    "6.1.119-1 (2024-11-22)\n";

TEST(KernelRelease, ReadsABzImagesKernelVersion) {
    EXPECT_EQ(kernel_release(bzimage(kDebianVersion)), "6.1.0-28-cloud-amd64");
    EXPECT_EQ(kernel_release(bzimage("6.12.9")), "6.12.9") << "a release alone";
}

TEST(KernelRelease, ReadsAVmlinuxBanner) {
    EXPECT_EQ(kernel_release(vmlinux(std::string(kDebianBanner) + '\0')), "6.1.0-28-cloud-amd64");
}

TEST(KernelRelease, PassesOverWhatOnlyStartsLikeTheBanner) {
    const std::string text =
        std::string("Linux version %s\0Linux version (none)\0", 38) + std::string(kDebianBanner);
    EXPECT_EQ(kernel_release(vmlinux(text)), "6.1.0-28-cloud-amd64");
    EXPECT_EQ(kernel_release(vmlinux("Linux version %s (%s)\n")), std::nullopt);
}

TEST(KernelRelease, LooksInRodataFirst) {
    const Bytes elf = vmlinux("Linux version 6.1.0-1-amd64 (segment)");
    EXPECT_EQ(kernel_release(with_rodata(elf, "Linux version 6.1.0-2-amd64 (rodata)")),
              "6.1.0-2-amd64");
    EXPECT_EQ(kernel_release(with_rodata(elf, "no banner in .rodata")), "6.1.0-1-amd64");
}

TEST(KernelRelease, FallsBackToTheSegmentsWhenSectionHeadersLie) {
    const Bytes elf = vmlinux("Linux version 6.1.0-1-amd64 (segment)");
    constexpr std::string_view kRodata = "Linux version 6.1.0-2-amd64 (rodata)";
    using Change = void (*)(Elf64_Ehdr&, Elf64_Shdr*);
    const Change changes[] = {
        [](Elf64_Ehdr& eh, Elf64_Shdr*) { eh.e_shoff = ~0ull - 8; },
        [](Elf64_Ehdr& eh, Elf64_Shdr*) { eh.e_shnum = 0xfff0; },
        [](Elf64_Ehdr& eh, Elf64_Shdr*) { eh.e_shstrndx = 3; },
        [](Elf64_Ehdr& eh, Elf64_Shdr*) { eh.e_shentsize = 32; },
        [](Elf64_Ehdr&, Elf64_Shdr* sh) { sh[2].sh_offset = ~0ull - 4; },
        [](Elf64_Ehdr&, Elf64_Shdr* sh) { sh[2].sh_size = ~0ull - 4; },
        [](Elf64_Ehdr&, Elf64_Shdr* sh) { sh[2].sh_type = SHT_NOBITS; },
        [](Elf64_Ehdr&, Elf64_Shdr* sh) { sh[2].sh_name = 0x7fffffff; },
        [](Elf64_Ehdr&, Elf64_Shdr* sh) { sh[1].sh_size = 15; },  // ".rodata" cut off
        [](Elf64_Ehdr&, Elf64_Shdr* sh) { sh[1].sh_offset = ~0ull; },
    };
    for (Change change : changes)
        EXPECT_EQ(kernel_release(with_rodata(elf, kRodata, change)), "6.1.0-1-amd64");
}

TEST(KernelRelease, IsUnknownWithoutAReadableVersion) {
    EXPECT_EQ(kernel_release(vmlinux("no banner here")), std::nullopt);
    // The banner cut off by the end of the segment (and file): no read past it.
    EXPECT_EQ(kernel_release(vmlinux("Linux version 6.1.0-28-cloud-amd64")), std::nullopt);
    EXPECT_EQ(kernel_release(bzimage("")), std::nullopt);
    EXPECT_EQ(kernel_release(bzimage(" 6.1.0")), std::nullopt);
    EXPECT_EQ(kernel_release(bzimage(std::string(65, '6'))), std::nullopt) << "longer than uname";
    Bytes none = bzimage(kDebianVersion);
    set_kernel_version(none, 0);
    EXPECT_EQ(kernel_release(none), std::nullopt);
    EXPECT_EQ(kernel_release(Bytes(4096, 0)), std::nullopt) << "neither format";
    EXPECT_EQ(kernel_release({}), std::nullopt);
}

TEST(KernelRelease, IgnoresAKernelVersionPointingOutsideTheSetupCode) {
    // Past the end of a small file, at the very end of it, and into the kernel proper.
    Bytes small = bzimage(kDebianVersion, 4096);
    set_kernel_version(small, 0xffff);
    ASSERT_GT(0x200u + 0xffff, small.size());
    EXPECT_EQ(kernel_release(small), std::nullopt);
    set_kernel_version(small, static_cast<std::uint16_t>(small.size() - 1 - 0x200));
    EXPECT_EQ(kernel_release(small), std::nullopt);
    Bytes big = bzimage(kDebianVersion);
    std::memcpy(big.data() + kSetupSize, "6.1.0\0", 6);
    set_kernel_version(big, kSetupSize - 0x200);
    EXPECT_EQ(kernel_release(big), std::nullopt);
}

TEST(KernelRelease, IgnoresAStringWithoutItsNul) {
    // The string runs to the end of the setup code; the NUL that follows is the kernel's.
    Bytes f = bzimage("");
    std::memset(f.data() + kVersionAt, '6', kSetupSize - kVersionAt);
    f[kSetupSize] = 0;
    EXPECT_EQ(kernel_release(f), std::nullopt);
}

TEST(KernelMatchesInitramfs, PassesWhenTheReleasesAgree) {
    const Bytes initrd = initramfs("6.1.0-28-cloud-amd64");
    EXPECT_TRUE(check_kernel_matches_initramfs(bzimage(kDebianVersion), initrd, "k", "i"));
    EXPECT_TRUE(check_kernel_matches_initramfs(vmlinux(kDebianBanner), initrd, "k", "i"));
}

TEST(KernelMatchesInitramfs, NamesBothReleasesAndTheFixWhenTheyDiffer) {
    const Bytes kernel = bzimage("6.1.0-30-amd64 (debian-kernel@lists.debian.org) #1 SMP");
    auto r = check_kernel_matches_initramfs(kernel, initramfs("6.1.0-28-cloud-amd64"),
                                            "/boot/vmlinuz-6.1.0-30-amd64", "build/initramfs.cpio");
    ASSERT_FALSE(r);
    const std::string& m = r.error().message;
    for (const std::string& part : std::initializer_list<std::string>{
             "--kernel /boot/vmlinuz-6.1.0-30-amd64 is Linux 6.1.0-30-amd64 ",
             " the initramfs build/initramfs.cpio was made for 6.1.0-28-cloud-amd64",
             initramfs_build_command("6.1.0-30-amd64"), "--initrd FILE"})
        EXPECT_NE(m.find(part), std::string::npos) << part << " in " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "one line";
}

TEST(KernelMatchesInitramfs, AnInitramfsForABuiltInDriversKernelIsRefusedWithAnyOther) {
    const Bytes initrd = builtin_initramfs("6.1.192-stockade\n");
    EXPECT_EQ(initramfs_module_releases(initrd), std::vector<std::string>{"6.1.192-stockade"});
    EXPECT_TRUE(check_kernel_matches_initramfs(vmlinux("Linux version 6.1.192-stockade (b@h)"),
                                               initrd, "k", "i"));
    auto r = check_kernel_matches_initramfs(bzimage(kDebianVersion), initrd,
                                            "build/guest/cloud/vmlinux", "build/initramfs.cpio");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("is Linux 6.1.0-28-cloud-amd64 but the initramfs "
                                     "build/initramfs.cpio was made for 6.1.192-stockade"),
              std::string::npos)
        << r.error().message;
    EXPECT_NE(r.error().message.find(initramfs_build_command("6.1.0-28-cloud-amd64")),
              std::string::npos);
    // The other way round, the fix names the release instead of a modules directory.
    EXPECT_NE(initramfs_build_command("6.1.192-stockade").find("--kernel-release 6.1.192-stockade"),
              std::string::npos);
    EXPECT_EQ(initramfs_build_command("6.1.192-stockade").find("--modules-dir"), std::string::npos);
    // A file that names no release (empty, spaces, too long) names nothing.
    for (const std::string& bad :
         std::initializer_list<std::string>{"", "\n", "6.1 x\n", std::string(65, 'a')})
        EXPECT_TRUE(initramfs_module_releases(builtin_initramfs(bad)).empty()) << bad;
}

TEST(InitramfsFormat, CpioAndEveryCompressionTheKernelUnpacksPassOthersAreRefused) {
    auto bytes = [](std::initializer_list<std::uint8_t> b) { return std::vector<std::uint8_t>(b); };
    EXPECT_TRUE(check_initramfs_format(initramfs("6.1.0-28-cloud-amd64"), "i"));
    EXPECT_TRUE(check_initramfs_format(initramfs(""), "i"));
    for (const auto& magic :
         {bytes({0x1f, 0x8b, 8}), bytes({'B', 'Z', 'h', '9'}), bytes({0x5d, 0, 0, 0x80}),
          bytes({0xfd, '7', 'z', 'X', 'Z', 0}), bytes({0x89, 'L', 'Z', 'O', 0}),
          bytes({0x02, 0x21, 0x4c, 0x18}), bytes({0x28, 0xb5, 0x2f, 0xfd}),
          bytes({0, 0, 0, 0, '0', '7', '0', '7', '0', '1'})})  // NUL padding first
        EXPECT_TRUE(check_initramfs_format(magic, "i")) << int{magic[0]};
    auto r = check_initramfs_format(bytes({'b', 'r', 'o', 'k', 'e', 'n'}), "/x/initramfs.cpio");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("--initrd /x/initramfs.cpio: not an initramfs"),
              std::string::npos)
        << r.error().message;
    EXPECT_FALSE(check_initramfs_format(bytes({}), "i"));
    EXPECT_FALSE(check_initramfs_format(bytes({0, 0, 0}), "i")) << "only padding";
    EXPECT_FALSE(check_initramfs_format(bytes({'0', '7', '0', '7', '0'}), "i")) << "cut short";
}

TEST(KernelMatchesInitramfs, PassesWhenEitherReleaseIsUnknown) {
    const Bytes kernel = bzimage(kDebianVersion);
    EXPECT_TRUE(check_kernel_matches_initramfs(kernel, initramfs(""), "k", "i")) << "no modules";
    const Bytes gzip = {0x1f, 0x8b, 0x08, 0, 0, 0, 0, 0, 0, 3};
    EXPECT_TRUE(check_kernel_matches_initramfs(kernel, gzip, "k", "i")) << "compressed";
    EXPECT_TRUE(check_kernel_matches_initramfs(vmlinux("no banner"), initramfs("6.1.0-30-amd64"),
                                               "k", "i"));
}

TEST(KernelMatchesInitramfs, PassesWhenAnyOfSeveralReleasesAgrees) {
    Bytes both = initramfs("6.1.0-30-amd64");
    const Bytes other = initramfs("6.1.0-28-cloud-amd64");
    both.insert(both.end(), other.begin(), other.end());
    EXPECT_TRUE(check_kernel_matches_initramfs(bzimage(kDebianVersion), both, "k", "i"));
    auto r = check_kernel_matches_initramfs(bzimage("6.1.0-31-amd64"), both, "k", "i");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("was made for 6.1.0-30-amd64 and 6.1.0-28-cloud-amd64"),
              std::string::npos)
        << r.error().message;
}

// The images the build makes. stockade's kernel: the bzImage and the vmlinux say the release
// build-kernel recorded, and its initramfs holds no modules (everything is built in) but names
// that release. Debian's cloud kernel: its bzImage, the vmlinux taken out of it and
// the initramfs made with its modules all say the same release.
TEST(KernelMatchesInitramfs, TheBuiltImagesAgree) {
    auto bz = read_file(STOCKADE_TEST_KERNEL, 256u << 20);
    auto elf = read_file(STOCKADE_TEST_VMLINUX, 256u << 20);
    auto initrd = read_file(STOCKADE_TEST_INITRD, 512u << 20);
    auto recorded = read_file(STOCKADE_TEST_KERNEL_RELEASE_FILE, 4096);
    ASSERT_TRUE(bz && elf && initrd && recorded);
    std::string release(recorded->begin(), recorded->end());
    while (!release.empty() && release.back() == '\n')
        release.pop_back();
    EXPECT_TRUE(release.ends_with("-stockade")) << release;
    EXPECT_EQ(kernel_release(*bz), release);
    EXPECT_EQ(kernel_release(*elf), release);
    EXPECT_EQ(initramfs_module_releases(*initrd), std::vector<std::string>{release});
    EXPECT_TRUE(check_kernel_matches_initramfs(*elf, *initrd, "vmlinux", "initrd"));

    auto cloud_bz = read_file(STOCKADE_TEST_CLOUD_KERNEL, 256u << 20);
    auto cloud_elf = read_file(STOCKADE_TEST_CLOUD_VMLINUX, 256u << 20);
    auto cloud_initrd = read_file(STOCKADE_TEST_CLOUD_INITRD, 512u << 20);
    ASSERT_TRUE(cloud_bz && cloud_elf && cloud_initrd);
    const auto cloud = initramfs_module_release(*cloud_initrd);
    ASSERT_TRUE(cloud);
    EXPECT_TRUE(cloud->ends_with("-cloud-amd64")) << *cloud;
    EXPECT_EQ(kernel_release(*cloud_bz), cloud);
    EXPECT_EQ(kernel_release(*cloud_elf), cloud);
    EXPECT_TRUE(check_kernel_matches_initramfs(*cloud_bz, *cloud_initrd, "bz", "initrd"));
    EXPECT_TRUE(check_kernel_matches_initramfs(*cloud_elf, *cloud_initrd, "vmlinux", "initrd"));
    // Either kernel with the other's initramfs is refused.
    EXPECT_FALSE(check_kernel_matches_initramfs(*elf, *cloud_initrd, "vmlinux", "initrd"));
    EXPECT_FALSE(check_kernel_matches_initramfs(*cloud_elf, *initrd, "vmlinux", "initrd"));
    EXPECT_FALSE(check_kernel_matches_initramfs(*cloud_bz, *initrd, "bz", "initrd"));
}

}  // namespace
}  // namespace stockade::x86
