#include "runner/vmm/snapshot_io.hpp"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/io.hpp"

namespace stockade {
namespace {

constexpr std::size_t kPage = 4096;

bool all_zero(const std::uint8_t* p, std::size_t n) {
    // Word at a time; guest pages are page-aligned.
    const auto* w = reinterpret_cast<const std::uint64_t*>(p);
    for (std::size_t i = 0; i < n / sizeof *w; ++i)
        if (w[i] != 0) return false;
    return true;
}

Result<> pwrite_all(int fd, const std::uint8_t* data, std::size_t size, std::uint64_t offset) {
    while (size > 0) {
        const ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail_sys("writing the snapshot");
        data += n;
        size -= static_cast<std::size_t>(n);
        offset += static_cast<std::uint64_t>(n);
    }
    return {};
}

Result<bool> is_regular(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail_sys("fstat of a snapshot file");
    return S_ISREG(st.st_mode);
}

}  // namespace

Result<WrittenBytes> write_guest_memory(const GuestMemory& memory, int fd) {
    const bool sparse = STOCKADE_TRY(is_regular(fd));
    WrittenBytes out;
    for (const auto& r : memory.host_regions()) {
        // Runs of non-zero pages, each written at its offset (a file) or in order (a stream,
        // zeros included).
        std::uint64_t page = 0;
        const std::uint64_t pages = r.size / kPage;
        while (page < pages) {
            if (sparse && all_zero(r.host + page * kPage, kPage)) {
                ++page;
                continue;
            }
            std::uint64_t end = page + 1;
            while (end < pages && end - page < 256 &&
                   !(sparse && all_zero(r.host + end * kPage, kPage)))
                ++end;
            const std::size_t bytes = (end - page) * kPage;
            if (sparse)
                STOCKADE_TRY_VOID(
                    pwrite_all(fd, r.host + page * kPage, bytes, out.size + page * kPage));
            else
                STOCKADE_TRY_VOID(
                    write_all(fd, std::span<const std::uint8_t>(r.host + page * kPage, bytes)));
            out.data += bytes;
            page = end;
        }
        out.size += r.size;
    }
    if (sparse && ::ftruncate(fd, static_cast<off_t>(out.size)) != 0)
        return fail_sys("sizing the snapshot's memory");
    return out;
}

Result<WrittenBytes> copy_disk(int from, int to) {
    struct stat st {};
    if (::fstat(from, &st) != 0) return fail_sys("fstat of a disk image");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (::ioctl(to, FICLONE, from) == 0) return WrittenBytes{size, size};
    // Not on one file system that shares extents: the data, hole by hole.
    WrittenBytes out{size, 0};
    off_t pos = 0;
    while (static_cast<std::uint64_t>(pos) < size) {
        off_t data = ::lseek(from, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) break;  // only a hole is left
            return fail_sys("finding a disk image's data");
        }
        off_t hole = ::lseek(from, data, SEEK_HOLE);
        if (hole < 0) return fail_sys("finding a disk image's holes");
        off_t in = data, out_off = data;
        while (in < hole) {
            const ssize_t n =
                ::copy_file_range(from, &in, to, &out_off, static_cast<std::size_t>(hole - in), 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail_sys("copying a disk image");
            if (n == 0) return fail("a disk image shrank while it was copied");
            out.data += static_cast<std::uint64_t>(n);
        }
        pos = hole;
    }
    if (::ftruncate(to, static_cast<off_t>(size)) != 0) return fail_sys("sizing a disk's copy");
    return out;
}

Result<WrittenBytes> restore_disk(int from, int to) {
    if (::ftruncate(to, 0) != 0) return fail_sys("emptying a disk image");
    return copy_disk(from, to);
}

}  // namespace stockade
