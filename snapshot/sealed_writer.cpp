#include "snapshot/sealed_writer.hpp"

#include <algorithm>

#include "base/io.hpp"
#include "snapshot/crypto.hpp"

namespace stockade::snapshot {

struct SealedWriter::State {
    int fd;
    std::string part;
    SnapshotId snapshot_id;
    PartSalt salt;
    std::uint32_t chunk_size;
    Aes256Gcm gcm;
    Sha256Stream sha;
    SecretBytes pending;           // plaintext not sealed yet: one chunk's room
    std::size_t pending_size = 0;  // how much of it is
    std::vector<std::uint8_t> sealed;
    std::uint64_t chunks = 0;  // chunks written
    std::uint64_t size = 0;    // plaintext bytes taken
    bool done = false;         // finished, or failed
};

SealedWriter::SealedWriter(std::unique_ptr<State> state) : s_(std::move(state)) {}
SealedWriter::SealedWriter(SealedWriter&&) noexcept = default;
SealedWriter& SealedWriter::operator=(SealedWriter&&) noexcept = default;
SealedWriter::~SealedWriter() = default;

Result<SealedWriter> SealedWriter::create(int fd, const SealKey& key, const SnapshotId& snapshot_id,
                                          std::string_view part, std::uint32_t chunk_size) {
    STOCKADE_TRY_VOID(check_part_name(part));
    if (auto r = check_chunk_size(chunk_size); !r)
        return std::unexpected(std::move(r).error().context(part));
    Header h;
    h.chunk_size = chunk_size;
    h.snapshot_id = snapshot_id;
    STOCKADE_TRY_VOID(random_bytes(h.salt));
    h.key_id = key.id();
    h.part = std::string(part);
    auto part_key = STOCKADE_TRY(derive_part_key(key, snapshot_id, h.salt, part));
    auto gcm = STOCKADE_TRY(Aes256Gcm::create(part_key.span()));
    // The header's tag: GMAC (GCM of nothing) over every header byte before it.
    const auto unsigned_header = encode_header(h);
    STOCKADE_TRY_VOID(
        gcm.seal(header_nonce(), std::span(unsigned_header).first(kHeaderTagAt), {}, {}, h.tag));
    if (auto r = write_all(fd, encode_header(h)); !r)
        return std::unexpected(std::move(r).error().context(fmt::format("{}: header", part)));
    auto sha = STOCKADE_TRY(Sha256Stream::create());
    auto state = std::make_unique<State>(
        State{.fd = fd,
              .part = std::move(h.part),
              .snapshot_id = snapshot_id,
              .salt = h.salt,
              .chunk_size = chunk_size,
              .gcm = std::move(gcm),
              .sha = std::move(sha),
              .pending = SecretBytes(chunk_size),
              .sealed = std::vector<std::uint8_t>(std::size_t{chunk_size} + kTagSize)});
    return SealedWriter(std::move(state));
}

Result<> SealedWriter::seal_chunk(std::span<const std::uint8_t> plaintext, bool final) {
    State& s = *s_;
    const auto length = static_cast<std::uint32_t>(plaintext.size());
    const auto aad = chunk_aad({.snapshot_id = s.snapshot_id,
                                .salt = s.salt,
                                .part = s.part,
                                .index = s.chunks,
                                .length = length,
                                .final = final});
    auto out = std::span(s.sealed).first(std::size_t{length} + kTagSize);
    Tag tag{};
    STOCKADE_TRY_VOID(
        s.gcm.seal(chunk_nonce(s.chunks), aad, plaintext, out.first(plaintext.size()), tag));
    std::copy(tag.begin(), tag.end(), out.begin() + length);
    if (auto r = write_all(s.fd, out); !r)
        return std::unexpected(
            std::move(r).error().context(fmt::format("{}: writing chunk {}", s.part, s.chunks)));
    ++s.chunks;
    return {};
}

Result<> SealedWriter::write(std::span<const std::uint8_t> data) {
    if (!s_) return fail("a moved-from SealedWriter");
    State& s = *s_;
    if (s.done) return fail("{}: written after it was finished or failed", s.part);
    s.done = true;  // until this write succeeds
    if (data.size() > kMaxPartSize - s.size)
        return fail("{}: more than {} bytes, the most a part may have", s.part, kMaxPartSize);
    STOCKADE_TRY_VOID(s.sha.update(data));
    s.size += data.size();
    const auto pending = s.pending.span();
    while (!data.empty()) {
        // A full chunk is sealed only once more data follows it: until then it may be the
        // last, which is sealed as final.
        if (s.pending_size == s.chunk_size) {
            STOCKADE_TRY_VOID(seal_chunk(pending, false));
            s.pending_size = 0;
        }
        if (s.pending_size == 0 && data.size() > s.chunk_size) {
            STOCKADE_TRY_VOID(seal_chunk(data.first(s.chunk_size), false));
            data = data.subspan(s.chunk_size);
            continue;
        }
        const std::size_t take = std::min(data.size(), s.chunk_size - s.pending_size);
        std::copy_n(data.begin(), take,
                    pending.begin() + static_cast<std::ptrdiff_t>(s.pending_size));
        s.pending_size += take;
        data = data.subspan(take);
    }
    s.done = false;
    return {};
}

Result<PartRecord> SealedWriter::finish() {
    if (!s_) return fail("a moved-from SealedWriter");
    State& s = *s_;
    if (s.done) return fail("{}: finished twice, or after it failed", s.part);
    s.done = true;
    STOCKADE_TRY_VOID(seal_chunk(s.pending.span().first(s.pending_size), true));
    return PartRecord{.name = s.part,
                      .chunk_size = s.chunk_size,
                      .size = s.size,
                      .chunk_count = s.chunks,
                      .salt = s.salt,
                      .sha256 = STOCKADE_TRY(s.sha.finish())};
}

}  // namespace stockade::snapshot
