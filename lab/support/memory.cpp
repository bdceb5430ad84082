#include "lab/support/memory.hpp"

#include <cstdio>
#include <fstream>
#include <string>

namespace stockade::lab {

ProcessMemory process_memory(pid_t pid, std::uint64_t guest_bytes) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
    ProcessMemory m;
    std::uint64_t size = 0, best = 0;
    bool anonymous = false;
    for (std::string line; std::getline(in, line);) {
        unsigned long long lo = 0, hi = 0;
        char name[256] = "";
        if (std::sscanf(line.c_str(), "%llx-%llx %*s %*s %*s %*s %255s", &lo, &hi, name) >= 2 &&
            line.find(" kB") == std::string::npos) {
            size = hi - lo;
            anonymous = name[0] == '\0' || std::string(name).rfind("/memfd:", 0) == 0;
            continue;
        }
        unsigned long long kb = 0;
        if (std::sscanf(line.c_str(), "Rss: %llu kB", &kb) == 1) {
            m.total_mib += static_cast<double>(kb) / 1024.0;
            if (anonymous && size >= guest_bytes && size > best) {
                best = size;
                m.guest_mib = static_cast<double>(kb) / 1024.0;
                m.found = true;
            }
        }
    }
    return m;
}

pid_t only_child_of(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
    pid_t c = 0;
    in >> c;
    return c;
}

}  // namespace stockade::lab
