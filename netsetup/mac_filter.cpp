#include "netsetup/mac_filter.hpp"

#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <netlink/route/act/gact.h>
#include <netlink/route/cls/flower.h>
#include <netlink/route/tc.h>

#include <array>
#include <optional>

namespace stockade::net {
namespace {

constexpr std::uint32_t kIngress = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS);
constexpr std::uint32_t kEgress = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_EGRESS);

struct MacMatch {
    bool source = false;  // match the source address, else the destination
    std::array<std::uint8_t, 6> addr{};
    std::array<std::uint8_t, 6> mask{};
};

Result<> add_clsact(Netlink& nl, int ifindex, std::string_view what) {
    NlPtr<rtnl_qdisc> qdisc(rtnl_qdisc_alloc());
    if (!qdisc) return fail("{}: out of memory", what);
    rtnl_tc* tc = TC_CAST(qdisc.get());
    rtnl_tc_set_ifindex(tc, ifindex);
    rtnl_tc_set_parent(tc, TC_H_CLSACT);
    rtnl_tc_set_handle(tc, TC_H_MAKE(TC_H_CLSACT, 0));
    STOCKADE_TRY_VOID(nl_check(rtnl_tc_set_kind(tc, "clsact"), what));
    nl_msg* raw = nullptr;
    STOCKADE_TRY_VOID(
        nl_check(rtnl_qdisc_build_add_request(qdisc.get(), NLM_F_CREATE | NLM_F_EXCL, &raw), what));
    NlPtr<nl_msg> msg(raw);
    return nl.request(msg.get(), what);
}

// One flower filter: `match` (none = every frame) → gact `action`.
Result<> add_flower(Netlink& nl, int ifindex, std::uint32_t parent, std::uint16_t prio,
                    const std::optional<MacMatch>& match, int action, std::string_view what) {
    NlPtr<rtnl_cls> cls(rtnl_cls_alloc());
    NlPtr<rtnl_act> act(rtnl_act_alloc());
    if (!cls || !act) return fail("{}: out of memory", what);
    rtnl_tc* tc = TC_CAST(cls.get());
    rtnl_tc_set_ifindex(tc, ifindex);
    rtnl_tc_set_parent(tc, parent);
    STOCKADE_TRY_VOID(nl_check(rtnl_tc_set_kind(tc, "flower"), what));
    rtnl_cls_set_prio(cls.get(), prio);
    rtnl_cls_set_protocol(cls.get(), ETH_P_ALL);  // every ethertype, VLAN-tagged or not
    if (match) {
        auto addr = match->addr;
        auto mask = match->mask;
        STOCKADE_TRY_VOID(
            nl_check(match->source ? rtnl_flower_set_src_mac(cls.get(), addr.data(), mask.data())
                                   : rtnl_flower_set_dst_mac(cls.get(), addr.data(), mask.data()),
                     what));
    }
    STOCKADE_TRY_VOID(nl_check(rtnl_tc_set_kind(TC_CAST(act.get()), "gact"), what));
    STOCKADE_TRY_VOID(nl_check(rtnl_gact_set_action(act.get(), action), what));
    // (No rtnl_flower_set_flags: libnl 3.7 sends its attribute mask instead of the flags.)
    STOCKADE_TRY_VOID(nl_check(rtnl_flower_append_action(cls.get(), act.get()), what));
    nl_msg* raw = nullptr;
    STOCKADE_TRY_VOID(
        nl_check(rtnl_cls_build_add_request(cls.get(), NLM_F_CREATE | NLM_F_EXCL, &raw), what));
    NlPtr<nl_msg> msg(raw);
    return nl.request(msg.get(), what);
}

}  // namespace

Result<> install_mac_filter(Netlink& nl, int ifindex, std::string_view name, const MacAddress& mac,
                            MacFilter mode) {
    if (mode == MacFilter::off) return {};
    constexpr std::array<std::uint8_t, 6> exact{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    constexpr std::array<std::uint8_t, 6> group_bit{0x01, 0, 0, 0, 0, 0};

    STOCKADE_TRY_VOID(add_clsact(nl, ifindex, fmt::format("adding clsact qdisc to {}", name)));
    auto in =
        fmt::format("adding source MAC filter ({} only) to ingress of {}", mac.to_string(), name);
    STOCKADE_TRY_VOID(
        add_flower(nl, ifindex, kIngress, 1, MacMatch{true, mac.bytes, exact}, TC_ACT_OK, in));
    STOCKADE_TRY_VOID(add_flower(nl, ifindex, kIngress, 2, std::nullopt, TC_ACT_SHOT, in));
    if (mode != MacFilter::strict) return {};

    auto out =
        fmt::format("adding destination MAC filter ({}, broadcast, multicast) to egress of {}",
                    mac.to_string(), name);
    STOCKADE_TRY_VOID(
        add_flower(nl, ifindex, kEgress, 1, MacMatch{false, mac.bytes, exact}, TC_ACT_OK, out));
    STOCKADE_TRY_VOID(
        add_flower(nl, ifindex, kEgress, 2, MacMatch{false, group_bit, group_bit}, TC_ACT_OK, out));
    STOCKADE_TRY_VOID(add_flower(nl, ifindex, kEgress, 3, std::nullopt, TC_ACT_SHOT, out));
    return {};
}

}  // namespace stockade::net
