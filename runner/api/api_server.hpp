#pragma once
// The control API's thread in the sandbox process: HTTP/1.1 on the Unix socket the supervisor
// bound (/run/stockade/ID/api.sock) and handed over listening. Requests are parsed here, in
// the jailed, unprivileged process under this thread's own seccomp filter, never in the root
// supervisor. One poll loop: at most kMaxClients connections, each closed after kIdleTimeout
// without a complete request (a client that connects and never sends), after a request it
// cannot parse (with its fault), or when the client asks.
#include <chrono>
#include <functional>
#include <memory>
#include <thread>

#include "base/error.hpp"
#include "base/unique_fd.hpp"
#include "runner/api/routes.hpp"

namespace stockade::api {

inline constexpr std::size_t kMaxClients = 16;
inline constexpr std::chrono::milliseconds kIdleTimeout{10'000};

struct ApiServerConfig {
    UniqueFd listener;  // a listening AF_UNIX stream socket
    ApiController* controller = nullptr;
    // Runs first on the API thread (its seccomp filter); start() fails with its error.
    std::function<Result<>()> on_thread_start;
    std::chrono::milliseconds idle_timeout = kIdleTimeout;
};

class ApiServer {
  public:
    [[nodiscard]] static Result<std::unique_ptr<ApiServer>> start(ApiServerConfig config);
    ~ApiServer();  // stops the thread and closes every connection
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

  private:
    ApiServer() = default;
    struct State;
    std::unique_ptr<State> state_;
    UniqueFd wake_;
    std::thread thread_;
};

}  // namespace stockade::api
