#pragma once
// What `PUT /exec` answers with: a 200 response without a length (the body ends when the
// connection does), whose body is frames of the exec's stdout, stderr and, last, its exit
// status; the client's bytes after its request are the exec's stdin, and the client shutting
// down its sending side ends that input. A frame is an 8-byte header (the kind, three zero
// bytes, the payload's length big-endian) and the payload; an exit frame carries the status
// (0..255, or 125 when the guest's word was not a status) as 4 bytes big-endian. The CLI
// decodes frames with ExecFrameDecoder; the sandbox process is the less trusted side, so
// the decoder refuses anything out of shape.
#include <cstdint>
#include <expected>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace stockade::api {

inline constexpr std::string_view kExecStreamType = "application/vnd.stockade.exec-stream";
inline constexpr std::size_t kExecFrameHeader = 8;
inline constexpr std::size_t kMaxExecFramePayload = 64 * 1024;

enum class ExecFrame : std::uint8_t { out = 1, err = 2, exit = 3 };

// The response's status line and header, before the first frame.
[[nodiscard]] std::string exec_response_head();
// The exec's id, which PUT /exec/resize names, as a header of the response.
inline constexpr std::string_view kExecIdHeader = "Stockade-Exec-Id";
// `head` (ending in its blank line) with the id header added before that line.
[[nodiscard]] std::string with_exec_id(std::string head, std::uint32_t id);
// One frame (payload at most kMaxExecFramePayload bytes).
[[nodiscard]] std::string exec_frame(ExecFrame kind, std::string_view payload);
[[nodiscard]] std::string exec_exit_frame(int status);

class ExecFrameDecoder {
  public:
    struct Frame {
        ExecFrame kind = ExecFrame::out;
        std::string payload;  // out/err bytes
        int status = 0;       // exit
    };
    // Takes the next bytes of the body; frames come out of next().
    void feed(std::span<const char> bytes) { buffer_.append(bytes.data(), bytes.size()); }
    // The next whole frame, nullopt until one is whole, or an error (the stream is then
    // unusable).
    [[nodiscard]] std::expected<std::optional<Frame>, std::string> next();
    [[nodiscard]] std::size_t buffered() const { return buffer_.size(); }

  private:
    std::string buffer_;
};

}  // namespace stockade::api
