#pragma once
// The bytes of a snapshot's parts. The sandbox writes its state, its guest RAM and its
// writable disks into pipes the CLI handed it (it opens no path and holds no snapshot file);
// the CLI writes them into the files, sparse (SparseFileWriter: a block of zeros is a hole),
// or sealed. The supervisor gives a disk image back its copy on a restore (restore_disk: a
// reflink where the file systems share extents, else the copy's data with its holes left
// holes).
#include <cstdint>
#include <span>

#include "base/error.hpp"
#include "base/guest_memory.hpp"

namespace stockade {

struct WrittenBytes {
    std::uint64_t size = 0;  // the part's length
    std::uint64_t data = 0;  // bytes of it written as data (the rest are holes)
};

// The regions of `memory` one after another (as GuestMemory maps a restored snapshot's file):
// every byte in order into a stream, or with `sparse` into a regular file, pages of zeros
// left holes.
[[nodiscard]] Result<WrittenBytes> write_guest_memory(const GuestMemory& memory, int fd,
                                                      bool sparse);
// `size` bytes of the disk image `from` (read at offsets: its file offset is left alone)
// into the stream `to`.
[[nodiscard]] Result<> stream_disk(int from, std::uint64_t size, int to);
// A restore: `to` (a disk image) given `from`'s contents (a snapshot's copy): a reflink, else
// the data of `from` at its offsets (copy_file_range; read and write where the file systems
// differ), `to` emptied first so that `from`'s holes are holes.
[[nodiscard]] Result<WrittenBytes> restore_disk(int from, int to);

// Writes a stream into a regular file at increasing offsets, leaving a hole for each block
// of zeros (4 KiB, aligned in the stream); finish() sets the file's length to the stream's.
class SparseFileWriter {
  public:
    explicit SparseFileWriter(int fd) : fd_(fd) {}
    [[nodiscard]] Result<> write(std::span<const std::uint8_t> data);
    [[nodiscard]] Result<WrittenBytes> finish();

  private:
    [[nodiscard]] Result<> block(std::span<const std::uint8_t> b);
    int fd_;
    std::uint64_t offset_ = 0, data_ = 0;
    std::uint8_t carry_[4096];
    std::size_t carried_ = 0;
};

}  // namespace stockade
