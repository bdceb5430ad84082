#include "runner/supervisor/snapshot_files.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <limits>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "base/sha256.hpp"
#include "runner/supervisor/seal_helper.hpp"

namespace stockade {
namespace {

using json = nlohmann::json;

// An unsigned number that fits T (nlohmann's get would wrap -1 around).
template <typename T>
T unsigned_at(const json& j, const char* key) {
    const json& v = j.at(key);
    if (!v.is_number_unsigned() || v.get<std::uint64_t>() > std::numeric_limits<T>::max())
        throw std::invalid_argument(fmt::format("\"{}\" must be a number from 0 to {}", key,
                                                std::numeric_limits<T>::max()));
    return static_cast<T>(v.get<std::uint64_t>());
}

bool known_part(std::string_view name) {
    if (name == "state" || name == "memory") return true;
    return name.size() == 8 && name.starts_with("disk-vd") && name[7] >= 'a' && name[7] <= 'p';
}

// "LEAF.SUBLEAF.REGISTER": leaf in lower-case hex, subleaf decimal (x86::guest_cpu_features).
bool cpu_word_name(std::string_view w) {
    const auto dot1 = w.find('.'), dot2 = w.rfind('.');
    if (dot1 == std::string_view::npos || dot1 == dot2 || dot1 == 0 || dot1 > 8) return false;
    const auto leaf = w.substr(0, dot1), sub = w.substr(dot1 + 1, dot2 - dot1 - 1),
               reg = w.substr(dot2 + 1);
    const auto all = [](std::string_view s, std::string_view of) {
        return !s.empty() && s.find_first_not_of(of) == std::string_view::npos;
    };
    return all(leaf, "0123456789abcdef") && all(sub, "0123456789") && sub.size() <= 4 &&
           (reg == "eax" || reg == "ebx" || reg == "ecx" || reg == "edx");
}

}  // namespace

std::string disk_part_name(std::size_t index) {
    return fmt::format("disk-vd{}", static_cast<char>('a' + index));
}

std::string manifest_to_json(const SnapshotManifest& m) {
    json parts = json::object();
    for (const auto& [name, d] : m.parts)
        parts[name] = {{"bytes", d.size}, {"sha256", to_hex(d.sha256)}};
    json disks = json::array();
    for (const auto& d : m.disks)
        disks.push_back({{"part", d.part}, {"image", d.image}});
    json j = {{"format", "stockade-snapshot"},
              {"version", m.version},
              {"id", m.id},
              {"created", m.created},
              {"source", m.source},
              {"run_args", m.run_args},
              {"run_cwd", m.run_cwd},
              {"vcpus", m.vcpus},
              {"memory_mib", m.memory_mib},
              {"machine_state_version", m.machine_state_version},
              {"sealed", m.sealed},
              {"parts", std::move(parts)},
              {"disks", std::move(disks)}};
    if (!m.guest_cpu_vendor.empty())
        j["guest_cpu"] = {{"vendor", m.guest_cpu_vendor}, {"features", m.guest_cpu}};
    return j.dump(2) + "\n";
}

Result<SnapshotManifest> manifest_from_json(std::string_view text, std::string_view origin) {
    const json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail("{}: not a JSON object", origin);
    if (j.value("format", "") != "stockade-snapshot")
        return fail("{}: not a stockade snapshot manifest", origin);
    SnapshotManifest m;
    try {
        m.version = unsigned_at<std::uint32_t>(j, "version");
        if (m.version != kSnapshotFormatVersion)
            return fail("{}: a snapshot of format version {}; this stockade reads version {}",
                        origin, m.version, kSnapshotFormatVersion);
        m.id = j.at("id").get<std::string>();
        m.created = j.at("created").get<std::string>();
        m.source = j.at("source").get<std::string>();
        m.run_args = j.at("run_args").get<std::vector<std::string>>();
        m.run_cwd = j.value("run_cwd", "");
        m.vcpus = unsigned_at<std::uint32_t>(j, "vcpus");
        m.memory_mib = unsigned_at<std::uint64_t>(j, "memory_mib");
        m.machine_state_version = unsigned_at<std::uint32_t>(j, "machine_state_version");
        m.sealed = j.value("sealed", false);
        for (const auto& [name, p] : j.at("parts").items()) {
            if (!known_part(name)) return fail("{}: unknown part \"{}\"", origin, name);
            snapshot::ClearDigest d;
            d.size = unsigned_at<std::uint64_t>(p, "bytes");
            const auto sha = parse_sha256_hex(p.at("sha256").get<std::string>());
            if (!sha) return fail("{}: part {}: \"sha256\" is not 64 hex digits", origin, name);
            d.sha256 = *sha;
            m.parts.emplace(name, d);
        }
        for (const auto& d : j.at("disks"))
            m.disks.push_back({d.at("part").get<std::string>(), d.at("image").get<std::string>()});
        if (auto cpu = j.find("guest_cpu"); cpu != j.end()) {
            m.guest_cpu_vendor = cpu->at("vendor").get<std::string>();
            if (m.guest_cpu_vendor != "intel" && m.guest_cpu_vendor != "amd" &&
                m.guest_cpu_vendor != "other")
                return fail("{}: guest_cpu: vendor \"{}\"", origin, m.guest_cpu_vendor);
            for (const auto& [word, bits] : cpu->at("features").items()) {
                if (!cpu_word_name(word))
                    return fail("{}: guest_cpu: \"{}\" is not LEAF.SUBLEAF.REGISTER", origin, word);
                m.guest_cpu.emplace(word,
                                    unsigned_at<std::uint32_t>(cpu->at("features"), word.c_str()));
            }
        }
    } catch (const std::exception& e) {  // json's, and unsigned_at's
        return fail("{}: {}", origin, e.what());
    }
    for (const char* needed : {"state", "memory"})
        if (!m.parts.contains(needed)) return fail("{}: no part \"{}\"", origin, needed);
    for (const auto& d : m.disks)
        if (!m.parts.contains(d.part) || d.part == "state" || d.part == "memory" ||
            d.image.empty() || d.image.front() != '/')
            return fail(
                "{}: disk copy \"{}\" of \"{}\" is not a listed disk part with an "
                "absolute image path",
                origin, d.part, d.image);
    if (m.parts.size() != 2 + m.disks.size())
        return fail("{}: {} parts, but state, memory and {} disk copies", origin, m.parts.size(),
                    m.disks.size());
    if (m.vcpus == 0 || m.memory_mib == 0 || m.run_args.empty())
        return fail("{}: no vCPUs, memory or run arguments", origin);
    return m;
}

int OpenedSnapshot::fd(const std::string& part) const {
    const auto it = parts.find(part);
    return it == parts.end() ? -1 : it->second.get();
}

namespace {

struct ReadManifest {
    SnapshotManifest manifest;
    UniqueFd sealed;  // the sealed manifest's descriptor
};

// The document's parts must be exactly the sealed records: names, sizes and digests.
Result<> check_sealed_records(const SnapshotManifest& m, const std::vector<SealedRecord>& records,
                              const std::string& path) {
    if (records.size() != m.parts.size())
        return fail("{}: the sealed records and the document disagree", path);
    for (const SealedRecord& r : records) {
        const auto it = m.parts.find(r.name);
        if (it == m.parts.end() || it->second.size != r.size ||
            to_hex(it->second.sha256) != r.sha256)
            return fail("{}: part {}: the sealed record and the document disagree", path, r.name);
    }
    return {};
}

Result<ReadManifest> read_manifest(const std::string& dir, const std::string& seal_key) {
    const std::string path = dir + "/manifest";
    struct stat st {};
    if (::stat(dir.c_str(), &st) != 0) return fail_sys(fmt::format("snapshot {}", dir));
    if (!S_ISDIR(st.st_mode)) return fail("{}: not a snapshot directory", dir);
    auto fd = open_file(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    if (!fd) return fail("{}: not a complete snapshot (no manifest)", dir);
    struct stat mst {};
    if (::fstat(fd->get(), &mst) != 0 || !S_ISREG(mst.st_mode))
        return fail("{}: its manifest is not a regular file", dir);
    std::array<char, 8> head{};
    const ssize_t got = ::pread(fd->get(), head.data(), head.size(), 0);
    const bool sealed =
        got == static_cast<ssize_t>(head.size()) &&
        std::string_view(head.data(), head.size()) == std::string_view("STKSEAL\0", 8);
    ReadManifest out;
    std::string text;
    if (sealed) {
        if (seal_key.empty())
            return fail("{}: a sealed snapshot: give its key (--seal-key FILE)", dir);
        auto opened = open_sealed_manifest(seal_key, fd->get());
        if (!opened) return std::unexpected(std::move(opened).error().context(dir));
        text = std::move(opened->document);
        out.manifest = STOCKADE_TRY(manifest_from_json(text, path));
        if (!out.manifest.sealed) return fail("{}: sealed, its document says it is not", path);
        if (out.manifest.id != opened->snapshot_id)
            return fail("{}: sealed as snapshot {}, its document says {}", path,
                        opened->snapshot_id, out.manifest.id);
        STOCKADE_TRY_VOID(check_sealed_records(out.manifest, opened->records, path));
        out.sealed = std::move(*fd);
        return out;
    }
    if (!seal_key.empty())
        return fail("{}: not sealed, though a seal key was given: refused (nothing vouches for it)",
                    dir);
    if (static_cast<std::uint64_t>(mst.st_size) > kMaxSnapshotManifest)
        return fail("{}: larger than {} bytes", path, kMaxSnapshotManifest);
    text.assign(static_cast<std::size_t>(mst.st_size), '\0');
    STOCKADE_TRY_VOID(pread_exact(
        fd->get(), std::span(reinterpret_cast<std::uint8_t*>(text.data()), text.size()), 0, path));
    out.manifest = STOCKADE_TRY(manifest_from_json(text, path));
    if (out.manifest.sealed) return fail("{}: the manifest says sealed, its file is not", path);
    return out;
}

}  // namespace

Result<SnapshotManifest> read_snapshot_manifest(const std::string& dir,
                                                const std::string& seal_key) {
    auto r = STOCKADE_TRY(read_manifest(dir, seal_key));
    return std::move(r.manifest);
}

Result<OpenedSnapshot> open_snapshot(const std::string& dir, bool digests,
                                     const std::vector<std::string>& skip_digest,
                                     const std::string& seal_key,
                                     const std::vector<std::string>& opened_later) {
    OpenedSnapshot out;
    out.dir = dir;
    ReadManifest read = STOCKADE_TRY(read_manifest(dir, seal_key));
    out.manifest = std::move(read.manifest);
    out.sealed_manifest = std::move(read.sealed);
    out.seal_key = seal_key;
    for (const auto& [name, digest] : out.manifest.parts) {
        const std::string path = dir + "/" + name;
        // Never blocking on a FIFO put there; regular files only.
        auto fd = open_file(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
        if (!fd) return fail("{}: part {} is missing: {}", dir, name, fd.error().message);
        struct stat part {};
        if (::fstat(fd->get(), &part) != 0) return fail_sys(path);
        if (!S_ISREG(part.st_mode)) return fail("{}: part {} is not a regular file", dir, name);
        // A sealed part's length is checked by stockade-seal (its record's chunks).
        if (!out.manifest.sealed && static_cast<std::uint64_t>(part.st_size) != digest.size)
            return fail("{}: part {} is {} bytes, the manifest says {}", dir, name, part.st_size,
                        digest.size);
        const bool skip =
            std::find(skip_digest.begin(), skip_digest.end(), name) != skip_digest.end();
        const bool later =
            std::find(opened_later.begin(), opened_later.end(), name) != opened_later.end();
        if (out.manifest.sealed && !later) {
            // Every chunk with `digests`, else the header: which snapshot, part, copy, length.
            if (auto v = open_sealed_part(seal_key, name, fd->get(), out.sealed_manifest.get(), -1,
                                          !digests || skip);
                !v)
                return std::unexpected(std::move(v).error().context(dir));
        } else if (digests && !skip) {
            STOCKADE_TRY_VOID(snapshot::check_clear_part(fd->get(), name, digest));
        }
        out.parts.emplace(name, std::move(*fd));
    }
    return out;
}

}  // namespace stockade
