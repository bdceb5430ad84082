#include "netsetup/netlink.hpp"

#include <linux/netlink.h>
#include <netlink/attr.h>
#include <netlink/errno.h>
#include <netlink/handlers.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/table.hpp"

namespace stockade::net {
namespace {

// State of one request/answer exchange, seen by the libnl callbacks.
struct Exchange {
    const ReplyHandler* on_reply = nullptr;
    bool done = false;
    int error = 0;
    std::string extack;
};

int on_valid(nl_msg* msg, void* arg) {
    auto* x = static_cast<Exchange*>(arg);
    if (x->on_reply && *x->on_reply) (*x->on_reply)(nlmsg_hdr(msg));
    return NL_OK;
}

int on_done(nl_msg*, void* arg) {
    static_cast<Exchange*>(arg)->done = true;
    return NL_STOP;
}

// The kernel's extended ack (NLMSGERR_ATTR_MSG) follows the nlmsgerr and, unless the
// socket asked for capped acks, a copy of the request.
std::string extack_message(const nlmsghdr* hdr, const nlmsgerr* e) {
    if (!(hdr->nlmsg_flags & NLM_F_ACK_TLVS)) return {};
    std::size_t offset = sizeof(*e);
    if (!(hdr->nlmsg_flags & NLM_F_CAPPED)) offset += NLMSG_ALIGN(e->msg.nlmsg_len - NLMSG_HDRLEN);
    std::size_t total = hdr->nlmsg_len - NLMSG_HDRLEN;
    if (offset >= total) return {};
    auto* attrs =
        reinterpret_cast<nlattr*>(const_cast<char*>(reinterpret_cast<const char*>(e)) + offset);
    nlattr* a = nullptr;
    int rem = 0;
    nla_for_each_attr(a, attrs, static_cast<int>(total - offset), rem) {
        if (nla_type(a) == NLMSGERR_ATTR_MSG) {
            const char* s = static_cast<const char*>(nla_data(a));
            return std::string(s, strnlen(s, static_cast<std::size_t>(nla_len(a))));
        }
    }
    return {};
}

int on_error(sockaddr_nl*, nlmsgerr* e, void* arg) {
    auto* x = static_cast<Exchange*>(arg);
    auto* hdr = reinterpret_cast<nlmsghdr*>(reinterpret_cast<char*>(e) - NLMSG_HDRLEN);
    x->error = -e->error;
    x->extack = extack_message(hdr, e);
    x->done = true;
    return NL_STOP;
}

}  // namespace

int errno_of_nl_error(int nl_error) {
    // libnl's error codes and the errno each stands for; any other is EIO.
    struct ErrnoRow {
        int nl_error, errno_value;
    };
    static constexpr ErrnoRow kErrnos[] = {
        {NLE_PERM, EPERM},
        {NLE_NOACCESS, EACCES},
        {NLE_EXIST, EEXIST},
        {NLE_NODEV, ENODEV},
        {NLE_OBJ_NOTFOUND, ENOENT},
        {NLE_BUSY, EBUSY},
        {NLE_INVAL, EINVAL},
        {NLE_RANGE, ERANGE},
        {NLE_NOMEM, ENOMEM},
        {NLE_AGAIN, EAGAIN},
        {NLE_INTR, EINTR},
        {NLE_OPNOTSUPP, EOPNOTSUPP},
        {NLE_AF_NOSUPPORT, EAFNOSUPPORT},
        {NLE_PROTO_MISMATCH, EPROTONOSUPPORT},
        {NLE_MSGSIZE, EMSGSIZE},
        {NLE_NOADDR, EADDRNOTAVAIL},
        {NLE_MSG_TOOSHORT, EBADMSG},
        {NLE_MSG_TRUNC, EBADMSG},
    };
    const auto* row = find_row(kErrnos, &ErrnoRow::nl_error, nl_error < 0 ? -nl_error : nl_error);
    return row ? row->errno_value : EIO;
}

Error netlink_error(std::string_view what, int err, std::string_view extack) {
    std::string msg = fmt::format("{}: {}", what, std::strerror(err));
    if (err == EPERM || err == EACCES) msg += " (need CAP_NET_ADMIN)";
    if (!extack.empty()) msg += fmt::format(" (kernel: {})", extack);
    return Error{std::move(msg), err};
}

Result<> nl_check(int rc, std::string_view what) {
    if (rc >= 0) return {};
    return std::unexpected(
        Error{fmt::format("{}: {}", what, nl_geterror(rc)), errno_of_nl_error(rc)});
}

namespace detail {
Result<NlPtr<nl_msg>> new_message_raw(int type, int flags, const void* header, std::size_t size,
                                      std::size_t payload) {
    NlPtr<nl_msg> msg(nlmsg_alloc_size(NLMSG_HDRLEN + NLMSG_ALIGN(size) + payload));
    if (!msg) return fail("allocating a netlink message: out of memory");
    if (!nlmsg_put(msg.get(), NL_AUTO_PORT, NL_AUTO_SEQ, type, 0, flags))
        return fail("building a netlink message: out of space");
    if (nlmsg_append(msg.get(), const_cast<void*>(header), size, NLMSG_ALIGNTO) < 0)
        return fail("building a netlink message: out of space");
    return msg;
}
}  // namespace detail

Result<Netlink> Netlink::connect() {
    Netlink nl;
    nl.sock_.reset(nl_socket_alloc());
    nl.cb_.reset(nl_cb_alloc(NL_CB_DEFAULT));
    if (!nl.sock_ || !nl.cb_) return fail("allocating a netlink socket: out of memory");
    STOCKADE_TRY_VOID(
        nl_check(nl_connect(nl.sock_.get(), NETLINK_ROUTE), "connecting to rtnetlink"));
    // Dumps (all links, all bridge VLANs) can exceed one page per message.
    nl_socket_enable_msg_peek(nl.sock_.get());
    int one = 1;
    int fd = nl_socket_get_fd(nl.sock_.get());
    // Extended acks give the kernel's own reason ("VLAN is already a PVID ...");
    // capped acks keep the error from echoing the whole request back. Both are optional.
    (void)::setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
    (void)::setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof one);
    return nl;
}

Result<> Netlink::request(nl_msg* msg, std::string_view what, const ReplyHandler& on_reply) {
    Exchange x;
    x.on_reply = &on_reply;
    nl_cb_set(cb_.get(), NL_CB_VALID, NL_CB_CUSTOM, on_valid, &x);
    nl_cb_set(cb_.get(), NL_CB_FINISH, NL_CB_CUSTOM, on_done, &x);
    nl_cb_set(cb_.get(), NL_CB_ACK, NL_CB_CUSTOM, on_done, &x);
    nl_cb_err(cb_.get(), NL_CB_CUSTOM, on_error, &x);

    // nl_send_auto fills in port and sequence and, for a non-dump, asks for an ack.
    if (int rc = nl_send_auto(sock_.get(), msg); rc < 0)
        return std::unexpected(netlink_error(what, errno_of_nl_error(rc)));
    while (!x.done) {
        int rc = nl_recvmsgs(sock_.get(), cb_.get());
        if (x.done) break;
        if (rc < 0) return std::unexpected(netlink_error(what, errno_of_nl_error(rc)));
    }
    if (x.error != 0) return std::unexpected(netlink_error(what, x.error, x.extack));
    return {};
}

}  // namespace stockade::net
