#pragma once
// Which kernel an initramfs was built for: stockade-mkimage puts each module at
// /lib/modules/<release>/... (guest/mkimage.cpp), and a module loads only into the kernel of
// that release; an initramfs for a kernel with its drivers built in (stockade's own) has no
// modules and names that kernel's release in /etc/stockade/kernel-release instead. Booted with
// another kernel, either finds no drivers and fails in the guest with "the console could not
// be configured"; the runner checks this before it starts. Pure functions over the archive's
// bytes (guest/cpio_reader.hpp); no I/O.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace stockade {

// A string that can be a kernel release (`uname -r`): 1 to 64 printable characters, no
// spaces (the kernel's limit is 64).
[[nodiscard]] bool is_kernel_release(std::string_view s);

// The releases of the modules (regular files named *.ko or *.ko.<compression> under
// lib/modules/<release>/ or usr/lib/modules/<release>/) in the initramfs's uncompressed
// newc archives, and the release its etc/stockade/kernel-release names, each once, in the
// order first seen. Empty when it holds neither: a test initrd without modules, or one that
// is compressed (nothing is decompressed here, and reading stops at the first compressed
// archive).
[[nodiscard]] std::vector<std::string> initramfs_module_releases(
    std::span<const std::uint8_t> initrd);

// The first of those; nullopt when there are none.
[[nodiscard]] std::optional<std::string> initramfs_module_release(
    std::span<const std::uint8_t> initrd);

// The release suffix of stockade's own kernel (guest/kernel.config), whose drivers are built in.
inline constexpr std::string_view kBuiltInDriversSuffix = "-stockade";

// The command that builds stockade's initramfs for the kernel `release`, with the options of
// the default image (guest/CMakeLists.txt) and "FILE" as its output: for stockade's own kernel
// it names the release (--kernel-release), for any other the module set of Debian's cloud
// kernel's image from /lib/modules/<release>.
[[nodiscard]] std::string initramfs_build_command(std::string_view release);

}  // namespace stockade
