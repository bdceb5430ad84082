#include "base/io.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace stockade {

Result<UniqueFd> open_file(const std::string& path, int flags, int mode) {
    int fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) return fail_sys(fmt::format("open {}", path));
    return UniqueFd(fd);
}

Result<std::vector<std::uint8_t>> read_file(const std::string& path, std::size_t max_size) {
    auto fd = STOCKADE_TRY(open_file(path, O_RDONLY));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return fail_sys(fmt::format("stat {}", path));
    if (!S_ISREG(st.st_mode)) return fail("{}: not a regular file", path);
    if (static_cast<std::uint64_t>(st.st_size) > max_size)
        return fail("{}: {} bytes is more than the limit of {}", path, st.st_size, max_size);
    std::vector<std::uint8_t> data(static_cast<std::size_t>(st.st_size));
    STOCKADE_TRY_VOID(pread_exact(fd.get(), data, 0, path));
    return data;
}

Result<std::string> read_text_file(const std::string& path, std::size_t max_size) {
    // Works for /proc and /sys files, whose stat size is meaningless.
    auto fd = STOCKADE_TRY(open_file(path, O_RDONLY));
    std::string out;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_sys(fmt::format("read {}", path));
        }
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > max_size) return fail("{}: larger than {} bytes", path, max_size);
    }
    return out;
}

Result<> write_file(const std::string& path, std::string_view content, int flags) {
    auto fd = STOCKADE_TRY(open_file(path, O_WRONLY | flags, 0644));
    if (auto r = write_all(fd.get(), content); !r)
        return std::unexpected(std::move(r).error().context(fmt::format("write {}", path)));
    return {};
}

Result<> write_file_atomic(const std::string& path, std::string_view content, int mode) {
    const std::string tmp = path + ".tmp";
    auto written = [&]() -> Result<> {
        auto fd = STOCKADE_TRY(open_file(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode));
        STOCKADE_TRY_VOID(write_all(fd.get(), content));
        if (::fsync(fd.get()) != 0) return fail_sys(fmt::format("fsync {}", tmp));
        if (::rename(tmp.c_str(), path.c_str()) != 0)
            return fail_sys(fmt::format("renaming {} to {}", tmp, path));
        return {};
    }();
    if (!written) ::unlink(tmp.c_str());
    return written;
}

Result<> write_all(int fd, std::span<const std::uint8_t> data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_sys(fmt::format("write fd {}", fd));
        }
        data = data.subspan(static_cast<std::size_t>(n));
    }
    return {};
}

Result<> set_nonblocking(int fd, std::string_view what) {
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0)
        return fail_sys(fmt::format("making {} non-blocking", what));
    return {};
}

Result<> write_all(int fd, std::string_view data) {
    return write_all(fd,
                     std::span(reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
}

Result<> pread_exact(int fd, std::span<std::uint8_t> data, std::uint64_t offset,
                     std::string_view what) {
    while (!data.empty()) {
        ssize_t n = ::pread(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_sys(fmt::format("read {} at offset {}", what, offset));
        }
        if (n == 0) return fail("read {} at offset {}: unexpected end of file", what, offset);
        data = data.subspan(static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
    }
    return {};
}

void close_fds_except(std::span<const int> keep, int lowest) {
    // /proc/self/fd lists exactly the open descriptors; collect first, close after, so
    // the directory's own descriptor is not closed under readdir.
    std::vector<int> open_fds;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        int self = ::dirfd(d);
        while (dirent* e = ::readdir(d)) {
            char* end = nullptr;
            long v = std::strtol(e->d_name, &end, 10);
            if (end == e->d_name || *end != '\0') continue;
            int fd = static_cast<int>(v);
            if (fd >= lowest && fd != self) open_fds.push_back(fd);
        }
        ::closedir(d);
    }
    for (int fd : open_fds)
        if (std::find(keep.begin(), keep.end(), fd) == keep.end()) ::close(fd);
}

Result<std::size_t> send_with_fds(int sock, std::string_view data, std::span<const int> fds) {
    iovec iov{const_cast<char*>(data.data()), data.size()};
    std::vector<char> control(CMSG_SPACE(sizeof(int) * fds.size()));
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (!fds.empty()) {
        msg.msg_control = control.data();
        msg.msg_controllen = control.size();
        cmsghdr* h = CMSG_FIRSTHDR(&msg);
        h->cmsg_level = SOL_SOCKET;
        h->cmsg_type = SCM_RIGHTS;
        h->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(h), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n;
    while ((n = ::sendmsg(sock, &msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    if (n < 0) return fail_sys("sendmsg");
    return static_cast<std::size_t>(n);
}

}  // namespace stockade
