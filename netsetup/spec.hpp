#pragma once
// NetSpec: one sandbox network interface, parsed from the string that both
// `stockade run --net SPEC` and `stockade net up|down|show SPEC` take (README.md):
//
//   id=sb0,bridge=br-sb,vlan=10,uplink=eth0,filter=strict
//
// Parsing is pure: it validates every field and fills the defaults (tap name, MAC, VLAN 1
// on a bridge) without looking at the host. What needs the host (does the uplink exist?
// is the bridge name taken by something else?) is checked by up() before it changes anything.
#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "netsetup/mac.hpp"

namespace stockade::net {

// What the kernel datapath enforces on the sandbox's tap (mac_filter.hpp).
enum class MacFilter {
    off,     // nothing: the sandbox may send with any source MAC
    source,  // "mac": frames from the sandbox with a source MAC other than its own are dropped
    strict,  // "strict": as source, and only broadcast/multicast and frames to its own MAC
             // are delivered to it
};

[[nodiscard]] std::string_view to_string(MacFilter filter);

inline constexpr std::uint16_t kMinVlan = 1;
inline constexpr std::uint16_t kMaxVlan = 4094;     // 0 and 4095 are reserved by 802.1Q
inline constexpr std::uint32_t kMinMtu = 68;        // IPv4's minimum, the kernel's ETH_MIN_MTU
inline constexpr std::uint32_t kMaxTapMtu = 65521;  // tun: 65535 minus the Ethernet header
inline constexpr unsigned kMaxQueues = 256;         // tun's MAX_TAP_QUEUES

struct NetSpec {
    std::string id;                     // the sandbox id: names the state file, derives tap and MAC
    std::string tap;                    // tap interface name (derived from id when not given)
    MacAddress mac;                     // the sandbox's MAC (derived from id when not given)
    std::optional<std::string> bridge;  // bridge to attach the tap to (created if absent)
    std::optional<std::uint16_t> vlan;  // access VLAN: PVID + untagged on the tap's port
    std::vector<std::uint16_t> trunk;   // tagged VLANs on the tap's port, sorted, unique
    std::optional<std::string> uplink;  // existing interface added to the bridge as a trunk
    std::optional<std::uint32_t> mtu;   // tap MTU; the kernel default (1500) when absent
    unsigned queues = 1;                // tap queues (>1: IFF_MULTI_QUEUE, one fd each)
    MacFilter filter = MacFilter::source;
    bool isolated = false;           // bridge port isolation: no traffic to other isolated ports
    std::optional<uid_t> owner_uid;  // TUNSETOWNER: who may attach to the tap
    std::optional<gid_t> owner_gid;  // TUNSETGROUP

    // Every VLAN the tap's port carries (access and trunk), sorted.
    [[nodiscard]] std::vector<std::uint16_t> vlans() const;

    bool operator==(const NetSpec&) const = default;
};

// Values the caller supplies when the spec leaves them out: the runner passes its
// sandbox id and the jailed uid/gid; `stockade net` passes nothing.
struct SpecDefaults {
    std::optional<std::string> id;
    std::optional<uid_t> owner_uid;
    std::optional<gid_t> owner_gid;
};

// Parses and validates; errors name the offending key, e.g. "vlan: 4095 is outside 1..4094".
[[nodiscard]] Result<NetSpec> parse_net_spec(std::string_view text,
                                             const SpecDefaults& defaults = {});

// The canonical form: every field explicit, fixed order. parse_net_spec(format_net_spec(s)) == s.
[[nodiscard]] std::string format_net_spec(const NetSpec& spec);

}  // namespace stockade::net
