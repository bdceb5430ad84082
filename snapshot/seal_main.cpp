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
//   load KEY PART UID GID   stdin: the sealed part; descriptor 3: its sealed manifest;
//                           descriptor 4: the sealed state part; descriptor 5: a file for
//                           the state's plaintext; stdout: a stream socket to the restored
//                           sandbox, which sends its memory's layout and userfaultfd
//                           (base/memory_loader.hpp). Once the key is loaded, the part's
//                           header checked and the state decrypted (every chunk
//                           authenticated) it says "opened", becomes UID and GID (the
//                           sandbox's) and serves the memory lazily, each chunk
//                           authenticated before it is placed (snapshot/memory_loader.hpp),
//                           until every chunk is in place or the sandbox is gone
//
// Exits 0, or 1 with one line on stderr that names the part and what failed, or 2 on
// wrong arguments.
#include <grp.h>
#include <linux/userfaultfd.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "base/memory_loader.hpp"
#include "base/unique_fd.hpp"
#include "snapshot/manifest.hpp"
#include "snapshot/memory_loader.hpp"
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

Result<std::uint64_t> number(const std::string& text, const char* what) {
    std::uint64_t v = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size())
        return stockade::fail("{}: not {}", text, what);
    return v;
}

Result<> seal(const snapshot::SealKey& key, const std::string& id, const std::string& part,
              const std::string& limit_text) {
    const auto sid = STOCKADE_TRY(snapshot::parse_snapshot_id(id));
    const std::uint64_t limit = STOCKADE_TRY(number(limit_text, "a byte count"));
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

constexpr int kSandboxFd = 1;
constexpr int kStateFd = 4, kStateOutFd = 5;

// Nothing that could give privileges back; no other process of this uid (the sandbox's) may
// trace it or read its memory, which holds the part's key; and it still goes with stockade
// (a change of credentials clears the parent-death signal).
Result<> seal_off() {
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return stockade::fail_sys("no_new_privs");
    if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) return stockade::fail_sys("PR_SET_DUMPABLE");
    const pid_t parent = ::getppid();  // stockade's, unless it already died
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0)
        return stockade::fail_sys("PR_SET_PDEATHSIG");
    if (::getppid() != parent) return stockade::fail("stockade is gone");
    return {};
}

// The sandbox's uid and gid, no groups, and nothing that could give privileges back.
Result<> become(const std::string& uid_text, const std::string& gid_text) {
    const auto uid = STOCKADE_TRY(number(uid_text, "a uid"));
    const auto gid = STOCKADE_TRY(number(gid_text, "a gid"));
    if (uid == 0 || gid == 0 || uid > UINT32_MAX - 1 || gid > UINT32_MAX - 1)
        return stockade::fail("{}:{}: not the uid and gid of a sandbox", uid, gid);
    // Run by an unprivileged stockade: it is that user already, and may not change groups.
    if (::getuid() == uid && ::geteuid() == uid && ::getgid() == gid) return seal_off();
    if (::setgroups(0, nullptr) != 0) return stockade::fail_sys("setgroups");
    if (::setresgid(static_cast<gid_t>(gid), static_cast<gid_t>(gid), static_cast<gid_t>(gid)) != 0)
        return stockade::fail_sys("setresgid");
    if (::setresuid(static_cast<uid_t>(uid), static_cast<uid_t>(uid), static_cast<uid_t>(uid)) != 0)
        return stockade::fail_sys("setresuid");
    return seal_off();
}

// From the first placed chunk on, the loader makes only the calls serving the memory takes:
// reading the part (pread) and the faults, the three userfaultfd requests on that one
// descriptor, poll, its lines to the sandbox, memory that is never executable, and its end.
// Anything else kills it (and so, through its socket, the sandbox: it stops rather than run
// on without its memory).
Result<> filter_loader(int uffd) {
    scmp_filter_ctx ctx = ::seccomp_init(SCMP_ACT_KILL_PROCESS);
    if (ctx == nullptr) return stockade::fail("seccomp_init");
    std::unique_ptr<void, decltype(&::seccomp_release)> owned(ctx, &::seccomp_release);
    int rc = 0;
    for (const int call :
         {SCMP_SYS(read), SCMP_SYS(pread64), SCMP_SYS(write), SCMP_SYS(poll), SCMP_SYS(ppoll),
          SCMP_SYS(close), SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(brk), SCMP_SYS(munmap),
          SCMP_SYS(mremap), SCMP_SYS(madvise), SCMP_SYS(futex), SCMP_SYS(clock_gettime),
          SCMP_SYS(rt_sigreturn), SCMP_SYS(getpid)})
        rc |= ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, call, 0);
    rc |= ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1,
                             SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
    for (const unsigned long request : {UFFDIO_COPY, UFFDIO_ZEROPAGE, UFFDIO_WAKE})
        rc |= ::seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
                                 SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(uffd)),
                                 SCMP_A1(SCMP_CMP_EQ, static_cast<scmp_datum_t>(request)));
    if (rc != 0) return stockade::fail("the memory loader's seccomp filter: a rule was refused");
    if (const int r = ::seccomp_load(ctx); r != 0)
        return stockade::fail_sys("loading the memory loader's seccomp filter", -r);
    return {};
}

// What the sandbox hears: the error (one line), and for stderr too.
Result<> load(const snapshot::SealKey& key, const std::string& part, const std::string& uid,
              const std::string& gid) {
    const auto m = STOCKADE_TRY(snapshot::open_manifest(kManifestFd, key));
    auto reader = STOCKADE_TRY(snapshot::open_part(0, key, m, part));
    {
        auto state = STOCKADE_TRY(snapshot::open_part(kStateFd, key, m, "state"));
        STOCKADE_TRY_VOID(snapshot::unseal_into(state, kStateOutFd));
    }
    ::close(kStateFd);
    ::close(kStateOutFd);
    STOCKADE_TRY_VOID(
        stockade::write_all(kSandboxFd, std::string(stockade::memory_loader::kOpenedLine) + "\n"));
    STOCKADE_TRY_VOID(become(uid, gid));
    auto received = STOCKADE_TRY(stockade::memory_loader::receive_layout(kSandboxFd));
    if (!received) return {};  // the sandbox never came
    auto& [bytes, uffd] = *received;
    const auto regions = STOCKADE_TRY(stockade::memory_loader::decode_layout(
        bytes, reader.plaintext_size(), static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE))));
    STOCKADE_TRY_VOID(filter_loader(uffd.get()));
    STOCKADE_TRY_VOID(stockade::write_all(kSandboxFd, "ready\n"));
    const auto outcome =
        STOCKADE_TRY(snapshot::serve_memory(reader, uffd.get(), regions, kSandboxFd));
    if (!outcome.complete) return {};
    uffd.reset();  // every page is in place: the registration goes with the sandbox's copy
    return stockade::write_all(kSandboxFd, stockade::memory_loader::done_line(outcome.done));
}

int usage() {
    std::fputs(
        "usage: stockade-seal seal KEY ID PART LIMIT | seal-manifest KEY ID | open-manifest KEY "
        "| open KEY PART | verify KEY PART | check KEY PART | check-key KEY | load KEY PART UID "
        "GID\n(run by stockade: see "
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
                             : cmd == "load"                                      ? 5
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
        else if (cmd == "load")
            done = load(*key, args[2], args[3], args[4]);
        else
            done = open_part(*key, args[2], cmd);
    }
    if (!done) {
        std::fprintf(stderr, "%s\n", done.error().message.c_str());
        // The restored sandbox stops on this line (it must not run on without the chunk).
        if (cmd == "load") {
            std::string line = "error " + done.error().message;
            std::replace(line.begin(), line.end(), '\n', ' ');
            (void)stockade::write_all(kSandboxFd, line + "\n");
        }
        return 1;
    }
    return 0;
}
