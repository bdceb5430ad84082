#include "snapshot/sealed_reader.hpp"

#include <openssl/crypto.h>
#include <sys/stat.h>

#include <algorithm>

#include "base/io.hpp"
#include "snapshot/crypto.hpp"

namespace stockade::snapshot {

struct SealedReader::State {
    int fd;
    std::string part;
    SnapshotId snapshot_id;
    PartSalt salt;
    std::uint32_t chunk_size;
    std::uint64_t chunk_count;
    std::uint32_t last_length;     // plaintext bytes of the last chunk
    std::optional<Sha256> sha256;  // the manifest's, when opened against its record
    Aes256Gcm gcm;
    std::vector<std::uint8_t> sealed;  // one chunk as stored: ciphertext and tag
};

SealedReader::SealedReader(std::unique_ptr<State> state) : s_(std::move(state)) {}
SealedReader::SealedReader(SealedReader&&) noexcept = default;
SealedReader& SealedReader::operator=(SealedReader&&) noexcept = default;
SealedReader::~SealedReader() = default;

const std::string& SealedReader::part() const {
    return s_->part;
}
const SnapshotId& SealedReader::snapshot_id() const {
    return s_->snapshot_id;
}
std::uint32_t SealedReader::chunk_size() const {
    return s_->chunk_size;
}
std::uint64_t SealedReader::chunk_count() const {
    return s_->chunk_count;
}

std::uint64_t SealedReader::plaintext_size() const {
    return (s_->chunk_count - 1) * s_->chunk_size + s_->last_length;
}

std::uint32_t SealedReader::chunk_length(std::uint64_t index) const {
    return index + 1 == s_->chunk_count ? s_->last_length : s_->chunk_size;
}

Result<SealedReader> SealedReader::open(int fd, const SealKey& key,
                                        const std::optional<SnapshotId>& snapshot_id,
                                        std::string_view part) {
    return open_checked(fd, key, snapshot_id, part, nullptr);
}

Result<SealedReader> SealedReader::open(int fd, const SealKey& key, const SnapshotId& snapshot_id,
                                        const PartRecord& record) {
    return open_checked(fd, key, snapshot_id, record.name, &record);
}

Result<SealedReader> SealedReader::open_checked(int fd, const SealKey& key,
                                                const std::optional<SnapshotId>& id,
                                                std::string_view part, const PartRecord* record) {
    STOCKADE_TRY_VOID(check_part_name(part));
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail_sys(fmt::format("{}: stat", part));
    if (!S_ISREG(st.st_mode)) return fail("{}: not a regular file", part);
    const auto size = static_cast<std::uint64_t>(st.st_size);
    if (size < kHeaderSize)
        return fail("{}: not a sealed snapshot part ({} bytes, shorter than its {}-byte header)",
                    part, size, kHeaderSize);

    // The header: first what needs no key, then the key, then the header's own tag; only
    // then are its claims (which part, which snapshot) believed and compared.
    HeaderBytes bytes{};
    STOCKADE_TRY_VOID(pread_exact(fd, bytes, 0, fmt::format("{} header", part)));
    const Header h = STOCKADE_TRY(decode_header(bytes, part));
    if (CRYPTO_memcmp(h.key_id.data(), key.id().data(), h.key_id.size()) != 0)
        return fail("{}: sealed with a different key (the header's key id is {}, this key's {})",
                    part, to_hex(h.key_id), to_hex(key.id()));
    auto part_key = STOCKADE_TRY(derive_part_key(key, h.snapshot_id, h.salt, h.part));
    auto gcm = STOCKADE_TRY(Aes256Gcm::create(part_key.span()));
    if (!STOCKADE_TRY(
            gcm.open(header_nonce(), std::span(bytes).first(kHeaderTagAt), {}, h.tag, {})))
        return fail("{}: header: authentication failed (modified)", part);
    if (h.part != part) return fail("{}: the file holds part '{}', not '{}'", part, h.part, part);
    if (id && h.snapshot_id != *id)
        return fail("{}: from another snapshot ({}, not {})", part, to_hex(h.snapshot_id),
                    to_hex(*id));

    // Where the chunks lie: from the record when there is one (and the file must be exactly
    // as long), else from the file's length.
    const std::uint64_t unit = std::uint64_t{h.chunk_size} + kTagSize;
    std::uint64_t count = 0, last = 0;
    if (record) {
        if (h.salt != record->salt)
            return fail(
                "{}: not the copy of this part that the manifest records (sealed "
                "separately: its salt differs)",
                part);
        if (h.chunk_size != record->chunk_size ||
            record->chunk_count != snapshot::chunk_count(record->size, record->chunk_size))
            return fail("{}: chunk size {}, yet the manifest records {} bytes in {} chunks of {}",
                        part, h.chunk_size, record->size, record->chunk_count, record->chunk_size);
        count = record->chunk_count;
        last = record->size - (count - 1) * h.chunk_size;
        const std::uint64_t expected = sealed_size(record->size, h.chunk_size);
        if (size < expected)
            return fail("{}: truncated: {} of {} chunks present ({} of {} bytes)", part,
                        std::min((size - kHeaderSize) / unit, count), count, size, expected);
        if (size > expected)
            return fail("{}: {} bytes more than the manifest records ({} chunks, {} bytes)", part,
                        size - expected, count, expected);
    } else {
        const std::uint64_t body = size - kHeaderSize;
        if (body == 0) return fail("{}: truncated: no chunk after the header", part);
        count = (body + unit - 1) / unit;
        const std::uint64_t stored = body - (count - 1) * unit;
        if (stored < kTagSize)
            return fail("{}: truncated inside chunk {} ({} bytes of its tag)", part, count - 1,
                        stored);
        last = stored - kTagSize;
    }
    return SealedReader(std::make_unique<State>(State{
        .fd = fd,
        .part = h.part,
        .snapshot_id = h.snapshot_id,
        .salt = h.salt,
        .chunk_size = h.chunk_size,
        .chunk_count = count,
        .last_length = static_cast<std::uint32_t>(last),
        .sha256 = record ? std::optional(record->sha256) : std::nullopt,
        .gcm = std::move(gcm),
        .sealed = std::vector<std::uint8_t>(unit),
    }));
}

Result<bool> SealedReader::try_chunk(std::uint64_t index, std::uint32_t length, bool final,
                                     std::span<std::uint8_t> out) {
    State& s = *s_;
    const auto stored = std::span(s.sealed).first(std::size_t{length} + kTagSize);
    Tag tag{};
    std::copy_n(stored.begin() + length, kTagSize, tag.begin());
    const auto aad = chunk_aad({.snapshot_id = s.snapshot_id,
                                .salt = s.salt,
                                .part = s.part,
                                .index = index,
                                .length = length,
                                .final = final});
    return s.gcm.open(chunk_nonce(index), aad, stored.first(length), tag, out.first(length));
}

Result<std::size_t> SealedReader::read_chunk(std::uint64_t index, std::span<std::uint8_t> out) {
    State& s = *s_;
    if (index >= s.chunk_count)
        return fail("{}: chunk {} of {}: no such chunk", s.part, index, s.chunk_count);
    const std::uint32_t length = chunk_length(index);
    if (out.size() < length)
        return fail("{}: chunk {} of {}: {} bytes do not hold its {}", s.part, index, s.chunk_count,
                    out.size(), length);
    if (auto r = pread_exact(s.fd, std::span(s.sealed).first(std::size_t{length} + kTagSize),
                             chunk_offset(s.chunk_size, index), "it");
        !r)
        return std::unexpected(std::move(r).error().context(
            fmt::format("{}: chunk {} of {}", s.part, index, s.chunk_count)));
    const bool final = index + 1 == s.chunk_count;
    if (STOCKADE_TRY(try_chunk(index, length, final, out))) return length;

    // Refused. A full chunk that opens with the other final flag tells truncation at a chunk
    // boundary, and data after the final chunk, from any other change. What such a trial
    // decrypts is refused all the same, and cleansed.
    if (length == s.chunk_size && STOCKADE_TRY(try_chunk(index, length, !final, out))) {
        OPENSSL_cleanse(out.data(), length);
        if (final)
            return fail(
                "{}: truncated after chunk {}: the file's last chunk is not the part's "
                "final one",
                s.part, index);
        return fail("{}: chunk {} of {} is the part's final chunk, yet chunks follow it", s.part,
                    index, s.chunk_count);
    }
    return fail("{}: chunk {} of {}: authentication failed ({})", s.part, index, s.chunk_count,
                final && !s.sha256 ? "modified, moved, from another snapshot, or truncated"
                                   : "modified, moved, or from another snapshot");
}

Result<> SealedReader::read_each(
    const std::function<Result<>(std::uint64_t, std::span<const std::uint8_t>)>& sink) {
    State& s = *s_;
    SecretBytes chunk(s.chunk_size);
    std::optional<Sha256Stream> sha;
    if (s.sha256) sha = STOCKADE_TRY(Sha256Stream::create());
    for (std::uint64_t i = 0; i < s.chunk_count; ++i) {
        const std::size_t n = STOCKADE_TRY(read_chunk(i, chunk.span()));
        const auto plain = chunk.span().first(n);
        if (sha) STOCKADE_TRY_VOID(sha->update(plain));
        STOCKADE_TRY_VOID(sink(i, plain));
    }
    if (sha) {
        const Sha256 got = STOCKADE_TRY(sha->finish());
        if (got != *s.sha256)
            return fail("{}: its plaintext's SHA-256 is {}, the manifest records {}", s.part,
                        to_hex(got), to_hex(*s.sha256));
    }
    return {};
}

Result<> SealedReader::verify_all() {
    return read_each([](std::uint64_t, std::span<const std::uint8_t>) -> Result<> { return {}; });
}

Result<std::vector<std::uint8_t>> SealedReader::read_all(std::size_t max_size) {
    const std::uint64_t total = plaintext_size();
    if (total > max_size)
        return fail("{}: {} bytes of plaintext, more than the {} it may have", s_->part, total,
                    max_size);
    std::vector<std::uint8_t> out;
    out.reserve(static_cast<std::size_t>(total));
    auto r = read_each([&](std::uint64_t, std::span<const std::uint8_t> plain) -> Result<> {
        out.insert(out.end(), plain.begin(), plain.end());
        return {};
    });
    if (!r) {
        OPENSSL_cleanse(out.data(), out.size());
        return std::unexpected(std::move(r).error());
    }
    return out;
}

}  // namespace stockade::snapshot
