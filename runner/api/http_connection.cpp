#include "runner/api/http_connection.hpp"

#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include <utility>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace stockade::api {
namespace http = boost::beast::http;

const char* reason_phrase(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 204:
            return "No Content";
        case 400:
            return "Bad Request";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 408:
            return "Request Timeout";
        case 413:
            return "Payload Too Large";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 503:
            return "Service Unavailable";
        default:
            return "Unknown";
    }
}

std::string serialize(const Response& r, bool keep_alive) {
    std::string out =
        fmt::format("HTTP/1.1 {} {}\r\nServer: stockade\r\n", r.status, reason_phrase(r.status));
    if (!r.body.empty()) out += "Content-Type: application/json\r\n";
    out += fmt::format("Content-Length: {}\r\nConnection: {}\r\n\r\n", r.body.size(),
                       keep_alive ? "keep-alive" : "close");
    out += r.body;
    return out;
}

std::string to_json_text(const nlohmann::json& j) {
    // A client's bytes may reach a message (a path, a field name): invalid UTF-8 becomes
    // U+FFFD instead of an exception in the API thread.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response fault(int status, std::string_view message) {
    return {status, to_json_text({{"fault_message", message}})};
}

namespace {

Response header_too_large() {
    return fault(431, fmt::format("the request header is larger than {} bytes", kMaxHeaderBytes));
}

}  // namespace

struct HttpConnection::State {
    std::string buffer;
    std::optional<http::request_parser<http::string_body>> parser;
    void fresh() {
        parser.emplace();
        parser->header_limit(kMaxHeaderBytes);
        parser->body_limit(kMaxBodyBytes);
        parser->eager(true);
    }
};

HttpConnection::HttpConnection() : s_(std::make_unique<State>()) {
    s_->fresh();
}
HttpConnection::~HttpConnection() = default;
HttpConnection::HttpConnection(HttpConnection&&) noexcept = default;
HttpConnection& HttpConnection::operator=(HttpConnection&&) noexcept = default;

std::size_t HttpConnection::pending() const {
    return s_->buffer.size();
}

std::string HttpConnection::take_pending() {
    return std::exchange(s_->buffer, {});
}

HttpConnection::Outcome HttpConnection::feed(std::span<const char> bytes) {
    s_->buffer.append(bytes.data(), bytes.size());
    auto& p = *s_->parser;
    while (!s_->buffer.empty() && !p.is_done()) {
        boost::beast::error_code ec;
        const std::size_t used =
            p.put(boost::asio::buffer(s_->buffer.data(), s_->buffer.size()), ec);
        s_->buffer.erase(0, used);
        if (ec == http::error::need_more) break;
        if (ec == http::error::body_limit)
            return {std::nullopt, fault(413, fmt::format("the request body is larger than {} bytes",
                                                         kMaxBodyBytes))};
        if (ec == http::error::header_limit) return {std::nullopt, header_too_large()};
        if (ec)
            return {std::nullopt,
                    fault(400, fmt::format("not an HTTP/1.1 request: {}", ec.message()))};
        if (used == 0) break;
    }
    // Beast buffers the header internally until it is whole: an over-long one never completes.
    if (!p.is_header_done() && s_->buffer.size() > kMaxHeaderBytes)
        return {std::nullopt, header_too_large()};
    if (!p.is_done()) return {};
    const auto& req = p.get();
    Request out{std::string(req.method_string()), std::string(req.target()), req.body(),
                req.keep_alive()};
    s_->fresh();
    return {std::move(out), std::nullopt};
}

}  // namespace stockade::api
