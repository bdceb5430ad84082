#pragma once
// A snapshot directory as the supervisor and the CLI see it (the sandbox only ever gets
// descriptors): `manifest` (JSON, below), `state` (the machine's state, decoded only in the
// sandbox process), `memory` (guest RAM, sparse) and `disk-vdX` (a copy of each writable disk
// as it was). Written into a temporary directory beside the target and renamed into place
// when whole, so a directory with a manifest is a complete snapshot.
//
// The manifest: {"format": "stockade-snapshot", "version": 1, "id", "created", "source",
// "run_args": [...], "vcpus", "memory_mib", "machine_state_version",
// "parts": {NAME: {"bytes", "sha256"}}, "disks": [{"part", "image"}]}: the run's arguments
// (the restore parses them again, as `run` would), each part's length and SHA-256, and for
// each disk copy the image it was taken of, which a restore puts it back into.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "snapshot/clear_digest.hpp"

namespace stockade {

inline constexpr std::uint32_t kSnapshotFormatVersion = 1;
inline constexpr std::size_t kMaxSnapshotManifest = 1u << 20;
inline constexpr std::size_t kMaxSnapshotState = 64u << 20;

struct SnapshotDisk {
    std::string part;   // "disk-vda"
    std::string image;  // the image's path when the snapshot was taken
    bool operator==(const SnapshotDisk&) const = default;
};

struct SnapshotManifest {
    std::uint32_t version = kSnapshotFormatVersion;
    std::string id;  // the snapshot's own (hex), drawn when it is made
    std::string created;
    std::string source;  // the sandbox it was taken of
    std::vector<std::string> run_args;
    std::string run_cwd;  // where their relative paths start
    std::uint32_t vcpus = 0;
    std::uint64_t memory_mib = 0;
    std::uint32_t machine_state_version = 0;
    // The CPU the guest saw (x86::guest_cpu_features): its vendor ("intel", "amd", "other")
    // and feature words. Empty vendor: not recorded (no check at restore).
    std::string guest_cpu_vendor;
    std::map<std::string, std::uint32_t> guest_cpu;
    // A sealed snapshot (snapshot/README.md, made and opened by stockade-seal): this document
    // is the plaintext inside the sealed manifest, and its parts' sizes and digests are of
    // their plaintext.
    bool sealed = false;
    std::map<std::string, snapshot::ClearDigest> parts;
    std::vector<SnapshotDisk> disks;
    bool operator==(const SnapshotManifest&) const = default;
};

[[nodiscard]] std::string manifest_to_json(const SnapshotManifest& m);
// Refuses what this version did not write: another format or version, a part named outside
// state/memory/disk-vd[a-p], sizes and digests that are not numbers and 64 hex digits,
// a disk whose part is not listed. `origin` names the file in errors.
[[nodiscard]] Result<SnapshotManifest> manifest_from_json(std::string_view text,
                                                          std::string_view origin);

// The snapshot at `dir`, opened: its manifest and a read-only descriptor of each part (and
// of the sealed manifest, for a sealed one).
struct OpenedSnapshot {
    std::string dir;
    SnapshotManifest manifest;
    std::map<std::string, UniqueFd> parts;
    UniqueFd sealed_manifest;
    std::string seal_key;  // the key file a sealed one was opened with
    [[nodiscard]] int fd(const std::string& part) const;
};
// The manifest alone. `seal_key`: a sealed snapshot's key file (its manifest is opened and
// authenticated by stockade-seal); a sealed snapshot without it is refused, and so is an
// unsealed one with it (nothing would vouch for it: no downgrade).
[[nodiscard]] Result<SnapshotManifest> read_snapshot_manifest(const std::string& dir,
                                                              const std::string& seal_key = {});
// Opens every part the manifest lists and checks its length; with `digests`, its SHA-256
// too, on the very descriptor that is kept (nothing can be swapped after the check): of a
// sealed part, every chunk authenticated by stockade-seal. `skip_digest` names parts whose
// contents are not read (the memory, for a restore that must not read all of it first, or
// parts that a sealed restore decrypts, which authenticates them). Sealed parts in
// `opened_later` are not even read for their header: the caller opens them right after
// with stockade-seal (decrypting or loading), which checks the header and every chunk.
[[nodiscard]] Result<OpenedSnapshot> open_snapshot(
    const std::string& dir, bool digests, const std::vector<std::string>& skip_digest = {},
    const std::string& seal_key = {}, const std::vector<std::string>& opened_later = {});

// The part names: "state", "memory", "disk-vda".."disk-vdp".
[[nodiscard]] std::string disk_part_name(std::size_t index);

}  // namespace stockade
