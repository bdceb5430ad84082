#pragma once
// Which Linux release a kernel file is, and whether the initramfs's modules are for it.
// A bring-your-own --kernel with the default initramfs (or any initramfs built for another
// kernel) otherwise boots and fails in the guest: stockade-init cannot load the virtio
// modules and reports "the console could not be configured". Pure functions over the
// files' bytes; no I/O.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace stockade::x86 {

// The kernel's release (`uname -r`, e.g. "6.1.0-28-cloud-amd64"):
// - bzImage: the first word of the setup header's kernel_version string;
// - vmlinux (ELF): the word after "Linux version " in linux_banner, looked for in the
//   .rodata section first, then in the loaded segments.
// nullopt when the file is neither (as parse_kernel sees it) or carries no readable release.
[[nodiscard]] std::optional<std::string> kernel_release(std::span<const std::uint8_t> kernel_file);

// Whether `initrd` is something the kernel unpacks (after any leading NUL padding, as the
// kernel skips it): a newc cpio archive, or one compressed with gzip, bzip2, LZMA, XZ, LZO,
// LZ4 or zstd. Anything else the kernel would fail to unpack, and the guest would die with
// no root: refused here with the file named.
[[nodiscard]] Result<> check_initramfs_format(std::span<const std::uint8_t> initrd,
                                              std::string_view initrd_path);

// Fails, with the command that builds a matching initramfs, when the kernel's release and
// the initramfs's module release(s) are both known and the kernel's is not among them.
// Passes when either is unknown: an initramfs without modules (a test initrd) or a
// compressed one has nothing to compare, and a kernel without a release is left to the
// boot itself. The paths only name the files in the message.
[[nodiscard]] Result<> check_kernel_matches_initramfs(std::span<const std::uint8_t> kernel_file,
                                                      std::span<const std::uint8_t> initrd,
                                                      std::string_view kernel_path,
                                                      std::string_view initrd_path);

}  // namespace stockade::x86
