#pragma once
// The memory model the virtio fuzz targets share: fuzzer bytes become a guest's RAM
// (rings, descriptors, buffers) and the queue parameters its driver wrote.
//
// Input layout (little-endian):
//   0  u16 queue size         (raw: SplitQueue::create must refuse the bad ones)
//   2  u8  flags              (bit 0 EVENT_IDX, bit 1 raw ring addresses, bits 2-7 for the target)
//   3  u8  steps              (how many pop/push rounds, at most kMaxSteps)
//   4  u64 desc, u64 avail, u64 used  (masked into RAM unless bit 1 is set)
//  28  steps x {u16 offset, u16 value}: a u16 the "guest" stores into RAM before each
//      round (offset 0xffff: none), so rings and descriptors change between pops
//   .. RAM image: the first bytes of guest RAM; the rest of RAM is zero.
//
// Guest RAM is two regions with a hole between them, so buffers that span the hole or
// run off either region are part of what is explored.
#include <cstdint>
#include <cstring>
#include <span>

#include "base/guest_memory.hpp"
#include "runner/virtio/queue.hpp"

namespace stockade::fuzz {

inline constexpr std::uint64_t kLowSize = 0x10000;                       // [0, 64 KiB)
inline constexpr std::uint64_t kHighBase = 0x20000, kHighSize = 0x4000;  // [128 KiB, +16 KiB)
inline constexpr std::size_t kHeaderSize = 28;
inline constexpr std::size_t kMaxSteps = 64;
inline constexpr std::uint8_t kFlagEventIdx = 1, kFlagRawAddresses = 2;

struct GuestImage {
    virtio::QueueSetup setup;
    std::uint8_t flags = 0;
    std::span<const std::uint8_t> script;  // steps x 4 bytes

    [[nodiscard]] std::size_t steps() const { return script.size() / 4; }
    // The guest's store before round `i`, if any.
    void guest_store(const GuestMemory& mem, std::size_t i) const {
        std::uint16_t off, value;
        std::memcpy(&off, script.data() + 4 * i, 2);
        std::memcpy(&value, script.data() + 4 * i + 2, 2);
        if (off != 0xffff) (void)mem.write_obj(off, value);
    }
};

template <typename T>
T take(const std::uint8_t* p) {
    T v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// The guest RAM every input is laid into (created once: mapping it per input would cost
// more than the walk itself).
inline const GuestMemory& guest_memory() {
    static const GuestMemory mem = [] {
        const MemoryRegion regions[] = {{0, kLowSize}, {kHighBase, kHighSize}};
        auto m = GuestMemory::create(regions, {HugePages::off, -1});
        if (!m) __builtin_trap();
        return std::move(*m);
    }();
    return mem;
}

// Parses the header, lays the RAM image into guest memory; false if the input is too short.
inline bool load(const std::uint8_t* data, std::size_t size, GuestImage& out) {
    if (size < kHeaderSize) return false;
    const GuestMemory& mem = guest_memory();
    out.setup = {};
    out.setup.size = take<std::uint16_t>(data);
    out.flags = data[2];
    const std::size_t steps = std::min<std::size_t>(data[3], kMaxSteps);
    out.setup.desc = take<std::uint64_t>(data + 4);
    out.setup.driver = take<std::uint64_t>(data + 12);
    out.setup.device = take<std::uint64_t>(data + 20);
    if (!(out.flags & kFlagRawAddresses)) {  // somewhere in the low region, aligned
        out.setup.desc &= 0xfff0;
        out.setup.driver &= 0xfffe;
        out.setup.device &= 0xfffc;
    }
    out.setup.enabled = true;
    data += kHeaderSize;
    size -= kHeaderSize;
    const std::size_t script = std::min(size, 4 * steps) & ~std::size_t{3};
    out.script = std::span(data, script);
    data += script;
    size -= script;
    auto low = mem.slice(0, kLowSize).value();
    auto high = mem.slice(kHighBase, kHighSize).value();
    const std::size_t n = std::min<std::size_t>(size, kLowSize);
    std::memcpy(low.data(), data, n);
    std::memset(low.data() + n, 0, kLowSize - n);
    std::memset(high.data(), 0, kHighSize);
    return true;
}

// The property behind every bounds check: whatever the walker hands a device is guest
// RAM, and no chain is longer than the queue.
inline void check_chain(const GuestMemory& mem, const virtio::Chain& chain, std::uint16_t size) {
    if (chain.head >= size) __builtin_trap();
    if (chain.readable.size() + chain.writable.size() > size) __builtin_trap();
    for (const auto& d : chain.readable)
        if (!mem.contains(d.addr, d.len)) __builtin_trap();
    for (const auto& d : chain.writable)
        if (!mem.contains(d.addr, d.len)) __builtin_trap();
}

// A host view of guest memory must lie inside one of guest RAM's host mappings.
inline void check_host_span(const GuestMemory& mem, std::span<const std::uint8_t> span) {
    static const auto regions = mem.host_regions();
    const auto at = reinterpret_cast<std::uintptr_t>(span.data());
    for (const auto& r : regions) {
        const auto base = reinterpret_cast<std::uintptr_t>(r.host);
        if (at >= base && at - base <= r.size && span.size() <= r.size - (at - base)) return;
    }
    __builtin_trap();
}

}  // namespace stockade::fuzz
