#pragma once
// What a VMM process holds in memory, read from /proc/PID/smaps: the whole resident set and
// the part that is guest RAM (the largest anonymous mapping at least the guest's size).
#include <sys/types.h>

#include <cstdint>

namespace stockade::lab {

struct ProcessMemory {
    double total_mib = 0;  // Rss of the whole process
    double guest_mib = 0;  // Rss of the guest RAM mapping
    bool found = false;    // a mapping that can be guest RAM was found
    [[nodiscard]] double overhead_mib() const { return total_mib - guest_mib; }
};

// guest_bytes: the guest's RAM size (~0: only the total is wanted).
ProcessMemory process_memory(pid_t pid, std::uint64_t guest_bytes);

// The only child of `pid` (stockade's sandbox process); 0 when it has none.
pid_t only_child_of(pid_t pid);

}  // namespace stockade::lab
