// virtio-blk against real KVM: an ext4 root disk (--rootfs) the workload runs in, whose
// writes survive power-off in a clean file system the host can read; read-only disks that
// refuse writes and leave the image byte for byte; flushes that reach the image file
// (fdatasync). Every run goes through the hardened path (default policy: seccomp filters that
// kill on anything outside the allowlists), so a device syscall missing from the event
// loop's allowlist fails these tests with "killed by SIGSYS".
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "lab/support/process.hpp"

namespace stockade {
namespace {

namespace fs = std::filesystem;
using lab::run_process;
using lab::run_stockade;

constexpr const char* kGreeting = "hello from the root disk";

// A directory with a static busybox and its applet links, the mount points stockade-init
// needs, and /etc/greeting.
fs::path make_tree(const fs::path& dir) {
    fs::remove_all(dir);
    for (const char* d : {"bin", "etc", "proc", "sys", "dev", "tmp", "mnt"})
        fs::create_directories(dir / d);
    fs::copy_file("/bin/busybox", dir / "bin/busybox");
    auto list = run_process({"/bin/busybox", "--list"});
    EXPECT_EQ(list.status, 0) << list.describe();
    std::istringstream in(list.out);
    for (std::string applet; std::getline(in, applet);)
        if (!applet.empty() && applet != "busybox")
            fs::create_symlink("busybox", dir / "bin" / applet);
    std::ofstream(dir / "etc/greeting") << kGreeting << "\n";
    return dir;
}

// Where this binary's images live; removed when the tests end.
const fs::path& work_dir() {
    static const fs::path dir =
        fs::temp_directory_path() / ("stockade-blk-" + std::to_string(::getpid()));
    return dir;
}
struct RemoveWorkDir : ::testing::Environment {
    void TearDown() override { fs::remove_all(work_dir()); }
};
[[maybe_unused]] const auto* const kCleanup =
    ::testing::AddGlobalTestEnvironment(new RemoveWorkDir);

std::string make_image(const std::string& name, unsigned mib = 32) {
    const fs::path& work = work_dir();
    fs::create_directories(work);
    const fs::path tree = make_tree(work / (name + ".d"));
    const std::string image = (work / (name + ".img")).string();
    auto r = run_process({lab::build_dir() + "/guest/stockade-mkimage", "rootfs", "-o", image,
                          "--from", tree.string(), "--size-mib", std::to_string(mib)});
    EXPECT_EQ(r.status, 0) << r.describe();
    return image;
}

std::string file_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// The host's view of the image after the VM is gone.
void expect_clean_with_file(const std::string& image, const std::string& path,
                            const std::string& content) {
    auto fsck = run_process({"/usr/sbin/e2fsck", "-fn", image});
    EXPECT_EQ(fsck.status, 0) << "the file system is clean after power-off\n" << fsck.describe();
    auto cat = run_process({"/usr/sbin/debugfs", "-R", "cat " + path, image});
    EXPECT_EQ(cat.status, 0) << cat.describe();
    EXPECT_EQ(cat.out, content) << cat.describe();
}

// "stats: disk vda: R reads (.. KiB), W writes (.. KiB), F flushes, E failed requests"
struct DiskStats {
    long reads = -1, writes = -1, flushes = -1, failed = -1;
};
DiskStats disk_stats(const std::string& err, const std::string& disk = "vda") {
    std::regex re(
        "stats: disk " + disk +
        R"(: (\d+) reads \(\d+ KiB\), (\d+) writes \(\d+ KiB\), (\d+) flushes, (\d+) failed requests)");
    std::smatch m;
    DiskStats s;
    if (std::regex_search(err, m, re))
        s = {std::stol(m[1]), std::stol(m[2]), std::stol(m[3]), std::stol(m[4])};
    return s;
}

TEST(Rootfs, WorkloadRunsInTheDiskAndItsWritesSurvivePowerOff) {
    const std::string image = make_image("rw");
    auto r = run_stockade({"--stats", "--rootfs", image, "--", "sh", "-c",
                           "cat /etc/greeting; test -e /init || echo no-initramfs; "
                           "test -r /proc/self/status && echo proc; test -d /sys/block/vda && "
                           "echo sys; test -c /dev/null && echo dev; "
                           "grep ' / ' /proc/self/mounts | cut -d' ' -f3,4 | cut -d, -f1; "
                           "printf 'written in the guest\\n' > /etc/written; sync; echo synced"});
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, std::string(kGreeting) + "\nno-initramfs\nproc\nsys\ndev\next4 rw\nsynced\n")
        << r.describe();
    const DiskStats s = disk_stats(r.err);
    EXPECT_GT(s.reads, 0) << r.err;
    EXPECT_GT(s.writes, 0) << r.err;
    EXPECT_GE(s.flushes, 1) << "the guest's sync reaches the image as a flush\n" << r.err;
    EXPECT_EQ(s.failed, 0) << r.err;
    expect_clean_with_file(image, "/etc/written", "written in the guest\n");
}

TEST(Rootfs, PoweroffInTheGuestStillLeavesACleanFileSystem) {
    // busybox poweroff asks PID 1 (SIGUSR2): the workload is stopped and the disk unmounted
    // before the VM goes down, so the journal needs no replay.
    const std::string image = make_image("poweroff");
    auto r = run_stockade({"--rootfs", image, "--", "sh", "-c",
                           "mkdir /data && printf 'kept\\n' > /data/f && sync && poweroff; "
                           "sleep 30"});
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find("powered off"), std::string::npos) << r.describe();
    expect_clean_with_file(image, "/data/f", "kept\n");
}

TEST(Rootfs, ReadOnlyRootRefusesWritesAndLeavesTheImageUnchanged) {
    const std::string image = make_image("ro");
    const std::string before = file_bytes(image);
    auto r = run_stockade(
        {"--stats", "--rootfs", image + ",ro", "--", "sh", "-c",
         "cat /etc/greeting; grep ' / ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1; "
         "{ echo x > /etc/new; } 2>/dev/null || echo write-refused; "
         "mount -o remount,rw / 2>/dev/null; "
         "grep ' / ' /proc/self/mounts | cut -d' ' -f4 | cut -d, -f1; "
         "dd if=/dev/zero of=/dev/vda bs=4096 count=1 oflag=direct 2>/dev/null || "
         "echo device-refused; sync"});
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, std::string(kGreeting) + "\nro\nwrite-refused\nro\ndevice-refused\n")
        << r.describe();
    const DiskStats s = disk_stats(r.err);
    EXPECT_GT(s.reads, 0) << r.err;
    EXPECT_EQ(s.writes, 0) << r.err;
    EXPECT_TRUE(file_bytes(image) == before) << "a read-only image is unchanged byte for byte";
}

TEST(Disk, ReadOnlyDataDiskRefusesWrites) {
    const std::string image = make_image("data-ro");
    const std::string before = file_bytes(image);
    auto r = run_stockade({"--stats", "--disk", image + ",ro", "--", "sh", "-c",
                           "cat /sys/block/vda/ro; mkdir -p /mnt; "
                           // busybox mount retries a refused rw mount read-only
                           "mount -t ext4 -o rw /dev/vda /mnt 2>/dev/null; "
                           "grep -q ' /mnt ext4 rw' /proc/mounts && echo rw-mounted; "
                           "umount /mnt 2>/dev/null; "
                           "mount -t ext4 -o ro /dev/vda /mnt && cat /mnt/etc/greeting; "
                           "touch /mnt/new 2>/dev/null || echo write-refused; "
                           "dd if=/dev/zero of=/dev/vda bs=512 count=1 2>/dev/null || "
                           "echo device-refused; umount /mnt; sync"});
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, std::string("1\n") + kGreeting + "\nwrite-refused\ndevice-refused\n")
        << r.describe();
    EXPECT_EQ(disk_stats(r.err).writes, 0) << r.err;
    EXPECT_TRUE(file_bytes(image) == before) << "a read-only image is unchanged byte for byte";
}

TEST(Disk, SecondDiskIsWritableAndIndependent) {
    // Root disk read-only, data disk writable: /dev/vdb takes the write, vda stays as it was.
    const std::string root = make_image("two-root");
    const std::string data = make_image("two-data");
    const std::string root_before = file_bytes(root);
    auto r = run_stockade({"--stats", "--rootfs", root + ",ro", "--disk", data, "--", "sh", "-c",
                           "mount -t ext4 /dev/vdb /mnt && printf 'on vdb\\n' > /mnt/f && "
                           "umount /mnt && echo ok"});
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "ok\n");
    EXPECT_GE(disk_stats(r.err, "vdb").flushes, 1) << r.err;
    EXPECT_TRUE(file_bytes(root) == root_before);
    expect_clean_with_file(data, "/f", "on vdb\n");
}

TEST(Rootfs, ADiskThatIsNotExt4IsReportedAsSuch) {
    fs::create_directories(work_dir());
    const fs::path junk = work_dir() / "junk.img";
    std::ofstream(junk, std::ios::binary) << std::string(1 << 20, '\0');
    auto r = run_stockade({"--rootfs", junk.string(), "--", "true"});
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find("the root disk could not be mounted"), std::string::npos) << r.describe();
    // stockade-init's own message comes through the console, with the workload's output
    EXPECT_NE((r.out + r.err).find("mounting /dev/vda"), std::string::npos) << r.describe();
}

TEST(Flush, TheGuestsSyncIsAnFdatasyncOfTheImage) {
    // Seen from outside with strace: the flush the guest's sync sends is an fdatasync of
    // the image file's descriptor that succeeds.
    const std::string image = make_image("strace");
    const std::string log = image + ".strace";
    std::vector<std::string> argv{"/usr/bin/strace",
                                  "-f",
                                  "-qq",
                                  "-y",
                                  "-e",
                                  "trace=fdatasync",
                                  "-o",
                                  log,
                                  lab::build_dir() + "/runner/stockade",
                                  "run",
                                  "--rootfs",
                                  image,
                                  "--",
                                  "sh",
                                  "-c",
                                  "echo data > /f; sync"};
    auto r = run_process(argv);
    ASSERT_EQ(r.status, 0) << r.describe();
    const std::string trace = file_bytes(log);
    EXPECT_NE(trace.find("fdatasync("), std::string::npos) << trace;
    std::regex synced(R"(fdatasync\(\d+<)" + image + R"(>\)\s+= 0)");
    EXPECT_TRUE(std::regex_search(trace, synced)) << trace;
}

}  // namespace
}  // namespace stockade
