#include "runner/registry/vsock.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/socket.h>
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
constexpr int kRestoredConnectSeconds = 30;

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

// The socket a restored sandbox's relay reaches the guest's init with. The guest answers
// once its vCPUs run, which comes after the restore itself: a generous connect timeout.
Result<UniqueFd> restored_notice_socket() {
    UniqueFd s(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!s) return fail_sys("socket(AF_VSOCK) for the restored guest's init");
    timeval timeout{kRestoredConnectSeconds, 0};
    if (::setsockopt(s.get(), AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &timeout, sizeof timeout) !=
        0)
        return fail_sys("SO_VM_SOCKETS_CONNECT_TIMEOUT");
    return s;
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
    auto claimed = [&]() -> Result<> {
        // The supervisor claims the CID: the sandbox's filters have no
        // VHOST_VSOCK_SET_GUEST_CID, nor any way to make a socket.
        handed.cid = STOCKADE_TRY(claim_guest_cid(handed.vhost.get()));
        auto [listener, port] = STOCKADE_TRY(listen_on_free_port());
        handed.listener = std::move(listener);
        handed.port = port;
        ctx.job.vsock_port = port;
        if (ctx.restoring) {
            handed.restored_socket = STOCKADE_TRY(restored_notice_socket());
            handed.restored_entropy.resize(guest_control::kRestoredEntropy);
            if (::getrandom(handed.restored_entropy.data(), handed.restored_entropy.size(), 0) !=
                static_cast<ssize_t>(handed.restored_entropy.size()))
                return fail_sys("getrandom");
        }
        return {};
    }();
    if (!claimed && spec.stdio == StdioMode::vsock)
        return std::unexpected(std::move(claimed).error().context("--stdio vsock"));
    if (!claimed) return std::unexpected(std::move(claimed).error().context("stdio over vsock"));
    return Host{};
}

Result<std::vector<BuiltDevice>> VsockKind::build(Handed handed, BuildContext& ctx) {
    auto vhost =
        STOCKADE_TRY(vhost::VhostDevice::adopt(std::move(handed.vhost), kVhostVsockDevice));
    auto vsock = virtio::Vsock::create(std::move(vhost), handed.cid);
    if (!vsock) return std::unexpected(std::move(vsock).error().context("stdio over vsock"));
    ctx.stdio = VsockStdio{std::move(handed.listener), handed.cid, handed.port,
                           std::move(handed.restored_socket), std::move(handed.restored_entropy)};
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
