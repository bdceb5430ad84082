#include "snapshot/seal_stream.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include <nlohmann/json.hpp>

#include "snapshot/seal_key.hpp"
#include "snapshot/sealed_writer.hpp"

namespace stockade::snapshot {
namespace {

Result<> write_at(int fd, std::span<const std::uint8_t> data, std::uint64_t offset,
                  std::string_view what) {
    while (!data.empty()) {
        const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail_sys(fmt::format("writing {}", what));
        data = data.subspan(static_cast<std::size_t>(n));
        offset += static_cast<std::uint64_t>(n);
    }
    return {};
}

template <std::size_t N>
Result<std::array<std::uint8_t, N>> parse_hex(std::string_view hex, std::string_view what) {
    std::array<std::uint8_t, N> out{};
    if (hex.size() != 2 * N) return fail("{}: not {} hex digits", what, 2 * N);
    for (std::size_t i = 0; i < N; ++i) {
        const int hi = hex_digit_value(hex[2 * i]), lo = hex_digit_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return fail("{}: not {} hex digits", what, 2 * N);
        out[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    return out;
}

}  // namespace

Result<PartRecord> seal_stream(int in, int out, const SealKey& key, const SnapshotId& snapshot_id,
                               std::string_view part, std::uint64_t limit) {
    SealedWriter w = STOCKADE_TRY(SealedWriter::create(out, key, snapshot_id, part));
    std::vector<std::uint8_t> buf(1 << 20);
    std::uint64_t total = 0;
    for (;;) {
        const ssize_t n = ::read(in, buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail_sys(fmt::format("reading {}", part));
        if (n == 0) break;
        total += static_cast<std::uint64_t>(n);
        if (total > limit) return fail("{}: more than the {} bytes it can be", part, limit);
        STOCKADE_TRY_VOID(w.write(std::span(buf.data(), static_cast<std::size_t>(n))));
    }
    PartRecord r = STOCKADE_TRY(w.finish());
    struct stat st {};
    if (::fstat(out, &st) == 0 && S_ISREG(st.st_mode) && ::fsync(out) != 0)
        return fail_sys(fmt::format("fsync of {}", part));
    return r;
}

Result<> unseal_into(SealedReader& part, int fd) {
    if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, static_cast<off_t>(part.plaintext_size())) != 0)
        return fail_sys(fmt::format("sizing {}", part.part()));
    const std::uint64_t chunk = part.chunk_size();
    return part.read_each(
        [&](std::uint64_t index, std::span<const std::uint8_t> plain) -> Result<> {
            if (std::all_of(plain.begin(), plain.end(), [](std::uint8_t b) { return b == 0; }))
                return {};
            return write_at(fd, plain, index * chunk, part.part());
        });
}

std::string record_to_json(const PartRecord& r) {
    return nlohmann::json{{"name", r.name},         {"chunk_size", r.chunk_size},
                          {"size", r.size},         {"chunk_count", r.chunk_count},
                          {"salt", to_hex(r.salt)}, {"sha256", to_hex(r.sha256)}}
        .dump();
}

Result<PartRecord> record_from_json(std::string_view text) {
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail("a part record: not a JSON object");
    PartRecord r;
    try {
        r.name = j.at("name").get<std::string>();
        r.chunk_size = j.at("chunk_size").get<std::uint32_t>();
        r.size = j.at("size").get<std::uint64_t>();
        r.chunk_count = j.at("chunk_count").get<std::uint64_t>();
        r.salt = STOCKADE_TRY(parse_hex<16>(j.at("salt").get<std::string>(), "salt"));
        const auto sha = parse_sha256_hex(j.at("sha256").get<std::string>());
        if (!sha) return fail("sha256: not 64 hex digits");
        r.sha256 = *sha;
    } catch (const nlohmann::json::exception& e) {
        return fail("a part record: {}", e.what());
    }
    STOCKADE_TRY_VOID(check_part_name(r.name));
    STOCKADE_TRY_VOID(check_chunk_size(r.chunk_size));
    if (r.chunk_count != chunk_count(r.size, r.chunk_size))
        return fail("part record {}: {} chunks for {} bytes", r.name, r.chunk_count, r.size);
    return r;
}

Result<SnapshotId> parse_snapshot_id(std::string_view hex) {
    return parse_hex<16>(hex, "snapshot id");
}

}  // namespace stockade::snapshot
