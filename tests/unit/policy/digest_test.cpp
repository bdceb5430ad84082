// Artefact digests: OpenSSL's SHA-256 of a file equals sha256sum's, and a mismatch refuses
// with a message naming the file and both digests.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>

#include "base/unique_fd.hpp"
#include "policy/artefacts.hpp"
#include "policy/digest.hpp"

namespace stockade::policy {
namespace {

namespace fs = std::filesystem;

struct TempFile {
    fs::path path;
    explicit TempFile(const std::string& content) {
        std::string tmpl = (fs::temp_directory_path() / "stockade-digest.XXXXXX").string();
        int fd = ::mkstemp(tmpl.data());
        if (fd >= 0) {
            path = tmpl;
            ::close(fd);
            std::ofstream(path, std::ios::binary) << content;
        }
    }
    ~TempFile() {
        std::error_code ec;
        fs::remove(path, ec);
    }
};

std::string sha256sum_tool(const fs::path& p) {
    std::string cmd = "sha256sum '" + p.string() + "'";
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(cmd.c_str(), "r"), ::pclose);
    if (!pipe) return {};
    char buf[65] = {};
    if (std::fread(buf, 1, 64, pipe.get()) != 64) return {};
    return std::string(buf, 64);
}

TEST(policy_digest, KnownVectors) {
    TempFile empty("");
    auto d = sha256_file(empty.path);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(to_hex(*d), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    TempFile abc("abc");
    d = sha256_file(abc.path);
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(to_hex(*d), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(policy_digest, EqualsSha256sumOnAMultiChunkFile) {
    // Larger than the 1 MiB read chunk, not a multiple of it, not uniform.
    std::string content;
    for (std::uint32_t i = 0; content.size() < (3u << 20) + 12345; ++i)
        content += static_cast<char>((i * 2654435761u) >> 24);
    TempFile f(content);
    auto d = sha256_file(f.path);
    ASSERT_TRUE(d) << d.error().message;
    auto expected = sha256sum_tool(f.path);
    ASSERT_EQ(expected.size(), 64u) << "sha256sum (coreutils) did not run";
    EXPECT_EQ(to_hex(*d), expected);
}

TEST(policy_digest, FdDigestLeavesTheOffsetAlone) {
    TempFile f("0123456789");
    UniqueFd fd(::open(f.path.c_str(), O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(fd);
    ASSERT_EQ(::lseek(fd.get(), 4, SEEK_SET), 4);
    auto d = sha256_fd(fd.get(), "ten digits");
    ASSERT_TRUE(d);
    EXPECT_EQ(::lseek(fd.get(), 0, SEEK_CUR), 4);
    EXPECT_EQ(to_hex(*d), sha256sum_tool(f.path));
}

TEST(policy_digest, MismatchRefusesNamingFileAndBothDigests) {
    TempFile f("kernel image");
    const std::string pinned = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    auto r = verify_digest(f.path.string(), pinned);
    ASSERT_FALSE(r);
    const auto& msg = r.error().message;
    EXPECT_NE(msg.find("digest mismatch for " + f.path.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(pinned), std::string::npos) << msg;
    EXPECT_NE(msg.find(sha256sum_tool(f.path)), std::string::npos) << msg;
    EXPECT_TRUE(verify_digest(f.path.string(), sha256sum_tool(f.path)));
    // Upper-case hex is the same digest.
    std::string upper = sha256sum_tool(f.path);
    for (char& c : upper)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_TRUE(verify_digest(f.path.string(), upper));
}

TEST(policy_digest, BadInputs) {
    auto r = verify_digest("/nonexistent/vmlinuz",
                           "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("open /nonexistent/vmlinuz: No such file"), std::string::npos)
        << r.error().message;
    TempFile f("x");
    auto bad = verify_digest(f.path.string(), "abc");
    ASSERT_FALSE(bad);
    EXPECT_NE(bad.error().message.find("is not 64 hex digits"), std::string::npos);
    EXPECT_FALSE(parse_sha256_hex(std::string(63, 'a')));
    EXPECT_FALSE(parse_sha256_hex(std::string(63, 'a') + "g"));
    EXPECT_TRUE(parse_sha256_hex(std::string(64, 'F')));
}

TEST(policy_artefacts, PinnedArtefactsMustBePresentAndMatch) {
    TempFile kernel("vmlinuz"), initrd("initrd"), disk("rootfs"), other("other disk");
    auto open_ro = [](const TempFile& f) {
        return UniqueFd(::open(f.path.c_str(), O_RDONLY | O_CLOEXEC));
    };
    UniqueFd kfd = open_ro(kernel), ifd = open_ro(initrd), dfd = open_ro(disk),
             ofd = open_ro(other);
    SandboxArtefacts a{{kernel.path, kfd.get()},
                       Artefact{initrd.path, ifd.get()},
                       {{"rootfs", {disk.path, dfd.get()}}, {"scratch", {other.path, ofd.get()}}}};
    DigestPolicy pins;
    EXPECT_TRUE(verify_artefacts(pins, a)) << "nothing pinned, nothing read";
    pins.kernel = *sha256_file(kernel.path);
    pins.initrd = *sha256_file(initrd.path);
    pins.disks["rootfs"] = *sha256_file(disk.path);
    auto ok = verify_artefacts(pins, a);
    EXPECT_TRUE(ok) << ok.error().message << " (the unpinned scratch disk is not checked)";

    auto wrong = pins;
    wrong.disks["rootfs"] = *sha256_file(other.path);
    auto r = verify_artefacts(wrong, a);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("verifying disk \"rootfs\": digest mismatch for " +
                                     disk.path.string()),
              std::string::npos)
        << r.error().message;

    auto no_initrd = a;
    no_initrd.initrd.reset();
    r = verify_artefacts(pins, no_initrd);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("pins one (/digests/initrd) but the sandbox has none"),
              std::string::npos);

    auto missing = pins;
    missing.disks["data"] = *sha256_file(other.path);
    r = verify_artefacts(missing, a);
    ASSERT_FALSE(r);
    EXPECT_NE(
        r.error().message.find(
            "disk \"data\": the policy pins it (/digests/disks/data) but the sandbox has no disk"),
        std::string::npos)
        << r.error().message;

    wrong = pins;
    wrong.kernel = *sha256_file(initrd.path);
    r = verify_artefacts(wrong, a);
    ASSERT_FALSE(r);
    EXPECT_TRUE(r.error().message.starts_with("verifying the kernel: digest mismatch for " +
                                              kernel.path.string()))
        << r.error().message;
}

TEST(policy_artefacts, BytesAlreadyReadAreWhatIsVerifiedNotTheFile) {
    // The runner reads a boot image once and boots those bytes: the digest must be of them,
    // so a write to the file after the read can neither pass nor fail the check.
    TempFile kernel("the kernel as read");
    UniqueFd kfd(::open(kernel.path.c_str(), O_RDONLY | O_CLOEXEC));
    const std::string read_then = "the kernel as read";
    const std::span<const std::uint8_t> bytes(
        reinterpret_cast<const std::uint8_t*>(read_then.data()), read_then.size());
    DigestPolicy pins;
    pins.kernel = sha256(read_then);
    std::ofstream(kernel.path) << "rewritten after the read";
    SandboxArtefacts a{{kernel.path, kfd.get(), bytes}, std::nullopt, {}};
    auto ok = verify_artefacts(pins, a);
    EXPECT_TRUE(ok) << ok.error().message;

    pins.kernel = *sha256_file(kernel.path);  // the file now, not what was read
    auto r = verify_artefacts(pins, a);
    ASSERT_FALSE(r);
    EXPECT_NE(
        r.error().message.find("verifying the kernel: digest mismatch for " + kernel.path.string() +
                               ": the policy pins sha256 " + to_hex(*pins.kernel) +
                               ", the content read has " + to_hex(sha256(read_then))),
        std::string::npos)
        << r.error().message;
}

}  // namespace
}  // namespace stockade::policy
