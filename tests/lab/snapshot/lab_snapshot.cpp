// Snapshots in the lab (runner/cli/snapshot_commands.hpp). A workload on the serial console
// counts in memory and reads a file on its ext4 disk (page cache dropped each round, so the
// read is the disk's); it is snapshotted, the sandbox removed and its disk image overwritten,
// and the restored sandbox goes on counting from the snapshot's next number with the file as
// it was. Rollback replaces a running sandbox under its id. A snapshot with one byte changed
// in any part, cut short or without its manifest is refused before anything starts, leaving
// nothing behind, as is one whose guest saw a CPU feature this host lacks; a create killed with
// SIGKILL leaves the previous snapshot whole. A sealed snapshot is refused without its key, with
// another key and with one bit of its memory flipped, and restores with its key. A sandbox with its
// stdio on vsock (the default) is restored twice side by side: each clone's output goes on from the
// snapshot's counter, exec works in it, the two read different bytes from /dev/urandom and their
// clocks are the host's; `drill` restores it, runs a check, reports and leaves nothing, with the
// check's status; `create --restore` restores it stopped until `start`. A sandbox on vhost-net is
// restored on a fresh tap and its guest reaches the host.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
// after sys/socket.h, which it needs
#include <linux/vm_sockets.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iomanip>
#include <iostream>
#include <limits>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "guest/control.hpp"
#include "lab/support/process.hpp"

extern char** environ;

namespace stockade {
namespace {

using lab::eventually;
using lab::RunResult;
using nlohmann::json;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

const std::string kWork = "/tmp/lab-snapshot";

RunResult stockade(const std::vector<std::string>& args) {
    std::vector<std::string> argv{lab::build_dir() + "/runner/stockade"};
    argv.insert(argv.end(), args.begin(), args.end());
    lab::RunOptions o;
    o.timeout = 180s;
    return lab::run_process(argv, o);
}

// The workload: mounts its disk, then every 200 ms drops the page cache and prints
// "tick N <the file's contents>".
const std::vector<std::string> kCounter{
    "sh", "-c",
    "mkdir -p /m && mount /dev/vda /m && echo kept > /m/f && sync && i=0; while true; do "
    "i=$((i+1)); echo 3 > /proc/sys/vm/drop_caches; echo \"tick $i $(cat /m/f 2>&1)\"; "
    "sleep 0.2; done"};

struct Tick {
    long n = -1;
    std::string file;
};
// Every "tick N FILE" line of a log, in order.
std::vector<Tick> ticks(const std::string& log) {
    std::vector<Tick> out;
    static const std::regex line(R"(^tick (\d+) (.*)$)");
    std::size_t at = 0;
    while (at < log.size()) {
        const auto end = log.find('\n', at);
        if (end == std::string::npos) break;  // a line still being written
        std::smatch m;
        const std::string l = log.substr(at, end - at);
        if (std::regex_match(l, m, line)) out.push_back({std::stol(m[1]), m[2]});
        at = end + 1;
    }
    return out;
}

std::string logs(const std::string& id) {
    return stockade({"logs", id}).out;
}

std::string make_disk(const std::string& name) {
    fs::create_directories(kWork);
    const std::string image = kWork + "/" + name;
    fs::remove(image);
    {
        const int fd = ::open(image.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        EXPECT_GE(fd, 0) << image;
        EXPECT_EQ(::ftruncate(fd, 64 << 20), 0);
        ::close(fd);
    }
    auto r = lab::run_process({"/usr/sbin/mkfs.ext4", "-q", "-F", image});
    EXPECT_EQ(r.status, 0) << r.describe();
    return image;
}

void start_counter(const std::string& id, const std::string& image,
                   const std::string& memory_mib = "128") {
    // 128 MiB: every snapshot, digest and restore here is a pass over guest RAM, and the lab
    // is slow at it.
    std::vector<std::string> args{"run",     "-d",     "--id",   id,    "--memory", memory_mib,
                                  "--stdio", "serial", "--disk", image, "--"};
    args.insert(args.end(), kCounter.begin(), kCounter.end());
    auto r = stockade(args);
    ASSERT_EQ(r.status, 0) << r.describe();
    std::string out;
    ASSERT_TRUE(eventually([&] {
        out = logs(id);
        const auto t = ticks(out);
        return t.size() >= 5 && t.back().file == "kept";
    })) << out;
}

// Writes over the start of the image: the file system it held is gone.
void destroy(const std::string& image) {
    const int fd = ::open(image.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    const std::string junk(1 << 20, '\xa5');
    for (int i = 0; i < 8; ++i)
        ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), static_cast<off_t>(i) << 20),
                  static_cast<ssize_t>(junk.size()));
    ::close(fd);
}

json create(const std::string& id, const std::string& dir, bool leave_paused) {
    std::vector<std::string> args{"snapshot", "create", id, dir};
    if (leave_paused) args.push_back("--leave-paused");
    auto r = stockade(args);
    EXPECT_EQ(r.status, 0) << r.describe();
    const json j = json::parse(r.out, nullptr, false);
    EXPECT_TRUE(j.is_object()) << r.out;
    return j;
}

bool gone(const std::string& id) {
    return !fs::exists("/run/stockade/" + id);
}

TEST(Snapshot, ARestoredSandboxGoesOnWhereItWasWithItsDiskAsItWas) {
    const std::string image = make_disk("restore.img");
    const std::string dir = kWork + "/snap-restore";
    fs::remove_all(dir);
    ASSERT_NO_FATAL_FAILURE(start_counter("lab-snap-a", image));
    const json made = create("lab-snap-a", dir, true);
    EXPECT_EQ(made["paused"], true) << made;
    EXPECT_EQ(made["memory_bytes"], 128ull << 20) << made;
    EXPECT_LT(made["memory_data_bytes"].get<std::uint64_t>(), 128ull << 20)
        << "zero pages take no space: " << made;
    // Paused: the log's last tick is the snapshot's.
    std::this_thread::sleep_for(500ms);
    const auto before = ticks(logs("lab-snap-a"));
    ASSERT_FALSE(before.empty());
    const long last = before.back().n;
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(ticks(logs("lab-snap-a")).back().n, last) << "a paused sandbox counts on";
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-a"}).status, 0);
    destroy(image);

    auto v = stockade({"snapshot", "verify", dir});
    ASSERT_EQ(v.status, 0) << v.describe();
    EXPECT_EQ(json::parse(v.out)["valid"], true) << v.out;

    auto r = stockade({"snapshot", "restore", dir, "-d", "--id", "lab-snap-b"});
    ASSERT_EQ(r.status, 0) << r.describe();
    EXPECT_EQ(r.out, "lab-snap-b\n");
    std::vector<Tick> after;
    ASSERT_TRUE(eventually([&] {
        after = ticks(logs("lab-snap-b"));
        return after.size() >= 5;
    })) << logs("lab-snap-b");
    EXPECT_EQ(after.front().n, last + 1) << "the counter goes on from the snapshot";
    for (std::size_t i = 0; i < after.size(); ++i) {
        EXPECT_EQ(after[i].n, last + 1 + static_cast<long>(i));
        EXPECT_EQ(after[i].file, "kept") << "the disk is as it was at the snapshot";
    }
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-b"}).status, 0);
    EXPECT_TRUE(gone("lab-snap-b"));
}

TEST(Snapshot, RollbackReplacesARunningSandboxUnderItsId) {
    const std::string image = make_disk("rollback.img");
    const std::string dir = kWork + "/snap-rollback";
    fs::remove_all(dir);
    ASSERT_NO_FATAL_FAILURE(start_counter("lab-snap-r", image));
    const json made = create("lab-snap-r", dir, false);
    EXPECT_EQ(made["paused"], false) << made;
    const long at = ticks(logs("lab-snap-r")).back().n;  // the snapshot's, or a little later
    // It runs on after the snapshot.
    ASSERT_TRUE(eventually([&] { return ticks(logs("lab-snap-r")).back().n > at + 10; }));
    auto r = stockade({"snapshot", "rollback", "lab-snap-r", dir});
    ASSERT_EQ(r.status, 0) << r.describe();
    std::vector<Tick> after;
    ASSERT_TRUE(eventually([&] {
        after = ticks(logs("lab-snap-r"));
        return after.size() >= 3;
    })) << logs("lab-snap-r");
    EXPECT_LE(after.front().n, at + 1) << "back where the snapshot was";
    EXPECT_EQ(after.front().file, "kept");
    auto ps = stockade({"ps", "--json"});
    EXPECT_NE(ps.out.find("\"lab-snap-r\""), std::string::npos) << ps.out;
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-r"}).status, 0);
}

TEST(Snapshot, ATamperedOrIncompleteSnapshotIsRefusedBeforeAnythingStarts) {
    const std::string image = make_disk("tamper.img");
    const std::string dir = kWork + "/snap-tamper";
    fs::remove_all(dir);
    // 80 MiB: each refused part below is found by a pass over the others (verify, then
    // restore), so the smallest guest that boots keeps this test short.
    ASSERT_NO_FATAL_FAILURE(start_counter("lab-snap-t", image, "80"));
    create("lab-snap-t", dir, false);
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-t"}).status, 0);

    auto flip = [](const std::string& path, off_t at) {
        const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
        ASSERT_GE(fd, 0) << path;
        unsigned char b = 0;
        ASSERT_EQ(::pread(fd, &b, 1, at), 1);
        b ^= 0x10;
        ASSERT_EQ(::pwrite(fd, &b, 1, at), 1);
        ::close(fd);
    };
    for (const char* part : {"state", "memory", "disk-vda"}) {
        const std::string copy = kWork + "/snap-tamper-" + part;
        fs::remove_all(copy);
        fs::copy(dir, copy);
        const off_t at = static_cast<off_t>(fs::file_size(copy + "/" + part) / 2);
        flip(copy + "/" + part, at);
        auto v = stockade({"snapshot", "verify", copy});
        EXPECT_EQ(v.status, 1) << part << ": " << v.describe();
        EXPECT_NE(v.err.find(part), std::string::npos) << v.err;
        const std::string id = std::string("lab-snap-x") + part[0];
        auto r = stockade({"snapshot", "restore", copy, "-d", "--id", id});
        EXPECT_NE(r.status, 0) << part << ": " << r.describe();
        EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
        EXPECT_TRUE(gone(id)) << "nothing left of " << id;
        fs::remove_all(copy);
    }
    // A host without a CPU feature the guest saw: refused before anything starts.
    {
        const std::string other = kWork + "/snap-tamper-cpu";
        fs::remove_all(other);
        fs::copy(dir, other);
        std::ifstream in(other + "/manifest");
        json m = json::parse(in, nullptr, false);
        in.close();
        ASSERT_TRUE(m.is_object() && m.contains("guest_cpu")) << "the CPU is recorded";
        ASSERT_FALSE(m["guest_cpu"]["features"].empty()) << m["guest_cpu"];
        m["guest_cpu"]["features"]["7.0.ebx"] = 0xffffffffu;  // every leaf-7 feature there is
        std::ofstream(other + "/manifest") << m.dump(2);
        auto r = stockade({"snapshot", "restore", other, "-d", "--id", "lab-snap-xc"});
        EXPECT_EQ(r.status, 1) << r.describe();
        EXPECT_NE(r.err.find("lacks features the snapshot's guest saw"), std::string::npos)
            << r.err;
        EXPECT_NE(r.err.find("7.0.ebx bit"), std::string::npos) << r.err;
        EXPECT_TRUE(gone("lab-snap-xc"));
        fs::remove_all(other);
    }
    const std::string cut = kWork + "/snap-tamper-cut";
    fs::remove_all(cut);
    fs::copy(dir, cut);
    fs::resize_file(cut + "/memory", fs::file_size(cut + "/memory") - 4096);
    auto v = stockade({"snapshot", "verify", cut});
    EXPECT_EQ(v.status, 1);
    EXPECT_NE(v.err.find("part memory is"), std::string::npos) << v.err;
    fs::remove(cut + "/manifest");
    v = stockade({"snapshot", "restore", cut, "--id", "lab-snap-xm"});
    EXPECT_NE(v.status, 0);
    EXPECT_NE(v.err.find("not a complete snapshot"), std::string::npos) << v.err;
    EXPECT_TRUE(gone("lab-snap-xm"));
    fs::remove_all(cut);
}

TEST(Snapshot, ACreateKilledMidwayLeavesThePreviousSnapshotWhole) {
    const std::string image = make_disk("killed.img");
    const std::string dir = kWork + "/snap-killed";
    fs::remove_all(dir);
    ASSERT_NO_FATAL_FAILURE(start_counter("lab-snap-k", image));
    const json first = create("lab-snap-k", dir, false);
    const std::string first_id = first["id"];
    for (int delay_ms : {20, 150, 400}) {
        const std::string bin = lab::build_dir() + "/runner/stockade";
        std::vector<std::string> args{bin, "snapshot", "create", "lab-snap-k", dir};
        std::vector<char*> argv;
        for (auto& a : args)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        pid_t pid = 0;
        ASSERT_EQ(::posix_spawn(&pid, bin.c_str(), nullptr, nullptr, argv.data(), environ), 0);
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        auto v = stockade({"snapshot", "verify", dir});
        ASSERT_EQ(v.status, 0) << "after a kill at " << delay_ms << " ms: " << v.describe();
        const std::string now = json::parse(v.out)["id"];
        // A create that finished before the kill has replaced it, whole.
        const bool killed = WIFSIGNALED(status);
        EXPECT_TRUE(!killed || now == first_id) << "killed at " << delay_ms << " ms: " << now;
    }
    // The killed creates' directories go with the next create; the sandbox runs on.
    create("lab-snap-k", dir, false);
    for (const auto& e : fs::directory_iterator(kWork))
        EXPECT_EQ(e.path().filename().string().find(".snap-killed.partial-"), std::string::npos)
            << e.path();
    const long n = ticks(logs("lab-snap-k")).back().n;
    EXPECT_TRUE(eventually([&] { return ticks(logs("lab-snap-k")).back().n > n; }));
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-k"}).status, 0);
}

TEST(Snapshot, ASealedSnapshotRestoresWithItsKeyAndIsRefusedOtherwise) {
    const std::string image = make_disk("sealed.img");
    const std::string dir = kWork + "/snap-sealed";
    const std::string key = kWork + "/seal.key", other = kWork + "/other.key";
    fs::remove_all(dir);
    for (const auto& [path, hex] :
         {std::pair{key, std::string(64, 'a')}, std::pair{other, std::string(64, 'b')}}) {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        ASSERT_GE(fd, 0);
        ASSERT_EQ(::write(fd, hex.data(), hex.size()), 64);
        ::close(fd);
    }
    // 80 MiB: a sealed create, verify and restore are each a pass of AES-GCM over guest RAM,
    // in the lab's emulated CPU.
    ASSERT_NO_FATAL_FAILURE(start_counter("lab-snap-s", image, "80"));
    auto c =
        stockade({"snapshot", "create", "lab-snap-s", dir, "--leave-paused", "--seal-key", key});
    ASSERT_EQ(c.status, 0) << c.describe();
    EXPECT_EQ(json::parse(c.out)["sealed"], true) << c.out;
    std::this_thread::sleep_for(500ms);
    const long last = ticks(logs("lab-snap-s")).back().n;
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-s"}).status, 0);
    destroy(image);
    // Every part is sealed: nothing of the guest in clear.
    for (const char* part : {"manifest", "state", "memory", "disk-vda"})
        EXPECT_EQ(lab::read_text(dir + "/" + part).substr(0, 7), "STKSEAL") << part;

    auto v = stockade({"snapshot", "verify", dir});
    EXPECT_EQ(v.status, 1) << v.describe();
    EXPECT_NE(v.err.find("--seal-key"), std::string::npos) << v.err;
    v = stockade({"snapshot", "verify", dir, "--seal-key", other});
    EXPECT_EQ(v.status, 1) << v.describe();
    EXPECT_NE(v.err.find("different key"), std::string::npos) << v.err;
    v = stockade({"snapshot", "verify", dir, "--seal-key", key});
    ASSERT_EQ(v.status, 0) << v.describe();
    EXPECT_EQ(json::parse(v.out)["sealed"], true) << v.out;

    // One bit of the memory flipped: refused, naming the chunk, nothing started.
    const std::string bad = kWork + "/snap-sealed-bad";
    fs::remove_all(bad);
    fs::copy(dir, bad);
    {
        const int fd = ::open((bad + "/memory").c_str(), O_RDWR | O_CLOEXEC);
        ASSERT_GE(fd, 0);
        unsigned char b = 0;
        const off_t at = static_cast<off_t>(fs::file_size(bad + "/memory") / 8);
        ASSERT_EQ(::pread(fd, &b, 1, at), 1);
        b ^= 1;
        ASSERT_EQ(::pwrite(fd, &b, 1, at), 1);
        ::close(fd);
    }
    auto r = stockade({"snapshot", "restore", bad, "-d", "--id", "lab-snap-sb", "--seal-key", key});
    EXPECT_NE(r.status, 0) << r.describe();
    EXPECT_NE(r.err.find("memory: chunk"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("authentication failed"), std::string::npos) << r.err;
    EXPECT_TRUE(gone("lab-snap-sb"));

    // Lazily, without the pass over the memory first (--no-verify-memory): the memory loader
    // finds the flipped bit when it comes to that chunk (touched, or in the background) and
    // the sandbox ends there, with 125 and the chunk named: the guest never runs on without it.
    r = stockade({"snapshot", "restore", bad, "-d", "--id", "lab-snap-sl", "--seal-key", key,
                  "--no-verify-memory"});
    if (r.status == 0) {  // it was ready before the loader came to the chunk
        json state;
        ASSERT_TRUE(eventually(
            [&] {
                state = json::parse(stockade({"inspect", "lab-snap-sl"}).out, nullptr, false);
                return state.is_object() && state.value("state", "") == "stopped";
            },
            120s))
            << state;
        EXPECT_EQ(state["exit_status"], 125) << state;
        r = stockade({"logs", "lab-snap-sl"});
    }
    EXPECT_NE(r.err.find("the snapshot's memory: memory: chunk"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("authentication failed"), std::string::npos) << r.err;
    (void)stockade({"rm", "-f", "lab-snap-sl"});
    fs::remove_all(bad);

    // Restored lazily (after the pass over the memory that authenticates it whole): guest RAM
    // starts empty and stockade-seal's loader, in the sandbox's cgroup, places each chunk.
    r = stockade({"snapshot", "restore", dir, "-d", "--id", "lab-snap-s2", "--seal-key", key});
    ASSERT_EQ(r.status, 0) << r.describe();
    std::vector<Tick> after;
    ASSERT_TRUE(eventually([&] {
        after = ticks(logs("lab-snap-s2"));
        return after.size() >= 3;
    })) << logs("lab-snap-s2");
    EXPECT_EQ(after.front().n, last + 1);
    EXPECT_EQ(after.front().file, "kept");
    // The decrypted memory is the sandbox's own (anonymous) memory, charged to its cgroup
    // leaf, under its limits: once the loader is done, all of the guest's 80 MiB but what the
    // zero page maps.
    std::string stat;
    std::uint64_t anon = 0;
    EXPECT_TRUE(eventually(
        [&] {
            stat = lab::read_text("/sys/fs/cgroup/stockade/lab-snap-s2/memory.stat");
            std::istringstream lines(stat);
            for (std::string name; lines >> name;)
                if (name == "anon")
                    lines >> anon;
                else
                    lines.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
            return anon > 16u << 20;
        },
        120s))
        << stat;
    // The loader ended when every chunk was in place: no stockade-seal is left in the leaf
    // (beside the sandbox process and its vhost workers).
    std::string procs;
    EXPECT_TRUE(eventually(
        [&] {
            procs.clear();
            std::istringstream pids(
                lab::read_text("/sys/fs/cgroup/stockade/lab-snap-s2/cgroup.procs"));
            for (std::string pid; pids >> pid;)
                procs += pid + " " + lab::read_text("/proc/" + pid + "/comm");
            return !procs.empty() && procs.find("stockade-seal") == std::string::npos;
        },
        120s))
        << procs;
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-s2"}).status, 0);
}

// The guest's wall clock to the microsecond: busybox's date has no %N (it prints "%N"), its
// adjtimex prints the time in seconds and microseconds.
constexpr const char* kGuestClock =
    "adjtimex | awk '/tv_sec/ {s = $2} /tv_usec/ {u = $2} END {printf \"%d.%06d\\n\", s, u}'";

// Whether the guest kernel's vmgenid driver is bound to the DSDT's VGEN, and how often it
// reseeded the CRNG for a new VM generation (the kernel's own notice).
constexpr const char* kVmGenIdSeen =
    "echo bound $(ls /sys/bus/acpi/drivers/vmgenid | grep -c '^VMGENCTR:'); "
    "echo reseeded $(dmesg | grep -c 'crng reseeded due to virtual machine fork')";

TEST(Snapshot, ClonesOfAVsockSandboxGoOnWithTheirOwnRandomnessAndTheHostsClockAndDrillsPass) {
    const std::string dir = kWork + "/snap-clones";
    fs::create_directories(kWork);
    fs::remove_all(dir);
    auto r = stockade({"run", "-d", "--id", "lab-snap-c", "--memory", "128", "--", "sh", "-c",
                       "i=0; while true; do i=$((i+1)); echo \"tick $i x\"; sleep 0.2; done"});
    ASSERT_EQ(r.status, 0) << r.describe();
    ASSERT_TRUE(eventually([&] { return ticks(logs("lab-snap-c")).size() >= 5; }))
        << logs("lab-snap-c");
    // Stockade's kernel binds its vmgenid driver to the DSDT's VGEN at boot; it has not
    // reseeded for a new generation yet.
    const auto vmgenid = [](const std::string& id) {
        RunResult seen;
        const bool ran = eventually([&] {
            seen = stockade({"exec", id, "--", "sh", "-c", kVmGenIdSeen});
            return seen.status == 0;
        });
        return ran ? seen.out : "exec failed: " + seen.describe();
    };
    EXPECT_EQ(vmgenid("lab-snap-c"), "bound 1\nreseeded 0\n");
    create("lab-snap-c", dir, false);
    const long at = ticks(logs("lab-snap-c")).back().n;  // the snapshot's, or a little later
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-c"}).status, 0);
    // The snapshot's clock falls behind the host's meanwhile.
    std::this_thread::sleep_for(3s);

    const std::vector<std::string> clones{"lab-snap-c1", "lab-snap-c2"};
    const auto host_now = [] {
        return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    };
    // Each clone's clock, as soon as it answers: a second restore's digest beside it would
    // only slow the lab's emulated CPUs that both share.
    for (const std::string& id : clones) {
        auto restored = stockade({"snapshot", "restore", dir, "-d", "--id", id});
        ASSERT_EQ(restored.status, 0) << restored.describe();
        // At once: `restore -d` returns before the guest's init has reconnected its streams,
        // and the CLI's exec waits for it rather than failing.
        const double before = host_now();
        const RunResult date = stockade({"exec", id, "--", "sh", "-c", kGuestClock});
        const double after_exec = host_now();
        ASSERT_EQ(date.status, 0) << id << ": exec at once after the restore: " << date.describe();
        const double guest = std::stod(date.out);
        std::cout << "[clock] " << id << ": the guest's clock is " << std::fixed
                  << std::setprecision(3) << guest - before << " s from the host's (exec took "
                  << after_exec - before << " s)\n";
        EXPECT_GT(guest, before - 1.0) << id << ": the guest's clock is the host's";
        EXPECT_LT(guest, after_exec + 1.0) << id;
    }
    std::vector<std::string> random;
    for (const std::string& id : clones) {
        std::vector<Tick> after;
        ASSERT_TRUE(eventually([&] {
            after = ticks(logs(id));
            return after.size() >= 5;
        })) << id
            << ": " << logs(id);
        EXPECT_GT(after.front().n, 4) << id << ": the counter goes on from the snapshot";
        EXPECT_LE(after.front().n, at + 1) << id;
        for (std::size_t i = 1; i < after.size(); ++i)
            EXPECT_EQ(after[i].n, after[i - 1].n + 1) << id << ": nothing lost or repeated";

        RunResult bytes;
        ASSERT_TRUE(eventually([&] {
            bytes = stockade({"exec", id, "--", "od", "-An", "-tx1", "-N32", "/dev/urandom"});
            return bytes.status == 0;
        })) << id
            << ": exec after the restore: " << bytes.describe();
        random.push_back(bytes.out);
        // The restore's new generation id reached the kernel (the GED's interrupt, _EVT's
        // Notify), which reseeded its CRNG on its own: once.
        std::string seen;
        EXPECT_TRUE(eventually([&] {
            seen = vmgenid(id);
            return seen == "bound 1\nreseeded 1\n";
        })) << id
            << ": " << seen;
    }
    EXPECT_NE(random[0], random[1]) << "two clones share their randomness: " << random[0];
    for (const std::string& id : clones) {
        ASSERT_EQ(stockade({"rm", "-f", id}).status, 0);
        EXPECT_TRUE(gone(id));
    }

    // create --restore: restored, its vCPUs stopped before their first instruction until
    // `start` (nothing runs, nothing is printed); started, it goes on from the snapshot.
    auto created =
        stockade({"create", "--restore", dir, "--id", "lab-snap-c3", "--no-verify-memory"});
    ASSERT_EQ(created.status, 0) << created.describe();
    const json waiting = json::parse(stockade({"inspect", "lab-snap-c3"}).out, nullptr, false);
    ASSERT_TRUE(waiting.is_object()) << waiting;
    EXPECT_EQ(waiting["state"], "created") << waiting;
    std::this_thread::sleep_for(1500ms);
    EXPECT_TRUE(ticks(logs("lab-snap-c3")).empty()) << "ran before start: " << logs("lab-snap-c3");
    auto pause = stockade({"pause", "lab-snap-c3"});
    EXPECT_NE(pause.status, 0) << "a restore that waits has not run: " << pause.describe();
    auto started = stockade({"start", "lab-snap-c3"});
    ASSERT_EQ(started.status, 0) << started.describe();
    std::vector<Tick> went_on;
    ASSERT_TRUE(eventually([&] {
        went_on = ticks(logs("lab-snap-c3"));
        return went_on.size() >= 3;
    })) << logs("lab-snap-c3");
    EXPECT_GT(went_on.front().n, 4) << "the counter goes on from the snapshot";
    EXPECT_LE(went_on.front().n, at + 1);
    const RunResult exec_after = stockade({"exec", "lab-snap-c3", "--", "true"});
    EXPECT_EQ(exec_after.status, 0) << exec_after.describe();
    // The GED's edge waited in the LAPIC while the vCPUs were parked before their first
    // instruction; the kernel took it once they ran.
    std::string seen_c3;
    EXPECT_TRUE(eventually([&] {
        seen_c3 = vmgenid("lab-snap-c3");
        return seen_c3 == "bound 1\nreseeded 1\n";
    })) << seen_c3;
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-c3"}).status, 0);

    // The drill: restored, checked, reported, removed; its status is the check's.
    const auto no_drill_left = [] {
        for (const auto& e : fs::directory_iterator("/run/stockade"))
            if (e.path().filename().string().starts_with("drill-")) return false;
        return true;
    };
    auto d = stockade({"drill", dir, "--", "sh", "-c", "echo drill-ok; ps | grep -c tick"});
    EXPECT_EQ(d.status, 0) << d.describe();
    json report = json::parse(d.out, nullptr, false);
    ASSERT_TRUE(report.is_object()) << d.describe();
    EXPECT_EQ(report["check"]["passed"], true) << report;
    EXPECT_EQ(report["check"]["status"], 0) << report;
    EXPECT_NE(report["check"]["stdout_tail"].get<std::string>().find("drill-ok"), std::string::npos)
        << report;
    EXPECT_GT(report["restore_ms"].get<long>(), 0) << report;
    EXPECT_GE(report["check"]["time_to_pass_ms"].get<long>(), 0) << report;
    EXPECT_EQ(report["digests_verified"], true) << report;
    EXPECT_EQ(report["removed"], true) << report;
    EXPECT_TRUE(no_drill_left());
    std::cout << "[drill] restore " << report["restore_ms"] << " ms, check passed after "
              << report["check"]["time_to_pass_ms"] << " ms (" << report["check"]["attempts"]
              << " attempts), total " << report["total_ms"] << " ms\n";

    d = stockade({"drill", dir, "--timeout", "3", "--", "sh", "-c", "echo not-yet >&2; exit 3"});
    EXPECT_EQ(d.status, 3) << d.describe();
    report = json::parse(d.out, nullptr, false);
    ASSERT_TRUE(report.is_object()) << d.describe();
    EXPECT_EQ(report["check"]["passed"], false) << report;
    EXPECT_EQ(report["check"]["status"], 3) << report;
    EXPECT_GE(report["check"]["attempts"].get<int>(), 2) << "tried again until the time was up";
    EXPECT_NE(report["check"]["stderr_tail"].get<std::string>().find("not-yet"), std::string::npos)
        << report;
    EXPECT_TRUE(report["check"]["time_to_pass_ms"].is_null()) << report;
    EXPECT_EQ(report["removed"], true) << report;
    EXPECT_TRUE(no_drill_left());
}

// A host process other than the sandbox's supervisor cannot tell a guest's init to connect
// its streams elsewhere: init takes the notice only from a reserved port (root's) and only
// on a CID it did not have before. Neither forged notice makes it connect to the forger.
TEST(Snapshot, AForgedRestoreNoticeIsRefused) {
    auto r = stockade({"run", "-d", "--id", "lab-snap-f", "--memory", "128", "--", "sh", "-c",
                       "i=0; while true; do i=$((i+1)); echo \"tick $i x\"; sleep 0.2; done"});
    ASSERT_EQ(r.status, 0) << r.describe();
    const json state = json::parse(stockade({"inspect", "lab-snap-f"}).out, nullptr, false);
    ASSERT_TRUE(state.is_object() && state["guest_cid"].is_number()) << state;
    const auto cid = state["guest_cid"].get<std::uint32_t>();

    // The forger's own listener, where it asks init to connect.
    const int trap = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_vm at{};
    at.svm_family = AF_VSOCK;
    at.svm_cid = VMADDR_CID_ANY;
    at.svm_port = VMADDR_PORT_ANY;
    socklen_t len = sizeof at;
    ASSERT_EQ(::bind(trap, reinterpret_cast<sockaddr*>(&at), len), 0);
    ASSERT_EQ(::listen(trap, 8), 0);
    ASSERT_EQ(::getsockname(trap, reinterpret_cast<sockaddr*>(&at), &len), 0);
    guest_control::Message m{guest_control::MessageType::restored, 0, std::nullopt};
    m.restored = guest_control::Restored{at.svm_port, 1, 0,
                                         std::string(guest_control::kRestoredEntropy, 'x')};
    const std::string notice = guest_control::encode(m);
    for (const unsigned from : {0u /* any: 1024 and up */, 1000u /* reserved, same CID */}) {
        const int s = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_vm me{};
        me.svm_family = AF_VSOCK;
        me.svm_cid = VMADDR_CID_ANY;
        me.svm_port = from == 0 ? VMADDR_PORT_ANY : from;
        ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&me), sizeof me), 0) << from;
        sockaddr_vm init{};
        init.svm_family = AF_VSOCK;
        init.svm_cid = cid;
        init.svm_port = guest_control::kRestoredPort;
        ASSERT_EQ(::connect(s, reinterpret_cast<sockaddr*>(&init), sizeof init), 0)
            << std::strerror(errno);
        // Init may refuse the connection (and close it) before the notice is written: the
        // write then fails, which is as good. What counts is that init never connects to the
        // forger, below.
        const ssize_t sent = ::send(s, notice.data(), notice.size(), MSG_NOSIGNAL);
        EXPECT_TRUE(sent == static_cast<ssize_t>(notice.size()) ||
                    (sent < 0 && (errno == EPIPE || errno == ECONNRESET || errno == ENOTCONN)))
            << "from port " << from << ": " << std::strerror(errno);
        pollfd p{trap, POLLIN, 0};
        EXPECT_EQ(::poll(&p, 1, 3000), 0)
            << "init connected to the forger (from port " << from << ")";
        ::close(s);
    }
    ::close(trap);
    // Its streams are where they were: output goes on and exec works.
    const std::size_t had = ticks(logs("lab-snap-f")).size();
    EXPECT_TRUE(eventually([&] { return ticks(logs("lab-snap-f")).size() > had + 2; }));
    EXPECT_EQ(stockade({"exec", "lab-snap-f", "--", "true"}).status, 0);
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-f"}).status, 0);
}

TEST(Snapshot, AVhostNetSandboxIsRestoredOnAFreshTapAndReachesTheHost) {
    const std::string dir = kWork + "/snap-vhost-net";
    const std::string bridge = "stkbr-labsnap";
    fs::create_directories(kWork);
    fs::remove_all(dir);
    const auto sh = [](const std::string& command) {
        return lab::run_process({"/bin/sh", "-c", command});
    };
    sh("ip link del " + bridge + " 2>/dev/null");
    // The host's presence on the sandbox's VLAN 78 is the bridge's own port, untagged.
    ASSERT_EQ(sh("ip link add " + bridge + " type bridge vlan_filtering 1 && bridge vlan add dev " +
                 bridge + " vid 78 pvid untagged self && ip addr add 169.254.79.1/24 dev " +
                 bridge + " && ip link set " + bridge + " up")
                  .status,
              0);
    const std::string net = "bridge=" + bridge + ",vlan=78,addr=169.254.79.2/24";
    auto r = stockade({"run", "-d", "--id", "lab-snap-n", "--memory", "128", "--stats", "--net",
                       net, "--", "sh", "-c", "while true; do echo x; sleep 0.2; done"});
    ASSERT_EQ(r.status, 0) << r.describe();
    const std::vector<std::string> ping{"ping", "-c", "1", "-W", "3", "169.254.79.1"};
    const auto pings = [&](const std::string& id) {
        std::vector<std::string> args{"exec", id, "--"};
        args.insert(args.end(), ping.begin(), ping.end());
        RunResult p;
        const bool ok = eventually([&] {
            p = stockade(args);
            return p.status == 0;
        });
        EXPECT_TRUE(ok) << id << ": " << p.describe();
        return ok;
    };
    ASSERT_TRUE(pings("lab-snap-n"));
    create("lab-snap-n", dir, false);
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-n"}).status, 0);
    EXPECT_EQ(sh("ip -o link show master " + bridge).out, "") << "its tap went with it";

    auto restored = stockade({"snapshot", "restore", dir, "-d", "--id", "lab-snap-n2"});
    ASSERT_EQ(restored.status, 0) << restored.describe();
    EXPECT_NE(sh("ip -o link show master " + bridge).out, "") << "a fresh tap on the bridge";
    EXPECT_TRUE(pings("lab-snap-n2")) << "the restored guest reaches the host over vhost-net";
    ASSERT_EQ(stockade({"rm", "-f", "lab-snap-n2"}).status, 0);
    EXPECT_EQ(sh("ip -o link show master " + bridge).out, "");
    sh("ip link del " + bridge);
}

}  // namespace
}  // namespace stockade
