#include "netsetup/mac_filter.hpp"

#include <linux/pkt_cls.h>

#include <array>
#include <optional>

#include "netsetup/tc.hpp"

namespace stockade::net {
namespace {

// One filter with a gact verdict.
Result<> add_verdict(Netlink& nl, int ifindex, std::uint32_t parent, std::uint16_t prio,
                     const std::optional<tc::MacMatch>& match, int action, std::string_view what) {
    auto act = STOCKADE_TRY(tc::verdict(action, what));
    return tc::add_flower(nl, ifindex, parent, prio, match, act.get(), what);
}

}  // namespace

Result<> install_mac_filter(Netlink& nl, int ifindex, std::string_view name, const MacAddress& mac,
                            MacFilter mode) {
    if (mode == MacFilter::off) return {};
    constexpr std::array<std::uint8_t, 6> group_bit{0x01, 0, 0, 0, 0, 0};

    STOCKADE_TRY_VOID(tc::add_clsact(nl, ifindex, fmt::format("adding clsact qdisc to {}", name)));
    auto in =
        fmt::format("adding source MAC filter ({} only) to ingress of {}", mac.to_string(), name);
    STOCKADE_TRY_VOID(add_verdict(nl, ifindex, tc::kIngress, 1,
                                  tc::MacMatch{true, mac.bytes, tc::kWholeMac}, TC_ACT_OK, in));
    STOCKADE_TRY_VOID(add_verdict(nl, ifindex, tc::kIngress, 2, std::nullopt, TC_ACT_SHOT, in));
    if (mode != MacFilter::strict) return {};

    auto out =
        fmt::format("adding destination MAC filter ({}, broadcast, multicast) to egress of {}",
                    mac.to_string(), name);
    STOCKADE_TRY_VOID(add_verdict(nl, ifindex, tc::kEgress, 1,
                                  tc::MacMatch{false, mac.bytes, tc::kWholeMac}, TC_ACT_OK, out));
    STOCKADE_TRY_VOID(add_verdict(nl, ifindex, tc::kEgress, 2,
                                  tc::MacMatch{false, group_bit, group_bit}, TC_ACT_OK, out));
    STOCKADE_TRY_VOID(add_verdict(nl, ifindex, tc::kEgress, 3, std::nullopt, TC_ACT_SHOT, out));
    return {};
}

}  // namespace stockade::net
