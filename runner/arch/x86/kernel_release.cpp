#include "runner/arch/x86/kernel_release.hpp"

#include <elf.h>

#include <algorithm>
#include <cstring>
#include <string_view>
#include <vector>

#include <fmt/ranges.h>

#include "guest/initramfs_modules.hpp"
#include "runner/arch/x86/kernel_image.hpp"

namespace stockade::x86 {
namespace {

// The setup header's kernel_version counts from the start of the setup code, 0x200 bytes
// into the file (Documentation/arch/x86/boot.rst).
constexpr std::size_t kSetupCodeStart = 0x200;
// linux_banner (init/version.c): "Linux version <release> (<user>@<host>) (<compiler>) ...".
constexpr std::string_view kBanner = "Linux version ";
constexpr std::size_t kMaxBannerRelease = 64;  // is_kernel_release's limit

std::string_view chars(std::span<const std::uint8_t> bytes) {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

std::optional<std::string> bzimage_release(const KernelImage& image,
                                           std::span<const std::uint8_t> file) {
    // The string is in the setup sectors (arch/x86/boot/version.c); a pointer anywhere else,
    // or a string without its NUL there, is no release.
    if (image.header.kernel_version == 0) return std::nullopt;
    const std::size_t at = kSetupCodeStart + image.header.kernel_version;
    const std::string_view setup =
        chars(file.first(std::min<std::size_t>(image.setup_bytes, file.size())));
    if (at >= setup.size()) return std::nullopt;
    const std::string_view text = setup.substr(at);
    const auto nul = text.find('\0');
    if (nul == std::string_view::npos) return std::nullopt;
    const std::string_view word = text.substr(0, std::min(nul, text.find(' ')));
    if (!is_kernel_release(word)) return std::nullopt;
    return std::string(word);
}

// The release in the first linux_banner in `text`. Only the banner has a release (a number
// first) then " (": other strings that start the same way (a printk format) are passed over.
std::optional<std::string> find_banner(std::string_view text) {
    for (auto at = text.find(kBanner); at != std::string_view::npos; at = text.find(kBanner, at)) {
        at += kBanner.size();
        const std::string_view rest = text.substr(at, kMaxBannerRelease + 2);
        const auto space = rest.find(' ');
        if (space == std::string_view::npos) continue;
        const std::string_view word = rest.substr(0, space);
        if (is_kernel_release(word) && word.front() >= '0' && word.front() <= '9' &&
            rest.substr(space).starts_with(" ("))
            return std::string(word);
    }
    return std::nullopt;
}

// The file bytes of the ELF section called `name`; empty where the section headers are
// missing or do not hold together (they are not needed to boot, so nothing else checks them).
std::span<const std::uint8_t> elf_section(std::span<const std::uint8_t> file,
                                          std::string_view name) {
    Elf64_Ehdr eh;
    if (file.size() < sizeof eh) return {};
    std::memcpy(&eh, file.data(), sizeof eh);
    if (eh.e_shentsize != sizeof(Elf64_Shdr) || eh.e_shnum == 0 || eh.e_shstrndx >= eh.e_shnum)
        return {};
    const std::uint64_t table_bytes = std::uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr);
    if (eh.e_shoff > file.size() || table_bytes > file.size() - eh.e_shoff) return {};
    auto header = [&](std::size_t i) {
        Elf64_Shdr sh;
        std::memcpy(&sh, file.data() + eh.e_shoff + i * sizeof sh, sizeof sh);
        return sh;
    };
    auto bytes = [&](const Elf64_Shdr& sh) -> std::span<const std::uint8_t> {
        if (sh.sh_type == SHT_NOBITS || sh.sh_offset > file.size() ||
            sh.sh_size > file.size() - sh.sh_offset)
            return {};
        return file.subspan(sh.sh_offset, sh.sh_size);
    };
    const std::string_view names = chars(bytes(header(eh.e_shstrndx)));
    for (std::size_t i = 0; i < eh.e_shnum; ++i) {
        const Elf64_Shdr sh = header(i);
        if (sh.sh_name >= names.size()) continue;
        const std::string_view n = names.substr(sh.sh_name);
        if (n.substr(0, n.find('\0')) == name) return bytes(sh);
    }
    return {};
}

std::optional<std::string> banner_release(const KernelImage& image,
                                          std::span<const std::uint8_t> file) {
    // linux_banner is read-only data, at the very start of Debian's .rodata: looking there
    // first takes microseconds, where the whole 50 MiB vmlinux takes milliseconds.
    if (auto release = find_banner(chars(elf_section(file, ".rodata")))) return release;
    for (const KernelSegment& segment : image.segments)
        if (auto release = find_banner(chars(segment.data))) return release;
    return std::nullopt;
}

}  // namespace

std::optional<std::string> kernel_release(std::span<const std::uint8_t> kernel_file) {
    // A file parse_kernel refuses will not boot either, and says why when it is loaded.
    auto image = parse_kernel(kernel_file);
    if (!image) return std::nullopt;
    return image->format == KernelFormat::elf ? banner_release(*image, kernel_file)
                                              : bzimage_release(*image, kernel_file);
}

Result<> check_initramfs_format(std::span<const std::uint8_t> initrd,
                                std::string_view initrd_path) {
    std::size_t at = 0;
    while (at < initrd.size() && initrd[at] == 0)
        ++at;
    const auto rest = initrd.subspan(at);
    auto starts = [&](std::initializer_list<std::uint8_t> magic) {
        return rest.size() >= magic.size() && std::equal(magic.begin(), magic.end(), rest.begin());
    };
    const bool known = starts({'0', '7', '0', '7', '0', '1'}) ||        // newc cpio
                       starts({'0', '7', '0', '7', '0', '2'}) ||        // newc cpio with checksums
                       starts({0x1f, 0x8b}) || starts({0x1f, 0x9e}) ||  // gzip
                       starts({'B', 'Z', 'h'}) ||                       // bzip2
                       starts({0x5d, 0x00, 0x00}) ||                    // LZMA
                       starts({0xfd, '7', 'z', 'X', 'Z', 0x00}) ||      // XZ
                       starts({0x89, 'L', 'Z', 'O'}) ||                 // LZO
                       starts({0x02, 0x21, 0x4c, 0x18}) ||              // LZ4 (legacy frame)
                       starts({0x28, 0xb5, 0x2f, 0xfd});                // zstd
    if (known) return {};
    if (rest.empty()) return fail("--initrd {}: the file is empty", initrd_path);
    return fail(
        "--initrd {}: not an initramfs (neither a newc cpio archive nor a compressed one; the "
        "guest kernel could not unpack it): make one with stockade-mkimage initramfs",
        initrd_path);
}

Result<> check_kernel_matches_initramfs(std::span<const std::uint8_t> kernel_file,
                                        std::span<const std::uint8_t> initrd,
                                        std::string_view kernel_path,
                                        std::string_view initrd_path) {
    // No modules and no named release (a test initrd) or none readable (a compressed initrd):
    // the guest loads nothing whose release must match, or we cannot tell; nothing to compare.
    const std::vector<std::string> modules = initramfs_module_releases(initrd);
    if (modules.empty()) return {};
    const std::optional<std::string> kernel = kernel_release(kernel_file);
    if (!kernel || std::find(modules.begin(), modules.end(), *kernel) != modules.end()) return {};
    return fail(
        "--kernel {} is Linux {} but the initramfs {} was made for {} (its modules, or the "
        "drivers built into that kernel), which this kernel does not have (in the guest, "
        "stockade-init would fail to configure the console): build a matching initramfs with {} "
        "and pass it with --initrd FILE",
        kernel_path, *kernel, initrd_path, fmt::join(modules, " and "),
        initramfs_build_command(*kernel));
}

}  // namespace stockade::x86
