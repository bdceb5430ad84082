// The boot images a user hands `stockade run` (--kernel, --initrd) as the supervisor reads
// them before anything starts: the kernel's format and release, the initramfs's archives
// and module releases, and the check between the two. The input's first two bytes say where
// the kernel ends and the initramfs begins.
#include <cstddef>
#include <cstdint>
#include <span>

#include "guest/cpio_reader.hpp"
#include "guest/initramfs_modules.hpp"
#include "runner/arch/x86/kernel_image.hpp"
#include "runner/arch/x86/kernel_release.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace stockade;
    if (size < 2) return 0;
    const std::span<const std::uint8_t> rest(data + 2, size - 2);
    const std::size_t split = ((std::size_t{data[0]} << 8) | data[1]) % (rest.size() + 1);
    const auto kernel = rest.first(split), initrd = rest.subspan(split);

    (void)x86::parse_kernel(kernel);
    if (auto release = x86::kernel_release(kernel); release && !is_kernel_release(*release))
        __builtin_trap();  // a release read from the file is always a plausible one
    for (const auto& r : initramfs_module_releases(initrd))
        if (!is_kernel_release(r)) __builtin_trap();
    (void)x86::check_initramfs_format(initrd, "initrd");
    (void)x86::check_kernel_matches_initramfs(kernel, initrd, "kernel", "initrd");

    // Every entry the reader hands out lies inside the bytes it was given.
    cpio::Reader reader(initrd);
    while (auto e = reader.next()) {
        const auto* begin = initrd.data();
        const auto* end = begin + initrd.size();
        if (!e->data.empty() && (e->data.data() < begin || e->data.data() + e->data.size() > end))
            __builtin_trap();
    }
    if (reader.offset() > initrd.size()) __builtin_trap();
    return 0;
}
