#include "base/mapping.hpp"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

namespace stockade {

void no_huge_pages_on_this_threads_stack() noexcept {
    pthread_attr_t attr;
    if (::pthread_getattr_np(::pthread_self(), &attr) != 0) return;
    void* stack = nullptr;
    std::size_t size = 0;
    if (::pthread_attr_getstack(&attr, &stack, &size) == 0 && stack != nullptr)
        (void)::madvise(stack, size, MADV_NOHUGEPAGE);
    ::pthread_attr_destroy(&attr);
}

namespace {

// Reserves `size` bytes of address space at a multiple of `align` (inaccessible until mapped
// over with MAP_FIXED), or returns nullptr (no placement wanted) when `align` is 0. The
// reservation over-allocates by `align` and gives back the unaligned head and the tail.
Result<void*> reserve(std::size_t size, std::size_t align) {
    if (align == 0) return nullptr;
    if ((align & (align - 1)) != 0 || align % 4096 != 0)
        return fail("mapping alignment {:#x} is not a power-of-two multiple of the page size",
                    align);
    // The trim below works in whole pages: a size that is not a multiple of the page size
    // (a boot image's) reserves up to its last page. Checked first, so that neither the
    // rounding nor the over-allocation can wrap.
    const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    if (size > SIZE_MAX - align - page)
        return fail("mapping of {} bytes is too large to align", size);
    size = (size + page - 1) & ~(page - 1);
    void* p = ::mmap(nullptr, size + align, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                     -1, 0);
    if (p == MAP_FAILED) return fail_sys(fmt::format("reserve {} bytes of address space", size));
    const auto base = reinterpret_cast<std::uintptr_t>(p);
    const std::uintptr_t start = (base + align - 1) & ~(std::uintptr_t{align} - 1);
    if (start > base) ::munmap(p, start - base);
    const std::size_t tail = base + size + align - (start + size);
    if (tail > 0) ::munmap(reinterpret_cast<void*>(start + size), tail);
    return reinterpret_cast<void*>(start);
}

}  // namespace

Result<Mapping> Mapping::place(void* at, std::size_t size, int prot, int flags, int fd,
                               off_t offset, std::string_view what) {
    void* p = ::mmap(at, size, prot, flags | (at != nullptr ? MAP_FIXED : 0), fd, offset);
    if (p == MAP_FAILED) {
        const int err = errno;
        if (at != nullptr) ::munmap(at, size);  // give the reservation back
        return fail_sys(what, err);
    }
    return Mapping(p, size);
}

Result<Mapping> Mapping::anonymous(std::size_t size, int extra_flags, std::size_t align) {
    void* at = STOCKADE_TRY(reserve(size, align));
    return place(at, size, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | extra_flags, -1, 0,
                 fmt::format("mmap anonymous {} bytes", size));
}

Result<Mapping> Mapping::of_fd(int fd, std::size_t size, int prot, int flags, off_t offset,
                               std::size_t align) {
    void* at = STOCKADE_TRY(reserve(size, align));
    return place(at, size, prot, flags, fd, offset,
                 fmt::format("mmap fd {} ({} bytes at offset {})", fd, size, offset));
}

void Mapping::reset() noexcept {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
}

}  // namespace stockade
