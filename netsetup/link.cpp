#include "netsetup/link.hpp"

#include <linux/if_link.h>
#include <net/if.h>
#include <netlink/attr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/inet6.h>

#include <cerrno>
#include <cstring>

namespace stockade::net {
namespace {

LinkInfo parse_link(nlmsghdr* hdr) {
    LinkInfo info;
    auto* ifi = static_cast<ifinfomsg*>(nlmsg_data(hdr));
    info.ifindex = ifi->ifi_index;
    info.flags = ifi->ifi_flags;
    nlattr* tb[IFLA_MAX + 1] = {};
    if (nlmsg_parse(hdr, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0) return info;
    if (tb[IFLA_IFNAME]) info.name = nla_get_string(tb[IFLA_IFNAME]);
    if (tb[IFLA_MASTER]) info.master = static_cast<int>(nla_get_u32(tb[IFLA_MASTER]));
    if (tb[IFLA_MTU]) info.mtu = nla_get_u32(tb[IFLA_MTU]);
    if (tb[IFLA_ADDRESS] && nla_len(tb[IFLA_ADDRESS]) == 6) {
        MacAddress mac;
        std::memcpy(mac.bytes.data(), nla_data(tb[IFLA_ADDRESS]), 6);
        info.address = mac;
    }
    if (tb[IFLA_LINKINFO]) {
        nlattr* li[IFLA_INFO_MAX + 1] = {};
        if (nla_parse_nested(li, IFLA_INFO_MAX, tb[IFLA_LINKINFO], nullptr) == 0) {
            if (li[IFLA_INFO_KIND]) info.kind = nla_get_string(li[IFLA_INFO_KIND]);
            if (info.kind == "bridge" && li[IFLA_INFO_DATA]) {
                nlattr* br[IFLA_BR_MAX + 1] = {};
                if (nla_parse_nested(br, IFLA_BR_MAX, li[IFLA_INFO_DATA], nullptr) == 0) {
                    if (br[IFLA_BR_VLAN_FILTERING])
                        info.vlan_filtering = nla_get_u8(br[IFLA_BR_VLAN_FILTERING]) != 0;
                    if (br[IFLA_BR_VLAN_DEFAULT_PVID])
                        info.default_pvid = nla_get_u16(br[IFLA_BR_VLAN_DEFAULT_PVID]);
                }
            }
        }
    }
    return info;
}

Result<std::optional<LinkInfo>> get_link(Netlink& nl, int ifindex, std::string_view name,
                                         std::string_view what) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_index = ifindex;
    auto msg = STOCKADE_TRY(new_message(RTM_GETLINK, 0, ifi, 256));
    if (!name.empty())
        STOCKADE_TRY_VOID(
            nl_check(nla_put_string(msg.get(), IFLA_IFNAME, std::string(name).c_str()), what));
    // Counters are of no interest here and make every answer larger.
    STOCKADE_TRY_VOID(
        nl_check(nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS), what));
    std::optional<LinkInfo> found;
    auto r = nl.request(msg.get(), what, [&](nlmsghdr* hdr) {
        if (hdr->nlmsg_type == RTM_NEWLINK) found = parse_link(hdr);
    });
    if (!r) {
        if (r.error().code == ENODEV) return std::optional<LinkInfo>{};
        return std::unexpected(std::move(r).error());
    }
    return found;
}

NlPtr<rtnl_link> link_ref(int ifindex) {
    NlPtr<rtnl_link> link(rtnl_link_alloc());
    if (link) rtnl_link_set_ifindex(link.get(), ifindex);
    return link;
}

// An empty change set: only the attributes set on it go into the request.
NlPtr<rtnl_link> new_changes() {
    return NlPtr<rtnl_link>(rtnl_link_alloc());
}

// Applies `changes` to the link `ifindex` (RTM_NEWLINK without NLM_F_CREATE).
Result<> change_link(Netlink& nl, int ifindex, rtnl_link* changes, std::string_view what) {
    auto orig = link_ref(ifindex);
    if (!orig) return fail("{}: out of memory", what);
    nl_msg* raw = nullptr;
    STOCKADE_TRY_VOID(nl_check(rtnl_link_build_change_request(orig.get(), changes, 0, &raw), what));
    NlPtr<nl_msg> msg(raw);
    return nl.request(msg.get(), what);
}

}  // namespace

bool LinkInfo::is_up() const {
    return (flags & IFF_UP) != 0;
}

Result<std::optional<LinkInfo>> find_link(Netlink& nl, std::string_view name) {
    return get_link(nl, 0, name, fmt::format("looking up interface {}", name));
}

Result<std::optional<LinkInfo>> find_link(Netlink& nl, int ifindex) {
    return get_link(nl, ifindex, {}, fmt::format("looking up interface #{}", ifindex));
}

Result<std::vector<LinkInfo>> list_links(Netlink& nl) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    auto msg = STOCKADE_TRY(new_message(RTM_GETLINK, NLM_F_DUMP, ifi, 64));
    STOCKADE_TRY_VOID(nl_check(nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS),
                               "listing interfaces"));
    std::vector<LinkInfo> links;
    STOCKADE_TRY_VOID(nl.request(msg.get(), "listing interfaces", [&](nlmsghdr* hdr) {
        if (hdr->nlmsg_type == RTM_NEWLINK) links.push_back(parse_link(hdr));
    }));
    return links;
}

Result<int> create_bridge(Netlink& nl, std::string_view name) {
    auto what = fmt::format("creating bridge {}", name);
    ifinfomsg ifi{};
    ifi.ifi_family = AF_UNSPEC;
    ifi.ifi_flags = IFF_UP;
    ifi.ifi_change = IFF_UP;
    auto msg = STOCKADE_TRY(new_message(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifi, 256));
    nl_msg* m = msg.get();
    STOCKADE_TRY_VOID(nl_check(nla_put_string(m, IFLA_IFNAME, std::string(name).c_str()), what));
    nlattr* linkinfo = nla_nest_start(m, IFLA_LINKINFO);
    if (!linkinfo) return fail("{}: netlink message out of space", what);
    STOCKADE_TRY_VOID(nl_check(nla_put_string(m, IFLA_INFO_KIND, "bridge"), what));
    nlattr* data = nla_nest_start(m, IFLA_INFO_DATA);
    if (!data) return fail("{}: netlink message out of space", what);
    STOCKADE_TRY_VOID(nl_check(nla_put_u8(m, IFLA_BR_VLAN_FILTERING, 1), what));
    STOCKADE_TRY_VOID(nl_check(nla_put_u16(m, IFLA_BR_VLAN_DEFAULT_PVID, 0), what));
    nla_nest_end(m, data);
    nla_nest_end(m, linkinfo);
    STOCKADE_TRY_VOID(nl.request(m, what));

    auto created = STOCKADE_TRY(find_link(nl, name));
    if (!created) return fail("{}: it vanished right after creation", what);
    return created->ifindex;
}

Result<> set_master(Netlink& nl, int ifindex, std::string_view name, int master,
                    std::string_view master_name) {
    auto what = master ? fmt::format("adding {} to bridge {}", name, master_name)
                       : fmt::format("removing {} from bridge {}", name, master_name);
    auto changes = new_changes();
    if (!changes) return fail("{}: out of memory", what);
    rtnl_link_set_master(changes.get(), master);
    return change_link(nl, ifindex, changes.get(), what);
}

Result<> set_link_up(Netlink& nl, int ifindex, std::string_view name, bool up) {
    auto what = fmt::format("setting {} {}", name, up ? "up" : "down");
    auto changes = new_changes();
    if (!changes) return fail("{}: out of memory", what);
    if (up)
        rtnl_link_set_flags(changes.get(), IFF_UP);
    else
        rtnl_link_unset_flags(changes.get(), IFF_UP);
    return change_link(nl, ifindex, changes.get(), what);
}

Result<> set_link_address(Netlink& nl, int ifindex, std::string_view name, const MacAddress& mac,
                          std::optional<std::uint32_t> mtu) {
    auto what = mtu ? fmt::format("setting MAC {} and MTU {} on {}", mac.to_string(), *mtu, name)
                    : fmt::format("setting MAC {} on {}", mac.to_string(), name);
    auto changes = new_changes();
    NlPtr<nl_addr> addr(nl_addr_build(AF_LLC, mac.bytes.data(), mac.bytes.size()));
    if (!changes || !addr) return fail("{}: out of memory", what);
    rtnl_link_set_addr(changes.get(), addr.get());
    if (mtu) rtnl_link_set_mtu(changes.get(), *mtu);
    return change_link(nl, ifindex, changes.get(), what);
}

Result<> disable_host_addresses(Netlink& nl, int ifindex, std::string_view name) {
    auto what = fmt::format("turning off IPv6 address generation on {}", name);
    auto changes = new_changes();
    if (!changes) return fail("{}: out of memory", what);
    STOCKADE_TRY_VOID(
        nl_check(rtnl_link_inet6_set_addr_gen_mode(changes.get(), IN6_ADDR_GEN_MODE_NONE), what));
    auto r = change_link(nl, ifindex, changes.get(), what);
    if (!r && r.error().code == EAFNOSUPPORT) return {};  // no IPv6 in this kernel
    return r;
}

Result<> delete_link(Netlink& nl, int ifindex, std::string_view name) {
    auto what = fmt::format("deleting interface {}", name);
    auto link = link_ref(ifindex);
    if (!link) return fail("{}: out of memory", what);
    nl_msg* raw = nullptr;
    STOCKADE_TRY_VOID(nl_check(rtnl_link_build_delete_request(link.get(), &raw), what));
    NlPtr<nl_msg> msg(raw);
    return nl.request(msg.get(), what);
}

}  // namespace stockade::net
