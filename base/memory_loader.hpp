#pragma once
// What a sandbox restored lazily from a sealed snapshot and its memory loader (stockade-seal
// `load`, snapshot/memory_loader.hpp) say to each other over the stream socket between them
// (README.md, "Sealed snapshots"):
//
//   loader -> stockade "opened", once the memory part's header is checked and the state
//                      decrypted (stockade reads it before the socket goes to the sandbox)
//   sandbox -> loader  one layout message: guest RAM's host mappings in the order the memory
//                      part holds them, with the userfaultfd they are registered with
//                      (SCM_RIGHTS)
//   loader -> sandbox  lines: "ready", then "done FAULTED BACKGROUND ZERO MS" once every chunk
//                      is in place, or "error MESSAGE" (and nothing more)
//
// The loader holds the key and the sandbox may have been taken over by its guest: the layout is
// checked here as hostile input (decode_layout), and all it can name is memory of the
// sandbox's own, which is where the plaintext goes anyway.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade::memory_loader {

inline constexpr std::string_view kOpenedLine = "opened";

// One host mapping of guest RAM and where its bytes begin in the memory part.
struct Region {
    std::uint64_t host = 0;
    std::uint64_t size = 0;
    std::uint64_t offset = 0;
};

constexpr std::uint32_t kMagic = 0x4c594d53;  // "SMYL"
constexpr std::size_t kMaxRegions = 8;
constexpr std::size_t kMaxLayoutBytes = 8 + kMaxRegions * 24;
// The longest line either side reads.
constexpr std::size_t kMaxLine = 1024;

[[nodiscard]] std::vector<std::uint8_t> encode_layout(std::span<const Region> regions);
// The regions, each page-aligned and non-empty, none overlapping another or wrapping around,
// their offsets one after another from 0 up to exactly `part_size`.
[[nodiscard]] Result<std::vector<Region>> decode_layout(std::span<const std::uint8_t> bytes,
                                                        std::uint64_t part_size,
                                                        std::uint64_t page_size);

// The layout message with the userfaultfd (SCM_RIGHTS), in one sendmsg on the stream socket
// `sock` (the sandbox's side).
[[nodiscard]] Result<> send_layout(int sock, std::span<const Region> regions, int uffd);
// The loader's side: the message's bytes (not decoded yet) and the descriptor that came with
// it; nullopt at the socket's end. A message longer than a layout, a descriptor too many, or
// none, is refused.
struct ReceivedLayout {
    std::vector<std::uint8_t> bytes;
    UniqueFd uffd;
};
[[nodiscard]] Result<std::optional<ReceivedLayout>> receive_layout(int sock);

// How a completed load went: chunks placed because the guest (or the sandbox) touched them,
// in the background, and of those how many were zeros (mapped as the zero page, no copy).
struct Done {
    std::uint64_t faulted = 0, background = 0, zero = 0, ms = 0;
};
[[nodiscard]] std::string done_line(const Done& d);
// A line from the loader: ready (nullopt done), done, or its error as an error.
struct Said {
    bool ready = false;
    Done done;
};
[[nodiscard]] Result<Said> parse_line(const std::string& line);

}  // namespace stockade::memory_loader
