// stockade as an OCI runtime in the lab: Debian's containerd drives it through its runc shim
// (`ctr run --runc-binary`), with an image this test builds (busybox-static, make-image);
// and the runtime command line directly, as an engine calls it, for the bundle's process
// settings and for bundles it must refuse. Every case checks that nothing is left behind: no
// state directory, cgroup leaf or container image.
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>

#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "lab/support/process.hpp"

namespace stockade {
namespace {

namespace fs = std::filesystem;
using lab::RunResult;
using nlohmann::json;
using namespace std::chrono_literals;

const std::string kWork = "/tmp/lab-oci";
const std::string kSocket = kWork + "/containerd/sock";
const std::string kImage = "docker.io/library/stockade-busybox:latest";

std::string stockade_bin() {
    return lab::build_dir() + "/runner/stockade";
}

RunResult run(const std::vector<std::string>& argv, std::chrono::seconds timeout = 180s) {
    lab::RunOptions o;
    o.timeout = timeout;
    return lab::run_process(argv, o);
}

RunResult ctr(const std::vector<std::string>& args, std::chrono::seconds timeout = 180s) {
    std::vector<std::string> argv{"/usr/bin/ctr", "-a", kSocket};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, timeout);
}

// `stockade` as an engine calls it: runc's global flags first.
RunResult runtime(const std::vector<std::string>& args) {
    std::vector<std::string> argv{
        stockade_bin(), "--root", kWork + "/runtime-root", "--log", kWork + "/runtime.log",
        "--log-format", "json"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv);
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path) << text;
}

// Nothing of container `id` is left on the host.
void expect_no_residue(const std::string& id) {
    EXPECT_FALSE(fs::exists("/run/stockade/" + id)) << id;
    EXPECT_FALSE(fs::exists("/sys/fs/cgroup/stockade/" + id)) << id;
    EXPECT_FALSE(fs::exists("/run/stockade/jail/" + id)) << id;
    EXPECT_FALSE(fs::exists("/var/lib/stockade/oci/containers/" + id + ".ext4")) << id;
}

class Oci : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        // Everything here (containerd, its shims, podman, every stockade and guest they start)
        // runs on lab CPU 0: guests busy on both of the lab's CPUs break its emulated SVM now
        // and then (a podman guest triple-faulted on fetching kernel text on 2026-12-07;
        // docs/lab-notes.md), as lab_hostile's and lab_boot's pinned runs avoid.
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(0, &one);
        ASSERT_EQ(::sched_setaffinity(0, sizeof one, &one), 0);
        fs::remove_all(kWork);
        fs::create_directories(kWork + "/containerd");
        write_file(kWork + "/containerd/config.toml",
                   "version = 2\nroot = \"" + kWork + "/containerd/root\"\nstate = \"" + kWork +
                       "/containerd/state\"\n"
                       "disabled_plugins = [\"io.containerd.grpc.v1.cri\", "
                       "\"io.containerd.snapshotter.v1.btrfs\", "
                       "\"io.containerd.snapshotter.v1.zfs\", "
                       "\"io.containerd.snapshotter.v1.devmapper\", "
                       "\"io.containerd.snapshotter.v1.aufs\", "
                       "\"io.containerd.snapshotter.v1.overlayfs\"]\n"
                       "[grpc]\n  address = \"" +
                       kSocket + "\"\n");
        daemon_ = ::fork();
        if (daemon_ == 0) {
            const std::string log = kWork + "/containerd/log";
            std::freopen(log.c_str(), "w", stdout);
            std::freopen(log.c_str(), "a", stderr);
            ::execlp("containerd", "containerd", "-c", (kWork + "/containerd/config.toml").c_str(),
                     nullptr);
            ::_exit(127);
        }
        ASSERT_TRUE(lab::eventually([] { return fs::exists(kSocket); }, 30s))
            << "containerd did not start: " << lab::read_text(kWork + "/containerd/log");
        auto made = run({std::string(STOCKADE_SOURCE_DIR) + "/tests/lab/oci/make-image",
                         kWork + "/image.tar", kImage});
        ASSERT_EQ(made.status, 0) << made.describe();
        auto imported = ctr({"images", "import", "--snapshotter", "native", kWork + "/image.tar"});
        ASSERT_EQ(imported.status, 0) << imported.describe();
    }
    static void TearDownTestSuite() {
        if (daemon_ > 0) {
            ::kill(daemon_, SIGTERM);
            ::waitpid(daemon_, nullptr, 0);
        }
    }
    static std::vector<std::string> ctr_run(const std::vector<std::string>& flags) {
        std::vector<std::string> a{"run", "--snapshotter", "native", "--runc-binary",
                                   stockade_bin()};
        a.insert(a.end(), flags.begin(), flags.end());
        return a;
    }
    static inline pid_t daemon_ = -1;
};

TEST_F(Oci, CtrRunPrintsTheGuestsOutputAndExitsWithItsStatus) {
    const std::string release = lab::guest_kernel_release();
    ASSERT_FALSE(release.empty());
    utsname host{};
    ::uname(&host);
    auto args =
        ctr_run({"--rm", kImage, "oci-run", "sh", "-c",
                 "echo out $(uname -r); echo err >&2; head -c 3 /dev/zero | wc -c; exit 3"});
    const auto r = ctr(args);
    EXPECT_EQ(r.status, 3) << r.describe();
    EXPECT_EQ(r.out, "out " + release + "\n3\n") << r.describe();
    EXPECT_NE(release, host.release) << "the lab's own kernel answered";
    EXPECT_NE(r.err.find("err\n"), std::string::npos) << r.describe();
    std::printf("ctr run --rm to exit: %.2f s\n", r.seconds);
    expect_no_residue("oci-run");
    const auto tasks = ctr({"task", "ls"});
    EXPECT_EQ(tasks.out.find("oci-run"), std::string::npos) << tasks.describe();
}

// `ctr run -t`: the workload has a terminal in the guest (its stdin one, its own name for it),
// whose size follows the engine's (set after start, so through SIGWINCH and the control
// stream), typed input reaches it through two terminals, and its status comes back.
// A command that checks its terminal (the test waits for the size ctr set, as ctr sends it only
// after start), reads a typed line and exits with `status`.
std::string terminal_check(int status) {
    return "tty; [ -t 0 ] && echo stdin-is-a-tty; i=0; "
           "while [ \"$(stty size)\" != \"33 77\" ] && [ $i -lt 150 ]; do sleep 0.1; "
           "i=$((i+1)); done; echo size $(stty size); read line; echo got:$line; exit " +
           std::to_string(status);
}

// `ctr_args` (ctr's arguments, each shell-safe, the last the command in single quotes) on a
// terminal of 33 rows and 77 columns that script(1) gives ctr, with "hello" typed. The input
// then stays open: an end of input would close the engine's terminal, which hangs the
// container up, as with runc.
RunResult run_on_terminal(const std::string& ctr_args) {
    const std::string command =
        "stty rows 33 cols 77; exec /usr/bin/ctr -a " + kSocket + " " + ctr_args;
    const std::string fifo = kWork + "/tty-input";
    ::unlink(fifo.c_str());
    if (::mkfifo(fifo.c_str(), 0600) != 0) return {};
    const std::string outer = "(printf 'hello\\n'; exec sleep 170) > " + fifo +
                              " & w=$!; /usr/bin/script -qefc \"$0\" /dev/null < " + fifo +
                              "; rc=$?; kill $w; exit $rc";
    return run({"/bin/sh", "-c", outer, command});
}

void expect_terminal_checked(const RunResult& r, int status) {
    EXPECT_EQ(r.status, status) << r.describe();
    EXPECT_NE(r.out.find("/dev/pts/"), std::string::npos) << r.describe();
    EXPECT_NE(r.out.find("stdin-is-a-tty"), std::string::npos) << r.describe();
    EXPECT_NE(r.out.find("size 33 77"), std::string::npos) << r.describe();
    EXPECT_NE(r.out.find("got:hello"), std::string::npos) << r.describe();
}

TEST_F(Oci, CtrRunWithATerminalGivesTheWorkloadOneThatFollowsItsSize) {
    std::string args;
    for (const std::string& a : ctr_run({"-t", "--rm", kImage, "oci-tty", "sh", "-c"}))
        args += a + " ";
    const auto r = run_on_terminal(args + "'" + terminal_check(4) + "'");
    std::printf("ctr run -t to exit: %.2f s\n", r.seconds);
    expect_terminal_checked(r, 4);
    EXPECT_NE(r.out.find("/dev/pts/0"), std::string::npos) << r.describe();
    expect_no_residue("oci-tty");
}

// A network namespace as CRI makes one: `/run/netns/NAME`, where Debian's CNI bridge plugin
// puts a veth with a host-local address in 169.254.SUBNET.0/24 and a default route through
// bridge BRIDGE (the lab host is its gateway, .1). add() runs the plugin's ADD and gives the
// address ("169.254.SUBNET.N/24"; empty on a failure, which it reports); remove() undoes it all.
struct CniNamespace {
    std::string name, bridge, subnet;
    std::string netns() const { return "/run/netns/" + name; }
    std::string gateway() const { return "169.254." + subnet + ".1"; }
    RunResult plugin(const std::string& command) const {
        const std::string conf = kWork + "/" + name + ".json";
        write_file(conf, R"({"cniVersion": "1.0.0", "name": ")" + name +
                             R"(", "type": "bridge", "bridge": ")" + bridge +
                             R"(", "isGateway": true, "ipMasq": false,
            "ipam": {"type": "host-local", "dataDir": ")" +
                             kWork + "/" + name + R"(-ipam",
                     "ranges": [[{"subnet": "169.254.)" +
                             subnet + R"(.0/24", "gateway": ")" + gateway() + R"("}]],
                     "routes": [{"dst": "0.0.0.0/0"}]}})");
        return run({"/bin/sh", "-c",
                    "CNI_COMMAND=" + command + " CNI_CONTAINERID=" + name +
                        " CNI_NETNS=" + netns() +
                        " CNI_IFNAME=eth0 CNI_PATH=/usr/lib/cni exec "
                        "/usr/lib/cni/bridge < " +
                        conf});
    }
    std::string add() const {
        (void)run({"/usr/bin/ip", "netns", "del", name});
        const auto made = run({"/usr/bin/ip", "netns", "add", name});
        EXPECT_EQ(made.status, 0) << made.describe();
        const auto added = plugin("ADD");
        EXPECT_EQ(added.status, 0) << added.describe();
        if (made.status != 0 || added.status != 0) return "";
        const json result = json::parse(added.out, nullptr, false);
        const std::string address = result.is_object() ? result["ips"][0].value("address", "") : "";
        EXPECT_TRUE(address.starts_with("169.254." + subnet + ".")) << added.out;
        return address;
    }
    void remove() const {
        EXPECT_EQ(plugin("DEL").status, 0);
        (void)run({"/usr/bin/ip", "netns", "del", name});
        (void)run({"/usr/bin/ip", "link", "del", bridge});
    }
};

// CNI: a network namespace as CRI makes one (Debian's CNI bridge plugin puts a veth in it
// with a host-local address and a default route through the bridge), named in config.json by
// `ctr run --with-ns`. The guest takes the veth's address and route and reaches the gateway
// (the lab host, on the bridge); its tap is gone from the namespace after the run.
TEST_F(Oci, ACniNetworkNamespaceIsTheGuestsNetwork) {
    const CniNamespace cni{"stk-cni", "stkcni0", "77"};
    const std::string ns = cni.name, netns = cni.netns();
    const std::string address = cni.add();  // e.g. 169.254.77.2/24
    ASSERT_FALSE(address.empty());

    // Then the guest turns hostile: frames from any other MAC go nowhere (the gateway stops
    // answering) until it takes the veth's MAC back.
    const auto r = ctr(ctr_run(
        {"--with-ns", "network:" + netns, "--cap-add", "CAP_NET_ADMIN", "--rm", kImage, "oci-cni",
         "sh", "-c",
         "ip -4 -o addr show; ip route; ping -c 2 -W 10 169.254.77.1 >/dev/null && echo reached "
         "the gateway; mac=$(cat /sys/class/net/eth0/address); ip link set eth0 address "
         "02:00:00:00:00:99; ip neigh flush dev eth0; ping -c 2 -W 3 169.254.77.1 >/dev/null || "
         "echo spoofed frames dropped; ip link set eth0 address $mac; ping -c 2 -W 10 "
         "169.254.77.1 >/dev/null && echo reached it again"}));
    EXPECT_EQ(r.status, 0) << r.describe();
    EXPECT_NE(r.out.find("inet " + address), std::string::npos) << r.describe();
    EXPECT_NE(r.out.find("default via 169.254.77.1"), std::string::npos) << r.describe();
    EXPECT_NE(r.out.find("reached the gateway"), std::string::npos) << r.describe();
    EXPECT_NE(r.out.find("spoofed frames dropped"), std::string::npos) << r.describe();
    EXPECT_NE(r.out.find("reached it again"), std::string::npos) << r.describe();
    expect_no_residue("oci-cni");
    const auto links = run({"/usr/bin/ip", "-n", ns, "-o", "link", "show"});
    EXPECT_EQ(links.out.find("stk-"), std::string::npos)
        << "the tap outlived the run: " << links.out;
    EXPECT_NE(links.out.find("eth0"), std::string::npos) << links.describe();
    // The veth's redirect went with the sandbox: the namespace is CNI's again, and the next
    // container in it gets the network in turn.
    const auto filters =
        run({"/usr/sbin/tc", "-n", ns, "filter", "show", "dev", "eth0", "ingress"});
    EXPECT_EQ(filters.out.find("mirred"), std::string::npos) << filters.describe();
    const auto again =
        ctr(ctr_run({"--with-ns", "network:" + netns, "--rm", kImage, "oci-cni2", "sh", "-c",
                     "ping -c 1 -W 10 169.254.77.1 >/dev/null && echo up"}));
    EXPECT_EQ(again.out, "up\n") << again.describe();

    cni.remove();
}

// podman (Debian's 4.3, through conmon) with stockade as its runtime: its config.json brings a
// umask, a pids limit and a shared memory directory, all honoured in the guest.
TEST_F(Oci, PodmanRunsAContainerAsAMicroVm) {
    const std::string root = kWork + "/podman";
    const auto podman = [&](const std::vector<std::string>& args) {
        std::string command = "TMPDIR=" + root + "/tmp exec /usr/bin/podman --root " + root +
                              "/root --runroot " + root +
                              "/run --storage-driver vfs --cgroup-manager cgroupfs "
                              "--events-backend file --network-config-dir " +
                              root + "/networks --runtime " + stockade_bin();
        for (const std::string& a : args)
            command += " '" + a + "'";
        return run({"/bin/sh", "-c", command});
    };
    fs::create_directories(root + "/tmp");
    const auto loaded = podman({"load", "-i", kWork + "/image.tar"});
    ASSERT_EQ(loaded.status, 0) << loaded.describe();
    const std::string release = lab::guest_kernel_release();
    const auto r = podman({"run", "--rm", "--network", "none", kImage, "sh", "-c",
                           "echo out $(uname -r); umask; cat /sys/fs/cgroup/container/pids.max; "
                           "grep -c \" /dev/shm tmpfs \" /proc/mounts; echo err >&2; exit 3"});
    EXPECT_EQ(r.status, 3) << r.describe();
    EXPECT_EQ(r.out, "out " + release + "\n0022\n2048\n1\n") << r.describe();
    EXPECT_NE(r.err.find("err\n"), std::string::npos) << r.describe();
    // A CNI bridge network of podman's (link-local addresses; no masquerading or firewall
    // plugin, which would need the lab's iptables): the guest has the address podman gave the
    // container and reaches the lab host through the bridge.
    fs::create_directories(root + "/networks");
    write_file(root + "/networks/stk-podman.conflist",
               R"({"cniVersion": "0.4.0", "name": "stk-podman", "plugins": [{"type": "bridge",
                   "bridge": "stkpod0", "isGateway": true, "ipMasq": false,
                   "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}],
                            "ranges": [[{"subnet": "169.254.78.0/24",
                                         "gateway": "169.254.78.1"}]]}}]})");
    const auto net = podman({"run", "--rm", "--network", "stk-podman", "--cap-add", "NET_RAW",
                             kImage, "sh", "-c",
                             "ip -4 -o addr show eth0; ping -c 2 -W 10 169.254.78.1 >/dev/null "
                             "&& echo reached the host"});
    EXPECT_EQ(net.status, 0) << net.describe();
    EXPECT_NE(net.out.find("inet 169.254.78."), std::string::npos) << net.describe();
    EXPECT_NE(net.out.find("reached the host"), std::string::npos) << net.describe();
    const auto left = podman({"ps", "-a", "-q"});
    EXPECT_EQ(left.out, "") << left.describe();
    (void)run({"/usr/bin/ip", "link", "del", "stkpod0"});
}

TEST_F(Oci, CtrTaskExecKillAndDeleteWorkAndLeaveNothing) {
    const std::string id = "oci-task";
    auto started =
        // --seccomp: containerd's default profile, which each exec's process must then match
        ctr(ctr_run(
            {"-d", "--seccomp", kImage, id, "sh", "-c", "echo marker > /tmp/mark; sleep 600"}));
    ASSERT_EQ(started.status, 0) << started.describe();
    ASSERT_TRUE(lab::eventually(
        [&] {
            return ctr({"task", "ls"}).out.find("RUNNING") != std::string::npos;
        },
        30s))
        << ctr({"task", "ls"}).describe();
    const json state = json::parse(runtime({"state", id}).out);
    EXPECT_EQ(state["status"], "running") << state.dump();
    EXPECT_GT(state["pid"].get<int>(), 0) << state.dump();
    EXPECT_TRUE(fs::exists("/run/stockade/" + id + "/state.json"));

    // exec: output and status from inside the same guest (it sees the workload's file).
    const auto exec = ctr({"task", "exec", "--exec-id", "e1", id, "sh", "-c",
                           "cat /tmp/mark; echo to-err >&2; exit 5"});
    EXPECT_EQ(exec.status, 5) << exec.describe();
    EXPECT_EQ(exec.out, "marker\n") << exec.describe();
    EXPECT_NE(exec.err.find("to-err"), std::string::npos) << exec.describe();

    // exec -t: a terminal of the exec's own (a second one, beside none of the workload's),
    // whose size follows ctr's through PUT /exec/resize, typed input reaching it.
    const auto tty = run_on_terminal("task exec -t --exec-id e-tty " + id + " sh -c '" +
                                     terminal_check(6) + "'");
    expect_terminal_checked(tty, 6);

    // The runtime's own exec, as a shim without --process would call it: the command's
    // arguments in order, and a runc flag stockade cannot honour refused.
    const auto direct = runtime({"exec", id, "sh", "-c", "echo a  b; exit 4"});
    EXPECT_EQ(direct.status, 4) << direct.describe();
    EXPECT_EQ(direct.out, "a b\n") << direct.describe();
    // The runtime's exec on a terminal, not detached, with the process a shim gives (the
    // container's, with process.consoleSize): the master comes over the console socket, and
    // the guest's terminal starts at that size.
    {
        const std::string sock = kWork + "/console.sock", file = kWork + "/tty-process.json";
        json p = json::parse(lab::read_text(state["bundle"].get<std::string>() + "/config.json"))
                     .at("process");
        p["args"] = {"sh", "-c", "stty size; tty; exit 5"};
        p["terminal"] = true;
        p["consoleSize"] = {{"height", 21}, {"width", 65}};
        write_file(file, p.dump());
        ::unlink(sock.c_str());
        const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sock.c_str());
        ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        ASSERT_EQ(::listen(listener, 1), 0);
        auto done = std::async(std::launch::async, [&] {
            return runtime({"exec", "--tty", "--console-socket", sock, "--process", file, id});
        });
        const int conn = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
        ASSERT_GE(conn, 0);
        char name[64];
        iovec iov{name, sizeof name};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ASSERT_GT(::recvmsg(conn, &msg, 0), 0);
        const cmsghdr* c = CMSG_FIRSTHDR(&msg);
        ASSERT_TRUE(c != nullptr && c->cmsg_type == SCM_RIGHTS);
        int master = -1;
        std::memcpy(&master, CMSG_DATA(c), sizeof master);
        ::close(conn);
        ::close(listener);
        // Its output until the exec's end closes the slave (EIO).
        std::string seen;
        char buf[256];
        for (pollfd pf{master, POLLIN, 0}; ::poll(&pf, 1, 60'000) == 1;) {
            const ssize_t n = ::read(master, buf, sizeof buf);
            if (n <= 0) break;
            seen.append(buf, static_cast<std::size_t>(n));
        }
        ::close(master);
        const auto r = done.get();
        EXPECT_EQ(r.status, 5) << r.describe() << seen;
        EXPECT_NE(seen.find("21 65"), std::string::npos) << seen;
        EXPECT_NE(seen.find("/dev/pts/"), std::string::npos) << seen;
    }
    const auto as_user = runtime({"exec", "--user=1000", id, "id"});
    EXPECT_EQ(as_user.status, 1) << as_user.describe();
    EXPECT_NE(lab::read_text(kWork + "/runtime.log").find("--user=1000 is not supported"),
              std::string::npos)
        << lab::read_text(kWork + "/runtime.log");

    const auto ps = ctr({"task", "ps", id});
    EXPECT_EQ(ps.status, 0) << ps.describe();
    EXPECT_NE(ps.out.find(std::to_string(state["pid"].get<int>())), std::string::npos)
        << ps.describe();

    const auto killed = ctr({"task", "kill", "-s", "KILL", id});
    EXPECT_EQ(killed.status, 0) << killed.describe();
    ASSERT_TRUE(lab::eventually(
        [&] {
            return ctr({"task", "ls"}).out.find("STOPPED") != std::string::npos;
        },
        30s))
        << ctr({"task", "ls"}).describe();
    const auto deleted = ctr({"task", "delete", id});
    EXPECT_EQ(deleted.status, 0) << deleted.describe();
    EXPECT_NE((deleted.out + deleted.err).find("137"), std::string::npos) << deleted.describe();
    EXPECT_EQ(ctr({"container", "delete", id}).status, 0);
    expect_no_residue(id);
}

// A bundle of the test's own: the busybox root and a config.json like containerd's default.
std::string make_bundle(const std::string& name, const json& config) {
    const std::string dir = kWork + "/bundles/" + name;
    fs::create_directories(dir + "/rootfs/bin");
    fs::create_directories(dir + "/rootfs/tmp");
    fs::copy_file("/bin/busybox", dir + "/rootfs/bin/busybox",
                  fs::copy_options::overwrite_existing);
    for (const char* applet :
         {"sh", "cat", "id", "grep", "ls", "echo", "touch", "wc", "sleep", "ip", "ping"})
        if (!fs::is_symlink(dir + "/rootfs/bin/" + applet))
            fs::create_symlink("busybox", dir + "/rootfs/bin/" + applet);
    // A link out of the root, were it followed outside the guest's chroot.
    if (!fs::is_symlink(dir + "/rootfs/link")) fs::create_symlink("/", dir + "/rootfs/link");
    write_file(dir + "/config.json", config.dump());
    return dir;
}

json default_config() {
    const auto spec = run({"/usr/bin/ctr", "oci", "spec"});
    EXPECT_EQ(spec.status, 0) << spec.describe();
    json c = json::parse(spec.out);
    c["process"]["env"] = {"PATH=/bin"};
    return c;
}

TEST_F(Oci, TheBundlesProcessSettingsReachTheWorkload) {
    // As an engine's shim: the supervisor (--pid-file) is reaped here once the test is its
    // nearest subreaper, with the container's status.
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    json c = default_config();
    c["process"]["user"] = {{"uid", 1000}, {"gid", 1000}, {"additionalGids", {27}}};
    c["process"]["capabilities"] = {{"bounding", {"CAP_NET_BIND_SERVICE", "CAP_KILL"}},
                                    {"effective", {"CAP_NET_BIND_SERVICE"}},
                                    {"permitted", {"CAP_NET_BIND_SERVICE"}},
                                    {"inheritable", {"CAP_NET_BIND_SERVICE"}},
                                    {"ambient", {"CAP_NET_BIND_SERVICE"}}};
    c["process"]["rlimits"] = {{{"type", "RLIMIT_NOFILE"}, {"soft", 77}, {"hard", 99}}};
    c["process"]["args"] = {
        "sh", "-c",
        "id; grep -E '^(CapBnd|CapEff|CapAmb|NoNewPrivs)' /proc/self/status; ulimit -n; "
        "ulimit -Hn; cat /proc/kcore | wc -c; touch /proc/sys/x 2>/dev/null || echo ro-sys; "
        "ls /dev/null /dev/zero /dev/urandom >/dev/null && echo devs; hostname"};
    c["hostname"] = "oci-box";
    // A read-only root whose image lacks a mount point (/run), a mount through the image's
    // link to "/" (it must land inside the root), and a read-only path that keeps its
    // nosuid, nodev and noexec.
    c["root"]["readonly"] = true;
    c["mounts"].push_back({{"destination", "/link/inside"}, {"type", "tmpfs"}, {"source", "t"}});
    c["linux"]["readonlyPaths"].push_back("/dev/shm");
    // A host file bound in (copied), a guest kernel parameter, and a seccomp profile whose
    // errno (EXDEV) no other cause of a failed mkdir gives.
    write_file(kWork + "/hosts-file", "10.9.8.7 oci-host\n");
    c["mounts"].push_back({{"destination", "/etc/hosts"},
                           {"type", "bind"},
                           {"source", kWork + "/hosts-file"},
                           {"options", {"rbind", "ro"}}});
    c["linux"]["sysctl"] = {{"net.ipv4.ping_group_range", "0 0"}};
    c["linux"]["seccomp"] = {
        {"defaultAction", "SCMP_ACT_ALLOW"},
        {"architectures", {"SCMP_ARCH_X86_64"}},
        {"syscalls",
         {{{"names", {"mkdir", "mkdirat"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 18}}}}};
    c["process"]["args"][2] =
        c["process"]["args"][2].get<std::string>() +
        "; touch /x 2>/dev/null || echo ro-root; grep -c ' /inside tmpfs' /proc/mounts; "
        "grep ' /dev/shm ' /proc/mounts | grep -o 'ro,nosuid,nodev,noexec'; cat /etc/hosts; "
        "echo x 2>/dev/null >>/etc/hosts || echo ro-hosts; cat "
        "/proc/sys/net/ipv4/ping_group_range; mkdir /run/d 2>&1 | grep -o 'cross-device'; exit 9";
    const std::string bundle = make_bundle("settings", c);
    const std::string id = "oci-settings";
    const std::string out = kWork + "/settings.out", pid_file = kWork + "/settings.pid";
    // create's stdio become the workload's: files here, so that nothing waits on pipes.
    auto created = run({"/bin/sh", "-c",
                        stockade_bin() + " --root " + kWork + "/rr --log " + kWork +
                            "/settings.log create --bundle " + bundle + " --pid-file " + pid_file +
                            " " + id + " >" + out + " 2>&1 </dev/null"});
    ASSERT_EQ(created.status, 0) << created.describe() << lab::read_text(kWork + "/settings.log");
    const pid_t pid = std::stoi(lab::read_text(pid_file));
    EXPECT_EQ(json::parse(runtime({"state", id}).out)["status"], "created");
    EXPECT_EQ(runtime({"start", id}).status, 0);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 9) << status;
    const std::string text = lab::read_text(out);
    EXPECT_NE(text.find("uid=1000 gid=1000 groups=27"), std::string::npos) << text;
    EXPECT_NE(text.find("CapBnd:\t0000000000000420"), std::string::npos) << text;
    EXPECT_NE(text.find("CapEff:\t0000000000000400"), std::string::npos) << text;
    EXPECT_NE(text.find("CapAmb:\t0000000000000400"), std::string::npos) << text;
    EXPECT_NE(text.find("NoNewPrivs:\t1"), std::string::npos) << text;
    EXPECT_NE(text.find("\n77\n99\n0\nro-sys\ndevs\noci-box\nro-root\n1\nro,nosuid,nodev,noexec\n"
                        "10.9.8.7 oci-host\nro-hosts\n0\t0\ncross-device\n"),
              std::string::npos)
        << text;
    EXPECT_EQ(json::parse(runtime({"state", id}).out)["status"], "stopped");
    EXPECT_EQ(runtime({"delete", id}).status, 0);
    expect_no_residue(id);
    const auto again = runtime({"delete", id});
    EXPECT_EQ(again.status, 1);
    EXPECT_NE(again.err.find("does not exist"), std::string::npos) << again.describe();

    // A container that was created and never started is deleted without --force (as runc
    // does, and containerd asks when a start failed).
    auto second = run(
        {"/bin/sh", "-c",
         stockade_bin() + " create --bundle " + bundle + " " + id + " >/dev/null 2>&1 </dev/null"});
    ASSERT_EQ(second.status, 0) << second.describe();
    EXPECT_EQ(json::parse(runtime({"state", id}).out)["status"], "created");
    const auto removed = runtime({"delete", id});
    EXPECT_EQ(removed.status, 0) << removed.describe();
    expect_no_residue(id);
}

// A Kubernetes pod as CRI makes one, through the runtime's command line: the pause container
// (annotation "sandbox") holds the pod's CNI network namespace in its supervisor, and the pod's
// container joins it, and the pause container's IPC and UTS namespaces, through
// /proc/PID/ns/ of the pause container's pid; its guest gets the pod's address and reaches the
// gateway. Both leave nothing behind.
TEST_F(Oci, APodsContainerJoinsThePauseContainersNetwork) {
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    const CniNamespace cni{"stk-pod", "stkpod1", "79"};
    const std::string ns = cni.name, netns = cni.netns();
    const std::string address = cni.add();
    ASSERT_FALSE(address.empty());

    // create (its stdio files here) and start; the pid the pid file names.
    const auto create_and_start = [&](const std::string& id, const json& config) -> pid_t {
        const std::string bundle = make_bundle(id, config), pid_file = kWork + "/" + id + ".pid";
        const auto created = run({"/bin/sh", "-c",
                                  stockade_bin() + " --log " + kWork + "/" + id +
                                      ".log create --bundle " + bundle + " --pid-file " + pid_file +
                                      " " + id + " >" + kWork + "/" + id + ".out 2>&1 </dev/null"});
        EXPECT_EQ(created.status, 0)
            << created.describe() << lab::read_text(kWork + "/" + id + ".log");
        if (created.status != 0) return -1;
        EXPECT_EQ(runtime({"start", id}).status, 0);
        return std::stoi(lab::read_text(pid_file));
    };
    json pause = default_config();
    pause["annotations"] = {{"io.kubernetes.cri.container-type", "sandbox"}};
    pause["process"]["args"] = {"sleep", "600"};
    for (json& n : pause["linux"]["namespaces"])
        if (n["type"] == "network") n["path"] = netns;
    const pid_t holder = create_and_start("oci-pod-pause", pause);
    ASSERT_GT(holder, 0);
    struct stat want {
    }, held{};
    ASSERT_EQ(::stat(netns.c_str(), &want), 0);
    ASSERT_EQ(::stat(("/proc/" + std::to_string(holder) + "/ns/net").c_str(), &held), 0);
    EXPECT_EQ(held.st_ino, want.st_ino) << "the pause container's process holds the pod's network";

    json app = default_config();
    app["annotations"] = {{"io.kubernetes.cri.container-type", "container"}};
    app["process"]["args"] = {"sh", "-c",
                              "ip -4 -o addr show; ping -c 2 -W 10 169.254.79.1 >/dev/null && "
                              "echo reached the gateway; exit 7"};
    for (json& n : app["linux"]["namespaces"]) {
        const std::string type = n["type"];
        if (type == "network" || type == "ipc" || type == "uts")
            n["path"] =
                "/proc/" + std::to_string(holder) + "/ns/" + (type == "network" ? "net" : type);
    }
    const pid_t worker = create_and_start("oci-pod-app", app);
    ASSERT_GT(worker, 0);
    int status = 0;
    ASSERT_EQ(::waitpid(worker, &status, 0), worker);
    const std::string out = lab::read_text(kWork + "/oci-pod-app.out");
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 7) << status << "\n" << out;
    EXPECT_NE(out.find("inet " + address), std::string::npos) << out;
    EXPECT_NE(out.find("reached the gateway"), std::string::npos) << out;
    EXPECT_EQ(runtime({"delete", "oci-pod-app"}).status, 0);

    EXPECT_EQ(runtime({"kill", "oci-pod-pause", "KILL"}).status, 0);
    ASSERT_EQ(::waitpid(holder, &status, 0), holder);
    EXPECT_EQ(runtime({"delete", "oci-pod-pause"}).status, 0);
    for (const char* id : {"oci-pod-app", "oci-pod-pause"})
        expect_no_residue(id);
    const auto filters =
        run({"/usr/sbin/tc", "-n", ns, "filter", "show", "dev", "eth0", "ingress"});
    EXPECT_EQ(filters.out.find("mirred"), std::string::npos) << filters.describe();
    cni.remove();
}

TEST_F(Oci, BadBundlesAreRefusedByFieldAndLeaveNothing) {
    struct Case {
        std::string name, expect;
        std::function<void(json&)> change;
    };
    const std::vector<Case> cases = {
        {"version", "ociVersion", [](json& c) { c["ociVersion"] = "2.0.0"; }},
        {"userns", "linux.namespaces[5]: a user namespace is not supported",
         [](json& c) {
             c["linux"]["namespaces"].push_back({{"type", "user"}});
         }},
        {"bind", "a directory cannot be bound in",
         [](json& c) {
             c["mounts"].push_back({{"destination", "/data"},
                                    {"type", "bind"},
                                    {"source", "/etc"},
                                    {"options", {"rbind"}}});
         }},
        {"terminal", "process.terminal: a terminal needs --console-socket",
         [](json& c) { c["process"]["terminal"] = true; }},
        {"rootfs", "root.path", [](json& c) { c["root"]["path"] = "config.json"; }},
    };
    for (const Case& k : cases) {
        json c = default_config();
        c["process"]["args"] = {"true"};
        k.change(c);
        const std::string bundle = make_bundle("bad-" + k.name, c);
        const std::string id = "oci-bad-" + k.name;
        const auto r = runtime({"create", "--bundle", bundle, id});
        EXPECT_EQ(r.status, 1) << k.name << ": " << r.describe();
        EXPECT_NE(lab::read_text(kWork + "/runtime.log").find(k.expect), std::string::npos)
            << k.name << ": " << lab::read_text(kWork + "/runtime.log");
        expect_no_residue(id);
    }
    const std::string empty = kWork + "/bundles/empty";
    fs::create_directories(empty);
    const auto r = runtime({"create", "--bundle", empty, "oci-bad-empty"});
    EXPECT_EQ(r.status, 1) << r.describe();
    EXPECT_NE(lab::read_text(kWork + "/runtime.log").find("config.json"), std::string::npos);
    expect_no_residue("oci-bad-empty");
}

}  // namespace
}  // namespace stockade
