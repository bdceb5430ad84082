#pragma once
// The sealed manifest: the part named "manifest", whose plaintext is the record of every
// other part (name, chunk size, length, chunk count, salt, SHA-256) and then the caller's
// document (the snapshot's JSON manifest). Sealed like any part, so authenticated as a
// whole; it binds the snapshot together: a part dropped, replaced by another copy, cut short
// or lengthened is refused by open_part before a chunk is read (README.md, "Manifest").
#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "snapshot/format.hpp"
#include "snapshot/seal_key.hpp"
#include "snapshot/sealed_reader.hpp"

namespace stockade::snapshot {

inline constexpr std::size_t kMaxManifestSize = 16u << 20;  // plaintext: records and document
inline constexpr std::size_t kMaxParts = 1024;

struct Manifest {
    SnapshotId snapshot_id{};
    std::vector<PartRecord> parts;
    std::vector<std::uint8_t> document;

    [[nodiscard]] const PartRecord* find(std::string_view name) const;
};

// Seals the manifest as part "manifest" into `fd`: `parts` as SealedWriter::finish returned
// them (distinct names, none "manifest"), `document` as the caller made it.
[[nodiscard]] Result<PartRecord> seal_manifest(int fd, const SealKey& key,
                                               const SnapshotId& snapshot_id,
                                               std::span<const PartRecord> parts,
                                               std::span<const std::uint8_t> document);
// Opens and authenticates the whole manifest; the snapshot id is its header's, and must be
// `expected` when given.
[[nodiscard]] Result<Manifest> open_manifest(int fd, const SealKey& key,
                                             const std::optional<SnapshotId>& expected = {});
// Opens part `part` against the manifest's record of it (SealedReader::open with the
// record): refused when the manifest has no such part.
[[nodiscard]] Result<SealedReader> open_part(int fd, const SealKey& key, const Manifest& manifest,
                                             std::string_view part);
// open_part and verify_all: the part is there, whole, and as sealed.
[[nodiscard]] Result<> verify_part(int fd, const SealKey& key, const Manifest& manifest,
                                   std::string_view part);

// The manifest's plaintext (README.md, "Manifest"): exposed for tests and the fuzzer.
[[nodiscard]] Result<std::vector<std::uint8_t>> encode_manifest(
    std::span<const PartRecord> parts, std::span<const std::uint8_t> document);
[[nodiscard]] Result<Manifest> decode_manifest(std::span<const std::uint8_t> plaintext,
                                               const SnapshotId& snapshot_id);

}  // namespace stockade::snapshot
