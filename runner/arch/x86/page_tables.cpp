#include "runner/arch/x86/page_tables.hpp"

#include "runner/arch/x86/layout.hpp"

namespace stockade::x86 {
namespace {
constexpr std::uint64_t kPresent = 1u << 0;
constexpr std::uint64_t kWritable = 1u << 1;
constexpr std::uint64_t kPageSize = 1u << 7;  // PS: a 2 MiB page in a PD entry
}  // namespace

Result<> write_identity_page_tables(const GuestMemory& mem) {
    STOCKADE_TRY_VOID(mem.write_obj(kPml4Addr, kPdptAddr | kPresent | kWritable));
    for (std::uint64_t gib = 0; gib < 4; ++gib) {
        const std::uint64_t pd = kPdAddr + gib * 4096;
        STOCKADE_TRY_VOID(mem.write_obj(kPdptAddr + gib * 8, pd | kPresent | kWritable));
        std::uint64_t entries[512];
        for (std::uint64_t i = 0; i < 512; ++i)
            entries[i] = ((gib << 30) + (i << 21)) | kPresent | kWritable | kPageSize;
        STOCKADE_TRY_VOID(mem.write_obj(pd, entries));
    }
    return {};
}

}  // namespace stockade::x86
