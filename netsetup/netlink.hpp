#pragma once
// A rtnetlink socket (libnl-3) that sends one request at a time and reports errors the
// way DESIGN.md asks: operation, object, errno text, and the kernel's extended-ack
// message when it gave one:
//   "creating bridge br-sb0: Operation not permitted (need CAP_NET_ADMIN)"
// Plus RAII owners for the libnl objects the rest of netsetup builds.
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/route/action.h>
#include <netlink/route/classifier.h>
#include <netlink/route/link.h>
#include <netlink/route/qdisc.h>
#include <netlink/socket.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string_view>

#include "base/error.hpp"

namespace stockade::net {

struct NlDeleter {
    void operator()(nl_sock* p) const { nl_socket_free(p); }
    void operator()(nl_cb* p) const { nl_cb_put(p); }
    void operator()(nl_msg* p) const { nlmsg_free(p); }
    void operator()(nl_addr* p) const { nl_addr_put(p); }
    void operator()(rtnl_link* p) const { rtnl_link_put(p); }
    void operator()(rtnl_qdisc* p) const { rtnl_qdisc_put(p); }
    void operator()(rtnl_cls* p) const { rtnl_cls_put(p); }
    void operator()(rtnl_act* p) const { rtnl_act_put(p); }
};
template <typename T>
using NlPtr = std::unique_ptr<T, NlDeleter>;

// The errno behind a libnl error code (libnl folds kernel errnos into its NLE_* codes).
[[nodiscard]] int errno_of_nl_error(int nl_error);

// "what: <strerror(err)>[ (need CAP_NET_ADMIN)][ (kernel: <extack>)]".
[[nodiscard]] Error netlink_error(std::string_view what, int err, std::string_view extack = {});

// Checks a libnl builder's return code (nla_put, rtnl_*_set_*, ..._build_*_request).
[[nodiscard]] Result<> nl_check(int rc, std::string_view what);

// A new message with room for `payload` bytes of attributes after the family header.
template <typename Header>
[[nodiscard]] Result<NlPtr<nl_msg>> new_message(int type, int flags, const Header& header,
                                                std::size_t payload = 4096);

using ReplyHandler = std::function<void(nlmsghdr*)>;

class Netlink {
  public:
    // A NETLINK_ROUTE socket in the calling thread's network namespace.
    [[nodiscard]] static Result<Netlink> connect();

    // Sends `msg` and waits for the kernel's answer. Non-dump requests are acknowledged
    // (errors come back as Error naming `what`); every reply message (a GET's answer, each
    // part of a dump) is passed to on_reply.
    [[nodiscard]] Result<> request(nl_msg* msg, std::string_view what,
                                   const ReplyHandler& on_reply = {});

    [[nodiscard]] nl_sock* sock() const { return sock_.get(); }

  private:
    NlPtr<nl_sock> sock_;
    NlPtr<nl_cb> cb_;
};

// ---- implementation of the template ----
namespace detail {
Result<NlPtr<nl_msg>> new_message_raw(int type, int flags, const void* header, std::size_t size,
                                      std::size_t payload);
}
template <typename Header>
Result<NlPtr<nl_msg>> new_message(int type, int flags, const Header& header, std::size_t payload) {
    return detail::new_message_raw(type, flags, &header, sizeof header, payload);
}

}  // namespace stockade::net
