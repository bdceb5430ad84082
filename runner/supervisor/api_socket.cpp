#include "runner/supervisor/api_socket.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

namespace stockade {

Result<ApiSocket> ApiSocket::create(std::string_view sandbox_id, std::string_view root,
                                    std::optional<std::uint32_t> group) {
    const std::string root_dir(root);
    if (::mkdir(root_dir.c_str(), 0711) != 0 && errno != EEXIST)
        return fail_sys(fmt::format("creating {}", root_dir));
    ApiSocket s;
    const std::string dir = fmt::format("{}/{}", root_dir, sandbox_id);
    if (::mkdir(dir.c_str(), 0700) != 0) {
        if (errno == EEXIST)
            return fail(
                "sandbox id {}: {} exists: another sandbox has this id, or one that "
                "stopped is kept until `stockade rm {}`",
                sandbox_id, dir, sandbox_id);
        return fail_sys(fmt::format("creating {}", dir));
    }
    s.dir_ = dir;
    s.path_ = dir + "/api.sock";
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (s.path_.size() >= sizeof addr.sun_path)
        return fail("{}: longer than a Unix socket path may be", s.path_);
    std::memcpy(addr.sun_path, s.path_.c_str(), s.path_.size() + 1);
    s.listener_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!s.listener_) return fail_sys("control API socket");
    if (::bind(s.listener_.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0)
        return fail_sys(fmt::format("binding {}", s.path_));
    if (group) {
        // Group members reach the socket through the directory (search only: they cannot
        // list it or read the state and logs, which stay 0600).
        if (::chown(dir.c_str(), static_cast<uid_t>(-1), *group) != 0 ||
            ::chmod(dir.c_str(), 0710) != 0)
            return fail_sys(fmt::format("giving {} to group {}", dir, *group));
        if (::chown(s.path_.c_str(), static_cast<uid_t>(-1), *group) != 0)
            return fail_sys(fmt::format("giving {} to group {}", s.path_, *group));
    }
    if (::chmod(s.path_.c_str(), group ? 0660 : 0600) != 0)
        return fail_sys(fmt::format("chmod {}", s.path_));
    if (::listen(s.listener_.get(), 16) != 0)
        return fail_sys(fmt::format("listening on {}", s.path_));
    return s;
}

ApiSocket::ApiSocket(ApiSocket&& o) noexcept
    : dir_(std::exchange(o.dir_, {})),
      path_(std::exchange(o.path_, {})),
      listener_(std::move(o.listener_)) {}

ApiSocket::~ApiSocket() {
    if (!path_.empty()) ::unlink(path_.c_str());
    if (!dir_.empty()) ::rmdir(dir_.c_str());
}

}  // namespace stockade
