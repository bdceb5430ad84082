#include "guest/cpio.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "guest/cpio_reader.hpp"

namespace stockade::cpio {
namespace {

constexpr std::string_view kMagic = "070701";

void pad4(std::vector<std::uint8_t>& out) {
    while (out.size() % 4 != 0)
        out.push_back(0);
}

void put_hex(std::vector<std::uint8_t>& out, std::uint32_t v) {
    char buf[9];
    std::snprintf(buf, sizeof buf, "%08X", v);
    out.insert(out.end(), buf, buf + 8);
}

std::string_view strip_slash(std::string_view p) {
    while (!p.empty() && p.front() == '/')
        p.remove_prefix(1);
    return p;
}

}  // namespace

void Writer::add_entry(std::string_view path, std::uint32_t mode,
                       std::span<const std::uint8_t> data, std::uint32_t rdev_major,
                       std::uint32_t rdev_minor) {
    std::string_view name = strip_slash(path);
    if (name.empty()) name = ".";
    out_.insert(out_.end(), kMagic.begin(), kMagic.end());
    put_hex(out_, next_ino_++);                              // ino
    put_hex(out_, mode);                                     // mode
    put_hex(out_, 0);                                        // uid
    put_hex(out_, 0);                                        // gid
    put_hex(out_, S_ISDIR(mode) ? 2 : 1);                    // nlink
    put_hex(out_, 0);                                        // mtime: fixed for reproducibility
    put_hex(out_, static_cast<std::uint32_t>(data.size()));  // filesize
    put_hex(out_, 0);                                        // devmajor
    put_hex(out_, 0);                                        // devminor
    put_hex(out_, rdev_major);
    put_hex(out_, rdev_minor);
    put_hex(out_, static_cast<std::uint32_t>(name.size() + 1));  // namesize incl. NUL
    put_hex(out_, 0);                                            // check
    out_.insert(out_.end(), name.begin(), name.end());
    out_.push_back(0);
    pad4(out_);
    out_.insert(out_.end(), data.begin(), data.end());
    pad4(out_);
}

void Writer::add_directory(std::string_view path, std::uint32_t mode) {
    add_entry(path, S_IFDIR | (mode & 07777), {});
}

void Writer::add_file(std::string_view path, std::span<const std::uint8_t> data,
                      std::uint32_t mode) {
    add_entry(path, S_IFREG | (mode & 07777), data);
}

void Writer::add_file(std::string_view path, std::string_view data, std::uint32_t mode) {
    add_file(path, std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()),
             mode);
}

void Writer::add_symlink(std::string_view path, std::string_view target) {
    add_entry(path, S_IFLNK | 0777,
              std::span(reinterpret_cast<const std::uint8_t*>(target.data()), target.size()));
}

void Writer::add_char_device(std::string_view path, std::uint32_t major, std::uint32_t minor,
                             std::uint32_t mode) {
    add_entry(path, S_IFCHR | (mode & 07777), {}, major, minor);
}

std::vector<std::uint8_t> Writer::finish() {
    add_entry("TRAILER!!!", 0, {});
    pad4(out_);
    return std::move(out_);
}

bool parse(std::span<const std::uint8_t> a, std::vector<Entry>& entries) {
    std::size_t pos = 0;
    for (;;) {
        if (a.size() - pos < kHeaderSize) return false;
        auto h = a.subspan(pos, kHeaderSize);
        if (std::memcmp(h.data(), kMagic.data(), 6) != 0) return false;
        const auto mode = header_field(h, kModeAt), filesize = header_field(h, kFileSizeAt),
                   namesize = header_field(h, kNameSizeAt);
        if (!mode || !filesize || !namesize || *namesize == 0) return false;
        pos += kHeaderSize;
        if (a.size() - pos < *namesize) return false;
        std::string name(reinterpret_cast<const char*>(a.data() + pos), *namesize - 1);
        pos = (pos + *namesize + 3) & ~std::size_t{3};
        if (pos > a.size() || a.size() - pos < *filesize) return false;
        if (name == "TRAILER!!!") return true;
        Entry e{std::move(name), *mode, {a.begin() + pos, a.begin() + pos + *filesize}};
        entries.push_back(std::move(e));
        pos = (pos + *filesize + 3) & ~std::size_t{3};
    }
}

}  // namespace stockade::cpio
