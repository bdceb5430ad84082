#pragma once
// MAC filtering in the kernel datapath, with tc (clsact + flower + gact) over libnl-route-3.
//
// Ingress of the tap = frames the sandbox sends. Flower cannot say "src_mac != X", so the
// rule is two filters, first match wins:
//   prio 1  flower src_mac X             action pass
//   prio 2  flower (matches everything)  action drop
// With MacFilter::strict the tap's egress (frames delivered to the sandbox) gets
//   prio 1  flower dst_mac X                          action pass
//   prio 2  flower dst_mac 01:00:00:00:00:00/01:...   action pass  (broadcast, multicast)
//   prio 3  flower (matches everything)               action drop
// so a sandbox never sees unicast flooded to other stations.
//
// Why tc and not a locked bridge port (IFLA_BRPORT_LOCKED, 5.18+): the tc rule works
// whether or not the tap is on a bridge, is in place before the tap is enslaved or up,
// states the policy itself (this MAC, nothing else) instead of deriving it from FDB state
// (a locked port admits every source MAC that has an FDB entry pointing at the port,
// whoever added it), and drops the frame before the bridge sees it at all.
#include <string_view>

#include "base/error.hpp"
#include "netsetup/mac.hpp"
#include "netsetup/netlink.hpp"
#include "netsetup/spec.hpp"

namespace stockade::net {

// Adds the clsact qdisc and the filters above to `ifindex` (which must have no clsact yet).
// Nothing to undo separately: they go when the tap is deleted.
[[nodiscard]] Result<> install_mac_filter(Netlink& nl, int ifindex, std::string_view name,
                                          const MacAddress& mac, MacFilter mode);

}  // namespace stockade::net
