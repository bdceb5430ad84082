#pragma once
// The text of `--net`, split into the runner's keys and netsetup's spec: no I/O, so the
// fuzz build links it on its own (runner/registry/net.hpp is the device kind).
#include <string>
#include <string_view>

#include "base/error.hpp"

namespace stockade {

// --net: everything but the runner's own keys is a netsetup spec (netsetup/README.md);
// `vhost=on|off` picks the datapath (default: vhost-net when the host has /dev/vhost-net),
// `addr=A.B.C.D/N` is the IPv4 address stockade-init gives the guest's interface (none: the
// workload configures it). `tap=NAME` names an existing tap to attach to: then only mac=
// of netsetup's keys may be given. `netns=PATH` (an OCI container's network namespace, made
// with CNI) makes the tap in that namespace, joined to its one veth, whose MAC, address and
// default route the guest takes (netsetup/netns.hpp): only vhost= and queues= go with it.
enum class VhostMode { automatic, on, off };
struct NetDeviceSpec {
    std::string netsetup;       // the spec handed to netsetup, runner keys removed
    bool existing_tap = false;  // tap=NAME: netsetup only resolves the spec, makes nothing
    VhostMode vhost = VhostMode::automatic;
    std::string address;  // "A.B.C.D/N", or empty
    std::string netns;    // netns=PATH, or empty
    // queue_size=N: each virtqueue's size (a power of two, 64..1024); 0: the default
    // (kNetDefaultQueueSize)
    std::uint16_t queue_size = 0;
    bool operator==(const NetDeviceSpec&) const = default;
};

// Splits and checks the text of --net (no I/O; netsetup's part is validated with a
// placeholder id, the real one is the sandbox's).
[[nodiscard]] Result<NetDeviceSpec> parse_net_device_spec(std::string_view text);

}  // namespace stockade
