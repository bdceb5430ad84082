#pragma once
// Seals one part of a snapshot ("state", "memory", a disk copy) as it is produced: plaintext
// in, header and sealed chunks out to a descriptor, one chunk buffered at most (guest memory
// may be GiBs). README.md describes the bytes.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "snapshot/format.hpp"
#include "snapshot/seal_key.hpp"

namespace stockade::snapshot {

class Aes256Gcm;
class Sha256Stream;

class SealedWriter {
  public:
    // Writes the part's header to `fd` (not owned; written sequentially from its offset, so a
    // pipe will do). Draws the part's salt, so that sealing a part twice under one snapshot
    // id never reuses a key and nonce. `part` follows check_part_name.
    [[nodiscard]] static Result<SealedWriter> create(int fd, const SealKey& key,
                                                     const SnapshotId& snapshot_id,
                                                     std::string_view part,
                                                     std::uint32_t chunk_size = kDefaultChunkSize);
    SealedWriter(SealedWriter&&) noexcept;
    SealedWriter& operator=(SealedWriter&&) noexcept;
    ~SealedWriter();  // cleanses the buffered plaintext

    // Appends plaintext; seals and writes every chunk that is complete and not the last.
    [[nodiscard]] Result<> write(std::span<const std::uint8_t> data);
    // Seals the last chunk (marked final; empty when the part is) and returns what the
    // manifest records. The caller fsyncs `fd`. After a failure, or after finish, every call
    // fails: a part is written once, front to back.
    [[nodiscard]] Result<PartRecord> finish();

  private:
    struct State;
    explicit SealedWriter(std::unique_ptr<State> state);
    [[nodiscard]] Result<> seal_chunk(std::span<const std::uint8_t> plaintext, bool final);
    std::unique_ptr<State> s_;
};

}  // namespace stockade::snapshot
