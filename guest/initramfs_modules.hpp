#pragma once
// Which kernel an initramfs was built for, as far as its modules say: stockade-mkimage puts
// each module at /lib/modules/<release>/... (guest/mkimage.cpp), and a module loads only
// into the kernel of that release. stockade-init loads the virtio drivers from there, so an
// initramfs whose modules are for another kernel than the one booted fails in the guest
// with "the console could not be configured"; the runner checks this before it starts.
// Pure functions over the archive's bytes (guest/cpio_reader.hpp); no I/O.
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
// newc archives, each once, in the order first seen. Empty when it holds none: a test
// initrd without modules, or one that is compressed (nothing is decompressed here, and
// reading stops at the first compressed archive).
[[nodiscard]] std::vector<std::string> initramfs_module_releases(
    std::span<const std::uint8_t> initrd);

// The first of those; nullopt when there are none.
[[nodiscard]] std::optional<std::string> initramfs_module_release(
    std::span<const std::uint8_t> initrd);

// The command that builds stockade's initramfs for the kernel `release`, with the module
// set and options of the default image (guest/CMakeLists.txt) and "FILE" as its output.
[[nodiscard]] std::string initramfs_build_command(std::string_view release);

}  // namespace stockade
