#include "runner/registry/net_spec.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <string>
#include <utility>
#include <vector>

#include "netsetup/spec.hpp"
#include "runner/virtio/net.hpp"

namespace stockade {
namespace {

// tap=NAME attaches to a tap that is its owner's, host side and all: of netsetup's keys only
// the guest's MAC goes with it. The others make or change the host side, each refused with
// its reason (a key not listed, such as one netsetup learns later, is refused too).
constexpr std::string_view kExistingTapKeys[] = {"tap", "mac"};
constexpr std::pair<std::string_view, std::string_view> kHostSideKeys[] = {
    {"id", "names the record of a network stockade makes"},
    {"bridge", "puts the tap on a bridge"},
    {"vlan", "sets the VLANs of the tap's bridge port"},
    {"trunk", "sets the VLANs of the tap's bridge port"},
    {"uplink", "adds an interface to the tap's bridge"},
    {"isolated", "isolates the tap's bridge port"},
    {"mtu", "sets the tap's MTU (the guest is given the tap's own)"},
    {"queues", "multi-queue is chosen when a tap is made"},
    {"filter", "puts a MAC filter (tc rules) on the tap"},
    {"owner", "changes who may open the tap"},
};

Result<> check_existing_tap_keys(const std::vector<std::string_view>& keys) {
    for (std::string_view key : keys) {
        if (key.empty() || std::ranges::find(kExistingTapKeys, key) != std::end(kExistingTapKeys))
            continue;  // an empty field is netsetup's to report
        for (const auto& [host_key, why] : kHostSideKeys)
            if (key == host_key)
                return fail("--net: {}: {}, and tap=NAME leaves an existing tap as it is", key,
                            why);
        return fail("--net: {}: not an option with tap=NAME (tap, mac, vhost, addr, queue_size)",
                    key);
    }
    return {};
}

// netns=PATH: the tap is made in that network namespace and joined to its veth, whose MAC
// and address the guest takes (netsetup/netns.hpp); nothing else of the host side is asked.
constexpr std::string_view kNetnsKeys[] = {"queues"};

bool valid_ipv4_prefix(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) return false;
    const std::string ip(text.substr(0, slash));
    in_addr a{};
    if (::inet_pton(AF_INET, ip.c_str(), &a) != 1) return false;
    const std::string_view len = text.substr(slash + 1);
    unsigned prefix = 0;
    auto [end, ec] = std::from_chars(len.data(), len.data() + len.size(), prefix);
    return ec == std::errc{} && end == len.data() + len.size() && !len.empty() && prefix >= 1 &&
           prefix <= 32;
}

}  // namespace

Result<NetDeviceSpec> parse_net_device_spec(std::string_view text) {
    NetDeviceSpec out;
    bool vhost_seen = false, addr_seen = false, netns_seen = false, size_seen = false;
    std::vector<std::string_view> netsetup_keys;
    std::size_t pos = 0;
    while (!text.empty() && pos <= text.size()) {
        auto next = text.find(',', pos);
        if (next == std::string_view::npos) next = text.size();
        const std::string_view item = text.substr(pos, next - pos);
        pos = next + 1;
        if (item.starts_with("vhost=")) {
            if (vhost_seen) return fail("--net: vhost: given twice");
            vhost_seen = true;
            const auto v = item.substr(6);
            if (v == "on")
                out.vhost = VhostMode::on;
            else if (v == "off")
                out.vhost = VhostMode::off;
            else
                return fail("--net: vhost: '{}' is not on or off", v);
        } else if (item.starts_with("addr=")) {
            if (addr_seen) return fail("--net: addr: given twice");
            addr_seen = true;
            out.address = std::string(item.substr(5));
            if (!valid_ipv4_prefix(out.address))
                return fail(
                    "--net: addr: '{}' is not an IPv4 address with a prefix length "
                    "(A.B.C.D/N)",
                    out.address);
        } else if (item.starts_with("queue_size=")) {
            if (size_seen) return fail("--net: queue_size: given twice");
            size_seen = true;
            const auto v = item.substr(11);
            unsigned n = 0;
            const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec != std::errc{} || end != v.data() + v.size() || v.empty() ||
                !virtio::valid_net_queue_size(n))
                return fail("--net: queue_size: '{}' is not a power of two from {} to {}", v,
                            virtio::kNetMinQueueSize, virtio::kNetMaxQueueSize);
            out.queue_size = static_cast<std::uint16_t>(n);
        } else if (item.starts_with("netns=")) {
            if (netns_seen) return fail("--net: netns: given twice");
            netns_seen = true;
            out.netns = std::string(item.substr(6));
            if (out.netns.empty() || out.netns.front() != '/')
                return fail("--net: netns: '{}' is not an absolute path", out.netns);
        } else {
            if (!out.netsetup.empty()) out.netsetup += ',';
            out.netsetup += item;
            netsetup_keys.push_back(item.substr(0, item.find('=')));
        }
    }
    out.existing_tap = std::ranges::find(netsetup_keys, "tap") != netsetup_keys.end();
    if (netns_seen) {
        if (addr_seen)
            return fail("--net: addr: the guest takes the address of netns=PATH's interface");
        for (std::string_view key : netsetup_keys)
            if (!key.empty() && std::ranges::find(kNetnsKeys, key) == std::end(kNetnsKeys))
                return fail(
                    "--net: {}: not an option with netns=PATH (netns, vhost, queues, queue_size): "
                    "the tap is joined to the namespace's interface, whose MAC and address the "
                    "guest takes",
                    key);
    }
    if (out.existing_tap) STOCKADE_TRY_VOID(check_existing_tap_keys(netsetup_keys));
    net::SpecDefaults defaults;
    defaults.id = "sandbox";
    auto checked = net::parse_net_spec(out.netsetup, defaults);
    if (!checked) return fail("--net: {}", checked.error().message);
    if (checked->queues > virtio::kNetMaxQueuePairs)
        return fail("--net: queues: {} queue pairs, at most {}", checked->queues,
                    virtio::kNetMaxQueuePairs);
    return out;
}

}  // namespace stockade
