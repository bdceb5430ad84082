#include "guest/control.hpp"

#include <cstring>

namespace stockade::guest_control {
namespace {

void put_u32(std::string& out, std::uint32_t v) {
    for (int i = 0; i < 4; ++i)
        out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

std::uint32_t get_u32(std::span<const char> b) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v |= std::uint32_t{static_cast<unsigned char>(b[static_cast<std::size_t>(i)])} << (8 * i);
    return v;
}

// A blob: its length, then its bytes.
void put_blob(std::string& out, std::string_view bytes) {
    put_u32(out, static_cast<std::uint32_t>(bytes.size()));
    out.append(bytes);
}

std::string items(const std::vector<std::string>& list) {
    std::string s;
    for (const std::string& item : list) {
        s += item;
        s.push_back('\0');
    }
    return s;
}

// Reads the payload front to back; every read is checked against what is left.
struct Reader {
    std::span<const char> rest;
    bool u32(std::uint32_t& v) {
        if (rest.size() < 4) return false;
        v = get_u32(rest);
        rest = rest.subspan(4);
        return true;
    }
    bool blob(std::string_view& out) {
        std::uint32_t n = 0;
        if (!u32(n) || n > rest.size()) return false;
        out = {rest.data(), n};
        rest = rest.subspan(n);
        return true;
    }
};

// NUL-terminated items; false when the last one has no NUL.
bool split_items(std::string_view blob, std::vector<std::string>& out) {
    while (!blob.empty()) {
        const std::size_t nul = blob.find('\0');
        if (nul == std::string_view::npos) return false;
        out.emplace_back(blob.substr(0, nul));
        blob.remove_prefix(nul + 1);
    }
    return true;
}

std::expected<ExecRequest, std::string> decode_exec(std::span<const char> payload) {
    ExecRequest r;
    Reader in{payload};
    std::string_view argv, env, workdir;
    if (!in.u32(r.id) || in.rest.empty()) return std::unexpected("exec: truncated");
    const auto flags = static_cast<unsigned char>(in.rest[0]);
    in.rest = in.rest.subspan(1);
    if (flags > 3) return std::unexpected("exec: unknown flags");
    r.stdin_open = (flags & 1) != 0;
    r.terminal = (flags & 2) != 0;
    if (!in.blob(argv) || !in.blob(env) || !in.blob(workdir))
        return std::unexpected("exec: truncated");
    if (std::uint32_t size = 0; r.terminal) {
        if (!in.u32(size)) return std::unexpected("exec: truncated");
        r.window = {static_cast<std::uint16_t>(size & 0xffff),
                    static_cast<std::uint16_t>(size >> 16)};
    }
    if (!in.rest.empty()) return std::unexpected("exec: bytes after the request");
    if (!split_items(argv, r.argv) || r.argv.empty() || r.argv[0].empty())
        return std::unexpected("exec: argv is not NUL-terminated items with a command");
    if (!split_items(env, r.env)) return std::unexpected("exec: env is not NUL-terminated items");
    for (const std::string& e : r.env)
        if (e.find('=') == std::string::npos || e.front() == '=')
            return std::unexpected("exec: env item is not NAME=value");
    r.workdir = std::string(workdir);
    if (r.workdir.empty() || r.workdir.front() != '/' || r.workdir.find('\0') != std::string::npos)
        return std::unexpected("exec: workdir is not an absolute path");
    return r;
}

}  // namespace

std::string encode(const Message& m) {
    std::string body(1, static_cast<char>(m.type));
    if (m.type == MessageType::signal) body.push_back(static_cast<char>(m.signal));
    if (m.type == MessageType::resize && m.resize_exec != 0) put_u32(body, m.resize_exec);
    if (m.type == MessageType::resize)
        for (std::uint16_t v : {m.window.rows, m.window.columns}) {
            body.push_back(static_cast<char>(v & 0xff));
            body.push_back(static_cast<char>(v >> 8));
        }
    if (m.type == MessageType::restored && m.restored) {
        put_u32(body, m.restored->port);
        const auto sec = static_cast<std::uint64_t>(m.restored->realtime_sec);
        put_u32(body, static_cast<std::uint32_t>(sec));
        put_u32(body, static_cast<std::uint32_t>(sec >> 32));
        put_u32(body, m.restored->realtime_nsec);
        body += m.restored->entropy;
    }
    if (m.type == MessageType::exec && m.exec) {
        put_u32(body, m.exec->id);
        body.push_back(
            static_cast<char>((m.exec->stdin_open ? 1 : 0) | (m.exec->terminal ? 2 : 0)));
        put_blob(body, items(m.exec->argv));
        put_blob(body, items(m.exec->env));
        put_blob(body, m.exec->workdir);
        if (m.exec->terminal)
            put_u32(body, static_cast<std::uint32_t>(m.exec->window.rows) |
                              static_cast<std::uint32_t>(m.exec->window.columns) << 16);
    }
    std::string out;
    put_u32(out, static_cast<std::uint32_t>(body.size()));
    return out + body;
}

std::expected<std::optional<Decoded>, std::string> decode(std::span<const char> bytes) {
    if (bytes.size() < 4) return std::nullopt;
    const std::uint32_t n = get_u32(bytes);
    if (n == 0 || n > kMaxControlMessage)
        return std::unexpected("control message length " + std::to_string(n) + " out of range");
    if (bytes.size() - 4 < n) return std::nullopt;
    const std::span<const char> body = bytes.subspan(4, n);
    const std::span<const char> payload = body.subspan(1);
    Decoded d;
    d.used = 4 + std::size_t{n};
    switch (static_cast<MessageType>(body[0])) {
        case MessageType::start:
        case MessageType::poweroff:
            if (!payload.empty()) return std::unexpected("control message with a payload");
            d.message.type = static_cast<MessageType>(body[0]);
            return d;
        case MessageType::signal: {
            if (payload.size() != 1) return std::unexpected("signal: not one byte");
            const int sig = static_cast<unsigned char>(payload[0]);
            if (sig < 1 || sig > 64) return std::unexpected("signal: out of range");
            d.message.type = MessageType::signal;
            d.message.signal = sig;
            return d;
        }
        case MessageType::resize: {
            if (payload.size() != 4 && payload.size() != 8)
                return std::unexpected("resize: not rows and columns");
            // An exec's id first, when there is one; 0 would name the workload twice.
            const std::size_t at = payload.size() - 4;
            if (at == 4 && (d.message.resize_exec = get_u32(payload)) == 0)
                return std::unexpected("resize: exec id 0");
            const auto u16 = [&](std::size_t i) {
                return static_cast<std::uint16_t>(static_cast<unsigned char>(payload[i]) |
                                                  static_cast<unsigned char>(payload[i + 1]) << 8);
            };
            d.message.type = MessageType::resize;
            d.message.window = {u16(at), u16(at + 2)};
            return d;
        }
        case MessageType::restored: {
            Restored r;
            Reader in{payload};
            std::uint32_t lo = 0, hi = 0;
            if (!in.u32(r.port) || !in.u32(lo) || !in.u32(hi) || !in.u32(r.realtime_nsec) ||
                in.rest.size() != kRestoredEntropy)
                return std::unexpected("restored: not port, clock and entropy");
            if (r.port == 0 || r.realtime_nsec >= 1'000'000'000u)
                return std::unexpected("restored: port or clock out of range");
            r.realtime_sec = static_cast<std::int64_t>((std::uint64_t{hi} << 32) | lo);
            r.entropy.assign(in.rest.data(), in.rest.size());
            d.message.type = MessageType::restored;
            d.message.restored = std::move(r);
            return d;
        }
        case MessageType::exec: {
            auto r = decode_exec(payload);
            if (!r) return std::unexpected(r.error());
            d.message.type = MessageType::exec;
            d.message.exec = std::move(*r);
            return d;
        }
    }
    return std::unexpected("unknown control message type");
}

std::string encode_clock(WallClock c) {
    std::string out;
    put_u32(out, static_cast<std::uint32_t>(static_cast<std::uint64_t>(c.sec)));
    put_u32(out, static_cast<std::uint32_t>(static_cast<std::uint64_t>(c.sec) >> 32));
    put_u32(out, c.nsec);
    return out;
}

std::optional<WallClock> decode_clock(std::span<const char> bytes) {
    if (bytes.size() != kClockReplySize) return std::nullopt;
    const std::uint64_t sec =
        get_u32(bytes.first(4)) | (std::uint64_t{get_u32(bytes.subspan(4, 4))} << 32);
    const WallClock c{static_cast<std::int64_t>(sec), get_u32(bytes.subspan(8, 4))};
    if (c.nsec >= 1'000'000'000u) return std::nullopt;
    return c;
}

std::string exec_stream_header(ExecStream s, std::uint32_t id) {
    std::string h(1, static_cast<char>(s));
    put_u32(h, id);
    return h;
}

}  // namespace stockade::guest_control
