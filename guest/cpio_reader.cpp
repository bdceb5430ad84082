#include "guest/cpio_reader.hpp"

#include <algorithm>
#include <cstring>

namespace stockade::cpio {
namespace {

constexpr std::string_view kTrailer = "TRAILER!!!";

std::size_t align4(std::size_t v) {
    return (v + 3) & ~std::size_t{3};
}

}  // namespace

std::optional<std::uint32_t> header_field(std::span<const std::uint8_t> header, std::size_t at) {
    std::uint32_t v = 0;
    for (std::uint8_t c : header.subspan(at, 8)) {
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else
            return std::nullopt;
    }
    return v;
}

std::optional<EntryView> Reader::next() {
    while (stop_ == Stop::none) {
        const std::size_t size = bytes_.size();
        // Between archives the kernel skips NULs, then wants a header on a 4-byte boundary.
        while (pos_ < size && bytes_[pos_] == 0)
            ++pos_;
        if (pos_ == size) return halt(Stop::end);
        if (bytes_[pos_] != '0' || pos_ % 4 != 0) return halt(Stop::not_newc);
        if (size - pos_ < kHeaderSize) return halt(Stop::malformed);
        const auto header = bytes_.subspan(pos_, kHeaderSize);
        // "070701" is newc, "070702" newc with checksums; the kernel takes both.
        if (std::memcmp(header.data(), "07070", 5) != 0 || (header[5] != '1' && header[5] != '2'))
            return halt(Stop::malformed);
        const auto mode = header_field(header, kModeAt);
        const auto file_size = header_field(header, kFileSizeAt);
        const auto name_size = header_field(header, kNameSizeAt);  // with its NUL
        if (!mode || !file_size || !name_size || *name_size == 0) return halt(Stop::malformed);
        const std::size_t name_at = pos_ + kHeaderSize;
        if (size - name_at < *name_size || bytes_[name_at + *name_size - 1] != 0)
            return halt(Stop::malformed);
        const std::size_t data_at = align4(name_at + *name_size);
        if (data_at > size || size - data_at < *file_size) return halt(Stop::malformed);
        pos_ = std::min(size, align4(data_at + *file_size));
        const std::string_view path(reinterpret_cast<const char*>(bytes_.data() + name_at),
                                    *name_size - 1);
        if (path == kTrailer) continue;  // the end of one archive; another may follow
        return EntryView{path, *mode, bytes_.subspan(data_at, *file_size)};
    }
    return std::nullopt;
}

}  // namespace stockade::cpio
