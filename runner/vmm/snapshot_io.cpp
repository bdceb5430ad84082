#include "runner/vmm/snapshot_io.hpp"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/io.hpp"

namespace stockade {
namespace {

constexpr std::size_t kPage = 4096;

bool all_zero(const std::uint8_t* p, std::size_t n) {
    // Word at a time; guest pages and stream blocks are aligned.
    std::uint64_t w = 0;
    for (std::size_t i = 0; i + sizeof w <= n; i += sizeof w) {
        std::memcpy(&w, p + i, sizeof w);
        if (w != 0) return false;
    }
    for (std::size_t i = n - n % sizeof w; i < n; ++i)
        if (p[i] != 0) return false;
    return true;
}

Result<> pwrite_all(int fd, const std::uint8_t* data, std::size_t size, std::uint64_t offset) {
    while (size > 0) {
        const ssize_t n = ::pwrite(fd, data, size, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail_sys("writing a snapshot part");
        data += n;
        size -= static_cast<std::size_t>(n);
        offset += static_cast<std::uint64_t>(n);
    }
    return {};
}

}  // namespace

Result<WrittenBytes> write_guest_memory(const GuestMemory& memory, int fd, bool sparse) {
    WrittenBytes out;
    for (const auto& r : memory.host_regions()) {
        // Runs of pages, each written at its offset (a file: zero pages skipped) or in order
        // (a stream: every page).
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

Result<> stream_disk(int from, std::uint64_t size, int to) {
    off_t in = 0;
    while (static_cast<std::uint64_t>(in) < size) {
        const ssize_t n = ::sendfile(to, from, &in,
                                     static_cast<std::size_t>(std::min<std::uint64_t>(
                                         size - static_cast<std::uint64_t>(in), 1u << 30)));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail_sys("copying a disk image");
        if (n == 0) return fail("a disk image shrank while it was copied");
    }
    return {};
}

Result<WrittenBytes> restore_disk(int from, int to) {
    struct stat st {};
    if (::fstat(from, &st) != 0) return fail_sys("fstat of a disk copy");
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (::ioctl(to, FICLONE, from) == 0) return WrittenBytes{size, size};
    if (::ftruncate(to, 0) != 0 || ::ftruncate(to, static_cast<off_t>(size)) != 0)
        return fail_sys("sizing a disk image");
    WrittenBytes out{size, 0};
    off_t pos = 0;
    std::vector<std::uint8_t> buf;
    while (static_cast<std::uint64_t>(pos) < size) {
        const off_t data = ::lseek(from, pos, SEEK_DATA);
        if (data < 0) {
            if (errno == ENXIO) break;  // only a hole is left
            return fail_sys("finding a disk copy's data");
        }
        const off_t hole = ::lseek(from, data, SEEK_HOLE);
        if (hole < 0) return fail_sys("finding a disk copy's holes");
        off_t in = data, at = data;
        while (in < hole) {
            const auto want = static_cast<std::size_t>(hole - in);
            ssize_t n = ::copy_file_range(from, &in, to, &at, want, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 &&
                (errno == EXDEV || errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS)) {
                // Across file systems: read and write.
                buf.resize(1u << 20);
                n = ::pread(from, buf.data(), std::min(want, buf.size()), in);
                if (n > 0) {
                    STOCKADE_TRY_VOID(pwrite_all(to, buf.data(), static_cast<std::size_t>(n),
                                                 static_cast<std::uint64_t>(at)));
                    in += n;
                    at += n;
                }
            }
            if (n < 0) return fail_sys("copying a disk copy into its image");
            if (n == 0) return fail("a disk copy shrank while it was copied");
            out.data += static_cast<std::uint64_t>(n);
        }
        pos = hole;
    }
    return out;
}

Result<> SparseFileWriter::block(std::span<const std::uint8_t> b) {
    if (!all_zero(b.data(), b.size())) {
        STOCKADE_TRY_VOID(pwrite_all(fd_, b.data(), b.size(), offset_));
        data_ += b.size();
    }
    offset_ += b.size();
    return {};
}

Result<> SparseFileWriter::write(std::span<const std::uint8_t> data) {
    if (carried_ > 0) {
        const std::size_t take = std::min(data.size(), sizeof carry_ - carried_);
        std::memcpy(carry_ + carried_, data.data(), take);
        carried_ += take;
        data = data.subspan(take);
        if (carried_ < sizeof carry_) return {};
        STOCKADE_TRY_VOID(block({carry_, sizeof carry_}));
        carried_ = 0;
    }
    while (data.size() >= kPage) {
        STOCKADE_TRY_VOID(block(data.first(kPage)));
        data = data.subspan(kPage);
    }
    std::memcpy(carry_, data.data(), data.size());
    carried_ = data.size();
    return {};
}

Result<WrittenBytes> SparseFileWriter::finish() {
    if (carried_ > 0) STOCKADE_TRY_VOID(block({carry_, carried_}));
    carried_ = 0;
    if (::ftruncate(fd_, static_cast<off_t>(offset_)) != 0)
        return fail_sys("sizing a snapshot part");
    return WrittenBytes{offset_, data_};
}

}  // namespace stockade
