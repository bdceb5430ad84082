#include "runner/registry/net.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <sys/syscall.h>

#include <algorithm>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/io.hpp"
#include "base/log.hpp"
#include "base/uapi.hpp"
#include "netsetup/link.hpp"
#include "netsetup/netlink.hpp"
#include "netsetup/spec.hpp"
#include "netsetup/tap.hpp"
#include "runner/registry/vhost_rules.hpp"
#include "runner/virtio/net.hpp"
#include "vhost/vhost.hpp"

namespace stockade {
namespace {

constexpr const char* kVhostNetDevice = "/dev/vhost-net";

// /dev/vhost-net for the chosen datapath: required with vhost=on, used when it opens with
// the default, never with vhost=off.
Result<UniqueFd> open_vhost_net(VhostMode mode) {
    if (mode == VhostMode::off) return UniqueFd{};
    auto fd = open_file(kVhostNetDevice, O_RDWR);
    if (fd) return std::move(*fd);
    if (mode == VhostMode::on)
        return std::unexpected(std::move(fd).error().context("--net vhost=on"));
    log::debug("{}; using the userspace network datapath", fd.error().message);
    return UniqueFd{};
}

// tap=NAME: a queue of the user's tap. TUNSETIFF on a name no interface has would make a
// new tap, so the name must be a tun device first (one deleted between the two is replaced
// by a non-persistent tap, gone with the sandbox). Attaching sets the flags and the vnet
// header size; the offloads follow the guest's features, as on a fresh tap. The guest gets
// the tap's MTU.
Result<UniqueFd> attach_existing_tap(net::NetSpec& spec) {
    auto nl = STOCKADE_TRY(net::Netlink::connect());
    const auto link = STOCKADE_TRY(net::find_link(nl, spec.tap));
    if (!link)
        return fail(
            "--net: tap {} does not exist: create it (ip tuntap add {} mode tap) or drop tap= "
            "to let stockade make one",
            spec.tap, spec.tap);
    if (link->kind != "tun")
        return fail("--net: {} is not a tap ({})", spec.tap,
                    link->kind.empty() ? "a device" : fmt::format("kind {}", link->kind));
    auto fds = net::attach_tap(spec.tap, 1);
    if (!fds) return std::unexpected(std::move(fds).error().context("--net"));
    spec.mtu = link->mtu;
    return std::move(fds->front());
}

}  // namespace

void NetKind::add_options(CLI::App& app, Options& options) {
    app.add_option("--net", options.text,
                   "a virtio-net interface on a fresh tap: a `stockade net` spec (id defaults "
                   "to the sandbox id, e.g. bridge=br0,vlan=10) plus vhost=on|off (the "
                   "kernel's vhost-net datapath; default on when /dev/vhost-net exists) and "
                   "addr=A.B.C.D/N (the guest's IPv4 address, set by stockade-init); "
                   "queues=N (1..16) makes a multi-queue tap and offers the guest N queue "
                   "pairs, of which Linux uses one per vCPU; queue_size=N (a power of two, "
                   "64..1024, default 256) sizes every virtqueue; or on an "
                   "existing tap, left as it is (no bridge, MAC filter or MTU from stockade): "
                   "tap=NAME with only mac=, vhost= and addr=; or netns=PATH (an OCI "
                   "container's network namespace): a tap there joined to its veth, whose MAC, "
                   "address and default route the guest takes")
        ->each([&options](const std::string&) { options.given = true; });
}

Result<> NetKind::apply(const Options& options, Spec& spec) {
    if (options.given) spec = STOCKADE_TRY(parse_net_device_spec(options.text));
    return {};
}

Result<std::optional<NetKind::Handed>> NetKind::open(const Spec& spec, OpenContext& ctx) {
    if (!spec) return std::optional<Handed>{};
    net::SpecDefaults defaults;
    defaults.id = std::string(ctx.sandbox_id);
    auto parsed = net::parse_net_spec(spec->netsetup, defaults);
    if (!parsed) return std::unexpected(std::move(parsed).error().context("--net"));
    Handed h{std::move(*parsed), {}, {}, {}, std::nullopt, spec->queue_size};
    if (!spec->address.empty()) ctx.job.net = JobNet{h.spec.mac.to_string(), spec->address, {}};
    if (!spec->netns.empty()) {
        // The guest takes the namespace's interface: its MAC, MTU, address and gateway.
        const std::string what = fmt::format("--net netns={}", spec->netns);
        auto ns = net::open_netns(spec->netns);
        if (!ns) return std::unexpected(std::move(ns).error().context(what));
        auto veth =
            net::in_netns<net::NetnsInterface>(ns->get(), []() -> Result<net::NetnsInterface> {
                auto nl = STOCKADE_TRY(net::Netlink::connect());
                return net::find_netns_interface(nl);
            });
        if (!veth) return std::unexpected(std::move(veth).error().context(what));
        h.spec.mac = veth->mac;
        h.spec.mtu = veth->mtu;
        ctx.job.net = JobNet{veth->mac.to_string(), veth->address, veth->gateway};
        h.netns = std::move(*ns);
        h.veth = std::move(*veth);
    }
    // One vhost-net per queue pair (each is a kernel worker): all of them, or the userspace
    // datapath.
    for (unsigned q = 0; q < h.spec.queues; ++q) {
        auto fd = STOCKADE_TRY(open_vhost_net(spec->vhost));
        if (!fd) {  // every pair on one datapath, so the userspace one
            h.vhost.clear();
            break;
        }
        h.vhost.push_back(std::move(fd));
    }
    return std::optional<Handed>(std::move(h));
}

Result<NetKind::Host> NetKind::claim(Handed& handed, const Spec& spec, ClaimContext&) {
    if (handed.veth) {
        auto taps = net::in_netns<std::vector<UniqueFd>>(
            handed.netns.get(), [&]() -> Result<std::vector<UniqueFd>> {
                auto nl = STOCKADE_TRY(net::Netlink::connect());
                return net::join_tap_to(nl, *handed.veth, handed.spec.tap, handed.spec.queues);
            });
        if (!taps) return std::unexpected(std::move(taps).error().context("--net netns"));
        handed.taps = std::move(*taps);
        // The sandbox gets the tap, never the namespace; the supervisor removes the veth's
        // redirect at the end (the tap goes with its descriptors).
        Host host;
        host.netns.emplace(std::move(handed.netns), handed.veth->ifindex);
        return host;
    }
    if (spec->existing_tap) {
        handed.taps.push_back(STOCKADE_TRY(attach_existing_tap(handed.spec)));
        return Host{};  // the user's tap: nothing to tear down, nothing for `stockade rm`
    }
    net::NetOptions options;
    options.persistent = false;  // a per-run tap: gone with its last fd
    auto handle = net::NetworkHandle::open(handed.spec, options);
    if (!handle) return std::unexpected(std::move(handle).error().context("--net"));
    auto fds = handle->take_tap_fds();
    if (fds.size() != handed.spec.queues)
        return fail("--net: expected {} tap queues, got {}", handed.spec.queues, fds.size());
    handed.taps = std::move(fds);
    return Host{std::move(*handle), std::nullopt};
}

std::vector<int> NetKind::fds(const Handed& handed) {
    std::vector<int> out;
    for (const UniqueFd& fd : handed.taps)
        out.push_back(fd.get());
    for (const UniqueFd& fd : handed.vhost)
        out.push_back(fd.get());
    return out;
}

Result<std::vector<BuiltDevice>> NetKind::build(Handed handed, BuildContext&) {
    if (handed.taps.empty() || (!handed.vhost.empty() && handed.vhost.size() != handed.taps.size()))
        return fail("--net: {} tap queues and {} vhost-net devices", handed.taps.size(),
                    handed.vhost.size());
    virtio::NetBackend backend{
        std::move(handed.taps.front()), handed.spec.mac.bytes, {}, std::nullopt};
    if (handed.spec.mtu) backend.mtu = static_cast<std::uint16_t>(*handed.spec.mtu);
    if (handed.queue_size != 0) backend.queue_size = handed.queue_size;
    // VHOST_SET_OWNER: the kernel's worker serves this process's memory from now on (one
    // worker per queue pair).
    auto adopt = [](UniqueFd fd) {
        return vhost::VhostDevice::adopt(std::move(fd), kVhostNetDevice);
    };
    if (!handed.vhost.empty()) backend.vhost = STOCKADE_TRY(adopt(std::move(handed.vhost.front())));
    for (std::size_t k = 1; k < handed.taps.size(); ++k) {
        virtio::NetQueuePair pair{std::move(handed.taps[k]), std::nullopt};
        if (!handed.vhost.empty()) pair.vhost = STOCKADE_TRY(adopt(std::move(handed.vhost[k])));
        backend.more_pairs.push_back(std::move(pair));
    }
    auto net = virtio::Net::create(std::move(backend));
    if (!net) return std::unexpected(std::move(net).error().context("--net"));
    std::vector<BuiltDevice> out;
    out.push_back({std::move(*net), "net"});
    return out;
}

void NetKind::add_seccomp_rules(DeviceThreadProfiles profiles) {
    // vhost-net started and stopped with the driver (activation, reset), and the tap told
    // which offloads the guest accepted
    for (policy::SeccompProfile* p : {&profiles.vcpu, &profiles.event_loop})
        allow_vhost_rings(*p).allow_ioctl({STOCKADE_IOCTL(VHOST_NET_SET_BACKEND),
                                           STOCKADE_IOCTL(TUNSETOFFLOAD),
                                           // the driver chose how many queue pairs it uses
                                           // (control queue): the others' tap queues detached
                                           STOCKADE_IOCTL(TUNSETQUEUE)});
    // the userspace datapath moves frames on the event loop (writev of a frame to the tap)
    profiles.event_loop.allow({SYS_writev});
}

}  // namespace stockade
