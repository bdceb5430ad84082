#pragma once
// Helpers of the policy lab tests: children, pipes, /proc readers, commands (with those
// of tests/support/child.hpp: run_in_child, read_all, ...).
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "base/io.hpp"
#include "tests/support/child.hpp"

namespace stockade::test {

// Reads one '\n'-terminated line (or until EOF).
inline std::string read_line(int fd) {
    std::string out;
    char c;
    while (::read(fd, &c, 1) == 1 && c != '\n')
        out.push_back(c);
    return out;
}

inline std::vector<std::string> list_dir(const std::string& path) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(path.c_str())) {
        while (dirent* e = ::readdir(d)) {
            std::string name = e->d_name;
            if (name != "." && name != "..") out.push_back(name);
        }
        ::closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

inline std::string ns_inode(const std::string& pid, const std::string& ns) {
    struct stat st {};
    if (::stat(fmt::format("/proc/{}/ns/{}", pid, ns).c_str(), &st) != 0) return "?";
    return std::to_string(st.st_ino);
}

inline std::string text_of(const std::string& path) {
    auto t = read_text_file(path);
    return t ? *t : std::string("<unreadable: ") + t.error().message + ">";
}

// Runs a shell command; returns its exit status and fills `output` with stdout+stderr.
inline int run_command(const std::string& cmd, std::string& output) {
    output.clear();
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return -1;
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
        output.append(buf, n);
    int st = ::pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

inline double now_ms() {
    struct timespec ts {};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

}  // namespace stockade::test
