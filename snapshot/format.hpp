#pragma once
// The byte layout of a sealed part (README.md, "Format"): its header, where each chunk lies,
// the nonces and the associated data that bind a chunk to its snapshot, part and place.
// Everything here is pure: no keys, no I/O.
#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "base/sha256.hpp"

namespace stockade::snapshot {

using SnapshotId = std::array<std::uint8_t, 16>;  // random, drawn once per snapshot
using PartSalt = std::array<std::uint8_t, 16>;    // random, drawn once per part written
using KeyId = std::array<std::uint8_t, 16>;       // names a seal key, reveals nothing of it
using Tag = std::array<std::uint8_t, 16>;         // a GCM tag

inline constexpr std::array<std::uint8_t, 8> kMagic = {'S', 'T', 'K', 'S', 'E', 'A', 'L', 0};
inline constexpr std::uint32_t kFormatVersion = 1;
inline constexpr std::size_t kHeaderSize = 112;
inline constexpr std::size_t kHeaderTagAt = 96;  // the header's bytes before it are its AAD
inline constexpr std::size_t kTagSize = 16;
inline constexpr std::size_t kPartNameField = 32;  // NUL-padded: names of 1 to 31 bytes
inline constexpr std::size_t kNonceSize = 12;

// Plaintext bytes per chunk: 64 KiB by default (16 pages: one lazy-restore fault decrypts
// one chunk); any size from 64 bytes (tests, fuzzing) to 16 MiB.
inline constexpr std::uint32_t kDefaultChunkSize = 64 * 1024;
inline constexpr std::uint32_t kMinChunkSize = 64;
inline constexpr std::uint32_t kMaxChunkSize = 16u << 20;

// A part's plaintext is at most 2^56 bytes (64 PiB), so that no length or offset computed
// from a record can overflow.
inline constexpr std::uint64_t kMaxPartSize = std::uint64_t{1} << 56;

// The part that lists all others (manifest.hpp); no other part may take its name.
inline constexpr std::string_view kManifestPart = "manifest";

// A part name is also its file name in the snapshot's directory: 1 to 31 bytes of
// [A-Za-z0-9._-], the first a letter or digit.
[[nodiscard]] Result<> check_part_name(std::string_view name);
[[nodiscard]] Result<> check_chunk_size(std::uint32_t chunk_size);

// What the manifest records of one sealed part, as SealedWriter::finish returns it: enough
// to refuse a part that is another copy, shorter or longer, before a chunk is read.
struct PartRecord {
    std::string name;
    std::uint32_t chunk_size = kDefaultChunkSize;
    std::uint64_t size = 0;         // plaintext bytes
    std::uint64_t chunk_count = 0;  // chunk_count(size, chunk_size)
    PartSalt salt{};                // this copy of the part (its header's salt)
    Sha256 sha256{};                // of the plaintext
    bool operator==(const PartRecord&) const = default;
};

struct Header {
    std::uint32_t version = kFormatVersion;
    std::uint32_t chunk_size = kDefaultChunkSize;
    SnapshotId snapshot_id{};
    PartSalt salt{};
    KeyId key_id{};
    std::string part;
    Tag tag{};
};
using HeaderBytes = std::array<std::uint8_t, kHeaderSize>;

// The header as stored (the tag as given: the writer computes it over the first
// kHeaderTagAt bytes of this encoding and encodes again).
[[nodiscard]] HeaderBytes encode_header(const Header& header);
// Checks what can be checked without a key: magic, version, chunk size, the name field.
// `what` (the part the caller expects) prefixes every error.
[[nodiscard]] Result<Header> decode_header(const HeaderBytes& bytes, std::string_view what);

// Chunks: chunk i holds plaintext bytes [i * chunk_size, ...) and is stored at
// chunk_offset(i) as its ciphertext (as long as its plaintext) and then its tag. Every part
// has at least one chunk (an empty part: one empty, final chunk), so that cutting a part down
// to its header is a truncation like any other.
[[nodiscard]] std::uint64_t chunk_count(std::uint64_t plaintext_size, std::uint32_t chunk_size);
[[nodiscard]] std::uint64_t chunk_offset(std::uint32_t chunk_size, std::uint64_t index);
// The length of a sealed part of `plaintext_size` bytes: header, ciphertext and tags.
[[nodiscard]] std::uint64_t sealed_size(std::uint64_t plaintext_size, std::uint32_t chunk_size);

// Nonces: unique per part key (a key is used for one part only), so deterministic.
[[nodiscard]] std::array<std::uint8_t, kNonceSize> header_nonce();
[[nodiscard]] std::array<std::uint8_t, kNonceSize> chunk_nonce(std::uint64_t index);

// The associated data of chunk `index`: what a chunk's tag binds beyond its ciphertext.
inline constexpr std::size_t kChunkAadSize = 85;
struct ChunkPlace {
    const SnapshotId& snapshot_id;
    const PartSalt& salt;
    std::string_view part;
    std::uint64_t index;
    std::uint32_t length;  // plaintext bytes
    bool final;            // the part's last chunk
};
[[nodiscard]] std::array<std::uint8_t, kChunkAadSize> chunk_aad(const ChunkPlace& place);

// Little-endian fields, and the NUL-padded name field, shared with manifest.cpp.
void put_le(std::span<std::uint8_t> out, std::uint64_t value);
[[nodiscard]] std::uint64_t get_le(std::span<const std::uint8_t> in);
void put_name(std::span<std::uint8_t, kPartNameField> out, std::string_view name);
// The name in a field, checked as check_part_name does; `what` prefixes the error.
[[nodiscard]] Result<std::string> get_name(std::span<const std::uint8_t, kPartNameField> in,
                                           std::string_view what);

}  // namespace stockade::snapshot
