#include "snapshot/manifest.hpp"

#include <algorithm>
#include <set>

#include "snapshot/sealed_writer.hpp"

namespace stockade::snapshot {
namespace {

constexpr std::array<std::uint8_t, 8> kManifestMagic = {'S', 'T', 'K', 'M', 'A', 'N', 'I', 'F'};
constexpr std::size_t kPreambleSize = 16;  // magic, part count, reserved
// A record: name, chunk size, reserved, size, chunk count, salt, SHA-256.
constexpr std::size_t kRecordSize = kPartNameField + 4 + 4 + 8 + 8 + 16 + 32;

Result<> check_records(std::span<const PartRecord> parts) {
    if (parts.size() > kMaxParts) return fail("{} parts, more than {}", parts.size(), kMaxParts);
    std::set<std::string_view> names;
    for (const PartRecord& p : parts) {
        STOCKADE_TRY_VOID(check_part_name(p.name));
        if (p.name == kManifestPart) return fail("a part named '{}' besides it", kManifestPart);
        if (!names.insert(p.name).second) return fail("part '{}' twice", p.name);
        if (auto r = check_chunk_size(p.chunk_size); !r)
            return std::unexpected(std::move(r).error().context(p.name));
        if (p.size > kMaxPartSize)
            return fail("{}: {} bytes, more than a part may have", p.name, p.size);
        if (p.chunk_count != chunk_count(p.size, p.chunk_size))
            return fail("{}: {} chunks for {} bytes in chunks of {}", p.name, p.chunk_count, p.size,
                        p.chunk_size);
    }
    return {};
}

}  // namespace

const PartRecord* Manifest::find(std::string_view name) const {
    const auto it =
        std::find_if(parts.begin(), parts.end(), [&](const auto& p) { return p.name == name; });
    return it == parts.end() ? nullptr : &*it;
}

Result<std::vector<std::uint8_t>> encode_manifest(std::span<const PartRecord> parts,
                                                  std::span<const std::uint8_t> document) {
    if (auto r = check_records(parts); !r)
        return std::unexpected(std::move(r).error().context("manifest"));
    const std::size_t size = kPreambleSize + parts.size() * kRecordSize + document.size();
    if (size > kMaxManifestSize)
        return fail("manifest: {} bytes, more than {}", size, kMaxManifestSize);
    std::vector<std::uint8_t> out(size);
    const std::span<std::uint8_t> o(out);
    std::copy(kManifestMagic.begin(), kManifestMagic.end(), out.begin());
    put_le(o.subspan(8, 4), parts.size());
    auto at = kPreambleSize;
    for (const PartRecord& p : parts) {
        const auto r = o.subspan(at, kRecordSize);
        put_name(r.first<kPartNameField>(), p.name);
        put_le(r.subspan(32, 4), p.chunk_size);
        put_le(r.subspan(40, 8), p.size);
        put_le(r.subspan(48, 8), p.chunk_count);
        std::copy(p.salt.begin(), p.salt.end(), r.begin() + 56);
        std::copy(p.sha256.begin(), p.sha256.end(), r.begin() + 72);
        at += kRecordSize;
    }
    std::copy(document.begin(), document.end(), out.begin() + static_cast<std::ptrdiff_t>(at));
    return out;
}

Result<Manifest> decode_manifest(std::span<const std::uint8_t> in, const SnapshotId& snapshot_id) {
    // Only what a holder of the key sealed gets here; it is checked all the same.
    if (in.size() < kPreambleSize ||
        !std::equal(kManifestMagic.begin(), kManifestMagic.end(), in.begin()))
        return fail("manifest: malformed: no STKMANIF preamble");
    const std::uint64_t count = get_le(in.subspan(8, 4));
    if (get_le(in.subspan(12, 4)) != 0) return fail("manifest: malformed: reserved bytes set");
    if (count > kMaxParts || (in.size() - kPreambleSize) / kRecordSize < count)
        return fail("manifest: malformed: {} part records in {} bytes", count, in.size());
    Manifest m;
    m.snapshot_id = snapshot_id;
    auto at = kPreambleSize;
    for (std::uint64_t i = 0; i < count; ++i, at += kRecordSize) {
        const auto r = in.subspan(at, kRecordSize);
        PartRecord p;
        p.name = STOCKADE_TRY(
            get_name(r.first<kPartNameField>(), fmt::format("manifest: malformed: record {}", i)));
        p.chunk_size = static_cast<std::uint32_t>(get_le(r.subspan(32, 4)));
        if (get_le(r.subspan(36, 4)) != 0)
            return fail("manifest: malformed: record {}: reserved bytes set", i);
        p.size = get_le(r.subspan(40, 8));
        p.chunk_count = get_le(r.subspan(48, 8));
        std::copy_n(r.begin() + 56, p.salt.size(), p.salt.begin());
        std::copy_n(r.begin() + 72, p.sha256.size(), p.sha256.begin());
        m.parts.push_back(std::move(p));
    }
    if (auto r = check_records(m.parts); !r)
        return std::unexpected(std::move(r).error().context("manifest: malformed"));
    m.document.assign(in.begin() + static_cast<std::ptrdiff_t>(at), in.end());
    return m;
}

Result<PartRecord> seal_manifest(int fd, const SealKey& key, const SnapshotId& snapshot_id,
                                 std::span<const PartRecord> parts,
                                 std::span<const std::uint8_t> document) {
    const auto plaintext = STOCKADE_TRY(encode_manifest(parts, document));
    auto writer = STOCKADE_TRY(SealedWriter::create(fd, key, snapshot_id, kManifestPart));
    STOCKADE_TRY_VOID(writer.write(plaintext));
    return writer.finish();
}

Result<Manifest> open_manifest(int fd, const SealKey& key,
                               const std::optional<SnapshotId>& expected) {
    auto reader = STOCKADE_TRY(SealedReader::open(fd, key, expected, kManifestPart));
    const auto plaintext = STOCKADE_TRY(reader.read_all(kMaxManifestSize));
    return decode_manifest(plaintext, reader.snapshot_id());
}

Result<SealedReader> open_part(int fd, const SealKey& key, const Manifest& manifest,
                               std::string_view part) {
    STOCKADE_TRY_VOID(check_part_name(part));
    const PartRecord* record = manifest.find(part);
    if (!record)
        return fail("{}: not a part of this snapshot (the manifest has no record of it)", part);
    return SealedReader::open(fd, key, manifest.snapshot_id, *record);
}

Result<> verify_part(int fd, const SealKey& key, const Manifest& manifest, std::string_view part) {
    auto reader = STOCKADE_TRY(open_part(fd, key, manifest, part));
    return reader.verify_all();
}

}  // namespace stockade::snapshot
