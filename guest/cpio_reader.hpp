#pragma once
// A reader for an initramfs as the kernel unpacks it (init/initramfs.c): newc cpio
// archives back to back, NUL padding between them, each starting on a 4-byte boundary.
// Where something other than a newc header starts, the kernel would decompress it; this
// reader stops there instead (it reads; it does not decompress). Entries are views into
// the bytes given: nothing is copied, and no I/O is done.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace stockade::cpio {

// A newc header: 110 bytes, "070701" then thirteen 8-digit hex fields.
inline constexpr std::size_t kHeaderSize = 110;
inline constexpr std::size_t kModeAt = 14, kFileSizeAt = 54, kNameSizeAt = 94;
// The hex field of `header` at `at`; nullopt when it is not 8 hex digits.
[[nodiscard]] std::optional<std::uint32_t> header_field(std::span<const std::uint8_t> header,
                                                        std::size_t at);

struct EntryView {
    std::string_view path;  // as stored (our writer drops the leading "/"; others may
                            // write "./lib/..." or "/lib/...")
    std::uint32_t mode = 0;
    std::span<const std::uint8_t> data;  // a regular file's content, a symlink's target
};

class Reader {
  public:
    // Why next() returned nullopt.
    enum class Stop {
        none,       // not stopped yet
        end,        // every byte was read: archives and padding only
        not_newc,   // bytes that are no newc header: a compressed archive, or anything
        malformed,  // a header whose numbers are not hex or point past the end, a name
                    // without its NUL, or padding that leaves a header misaligned
    };

    explicit Reader(std::span<const std::uint8_t> bytes) : bytes_(bytes) {}

    // The next entry of any archive ("TRAILER!!!" entries are not returned), or nullopt
    // once no more can be read; stop() then says why.
    [[nodiscard]] std::optional<EntryView> next();
    [[nodiscard]] Stop stop() const { return stop_; }
    // Where reading stopped (or the next header starts).
    [[nodiscard]] std::size_t offset() const { return pos_; }

  private:
    std::optional<EntryView> halt(Stop why) {
        stop_ = why;
        return std::nullopt;
    }
    std::span<const std::uint8_t> bytes_;
    std::size_t pos_ = 0;
    Stop stop_ = Stop::none;
};

}  // namespace stockade::cpio
