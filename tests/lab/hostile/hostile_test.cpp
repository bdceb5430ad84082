// The hostile guest: a root workload (stockade-hostile, hostile.cpp) attacks one host
// interface per case while the test watches the runner from outside. For every case:
//   - the supervisor and the sandbox process are alive while the storm runs;
//   - the guest still answers (its heartbeat lines keep coming through the storm);
//   - what the sandbox process holds beside guest RAM grows by at most kMaxGrowthMib;
//   - stockade's stderr has at most kMaxWarnings warning lines;
//   - a SIGTERM to `stockade run` in the middle of the storm ends the run within
//     kMaxStopSeconds, with the documented status (143, "stopped by a signal").
// Each case prints its figures ("hostile CASE: ...") and records them as test properties.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <regex>
#include <sstream>
#include <thread>

#include "lab/support/memory.hpp"
#include "lab/support/process.hpp"

namespace stockade {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr double kMaxGrowthMib = 1.0;  // beside guest RAM, over the storm
constexpr int kMaxWarnings = 50;
constexpr double kMaxStopSeconds = 1.0;
constexpr double kHungAfterSeconds = 10.0;  // then SIGKILL, and the case counts as hung
constexpr std::uint64_t kGuestMib = 256;

double since(Clock::time_point t) {
    return std::chrono::duration<double>(Clock::now() - t).count();
}

// A static busybox with its applets and /bin/stockade-hostile, as a read-only ext4 root
// disk shared by every case. Removed when the tests end.
const fs::path& work_dir() {
    static const fs::path dir =
        fs::temp_directory_path() / ("stockade-hostile-" + std::to_string(::getpid()));
    return dir;
}
struct RemoveWorkDir : ::testing::Environment {
    void TearDown() override { fs::remove_all(work_dir()); }
};
[[maybe_unused]] const auto* const kCleanup =
    ::testing::AddGlobalTestEnvironment(new RemoveWorkDir);

const std::string& root_disk() {
    static const std::string image = [] {
        const fs::path tree = work_dir() / "root.d";
        fs::remove_all(tree);
        for (const char* d : {"bin", "etc", "proc", "sys", "dev", "tmp"})
            fs::create_directories(tree / d);
        fs::copy_file("/bin/busybox", tree / "bin/busybox");
        auto list = lab::run_process({"/bin/busybox", "--list"});
        EXPECT_EQ(list.status, 0) << list.describe();
        std::istringstream in(list.out);
        for (std::string applet; std::getline(in, applet);)
            if (!applet.empty() && applet != "busybox")
                fs::create_symlink("busybox", tree / "bin" / applet);
        fs::copy_file(STOCKADE_HOSTILE, tree / "bin/stockade-hostile");
        const std::string path = (work_dir() / "root.img").string();
        auto r = lab::run_process({lab::build_dir() + "/guest/stockade-mkimage", "rootfs", "-o",
                                   path, "--from", tree.string(), "--size-mib", "32"});
        EXPECT_EQ(r.status, 0) << r.describe();
        return path;
    }();
    return image;
}

struct Storm {
    std::vector<std::string> options;  // stockade run's, before "--"
    std::vector<std::string> hostile;  // the case and its argument
    bool stall_stdout = false;         // stop reading stdout once start_mark showed
    std::string start_mark = "storm-start";
    // SIGTERM goes term_delay seconds after term_mark shows on stdout (after start_mark
    // when empty), or storm_limit seconds after start_mark at the latest.
    std::string term_mark = "storm-done";
    double term_delay = 1.0;
    double storm_limit = 60.0;
    // When set: the sandbox's event loop (its main thread) is timed on the host between
    // these two marks on stdout.
    std::string cpu_from, cpu_to;
};

struct Figures {
    bool started = false;
    bool term_mark_seen = false;
    bool supervisor_alive = false, sandbox_alive = false;  // just before the SIGTERM
    double baseline_mib = -1, peak_mib = -1;  // beside guest RAM: at start, highest in storm
    double stop_seconds = -1;                 // SIGTERM to exit; -1: hung (killed)
    double loop_cpu_seconds = -1, loop_window_seconds = -1;  // between cpu_from and cpu_to
    double last_output_seconds = -1;  // when stdout last grew, after start_mark
    double storm_seconds = -1;        // start_mark to the SIGTERM
    int status = -1;
    std::string out, err;
    [[nodiscard]] double growth_mib() const { return peak_mib - baseline_mib; }
    [[nodiscard]] int warnings() const {
        int n = 0;
        for (std::size_t at = err.find("warning: "); at != std::string::npos;
             at = err.find("warning: ", at + 1))
            ++n;
        return n;
    }
    // Heartbeat lines after the storm started.
    [[nodiscard]] int ticks() const {
        const std::size_t start = out.find("storm-start");
        int n = 0;
        for (std::size_t at = out.find("tick ", start == std::string::npos ? 0 : start);
             at != std::string::npos; at = out.find("tick ", at + 1))
            ++n;
        return n;
    }
    [[nodiscard]] std::string describe() const {
        std::ostringstream s;
        s.precision(3);
        s << "status " << status << "; stdout last grew " << last_output_seconds
          << " s into a storm of " << storm_seconds << " s\n--- stdout (last 2000) ---\n"
          << (out.size() > 2000 ? out.substr(out.size() - 2000) : out)
          << "\n--- stderr (last 3000) ---\n"
          << (err.size() > 3000 ? err.substr(err.size() - 3000) : err);
        return s.str();
    }
};

double overhead_mib(pid_t supervisor) {
    const pid_t sandbox = lab::only_child_of(supervisor);
    if (sandbox <= 0) return -1;
    const lab::ProcessMemory m = lab::process_memory(sandbox, kGuestMib << 20);
    return m.found ? m.overhead_mib() : -1;
}

// CPU time (user + system) of the sandbox process's main thread, its event loop.
double loop_cpu_seconds(pid_t supervisor) {
    const pid_t sandbox = lab::only_child_of(supervisor);
    if (sandbox <= 0) return -1;
    std::ifstream in("/proc/" + std::to_string(sandbox) + "/task/" + std::to_string(sandbox) +
                     "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::size_t paren = stat.rfind(')');
    if (paren == std::string::npos) return -1;
    std::istringstream fields(stat.substr(paren + 2));
    std::string field;
    double ticks = 0;
    for (int i = 0; i <= 12 && fields >> field; ++i)
        if (i == 11 || i == 12) ticks += std::stod(field);  // utime, stime (fields 14 and 15)
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// A case on a sandbox with virtio-rng (the device most cases take from the guest's driver).
Storm rng_storm(std::vector<std::string> hostile) {
    Storm s;
    s.options = {"--rng"};
    s.hostile = std::move(hostile);
    return s;
}

Figures run_storm(const Storm& s) {
    std::vector<std::string> argv{lab::build_dir() + "/runner/stockade",
                                  "run",
                                  "--memory",
                                  std::to_string(kGuestMib),
                                  "--rootfs",
                                  root_disk() + ",ro"};
    argv.insert(argv.end(), s.options.begin(), s.options.end());
    argv.insert(argv.end(), {"--", "/bin/stockade-hostile"});
    argv.insert(argv.end(), s.hostile.begin(), s.hostile.end());

    int out[2], err[2];
    if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) return {};
    const pid_t pid = ::fork();
    if (pid == 0) {
        // The whole run on one lab CPU: the lab's emulated SVM now and then breaks a world
        // switch into a guest while both lab CPUs are at work (a triple fault at a user
        // instruction of this storm, or a guest that stops running, 1 in about 20 port-abuse
        // runs), and never did with the runner on one CPU (docs/lab-notes.md). What is tested
        // is stockade's, not the lab's; a real host has no such fault.
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(0, &one);
        (void)::sched_setaffinity(0, sizeof one, &one);
        ::dup2(::open("/dev/null", O_RDONLY), 0);
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        std::vector<char*> args;
        for (const auto& a : argv)
            args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(out[1]);
    ::close(err[1]);
    // The smallest pipe (one page): a stalled reader blocks the writer after 4 KiB, even at
    // the lab's serial speed (about 10 KB/s).
    if (s.stall_stdout) (void)::fcntl(out[0], F_SETPIPE_SZ, 4096);

    Figures f;
    const auto begin = Clock::now();
    Clock::time_point started, term_at, termed;
    bool term_planned = false, sent = false, exited = false;
    double last_sample = -1;
    double cpu_at = -1;  // the event loop's CPU time when cpu_from showed
    Clock::time_point cpu_since;
    pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
    auto drain = [&](int timeout_ms) {
        if (::poll(fds, 2, timeout_ms) <= 0) return;
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
            char buf[65536];
            const ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
            if (n <= 0) {
                fds[i].fd = -1;
            } else {
                (i == 0 ? f.out : f.err).append(buf, static_cast<std::size_t>(n));
                if (i == 0 && f.started && !sent) f.last_output_seconds = since(started);
            }
        }
    };
    while (!exited) {
        drain(20);
        if (!f.started && f.out.find(s.start_mark) != std::string::npos) {
            f.started = true;
            started = Clock::now();
            f.baseline_mib = f.peak_mib = overhead_mib(pid);
            last_sample = 0;
            // A stalled reader: stdout is never read again (the pipe fills and stays full).
            if (s.stall_stdout) fds[0].fd = -1;
        }
        if (f.started && !term_planned) {
            const bool mark = s.term_mark.empty() || f.out.find(s.term_mark) != std::string::npos;
            if (mark || since(started) > s.storm_limit) {
                f.term_mark_seen = mark;
                term_planned = true;
                term_at = Clock::now() +
                          std::chrono::milliseconds(static_cast<long>(s.term_delay * 1000));
            }
        }
        if (!s.cpu_from.empty() && f.loop_window_seconds < 0) {
            if (cpu_at < 0 && f.out.find(s.cpu_from) != std::string::npos) {
                cpu_at = loop_cpu_seconds(pid);
                cpu_since = Clock::now();
            }
            if (cpu_at >= 0 && f.out.find(s.cpu_to) != std::string::npos) {
                f.loop_cpu_seconds = loop_cpu_seconds(pid) - cpu_at;
                f.loop_window_seconds = since(cpu_since);
            }
        }
        if (f.started && !sent && since(started) - last_sample >= 0.25) {
            last_sample = since(started);
            f.peak_mib = std::max(f.peak_mib, overhead_mib(pid));
        }
        if (term_planned && !sent && Clock::now() >= term_at) {
            f.peak_mib = std::max(f.peak_mib, overhead_mib(pid));
            f.supervisor_alive = ::kill(pid, 0) == 0;
            f.sandbox_alive = lab::only_child_of(pid) > 0;
            ::kill(pid, SIGTERM);
            termed = Clock::now();
            f.storm_seconds = since(started);
            sent = true;
        }
        int st = 0;
        if (::waitpid(pid, &st, WNOHANG) == pid) {
            exited = true;
            if (sent) f.stop_seconds = since(termed);
            f.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            break;
        }
        const bool hung = sent && since(termed) > kHungAfterSeconds;
        if (hung || (!f.started && since(begin) > 120)) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &st, 0);
            f.status = -1;
            break;
        }
    }
    // What the run wrote last (a stalled stdout is left unread).
    for (const auto until = Clock::now() + std::chrono::seconds(2);
         (fds[0].fd >= 0 || fds[1].fd >= 0) && Clock::now() < until;)
        drain(50);
    ::close(out[0]);
    ::close(err[0]);
    return f;
}

long number_after(const std::string& text, const std::string& word) {
    std::smatch m;
    if (std::regex_search(text, m, std::regex(word + " (\\d+)"))) return std::stol(m[1]);
    return -1;
}

std::string latency_text(const Figures& f) {
    if (f.stop_seconds < 0)
        return "hung (killed after " + std::to_string(kHungAfterSeconds) + " s)";
    std::ostringstream s;
    s.precision(3);
    s << f.stop_seconds << " s";
    return s.str();
}

// Prints and records the figures, then asserts what every case must hold.
void expect_contained(const std::string& name, const Figures& f, bool guest_answers = true) {
    std::ostringstream line;
    line.precision(3);
    line << "hostile " << name << ": overhead " << f.baseline_mib << " MiB at start, growth "
         << f.growth_mib() << " MiB, warnings " << f.warnings() << ", ticks " << f.ticks()
         << ", stop " << latency_text(f) << ", status " << f.status << ", first round "
         << number_after(f.out, "storm-done");
    std::cout << line.str() << std::endl;
    ::testing::Test::RecordProperty("growth_kib", static_cast<int>(f.growth_mib() * 1024));
    ::testing::Test::RecordProperty("warnings", f.warnings());
    ::testing::Test::RecordProperty("stop_ms", static_cast<int>(f.stop_seconds * 1000));

    ASSERT_TRUE(f.started) << "the case never started\n" << f.describe();
    EXPECT_TRUE(f.supervisor_alive) << f.describe();
    EXPECT_TRUE(f.sandbox_alive) << f.describe();
    if (guest_answers) {
        EXPECT_TRUE(f.term_mark_seen) << "the guest never finished its first round\n"
                                      << f.describe();
        EXPECT_GE(f.ticks(), 4) << "the guest's heartbeat stopped in the storm\n" << f.describe();
    }
    EXPECT_GE(f.baseline_mib, 0) << "no guest RAM mapping in the sandbox process";
    EXPECT_LE(f.growth_mib(), kMaxGrowthMib) << f.describe();
    EXPECT_LE(f.warnings(), kMaxWarnings) << f.describe();
    EXPECT_GE(f.stop_seconds, 0) << "SIGTERM did not end the run in " << kHungAfterSeconds << " s\n"
                                 << f.describe();
    EXPECT_LT(f.stop_seconds, kMaxStopSeconds) << f.describe();
    EXPECT_EQ(f.status, 143) << f.describe();
    EXPECT_NE(f.err.find("stopped by a signal"), std::string::npos) << f.describe();
}

// 1. The UART in loopback mode, its transmit register written without reading: the
// receive FIFO of a real 16550 holds 16 bytes.
TEST(Hostile, UartLoopback) {
    Storm s;
    s.hostile = {"uart-loopback", "8"};
    s.term_mark = "held";
    const Figures f = run_storm(s);
    const long written = number_after(f.out, "storm-done"), held = number_after(f.out, "held");
    std::cout << "hostile uart-loopback: " << written << " bytes written, " << held
              << " read back (at most 4096 tried)" << std::endl;
    RecordProperty("written", static_cast<int>(written));
    RecordProperty("held", static_cast<int>(held));
    expect_contained("uart-loopback", f);
    EXPECT_GT(written, 16) << f.describe();
    EXPECT_LE(held, 16) << "the loopback FIFO holds at most 16 bytes\n" << f.describe();
}

// 2. The workload writes without end to a stdout nobody reads.
TEST(Hostile, StdoutFloodSerialWithAStalledReader) {
    Storm s;
    s.options = {"--stdio", "serial"};
    s.hostile = {"stdout-flood"};
    s.stall_stdout = true;
    s.start_mark = "flood-start";
    s.term_mark.clear();
    s.term_delay = 3;
    expect_contained("stdout-flood serial", run_storm(s), false);
}

TEST(Hostile, StdoutFloodVsockWithAStalledReader) {
    Storm s;
    s.hostile = {"stdout-flood"};
    s.stall_stdout = true;
    s.start_mark = "flood-start";
    s.term_mark.clear();
    s.term_delay = 3;
    expect_contained("stdout-flood vsock", run_storm(s), false);
}

// 3. A userspace virtio-rng driver whose avail index always runs a full queue ahead of
// the used index: the queue is never empty. In the lab (QEMU TCG, the guest nested under
// it) the guest cannot keep 256 chains ahead of the host's event loop: the loop catches
// up and drains the queue, so this race is not won there and the case passes even
// without a serve budget; on real hardware it is the starvation case.
TEST(Hostile, RingStorm) {
    Storm s;
    s.options = {"--rng", "--stats"};
    s.hostile = {"ring-storm", "3"};
    const Figures f = run_storm(s);
    expect_contained("ring-storm", f);
    EXPECT_GT(number_after(f.out, "storm-done"), 0) << "the device served no chain\n"
                                                    << f.describe();
}

// 4. Configuration mechanism #1: every bus 0 function at every width and offset, garbage
// written to all but the root disk and the stdio device.
TEST(Hostile, Conf1Sweep) {
    expect_contained("conf1-sweep", run_storm(rng_storm({"conf1-sweep"})));
}

// virtio-rng's 64-bit BAR placed past 2^64, on the root disk's BAR, the local APIC, the
// IO-APIC, RAM and 0: 1500 rounds of 7 places (10500 placements).
TEST(Hostile, BarAbuse) {
    expect_contained("bar-abuse", run_storm(rng_storm({"bar-abuse", "1500"})));
}

// 5. FEATURES_OK with a feature never offered, 10000 times, activations and resets between.
TEST(Hostile, FeaturesStorm) {
    expect_contained("features-storm", run_storm(rng_storm({"features-storm", "10000"})));
}

// 7. What a driver may get wrong about a queue, 14 ways, each after a reset and with the
// MSI-X table and PBA written with garbage: queue sizes 0, 100 and 1024; rings past 2^52,
// wrapping 2^64 and on the local APIC; a looping chain; a next past the queue; buffers
// outside RAM and wrapping 2^64; the avail index 1000 ahead; indirect tables of 40 bytes,
// nested, and looping. Each must be caught (the device sets NEEDS_RESET), none may reach
// the host's memory or stop another device.
TEST(Hostile, QueueAbuse) {
    const Figures f = run_storm(rng_storm({"queue-abuse", "20"}));
    const long caught = number_after(f.out, "flagged"), tried = number_after(f.out, "of");
    std::cout << "hostile queue-abuse: " << caught << " of " << tried
              << " attacks answered with NEEDS_RESET" << std::endl;
    RecordProperty("flagged", static_cast<int>(caught));
    expect_contained("queue-abuse", f);
    EXPECT_EQ(tried, 20 * 14) << f.describe();
    EXPECT_EQ(caught, tried) << "an attack the device did not catch\n" << f.describe();
}

// 8. Block requests that ask for what is not there, on a read-only 1 MiB data disk whose
// guest driver is unbound: past the end, straddling it, sector * 512 past 2^64, sector
// 2^64 - 1, a segment over size_max, a length not a multiple of 512, a write: each answered
// VIRTIO_BLK_S_IOERR; 255 segments (over seg_max) and a request with no status byte: each
// a driver error (NEEDS_RESET). The image is unchanged.
TEST(Hostile, BlkAbuse) {
    (void)root_disk();  // makes the work directory
    const std::string image = (work_dir() / "data.img").string();
    {
        std::ofstream out(image, std::ios::binary);
        for (int i = 0; i < (1 << 20); ++i)
            out.put(static_cast<char>(i * 7));
    }
    auto digest = [&] { return lab::run_process({"/usr/bin/sha256sum", image}).out; };
    const std::string before = digest();
    Storm s;
    s.options = {"--disk", image + ",ro"};
    s.hostile = {"blk-abuse", "20"};
    const Figures f = run_storm(s);
    const long ioerr = number_after(f.out, "blk-ioerr"), reset = number_after(f.out, "blk-reset"),
               wrong = number_after(f.out, "blk-wrong");
    std::cout << "hostile blk-abuse: " << ioerr << " answered IOERR, " << reset << " NEEDS_RESET, "
              << wrong << " otherwise (of 20 x 9)" << std::endl;
    RecordProperty("ioerr", static_cast<int>(ioerr));
    expect_contained("blk-abuse", f);
    EXPECT_EQ(ioerr, 20 * 7) << f.describe();
    EXPECT_EQ(reset, 20 * 2) << f.describe();
    EXPECT_EQ(wrong, 0) << f.describe();
    EXPECT_EQ(digest(), before) << "the read-only image changed";
}

// 9. Port I/O and MMIO of odd sizes and straddling device ends, and the agent port at every
// width with values without the magic, with events no runner knows and "ready" again and
// again (hostile.cpp, port_abuse): the run goes on, and nothing of it is a stop.
TEST(Hostile, PortAbuse) {
    expect_contained("port-abuse", run_storm(rng_storm({"port-abuse", "3"})));
}

// 10. vsock connections to the host's stdio port as fast as the guest makes them, 512 held
// at a time, silent or with garbage or unknown stream bytes: the relay keeps at most 16
// unidentified (runner/stdio/stdio_relay.cpp), the workload's own stdio goes on.
TEST(Hostile, VsockFlood) {
    Storm s;
    s.hostile = {"vsock-flood", "5"};
    const Figures f = run_storm(s);
    const long made = number_after(f.out, "vsock made"), refused = number_after(f.out, "refused");
    std::cout << "hostile vsock-flood: " << made << " connections made, " << refused
              << " refused in 5 s" << std::endl;
    RecordProperty("made", static_cast<int>(made));
    expect_contained("vsock-flood", f);
    EXPECT_GT(made, 16) << f.describe();
}

// A block device whose every request takes kSlowDiskMs: the device mapper's delay target
// over the lab's /dev/ram1 (brd), removed when the test ends.
constexpr int kSlowDiskMs = 300;
constexpr const char* kSlowDiskName = "stockade-hostile-slow";

struct SlowDisk {
    std::string path;
    SlowDisk() {
        const std::string sectors = lab::read_text("/sys/block/ram1/size");
        auto made = lab::run_process({"/usr/sbin/dmsetup", "create", kSlowDiskName, "--noudevsync",
                                      "--table",
                                      "0 " + std::to_string(std::stoul(sectors)) +
                                          " delay /dev/ram1 0 " + std::to_string(kSlowDiskMs)});
        EXPECT_EQ(made.status, 0) << made.describe();
        // devtmpfs makes /dev/dm-N; its name is in sysfs.
        for (const auto& e : fs::directory_iterator("/sys/block")) {
            const std::string name = e.path().filename().string();
            if (name.starts_with("dm-") &&
                lab::read_text(e.path().string() + "/dm/name").starts_with(kSlowDiskName))
                path = "/dev/" + name;
        }
        EXPECT_FALSE(path.empty()) << "no /dev/dm-N for " << kSlowDiskName;
    }
    ~SlowDisk() {
        (void)lab::run_process({"/usr/sbin/dmsetup", "remove", "--noudevsync", kSlowDiskName});
    }
};

// 6. A disk on slow storage kept busy (every request takes 300 ms, 8 readers keep it
// queued): it has its own thread, so virtio-rng, on the event loop, answers as on an idle
// host, and a SIGTERM ends the run within the bound (the disk's thread ends its turn after
// the request in progress). Served on the event loop, as before, an rng read waited for the
// disk request in progress (measured with 200 ms requests: slowest read 201 ms, against
// 10 ms on the disk's own thread).
TEST(Hostile, SlowDisk) {
    const SlowDisk disk;
    ASSERT_FALSE(disk.path.empty());
    Storm s;
    s.options = {"--rng", "--disk", disk.path + ",ro", "--stats"};
    s.hostile = {"slow-disk", "8"};
    s.term_delay = 0.5;
    const Figures f = run_storm(s);
    const long rng_max = number_after(f.out, "rng-ms");
    std::cout << "hostile slow-disk: slowest of 20 rng reads " << rng_max
              << " ms with 8 requests of " << kSlowDiskMs << " ms always queued on the disk"
              << std::endl;
    RecordProperty("rng_max_ms", static_cast<int>(rng_max));
    expect_contained("slow-disk", f);
    ASSERT_GE(rng_max, 0) << f.describe();
    EXPECT_LT(rng_max, kSlowDiskMs) << "virtio-rng waited for the disk\n" << f.describe();
    // The storm did reach the disk: --stats counts its reads.
    EXPECT_GT(number_after(f.err, "stats: disk vdb:"), 8) << f.describe();
}

// A tap of the test's own (--net tap=, left as it is) and frames sent into it from the lab
// host through a packet socket, one every 500 us, broadcast, until the test ends.
constexpr const char* kFloodTap = "sthz0";

struct FramesIntoATap {
    std::atomic<bool> stop{false};
    std::atomic<long> sent{0};
    std::thread sender;
    FramesIntoATap() {
        auto made = lab::run_process({"/bin/sh", "-c",
                                      std::string("ip tuntap add ") + kFloodTap +
                                          " mode tap && ip link set " + kFloodTap + " up"});
        EXPECT_EQ(made.status, 0) << made.describe();
        const int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        EXPECT_GE(fd, 0) << std::strerror(errno);
        sockaddr_ll to{};
        to.sll_family = AF_PACKET;
        to.sll_ifindex = static_cast<int>(::if_nametoindex(kFloodTap));
        to.sll_halen = 6;
        std::memset(to.sll_addr, 0xff, 6);
        sender = std::thread([this, fd, to] {
            std::array<unsigned char, 98> frame{};
            std::memset(frame.data(), 0xff, 6);                                 // broadcast
            const unsigned char src[6] = {0x02, 0x00, 0x00, 0x00, 0x5a, 0x01};  // the host's
            std::memcpy(frame.data() + 6, src, 6);
            frame[12] = 0x88;  // a local experimental EtherType: nothing answers it
            frame[13] = 0xb5;
            while (!stop) {
                if (::sendto(fd, frame.data(), frame.size(), 0,
                             reinterpret_cast<const sockaddr*>(&to), sizeof to) > 0)
                    ++sent;
                ::usleep(500);
            }
            ::close(fd);
        });
    }
    ~FramesIntoATap() {
        stop = true;
        sender.join();
        (void)lab::run_process(
            {"/bin/sh", "-c", std::string("ip tuntap del ") + kFloodTap + " mode tap"});
    }
};

// 13. Receive buffers of zero bytes on the userspace datapath while frames keep arriving
// (hostile.cpp, zero_rx). With mergeable buffers such a chain can never take a frame: before
// the fix each was kept until the frame fitted, so re-posting them grew the host without
// end; now the first one is a driver error (NEEDS_RESET), every round. And while the device
// stays broken with frames waiting in the tap, the event loop must not spin on the tap (it
// is level-triggered): timed on the host over the guest's 2 s hold. Without mergeable
// buffers each frame goes back on one chain, unwritten, and is dropped.
TEST(Hostile, ZeroLengthReceiveBuffers) {
    FramesIntoATap frames;
    Storm s;
    s.options = {"--net", std::string("tap=") + kFloodTap + ",vhost=off,mac=02:00:00:00:5a:02",
                 "--stats"};
    s.hostile = {"zero-rx", "10"};
    s.cpu_from = "broken-hold";
    s.cpu_to = "broken-end";
    const Figures f = run_storm(s);
    const long caught = number_after(f.out, "flagged"), returned = number_after(f.out, "returned");
    std::cout << "hostile zero-rx: " << caught << " of 10 rounds answered with NEEDS_RESET, "
              << returned << " zero-byte chains given back; event loop " << f.loop_cpu_seconds
              << " s of CPU in the " << f.loop_window_seconds << " s the device stayed broken; "
              << frames.sent << " frames sent" << std::endl;
    RecordProperty("flagged", static_cast<int>(caught));
    RecordProperty("loop_cpu_ms_broken", static_cast<int>(f.loop_cpu_seconds * 1000));
    expect_contained("zero-rx", f);
    EXPECT_EQ(caught, 10) << f.describe();
    EXPECT_GT(returned, 0) << "no frame reached the guest\n" << f.describe();
    ASSERT_GT(f.loop_window_seconds, 1.0) << f.describe();
    EXPECT_LT(f.loop_cpu_seconds, 0.2 * f.loop_window_seconds)
        << "the event loop spun while the device was broken\n"
        << f.describe();
}

// 14. virtio-net's control queue on a device with two queue pairs (vhost-net's workers
// behind them): commands out of range, unknown, short and long, 50 switches between one pair
// and two (each detaches or attaches a tap queue under a running vhost worker), and a command
// with no room for its ack (NEEDS_RESET), 10 rounds. Every answer as the spec says, nothing
// else of the sandbox disturbed.
TEST(Hostile, NetControlQueue) {
    Storm s = rng_storm({"net-control", "10"});
    s.options.insert(s.options.end(), {"--net", "queues=2,vhost=on", "--stats"});
    const Figures f = run_storm(s);
    const long wrong = number_after(f.out, "ctrl-wrong"),
               answered = number_after(f.out, "storm-done");
    std::cout << "hostile net-control: " << answered << " commands, " << wrong
              << " answered otherwise than the spec says" << std::endl;
    expect_contained("net-control", f);
    EXPECT_EQ(wrong, 0) << f.describe();
    EXPECT_EQ(answered, 10 * 60) << f.describe();
    for (const char* line : {"ctrl pairs-all 0", "ctrl pairs-0 1", "ctrl pairs-65535 1",
                             "ctrl two-kib 1", "ctrl no-room-for-ack -1"})
        EXPECT_NE(f.out.find(line), std::string::npos) << line << "\n" << f.describe();
}

}  // namespace
}  // namespace stockade
