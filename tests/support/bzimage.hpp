#pragma once
// A minimal bzImage for tests: a boot sector and 4 setup sectors whose setup header
// parse_bzimage accepts, then `pm_size` bytes of protected-mode kernel. With `version`, the
// header's kernel_version points at that string (NUL added) at kVersionAt.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "runner/arch/x86/kernel_image.hpp"

namespace stockade::test {

inline constexpr std::size_t kBzSetupSize = 5 * 512;  // boot sector and 4 setup sectors
inline constexpr std::size_t kBzVersionAt = 0x400;    // where kernel_version's string goes

inline std::vector<std::uint8_t> fake_bzimage(std::size_t pm_size = 64 * 1024,
                                              std::optional<std::string_view> version = {}) {
    std::vector<std::uint8_t> f(kBzSetupSize + pm_size, 0xcc);
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
    if (version) {
        h.kernel_version = kBzVersionAt - 0x200;
        std::memcpy(f.data() + kBzVersionAt, version->data(), version->size());
        f[kBzVersionAt + version->size()] = 0;
    }
    std::memcpy(f.data() + 0x1f1, &h, sizeof h);
    return f;
}

}  // namespace stockade::test
