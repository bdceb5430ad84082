#include "base/guest_memory.hpp"

#include <sys/mman.h>
#include <unistd.h>

namespace stockade {

Result<GuestMemory> GuestMemory::create(std::span<const MemoryRegion> regions,
                                        const MemoryOptions& options) {
    GuestMemory mem;
    std::uint64_t file_offset = 0;
    for (const MemoryRegion& r : regions) {
        if (r.size == 0 || r.size % 4096 != 0 || r.guest_phys % 4096 != 0)
            return fail("guest memory region {:#x}+{:#x} is not page-aligned", r.guest_phys,
                        r.size);
        if (r.guest_phys + r.size < r.guest_phys)
            return fail("guest memory region {:#x}+{:#x} wraps", r.guest_phys, r.size);
        for (const Region& other : mem.regions_)
            if (r.guest_phys < other.where.guest_phys + other.where.size &&
                other.where.guest_phys < r.guest_phys + r.size)
                return fail("guest memory regions overlap at {:#x}", r.guest_phys);
        // Host addresses agree with guest addresses modulo 2 MiB, so that KVM can back guest
        // RAM with 2 MiB entries in its guest-physical tables wherever the host has a huge
        // page; otherwise every 4 KiB the guest first touches is an exit of its own.
        const std::size_t host_align = r.guest_phys % kHugePageSize == 0 ? kHugePageSize : 0;
        Mapping m;
        if (options.backing_fd >= 0) {
            m = STOCKADE_TRY(Mapping::of_fd(options.backing_fd, r.size, PROT_READ | PROT_WRITE,
                                            options.copy_on_write ? MAP_PRIVATE : MAP_SHARED,
                                            static_cast<off_t>(file_offset), host_align));
            file_offset += r.size;
        } else {
            m = STOCKADE_TRY(Mapping::anonymous(r.size, 0, host_align));
        }
        // Huge pages make first touch of guest RAM far cheaper (one fault per 2 MiB);
        // a refusal (THP disabled on the host) only costs speed.
        if (options.huge_pages == HugePages::transparent)
            (void)::madvise(m.data(), m.size(), MADV_HUGEPAGE);
        // Guest RAM never belongs in a core dump of the runner.
        (void)::madvise(m.data(), m.size(), MADV_DONTDUMP);
        mem.regions_.push_back(Region{r, std::move(m)});
        mem.layout_.push_back(r);
    }
    return mem;
}

std::vector<GuestMemory::HostRegion> GuestMemory::host_regions() const {
    std::vector<HostRegion> out;
    for (const Region& r : regions_)
        out.push_back({r.where.guest_phys, r.where.size, r.map.data()});
    return out;
}

const GuestMemory::Region* GuestMemory::find(std::uint64_t gpa, std::uint64_t len) const {
    for (const Region& r : regions_) {
        const std::uint64_t start = r.where.guest_phys;
        // Written so that no sum can overflow: gpa - start and size - offset are in range.
        if (gpa < start || gpa - start >= r.where.size) continue;
        if (len > r.where.size - (gpa - start)) return nullptr;  // runs past the region
        return &r;
    }
    return nullptr;
}

bool GuestMemory::contains(std::uint64_t gpa, std::uint64_t len) const {
    return find(gpa, len) != nullptr;
}

Result<std::span<std::uint8_t>> GuestMemory::slice(std::uint64_t gpa, std::uint64_t len) const {
    const Region* r = find(gpa, len);
    if (r == nullptr) return fail("guest range {:#x}+{:#x} is outside guest RAM", gpa, len);
    return r->map.bytes().subspan(gpa - r->where.guest_phys, len);
}

Result<> GuestMemory::write(std::uint64_t gpa, std::span<const std::uint8_t> data) const {
    auto dst = STOCKADE_TRY(slice(gpa, data.size()));
    if (!data.empty()) std::memcpy(dst.data(), data.data(), data.size());
    return {};
}

Result<> GuestMemory::read(std::uint64_t gpa, std::span<std::uint8_t> out) const {
    auto src = STOCKADE_TRY(slice(gpa, out.size()));
    if (!out.empty()) std::memcpy(out.data(), src.data(), out.size());
    return {};
}

std::uint64_t GuestMemory::total_size() const {
    std::uint64_t total = 0;
    for (const Region& r : regions_)
        total += r.where.size;
    return total;
}

std::uint64_t GuestMemory::resident_bytes() const {
    const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    std::uint64_t resident = 0;
    std::vector<unsigned char> vec;
    for (const Region& r : regions_) {
        vec.assign((r.map.size() + page - 1) / page, 0);
        if (::mincore(r.map.data(), r.map.size(), vec.data()) != 0) continue;
        for (unsigned char v : vec)
            resident += (v & 1) ? page : 0;
    }
    return resident;
}

}  // namespace stockade
