#pragma once
// Small, error-reporting wrappers for the file I/O every folder needs.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade {

[[nodiscard]] Result<UniqueFd> open_file(const std::string& path, int flags, int mode = 0);
[[nodiscard]] Result<std::vector<std::uint8_t>> read_file(const std::string& path,
                                                          std::size_t max_size = 1u << 30);
[[nodiscard]] Result<std::string> read_text_file(const std::string& path,
                                                 std::size_t max_size = 1u << 20);
[[nodiscard]] Result<> write_file(const std::string& path, std::string_view content, int flags = 0);
// Replaces `path` as a whole or not at all: writes PATH.tmp in the same directory (mode
// `mode`), fsyncs it and renames it over `path`, so a reader never sees half a file.
[[nodiscard]] Result<> write_file_atomic(const std::string& path, std::string_view content,
                                         int mode = 0600);
// Writes everything, retrying on EINTR and short writes.
[[nodiscard]] Result<> write_all(int fd, std::span<const std::uint8_t> data);
[[nodiscard]] Result<> write_all(int fd, std::string_view data);
// Reads exactly data.size() bytes at `offset`, or fails (EOF counts as failure).
[[nodiscard]] Result<> pread_exact(int fd, std::span<std::uint8_t> data, std::uint64_t offset,
                                   std::string_view what);
// One sendmsg of `data` on a stream socket with `fds` attached (SCM_RIGHTS); returns how many
// bytes went (the rest is the caller's to write).
[[nodiscard]] Result<std::size_t> send_with_fds(int sock, std::string_view data,
                                                std::span<const int> fds);
// Sets O_NONBLOCK on `fd`; `what` names it in the error.
[[nodiscard]] Result<> set_nonblocking(int fd, std::string_view what);
// Closes every descriptor >= lowest that is not in keep.
void close_fds_except(std::span<const int> keep, int lowest = 3);

}  // namespace stockade
