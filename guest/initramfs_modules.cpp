#include "guest/initramfs_modules.hpp"

#include <sys/stat.h>

#include <algorithm>

#include "guest/abi.hpp"
#include "guest/cpio_reader.hpp"

// From guest/CMakeLists.txt: the options it builds the default initramfs with.
#if !defined(STOCKADE_MKIMAGE) || !defined(STOCKADE_INITRAMFS_OPTIONS) || \
    !defined(STOCKADE_INITRAMFS_MODULES)
#error "guest/CMakeLists.txt defines STOCKADE_MKIMAGE and STOCKADE_INITRAMFS_{OPTIONS,MODULES}"
#endif

namespace stockade {
namespace {

constexpr std::size_t kMaxRelease = 64;  // __NEW_UTS_LEN

// "/lib/x", "./lib/x" and "lib/x" are the same file to the kernel.
std::string_view relative(std::string_view path) {
    for (;;) {
        if (path.starts_with("/"))
            path.remove_prefix(1);
        else if (path.starts_with("./"))
            path.remove_prefix(2);
        else
            return path;
    }
}

bool is_module_file_name(std::string_view name) {
    const auto ko = name.rfind(".ko");
    return ko != std::string_view::npos && ko > 0 && (ko + 3 == name.size() || name[ko + 3] == '.');
}

// The <release> of lib/modules/<release>/.../<name>.ko, else empty.
std::string_view module_release(std::string_view path) {
    path = relative(path);
    for (std::string_view dir : {"lib/modules/", "usr/lib/modules/"}) {
        if (!path.starts_with(dir)) continue;
        const std::string_view rest = path.substr(dir.size());
        const auto slash = rest.find('/');
        if (slash == std::string_view::npos) return {};
        const auto name = rest.substr(rest.rfind('/') + 1);
        const auto release = rest.substr(0, slash);
        return is_module_file_name(name) && is_kernel_release(release) ? release
                                                                       : std::string_view{};
    }
    return {};
}

}  // namespace

bool is_kernel_release(std::string_view s) {
    return !s.empty() && s.size() <= kMaxRelease &&
           std::all_of(s.begin(), s.end(), [](char c) { return c > ' ' && c < 0x7f; });
}

std::vector<std::string> initramfs_module_releases(std::span<const std::uint8_t> initrd) {
    std::vector<std::string> releases;
    cpio::Reader reader(initrd);
    // However reading stops (the end, compressed data, a malformed header), what was read
    // stands: a module found is a module the guest would have.
    while (auto entry = reader.next()) {
        if (!S_ISREG(entry->mode)) continue;
        std::string_view release = module_release(entry->path);
        if (relative(entry->path) == relative(guest_abi::kKernelReleaseFile)) {
            const std::string_view text(reinterpret_cast<const char*>(entry->data.data()),
                                        entry->data.size());
            release = text.substr(0, text.find('\n'));
            if (!is_kernel_release(release)) release = {};
        }
        if (!release.empty() &&
            std::find(releases.begin(), releases.end(), release) == releases.end())
            releases.emplace_back(release);
    }
    return releases;
}

std::optional<std::string> initramfs_module_release(std::span<const std::uint8_t> initrd) {
    auto releases = initramfs_module_releases(initrd);
    if (releases.empty()) return std::nullopt;
    return std::move(releases.front());
}

std::string initramfs_build_command(std::string_view release) {
    const std::string command = STOCKADE_MKIMAGE " initramfs -o FILE " STOCKADE_INITRAMFS_OPTIONS;
    if (release.ends_with(kBuiltInDriversSuffix))
        return command + " --kernel-release " + std::string(release);
    return command + " --modules-dir /lib/modules/" + std::string(release) +
           " " STOCKADE_INITRAMFS_MODULES;
}

}  // namespace stockade
