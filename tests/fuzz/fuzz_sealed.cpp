// Sealed snapshot files as a restore reads them (snapshot/README.md), from any bytes, under the
// one key the seeds were sealed with. Nothing may crash, and nothing may come back that the
// writer did not seal: whatever opens, chunk by chunk or whole, must equal the known
// plaintext, and a refused chunk must leave no plaintext behind.
//
// The first byte picks what the rest is (mode = byte % 3; part = byte / 3 % 2):
//   0: one sealed part ("memory" or "state") on its own: every chunk at random, then all;
//   1: a u16 (LE) length, the sealed manifest, then a sealed part opened against it;
//   2: a manifest's plaintext (decode_manifest: whatever it accepts encodes back to the same
//      bytes) and a key file's content (SealKey::parse).
// STOCKADE_FUZZ_WRITE_SEEDS=DIR makes the binary write its seeds there and exit.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/io.hpp"
#include "base/sha256.hpp"
#include "base/unique_fd.hpp"
#include "snapshot/manifest.hpp"
#include "snapshot/sealed_reader.hpp"
#include "snapshot/sealed_writer.hpp"

namespace {

using namespace stockade;
using namespace stockade::snapshot;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint32_t kChunk = 64;

Bytes pattern(std::size_t size, std::uint8_t seed) {
    Bytes out(size);
    for (std::size_t i = 0; i < size; ++i)
        out[i] = static_cast<std::uint8_t>(i * 7 + seed);
    return out;
}

// What the writer sealed: the fixed key, snapshot id and plaintexts, and two files for the
// inputs. Made once, in LLVMFuzzerInitialize.
struct Known {
    SealKey key;
    SnapshotId id;
    Bytes memory = pattern(4 * kChunk + 44, 1);  // five chunks, the last short
    Bytes state = pattern(2 * kChunk, 2);        // two whole chunks
    Bytes document = Bytes{'{', '"', 'v', '"', ':', '1', '}'};
    UniqueFd first, second;

    const Bytes& plaintext(std::string_view part) const {
        return part == "memory" ? memory : state;
    }
};
std::unique_ptr<const Known> known;

UniqueFd memfd() {
    UniqueFd fd(::memfd_create("fuzz-sealed", MFD_CLOEXEC));
    if (!fd) std::abort();
    return fd;
}

void load(int fd, std::span<const std::uint8_t> bytes) {
    if (::ftruncate(fd, 0) != 0 ||
        ::pwrite(fd, bytes.data(), bytes.size(), 0) != static_cast<ssize_t>(bytes.size()))
        std::abort();
}

Bytes contents(int fd) {
    const off_t size = ::lseek(fd, 0, SEEK_END);
    Bytes out(static_cast<std::size_t>(size));
    if (!pread_exact(fd, out, 0, "seed")) std::abort();
    return out;
}

// Every chunk in an order the input picks, then the whole part: each must be the writer's.
void read_part(SealedReader& reader, std::span<const std::uint8_t> order) {
    const Bytes& plain = known->plaintext(reader.part());
    if (reader.snapshot_id() != known->id) __builtin_trap();
    Bytes out(reader.chunk_size());
    for (std::uint8_t pick : order.first(std::min<std::size_t>(order.size(), 8))) {
        const std::uint64_t index = pick % (reader.chunk_count() + 1);
        std::fill(out.begin(), out.end(), 0xaa);
        auto n = reader.read_chunk(index, out);
        if (n) {
            const std::uint64_t at = index * reader.chunk_size();
            if (at + *n > plain.size() ||
                !std::equal(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(*n),
                            plain.begin() + static_cast<std::ptrdiff_t>(at)))
                __builtin_trap();
        } else if (std::any_of(out.begin(), out.end(),
                               [](std::uint8_t b) { return b != 0 && b != 0xaa; })) {
            __builtin_trap();  // a refused chunk left bytes behind
        }
    }
    auto all = reader.read_all(1 << 20);
    if (all && *all != plain) __builtin_trap();
    if (reader.verify_all().has_value() != all.has_value()) __builtin_trap();
}

void part_alone(std::string_view part, std::span<const std::uint8_t> bytes) {
    load(known->first.get(), bytes);
    auto reader = SealedReader::open(known->first.get(), known->key, known->id, part);
    if (reader) read_part(*reader, bytes.last(std::min<std::size_t>(bytes.size(), 8)));
}

void part_in_manifest(std::string_view part, std::span<const std::uint8_t> bytes) {
    if (bytes.size() < 2) return;
    const std::size_t length = std::min<std::size_t>(bytes[0] | bytes[1] << 8, bytes.size() - 2);
    load(known->first.get(), bytes.subspan(2, length));
    load(known->second.get(), bytes.subspan(2 + length));
    auto manifest = open_manifest(known->first.get(), known->key);
    if (!manifest) return;
    if (manifest->snapshot_id != known->id || manifest->document != known->document)
        __builtin_trap();
    for (const PartRecord& r : manifest->parts) {
        if (r.name != "memory" && r.name != "state") __builtin_trap();
        const Bytes& plain = known->plaintext(r.name);
        if (r.chunk_size != kChunk || r.size != plain.size() || r.sha256 != sha256(plain))
            __builtin_trap();
    }
    auto reader = open_part(known->second.get(), known->key, *manifest, part);
    if (reader) read_part(*reader, bytes.last(std::min<std::size_t>(bytes.size(), 8)));
}

void plaintexts(std::span<const std::uint8_t> bytes) {
    if (auto m = decode_manifest(bytes, known->id)) {
        auto again = encode_manifest(m->parts, m->document);
        if (!again || !std::equal(again->begin(), again->end(), bytes.begin(), bytes.end()))
            __builtin_trap();
    }
    // A key file: 32 bytes are the key itself.
    auto key = SealKey::parse(bytes, "fuzzed key");
    if (key && bytes.size() == SealKey::kSize &&
        !std::equal(bytes.begin(), bytes.end(), key->material().begin()))
        __builtin_trap();
}

// The seeds: each mode with well-formed, authentic inputs.
void write_seeds(const std::string& dir) {
    auto seal = [](std::string_view part) {
        UniqueFd fd = memfd();
        auto w = SealedWriter::create(fd.get(), known->key, known->id, part, kChunk);
        if (!w || !w->write(known->plaintext(part))) std::abort();
        auto record = w->finish();
        if (!record) std::abort();
        return std::pair(contents(fd.get()), *record);
    };
    const auto [memory, memory_record] = seal("memory");
    const auto [state, state_record] = seal("state");
    const PartRecord records[] = {state_record, memory_record};
    UniqueFd fd = memfd();
    if (!seal_manifest(fd.get(), known->key, known->id, records, known->document)) std::abort();
    const Bytes manifest = contents(fd.get());
    auto write = [&](const std::string& name, std::uint8_t mode,
                     std::initializer_list<std::span<const std::uint8_t>> parts) {
        std::ofstream out(dir + "/" + name, std::ios::binary | std::ios::trunc);
        out.put(static_cast<char>(mode));
        for (auto p : parts)
            out.write(reinterpret_cast<const char*>(p.data()),
                      static_cast<std::streamsize>(p.size()));
        if (!out) std::abort();
    };
    const std::uint8_t length[] = {static_cast<std::uint8_t>(manifest.size()),
                                   static_cast<std::uint8_t>(manifest.size() >> 8)};
    write("memory_alone", 0, {memory});
    write("state_alone", 3, {state});
    write("manifest_and_memory", 1, {length, manifest, memory});
    write("manifest_and_state", 4, {length, manifest, state});
    write("manifest_plaintext", 2, {*encode_manifest(records, known->document)});
    const std::string hex = to_hex(known->key.material()) + "\n";
    write("key_hex", 2, {std::span(reinterpret_cast<const std::uint8_t*>(hex.data()), hex.size())});
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    Bytes material(SealKey::kSize);
    for (std::size_t i = 0; i < material.size(); ++i)
        material[i] = static_cast<std::uint8_t>(i);
    auto key = SealKey::from_bytes(material);
    if (!key) std::abort();
    SnapshotId id;
    id.fill(0x5e);
    known = std::make_unique<const Known>(
        Known{.key = std::move(*key), .id = id, .first = memfd(), .second = memfd()});
    if (const char* dir = std::getenv("STOCKADE_FUZZ_WRITE_SEEDS")) {
        write_seeds(dir);
        std::exit(0);
    }
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return 0;
    const std::span<const std::uint8_t> rest(data + 1, size - 1);
    const std::string_view part = data[0] / 3 % 2 == 0 ? "memory" : "state";
    switch (data[0] % 3) {
        case 0:
            part_alone(part, rest);
            break;
        case 1:
            part_in_manifest(part, rest);
            break;
        default:
            plaintexts(rest);
            break;
    }
    return 0;
}
