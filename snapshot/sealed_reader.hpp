#pragma once
// Opens one sealed part: its header is checked at open (magic, version, key, the header's
// own tag, then which snapshot and part it is); every chunk is authenticated when it is
// read, and verify_all reads them all. Nothing unauthenticated is ever handed out, and every
// refusal names the part, the chunk and what failed (README.md, "What is refused").
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "snapshot/format.hpp"
#include "snapshot/seal_key.hpp"

namespace stockade::snapshot {

class SealedReader {
  public:
    // A part on its own: its header must carry `snapshot_id` (any, when nullopt: how the
    // manifest is opened, to learn the id) and name `part`. The chunk count follows from the
    // file's size; the last chunk must be marked final (truncation at a chunk boundary).
    [[nodiscard]] static Result<SealedReader> open(int fd, const SealKey& key,
                                                   const std::optional<SnapshotId>& snapshot_id,
                                                   std::string_view part);
    // A part as the manifest records it: moreover its salt (this copy of the part), chunk
    // size and exact length must be the record's, and verify_all and read_all compare the
    // plaintext's SHA-256 with the record's.
    [[nodiscard]] static Result<SealedReader> open(int fd, const SealKey& key,
                                                   const SnapshotId& snapshot_id,
                                                   const PartRecord& record);
    SealedReader(SealedReader&&) noexcept;
    SealedReader& operator=(SealedReader&&) noexcept;
    ~SealedReader();

    [[nodiscard]] const std::string& part() const;
    [[nodiscard]] const SnapshotId& snapshot_id() const;
    [[nodiscard]] std::uint32_t chunk_size() const;
    [[nodiscard]] std::uint64_t chunk_count() const;
    [[nodiscard]] std::uint64_t plaintext_size() const;
    // Plaintext bytes of chunk `index` (chunk_size but for the last).
    [[nodiscard]] std::uint32_t chunk_length(std::uint64_t index) const;

    // Random access (lazy restore decrypts on demand): authenticates chunk `index` (counting
    // from 0) and decrypts it into `out` (at least chunk_length(index) bytes); returns its
    // length. On failure `out` holds no plaintext. Reads with pread: the descriptor's offset
    // is left alone. One reader is not for several threads at once.
    [[nodiscard]] Result<std::size_t> read_chunk(std::uint64_t index, std::span<std::uint8_t> out);
    // Every chunk in order, each handed to `sink` once authenticated; then the final flag
    // and, against a record, the SHA-256 are checked: a caller that consumes chunks before
    // read_each returns must discard them when it fails.
    [[nodiscard]] Result<> read_each(
        const std::function<Result<>(std::uint64_t index, std::span<const std::uint8_t>)>& sink);
    // read_each, keeping nothing: the whole part is authentic and complete.
    [[nodiscard]] Result<> verify_all();
    // The whole plaintext (the manifest, the device state), refused beyond `max_size`.
    [[nodiscard]] Result<std::vector<std::uint8_t>> read_all(std::size_t max_size);

  private:
    struct State;
    explicit SealedReader(std::unique_ptr<State> state);
    [[nodiscard]] static Result<SealedReader> open_checked(int fd, const SealKey& key,
                                                           const std::optional<SnapshotId>& id,
                                                           std::string_view part,
                                                           const PartRecord* record);
    [[nodiscard]] Result<bool> try_chunk(std::uint64_t index, std::uint32_t length, bool final,
                                         std::span<std::uint8_t> out);
    std::unique_ptr<State> s_;
};

}  // namespace stockade::snapshot
