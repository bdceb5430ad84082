#include "netsetup/netns.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_ether.h>
#include <linux/magic.h>
#include <linux/nsfs.h>
#include <linux/pkt_cls.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <algorithm>

#include "netsetup/link.hpp"
#include "netsetup/tap.hpp"
#include "netsetup/tc.hpp"

namespace stockade::net {
namespace {

std::string ipv4_text(const void* bytes) {
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, bytes, text, sizeof text);
    return text;
}

// The interface's first IPv4 address, "A.B.C.D/N"; empty when it has none.
Result<std::string> ipv4_address(Netlink& nl, int ifindex) {
    ifaddrmsg ifa{};
    ifa.ifa_family = AF_INET;
    auto msg = STOCKADE_TRY(new_message(RTM_GETADDR, NLM_F_DUMP, ifa, 64));
    std::string found;
    STOCKADE_TRY_VOID(nl.request(msg.get(), "listing IPv4 addresses", [&](nlmsghdr* hdr) {
        if (hdr->nlmsg_type != RTM_NEWADDR || !found.empty()) return;
        const auto* a = static_cast<ifaddrmsg*>(nlmsg_data(hdr));
        if (a->ifa_family != AF_INET || static_cast<int>(a->ifa_index) != ifindex) return;
        nlattr* tb[IFA_MAX + 1] = {};
        if (nlmsg_parse(hdr, sizeof(ifaddrmsg), tb, IFA_MAX, nullptr) < 0) return;
        nlattr* addr = tb[IFA_LOCAL] ? tb[IFA_LOCAL] : tb[IFA_ADDRESS];
        if (addr && nla_len(addr) == 4 && a->ifa_prefixlen >= 1 && a->ifa_prefixlen <= 32)
            found = fmt::format("{}/{}", ipv4_text(nla_data(addr)), a->ifa_prefixlen);
    }));
    return found;
}

// The main table's IPv4 default route through `ifindex`: its gateway; empty when none.
Result<std::string> default_gateway(Netlink& nl, int ifindex) {
    rtmsg rt{};
    rt.rtm_family = AF_INET;
    auto msg = STOCKADE_TRY(new_message(RTM_GETROUTE, NLM_F_DUMP, rt, 64));
    std::string found;
    std::uint32_t best = 0;
    STOCKADE_TRY_VOID(nl.request(msg.get(), "listing IPv4 routes", [&](nlmsghdr* hdr) {
        if (hdr->nlmsg_type != RTM_NEWROUTE) return;
        const auto* r = static_cast<rtmsg*>(nlmsg_data(hdr));
        if (r->rtm_family != AF_INET || r->rtm_dst_len != 0 || r->rtm_table != RT_TABLE_MAIN ||
            r->rtm_type != RTN_UNICAST)
            return;
        nlattr* tb[RTA_MAX + 1] = {};
        if (nlmsg_parse(hdr, sizeof(rtmsg), tb, RTA_MAX, nullptr) < 0) return;
        if (!tb[RTA_GATEWAY] || nla_len(tb[RTA_GATEWAY]) != 4) return;
        if (tb[RTA_OIF] && static_cast<int>(nla_get_u32(tb[RTA_OIF])) != ifindex) return;
        const std::uint32_t metric = tb[RTA_PRIORITY] ? nla_get_u32(tb[RTA_PRIORITY]) : 0;
        if (!found.empty() && metric >= best) return;
        found = ipv4_text(nla_data(tb[RTA_GATEWAY]));
        best = metric;
    }));
    return found;
}

// The priority of the veth's redirect (the only filter stockade puts there).
constexpr std::uint16_t kVethPrio = 1;

}  // namespace

NetnsJoin::~NetnsJoin() {
    try {
        (void)close();
    } catch (...) {  // no thread to join the namespace with: the next sandbox there replaces it
    }
}

Result<> NetnsJoin::close() {
    if (!netns_) return {};
    const int veth = veth_;
    auto removed = in_netns<bool>(netns_.get(), [veth]() -> Result<bool> {
        auto nl = STOCKADE_TRY(Netlink::connect());
        STOCKADE_TRY_VOID(tc::delete_filter(nl, veth, tc::kIngress, kVethPrio,
                                            "removing the veth's redirect to the sandbox"));
        return true;
    });
    netns_.reset();
    if (!removed) return std::unexpected(std::move(removed).error());
    return {};
}

namespace detail {
Result<> enter_netns(int netns) {
    if (::setns(netns, CLONE_NEWNET) != 0) return fail_sys("joining the network namespace");
    return {};
}
}  // namespace detail

Result<UniqueFd> open_netns(const std::string& path) {
    const UniqueFd where(::open(path.c_str(), O_PATH | O_CLOEXEC));
    if (!where) return fail_sys(fmt::format("network namespace {}", path));
    struct statfs fs {};
    if (::fstatfs(where.get(), &fs) != 0 || fs.f_type != NSFS_MAGIC)
        return fail("{} is not a namespace", path);
    const std::string self = fmt::format("/proc/self/fd/{}", where.get());
    UniqueFd fd(::open(self.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK));
    if (!fd) return fail_sys(fmt::format("network namespace {}", path));
    if (::ioctl(fd.get(), NS_GET_NSTYPE) != CLONE_NEWNET)
        return fail("{} is not a network namespace", path);
    struct stat theirs {
    }, ours{};
    if (::fstat(fd.get(), &theirs) != 0 || ::stat("/proc/self/ns/net", &ours) != 0)
        return fail_sys(fmt::format("network namespace {}", path));
    if (theirs.st_dev == ours.st_dev && theirs.st_ino == ours.st_ino)
        return fail("{} is the host's own network namespace: its interfaces are not a guest's",
                    path);
    return fd;
}

Result<NetnsInterface> find_netns_interface(Netlink& nl) {
    const auto links = STOCKADE_TRY(list_links(nl));
    std::vector<const LinkInfo*> veths;
    for (const LinkInfo& l : links) {
        if ((l.flags & IFF_LOOPBACK) != 0) continue;
        if (l.kind == "veth")
            veths.push_back(&l);
        else if (l.is_up())
            return fail("{} in the network namespace is up and {}, not a veth", l.name,
                        l.kind.empty() ? "a plain device" : l.kind);
    }
    if (veths.size() != 1)
        return fail("the network namespace has {} veths; expected the one CNI made", veths.size());
    const LinkInfo& veth = *veths.front();
    if (!veth.address) return fail("{} has no MAC address", veth.name);
    NetnsInterface out{veth.ifindex, veth.name, *veth.address, veth.mtu, {}, {}};
    out.address = STOCKADE_TRY(ipv4_address(nl, veth.ifindex));
    if (out.address.empty())
        return fail("{} has no IPv4 address (IPv6-only networks are not supported)", veth.name);
    out.gateway = STOCKADE_TRY(default_gateway(nl, veth.ifindex));
    return out;
}

Result<std::vector<UniqueFd>> join_tap_to(Netlink& nl, const NetnsInterface& veth,
                                          std::string_view tap, unsigned queues) {
    TapConfig config;
    config.name = std::string(tap);
    config.queues = queues;
    config.persistent = false;
    auto fds = STOCKADE_TRY(create_tap(config));
    const auto link = STOCKADE_TRY(find_link(nl, tap));
    if (!link) return fail("tap {} vanished after it was made", tap);
    const int t = link->ifindex;
    STOCKADE_TRY_VOID(disable_host_addresses(nl, t, tap));
    STOCKADE_TRY_VOID(set_link_address(nl, t, tap, *link->address, veth.mtu));
    // The guest's frames: only from the veth's MAC, out through the veth.
    const auto out =
        fmt::format("redirecting {}'s frames from {} to {}", tap, veth.mac.to_string(), veth.name);
    STOCKADE_TRY_VOID(tc::add_clsact(nl, t, out));
    auto to_veth = STOCKADE_TRY(tc::redirect_to(veth.ifindex, out));
    STOCKADE_TRY_VOID(tc::add_flower(nl, t, tc::kIngress, 1,
                                     tc::MacMatch{true, veth.mac.bytes, tc::kWholeMac},
                                     to_veth.get(), out));
    auto drop = STOCKADE_TRY(tc::verdict(TC_ACT_SHOT, out));
    STOCKADE_TRY_VOID(tc::add_flower(nl, t, tc::kIngress, 2, std::nullopt, drop.get(), out));
    STOCKADE_TRY_VOID(set_link_up(nl, t, tap, true));
    // Everything that reaches the veth: to the guest. Last: nothing after it can fail.
    const auto in = fmt::format("redirecting {}'s frames to {}", veth.name, tap);
    STOCKADE_TRY_VOID(tc::add_clsact(nl, veth.ifindex, in, false));
    auto to_tap = STOCKADE_TRY(tc::redirect_to(t, in));
    auto added =
        tc::add_flower(nl, veth.ifindex, tc::kIngress, kVethPrio, std::nullopt, to_tap.get(), in);
    if (!added && added.error().code == EEXIST) {
        // Another sandbox's, unless no other tap is here: then one whose supervisor died
        // without removing it, pointing at nothing, which goes.
        const auto links = STOCKADE_TRY(list_links(nl));
        if (std::ranges::any_of(
                links, [&](const LinkInfo& l) { return l.kind == "tun" && l.ifindex != t; }))
            return fail("{}: the veth is joined to another sandbox already", in);
        STOCKADE_TRY_VOID(tc::delete_filter(nl, veth.ifindex, tc::kIngress, kVethPrio, in));
        added = tc::add_flower(nl, veth.ifindex, tc::kIngress, kVethPrio, std::nullopt,
                               to_tap.get(), in);
    }
    STOCKADE_TRY_VOID(std::move(added));
    return fds;
}

}  // namespace stockade::net
