#pragma once
// The control API's socket: the supervisor makes the sandbox's state directory
// (/run/stockade/ID, mode 0700; two sandboxes cannot share an id) and binds api.sock in it
// (mode 0600), listening, before the sandbox starts. The sandbox process gets the listening
// descriptor and parses every request itself; the supervisor never reads from it. The socket
// goes when the ApiSocket does, and the directory with it once it is empty (a detached
// sandbox's state file and logs keep it until `stockade rm`).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade {

inline constexpr std::string_view kStateRoot = "/run/stockade";

class ApiSocket {
  public:
    // `group`: the socket 0660 and the directory 0710, both of that group (the policy's
    // api_socket_gid); nullopt: 0600 and 0700, root's alone.
    [[nodiscard]] static Result<ApiSocket> create(std::string_view sandbox_id,
                                                  std::string_view root = kStateRoot,
                                                  std::optional<std::uint32_t> group = {});
    ApiSocket(ApiSocket&& o) noexcept;
    ApiSocket& operator=(ApiSocket&&) = delete;
    ~ApiSocket();

    [[nodiscard]] const std::string& path() const { return path_; }
    // The listening socket, for the sandbox process: the supervisor keeps none, so a client
    // of a sandbox that has gone is refused rather than left waiting.
    [[nodiscard]] UniqueFd take_listener() { return std::move(listener_); }

  private:
    ApiSocket() = default;
    std::string dir_, path_;
    UniqueFd listener_;
};

}  // namespace stockade
