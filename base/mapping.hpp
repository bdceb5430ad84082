#pragma once
#include <sys/mman.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <utility>

#include "base/error.hpp"

namespace stockade {

// An x86-64 huge page: mappings aligned to it can be backed by transparent huge pages, and
// guest RAM aligned to it can be mapped by KVM with huge pages.
inline constexpr std::size_t kHugePageSize = std::size_t{2} << 20;

// Owns one mmap'ed region; unmaps it exactly once.
// Keeps transparent huge pages off the calling thread's stack. With THP "always" (Debian's
// default), khugepaged may back any 2 MiB-aligned stretch of an 8 MiB thread stack that has a
// page in use with a whole huge page: 2 MiB more resident per thread for nothing. Best effort.
void no_huge_pages_on_this_threads_stack() noexcept;

class Mapping {
  public:
    Mapping() = default;
    Mapping(Mapping&& o) noexcept
        : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
    Mapping& operator=(Mapping&& o) noexcept {
        if (this != &o) {
            reset();
            addr_ = std::exchange(o.addr_, nullptr);
            size_ = std::exchange(o.size_, 0);
        }
        return *this;
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping() { reset(); }

    // Anonymous private memory (zero-filled), or a mapping of `fd` at `offset`. A non-zero
    // `align` (a power of two) places the mapping at an address that is a multiple of it:
    // guest RAM aligned to 2 MiB lets KVM map it with huge pages in the guest-physical
    // tables, which needs the host address and the guest address to agree modulo 2 MiB.
    [[nodiscard]] static Result<Mapping> anonymous(std::size_t size, int extra_flags = 0,
                                                   std::size_t align = 0);
    [[nodiscard]] static Result<Mapping> of_fd(int fd, std::size_t size, int prot, int flags,
                                               off_t offset = 0, std::size_t align = 0);

    [[nodiscard]] std::uint8_t* data() const noexcept { return static_cast<std::uint8_t*>(addr_); }
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    [[nodiscard]] std::span<std::uint8_t> bytes() const noexcept { return {data(), size_}; }
    explicit operator bool() const noexcept { return addr_ != nullptr; }
    void reset() noexcept;

  private:
    Mapping(void* addr, std::size_t size) : addr_(addr), size_(size) {}
    // mmap at `at` (MAP_FIXED over a reservation) or anywhere when `at` is null.
    static Result<Mapping> place(void* at, std::size_t size, int prot, int flags, int fd,
                                 off_t offset, std::string_view what);
    void* addr_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace stockade
