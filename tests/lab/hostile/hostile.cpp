// stockade-hostile: a workload that attacks one host interface per case, run as root in a
// stockade guest by tests/lab/hostile (hostile_test.cpp). Static, like stockade-init: it runs
// from a busybox root disk with nothing else in it.
//
// Every case prints, each on its own line and flushed at once:
//   storm-start          once the case is set up and the storm begins
//   tick N               every 250 ms, from a child process, while the storm runs
//                        (the guest still answers)
//   storm-done COUNT     after the first phase (a count of operations or a time)
//   held K               (uart-loopback) bytes the loopback FIFO gave back, at most 4096
//   rng-ms MAX MEDIAN    (slow-disk) the slowest and the median of 20 reads of /dev/hwrng
//   flagged F of A       (queue-abuse) attacks the device answered with NEEDS_RESET
//   blk-ioerr K, blk-reset K, blk-wrong K   (blk-abuse) requests answered as expected
//                        (VIRTIO_BLK_S_IOERR, NEEDS_RESET) and otherwise
//   vsock made M refused R   (vsock-flood) connections to the host's stdio port
//   broken-hold, broken-end, flagged F of A, returned N   (zero-rx) see zero_rx
// and then storms on until it is killed, so a stop always meets a storm in progress.
//
//   stockade-hostile uart-loopback SECONDS
//   stockade-hostile stdout-flood
//   stockade-hostile ring-storm SECONDS
//   stockade-hostile features-storm COUNT
//   stockade-hostile conf1-sweep
//   stockade-hostile bar-abuse ROUNDS
//   stockade-hostile slow-disk READERS
//   stockade-hostile queue-abuse ROUNDS
//   stockade-hostile blk-abuse ROUNDS
//   stockade-hostile port-abuse ROUNDS
//   stockade-hostile vsock-flood SECONDS
//   stockade-hostile zero-rx ROUNDS
//   stockade-hostile net-control ROUNDS
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/io.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "stockade-hostile: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
}

__attribute__((format(printf, 1, 2))) void say(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    std::vprintf(fmt, ap);
    va_end(ap);
    std::fflush(stdout);
}

double now() {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// A child that prints "tick N" every 250 ms: while it gets through, the guest answers.
void start_heartbeat() {
    const pid_t parent = ::getpid();
    if (::fork() != 0) return;
    for (unsigned n = 0;; ++n) {
        if (::getppid() != parent) ::_exit(0);
        say("tick %u\n", n);
        ::usleep(250'000);
    }
}

// ---- port I/O -------------------------------------------------------------------------

void need_ports(unsigned from, unsigned count) {
    if (::ioperm(from, count, 1) != 0) die("ioperm");
}

// ---- the UART in loopback: every byte written to THR lands in the receive FIFO ----------

constexpr unsigned kCom1 = 0x3f8;

int uart_loopback(double seconds) {
    need_ports(kCom1, 8);
    // No UART interrupts: the guest's own 8250 driver must not drain the FIFO for us. (Its
    // console writes restore IER from the register, so it stays 0.)
    ::outb(0, kCom1 + 1);
    ::outb(static_cast<unsigned char>(::inb(kCom1 + 4) | 0x10), kCom1 + 4);  // MCR: loopback
    say("storm-start\n");
    start_heartbeat();
    std::uint64_t written = 0;
    const double end = now() + seconds;
    while (now() < end) {
        for (int i = 0; i < 1024; ++i)
            ::outb(static_cast<unsigned char>(i), kCom1);
        written += 1024;
    }
    say("storm-done %llu\n", static_cast<unsigned long long>(written));
    ::usleep(500'000);  // the test measures memory now
    unsigned held = 0;
    while (held < 4096 && (::inb(kCom1 + 5) & 0x01)) {  // LSR: data ready
        (void)::inb(kCom1);
        ++held;
    }
    say("held %u\n", held);
    for (;;)
        ::outb(0x55, kCom1);
}

// ---- stdout that nobody reads ------------------------------------------------------------

int stdout_flood() {
    say("flood-start\n");
    std::string line(4095, 'x');
    line += '\n';
    for (;;)
        if (::write(1, line.data(), line.size()) < 0 && errno != EINTR) die("write");
}

// ---- PCI configuration through mechanism #1 ----------------------------------------------

std::uint32_t conf1_address(unsigned bus, unsigned dev, unsigned fn, unsigned off) {
    return 0x8000'0000u | (bus << 16) | (dev << 11) | (fn << 8) | (off & 0xfc);
}

std::uint32_t conf1_read(unsigned bus, unsigned dev, unsigned fn, unsigned off, unsigned width) {
    ::outl(conf1_address(bus, dev, fn, off), 0xcf8);
    const unsigned short port = static_cast<unsigned short>(0xcfc + (off & 3));
    if (width == 1) return ::inb(port);
    if (width == 2) return ::inw(port);
    return ::inl(port);
}

void conf1_write(unsigned bus, unsigned dev, unsigned fn, unsigned off, unsigned width,
                 std::uint32_t v) {
    ::outl(conf1_address(bus, dev, fn, off), 0xcf8);
    const unsigned short port = static_cast<unsigned short>(0xcfc + (off & 3));
    if (width == 1)
        ::outb(static_cast<unsigned char>(v), port);
    else if (width == 2)
        ::outw(static_cast<unsigned short>(v), port);
    else
        ::outl(v, port);
}

// ---- sysfs and the userspace virtio-pci driver ---------------------------------------------

std::string read_line(const std::string& path) {
    char buf[128] = {};
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    const ssize_t n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    std::string s(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
    while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
        s.pop_back();
    return s;
}

void write_text(const std::string& path, const std::string& text) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) die(path.c_str());
    if (::write(fd, text.data(), text.size()) < 0) die(path.c_str());
    ::close(fd);
}

// The PCI address ("0000:00:02.0") of the first function with this vendor:device.
std::string find_function(const char* vendor, const char* device) {
    DIR* d = ::opendir("/sys/bus/pci/devices");
    if (d == nullptr) die("/sys/bus/pci/devices");
    std::string found;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') continue;
        const std::string dir = std::string("/sys/bus/pci/devices/") + e->d_name;
        if (read_line(dir + "/vendor") == vendor && read_line(dir + "/device") == device) {
            found = e->d_name;
            break;
        }
    }
    ::closedir(d);
    if (found.empty()) {
        errno = ENODEV;
        die(device);
    }
    return found;
}

struct Function {
    unsigned bus = 0, dev = 0, fn = 0;
};
Function parse_address(const std::string& a) {
    unsigned dom = 0, bus = 0, dev = 0, fn = 0;
    std::sscanf(a.c_str(), "%x:%x:%x.%x", &dom, &bus, &dev, &fn);
    return {bus, dev, fn};
}

// Takes the function away from its guest driver, if it has one.
void unbind(const std::string& addr) {
    const std::string dir = "/sys/bus/pci/devices/" + addr;
    struct stat st {};
    if (::stat((dir + "/driver").c_str(), &st) == 0) write_text(dir + "/driver/unbind", addr);
}

std::uint64_t physical_address(const void* p) {
    const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("/proc/self/pagemap");
    const auto va = reinterpret_cast<std::uintptr_t>(p);
    std::uint64_t entry = 0;
    if (::pread(fd, &entry, sizeof entry, static_cast<off_t>(va / 4096 * 8)) != sizeof entry)
        die("pagemap");
    ::close(fd);
    if (!(entry >> 63)) {
        errno = EFAULT;
        die("pagemap: page not present");
    }
    return (entry & ((1ull << 55) - 1)) * 4096 + va % 4096;
}

// A virtio 1.x PCI function driven from userspace: BAR 0 mapped through sysfs, the
// capabilities read from its configuration space.
struct VirtioPci {
    std::string addr;
    volatile std::uint8_t* bar = nullptr;
    std::size_t bar_size = 0;
    std::uint32_t common = 0, notify = 0, multiplier = 0, device = 0;
    // MSI-X table and PBA offsets in BAR 0 and the table's entries (0: not in BAR 0).
    std::uint32_t msix_table = 0, msix_pba = 0, msix_entries = 0;

    static VirtioPci open(const std::string& addr) {
        VirtioPci v;
        v.addr = addr;
        const std::string dir = "/sys/bus/pci/devices/" + addr;
        int fd = ::open((dir + "/config").c_str(), O_RDWR | O_CLOEXEC);
        if (fd < 0) die("config");
        std::uint8_t cfg[256] = {};
        if (::pread(fd, cfg, sizeof cfg, 0) != sizeof cfg) die("config read");
        // Memory decoding and bus mastering on: unbinding may have turned them off.
        std::uint16_t cmd = 0;
        std::memcpy(&cmd, cfg + 4, 2);
        cmd |= 0x6;
        if (::pwrite(fd, &cmd, 2, 4) != 2) die("config write");
        ::close(fd);
        for (unsigned cap = cfg[0x34]; cap != 0 && cap < 0xfc; cap = cfg[cap + 1]) {
            if (cfg[cap] == 0x11) {  // MSI-X
                std::uint16_t control = 0;
                std::uint32_t table = 0, pba = 0;
                std::memcpy(&control, cfg + cap + 2, 2);
                std::memcpy(&table, cfg + cap + 4, 4);
                std::memcpy(&pba, cfg + cap + 8, 4);
                if ((table & 7) == 0 && (pba & 7) == 0) {  // both in BAR 0
                    v.msix_table = table;
                    v.msix_pba = pba;
                    v.msix_entries = (control & 0x7ffu) + 1;
                }
            }
            if (cfg[cap] != 0x09) continue;
            std::uint32_t off = 0;
            std::memcpy(&off, cfg + cap + 8, 4);
            if (cfg[cap + 3] == 1) v.common = off;
            if (cfg[cap + 3] == 4) v.device = off;
            if (cfg[cap + 3] == 2) {
                v.notify = off;
                std::memcpy(&v.multiplier, cfg + cap + 16, 4);
            }
        }
        fd = ::open((dir + "/resource0").c_str(), O_RDWR | O_SYNC | O_CLOEXEC);
        if (fd < 0) die("resource0");
        struct stat st {};
        ::fstat(fd, &st);
        void* m = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE,
                         MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) die("mmap resource0");
        ::close(fd);
        v.bar = static_cast<volatile std::uint8_t*>(m);
        v.bar_size = static_cast<std::size_t>(st.st_size);
        return v;
    }

    template <typename T>
    T rd(std::uint32_t off) const {
        return *reinterpret_cast<volatile T*>(bar + common + off);
    }
    template <typename T>
    void wr(std::uint32_t off, T val) const {
        *reinterpret_cast<volatile T*>(bar + common + off) = val;
    }
    // virtio_pci_common_cfg offsets
    void status(std::uint8_t s) const { wr<std::uint8_t>(0x14, s); }
    std::uint8_t status() const { return rd<std::uint8_t>(0x14); }
    void driver_features(std::uint64_t f) const {
        wr<std::uint32_t>(0x08, 0);
        wr<std::uint32_t>(0x0c, static_cast<std::uint32_t>(f));
        wr<std::uint32_t>(0x08, 1);
        wr<std::uint32_t>(0x0c, static_cast<std::uint32_t>(f >> 32));
    }
    void kick(std::uint16_t queue) const {
        wr<std::uint16_t>(0x16, queue);
        const std::uint16_t off = rd<std::uint16_t>(0x1e);
        *reinterpret_cast<volatile std::uint16_t*>(bar + notify + off * multiplier) = queue;
    }
};

constexpr std::uint8_t kAcknowledge = 1, kDriver = 2, kDriverOk = 4, kFeaturesOk = 8;
constexpr std::uint64_t kVersion1 = 1ull << 32;

// One split queue of `size` entries in locked pages, one page per ring. Shared, so the
// heartbeat's fork leaves them where the device has them (a private page would be copied
// on the next write, away from the address the device was given).
struct Rings {
    static constexpr std::uint16_t size = 256;  // the device's maximum
    std::uint8_t* pages = nullptr;
    volatile std::uint16_t* avail() const { return reinterpret_cast<std::uint16_t*>(pages + 4096); }
    volatile std::uint16_t* used() const {
        return reinterpret_cast<std::uint16_t*>(pages + 2 * 4096);
    }
    std::uint8_t* buffer() const { return pages + 3 * 4096; }

    static Rings make() {
        Rings r;
        void* m = ::mmap(nullptr, 4 * 4096, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);
        if (m == MAP_FAILED) die("mmap rings");
        r.pages = static_cast<std::uint8_t*>(m);
        std::memset(r.pages, 0, 4 * 4096);
        return r;
    }
};

// Sets queue q up with `size` entries on the given ring addresses, no MSI-X vector, and
// enables it.
void setup_queue(const VirtioPci& v, std::uint16_t q, std::uint16_t size, std::uint64_t desc,
                 std::uint64_t avail, std::uint64_t used) {
    v.wr<std::uint16_t>(0x16, q);
    v.wr<std::uint16_t>(0x18, size);
    v.wr<std::uint16_t>(0x1a, 0xffff);
    v.wr<std::uint32_t>(0x20, static_cast<std::uint32_t>(desc));
    v.wr<std::uint32_t>(0x24, static_cast<std::uint32_t>(desc >> 32));
    v.wr<std::uint32_t>(0x28, static_cast<std::uint32_t>(avail));
    v.wr<std::uint32_t>(0x2c, static_cast<std::uint32_t>(avail >> 32));
    v.wr<std::uint32_t>(0x30, static_cast<std::uint32_t>(used));
    v.wr<std::uint32_t>(0x34, static_cast<std::uint32_t>(used >> 32));
    v.wr<std::uint16_t>(0x1c, 1);
}

// Starts queue 0 of `size` entries on the given ring addresses (any, RAM or not) with the
// given features (a reset first).
void start_raw(const VirtioPci& v, std::uint16_t size, std::uint64_t desc, std::uint64_t avail,
               std::uint64_t used, std::uint64_t features) {
    v.status(0);
    v.status(kAcknowledge | kDriver);
    v.driver_features(features);
    v.status(kAcknowledge | kDriver | kFeaturesOk);
    setup_queue(v, 0, size, desc, avail, used);
    v.status(kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
}

// Resets the device, negotiates VERSION_1 and starts queue 0 on `rings`.
void start_queue(const VirtioPci& v, const Rings& r) {
    start_raw(v, Rings::size, physical_address(r.pages), physical_address(r.pages + 4096),
              physical_address(r.pages + 2 * 4096), kVersion1);
    if (!(v.status() & kFeaturesOk)) {
        errno = EPROTO;
        die("the device refused VERSION_1");
    }
}

// virtio-rng (1af4:1044) with its guest driver unbound.
VirtioPci take_rng() {
    const std::string addr = find_function("0x1af4", "0x1044");
    unbind(addr);
    return VirtioPci::open(addr);
}

// One one-byte chain, made available again and again: the avail index always runs the
// whole queue ahead of the used index, so the device never finds the queue empty.
int ring_storm(double seconds) {
    const VirtioPci v = take_rng();
    const Rings r = Rings::make();
    auto* desc = reinterpret_cast<volatile std::uint64_t*>(r.pages);
    desc[0] = physical_address(r.buffer());
    desc[1] = 1ull | (2ull << 32);  // len 1, flags WRITE, next 0
    start_queue(v, r);
    v.wr<std::uint32_t>(0x00, 1);
    say("device status %#x, features[1] %#x, queue size %u enable %u, desc %#llx\n", v.status(),
        v.rd<std::uint32_t>(0x04), v.rd<std::uint16_t>(0x18), v.rd<std::uint16_t>(0x1c),
        static_cast<unsigned long long>(physical_address(r.pages)));
    say("storm-start\n");
    start_heartbeat();
    volatile std::uint16_t* avail = r.avail();
    volatile std::uint16_t* used = r.used();
    for (int i = 0; i < Rings::size; ++i)
        avail[2 + i] = 0;  // every ring entry names head 0
    const double done_at = now() + seconds;
    bool done = false;
    for (std::uint64_t n = 0;; ++n) {
        avail[1] = static_cast<std::uint16_t>(used[1] + Rings::size);
        if (n % (1u << 20) == 0) {
            v.kick(0);
            if (!done && now() >= done_at) {
                say("storm-done %u\n", static_cast<unsigned>(used[1]));
                done = true;
            }
        }
    }
}

// ---- queue abuse: what a driver may get wrong about a queue, each caught ----------------

constexpr std::uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;
constexpr std::uint64_t kIndirectDesc = 1ull << 28;

void put_desc(std::uint8_t* table, unsigned i, std::uint64_t addr, std::uint32_t len,
              std::uint16_t flags, std::uint16_t next) {
    auto* d = reinterpret_cast<volatile std::uint64_t*>(table + 16 * i);
    d[0] = addr;
    d[1] = len | (std::uint64_t{flags} << 32) | (std::uint64_t{next} << 48);
}

void offer_head(const VirtioPci& v, const Rings& r, std::uint16_t avail_idx) {
    r.avail()[2] = 0;
    r.avail()[1] = avail_idx;
    v.kick(0);
}

// Each attack leaves the device to answer: NEEDS_RESET (0x40) set within 100 ms is the
// device saying it caught the driver's error.
bool flagged(const VirtioPci& v) {
    const double until = now() + 0.1;
    while (now() < until)
        if (v.status() & 0x40) return true;
    return false;
}

// MSI-X: the table and the PBA in BAR 0 (the capability says where), garbage everywhere.
void msix_garbage(const VirtioPci& v, std::uint32_t seed) {
    if (v.msix_entries == 0) return;
    auto* t = reinterpret_cast<volatile std::uint32_t*>(v.bar + v.msix_table);
    for (unsigned i = 0; i < v.msix_entries * 4; ++i)
        t[i] = seed * 2654435761u + i;  // addresses, data and masks of garbage
    auto* p = reinterpret_cast<volatile std::uint32_t*>(v.bar + v.msix_pba);
    for (unsigned i = 0; i < 4; ++i)
        p[i] = ~0u;  // the PBA is read-only
}

// ROUNDS rounds of 14 attacks on virtio-rng's queue, each after a reset; prints how many
// the device flagged with NEEDS_RESET ("flagged F of A", all of them expected), then keeps
// going until it is stopped.
int queue_abuse(unsigned rounds) {
    const VirtioPci v = take_rng();
    const Rings r = Rings::make();
    const std::uint64_t desc = physical_address(r.pages), avail = physical_address(r.pages + 4096),
                        used = physical_address(r.pages + 2 * 4096),
                        buf = physical_address(r.buffer());
    std::uint8_t* table = r.pages;
    std::uint8_t* indirect = r.buffer() + 2048;  // a second table, in the buffer page
    const std::uint64_t indirect_at = buf + 2048;
    using Attack =
        void (*)(const VirtioPci&, const Rings&, std::uint8_t*, std::uint8_t*, std::uint64_t[5]);
    // Ring addresses: [0] desc [1] avail [2] used [3] buffer [4] indirect table.
    static const Attack attacks[] = {
        // bad queue sizes: 0, not a power of two, over the maximum
        [](const VirtioPci& d, const Rings&, std::uint8_t*, std::uint8_t*, std::uint64_t a[5]) {
            start_raw(d, 0, a[0], a[1], a[2], kVersion1);
        },
        [](const VirtioPci& d, const Rings&, std::uint8_t*, std::uint8_t*, std::uint64_t a[5]) {
            start_raw(d, 100, a[0], a[1], a[2], kVersion1);
        },
        [](const VirtioPci& d, const Rings&, std::uint8_t*, std::uint8_t*, std::uint64_t a[5]) {
            start_raw(d, 1024, a[0], a[1], a[2], kVersion1);
        },
        // rings outside RAM: past 2^52, wrapping 2^64, on the local APIC
        [](const VirtioPci& d, const Rings&, std::uint8_t*, std::uint8_t*, std::uint64_t a[5]) {
            start_raw(d, 256, 1ull << 52, a[1], a[2], kVersion1);
        },
        [](const VirtioPci& d, const Rings&, std::uint8_t*, std::uint8_t*, std::uint64_t a[5]) {
            start_raw(d, 256, a[0], ~0ull - 100, a[2], kVersion1);
        },
        [](const VirtioPci& d, const Rings&, std::uint8_t*, std::uint8_t*, std::uint64_t a[5]) {
            start_raw(d, 256, a[0], a[1], 0xfee00000, kVersion1);
        },
        // a looping chain
        [](const VirtioPci& d, const Rings& q, std::uint8_t* t, std::uint8_t*, std::uint64_t a[5]) {
            put_desc(t, 0, a[3], 8, kDescWrite | kDescNext, 1);
            put_desc(t, 1, a[3], 8, kDescWrite | kDescNext, 0);
            start_raw(d, 256, a[0], a[1], a[2], kVersion1);
            offer_head(d, q, 1);
        },
        // a next past the queue
        [](const VirtioPci& d, const Rings& q, std::uint8_t* t, std::uint8_t*, std::uint64_t a[5]) {
            put_desc(t, 0, a[3], 8, kDescWrite | kDescNext, 300);
            start_raw(d, 256, a[0], a[1], a[2], kVersion1);
            offer_head(d, q, 1);
        },
        // a buffer outside RAM, and one that wraps 2^64
        [](const VirtioPci& d, const Rings& q, std::uint8_t* t, std::uint8_t*, std::uint64_t a[5]) {
            put_desc(t, 0, 1ull << 50, 4096, kDescWrite, 0);
            start_raw(d, 256, a[0], a[1], a[2], kVersion1);
            offer_head(d, q, 1);
        },
        [](const VirtioPci& d, const Rings& q, std::uint8_t* t, std::uint8_t*, std::uint64_t a[5]) {
            put_desc(t, 0, ~0ull - 8, 4096, kDescWrite, 0);
            start_raw(d, 256, a[0], a[1], a[2], kVersion1);
            offer_head(d, q, 1);
        },
        // the avail index a whole queue and more ahead of the used index
        [](const VirtioPci& d, const Rings& q, std::uint8_t* t, std::uint8_t*, std::uint64_t a[5]) {
            put_desc(t, 0, a[3], 8, kDescWrite, 0);
            start_raw(d, 256, a[0], a[1], a[2], kVersion1);
            offer_head(d, q, 1000);
        },
        // indirect tables: a length not a multiple of 16, one nested in another, one that
        // loops
        [](const VirtioPci& d, const Rings& q, std::uint8_t* t, std::uint8_t*, std::uint64_t a[5]) {
            put_desc(t, 0, a[4], 40, kDescIndirect, 0);
            start_raw(d, 256, a[0], a[1], a[2], kVersion1 | kIndirectDesc);
            offer_head(d, q, 1);
        },
        [](const VirtioPci& d, const Rings& q, std::uint8_t* t, std::uint8_t* in,
           std::uint64_t a[5]) {
            put_desc(in, 0, a[4], 32, kDescIndirect, 0);
            put_desc(t, 0, a[4], 32, kDescIndirect, 0);
            start_raw(d, 256, a[0], a[1], a[2], kVersion1 | kIndirectDesc);
            offer_head(d, q, 1);
        },
        [](const VirtioPci& d, const Rings& q, std::uint8_t* t, std::uint8_t* in,
           std::uint64_t a[5]) {
            put_desc(in, 0, a[3], 8, kDescWrite | kDescNext, 1);
            put_desc(in, 1, a[3], 8, kDescWrite | kDescNext, 0);
            put_desc(t, 0, a[4], 32, kDescIndirect, 0);
            start_raw(d, 256, a[0], a[1], a[2], kVersion1 | kIndirectDesc);
            offer_head(d, q, 1);
        },
    };
    std::uint64_t addrs[5] = {desc, avail, used, buf, indirect_at};
    say("storm-start\n");
    start_heartbeat();
    unsigned tried = 0, caught = 0;
    std::vector<unsigned> missed(std::size(attacks), 0);
    for (std::uint64_t round = 0;; ++round) {
        for (std::size_t i = 0; i < std::size(attacks); ++i) {
            v.status(0);
            std::memset(r.pages, 0, 3 * 4096);
            std::memset(indirect, 0, 2048);
            msix_garbage(v, static_cast<std::uint32_t>(round * 31 + i));
            attacks[i](v, r, table, indirect, addrs);
            const bool ok = flagged(v);
            if (round < rounds) {
                ++tried;
                caught += ok ? 1 : 0;
                if (!ok) ++missed[i];
            }
        }
        if (round + 1 == rounds) {
            std::string which;
            for (std::size_t i = 0; i < missed.size(); ++i)
                if (missed[i] != 0) which += " " + std::to_string(i);
            say("flagged %u of %u%s%s\n", caught, tried,
                which.empty() ? "" : ", missed:", which.c_str());
            say("storm-done %u\n", tried);
        }
    }
}

// ---- virtio-net receive buffers of zero bytes ----------------------------------------------

constexpr std::uint64_t kNetMrgRxbuf = 1ull << 15;

// Every entry of queue 0 (receive) a one-descriptor chain of a zero-byte device-writable
// buffer, all of them made available.
void offer_zero_chains(const Rings& r) {
    const std::uint64_t buf = physical_address(r.buffer());
    for (unsigned i = 0; i < Rings::size; ++i) {
        put_desc(r.pages, i, buf, 0, kDescWrite, 0);
        r.avail()[2 + i] = static_cast<std::uint16_t>(i);
    }
    r.avail()[1] = Rings::size;
}

// virtio-net (1af4:1041) on the userspace datapath, its guest driver unbound, while the host
// sends frames into its tap. ROUNDS rounds of two phases:
//   - mergeable receive buffers negotiated, every chain zero bytes: a frame can never fit
//     and the chains would only pile up; the device must set NEEDS_RESET. It is then left
//     broken, with frames waiting in the tap, for HOLD_MS before the next round's reset
//     ("broken-hold" and "broken-end" around the first such wait, which the test times);
//   - without mergeable buffers, the same chains re-posted as they come back: each frame
//     goes back on one of them unwritten (used length 0), dropped.
// Prints "flagged F of A" and "returned N" (chains given back with length 0 in the second
// phases), then "storm-done", and goes on with the second phase until stopped.
int zero_rx(unsigned rounds) {
    const std::string addr = find_function("0x1af4", "0x1041");
    unbind(addr);
    const VirtioPci v = VirtioPci::open(addr);
    const Rings r = Rings::make();
    const std::uint64_t desc = physical_address(r.pages), avail = physical_address(r.pages + 4096),
                        used = physical_address(r.pages + 2 * 4096);
    say("storm-start\n");
    start_heartbeat();
    unsigned caught = 0;
    std::uint64_t returned = 0;
    auto reposting = [&](double seconds) {
        v.status(0);
        std::memset(r.pages, 0, 3 * 4096);
        offer_zero_chains(r);
        start_raw(v, Rings::size, desc, avail, used, kVersion1);
        v.kick(0);
        const double until = now() + seconds;
        std::uint16_t seen = 0;
        while (seconds < 0 || now() < until) {
            const std::uint16_t u = r.used()[1];
            for (; seen != u; ++seen) {
                const auto* e = reinterpret_cast<const volatile std::uint32_t*>(r.used() + 2) +
                                2 * (seen % 256);
                if (e[1] == 0) ++returned;
            }
            // Every chain back is offered again at once.
            r.avail()[1] = static_cast<std::uint16_t>(u + Rings::size);
            v.kick(0);
            ::usleep(1000);
        }
    };
    for (unsigned round = 0; round < rounds; ++round) {
        v.status(0);
        std::memset(r.pages, 0, 3 * 4096);
        offer_zero_chains(r);
        start_raw(v, Rings::size, desc, avail, used, kVersion1 | kNetMrgRxbuf);
        v.kick(0);
        // The host's frames arrive every millisecond or so: the first one meets the chains.
        const double until = now() + 2.0;
        bool flag = false;
        while (!flag && now() < until)
            flag = (v.status() & 0x40) != 0;
        if (flag) ++caught;
        if (round == 0) say("broken-hold\n");
        ::usleep(round == 0 ? 2'000'000 : 100'000);
        if (round == 0) say("broken-end\n");
        reposting(0.2);
    }
    say("flagged %u of %u\n", caught, rounds);
    say("returned %llu\n", static_cast<unsigned long long>(returned));
    say("storm-done %u\n", rounds);
    reposting(-1);
    return 0;
}

// ---- block requests that ask for what is not there ----------------------------------------

// The PCI address of the virtio function behind /dev/NAME.
std::string function_of_disk(const char* name) {
    char path[PATH_MAX];
    const std::string link = std::string("/sys/block/") + name + "/device";
    if (::realpath(link.c_str(), path) == nullptr) die(link.c_str());
    std::string p = path;  // .../0000:00:03.0/virtio1
    p = p.substr(0, p.rfind('/'));
    return p.substr(p.rfind('/') + 1);
}

struct BlkHeader {
    std::uint32_t type, reserved;
    std::uint64_t sector;
};

// One request on queue 0 of a freshly started disk: the header at the start of the buffer
// page, then `segments`, then the status descriptor of `status_len` bytes whose last is the
// status byte (the bytes before it are one more data segment), unless `no_status`; in the
// ring, or in an indirect table (one page: 256 entries at most). Returns the status byte the
// device wrote, -1 when it set NEEDS_RESET instead, -2 when it did neither within 100 ms.
struct Segment {
    std::uint64_t addr;
    std::uint32_t len;
};
int blk_request(const VirtioPci& v, const Rings& r, std::uint32_t type, std::uint64_t sector,
                const std::vector<Segment>& segments, bool no_status = false,
                bool use_indirect = false, std::uint32_t status_len = 1) {
    v.status(0);
    std::memset(r.pages, 0, 3 * 4096);
    const std::uint64_t buf = physical_address(r.buffer());
    BlkHeader h{type, 0, sector};
    std::memcpy(r.buffer(), &h, sizeof h);
    constexpr std::uint32_t kStatusAt = 2047;  // in the buffer page
    volatile std::uint8_t* status = r.buffer() + kStatusAt;
    *status = 0xee;
    static std::uint8_t* const table = [] {
        void* m = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE,
                         MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE | MAP_LOCKED, -1, 0);
        if (m == MAP_FAILED) die("mmap table");
        return static_cast<std::uint8_t*>(m);
    }();
    std::uint8_t* t = use_indirect ? table : r.pages;
    unsigned n = 0;
    const std::uint16_t data_flags = type == 1 ? 0 : kDescWrite;  // OUT: device-readable
    const unsigned last = static_cast<unsigned>(segments.size()) + (no_status ? 0 : 1);
    auto next = [&](unsigned i) { return static_cast<std::uint16_t>(i < last ? kDescNext : 0); };
    put_desc(t, n, buf, sizeof h, next(n), static_cast<std::uint16_t>(n + 1));
    ++n;
    for (const Segment& seg : segments) {
        put_desc(t, n, seg.addr, seg.len, data_flags | next(n), static_cast<std::uint16_t>(n + 1));
        ++n;
    }
    if (!no_status) {
        put_desc(t, n, buf + kStatusAt - (status_len - 1), status_len, kDescWrite, 0);
        ++n;
    }
    if (use_indirect) put_desc(r.pages, 0, physical_address(table), n * 16, kDescIndirect, 0);
    start_raw(v, 256, physical_address(r.pages), physical_address(r.pages + 4096),
              physical_address(r.pages + 2 * 4096), kVersion1 | kIndirectDesc);
    offer_head(v, r, 1);
    const double until = now() + 0.1;
    while (now() < until) {
        if (v.status() & 0x40) return -1;
        if (r.used()[1] == 1) return *status;
    }
    return -2;
}

// Requests past the end, straddling it, with sector * 512 past 2^64, a segment over
// size_max, a length not a multiple of 512, a write to the read-only disk, 255 segments
// (over seg_max) and no status byte, on /dev/vdb (read-only, 1 MiB) with its guest driver
// unbound. Prints each answer ("blk CASE STATUS"), then "blk-ioerr K" and "blk-reset K".
int blk_abuse(unsigned rounds) {
    const std::string addr = function_of_disk("vdb");
    unbind(addr);
    const VirtioPci v = VirtioPci::open(addr);
    const Rings r = Rings::make();
    // capacity from the device configuration (virtio_blk_config.capacity)
    const std::uint64_t capacity = *reinterpret_cast<volatile std::uint64_t*>(v.bar + v.device);
    // A data area of 128 KiB, physically contiguous enough for one segment? Not needed: the
    // device checks a segment's length before it touches it.
    const std::uint64_t data = physical_address(r.buffer()) + 512;
    struct Case {
        const char* name;
        std::uint32_t type;
        std::uint64_t sector;
        std::vector<Segment> segs;
        bool no_status, indirect;
        int expect;  // 1: IOERR, -1: NEEDS_RESET
        std::uint32_t status_len = 1;
    };
    // 254 segments and a status descriptor with 512 bytes of data before its status byte:
    // 255 data segments in 256 descriptors, one over seg_max.
    std::vector<Segment> many(254, Segment{data, 512});
    const std::vector<Case> cases = {
        {"past-end", 0, capacity, {{data, 512}}, false, false, 1},
        {"straddling-end", 0, capacity - 1, {{data, 512}, {data, 512}}, false, false, 1},
        {"sector-overflow", 0, 1ull << 55, {{data, 512}}, false, false, 1},
        {"sector-max", 0, ~0ull, {{data, 512}}, false, false, 1},
        {"segment-over-size-max", 0, 0, {{data, 128 * 1024}}, false, false, 1},
        {"length-not-sectors", 0, 0, {{data, 100}}, false, false, 1},
        {"write-read-only", 1, 0, {{data, 512}}, false, false, 1},
        {"over-seg-max", 0, 0, many, false, true, -1, 513},
        {"no-status", 0, 0, {}, true, false, -1},  // the header alone
    };
    say("capacity %llu\n", static_cast<unsigned long long>(capacity));
    say("storm-start\n");
    start_heartbeat();
    unsigned ioerr = 0, reset = 0, wrong = 0;
    for (std::uint64_t round = 0;; ++round) {
        for (const Case& c : cases) {
            const int got =
                blk_request(v, r, c.type, c.sector, c.segs, c.no_status, c.indirect, c.status_len);
            if (round >= rounds) continue;
            if (got == c.expect && got == 1)
                ++ioerr;
            else if (got == c.expect && got == -1)
                ++reset;
            else
                ++wrong;
            if (round == 0) say("blk %s %d\n", c.name, got);
        }
        if (round + 1 == rounds) {
            say("blk-ioerr %u\nblk-reset %u\nblk-wrong %u\n", ioerr, reset, wrong);
            say("storm-done %u\n", ioerr + reset + wrong);
        }
    }
}

// ---- port I/O and MMIO of odd sizes, straddling, and the agent port ------------------------

// Rounds of: the agent port (0xf4) at every width and offset with values without the magic
// and with the magic and events no runner knows, and "ready" again and again; 2- and 4-byte
// port accesses straddling the ends of COM1 and of the PCI configuration ports; and every
// width (1, 2, 4, 8 bytes) at every offset, aligned or not, of virtio-rng's BAR 0 pages
// read, and written at the notification area's. Never the values that stop the VM (exit,
// init failure, reboot, power-off; the i8042's reset; ACPI sleep; pvpanic).
int port_abuse(unsigned rounds) {
    need_ports(0xf4, 8);  // a 4-byte access at 0xf7 reaches 0xfa
    need_ports(kCom1, 8);
    need_ports(0x400, 8);  // COM1's end straddled into the next ports
    need_ports(0xcf8, 8);
    need_ports(0xd00, 4);
    const VirtioPci v = take_rng();
    say("storm-start\n");
    start_heartbeat();
    std::uint64_t ops = 0;
    for (std::uint64_t round = 0;; ++round) {
        for (unsigned off = 0; off < 4; ++off) {
            ::outb(static_cast<unsigned char>(round), static_cast<unsigned short>(0xf4 + off));
            ::outw(static_cast<unsigned short>(round), static_cast<unsigned short>(0xf4 + off));
            ::outl(static_cast<unsigned>(round) & 0xffffu, static_cast<unsigned short>(0xf4 + off));
            (void)::inl(static_cast<unsigned short>(0xf4 + off));
            ops += 4;
        }
        for (unsigned ev = 6; ev < 256; ev += 7) {
            ::outl(0x5354'0000u | (ev << 8) | (round & 0xff), 0xf4);  // unknown events
            ++ops;
        }
        ::outl(0x5354'0000u | (1u << 8), 0xf4);  // ready, again
        for (unsigned short port : {0x3fd, 0x3fe, 0x3ff, 0xcfa, 0xcfd, 0xcfe, 0xcff}) {
            (void)::inw(port);
            (void)::inl(port);
            ops += 2;
        }
        ::outl(0, 0xcfe);  // straddles the data port's end
        ::outw(0, 0x3ff);  // straddles COM1's end (scratch register and beyond)
        ops += 2;
        // BAR 0: every width at every offset of its first two pages (common configuration,
        // ISR, device configuration), read; 8-byte writes at odd offsets of the notify area.
        for (std::uint32_t o = 0; o + 8 <= std::min<std::size_t>(v.bar_size, 8192); ++o) {
            volatile std::uint8_t* p = v.bar + o;
            (void)*p;
            (void)*reinterpret_cast<volatile std::uint16_t*>(p);
            (void)*reinterpret_cast<volatile std::uint32_t*>(p);
            (void)*reinterpret_cast<volatile std::uint64_t*>(p);
            ops += 4;
        }
        for (std::uint32_t o = 1; o < 64; o += 3) {
            *reinterpret_cast<volatile std::uint64_t*>(v.bar + v.notify + o) = ~0ull;
            ++ops;
        }
        // Each round's end on the guest's clock: a test that fails tells a slow guest from one
        // whose output stopped.
        if (round < rounds)
            say("round %llu at %.2f\n", static_cast<unsigned long long>(round), now());
        if (round + 1 == rounds) say("storm-done %llu\n", static_cast<unsigned long long>(ops));
    }
}

// ---- vsock connections to the host, as many as the guest can make ----------------------------

// The host's stdio port: the peer of one of stockade-init's vsock streams (the workload's own
// stdio are pipes PID 1 copies to them), taken from PID 1 with pidfd_getfd (root in the guest
// may; this is the guest attacking its host, not itself).
bool host_stdio_port(sockaddr_vm& host) {
    const int pid1 = static_cast<int>(::syscall(SYS_pidfd_open, 1, 0));
    if (pid1 < 0) return false;
    bool found = false;
    for (int fd = 0; fd < 64 && !found; ++fd) {
        const int mine = static_cast<int>(::syscall(SYS_pidfd_getfd, pid1, fd, 0));
        if (mine < 0) continue;
        socklen_t len = sizeof host;
        found = ::getpeername(mine, reinterpret_cast<sockaddr*>(&host), &len) == 0 &&
                host.svm_family == AF_VSOCK && host.svm_cid == VMADDR_CID_HOST;
        ::close(mine);
    }
    ::close(pid1);
    return found;
}

// Connects to the host's stdio port (host_stdio_port) again and again, holding up to 512
// connections that say nothing, or garbage, or an unknown stream byte, closing the oldest to make
// more. Prints "vsock made M refused R" after SECONDS, and keeps going.
int vsock_flood(double seconds) {
    sockaddr_vm host{};
    if (!host_stdio_port(host)) {
        errno = ENOTSOCK;
        die("stockade-init holds no vsock stream to the host (run with vsock stdio)");
    }
    say("host port %u\n", host.svm_port);
    say("storm-start\n");
    start_heartbeat();
    std::vector<int> held;
    std::uint64_t made = 0, refused = 0;
    const double done_at = now() + seconds;
    bool done = false;
    for (std::uint64_t n = 0;; ++n) {
        const int fd = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) die("socket");
        if (::connect(fd, reinterpret_cast<sockaddr*>(&host), sizeof host) != 0) {
            ++refused;
            ::close(fd);
        } else {
            ++made;
            static const char kinds[][4] = {"", "\xff\xfe", "Z", "zzz"};
            const char* k = kinds[n % 4];
            if (*k) (void)!::write(fd, k, std::strlen(k));
            held.push_back(fd);
            if (held.size() > 512) {
                ::close(held.front());
                held.erase(held.begin());
            }
        }
        if (!done && now() >= done_at) {
            say("vsock made %llu refused %llu\n", static_cast<unsigned long long>(made),
                static_cast<unsigned long long>(refused));
            say("storm-done %llu\n", static_cast<unsigned long long>(made + refused));
            done = true;
        }
    }
}

// FEATURES_OK with a feature the device never offered, again and again, with a full
// activation and reset between.
int features_storm(unsigned count) {
    const VirtioPci v = take_rng();
    const Rings r = Rings::make();
    say("storm-start\n");
    start_heartbeat();
    for (std::uint64_t n = 0;; ++n) {
        v.status(0);
        v.status(kAcknowledge | kDriver);
        v.driver_features(kVersion1 | (1ull << 10));
        v.status(kAcknowledge | kDriver | kFeaturesOk);
        if (n % 16 == 0) start_queue(v, r);  // activate, reset by the next round
        if (n + 1 == count) say("storm-done %u\n", count);
    }
}

// Whether a function's vendor:device is one the workload needs to keep answering (its root
// disk and its stdio): those are read, never written.
bool spared(std::uint32_t id) {
    const std::uint32_t vendor = id & 0xffff, device = id >> 16;
    return vendor == 0x1af4 && (device == 0x1042 || device == 0x1053);
}

// Every bus 0 function: configuration reads at every width and offset; writes of garbage
// (every offset and width) to each function that is absent, the host bridge and virtio-rng
// (its driver unbound first): BARs, command, the MSI-X capability.
int conf1_sweep() {
    (void)take_rng();
    need_ports(0xcf8, 8);
    say("storm-start\n");
    start_heartbeat();
    const std::uint32_t garbage[] = {0xffffffffu, 0, 0xdeadbeefu, 0x80000001u};
    for (std::uint64_t round = 0;; ++round) {
        std::uint64_t ops = 0;
        for (unsigned dev = 0; dev < 32; ++dev)
            for (unsigned fn = 0; fn < 8; ++fn) {
                const std::uint32_t id = conf1_read(0, dev, fn, 0, 4);
                ++ops;
                const bool present = id != 0xffffffffu;
                if (!present) {
                    // Absent: its command and BARs, and the wider reads.
                    for (unsigned off : {0x04u, 0x10u, 0x14u, 0x18u, 0x30u, 0x3cu}) {
                        conf1_write(0, dev, fn, off, 4, garbage[off / 4 % 4]);
                        ++ops;
                    }
                    continue;
                }
                for (unsigned width : {1u, 2u, 4u})
                    for (unsigned off = 0; off < 256; off += width) {
                        (void)conf1_read(0, dev, fn, off, width);
                        ++ops;
                        if (spared(id)) continue;
                        for (std::uint32_t g : garbage) {
                            conf1_write(0, dev, fn, off, width, g);
                            ++ops;
                        }
                    }
            }
        for (unsigned bus = 1; bus < 256; ++bus) {
            (void)conf1_read(bus, 0, 0, 0, 4);
            ++ops;
        }
        // CONFIG_ADDRESS written at widths other than 4 (not an address: plain port writes).
        for (unsigned k = 0; k < 4; ++k) {
            ::outb(0xff, static_cast<unsigned short>(0xcf8 + k));
            ++ops;
        }
        ::outw(0xffff, 0xcf8);
        ::outw(0xffff, 0xcfa);
        if (round == 0) say("storm-done %llu\n", static_cast<unsigned long long>(ops));
    }
}

// virtio-rng's 64-bit BAR 0 placed where it must not go, again and again, memory decoding
// on at each place: wrapping past 2^64, on another device's BAR, on the local APIC, on the
// IO-APIC, on guest RAM, at 0.
int bar_abuse(unsigned rounds) {
    const std::string addr = find_function("0x1af4", "0x1044");
    unbind(addr);
    const Function f = parse_address(addr);
    // The victim: the root disk's BAR 0 (its device keeps working: nothing ours decodes
    // there for long, and the guest's own accesses to it are what the test watches).
    const Function victim = parse_address(find_function("0x1af4", "0x1042"));
    need_ports(0xcf8, 8);
    const std::uint64_t victim_bar =
        (conf1_read(0, victim.dev, victim.fn, 0x10, 4) & ~0xfull) |
        (std::uint64_t{conf1_read(0, victim.dev, victim.fn, 0x14, 4)} << 32);
    conf1_write(0, f.dev, f.fn, 0x10, 4, 0xffffffffu);
    conf1_write(0, f.dev, f.fn, 0x14, 4, 0xffffffffu);
    const std::uint64_t mask = (conf1_read(0, f.dev, f.fn, 0x10, 4) & ~0xfull) |
                               (std::uint64_t{conf1_read(0, f.dev, f.fn, 0x14, 4)} << 32);
    const std::uint64_t size = ~mask + 1;
    const std::uint64_t places[] = {0 - size,      0xfffffffffffff000ull, victim_bar, 0xfee00000ull,
                                    0xfec00000ull, 0x100000ull,           0};
    const std::uint16_t cmd = static_cast<std::uint16_t>(conf1_read(0, f.dev, f.fn, 4, 2));
    say("storm-start\n");
    start_heartbeat();
    for (std::uint64_t n = 0;; ++n) {
        for (std::uint64_t at : places) {
            conf1_write(0, f.dev, f.fn, 4, 2, cmd & ~0x2u);
            conf1_write(0, f.dev, f.fn, 0x10, 4, static_cast<std::uint32_t>(at));
            conf1_write(0, f.dev, f.fn, 0x14, 4, static_cast<std::uint32_t>(at >> 32));
            conf1_write(0, f.dev, f.fn, 4, 2, cmd | 0x2u);
        }
        if (n + 1 == rounds)
            say("storm-done %llu\n", static_cast<unsigned long long>(rounds * std::size(places)));
    }
}

// ---- a disk on slow storage, kept busy -------------------------------------------------

// READERS processes read /dev/vdb (a slow disk the test gives) with O_DIRECT, one 4 KiB
// request each in flight at all times, so the disk's queue always holds READERS requests;
// meanwhile virtio-rng, served by the event loop, is read 20 times and timed. A host that
// served the disk on the event loop would make each rng read wait for a turn of disk
// requests.
int slow_disk(unsigned readers) {
    for (unsigned r = 0; r < readers; ++r) {
        if (::fork() != 0) continue;
        const int fd = ::open("/dev/vdb", O_RDONLY | O_DIRECT);
        if (fd < 0) die("open /dev/vdb");
        void* buf = nullptr;
        if (::posix_memalign(&buf, 4096, 4096) != 0) die("posix_memalign");
        for (off_t at = 0;; at = (at + 4096 * readers) % (1 << 20))
            if (::pread(fd, buf, 4096, at + 4096 * r) != 4096) die("pread /dev/vdb");
    }
    say("storm-start\n");
    start_heartbeat();
    ::usleep(1'000'000);  // every reader has a request queued
    const int rng = ::open("/dev/hwrng", O_RDONLY);
    if (rng < 0) die("open /dev/hwrng");
    std::vector<double> ms;
    for (int i = 0; i < 20; ++i) {
        unsigned char b[16];
        const double t0 = now();
        if (::read(rng, b, sizeof b) <= 0) die("read /dev/hwrng");
        ms.push_back((now() - t0) * 1e3);
        ::usleep(50'000);
    }
    std::vector<double> sorted = ms;
    std::sort(sorted.begin(), sorted.end());
    say("rng-ms %.0f %.0f\n", sorted.back(), sorted[sorted.size() / 2]);
    say("storm-done %zu\n", ms.size());
    for (;;)
        ::pause();
}

}  // namespace

// ---- virtio-net's control queue (a multi-queue device) --------------------------------------

// Rounds of commands on the control queue of a device with two or more queue pairs, every
// queue started (each pair's rings, for vhost-net's workers too): VQ_PAIRS_SET with 0, one
// more than the device has and 65535; an unknown class and an unknown command; a one-byte and
// a 2 KiB command; 50 switches between all pairs and one (each attaches or detaches a tap
// queue); and last a command with no room for its ack, which must cost the device NEEDS_RESET.
// Prints each answer of the first round, "ctrl-wrong W" and "storm-done N" after ROUNDS.
int net_control(unsigned rounds) {
    constexpr std::uint64_t kCtrlVq = 1ull << 17, kMq = 1ull << 22;
    const std::string addr = find_function("0x1af4", "0x1041");
    unbind(addr);
    const VirtioPci v = VirtioPci::open(addr);
    const std::uint16_t pairs = *reinterpret_cast<volatile std::uint16_t*>(v.bar + v.device + 8);
    if (pairs < 2) {
        errno = EINVAL;
        die("the device has one queue pair (run with --net queues=2)");
    }
    const std::uint16_t ctrl = static_cast<std::uint16_t>(2 * pairs);
    std::vector<Rings> rings;
    for (unsigned q = 0; q <= ctrl; ++q)
        rings.push_back(Rings::make());
    std::uint16_t next = 0;  // the control queue's avail index
    auto start = [&] {
        v.status(0);
        for (const Rings& r : rings)
            std::memset(r.pages, 0, 3 * 4096);
        next = 0;
        v.status(kAcknowledge | kDriver);
        v.driver_features(kVersion1 | kCtrlVq | kMq);
        v.status(kAcknowledge | kDriver | kFeaturesOk);
        for (std::uint16_t q = 0; q <= ctrl; ++q) {
            const Rings& r = rings[q];
            setup_queue(v, q, Rings::size, physical_address(r.pages),
                        physical_address(r.pages + 4096), physical_address(r.pages + 2 * 4096));
        }
        v.status(kAcknowledge | kDriver | kFeaturesOk | kDriverOk);
        if (!(v.status() & kFeaturesOk)) {
            errno = EPROTO;
            die("the device refused VERSION_1, CTRL_VQ and MQ");
        }
    };
    // The ack (0 OK, 1 ERR); -1: NEEDS_RESET; -2: no answer in 100 ms.
    auto command = [&](const std::vector<std::uint8_t>& bytes, bool room_for_ack) {
        const Rings& r = rings[ctrl];
        std::uint8_t* buf = r.buffer();
        std::memcpy(buf, bytes.data(), bytes.size());
        volatile std::uint8_t* ack = buf + 4000;
        *ack = 0xee;
        const std::uint64_t at = physical_address(buf);
        put_desc(r.pages, 0, at, static_cast<std::uint32_t>(bytes.size()),
                 room_for_ack ? kDescNext : 0, 1);
        put_desc(r.pages, 1, at + 4000, 1, kDescWrite, 0);
        r.avail()[2 + next % Rings::size] = 0;
        next = static_cast<std::uint16_t>(next + 1);
        r.avail()[1] = next;
        v.kick(ctrl);
        const double until = now() + 0.1;
        while (now() < until) {
            if (v.status() & 0x40) return -1;
            if (r.used()[1] == next) return static_cast<int>(*ack);
        }
        return -2;
    };
    auto set_pairs = [](unsigned k) {
        return std::vector<std::uint8_t>{4, 0, static_cast<std::uint8_t>(k & 0xff),
                                         static_cast<std::uint8_t>(k >> 8)};
    };
    struct Case {
        const char* name;
        std::vector<std::uint8_t> bytes;
        int expect;
        bool room_for_ack = true;
    };
    std::vector<Case> cases = {
        {"pairs-all", set_pairs(pairs), 0},
        {"pairs-0", set_pairs(0), 1},
        {"pairs-too-many", set_pairs(pairs + 1u), 1},
        {"pairs-65535", set_pairs(0xffff), 1},
        {"unknown-class", {0x7f, 0, 1, 0}, 1},
        {"unknown-command", {4, 9, 1, 0}, 1},
        {"one-byte", {4}, 1},
        {"two-kib", std::vector<std::uint8_t>(2048, 4), 1},
        {"pairs-1", set_pairs(1), 0},
    };
    for (int i = 0; i < 50; ++i)
        cases.push_back({"switch", set_pairs(i % 2 == 0 ? pairs : 1u), 0});
    cases.push_back({"no-room-for-ack", set_pairs(pairs), -1, false});
    say("pairs %u\n", pairs);
    say("storm-start\n");
    start_heartbeat();
    unsigned wrong = 0, answered = 0;
    for (std::uint64_t round = 0;; ++round) {
        start();
        for (const Case& c : cases) {
            const int got = command(c.bytes, c.room_for_ack);
            if (round >= rounds) continue;
            ++answered;
            if (got != c.expect) ++wrong;
            if (round == 0 && std::strcmp(c.name, "switch") != 0) say("ctrl %s %d\n", c.name, got);
        }
        if (round + 1 == rounds) {
            say("ctrl-wrong %u\n", wrong);
            say("storm-done %u\n", answered);
        }
    }
}

int main(int argc, char** argv) {
    if (argc < 2) {
        std::fprintf(stderr, "usage: stockade-hostile CASE [ARG]\n");
        return 2;
    }
    // Nothing of ours is paged in from the root disk once the storm runs.
    if (::mlockall(MCL_CURRENT | MCL_FUTURE) != 0) die("mlockall");
    const std::string c = argv[1];
    const char* arg = argc > 2 ? argv[2] : "5";
    if (c == "uart-loopback") return uart_loopback(std::atof(arg));
    if (c == "stdout-flood") return stdout_flood();
    if (c == "ring-storm") return ring_storm(std::atof(arg));
    if (c == "features-storm") return features_storm(static_cast<unsigned>(std::atoi(arg)));
    if (c == "conf1-sweep") return conf1_sweep();
    if (c == "bar-abuse") return bar_abuse(static_cast<unsigned>(std::atoi(arg)));
    if (c == "slow-disk") return slow_disk(static_cast<unsigned>(std::atoi(arg)));
    if (c == "queue-abuse") return queue_abuse(static_cast<unsigned>(std::atoi(arg)));
    if (c == "blk-abuse") return blk_abuse(static_cast<unsigned>(std::atoi(arg)));
    if (c == "port-abuse") return port_abuse(static_cast<unsigned>(std::atoi(arg)));
    if (c == "vsock-flood") return vsock_flood(std::atof(arg));
    if (c == "zero-rx") return zero_rx(static_cast<unsigned>(std::atoi(arg)));
    if (c == "net-control") return net_control(static_cast<unsigned>(std::atoi(arg)));
    std::fprintf(stderr, "stockade-hostile: unknown case %s\n", c.c_str());
    return 2;
}
