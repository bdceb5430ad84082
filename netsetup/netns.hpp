#pragma once
// A network namespace an engine made for a container with CNI (OCI config.json's
// linux.namespaces network `path`) as a sandbox's way out. CNI put one veth in it, with the
// container's address and routes; the sandbox's tap is made in the same namespace and joined
// to the veth in the kernel datapath: tc (clsact, flower, mirred) redirects every frame that
// reaches the veth to the tap (to the guest) and every frame the guest sends out through the
// veth, so the guest owns the veth's MAC and IPv4 address and the namespace's own stack sees
// nothing. The guest may send only from that MAC (others are dropped at the tap).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "netsetup/mac.hpp"
#include "netsetup/netlink.hpp"

namespace stockade::net {

struct NetnsInterface {
    int ifindex = 0;
    std::string name;
    MacAddress mac;
    std::uint32_t mtu = 0;
    std::string address;  // "A.B.C.D/N": its IPv4 address
    std::string gateway;  // "A.B.C.D": the IPv4 default route's; empty: none
};

// Opens `path` and checks that it is a network namespace, and not this process's own (the
// host's: its interface must never be handed to a guest). The path is looked at (O_PATH)
// before anything is opened for reading: a FIFO, a device or a terminal named there is
// refused without being opened.
[[nodiscard]] Result<UniqueFd> open_netns(const std::string& path);

// Runs `fn` on a thread of its own that joined the network namespace `netns` (setns): netlink
// sockets and taps made there belong to it. The caller's threads stay where they are.
template <typename T, typename F>
[[nodiscard]] Result<T> in_netns(int netns, F&& fn);

// In the namespace: its one veth, with an IPv4 address; the default route's gateway when
// there is one through it (the lowest metric's). Other interfaces may be there only down (the
// tunnel devices the kernel puts in every namespace, tunl0 and the like).
[[nodiscard]] Result<NetnsInterface> find_netns_interface(Netlink& nl);

// In the namespace: a non-persistent tap `tap` with `queues` queues (gone with its last
// descriptor), the veth's MTU, up, without host addresses, joined to the veth as above. The
// veth's redirect comes last, and is refused when the veth has one already and another tap
// is in the namespace (another sandbox's: a namespace is one sandbox's at a time); one left
// by a sandbox that is gone (no tap of its own left) is replaced.
[[nodiscard]] Result<std::vector<UniqueFd>> join_tap_to(Netlink& nl, const NetnsInterface& veth,
                                                        std::string_view tap, unsigned queues);

// The veth's redirect, removed when this goes (from a thread in the namespace): the
// namespace is left as CNI made it. The tap's rules go with the tap.
class NetnsJoin {
  public:
    NetnsJoin(UniqueFd netns, int veth_ifindex) : netns_(std::move(netns)), veth_(veth_ifindex) {}
    NetnsJoin(NetnsJoin&&) noexcept = default;
    NetnsJoin& operator=(NetnsJoin&& other) noexcept {
        if (this != &other) {
            this->~NetnsJoin();  // a live join's redirect goes first
            netns_ = std::move(other.netns_);
            veth_ = other.veth_;
        }
        return *this;
    }
    ~NetnsJoin();
    // Removes the redirect now; idempotent.
    Result<> close();

  private:
    UniqueFd netns_;
    int veth_ = 0;
};

// ---- implementation of the template ----
namespace detail {
[[nodiscard]] Result<> enter_netns(int netns);
}
template <typename T, typename F>
Result<T> in_netns(int netns, F&& fn) {
    std::optional<Result<T>> out;
    std::thread t([&] {
        if (auto entered = detail::enter_netns(netns); !entered)
            out.emplace(std::unexpected(std::move(entered).error()));
        else
            out.emplace(fn());
    });
    t.join();
    return std::move(*out);
}

}  // namespace stockade::net
