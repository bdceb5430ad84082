#include "runner/registry/vsock.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
// after sys/socket.h, which it needs
#include <linux/vm_sockets.h>

#include <CLI/CLI.hpp>

#include "base/io.hpp"
#include "base/log.hpp"
#include "base/uapi.hpp"
#include "guest/control.hpp"
#include "runner/registry/vhost_rules.hpp"
#include "runner/virtio/vsock.hpp"
#include "vhost/vhost.hpp"

namespace stockade {
namespace {

constexpr const char* kVhostVsockDevice = "/dev/vhost-vsock";
// Guest CIDs are host-wide; a random one is taken again only when another VM holds it.
constexpr int kCidAttempts = 32;
constexpr int kRestoredConnectSeconds = 2;
constexpr int kRestoredAttempts = 4;

Result<std::uint32_t> claim_guest_cid(int vhost) {
    for (int attempt = 0;; ++attempt) {
        std::uint32_t r = 0;
        if (::getrandom(&r, sizeof r, 0) != sizeof r) return fail_sys("getrandom");
        const std::uint32_t cid = 3 + r % (0xffff'fffeu - 3);  // 3 .. U32_MAX-1
        auto claimed = vhost::vsock_set_guest_cid(vhost, cid);
        if (claimed) return cid;
        if (claimed.error().code != EADDRINUSE || attempt + 1 == kCidAttempts)
            return std::unexpected(std::move(claimed).error());
    }
}

// A listening AF_VSOCK socket on a free port; returns it and the port.
Result<std::pair<UniqueFd, std::uint32_t>> listen_on_free_port() {
    UniqueFd listener(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listener) return fail_sys("socket(AF_VSOCK)");
    sockaddr_vm addr{};
    addr.svm_family = AF_VSOCK;
    addr.svm_cid = VMADDR_CID_ANY;
    addr.svm_port = VMADDR_PORT_ANY;
    socklen_t len = sizeof addr;
    if (::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), len) != 0)
        return fail_sys("binding the vsock stdio socket");
    // The workload's five streams, then four per exec, may all be connecting at once.
    if (::listen(listener.get(), 32) != 0) return fail_sys("listening on the vsock stdio socket");
    if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        return fail_sys("getsockname on the vsock stdio socket");
    return std::pair{std::move(listener), addr.svm_port};
}

// A vsock stream socket bound to a free reserved port (1-1023), with short timeouts: the
// restored notice's.
Result<UniqueFd> reserved_port_socket() {
    for (int tries = 0;; ++tries) {
        UniqueFd s(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (!s) return fail_sys("socket(AF_VSOCK)");
        std::uint16_t r = 0;
        if (::getrandom(&r, sizeof r, 0) != sizeof r) return fail_sys("getrandom");
        sockaddr_vm addr{};
        addr.svm_family = AF_VSOCK;
        addr.svm_cid = VMADDR_CID_ANY;
        addr.svm_port = 1 + r % 1023u;
        if (::bind(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            if (errno == EADDRINUSE && tries < 64) continue;
            return fail_sys(
                fmt::format("binding vsock port {} (a reserved port: needs "
                            "CAP_NET_BIND_SERVICE)",
                            addr.svm_port));
        }
        timeval timeout{kRestoredConnectSeconds, 0};
        if (::setsockopt(s.get(), AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &timeout,
                         sizeof timeout) != 0 ||
            ::setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout) != 0)
            return fail_sys("vsock socket timeouts");
        return s;
    }
}

}  // namespace

void VsockKind::add_options(CLI::App& app, Options& options) {
    app.add_option("--stdio", options.stdio,
                   "how CMD's stdin, stdout, stderr and status travel: vsock (required) or "
                   "serial; default vsock when /dev/vhost-vsock exists, else serial")
        ->check(CLI::IsMember({"vsock", "serial"}));
}

Result<> VsockKind::apply(const Options& options, Spec& spec) {
    if (!options.stdio.empty())
        spec.stdio = options.stdio == "vsock" ? StdioMode::vsock : StdioMode::serial;
    return {};
}

Result<std::optional<VsockKind::Handed>> VsockKind::open(const Spec& spec, OpenContext& ctx) {
    if (spec.stdio == StdioMode::serial) return std::optional<Handed>{};
    auto vhost = open_file(kVhostVsockDevice, O_RDWR);
    if (!vhost) {
        if (spec.stdio == StdioMode::vsock)
            return std::unexpected(std::move(vhost).error().context("--stdio vsock"));
        log::debug("{}; the workload's stdio uses the serial console", vhost.error().message);
        return std::optional<Handed>{};
    }
    // The port is known only once the listener exists (claim); the job's size is not
    // (guest/job.hpp writes the port in a fixed width), so the boot can be planned now.
    ctx.job.vsock_port = 0;
    Handed handed;
    handed.vhost = std::move(*vhost);
    return std::optional<Handed>(std::move(handed));
}

Result<VsockKind::Host> VsockKind::claim(Handed& handed, const Spec& spec, ClaimContext& ctx) {
    Host host;
    auto claimed = [&]() -> Result<> {
        // The supervisor claims the CID: the sandbox's filters have no
        // VHOST_VSOCK_SET_GUEST_CID, nor any way to make a socket.
        handed.cid = STOCKADE_TRY(claim_guest_cid(handed.vhost.get()));
        auto [listener, port] = STOCKADE_TRY(listen_on_free_port());
        handed.listener = std::move(listener);
        ctx.job.vsock_port = port;
        host = Host{ctx.restoring, handed.cid, port};
        return {};
    }();
    if (!claimed && spec.stdio == StdioMode::vsock)
        return std::unexpected(std::move(claimed).error().context("--stdio vsock"));
    if (!claimed) return std::unexpected(std::move(claimed).error().context("stdio over vsock"));
    return host;
}

bool VsockKind::answer_clock_request(int s) {
    const timeval wait{1, 0};  // init waits as long; the supervise loop waits meanwhile
    char asked = 0;
    if (::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait) != 0 ||
        ::read(s, &asked, 1) != 1 || asked != guest_control::kClockRequest) {
        log::debug("the restored guest did not ask for the clock again");
        return false;
    }
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    if (auto w = write_all(
            s, guest_control::encode_clock({now.tv_sec, static_cast<std::uint32_t>(now.tv_nsec)}));
        !w) {
        log::debug("answering the restored guest's clock request: {}", w.error().message);
        return false;
    }
    return true;
}

Result<> VsockKind::tell_restored_guest(const Host& host) {
    std::string why;
    for (int attempt = 0; attempt < kRestoredAttempts; ++attempt) {
        auto told = [&]() -> Result<> {
            UniqueFd s = STOCKADE_TRY(reserved_port_socket());
            sockaddr_vm init{};
            init.svm_family = AF_VSOCK;
            init.svm_cid = host.cid;
            init.svm_port = guest_control::kRestoredPort;
            if (::connect(s.get(), reinterpret_cast<sockaddr*>(&init), sizeof init) != 0)
                return fail_sys(fmt::format("connecting to CID {} port {}", host.cid,
                                            guest_control::kRestoredPort));
            guest_control::Message m{guest_control::MessageType::restored, 0, std::nullopt};
            guest_control::Restored r;
            r.port = host.port;
            r.entropy.resize(guest_control::kRestoredEntropy);
            if (::getrandom(r.entropy.data(), r.entropy.size(), 0) !=
                static_cast<ssize_t>(r.entropy.size()))
                return fail_sys("getrandom");
            timespec now{};
            ::clock_gettime(CLOCK_REALTIME, &now);
            r.realtime_sec = now.tv_sec;
            r.realtime_nsec = static_cast<std::uint32_t>(now.tv_nsec);
            m.restored = std::move(r);
            STOCKADE_TRY_VOID(write_all(s.get(), guest_control::encode(m)));
            answer_clock_request(s.get());
            return {};
        }();
        if (told) return {};
        why = told.error().message;
        log::debug("telling the restored guest (try {}): {}", attempt + 1, why);
    }
    return fail("the restored guest's init did not take its notice: {}", why);
}

Result<std::vector<BuiltDevice>> VsockKind::build(Handed handed, BuildContext& ctx) {
    auto vhost =
        STOCKADE_TRY(vhost::VhostDevice::adopt(std::move(handed.vhost), kVhostVsockDevice));
    auto vsock = virtio::Vsock::create(std::move(vhost), handed.cid);
    if (!vsock) return std::unexpected(std::move(vsock).error().context("stdio over vsock"));
    ctx.stdio = VsockStdio{std::move(handed.listener), handed.cid};
    std::vector<BuiltDevice> out;
    out.push_back({std::move(*vsock), ""});  // the relay reports the stdio's bytes
    return out;
}

void VsockKind::add_seccomp_rules(DeviceThreadProfiles profiles) {
    // vhost-vsock started and stopped with the driver (activation, reset); the guest's CID
    // was claimed by the supervisor
    for (policy::SeccompProfile* p : {&profiles.vcpu, &profiles.event_loop})
        allow_vhost_rings(*p).allow_ioctl({STOCKADE_IOCTL(VHOST_VSOCK_SET_RUNNING)});
}

}  // namespace stockade
