#pragma once
// tc over libnl-route-3, the pieces netsetup's kernel datapath rules are made of: a clsact
// qdisc, and flower filters (every frame, or one source or destination MAC) with one action
// each: a gact verdict (pass, drop) or a mirred redirect to another interface's egress.
#include <linux/pkt_sched.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string_view>

#include "base/error.hpp"
#include "netsetup/netlink.hpp"

namespace stockade::net::tc {

inline constexpr std::uint32_t kIngress = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS);
inline constexpr std::uint32_t kEgress = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS);

// The mask of a match on one whole MAC address.
inline constexpr std::array<std::uint8_t, 6> kWholeMac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

struct MacMatch {
    bool source = false;  // match the source address, else the destination
    std::array<std::uint8_t, 6> addr{};
    std::array<std::uint8_t, 6> mask{};
};

// `exclusive`: fails when the interface has a clsact already; else that one is kept.
[[nodiscard]] Result<> add_clsact(Netlink& nl, int ifindex, std::string_view what,
                                  bool exclusive = true);

// A gact verdict (TC_ACT_OK, TC_ACT_SHOT).
[[nodiscard]] Result<NlPtr<rtnl_act>> verdict(int action, std::string_view what);
// Every frame to `ifindex`'s egress, taken from where it was (mirred egress redirect).
[[nodiscard]] Result<NlPtr<rtnl_act>> redirect_to(int ifindex, std::string_view what);

// One flower filter at `prio` of `parent` (kIngress, kEgress): `match` (none: every frame)
// gets `action`. A filter already at that priority fails it (EEXIST).
[[nodiscard]] Result<> add_flower(Netlink& nl, int ifindex, std::uint32_t parent,
                                  std::uint16_t prio, const std::optional<MacMatch>& match,
                                  rtnl_act* action, std::string_view what);

// Removes the filter at `prio` of `parent` (all its handles); one already gone is no error.
[[nodiscard]] Result<> delete_filter(Netlink& nl, int ifindex, std::uint32_t parent,
                                     std::uint16_t prio, std::string_view what);

}  // namespace stockade::net::tc
