#include "netsetup/caps.hpp"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace stockade::net {

Result<bool> has_cap_net_admin() {
    // capget directly: libcap-ng belongs to policy/, and one bit needs no library.
    __user_cap_header_struct header{};
    header.version = _LINUX_CAPABILITY_VERSION_3;
    header.pid = 0;
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
    if (::syscall(SYS_capget, &header, data) != 0) return fail_sys("capget");
    return (data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective & CAP_TO_MASK(CAP_NET_ADMIN)) != 0;
}

Result<> require_cap_net_admin(std::string_view doing) {
    if (STOCKADE_TRY(has_cap_net_admin())) return {};
    return std::unexpected(
        Error{fmt::format("{}: needs CAP_NET_ADMIN, which this process does not have (run it as "
                          "root, or grant cap_net_admin)",
                          doing),
              EPERM});
}

}  // namespace stockade::net
