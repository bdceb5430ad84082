// A snapshot directory's manifest and parts (runner/supervisor/snapshot_files.hpp), and how the
// sandbox writes memory and disk parts (runner/vmm/snapshot_io.hpp): sparse memory, disk
// copies with their holes, a disk given back its copy; manifests and parts that are not as
// written are refused, naming what is wrong.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "base/io.hpp"
#include "base/sha256.hpp"
#include "runner/supervisor/seal_helper.hpp"
#include "runner/supervisor/snapshot_files.hpp"
#include "runner/vmm/snapshot_io.hpp"
#include "tests/support/temp_dir.hpp"

namespace stockade {
namespace {

SnapshotManifest sample_manifest() {
    SnapshotManifest m;
    m.id = "00112233445566778899aabbccddeeff";
    m.created = "2026-12-06T12:00:00Z";
    m.source = "sb-1";
    m.run_args = {"-d", "--stdio", "serial", "--disk", "d.img", "--", "sh"};
    m.run_cwd = "/tmp";
    m.vcpus = 2;
    m.memory_mib = 128;
    m.machine_state_version = 1;
    m.parts["state"] = {10, sha256(std::string_view("0123456789"))};
    m.parts["memory"] = {0, sha256(std::string_view(""))};
    m.parts["disk-vda"] = {3, sha256(std::string_view("abc"))};
    m.disks.push_back({"disk-vda", "/tmp/d.img"});
    m.guest_cpu_vendor = "amd";
    m.guest_cpu = {{"1.0.ecx", 0xf6d8'3203u}, {"7.0.ebx", 0x219c'01abu}, {"80000001.0.edx", 0}};
    return m;
}

TEST(SnapshotManifest, RoundTripsAndRefusesWhatThisVersionDidNotWrite) {
    const SnapshotManifest m = sample_manifest();
    const std::string text = manifest_to_json(m);
    auto back = manifest_from_json(text, "manifest");
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, m);

    auto refused = [&](const std::string& from, const std::string& to, const char* why) {
        std::string t = text;
        const auto at = t.find(from);
        ASSERT_NE(at, std::string::npos) << from;
        t.replace(at, from.size(), to);
        auto r = manifest_from_json(t, "manifest");
        ASSERT_FALSE(r) << from << " -> " << to;
        EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
    };
    refused("\"version\": 1", "\"version\": 2", "format version 2");
    refused("stockade-snapshot", "other", "not a stockade snapshot manifest");
    refused("\"disk-vda\": {", "\"disk-vdz\": {", "unknown part \"disk-vdz\"");
    refused("\"memory\": {", "\"memoryx\": {", "unknown part");
    refused("e3b0c442", "e3b0c44", "not 64 hex digits");
    refused("\"image\": \"/tmp/d.img\"", "\"image\": \"d.img\"", "absolute image path");
    refused("\"part\": \"disk-vda\"", "\"part\": \"state\"", "not a listed disk part");
    refused("\"vcpus\": 2", "\"vcpus\": -1", "manifest");
    refused("\"run_args\": [", "\"run_args\": 7, \"x\": [", "manifest");
    refused("\"vendor\": \"amd\"", "\"vendor\": \"zilog\"", "vendor");
    refused("\"7.0.ebx\"", "\"7.0.esp\"", "LEAF.SUBLEAF.REGISTER");
    refused("\"7.0.ebx\"", "\"7.ebx\"", "LEAF.SUBLEAF.REGISTER");
    refused("\"7.0.ebx\"", "\"G.0.ebx\"", "LEAF.SUBLEAF.REGISTER");
    refused("\"7.0.ebx\": 563872171", "\"7.0.ebx\": 4294967296", "4294967295");
    EXPECT_FALSE(manifest_from_json("[]", "manifest"));
    EXPECT_FALSE(manifest_from_json("{", "manifest"));
    // Written before the CPU was recorded: no check, and it still reads.
    SnapshotManifest older = sample_manifest();
    older.guest_cpu_vendor.clear();
    older.guest_cpu.clear();
    auto read = manifest_from_json(manifest_to_json(older), "manifest");
    ASSERT_TRUE(read) << read.error().message;
    EXPECT_EQ(*read, older);
}

void write(const std::filesystem::path& p, std::string_view bytes) {
    std::ofstream(p, std::ios::binary) << bytes;
}

TEST(SnapshotFiles, OpenChecksEveryPartsLengthAndDigestOnTheDescriptorItKeeps) {
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    const std::string d = dir.path.string();
    auto open = [&](bool digests, std::vector<std::string> skip = {}) {
        return open_snapshot(d, digests, skip);
    };
    auto r = open(true);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("not a complete snapshot (no manifest)"), std::string::npos)
        << r.error().message;

    ASSERT_TRUE(write_file_atomic(d + "/manifest", manifest_to_json(sample_manifest())));
    write(dir.path / "state", "0123456789");
    write(dir.path / "memory", "");
    r = open(true);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("part disk-vda is missing"), std::string::npos)
        << r.error().message;
    write(dir.path / "disk-vda", "abc");
    r = open(true);
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_GE(r->fd("state"), 0);
    EXPECT_GE(r->fd("disk-vda"), 0);
    EXPECT_EQ(r->fd("nothing"), -1);

    write(dir.path / "state", "0123456780");  // same length, one byte changed
    r = open(true);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("state"), std::string::npos) << r.error().message;
    EXPECT_TRUE(open(false)) << "without digests only lengths count";
    EXPECT_TRUE(open(true, {"state"})) << "a part whose digest is skipped";
    write(dir.path / "state", "01234567890");
    r = open(false);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("part state is 11 bytes, the manifest says 10"),
              std::string::npos)
        << r.error().message;
}

TEST(SnapshotIo, GuestMemoryIsWrittenSparseToAFileAndWholeToAPipe) {
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    const std::vector<MemoryRegion> regions{{0, 64 << 12}, {1ull << 32, 16 << 12}};
    auto mem = GuestMemory::create(regions, MemoryOptions{HugePages::off, -1});
    ASSERT_TRUE(mem) << mem.error().message;
    // Pages 3, 4 and the last of the first region, and the first of the second.
    for (std::uint64_t gpa : {3ull << 12, (4ull << 12) + 100, (63ull << 12) + 4095, 1ull << 32})
        ASSERT_TRUE(mem->write_obj<std::uint8_t>(gpa, 0x5a));
    auto f = open_file((dir.path / "memory").string(), O_RDWR | O_CREAT, 0600);
    ASSERT_TRUE(f);
    auto w = write_guest_memory(*mem, f->get(), true);
    ASSERT_TRUE(w) << w.error().message;
    EXPECT_EQ(w->size, 80u << 12);
    EXPECT_EQ(w->data, 4u << 12) << "only the pages that are not zero";
    struct stat st {};
    ASSERT_EQ(::fstat(f->get(), &st), 0);
    EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), 80u << 12);
    EXPECT_LE(static_cast<std::uint64_t>(st.st_blocks) * 512, 8u << 12) << "holes where zeros were";

    // Mapped back copy-on-write, as a restore does: the same bytes, and writes stay private.
    auto back = GuestMemory::create(regions, MemoryOptions{HugePages::off, f->get(), true});
    ASSERT_TRUE(back) << back.error().message;
    for (std::uint64_t gpa : {3ull << 12, (4ull << 12) + 100, (63ull << 12) + 4095, 1ull << 32})
        EXPECT_EQ(*back->read_obj<std::uint8_t>(gpa), 0x5a) << gpa;
    EXPECT_EQ(*back->read_obj<std::uint8_t>(5ull << 12), 0);
    ASSERT_TRUE(back->write_obj<std::uint8_t>(3ull << 12, 1));
    std::uint8_t on_disk = 0;
    ASSERT_EQ(::pread(f->get(), &on_disk, 1, 3 << 12), 1);
    EXPECT_EQ(on_disk, 0x5a) << "the snapshot's file is never written by a restored guest";

    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    ASSERT_EQ(::fcntl(p[0], F_SETPIPE_SZ, 1 << 20), 1 << 20);
    UniqueFd rd(p[0]), wr(p[1]);
    auto streamed = write_guest_memory(*mem, wr.get(), false);
    ASSERT_TRUE(streamed) << streamed.error().message;
    EXPECT_EQ(streamed->data, 80u << 12) << "a stream carries every byte";
}

TEST(SnapshotIo, ADiskStreamedIntoASparseCopyKeepsItsHolesAndARestoreGivesItBack) {
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    const std::string image = (dir.path / "disk.img").string();
    auto disk = open_file(image, O_RDWR | O_CREAT, 0600);
    ASSERT_TRUE(disk);
    ASSERT_EQ(::ftruncate(disk->get(), 8 << 20), 0);
    const std::string data(4096, 'x');
    ASSERT_EQ(::pwrite(disk->get(), data.data(), data.size(), 1 << 20), 4096);
    ASSERT_EQ(::pwrite(disk->get(), "end", 3, (8 << 20) - 3), 3);

    // The sandbox's side into a pipe, the client's into a sparse file.
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    UniqueFd rd(p[0]), wr(p[1]);
    auto copy = open_file((dir.path / "disk-vda").string(), O_RDWR | O_CREAT, 0600);
    ASSERT_TRUE(copy);
    Result<WrittenBytes> written = fail("not run");
    std::thread client([&] {
        SparseFileWriter w(copy->get());
        std::vector<std::uint8_t> buf(3000);  // not a multiple of the block: carries
        for (;;) {
            const ssize_t n = ::read(rd.get(), buf.data(), buf.size());
            if (n <= 0) break;
            if (auto r = w.write(std::span(buf.data(), static_cast<std::size_t>(n))); !r) {
                written = std::unexpected(r.error());
                return;
            }
        }
        written = w.finish();
    });
    auto streamed = stream_disk(disk->get(), 8 << 20, wr.get());
    wr.reset();
    client.join();
    ASSERT_TRUE(streamed) << streamed.error().message;
    ASSERT_TRUE(written) << written.error().message;
    EXPECT_EQ(written->size, 8u << 20);
    EXPECT_EQ(written->data, 8192u) << "two blocks of data, the rest holes";
    EXPECT_EQ(::lseek(disk->get(), 0, SEEK_CUR), 0) << "the image's offset is left alone";

    // The image is overwritten, then given its copy back.
    const std::string garbage(1 << 20, 'g');
    ASSERT_EQ(::pwrite(disk->get(), garbage.data(), garbage.size(), 0),
              static_cast<ssize_t>(garbage.size()));
    ASSERT_EQ(::ftruncate(disk->get(), 9 << 20), 0);
    auto r = restore_disk(copy->get(), disk->get());
    ASSERT_TRUE(r) << r.error().message;
    struct stat st {};
    ASSERT_EQ(::fstat(disk->get(), &st), 0);
    EXPECT_EQ(st.st_size, 8 << 20);
    char buf[4096];
    ASSERT_EQ(::pread(disk->get(), buf, sizeof buf, 1 << 20), 4096);
    EXPECT_EQ(std::string(buf, 4096), data);
    ASSERT_EQ(::pread(disk->get(), buf, 16, 0), 16);
    EXPECT_EQ(std::string(buf, 16), std::string(16, '\0'));
    ASSERT_EQ(::pread(disk->get(), buf, 3, (8 << 20) - 3), 3);
    EXPECT_EQ(std::string(buf, 3), "end");
}

}  // namespace
}  // namespace stockade

namespace stockade {
namespace {

std::string key_file(const std::filesystem::path& dir, char digit, mode_t mode = 0600) {
    const std::string path = (dir / (std::string("key-") + digit)).string();
    EXPECT_TRUE(write_file_atomic(path, std::string(64, digit) + "\n"));
    ::chmod(path.c_str(), mode);
    return path;
}

// One part sealed the way create does: its bytes into the pipe, the helper sealing them into
// the part's file.
Result<SealedRecord> seal_part(const std::string& key, const std::string& sid,
                               const std::filesystem::path& file, const std::string& name,
                               std::string_view bytes, std::uint64_t limit) {
    auto f = STOCKADE_TRY(open_file(file.string(), O_RDWR | O_CREAT | O_TRUNC, 0600));
    auto part = STOCKADE_TRY(SealingPart::start(key, sid, name, limit, f.get()));
    (void)write_all(part->write_end(), bytes);  // a refusal shows in finish
    return part->finish();
}

// A sealed snapshot in `d`: sample_manifest()'s parts, sealed under `key`.
void make_sealed(const std::filesystem::path& d, const std::string& key) {
    SnapshotManifest m = sample_manifest();
    m.sealed = true;
    std::vector<SealedRecord> records;
    for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{
             {"disk-vda", "abc"}, {"memory", ""}, {"state", "0123456789"}}) {
        auto r = seal_part(key, m.id, d / name, name, bytes, 1 << 20);
        ASSERT_TRUE(r) << r.error().message;
        EXPECT_EQ(r->size, bytes.size());
        EXPECT_EQ(r->sha256, to_hex(sha256(bytes)));
        records.push_back(std::move(*r));
    }
    auto f = open_file((d / "manifest").string(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    ASSERT_TRUE(f);
    auto sealed = seal_manifest_file(key, m.id, records, manifest_to_json(m), f->get());
    ASSERT_TRUE(sealed) << sealed.error().message;
}

void expect_refused(const Result<OpenedSnapshot>& r, std::string_view why) {
    ASSERT_FALSE(r) << "expected a refusal: " << why;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << r.error().message;
}

TEST(SnapshotFiles, SealedSnapshotsOpenOnlyWithTheirKeyAndEveryChangedByteIsRefused) {
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    const auto d = dir.path / "snap";
    std::filesystem::create_directory(d);
    const std::string key = key_file(dir.path, 'a'), other = key_file(dir.path, 'b');
    ASSERT_TRUE(check_seal_key(key));
    auto loose = check_seal_key(key_file(dir.path, 'c', 0644));
    ASSERT_FALSE(loose);
    EXPECT_NE(loose.error().message.find("--seal-key"), std::string::npos) << loose.error().message;
    make_sealed(d, key);
    if (HasFatalFailure()) return;

    auto m = read_snapshot_manifest(d.string(), key);
    ASSERT_TRUE(m) << m.error().message;
    SnapshotManifest want = sample_manifest();
    want.sealed = true;
    EXPECT_EQ(*m, want);
    auto snap = open_snapshot(d.string(), true, {}, key);
    ASSERT_TRUE(snap) << snap.error().message;
    // A part's plaintext, as a restore takes it: into a memory file of its own.
    UniqueFd plain(::memfd_create("state", MFD_CLOEXEC));
    ASSERT_TRUE(open_sealed_part(key, "state", snap->fd("state"), snap->sealed_manifest.get(),
                                 plain.get()));
    char got[16] = {};
    EXPECT_EQ(::pread(plain.get(), got, sizeof got, 0), 10);
    EXPECT_EQ(std::string(got, 10), "0123456789");

    expect_refused(open_snapshot(d.string(), true), "a sealed snapshot: give its key");
    expect_refused(open_snapshot(d.string(), true, {}, other), "manifest");
    // One bit of a disk copy's ciphertext: refused, naming the part; skipped, not read.
    {
        UniqueFd f(::open((d / "disk-vda").c_str(), O_RDWR | O_CLOEXEC));
        char b = 0;
        ASSERT_EQ(::pread(f.get(), &b, 1, 120), 1);
        b ^= 1;
        ASSERT_EQ(::pwrite(f.get(), &b, 1, 120), 1);
    }
    expect_refused(open_snapshot(d.string(), true, {}, key), "disk-vda");
    EXPECT_TRUE(open_snapshot(d.string(), true, {"disk-vda"}, key));
    // A part swapped for the same part of another snapshot sealed under the same key.
    const auto d2 = dir.path / "snap2";
    std::filesystem::create_directory(d2);
    make_sealed(d2, key);
    std::filesystem::copy_file(d2 / "state", d / "state",
                               std::filesystem::copy_options::overwrite_existing);
    expect_refused(open_snapshot(d.string(), false, {}, key), "state");

    // Refused at sealing: more than the part can be.
    auto big = seal_part(key, sample_manifest().id, dir.path / "big", "state", "0123456789", 4);
    ASSERT_FALSE(big);
    EXPECT_NE(big.error().message.find("more than the 4 bytes"), std::string::npos)
        << big.error().message;

    // An unsealed snapshot with a key (no downgrade), and a document that claims to be sealed
    // while its file is not.
    const auto clear = dir.path / "clear";
    std::filesystem::create_directory(clear);
    ASSERT_TRUE(
        write_file_atomic((clear / "manifest").string(), manifest_to_json(sample_manifest())));
    auto r = read_snapshot_manifest(clear.string(), key);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("not sealed, though a seal key was given"), std::string::npos)
        << r.error().message;
    ASSERT_TRUE(write_file_atomic((clear / "manifest").string(), manifest_to_json(want)));
    r = read_snapshot_manifest(clear.string());
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("says sealed"), std::string::npos) << r.error().message;
}

// A lazy sealed restore's loader opens what the restore needs before it returns: the memory
// part's header checked and the state decrypted into the file given; a part that is not this
// snapshot's is refused then, naming it, before the sandbox (or any disk copy) comes.
TEST(SnapshotFiles, TheMemoryLoaderDecryptsTheStateAndChecksTheMemoryBeforeItReturns) {
    test::TempDir dir;
    ASSERT_FALSE(dir.path.empty());
    const std::string key = key_file(dir.path, 'a');
    const auto d = dir.path / "snap", d2 = dir.path / "snap2";
    for (const auto& p : {d, d2}) {
        std::filesystem::create_directory(p);
        make_sealed(p, key);
        if (HasFatalFailure()) return;
    }
    // As root it becomes a sandbox's ids; else it is already the sandbox's user.
    const bool root = ::geteuid() == 0;
    const std::uint32_t uid = root ? 65534 : ::geteuid(), gid = root ? 65534 : ::getegid();
    const auto start = [&](const std::filesystem::path& snap, int state_out) {
        auto opened = open_snapshot(snap.string(), false, {}, key, {"state", "memory"});
        EXPECT_TRUE(opened) << opened.error().message;
        if (!opened) return Result<UniqueFd>(fail("not opened"));
        return start_memory_loader(key, "memory", opened->fd("memory"),
                                   opened->sealed_manifest.get(), -1, uid, gid, opened->fd("state"),
                                   state_out);
    };
    UniqueFd plain(::memfd_create("state", MFD_CLOEXEC));
    auto loader = start(d, plain.get());
    ASSERT_TRUE(loader) << loader.error().message;
    char got[16] = {};
    EXPECT_EQ(::pread(plain.get(), got, sizeof got, 0), 10);
    EXPECT_EQ(std::string(got, 10), "0123456789");
    loader->reset();  // no sandbox comes: the loader ends

    // The other snapshot's memory (same key) and a flipped bit of the state: refused.
    std::filesystem::copy_file(d2 / "memory", d / "memory",
                               std::filesystem::copy_options::overwrite_existing);
    UniqueFd plain2(::memfd_create("state", MFD_CLOEXEC));
    auto foreign = start(d, plain2.get());
    ASSERT_FALSE(foreign);
    EXPECT_NE(foreign.error().message.find("memory: not the copy"), std::string::npos)
        << foreign.error().message;
    {
        UniqueFd f(::open((d2 / "state").c_str(), O_RDWR | O_CLOEXEC));
        char b = 0;
        ASSERT_EQ(::pread(f.get(), &b, 1, 120), 1);
        b ^= 1;
        ASSERT_EQ(::pwrite(f.get(), &b, 1, 120), 1);
    }
    auto tampered = start(d2, plain2.get());
    ASSERT_FALSE(tampered);
    EXPECT_NE(tampered.error().message.find("state: chunk 0 of 1: authentication failed"),
              std::string::npos)
        << tampered.error().message;
}

}  // namespace
}  // namespace stockade
