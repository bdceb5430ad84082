#pragma once
// A writer for the "newc" cpio format the kernel unpacks into its initramfs.
// Output is a pure function of the entries added: fixed mtime, uid/gid 0, inode
// numbers in order of addition. No I/O of its own.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace stockade::cpio {

class Writer {
  public:
    void add_directory(std::string_view path, std::uint32_t mode = 0755);
    void add_file(std::string_view path, std::span<const std::uint8_t> data,
                  std::uint32_t mode = 0644);
    void add_file(std::string_view path, std::string_view data, std::uint32_t mode = 0644);
    void add_symlink(std::string_view path, std::string_view target);
    void add_char_device(std::string_view path, std::uint32_t major, std::uint32_t minor,
                         std::uint32_t mode = 0600);
    // Writes the trailer and returns the archive, padded to a 4-byte multiple.
    [[nodiscard]] std::vector<std::uint8_t> finish();

  private:
    void add_entry(std::string_view path, std::uint32_t mode, std::span<const std::uint8_t> data,
                   std::uint32_t rdev_major = 0, std::uint32_t rdev_minor = 0);
    std::vector<std::uint8_t> out_;
    std::uint32_t next_ino_ = 1;
};

// Parses a newc archive into (path, data) pairs of regular files; used by tests and
// by the image builder's self-check. Returns false on a malformed archive.
struct Entry {
    std::string path;
    std::uint32_t mode = 0;
    std::vector<std::uint8_t> data;
};
[[nodiscard]] bool parse(std::span<const std::uint8_t> archive, std::vector<Entry>& entries);

}  // namespace stockade::cpio
