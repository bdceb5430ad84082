#include "netsetup/tc.hpp"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <linux/rtnetlink.h>
#include <netlink/route/act/gact.h>
#include <netlink/route/act/mirred.h>
#include <netlink/route/cls/flower.h>
#include <netlink/route/tc.h>

namespace stockade::net::tc {

Result<> add_clsact(Netlink& nl, int ifindex, std::string_view what, bool exclusive) {
    NlPtr<rtnl_qdisc> qdisc(rtnl_qdisc_alloc());
    if (!qdisc) return fail("{}: out of memory", what);
    rtnl_tc* t = TC_CAST(qdisc.get());
    rtnl_tc_set_ifindex(t, ifindex);
    rtnl_tc_set_parent(t, TC_H_CLSACT);
    rtnl_tc_set_handle(t, TC_H_MAKE(TC_H_CLSACT, 0));
    STOCKADE_TRY_VOID(nl_check(rtnl_tc_set_kind(t, "clsact"), what));
    nl_msg* raw = nullptr;
    STOCKADE_TRY_VOID(nl_check(rtnl_qdisc_build_add_request(
                                   qdisc.get(), NLM_F_CREATE | (exclusive ? NLM_F_EXCL : 0), &raw),
                               what));
    NlPtr<nl_msg> msg(raw);
    return nl.request(msg.get(), what);
}

Result<NlPtr<rtnl_act>> verdict(int action, std::string_view what) {
    NlPtr<rtnl_act> act(rtnl_act_alloc());
    if (!act) return fail("{}: out of memory", what);
    STOCKADE_TRY_VOID(nl_check(rtnl_tc_set_kind(TC_CAST(act.get()), "gact"), what));
    STOCKADE_TRY_VOID(nl_check(rtnl_gact_set_action(act.get(), action), what));
    return act;
}

Result<NlPtr<rtnl_act>> redirect_to(int ifindex, std::string_view what) {
    NlPtr<rtnl_act> act(rtnl_act_alloc());
    if (!act) return fail("{}: out of memory", what);
    STOCKADE_TRY_VOID(nl_check(rtnl_tc_set_kind(TC_CAST(act.get()), "mirred"), what));
    STOCKADE_TRY_VOID(nl_check(rtnl_mirred_set_action(act.get(), TCA_EGRESS_REDIR), what));
    STOCKADE_TRY_VOID(nl_check(rtnl_mirred_set_policy(act.get(), TC_ACT_STOLEN), what));
    STOCKADE_TRY_VOID(
        nl_check(rtnl_mirred_set_ifindex(act.get(), static_cast<std::uint32_t>(ifindex)), what));
    return act;
}

Result<> add_flower(Netlink& nl, int ifindex, std::uint32_t parent, std::uint16_t prio,
                    const std::optional<MacMatch>& match, rtnl_act* action, std::string_view what) {
    NlPtr<rtnl_cls> cls(rtnl_cls_alloc());
    if (!cls) return fail("{}: out of memory", what);
    rtnl_tc* t = TC_CAST(cls.get());
    rtnl_tc_set_ifindex(t, ifindex);
    rtnl_tc_set_parent(t, parent);
    STOCKADE_TRY_VOID(nl_check(rtnl_tc_set_kind(t, "flower"), what));
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
    // (No rtnl_flower_set_flags: libnl 3.7 sends its attribute mask instead of the flags.)
    STOCKADE_TRY_VOID(nl_check(rtnl_flower_append_action(cls.get(), action), what));
    nl_msg* raw = nullptr;
    STOCKADE_TRY_VOID(
        nl_check(rtnl_cls_build_add_request(cls.get(), NLM_F_CREATE | NLM_F_EXCL, &raw), what));
    NlPtr<nl_msg> msg(raw);
    return nl.request(msg.get(), what);
}

Result<> delete_filter(Netlink& nl, int ifindex, std::uint32_t parent, std::uint16_t prio,
                       std::string_view what) {
    tcmsg t{};
    t.tcm_family = AF_UNSPEC;
    t.tcm_ifindex = ifindex;
    t.tcm_parent = parent;
    // tcm_info: priority in the upper half, protocol (network order) in the lower.
    t.tcm_info = TC_H_MAKE(static_cast<std::uint32_t>(prio) << 16, htons(ETH_P_ALL));
    auto msg = STOCKADE_TRY(new_message(RTM_DELTFILTER, 0, t, 0));
    auto done = nl.request(msg.get(), what);
    if (!done &&
        (done.error().code == ENOENT || done.error().code == ENODEV || done.error().code == EINVAL))
        return {};  // gone with its interface or its qdisc
    return done;
}

}  // namespace stockade::net::tc
