#pragma once
// Guest physical memory: one or more host mappings registered as KVM memory slots.
//
// This is the ONE place a guest physical address becomes a host pointer. Everything
// else reads and writes guest memory through slice()/read()/write(), which fail for any
// range that is not entirely inside one RAM region. Guest-controlled addresses and
// lengths therefore cannot reach host memory outside the mappings.
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

#include "base/error.hpp"
#include "base/mapping.hpp"
#include "base/unique_fd.hpp"

namespace stockade {

struct MemoryRegion {
    std::uint64_t guest_phys;
    std::uint64_t size;
};

enum class HugePages { off, transparent };

struct MemoryOptions {
    HugePages huge_pages = HugePages::transparent;
    // When valid, RAM is a mapping of this file (snapshots, sharing): MAP_SHARED, or with
    // copy_on_write MAP_PRIVATE (a restored snapshot's memory: read from the file on first
    // touch, written pages the process's own); else anonymous private memory.
    int backing_fd = -1;
    bool copy_on_write = false;
};

class GuestMemory {
  public:
    [[nodiscard]] static Result<GuestMemory> create(std::span<const MemoryRegion> regions,
                                                    const MemoryOptions& options = {});
    // For tests: memory that is not registered with KVM.
    [[nodiscard]] static Result<GuestMemory> create_unregistered(std::uint64_t size) {
        MemoryRegion r{0, size};
        return create(std::span(&r, 1), MemoryOptions{HugePages::off, -1});
    }

    // Host addresses of guest RAM, for the kernel interfaces that need them (KVM memory
    // slots, vhost memory tables, VFIO DMA maps). Nothing else touches these pointers.
    struct HostRegion {
        std::uint64_t guest_phys;
        std::uint64_t size;
        std::uint8_t* host;
    };
    [[nodiscard]] std::vector<HostRegion> host_regions() const;

    // A host view of [gpa, gpa+len), or an error when any byte is outside guest RAM.
    [[nodiscard]] Result<std::span<std::uint8_t>> slice(std::uint64_t gpa, std::uint64_t len) const;
    [[nodiscard]] bool contains(std::uint64_t gpa, std::uint64_t len) const;
    [[nodiscard]] Result<> write(std::uint64_t gpa, std::span<const std::uint8_t> data) const;
    [[nodiscard]] Result<> read(std::uint64_t gpa, std::span<std::uint8_t> out) const;

    template <typename T>
    [[nodiscard]] Result<> write_obj(std::uint64_t gpa, const T& v) const {
        static_assert(std::is_trivially_copyable_v<T>);
        return write(gpa, std::span(reinterpret_cast<const std::uint8_t*>(&v), sizeof v));
    }
    template <typename T>
    [[nodiscard]] Result<T> read_obj(std::uint64_t gpa) const {
        static_assert(std::is_trivially_copyable_v<T>);
        T v;
        STOCKADE_TRY_VOID(read(gpa, std::span(reinterpret_cast<std::uint8_t*>(&v), sizeof v)));
        return v;
    }

    [[nodiscard]] std::uint64_t total_size() const;
    [[nodiscard]] const std::vector<MemoryRegion>& regions() const { return layout_; }
    // Bytes of guest RAM the host has actually backed (resident), from mincore(2).
    [[nodiscard]] std::uint64_t resident_bytes() const;

  private:
    struct Region {
        MemoryRegion where;
        Mapping map;
    };
    [[nodiscard]] const Region* find(std::uint64_t gpa, std::uint64_t len) const;
    std::vector<Region> regions_;
    std::vector<MemoryRegion> layout_;
};

}  // namespace stockade
