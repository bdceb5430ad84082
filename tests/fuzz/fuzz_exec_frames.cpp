// The exec stream's frames as the CLI decodes them (runner/api/exec_stream.hpp): the sandbox
// process sends them and is the less trusted side. Input: the reply body, cut into the
// reads the CLI would make by each 0xff byte (the byte after it is dropped). Every frame
// that comes out must be in shape, and re-encoding it must give back the bytes it came from.
#include <cstdint>
#include <span>
#include <string>

#include "runner/api/exec_stream.hpp"

using namespace stockade;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    api::ExecFrameDecoder decoder;
    std::string fed, decoded;
    std::size_t at = 0;
    while (at < size) {
        std::size_t end = at;
        while (end < size && data[end] != 0xff)
            ++end;
        const std::string_view chunk(reinterpret_cast<const char*>(data) + at, end - at);
        at = end + 2;
        decoder.feed(chunk);
        fed += chunk;
        for (;;) {
            auto f = decoder.next();
            if (!f) return 0;  // the CLI gives up on the exec
            if (!*f) break;
            const auto& frame = **f;
            if (frame.payload.size() > api::kMaxExecFramePayload) __builtin_trap();
            if (frame.status < 0 || frame.status > 255) __builtin_trap();
            decoded += frame.kind == api::ExecFrame::exit
                           ? api::exec_exit_frame(frame.status)
                           : api::exec_frame(frame.kind, frame.payload);
        }
    }
    // What was decoded is exactly the front of what was fed; the rest is still buffered.
    if (fed.compare(0, decoded.size(), decoded) != 0) __builtin_trap();
    if (decoded.size() + decoder.buffered() != fed.size()) __builtin_trap();
    return 0;
}
