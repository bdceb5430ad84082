#pragma once
// Tap devices through /dev/net/tun: the only part of netsetup that is ioctls, not netlink
// (the tun driver has no netlink interface for creating a queue and returning its fd).
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade::net {

// virtio_net_hdr_mrg_rxbuf: what a virtio 1.x device (and vhost-net) puts before each frame.
inline constexpr int kVnetHdrSize = 12;

struct TapConfig {
    std::string name;
    unsigned queues = 1;         // >1: IFF_MULTI_QUEUE, one fd per queue
    bool persistent = false;     // TUNSETPERSIST: survives the last fd being closed
    std::optional<uid_t> owner;  // TUNSETOWNER: this uid may attach without CAP_NET_ADMIN
    std::optional<gid_t> group;  // TUNSETGROUP
};

// Creates a new tap (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, vnet header size 12) and returns
// one fd per queue. Fails with EBUSY when an interface of that name exists already
// (IFF_TUN_EXCL): a tap is never silently shared with whoever made it first.
// The tap is created down, with the kernel's random MAC; link.hpp sets MAC, MTU and up.
[[nodiscard]] Result<std::vector<UniqueFd>> create_tap(const TapConfig& config);

// Opens `queues` queues of an existing tap (a persistent one made by `stockade net up`, or
// the user's own for `stockade run --net tap=NAME`), with the flags and the vnet header
// size create_tap uses. A name no interface has would make a new tap: check it first.
[[nodiscard]] Result<std::vector<UniqueFd>> attach_tap(std::string_view name, unsigned queues);

}  // namespace stockade::net
