#pragma once
// What stockade's log (base/log.hpp) writes while a piece of code runs: the output goes to a
// memfd for that time (no pipe to fill up), and comes back as text.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <string>
#include <string_view>

#include "base/log.hpp"

namespace stockade::test {

template <typename F>
std::string captured_log(F&& body) {
    const int fd = ::memfd_create("stockade-test-log", MFD_CLOEXEC);
    const int before = log::output_fd();
    if (fd >= 0) log::set_output(fd);
    body();
    log::set_output(before);
    std::string out;
    char buf[4096];
    ssize_t n;
    for (off_t at = 0; fd >= 0 && (n = ::pread(fd, buf, sizeof buf, at)) > 0; at += n)
        out.append(buf, static_cast<std::size_t>(n));
    if (fd >= 0) ::close(fd);
    return out;
}

// How many lines of `text` contain `needle`.
inline std::size_t lines_with(std::string_view text, std::string_view needle) {
    std::size_t count = 0;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        const std::string_view line = text.substr(0, end);
        if (line.find(needle) != std::string_view::npos) ++count;
        if (end == std::string_view::npos) break;
        text.remove_prefix(end + 1);
    }
    return count;
}

}  // namespace stockade::test
