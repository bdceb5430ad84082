#pragma once
// What the seal helper (`stockade-seal`, seal_main.cpp) does with descriptors it is handed:
// a part sealed as it streams in, a sealed part opened into a file, and the record of a part
// as one line of JSON between the helper and the stockade that runs it. The helper is the one
// program that maps OpenSSL's ciphers: stockade itself (supervisor and sandbox) never links
// them, so no sandbox carries their tables (README.md, "Sealed snapshots").
#include <cstdint>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "snapshot/format.hpp"
#include "snapshot/sealed_reader.hpp"

namespace stockade::snapshot {

class SealKey;

// Reads `in` to its end and seals what came into `out` (written front to back, so a pipe
// will do) as part `part` of `snapshot_id`. More than `limit` bytes is refused at once, so
// a writer that sends too much is cut off; `out` is fsynced when it is a file.
[[nodiscard]] Result<PartRecord> seal_stream(int in, int out, const SealKey& key,
                                             const SnapshotId& snapshot_id, std::string_view part,
                                             std::uint64_t limit);

// The part's plaintext written into `fd` (a regular or memory file, emptied first and left
// the part's size) as each chunk is authenticated; chunks of zeros stay holes. After a
// failure `fd` holds what was authenticated before it: the caller drops it.
[[nodiscard]] Result<> unseal_into(SealedReader& part, int fd);

// A record as the helper prints it: {"name", "chunk_size", "size", "chunk_count", "salt",
// "sha256"}, salt and digest in hex.
[[nodiscard]] std::string record_to_json(const PartRecord& r);
[[nodiscard]] Result<PartRecord> record_from_json(std::string_view text);

// 32 hex digits.
[[nodiscard]] Result<SnapshotId> parse_snapshot_id(std::string_view hex);

}  // namespace stockade::snapshot
