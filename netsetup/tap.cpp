#include "netsetup/tap.hpp"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

#include <cstring>

#include "base/io.hpp"

namespace stockade::net {
namespace {

constexpr const char* kTunDevice = "/dev/net/tun";

short tap_flags(unsigned queues) {
    int flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (queues > 1) flags |= IFF_MULTI_QUEUE;
    return static_cast<short>(flags);
}

Result<UniqueFd> open_queue(std::string_view name, short flags, std::string_view what) {
    auto fd = open_file(kTunDevice, O_RDWR);
    if (!fd) return std::unexpected(std::move(fd).error().context(what));
    ifreq ifr{};
    std::memcpy(ifr.ifr_name, name.data(), std::min(name.size(), sizeof ifr.ifr_name - 1));
    ifr.ifr_flags = flags;
    if (::ioctl(fd->get(), TUNSETIFF, &ifr) != 0) {
        int err = errno;
        auto e = sys_error(fmt::format("{}: TUNSETIFF", what), err);
        const bool creating = (flags & IFF_TUN_EXCL) != 0;
        if (err == EPERM) e.message += " (need CAP_NET_ADMIN, or be the tap's owner)";
        if (err == EBUSY)
            e.message += creating ? " (an interface of that name exists already)"
                                  : " (in use: another process has it open)";
        if (err == EINVAL && !creating) e.message += " (not a tap, or a multi-queue one)";
        return std::unexpected(std::move(e));
    }
    return std::move(*fd);
}

Result<> tap_ioctl(int fd, unsigned long request, unsigned long arg, std::string_view what,
                   std::string_view name) {
    if (::ioctl(fd, request, arg) != 0) return fail_sys(fmt::format("{} on tap {}", what, name));
    return {};
}

}  // namespace

Result<std::vector<UniqueFd>> create_tap(const TapConfig& config) {
    auto what = fmt::format("creating tap {}", config.name);
    if (config.queues == 0) return fail("{}: zero queues", what);
    std::vector<UniqueFd> fds;
    short flags = tap_flags(config.queues);
    fds.push_back(
        STOCKADE_TRY(open_queue(config.name, static_cast<short>(flags | IFF_TUN_EXCL), what)));
    int fd = fds.front().get();
    // Settings of the device, not of a queue: set once, through the first queue.
    int hdr = kVnetHdrSize;
    if (::ioctl(fd, TUNSETVNETHDRSZ, &hdr) != 0)
        return fail_sys(fmt::format("TUNSETVNETHDRSZ {} on tap {}", hdr, config.name));
    if (config.owner)
        STOCKADE_TRY_VOID(tap_ioctl(fd, TUNSETOWNER, *config.owner,
                                    fmt::format("TUNSETOWNER {}", *config.owner), config.name));
    if (config.group)
        STOCKADE_TRY_VOID(tap_ioctl(fd, TUNSETGROUP, *config.group,
                                    fmt::format("TUNSETGROUP {}", *config.group), config.name));
    for (unsigned q = 1; q < config.queues; ++q)
        fds.push_back(STOCKADE_TRY(open_queue(
            config.name, flags, fmt::format("opening queue {} of tap {}", q, config.name))));
    // Last, so that any failure above closes the fds and the kernel removes the tap.
    if (config.persistent)
        STOCKADE_TRY_VOID(tap_ioctl(fd, TUNSETPERSIST, 1, "TUNSETPERSIST", config.name));
    return fds;
}

Result<std::vector<UniqueFd>> attach_tap(std::string_view name, unsigned queues) {
    if (queues == 0) return fail("attaching to tap {}: zero queues", name);
    std::vector<UniqueFd> fds;
    for (unsigned q = 0; q < queues; ++q)
        fds.push_back(STOCKADE_TRY(open_queue(name, tap_flags(queues),
                                              fmt::format("opening queue {} of tap {}", q, name))));
    // The header size belongs to the device: a tap made elsewhere (ip tuntap) has the
    // kernel's 10 bytes, one made by create_tap already has these 12.
    int hdr = kVnetHdrSize;
    if (::ioctl(fds.front().get(), TUNSETVNETHDRSZ, &hdr) != 0)
        return fail_sys(fmt::format("TUNSETVNETHDRSZ {} on tap {}", hdr, name));
    return fds;
}

}  // namespace stockade::net
