#pragma once
// One client connection of the control API, as bytes in and bytes out: requests parsed by
// Boost.Beast's HTTP/1.1 parser (header and body limits), responses serialized here. No I/O:
// the API thread (api_server.hpp) reads and writes the socket; unit tests feed bytes.
#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

namespace stockade::api {

inline constexpr std::size_t kMaxHeaderBytes = 8 * 1024;
inline constexpr std::size_t kMaxBodyBytes = 64 * 1024;

struct Request {
    std::string method;  // "GET", "PUT", "PATCH", ...
    std::string target;  // "/vm"
    std::string body;
    bool keep_alive = true;
};

struct Response {
    int status = 200;
    std::string body;  // JSON, or empty (204)
};

// The status line's reason phrase for the codes the API uses.
[[nodiscard]] const char* reason_phrase(int status);
// The response as bytes: status line, Content-Type (JSON), Content-Length, Connection.
[[nodiscard]] std::string serialize(const Response& r, bool keep_alive);
// JSON text; invalid UTF-8 in a string (a client's bytes) is replaced, never thrown.
[[nodiscard]] std::string to_json_text(const nlohmann::json& j);
// {"fault_message": message} with `status`, Firecracker's error shape.
[[nodiscard]] Response fault(int status, std::string_view message);

class HttpConnection {
  public:
    HttpConnection();
    ~HttpConnection();
    HttpConnection(HttpConnection&&) noexcept;
    HttpConnection& operator=(HttpConnection&&) noexcept;

    // Takes bytes read from the client. Returns a complete request once one is parsed (the
    // rest of `bytes` stays buffered for the next), or a fault response when the bytes are not
    // a request within the limits (the connection must close after it), or nothing yet.
    struct Outcome {
        std::optional<Request> request;
        std::optional<Response> error;
    };
    [[nodiscard]] Outcome feed(std::span<const char> bytes);
    // Bytes buffered that belong to no finished request yet.
    [[nodiscard]] std::size_t pending() const;
    // Takes those bytes (the connection is not HTTP any more: an exec's stdin).
    [[nodiscard]] std::string take_pending();

  private:
    struct State;
    std::unique_ptr<State> s_;
};

}  // namespace stockade::api
