#include "base/mapping.hpp"

namespace stockade {

Result<Mapping> Mapping::anonymous(std::size_t size, int extra_flags) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | extra_flags, -1, 0);
    if (p == MAP_FAILED) return fail_sys(fmt::format("mmap anonymous {} bytes", size));
    return Mapping(p, size);
}

Result<Mapping> Mapping::of_fd(int fd, std::size_t size, int prot, int flags, off_t offset) {
    void* p = ::mmap(nullptr, size, prot, flags, fd, offset);
    if (p == MAP_FAILED)
        return fail_sys(fmt::format("mmap fd {} ({} bytes at offset {})", fd, size, offset));
    return Mapping(p, size);
}

void Mapping::reset() noexcept {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
}

}  // namespace stockade
