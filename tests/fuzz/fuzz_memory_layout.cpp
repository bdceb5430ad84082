// The memory layout a lazily restored sandbox sends its memory loader (base/memory_loader.hpp),
// as the loader, which holds the key, decodes it: the first 8 bytes give the part's size (in
// pages), the rest is the message. Whatever it accepts must cover the part exactly, in whole
// pages, without overlap or wrap-around, and encode back to the same bytes; the loader's lines
// must parse without trapping.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>

#include "base/memory_loader.hpp"

namespace ml = stockade::memory_loader;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    constexpr std::uint64_t kPage = 4096;
    if (size < 8) return 0;
    std::uint64_t pages = 0;
    std::memcpy(&pages, data, 8);
    const std::uint64_t part = (pages % (std::uint64_t{1} << 40)) * kPage;
    const std::span<const std::uint8_t> message(data + 8, size - 8);
    (void)ml::parse_line(
        std::string(reinterpret_cast<const char*>(message.data()), message.size()));
    auto regions = ml::decode_layout(message, part, kPage);
    if (!regions) return 0;
    std::uint64_t next = 0;
    for (std::size_t i = 0; i < regions->size(); ++i) {
        const ml::Region& r = (*regions)[i];
        if (r.size == 0 || r.host % kPage != 0 || r.size % kPage != 0 || r.offset != next ||
            r.host + r.size < r.host)
            __builtin_trap();
        for (std::size_t j = 0; j < i; ++j) {
            const ml::Region& o = (*regions)[j];
            if (r.host < o.host + o.size && o.host < r.host + r.size) __builtin_trap();
        }
        next += r.size;
    }
    if (next != part) __builtin_trap();
    const auto again = ml::encode_layout(*regions);
    if (again.size() != message.size() || !std::equal(again.begin(), again.end(), message.begin()))
        __builtin_trap();
    return 0;
}
