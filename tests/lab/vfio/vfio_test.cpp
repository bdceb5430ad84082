// VFIO passthrough in the lab: the lab's spare virtio-net (0000:01:00.0, DMA through the
// emulated VT-d IOMMU) is bound to vfio-pci and given to a stockade guest, whose own
// virtio-net driver probes it; its wire leads to the lab kernel's e1000e (0000:00:11.0). The
// guest pings the lab host and runs iperf3 against it: real DMA both ways and real MSI-X.
// Guest reads of the device's BAR cause no exits. Each refusal (not on the policy's
// allowlist, bound to another driver, group held by another process, not a PCI address)
// stops before anything starts, and the device serves the next sandbox again.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <future>
#include <regex>
#include <string>

#include "lab/support/process.hpp"
#include "tests/support/lab_shell.hpp"

namespace stockade {
namespace {

using lab::run_process;
using lab::run_stockade;
using test::sh;

constexpr const char* kPassed = "0000:01:00.0";  // lab/run's spare virtio-net
constexpr const char* kLabNic = "0000:00:11.0";  // the lab kernel's e1000e, its peer
constexpr const char* kHostAddr = "169.254.78.1";
constexpr const char* kGuestAddr = "169.254.78.2/16";
constexpr const char* kPolicy = "/tmp/stockade-vfio-policy.json";
// The guest's traffic crosses two emulated NICs and the emulated IOMMU under TCG; a datapath
// that loses interrupts or DMA stalls far below this.
constexpr double kMinMbits = 10;

std::string sysfs_link_name(const std::string& path) {
    std::error_code ec;
    auto target = std::filesystem::read_symlink(path, ec);
    return ec ? "" : target.filename().string();
}

std::string device_dir(const std::string& address) {
    return std::string("/sys/bus/pci/devices/") + address;
}

// Binds `address` to `driver` ("" = none), as an operator does.
void bind(const std::string& address, const std::string& driver) {
    const std::string dir = device_dir(address);
    sh("echo " + (driver.empty() ? std::string("\"\"") : driver) + " > " + dir +
       "/driver_override && if [ -e " + dir + "/driver ]; then echo " + address + " > " + dir +
       "/driver/unbind; fi && echo " + address + " > /sys/bus/pci/drivers_probe");
    if (!driver.empty()) {
        ASSERT_EQ(sysfs_link_name(dir + "/driver"), driver);
    }
}

class Vfio : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        bind(kPassed, "vfio-pci");
        const std::string nic = sh("ls " + device_dir(kLabNic) + "/net");
        lab_if_ = nic.substr(0, nic.find('\n'));
        ASSERT_FALSE(lab_if_.empty());
        sh("ip addr add " + std::string(kHostAddr) + "/16 dev " + lab_if_ + " && ip link set " +
           lab_if_ + " up");
        write_policy({kPassed});
    }
    static void TearDownTestSuite() { ::unlink(kPolicy); }

    static void write_policy(const std::vector<std::string>& devices) {
        std::ofstream f(kPolicy);
        f << "{\"version\": 1, \"vfio_devices\": [";
        for (std::size_t i = 0; i < devices.size(); ++i)
            f << (i ? ", " : "") << '"' << devices[i] << '"';
        f << "]}\n";
    }

    void TearDown() override {
        // Nothing kept: the group can be opened again by anyone (here, the test).
        const std::string group =
            "/dev/vfio/" + sysfs_link_name(device_dir(kPassed) + "/iommu_group");
        const int fd = ::open(group.c_str(), O_RDWR | O_CLOEXEC);
        EXPECT_GE(fd, 0) << group << " is still held after the sandbox ended";
        if (fd >= 0) ::close(fd);
        EXPECT_EQ(sysfs_link_name(device_dir(kPassed) + "/driver"), "vfio-pci");
    }

    static lab::RunResult run_with(const std::vector<std::string>& devices,
                                   const std::vector<std::string>& command,
                                   const std::vector<std::string>& extra = {}) {
        std::vector<std::string> args{"--policy", kPolicy};
        for (const auto& d : devices)
            args.insert(args.end(), {"--device", "vfio=" + d});
        args.insert(args.end(), extra.begin(), extra.end());
        args.push_back("--");
        args.insert(args.end(), command.begin(), command.end());
        return run_stockade(args);
    }

    static std::string guest_net_up() {
        return std::string("ip link set eth0 up && ip addr add ") + kGuestAddr + " dev eth0";
    }

    static inline std::string lab_if_;
};

void expect_refused(const lab::RunResult& r, const std::string& why) {
    EXPECT_EQ(r.status, 125) << r.describe();
    EXPECT_NE(r.err.find(why), std::string::npos) << "expected \"" << why << "\" in:\n" << r.err;
    EXPECT_EQ(r.out, "") << "the workload must not have run";
}

TEST_F(Vfio, ADeviceNotOnThePolicysAllowlistIsRefused) {
    write_policy({});
    auto r = run_with({kPassed}, {"echo", "ran"});
    write_policy({kPassed});
    expect_refused(
        r, std::string("PCI device ") + kPassed + ": not on the policy's /vfio_devices allowlist");
}

TEST_F(Vfio, ADeviceBoundToAnotherDriverIsRefused) {
    write_policy({kPassed, kLabNic});
    auto r = run_with({kLabNic}, {"echo", "ran"});
    write_policy({kPassed});
    expect_refused(r, "e1000e");
    EXPECT_NE(r.err.find(kLabNic), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("vfio-pci"), std::string::npos) << "says how to bind it:\n" << r.err;
}

TEST_F(Vfio, AGroupAnotherProcessHoldsIsRefused) {
    const std::string group = "/dev/vfio/" + sysfs_link_name(device_dir(kPassed) + "/iommu_group");
    const int held = ::open(group.c_str(), O_RDWR | O_CLOEXEC);
    ASSERT_GE(held, 0) << group;
    auto r = run_with({kPassed}, {"echo", "ran"});
    ::close(held);
    expect_refused(r, "is in use by another process");
}

TEST_F(Vfio, BadDeviceArgumentsAreRefused) {
    auto r = run_with({"0000:01:00"}, {"echo", "ran"});
    EXPECT_NE(r.status, 0);
    EXPECT_NE(r.err.find("0000:01:00"), std::string::npos) << r.err;
    EXPECT_EQ(r.out, "");
    auto twice = run_with({kPassed, "01:00.0"}, {"echo", "ran"});
    expect_refused(twice, "given twice");
}

TEST_F(Vfio, TheGuestPingsAndRunsIperf3ThroughThePassedThroughNic) {
    auto server = std::async(std::launch::async, [] {
        lab::RunOptions o;
        o.timeout = std::chrono::seconds(240);
        return run_process({"/usr/bin/iperf3", "-s", "-1", "-B", kHostAddr, "-p", "5978"}, o);
    });
    auto r = run_with({kPassed},
                      {"sh", "-c",
                       guest_net_up() + " && ping -c 3 -W 5 " + kHostAddr + " && iperf3 -c " +
                           kHostAddr + " -p 5978 -t 4 -f m"},
                      {"--stats", "--memory", "512", "--initrd", STOCKADE_IPERF_INITRD, "-e",
                       "LD_LIBRARY_PATH=/lib/x86_64-linux-gnu"});
    auto s = server.get();
    ASSERT_EQ(r.status, 0) << r.describe() << "\nserver:\n" << s.describe();
    EXPECT_NE(r.out.find("3 packets transmitted, 3 packets received"), std::string::npos) << r.out;
    std::smatch m;
    if (std::regex_search(r.out, m, std::regex(R"(min/avg/max = ([0-9./]+) ms)")))
        std::cout << "[vfio ping] rtt min/avg/max " << m[1] << " ms\n";
    ASSERT_TRUE(std::regex_search(r.out, m, std::regex(R"(([0-9.]+) Mbits/sec.*receiver)")))
        << r.out;
    const double mbits = std::stod(m[1]);
    std::cout << "[vfio iperf3] " << mbits << " Mbit/s guest to host\n";
    EXPECT_GT(mbits, kMinMbits);
}

// The guest reads the device's BAR 4 (virtio's common configuration, mapped straight into
// the guest) many times: none of those reads leaves the guest (the run's MMIO exits, beside
// the same run without the reads). Then another sandbox takes the device: it was handed back
// clean.
// Its state is in the hardware: a snapshot is refused, naming the device, and the sandbox
// runs on.
TEST_F(Vfio, ASnapshotOfASandboxWithAPassedThroughDeviceIsRefused) {
    const std::string bin = lab::build_dir() + "/runner/stockade";
    const std::string dir = "/tmp/lab-vfio-snapshot";
    std::filesystem::remove_all(dir);
    auto r = run_process({bin, "run", "-d", "--id", "lab-vfio-snap", "--policy", kPolicy,
                          "--device", std::string("vfio=") + kPassed, "--", "sleep", "600"});
    ASSERT_EQ(r.status, 0) << r.describe();
    auto c = run_process({bin, "snapshot", "create", "lab-vfio-snap", dir});
    EXPECT_EQ(c.status, 1) << c.describe();
    EXPECT_NE(c.err.find("passed-through PCI function"), std::string::npos) << c.err;
    EXPECT_FALSE(std::filesystem::exists(dir));
    auto ps = run_process({bin, "ps", "--json"});
    EXPECT_NE(ps.out.find("\"running\""), std::string::npos) << "it runs on: " << ps.out;
    EXPECT_EQ(run_process({bin, "rm", "-f", "lab-vfio-snap"}).status, 0);
}

TEST_F(Vfio, BarReadsCauseNoExitsAndTheDeviceServesTheNextSandbox) {
    constexpr int kReads = 600;
    auto mmio_exits = [](int reads, std::string& last) -> long {
        // The driver lets go of the device first: the guest kernel keeps /dev/mem away from
        // a region a driver holds (IO_STRICT_DEVMEM). Its memory decoding stays on.
        const std::string script =
            "for d in /sys/bus/pci/devices/*; do "
            "[ $(cat $d/vendor) = 0x1af4 ] && [ $(cat $d/device) = 0x1041 ] && dev=$d; done; "
            "bar=$(sed -n 5p $dev/resource | cut -d' ' -f1); echo bar=$bar; "
            "echo ${dev##*/} > $dev/driver/unbind || exit 8; v=none; "
            "i=0; while [ $i -lt " +
            std::to_string(reads) +
            " ]; do "
            "v=$(busybox devmem $bar 32) || exit 9; i=$((i+1)); done; echo last=$v";
        auto r = run_with({kPassed}, {"sh", "-c", script}, {"--stats"});
        EXPECT_EQ(r.status, 0) << r.describe();
        std::smatch m;
        EXPECT_TRUE(std::regex_search(r.out, m, std::regex(R"(bar=0x[0-9a-f]+)"))) << r.out;
        if (std::regex_search(r.out, m, std::regex(R"(last=(\S+))"))) last = m[1];
        if (!std::regex_search(r.err, m, std::regex(R"(exits: io (\d+), mmio (\d+))"))) {
            ADD_FAILURE() << "no exit counts in:\n" << r.err;
            return -1;
        }
        return std::stol(m[2]);
    };
    std::string last;
    const long baseline = mmio_exits(0, last);
    EXPECT_EQ(last, "none");
    const long with_reads = mmio_exits(kReads, last);
    EXPECT_NE(last, "0xFFFFFFFF") << "the BAR must answer";
    EXPECT_NE(last, "none");
    std::cout << "[vfio BAR] MMIO exits: " << baseline << " without, " << with_reads << " with "
              << kReads << " guest reads of BAR 4\n";
    ASSERT_GE(baseline, 0);
    EXPECT_LT(with_reads - baseline, kReads / 4) << "BAR reads reached stockade";

    auto again =
        run_with({kPassed}, {"sh", "-c", guest_net_up() + " && ping -c 2 -W 5 " + kHostAddr});
    EXPECT_EQ(again.status, 0) << again.describe();
}

}  // namespace
}  // namespace stockade
