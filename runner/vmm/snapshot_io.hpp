#pragma once
// Writing a snapshot's memory and disk parts from the sandbox, to descriptors the client
// opened (the sandbox opens no path). Guest RAM goes out sparse: a page of zeros is a hole in
// a regular file (only what the guest wrote takes space), and to a pipe or socket every byte
// goes in order. A disk is a reflink of its image where the file systems share extents
// (FICLONE), else a copy of its data with its holes left holes.
#include <cstdint>

#include "base/error.hpp"
#include "base/guest_memory.hpp"

namespace stockade {

struct WrittenBytes {
    std::uint64_t size = 0;  // the part's length
    std::uint64_t data = 0;  // bytes of it written as data (the rest are holes)
};

// The regions of `memory` one after another, as GuestMemory maps a restored snapshot's file.
[[nodiscard]] Result<WrittenBytes> write_guest_memory(const GuestMemory& memory, int fd);
// `from` (a disk image) into `to`, an empty file.
[[nodiscard]] Result<WrittenBytes> copy_disk(int from, int to);
// A restore: `to` (a disk image) emptied and given `from`'s contents (a snapshot's copy).
[[nodiscard]] Result<WrittenBytes> restore_disk(int from, int to);

}  // namespace stockade
