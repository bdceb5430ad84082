#include "runner/cli/api_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <nlohmann/json.hpp>

#include "base/io.hpp"
#include "runner/supervisor/api_socket.hpp"

namespace stockade::cli {
namespace http = boost::beast::http;
namespace {

// What a reply may be: the API's own replies are a few KiB (metrics the largest).
constexpr std::uint32_t kMaxReplyHeader = 8 * 1024;
constexpr std::uint64_t kMaxReplyBody = 4 * 1024 * 1024;

Result<UniqueFd> connect_api(std::string_view id) {
    const std::string path = api_socket_path(id);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) return fail("{}: path too long", path);
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return fail_sys("socket");
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        if (errno == ENOENT || errno == ECONNREFUSED)
            return fail("sandbox {}: not running (nothing answers on {})", id, path);
        return fail_sys(fmt::format("connecting to {}", path));
    }
    return fd;
}

std::string request_text(std::string_view method, std::string_view target, std::string_view body) {
    std::string out = fmt::format("{} {} HTTP/1.1\r\nHost: localhost\r\n", method, target);
    if (!body.empty()) out += "Content-Type: application/json\r\n";
    out += fmt::format("Content-Length: {}\r\n\r\n", body.size());
    out += body;
    return out;
}

// Reads into the parser until `done` says so; bytes read past that stay in `rest`.
Result<> read_reply(int fd, http::response_parser<http::string_body>& p, std::string& rest,
                    bool header_only, int timeout_ms, std::string_view id) {
    std::string buf = std::move(rest);
    rest.clear();
    for (;;) {
        while (!buf.empty() && !(header_only ? p.is_header_done() : p.is_done())) {
            boost::beast::error_code ec;
            const std::size_t used = p.put(boost::asio::buffer(buf.data(), buf.size()), ec);
            buf.erase(0, used);
            if (ec == http::error::need_more) break;
            if (ec) return fail("sandbox {}: a reply that is not HTTP: {}", id, ec.message());
        }
        if (header_only ? p.is_header_done() : p.is_done()) {
            rest = std::move(buf);
            return {};
        }
        pollfd pfd{fd, POLLIN, 0};
        const int n = ::poll(&pfd, 1, timeout_ms);
        if (n == 0) return fail("sandbox {}: no reply within {} ms", id, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail_sys("poll");
        }
        char chunk[16 * 1024];
        const ssize_t got = ::read(fd, chunk, sizeof chunk);
        if (got < 0) {
            if (errno == EINTR) continue;
            return fail_sys(fmt::format("reading the reply of sandbox {}", id));
        }
        if (got == 0) {
            // The end of a body delimited by the connection's end.
            boost::beast::error_code ec;
            p.put_eof(ec);
            if (ec || !p.is_done()) return fail("sandbox {}: the connection ended mid-reply", id);
            return {};
        }
        buf.append(chunk, static_cast<std::size_t>(got));
    }
}

void limit(http::response_parser<http::string_body>& p) {
    p.header_limit(kMaxReplyHeader);
    p.body_limit(kMaxReplyBody);
}

}  // namespace

std::string api_socket_path(std::string_view id) {
    return fmt::format("{}/{}/api.sock", kStateRoot, id);
}

Result<ApiReply> api_request(std::string_view id, std::string_view method, std::string_view target,
                             std::string_view body, std::chrono::milliseconds timeout,
                             std::span<const int> fds) {
    UniqueFd fd = STOCKADE_TRY(connect_api(id));
    const std::string text = request_text(method, target, body);
    std::string_view unsent = text;
    if (!fds.empty()) {
        // The descriptors ride on the first bytes of the request.
        auto sent = send_with_fds(fd.get(), text, fds);
        if (!sent) return fail("sending a request to sandbox {}: {}", id, sent.error().message);
        const std::size_t n = *sent;
        unsent.remove_prefix(n);
    }
    STOCKADE_TRY_VOID(write_all(fd.get(), unsent));
    http::response_parser<http::string_body> p;
    limit(p);
    std::string rest;
    STOCKADE_TRY_VOID(read_reply(fd.get(), p, rest, false, static_cast<int>(timeout.count()), id));
    return ApiReply{static_cast<int>(p.get().result_int()), p.get().body()};
}

Result<ApiStream> api_open_stream(std::string_view id, std::string_view method,
                                  std::string_view target, std::string_view body) {
    ApiStream s;
    s.conn = STOCKADE_TRY(connect_api(id));
    STOCKADE_TRY_VOID(write_all(s.conn.get(), request_text(method, target, body)));
    http::response_parser<http::string_body> p;
    limit(p);
    constexpr int kReplyTimeoutMs = 30'000;
    STOCKADE_TRY_VOID(read_reply(s.conn.get(), p, s.body, true, kReplyTimeoutMs, id));
    s.reply.status = static_cast<int>(p.get().result_int());
    if (s.reply.status == 200) {
        const auto field = p.get().find("Stockade-Exec-Id");
        if (field != p.get().end()) {
            const std::string_view v(field->value().data(), field->value().size());
            std::uint32_t n = 0;
            const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
            if (ec == std::errc{} && end == v.data() + v.size()) s.exec_id = n;
        }
        return s;
    }
    // An error: its (JSON) body is short and has a length.
    STOCKADE_TRY_VOID(read_reply(s.conn.get(), p, s.body, false, kReplyTimeoutMs, id));
    s.reply.body = p.get().body();
    s.conn.reset();
    s.body.clear();
    return s;
}

std::string fault_text(const ApiReply& r) {
    const auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("fault_message") && j["fault_message"].is_string())
        return j["fault_message"].get<std::string>();
    return r.body.empty() ? fmt::format("HTTP status {}", r.status) : r.body;
}

}  // namespace stockade::cli
