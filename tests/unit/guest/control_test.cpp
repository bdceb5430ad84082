// The control stream's messages (guest/control.hpp): what encode writes, decode reads back
// unchanged, one message at a time, waits for while incomplete and refuses when malformed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "guest/control.hpp"

namespace stockade::guest_control {
namespace {

using namespace std::string_literals;

Message exec_message(ExecRequest r) {
    Message m;
    m.type = MessageType::exec;
    m.exec = std::move(r);
    return m;
}

std::vector<Message> sample_messages() {
    std::vector<Message> out;
    out.push_back(Message{MessageType::start, 0, {}});
    out.push_back(Message{MessageType::poweroff, 0, {}});
    out.push_back(Message{MessageType::signal, 1, {}});
    out.push_back(Message{MessageType::signal, 15, {}});
    out.push_back(Message{MessageType::signal, 64, {}});
    out.push_back(exec_message({0, {"true"}, {}, "/", false}));
    // Binary-ish items: spaces, newlines, empty arguments, high bytes, '=' in values.
    out.push_back(exec_message({0xffff'ffffu,
                                {"sh", "-c", "echo 'a b'\n", "", "\xff\x01", "a=b"},
                                {"A=1", "B=", "C==", "D=x\ny"},
                                "/tmp/dir with spaces",
                                true}));
    Message restored{MessageType::restored, 0, {}};
    restored.restored = Restored{0xffff'fffeu, -5'000'000'000ll, 999'999'999u,
                                 std::string(kRestoredEntropy, '\xa5')};
    out.push_back(restored);
    restored.restored = Restored{1, 1'800'000'000, 0, std::string(kRestoredEntropy, '\0')};
    out.push_back(restored);
    for (WindowSize w : {WindowSize{0, 0}, WindowSize{24, 80}, WindowSize{65535, 1}}) {
        Message resize{MessageType::resize, 0, {}};
        resize.window = w;
        out.push_back(resize);
        resize.resize_exec = 0xffff'ffffu;  // an exec's terminal
        out.push_back(resize);
    }
    ExecRequest tty{7, {"sh"}, {"TERM=xterm"}, "/", true};
    tty.terminal = true;
    out.push_back(exec_message(tty));
    tty.window = {50, 0x1234};
    out.push_back(exec_message(tty));
    return out;
}

// The bytes as decode sees them.
std::span<const char> bytes(const std::string& s) {
    return {s.data(), s.size()};
}

// The decoded message of a complete `wire`, which must be all of it.
Message decoded(const std::string& wire) {
    auto d = decode(bytes(wire));
    EXPECT_TRUE(d) << d.error();
    if (!d || !*d) {
        ADD_FAILURE() << "incomplete";
        return {};
    }
    EXPECT_EQ((*d)->used, wire.size());
    return (*d)->message;
}

// A message's bytes: the length prefix, then the type and payload.
std::string framed(const std::string& body) {
    std::string out;
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<char>((body.size() >> (8 * i)) & 0xff));
    return out + body;
}

std::string u32(std::uint32_t v) {
    std::string out;
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    return out;
}

// An exec payload from its parts (guest/control.cpp's layout).
std::string exec_body(const std::string& argv, const std::string& env, const std::string& workdir,
                      char flags = 0, std::uint32_t id = 7) {
    return "X" + u32(id) + std::string(1, flags) + u32(static_cast<std::uint32_t>(argv.size())) +
           argv + u32(static_cast<std::uint32_t>(env.size())) + env +
           u32(static_cast<std::uint32_t>(workdir.size())) + workdir;
}

// decode refuses `wire` and says `fragment`.
void expect_refused(const std::string& wire, std::string_view fragment) {
    auto d = decode(bytes(wire));
    ASSERT_FALSE(d) << "accepted a malformed message";
    EXPECT_NE(d.error().find(fragment), std::string::npos) << d.error();
}

TEST(ControlMessage, RoundTripsEveryType) {
    for (const Message& m : sample_messages())
        EXPECT_EQ(decoded(encode(m)), m) << static_cast<char>(m.type);
}

TEST(ControlMessage, WritesTheDocumentedBytes) {
    EXPECT_EQ(encode({MessageType::start, 0, {}}), "\x01\0\0\0S"s);
    EXPECT_EQ(encode({MessageType::poweroff, 0, {}}), "\x01\0\0\0P"s);
    EXPECT_EQ(encode({MessageType::signal, 9, {}}), "\x02\0\0\0K\x09"s);
    EXPECT_EQ(encode(exec_message({7, {"ls", "-l"}, {"A=1"}, "/w", true})),
              framed(exec_body("ls\0-l\0"s, "A=1\0"s, "/w", 1)));
}

TEST(ControlMessage, WaitsForEveryPrefix) {
    for (const Message& m : sample_messages()) {
        const std::string wire = encode(m);
        for (std::size_t n = 0; n < wire.size(); ++n) {
            auto d = decode(std::span(wire.data(), n));
            ASSERT_TRUE(d) << n << ": " << d.error();
            EXPECT_FALSE(*d) << "decoded " << n << " of " << wire.size() << " bytes";
        }
    }
}

TEST(ControlMessage, DecodesMessagesBackToBackOneAtATime) {
    const std::vector<Message> messages = sample_messages();
    std::string wire;
    for (const Message& m : messages)
        wire += encode(m);
    std::span<const char> rest = bytes(wire);
    for (const Message& m : messages) {
        auto d = decode(rest);
        ASSERT_TRUE(d && *d);
        EXPECT_EQ((*d)->message, m);
        EXPECT_EQ((*d)->used, encode(m).size());
        rest = rest.subspan((*d)->used);
    }
    EXPECT_TRUE(rest.empty());
}

TEST(ControlMessage, RefusesALengthOutOfRange) {
    expect_refused("\0\0\0\0"s, "length 0 out of range");
    expect_refused(u32(kMaxControlMessage + 1), "out of range");
    expect_refused(u32(0xffff'ffffu) + "S", "out of range");
    // The largest length is accepted (here still incomplete).
    auto d = decode(bytes(u32(kMaxControlMessage) + "X"));
    ASSERT_TRUE(d) << d.error();
    EXPECT_FALSE(*d);
}

TEST(ControlMessage, RefusesAnUnknownTypeOrPayload) {
    for (const char* type : {"s", "k", "x", "p", "\0", "Z"})
        expect_refused(framed(std::string(type, 1)), "unknown control message type");
    expect_refused(framed("S\0"s), "with a payload");
    expect_refused(framed("Px"), "with a payload");
    expect_refused(framed("K"), "not one byte");
    expect_refused(framed("K\x09\x09"), "not one byte");
    expect_refused(framed("K\0"s), "signal: out of range");
    expect_refused(framed("K\x41"), "signal: out of range");  // 65
    expect_refused(framed("K\xff"), "signal: out of range");
    expect_refused(framed("W"), "resize: not rows and columns");
    expect_refused(framed("W\x18\0\x50"s), "resize: not rows and columns");
    expect_refused(framed("W\x18\0\x50\0\0"s), "resize: not rows and columns");
    expect_refused(framed("W" + u32(0) + "\x18\0\x50\0"s), "resize: exec id 0");
    expect_refused(framed("W" + u32(9) + "\x18\0\x50\0\0"s), "resize: not rows and columns");
}

TEST(ControlMessage, AResizeIsRowsThenColumnsLittleEndian) {
    Message m{MessageType::resize, 0, {}};
    m.window = {0x0118, 80};
    EXPECT_EQ(encode(m), "\x05\0\0\0W\x18\x01\x50\0"s);
    m.resize_exec = 3;
    EXPECT_EQ(encode(m), "\x09\0\0\0W\x03\0\0\0\x18\x01\x50\0"s);
}

TEST(ControlMessage, RefusesAnExecTruncatedAtEveryByte) {
    const std::string body = exec_body("ls\0-l\0"s, "A=1\0"s, "/w");
    ASSERT_EQ(decoded(framed(body)).exec->argv, (std::vector<std::string>{"ls", "-l"}));
    for (std::size_t n = 1; n < body.size(); ++n)
        expect_refused(framed(body.substr(0, n)), "exec: truncated");
    expect_refused(framed(body + "x"), "exec: bytes after the request");
    // A blob length past the end, not only a short one.
    std::string huge = "X" + u32(7) + '\0' + u32(0xffff'ffffu) + "ls";
    expect_refused(framed(huge), "exec: truncated");
}

TEST(ControlMessage, RefusesAMalformedExec) {
    expect_refused(framed(exec_body("", "", "/")), "argv");
    expect_refused(framed(exec_body("\0"s, "", "/")), "argv");
    expect_refused(framed(exec_body("\0ls\0"s, "", "/")), "argv");
    expect_refused(framed(exec_body("ls", "", "/")), "argv");
    expect_refused(framed(exec_body("ls\0-l"s, "", "/")), "argv");
    expect_refused(framed(exec_body("ls\0"s, "A=1", "/")), "env is not NUL-terminated");
    for (const std::string& env : {"NOVALUE\0"s, "=x\0"s, "\0"s, "A=1\0B\0"s})
        expect_refused(framed(exec_body("ls\0"s, env, "/")), "env item is not NAME=value");
    for (const std::string& dir : {""s, "w"s, "./w"s, "/w\0x"s})
        expect_refused(framed(exec_body("ls\0"s, "", dir)), "workdir is not an absolute path");
    for (char flags : {'\x04', '\x07', '\xff'})
        expect_refused(framed(exec_body("ls\0"s, "", "/", flags)), "exec: unknown flags");
    EXPECT_TRUE(decoded(framed(exec_body("ls\0"s, "", "/", 1))).exec->stdin_open);
    EXPECT_FALSE(decoded(framed(exec_body("ls\0"s, "", "/", 0))).exec->stdin_open);
    // A terminal's size to start with follows the workdir: rows, then columns (16 bits each).
    expect_refused(framed(exec_body("ls\0"s, "", "/", 3)), "exec: truncated");
    expect_refused(framed(exec_body("ls\0"s, "", "/", 3) + "\x18\0\x50"s), "exec: truncated");
    expect_refused(framed(exec_body("ls\0"s, "", "/", 3) + u32(0) + "x"), "bytes after");
    const auto tty = decoded(framed(exec_body("ls\0"s, "", "/", 3) + "\x18\0\x50\0"s)).exec;
    EXPECT_TRUE(tty->terminal);
    EXPECT_TRUE(tty->stdin_open);
    EXPECT_EQ(tty->window, (WindowSize{24, 80}));
    EXPECT_TRUE(decoded(framed(exec_body("ls\0"s, "", "/", 2) + u32(0))).exec->terminal);
    EXPECT_FALSE(decoded(framed(exec_body("ls\0"s, "", "/", 1))).exec->terminal);
}

TEST(ControlMessage, RefusesAMalformedRestoreNotice) {
    const std::string entropy(kRestoredEntropy, 'e');
    const auto body = [&](std::uint32_t port, std::uint32_t nsec, const std::string& e) {
        return "R" + u32(port) + u32(1'800'000'000) + u32(0) + u32(nsec) + e;
    };
    EXPECT_EQ(decoded(framed(body(1234, 5, entropy))).restored,
              (Restored{1234, 1'800'000'000, 5, entropy}));
    const std::string good = body(1234, 5, entropy);
    for (std::size_t n = 1; n < good.size(); ++n)
        expect_refused(framed(good.substr(0, n)), "restored: not port, clock and entropy");
    expect_refused(framed(good + "x"), "restored: not port, clock and entropy");
    expect_refused(framed(body(0, 5, entropy)), "restored: port or clock out of range");
    expect_refused(framed(body(1234, 1'000'000'000u, entropy)), "out of range");
}

TEST(ControlMessage, ClockRepliesRoundTripAndRefuseWhatIsNotOne) {
    for (const WallClock c : {WallClock{1'800'000'000, 999'999'999u}, WallClock{0, 0},
                              WallClock{-5'000'000'000ll, 1}, WallClock{0x1'0000'0002ll, 7}}) {
        const std::string b = encode_clock(c);
        ASSERT_EQ(b.size(), kClockReplySize);
        EXPECT_EQ(decode_clock(b), c);
    }
    EXPECT_EQ(encode_clock({0x0102'0304'0506'0708ll, 0x0a0b'0c0du}),
              "\x08\x07\x06\x05\x04\x03\x02\x01\x0d\x0c\x0b\x0a"s);
    const std::string good = encode_clock({1'800'000'000, 5});
    EXPECT_EQ(decode_clock(good.substr(0, kClockReplySize - 1)), std::nullopt);
    EXPECT_EQ(decode_clock(good + "x"), std::nullopt);
    EXPECT_EQ(decode_clock(""), std::nullopt);
    EXPECT_EQ(decode_clock(encode_clock({1, 999'999'999u}).replace(8, 4, u32(1'000'000'000u))),
              std::nullopt);
}

TEST(ControlMessage, ExecStreamHeaders) {
    EXPECT_EQ(exec_stream_header(ExecStream::status, 7), "S\x07\0\0\0"s);
    EXPECT_EQ(exec_stream_header(ExecStream::in, 0x0102'0304u), "I\x04\x03\x02\x01"s);
    EXPECT_EQ(exec_stream_header(ExecStream::out, 0), "O\0\0\0\0"s);
    EXPECT_EQ(exec_stream_header(ExecStream::err, 0xffff'ffffu), "E\xff\xff\xff\xff"s);
    EXPECT_EQ(exec_stream_header(ExecStream::err, 1).size(), kExecStreamHeader);
}

}  // namespace
}  // namespace stockade::guest_control
