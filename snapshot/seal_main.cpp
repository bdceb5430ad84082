// stockade-seal: the one program that seals and opens snapshots (README.md, "Sealed
// snapshots"). stockade runs it for each part with the descriptors it needs; it opens no
// path but the key file, and talks only through its standard descriptors and descriptor 3:
//
//   seal KEY ID PART LIMIT  stdin: the part's bytes (at most LIMIT); stdout: the sealed part;
//                           descriptor 3: the part's record (one line of JSON)
//   seal-manifest KEY ID    stdin: {"records": [record...], "document": TEXT};
//                           stdout: the sealed manifest
//   open-manifest KEY       stdin: a sealed manifest; stdout: {"snapshot_id", "records",
//                           "document"}
//   open KEY PART           stdin: the sealed part; descriptor 3: its sealed manifest;
//                           stdout: the plaintext (a regular or memory file), every chunk
//                           authenticated before it is written
//   verify KEY PART         as open, writing nothing
//   check KEY PART          as verify, but of the part's header alone: the snapshot, part,
//                           copy (salt) and length the manifest records; no chunk is read
//   check-key KEY           only loads the key: it is one this helper takes
//
// Exits 0, or 1 with one line on stderr that names the part and what failed, or 2 on
// wrong arguments.
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "snapshot/manifest.hpp"
#include "snapshot/seal_key.hpp"
#include "snapshot/seal_stream.hpp"

namespace snapshot = stockade::snapshot;
using stockade::Result;

namespace {

constexpr int kRecordFd = 3;
constexpr int kManifestFd = 3;
constexpr std::size_t kMaxInput = snapshot::kMaxManifestSize * 3;  // hex and escapes

Result<std::string> read_stdin() {
    std::string text;
    char buf[65536];
    for (;;) {
        const ssize_t n = ::read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return stockade::fail_sys("reading stdin");
        if (n == 0) return text;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > kMaxInput) return stockade::fail("stdin: more than {} bytes", kMaxInput);
    }
}

Result<> seal(const snapshot::SealKey& key, const std::string& id, const std::string& part,
              const std::string& limit_text) {
    const auto sid = STOCKADE_TRY(snapshot::parse_snapshot_id(id));
    std::uint64_t limit = 0;
    const auto [end, ec] =
        std::from_chars(limit_text.data(), limit_text.data() + limit_text.size(), limit);
    if (ec != std::errc{} || end != limit_text.data() + limit_text.size())
        return stockade::fail("{}: not a byte count", limit_text);
    const auto record = STOCKADE_TRY(snapshot::seal_stream(0, 1, key, sid, part, limit));
    return stockade::write_all(kRecordFd, snapshot::record_to_json(record) + "\n");
}

Result<> seal_manifest(const snapshot::SealKey& key, const std::string& id) {
    const auto sid = STOCKADE_TRY(snapshot::parse_snapshot_id(id));
    const std::string text = STOCKADE_TRY(read_stdin());
    const auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("records") || !j["records"].is_array() ||
        !j.contains("document") || !j["document"].is_string())
        return stockade::fail("stdin: not {{\"records\": [...], \"document\": TEXT}}");
    std::vector<snapshot::PartRecord> records;
    for (const auto& r : j["records"])
        records.push_back(STOCKADE_TRY(snapshot::record_from_json(r.dump())));
    const std::string document = j["document"].get<std::string>();
    STOCKADE_TRY_VOID(snapshot::seal_manifest(
        1, key, sid, records,
        std::span(reinterpret_cast<const std::uint8_t*>(document.data()), document.size())));
    if (::fsync(1) != 0) return stockade::fail_sys("fsync of the manifest");
    return {};
}

Result<> open_manifest(const snapshot::SealKey& key) {
    const auto m = STOCKADE_TRY(snapshot::open_manifest(0, key));
    nlohmann::json records = nlohmann::json::array();
    for (const auto& r : m.parts)
        records.push_back(nlohmann::json::parse(snapshot::record_to_json(r)));
    // The document is the JSON text stockade sealed: bytes that are not UTF-8 are refused by
    // dump, so the document goes out as it came only when it is text.
    const std::string document(m.document.begin(), m.document.end());
    nlohmann::json out{{"snapshot_id", stockade::to_hex(m.snapshot_id)},
                       {"records", std::move(records)},
                       {"document", document}};
    std::string text;
    try {
        text = out.dump();
    } catch (const nlohmann::json::exception&) {
        return stockade::fail("manifest: its document is not text");
    }
    return stockade::write_all(1, text + "\n");
}

Result<> open_part(const snapshot::SealKey& key, const std::string& part, const std::string& cmd) {
    const auto m = STOCKADE_TRY(snapshot::open_manifest(kManifestFd, key));
    auto reader = STOCKADE_TRY(snapshot::open_part(0, key, m, part));
    if (cmd == "check") return {};
    if (cmd == "verify") return reader.verify_all();
    return snapshot::unseal_into(reader, 1);
}

int usage() {
    std::fputs(
        "usage: stockade-seal seal KEY ID PART LIMIT | seal-manifest KEY ID | open-manifest KEY "
        "| open KEY PART | verify KEY PART | check KEY PART | check-key KEY\n(run by stockade: see "
        "the comment at "
        "the top of "
        "snapshot/seal_main.cpp)\n",
        stderr);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.size() < 2) return usage();
    const std::string& cmd = args[0];
    const std::size_t want = cmd == "seal"                                        ? 5
                             : cmd == "seal-manifest"                             ? 3
                             : cmd == "open-manifest"                             ? 2
                             : cmd == "check-key"                                 ? 2
                             : cmd == "open" || cmd == "verify" || cmd == "check" ? 3
                                                                                  : 0;
    if (want == 0 || args.size() != want) return usage();
    auto key = snapshot::SealKey::load(args[1]);
    Result<> done = key ? Result<>{} : Result<>(std::unexpected(key.error()));
    if (done) {
        if (cmd == "seal")
            done = seal(*key, args[2], args[3], args[4]);
        else if (cmd == "seal-manifest")
            done = seal_manifest(*key, args[2]);
        else if (cmd == "check-key")
            ;
        else if (cmd == "open-manifest")
            done = open_manifest(*key);
        else
            done = open_part(*key, args[2], cmd);
    }
    if (!done) {
        std::fprintf(stderr, "%s\n", done.error().message.c_str());
        return 1;
    }
    return 0;
}
