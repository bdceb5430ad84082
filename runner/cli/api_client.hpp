#pragma once
// The CLI's side of the control API (/run/stockade/ID/api.sock): one HTTP/1.1 request on a
// fresh connection, the reply parsed with Boost.Beast under size limits (the sandbox process
// answering is the less trusted side).
#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/error.hpp"
#include "base/unique_fd.hpp"

namespace stockade::cli {

struct ApiReply {
    int status = 0;
    std::string body;
};

// The socket of sandbox `id` under `root` (/run/stockade).
[[nodiscard]] std::string api_socket_path(std::string_view id);

// Connects, sends one request (a JSON body, or none), reads the whole reply. An error names
// the socket and what failed ("not running" when nothing listens).
// `fds` go with the request's bytes (SCM_RIGHTS): a snapshot's files.
[[nodiscard]] Result<ApiReply> api_request(
    std::string_view id, std::string_view method, std::string_view target,
    std::string_view body = {}, std::chrono::milliseconds timeout = std::chrono::seconds(10),
    std::span<const int> fds = {});

// The fault message of an error reply ({"fault_message": ...}), or the body as it is.
[[nodiscard]] std::string fault_text(const ApiReply& r);

// A request whose reply streams (PUT /exec): connects, sends the request, reads the reply's
// header. A status other than 200 comes back with its whole body in `reply` and no
// connection; a 200 with the connection, blocking, and the body's first bytes in `body`.
struct ApiStream {
    ApiReply reply;
    UniqueFd conn;
    std::string body;
    std::uint32_t exec_id = 0;  // PUT /exec's Stockade-Exec-Id; 0: none
};
[[nodiscard]] Result<ApiStream> api_open_stream(std::string_view id, std::string_view method,
                                                std::string_view target, std::string_view body);

}  // namespace stockade::cli
