#include "runner/api/exec_stream.hpp"

#include <fmt/format.h>

namespace stockade::api {
namespace {

void put_be32(std::string& out, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::uint32_t get_be32(std::string_view b) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i)
        v = (v << 8) | static_cast<unsigned char>(b[i]);
    return v;
}

}  // namespace

std::string exec_response_head() {
    return fmt::format(
        "HTTP/1.1 200 OK\r\nServer: stockade\r\nContent-Type: {}\r\nConnection: close\r\n\r\n",
        kExecStreamType);
}

std::string with_exec_id(std::string head, std::uint32_t id) {
    const auto end = head.rfind("\r\n\r\n");
    if (end == std::string::npos) return head;
    head.insert(end + 2, fmt::format("{}: {}\r\n", kExecIdHeader, id));
    return head;
}

std::string exec_frame(ExecFrame kind, std::string_view payload) {
    std::string out{static_cast<char>(kind), 0, 0, 0};
    put_be32(out, static_cast<std::uint32_t>(payload.size()));
    out.append(payload);
    return out;
}

std::string exec_exit_frame(int status) {
    std::string payload;
    put_be32(payload, static_cast<std::uint32_t>(status));
    return exec_frame(ExecFrame::exit, payload);
}

std::expected<std::optional<ExecFrameDecoder::Frame>, std::string> ExecFrameDecoder::next() {
    if (buffer_.size() < kExecFrameHeader) return std::nullopt;
    const std::string_view head(buffer_.data(), kExecFrameHeader);
    const auto kind = static_cast<std::uint8_t>(head[0]);
    if (kind < 1 || kind > 3 || head[1] != 0 || head[2] != 0 || head[3] != 0)
        return std::unexpected(fmt::format("exec stream: bad frame header (kind {})", kind));
    const std::uint32_t len = get_be32(head.substr(4));
    if (len > kMaxExecFramePayload)
        return std::unexpected(fmt::format("exec stream: a frame of {} bytes", len));
    if (kind == static_cast<std::uint8_t>(ExecFrame::exit) && len != 4)
        return std::unexpected("exec stream: an exit frame that is not 4 bytes");
    if (buffer_.size() - kExecFrameHeader < len) return std::nullopt;
    Frame f;
    f.kind = static_cast<ExecFrame>(kind);
    const std::string_view payload(buffer_.data() + kExecFrameHeader, len);
    if (f.kind == ExecFrame::exit) {
        const std::uint32_t status = get_be32(payload);
        if (status > 255) return std::unexpected("exec stream: an exit status above 255");
        f.status = static_cast<int>(status);
    } else {
        f.payload = std::string(payload);
    }
    buffer_.erase(0, kExecFrameHeader + len);
    return f;
}

}  // namespace stockade::api
