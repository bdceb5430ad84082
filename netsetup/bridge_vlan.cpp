#include "netsetup/bridge_vlan.hpp"

#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <netlink/attr.h>

#include <algorithm>

namespace stockade::net {
namespace {

std::string vid_list(std::span<const std::uint16_t> vids) {
    std::string out;
    for (auto v : vids)
        out += fmt::format("{}{}", out.empty() ? "" : ",", v);
    return out;
}

ifinfomsg bridge_header(int ifindex) {
    ifinfomsg ifi{};
    ifi.ifi_family = AF_BRIDGE;
    ifi.ifi_index = ifindex;
    return ifi;
}

// One request carrying every VLAN, so a port never sits half-configured.
Result<> send_vlans(Netlink& nl, int type, int ifindex, std::span<const PortVlan> vlans,
                    std::string_view what) {
    if (vlans.empty()) return {};
    std::size_t payload = 64 + vlans.size() * NLA_ALIGN(NLA_HDRLEN + sizeof(bridge_vlan_info));
    auto msg = STOCKADE_TRY(new_message(type, 0, bridge_header(ifindex), payload));
    nlattr* spec = nla_nest_start(msg.get(), IFLA_AF_SPEC);
    if (!spec) return fail("{}: netlink message out of space", what);
    for (const auto& v : vlans) {
        bridge_vlan_info info{};
        info.vid = v.vid;
        info.flags = static_cast<std::uint16_t>((v.pvid ? BRIDGE_VLAN_INFO_PVID : 0) |
                                                (v.untagged ? BRIDGE_VLAN_INFO_UNTAGGED : 0));
        STOCKADE_TRY_VOID(
            nl_check(nla_put(msg.get(), IFLA_BRIDGE_VLAN_INFO, sizeof info, &info), what));
    }
    nla_nest_end(msg.get(), spec);
    return nl.request(msg.get(), what);
}

}  // namespace

Result<std::vector<PortVlan>> port_vlans(Netlink& nl, int ifindex) {
    auto what = fmt::format("reading the VLANs of bridge port #{}", ifindex);
    // The AF_BRIDGE link dump is the only way the kernel reports a port's VLANs.
    auto msg = STOCKADE_TRY(new_message(RTM_GETLINK, NLM_F_DUMP, bridge_header(0), 64));
    STOCKADE_TRY_VOID(nl_check(nla_put_u32(msg.get(), IFLA_EXT_MASK, RTEXT_FILTER_BRVLAN), what));
    std::vector<PortVlan> vlans;
    STOCKADE_TRY_VOID(nl.request(msg.get(), what, [&](nlmsghdr* hdr) {
        if (hdr->nlmsg_type != RTM_NEWLINK) return;
        auto* ifi = static_cast<ifinfomsg*>(nlmsg_data(hdr));
        if (ifi->ifi_index != ifindex) return;
        nlattr* tb[IFLA_MAX + 1] = {};
        if (nlmsg_parse(hdr, sizeof(ifinfomsg), tb, IFLA_MAX, nullptr) < 0 || !tb[IFLA_AF_SPEC])
            return;
        nlattr* a = nullptr;
        int rem = 0;
        nla_for_each_nested(a, tb[IFLA_AF_SPEC], rem) {
            if (nla_type(a) != IFLA_BRIDGE_VLAN_INFO ||
                nla_len(a) < static_cast<int>(sizeof(bridge_vlan_info)))
                continue;
            const auto* info = static_cast<const bridge_vlan_info*>(nla_data(a));
            vlans.push_back(PortVlan{info->vid, (info->flags & BRIDGE_VLAN_INFO_PVID) != 0,
                                     (info->flags & BRIDGE_VLAN_INFO_UNTAGGED) != 0});
        }
    }));
    std::sort(vlans.begin(), vlans.end(),
              [](const PortVlan& a, const PortVlan& b) { return a.vid < b.vid; });
    return vlans;
}

Result<> add_port_vlans(Netlink& nl, int ifindex, std::string_view name,
                        std::span<const PortVlan> vlans) {
    std::vector<std::uint16_t> vids;
    for (const auto& v : vlans)
        vids.push_back(v.vid);
    return send_vlans(nl, RTM_SETLINK, ifindex, vlans,
                      fmt::format("adding VLAN {} to bridge port {}", vid_list(vids), name));
}

Result<> del_port_vlans(Netlink& nl, int ifindex, std::string_view name,
                        std::span<const std::uint16_t> vids) {
    std::vector<PortVlan> vlans;
    for (auto v : vids)
        vlans.push_back(PortVlan{v, false, false});
    return send_vlans(nl, RTM_DELLINK, ifindex, vlans,
                      fmt::format("removing VLAN {} from bridge port {}", vid_list(vids), name));
}

Result<> set_port_isolated(Netlink& nl, int ifindex, std::string_view name, bool isolated) {
    auto what = fmt::format("{} bridge port {}", isolated ? "isolating" : "un-isolating", name);
    auto msg = STOCKADE_TRY(new_message(RTM_SETLINK, 0, bridge_header(ifindex), 64));
    // NLA_F_NESTED matters: without it the bridge reads IFLA_PROTINFO as the old
    // single-byte port state.
    nlattr* protinfo = nla_nest_start(msg.get(), IFLA_PROTINFO | NLA_F_NESTED);
    if (!protinfo) return fail("{}: netlink message out of space", what);
    STOCKADE_TRY_VOID(
        nl_check(nla_put_u8(msg.get(), IFLA_BRPORT_ISOLATED, isolated ? 1 : 0), what));
    nla_nest_end(msg.get(), protinfo);
    return nl.request(msg.get(), what);
}

}  // namespace stockade::net
