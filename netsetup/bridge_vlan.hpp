#pragma once
// Per-port VLAN membership on a VLAN-filtering bridge, and bridge port flags, over
// rtnetlink (AF_BRIDGE RTM_SETLINK/RTM_DELLINK with IFLA_AF_SPEC, what `bridge vlan` sends).
// libnl-route-3.7 can read a port's VLAN bitmap but not change it, so these build the
// messages with libnl-3's attribute API.
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "netsetup/netlink.hpp"

namespace stockade::net {

struct PortVlan {
    std::uint16_t vid = 0;
    bool pvid = false;      // untagged frames entering the port are classified into vid
    bool untagged = false;  // frames of vid leave the port untagged
    bool operator==(const PortVlan&) const = default;
};

// An access port: its one VLAN is the PVID and leaves untagged.
[[nodiscard]] inline PortVlan access_vlan(std::uint16_t vid) {
    return {vid, true, true};
}
// A trunk member: tagged both ways.
[[nodiscard]] inline PortVlan tagged_vlan(std::uint16_t vid) {
    return {vid, false, false};
}

// The VLANs configured on bridge port `ifindex` (or on the bridge's own port when
// ifindex is the bridge), sorted by vid.
[[nodiscard]] Result<std::vector<PortVlan>> port_vlans(Netlink& nl, int ifindex);

[[nodiscard]] Result<> add_port_vlans(Netlink& nl, int ifindex, std::string_view name,
                                      std::span<const PortVlan> vlans);
[[nodiscard]] Result<> del_port_vlans(Netlink& nl, int ifindex, std::string_view name,
                                      std::span<const std::uint16_t> vids);

// IFLA_BRPORT_ISOLATED: an isolated port exchanges frames only with non-isolated ports
// (the uplink), never with another isolated port.
[[nodiscard]] Result<> set_port_isolated(Netlink& nl, int ifindex, std::string_view name,
                                         bool isolated);

}  // namespace stockade::net
