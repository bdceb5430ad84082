#pragma once
// Network interfaces over rtnetlink: look up, create a VLAN-filtering bridge, enslave,
// set MAC/MTU/up, delete. Every mutating call names its object in the error.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "netsetup/mac.hpp"
#include "netsetup/netlink.hpp"

namespace stockade::net {

struct LinkInfo {
    int ifindex = 0;
    std::string name;
    std::string kind;  // IFLA_INFO_KIND: "bridge", "tun", "veth", ...; empty for plain devices
    int master = 0;    // ifindex of the bridge (or bond) it is a port of, 0 for none
    unsigned flags = 0;
    std::uint32_t mtu = 0;
    std::optional<MacAddress> address;
    // Bridges only (IFLA_INFO_DATA):
    std::optional<bool> vlan_filtering;
    std::optional<std::uint16_t> default_pvid;

    [[nodiscard]] bool is_up() const;
    [[nodiscard]] bool is_bridge() const { return kind == "bridge"; }
};

// nullopt when no interface has that name / index.
[[nodiscard]] Result<std::optional<LinkInfo>> find_link(Netlink& nl, std::string_view name);
[[nodiscard]] Result<std::optional<LinkInfo>> find_link(Netlink& nl, int ifindex);
[[nodiscard]] Result<std::vector<LinkInfo>> list_links(Netlink& nl);

// A new bridge, administratively up, with VLAN filtering on and default_pvid 0: no port
// (and not the bridge's own host-facing port) gets VLAN 1 implicitly, so nothing is
// bridged until a VLAN is configured on purpose. Returns its ifindex.
[[nodiscard]] Result<int> create_bridge(Netlink& nl, std::string_view name);

// Makes `link` a port of `master` (0 releases it from its bridge).
[[nodiscard]] Result<> set_master(Netlink& nl, int ifindex, std::string_view name, int master,
                                  std::string_view master_name);
[[nodiscard]] Result<> set_link_up(Netlink& nl, int ifindex, std::string_view name, bool up);
[[nodiscard]] Result<> set_link_address(Netlink& nl, int ifindex, std::string_view name,
                                        const MacAddress& mac, std::optional<std::uint32_t> mtu);
// No IPv6 link-local address for the host on this interface (addr_gen_mode none): the
// host stack then sends no ND/MLD into a sandbox's tap and has no address there to be
// reached at. A kernel without IPv6 needs nothing, and gets nothing.
[[nodiscard]] Result<> disable_host_addresses(Netlink& nl, int ifindex, std::string_view name);
[[nodiscard]] Result<> delete_link(Netlink& nl, int ifindex, std::string_view name);

}  // namespace stockade::net
