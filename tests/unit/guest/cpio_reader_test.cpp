// The initramfs reader and the module release it finds, on archives made by our own writer
// the way stockade-mkimage lays them out.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <string>
#include <vector>

#include "guest/abi.hpp"
#include "guest/cpio.hpp"
#include "guest/cpio_reader.hpp"
#include "guest/initramfs_modules.hpp"

namespace stockade {
namespace {

using Bytes = std::vector<std::uint8_t>;

// What stockade-mkimage writes for `release` with virtio_pci (and its dependency), or an
// image without modules when `release` is empty.
Bytes initramfs(const std::string& release) {
    cpio::Writer w;
    w.add_directory("/etc");
    w.add_directory("/etc/stockade");
    w.add_directory(guest_abi::kModuleListDir);
    w.add_file("/init",
               std::string_view("\x7f"
                                "ELF"),
               0755);
    if (!release.empty()) {
        const std::string dir = "/lib/modules/" + release + "/kernel/drivers/virtio/";
        w.add_directory("/lib/modules/" + release);
        w.add_file(dir + "virtio.ko", std::string_view("module"));
        w.add_file(dir + "virtio_pci.ko", std::string_view("module"));
        w.add_file(std::string(guest_abi::kModuleListDir) + "/virtio_pci",
                   dir + "virtio.ko\n" + dir + "virtio_pci.ko\n");
    }
    w.add_file(std::string(guest_abi::kAutoloadList), std::string_view(""));
    return w.finish();
}

Bytes job_archive() {
    cpio::Writer w;
    w.add_directory("/stockade");
    w.add_file("/stockade/argv", std::string_view("true\0", 5));
    return w.finish();
}

Bytes concat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const Bytes& p : parts)
        out.insert(out.end(), p.begin(), p.end());
    return out;
}

struct Read {
    std::vector<std::string> paths;
    cpio::Reader::Stop stop = cpio::Reader::Stop::none;
    std::size_t offset = 0;
};

Read read_all(std::span<const std::uint8_t> bytes) {
    Read r;
    cpio::Reader reader(bytes);
    while (auto e = reader.next()) {
        EXPECT_GE(e->data.data(), bytes.data());
        EXPECT_LE(e->data.data() + e->data.size(), bytes.data() + bytes.size());
        r.paths.emplace_back(e->path);
    }
    r.stop = reader.stop();
    r.offset = reader.offset();
    EXPECT_FALSE(reader.next()) << "a stopped reader stays stopped";
    return r;
}

const Bytes kGzip = {0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0, 0x03, 0x01, 0x02};

TEST(CpioReader, ReadsEntriesInOrderWithTheirContent) {
    cpio::Writer w;
    w.add_directory("/bin");
    w.add_file("/bin/hello", std::string_view("hi there"), 0755);
    w.add_symlink("/bin/sh", "busybox");
    const Bytes a = w.finish();
    cpio::Reader reader(a);
    auto dir = reader.next();
    ASSERT_TRUE(dir);
    EXPECT_EQ(dir->path, "bin");
    EXPECT_TRUE(S_ISDIR(dir->mode));
    auto file = reader.next();
    ASSERT_TRUE(file);
    EXPECT_EQ(file->path, "bin/hello");
    EXPECT_EQ(file->mode, S_IFREG | 0755u);
    EXPECT_EQ(std::string(file->data.begin(), file->data.end()), "hi there");
    auto link = reader.next();
    ASSERT_TRUE(link);
    EXPECT_TRUE(S_ISLNK(link->mode));
    EXPECT_EQ(std::string(link->data.begin(), link->data.end()), "busybox");
    EXPECT_FALSE(reader.next()) << "the trailer is not an entry";
    EXPECT_EQ(reader.stop(), cpio::Reader::Stop::end);
    EXPECT_EQ(reader.offset(), a.size());
}

TEST(CpioReader, ReadsConcatenatedArchivesAcrossNulPadding) {
    Bytes padding(512, 0);
    auto r = read_all(concat({initramfs(""), padding, job_archive()}));
    EXPECT_EQ(r.stop, cpio::Reader::Stop::end);
    ASSERT_FALSE(r.paths.empty());
    EXPECT_EQ(r.paths.front(), "etc");
    EXPECT_EQ(r.paths.back(), "stockade/argv");
}

TEST(CpioReader, StopsAtCompressedData) {
    auto r = read_all(kGzip);
    EXPECT_TRUE(r.paths.empty());
    EXPECT_EQ(r.stop, cpio::Reader::Stop::not_newc);
    EXPECT_EQ(r.offset, 0u);

    const Bytes first = job_archive();
    r = read_all(concat({first, kGzip, job_archive()}));
    EXPECT_EQ(r.paths.size(), 2u) << "only the archive before the compressed one is read";
    EXPECT_EQ(r.stop, cpio::Reader::Stop::not_newc);
    EXPECT_EQ(r.offset, first.size());
}

TEST(CpioReader, WantsEachHeaderOnAFourByteBoundary) {
    // The kernel refuses a header that padding has left misaligned.
    auto r = read_all(concat({job_archive(), Bytes(3, 0), Bytes{'0'}, job_archive()}));
    EXPECT_EQ(r.paths.size(), 2u);
    EXPECT_EQ(r.stop, cpio::Reader::Stop::not_newc);
}

TEST(CpioReader, NeverReadsPastATruncatedArchive) {
    const Bytes a = initramfs("6.1.0-28-cloud-amd64");
    const std::size_t all = read_all(a).paths.size();
    for (std::size_t cut = 0; cut < a.size(); ++cut) {
        // A copy of exactly `cut` bytes, so a sanitizer sees any read past it.
        const Bytes part(a.begin(), a.begin() + static_cast<std::ptrdiff_t>(cut));
        auto r = read_all(part);
        EXPECT_NE(r.stop, cpio::Reader::Stop::none);
        EXPECT_LE(r.paths.size(), all);
        EXPECT_LE(r.offset, cut);
    }
}

TEST(CpioReader, RefusesHeadersThatLie) {
    Bytes a = job_archive();
    auto with = [&](std::size_t at, std::string_view field) {
        Bytes b = a;
        std::copy(field.begin(), field.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
        return b;
    };
    // Offsets into the first header: filesize at 54, namesize at 94, magic at 0.
    EXPECT_EQ(read_all(with(54, "7FFFFFFF")).stop, cpio::Reader::Stop::malformed);
    EXPECT_EQ(read_all(with(94, "FFFFFFFF")).stop, cpio::Reader::Stop::malformed);
    EXPECT_EQ(read_all(with(94, "00000000")).stop, cpio::Reader::Stop::malformed);
    EXPECT_EQ(read_all(with(54, "0000000G")).stop, cpio::Reader::Stop::malformed);
    EXPECT_EQ(read_all(with(0, "070707")).stop, cpio::Reader::Stop::malformed);
    // The name "stockade" (9 bytes with its NUL) said to be 8: its NUL is missing.
    EXPECT_EQ(read_all(with(94, "00000008")).stop, cpio::Reader::Stop::malformed);
}

TEST(InitramfsModules, FindsTheReleaseMkimageWrote) {
    EXPECT_EQ(initramfs_module_release(initramfs("6.1.0-28-cloud-amd64")), "6.1.0-28-cloud-amd64");
    EXPECT_EQ(initramfs_module_releases(initramfs("6.1.0-28-cloud-amd64")),
              std::vector<std::string>{"6.1.0-28-cloud-amd64"});
}

TEST(InitramfsModules, HasNoneWithoutModules) {
    EXPECT_EQ(initramfs_module_release(initramfs("")), std::nullopt);
    EXPECT_EQ(initramfs_module_release({}), std::nullopt);
}

TEST(InitramfsModules, HasNoneWhenCompressed) {
    EXPECT_EQ(initramfs_module_release(kGzip), std::nullopt);
}

TEST(InitramfsModules, ReadsEveryConcatenatedArchive) {
    // The runner appends the job archive to the initramfs.
    EXPECT_EQ(initramfs_module_release(concat({initramfs("6.1.0-28-cloud-amd64"), job_archive()})),
              "6.1.0-28-cloud-amd64");
    // Modules in a later archive count too.
    EXPECT_EQ(initramfs_module_release(
                  concat({initramfs(""), Bytes(64, 0), initramfs("6.1.0-30-amd64")})),
              "6.1.0-30-amd64");
    // What comes before compressed data is still read.
    EXPECT_EQ(initramfs_module_release(concat({initramfs("6.1.0-28-cloud-amd64"), kGzip})),
              "6.1.0-28-cloud-amd64");
}

TEST(InitramfsModules, ListsEachReleaseOnceInOrder) {
    const auto both = concat({initramfs("6.1.0-30-amd64"), initramfs("6.1.0-28-cloud-amd64"),
                              initramfs("6.1.0-30-amd64")});
    EXPECT_EQ(initramfs_module_releases(both),
              (std::vector<std::string>{"6.1.0-30-amd64", "6.1.0-28-cloud-amd64"}));
}

TEST(InitramfsModules, KnowsOtherBuildersLayouts) {
    auto only = [](std::string_view path, std::uint32_t mode = 0644) {
        cpio::Writer w;
        if (S_ISLNK(mode))
            w.add_symlink(path, "elsewhere.ko");
        else
            w.add_file(path, std::string_view("module"), mode);
        Bytes a = w.finish();
        return initramfs_module_release(a);
    };
    EXPECT_EQ(only("./lib/modules/6.12.9-amd64/kernel/fs/ext4/ext4.ko.xz"), "6.12.9-amd64");
    EXPECT_EQ(only("usr/lib/modules/6.12.9-amd64/kernel/fs/ext4/ext4.ko.zst"), "6.12.9-amd64");
    EXPECT_EQ(only("lib/modules/6.12.9-amd64/ext4.ko"), "6.12.9-amd64");
    // Not modules: index files, names that only look alike, links, files elsewhere.
    EXPECT_EQ(only("lib/modules/6.12.9-amd64/modules.dep"), std::nullopt);
    EXPECT_EQ(only("lib/modules/6.12.9-amd64/kernel/notes.kobj"), std::nullopt);
    EXPECT_EQ(only("lib/modules/6.12.9-amd64/kernel/.ko"), std::nullopt);
    EXPECT_EQ(only("lib/modules/ext4.ko"), std::nullopt);
    EXPECT_EQ(only("lib/modules/6.12.9-amd64/ext4.ko", S_IFLNK), std::nullopt);
    EXPECT_EQ(only("opt/lib/modules/6.12.9-amd64/ext4.ko"), std::nullopt);
    EXPECT_EQ(only("lib/modules/" + std::string(65, '6') + "/ext4.ko"), std::nullopt);
}

TEST(InitramfsModules, SuggestsTheDefaultImagesCommandForARelease) {
    const std::string cmd = initramfs_build_command("6.1.0-30-amd64");
    for (const char* part :
         {"stockade-mkimage initramfs -o FILE --init ", "stockade-init --busybox /bin/busybox",
          " --modules-dir /lib/modules/6.1.0-30-amd64 ", " --module=virtio_pci ",
          " --module=vmw_vsock_virtio_transport ", " --autoload=pvpanic_mmio"})
        EXPECT_NE(cmd.find(part), std::string::npos) << part << " in " << cmd;
}

}  // namespace
}  // namespace stockade
