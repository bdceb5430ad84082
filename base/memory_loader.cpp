#include "base/memory_loader.hpp"

#include <sys/socket.h>

#include <charconv>
#include <cstring>

#include "base/state_codec.hpp"

namespace stockade::memory_loader {

// The layout in base/state_codec.hpp's encoding: the magic, the region count (32 bits), then
// each region's host address, size and offset (64 bits each), little-endian.
std::vector<std::uint8_t> encode_layout(std::span<const Region> regions) {
    StateWriter w;
    w.u32(kMagic);
    w.count(regions.size());
    for (const Region& r : regions) {
        w.u64(r.host);
        w.u64(r.size);
        w.u64(r.offset);
    }
    return w.take();
}

Result<std::vector<Region>> decode_layout(std::span<const std::uint8_t> bytes,
                                          std::uint64_t part_size, std::uint64_t page_size) {
    StateReader in(bytes);
    if (in.u32("magic") != kMagic) in.invalid("magic", "not a layout message");
    const std::size_t count = in.count("regions", kMaxRegions, 24);
    if (in.ok() && count == 0) in.invalid("regions", "none");
    std::vector<Region> out;
    for (std::size_t i = 0; i < count; ++i)
        out.push_back({in.u64("host"), in.u64("size"), in.u64("offset")});
    STOCKADE_TRY_VOID(in.finish("the memory layout"));
    std::uint64_t next = 0;
    for (std::size_t i = 0; i < out.size(); ++i) {
        const Region& r = out[i];
        if (r.size == 0 || r.host % page_size != 0 || r.size % page_size != 0 ||
            r.host > UINT64_MAX - r.size)
            return fail("the memory layout: region {} ({:#x}, {:#x} bytes) is not whole pages", i,
                        r.host, r.size);
        if (r.offset != next || r.size > part_size - next)
            return fail(
                "the memory layout: region {} at offset {:#x}, {:#x} bytes, where {:#x} "
                "of {:#x} come next",
                i, r.offset, r.size, next, part_size);
        for (std::size_t j = 0; j < i; ++j)
            if (r.host < out[j].host + out[j].size && out[j].host < r.host + r.size)
                return fail("the memory layout: region {} overlaps another", i);
        next += r.size;
    }
    if (next != part_size)
        return fail("the memory layout: {:#x} bytes of a {:#x}-byte part", next, part_size);
    return out;
}

namespace {

// A message of `bytes` with room for one descriptor.
struct OneFdMessage {
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    iovec iov{};
    msghdr msg{};
    explicit OneFdMessage(std::span<std::uint8_t> bytes) {
        iov = {bytes.data(), bytes.size()};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
    }
};

}  // namespace

Result<> send_layout(int sock, std::span<const Region> regions, int uffd) {
    std::vector<std::uint8_t> bytes = encode_layout(regions);
    OneFdMessage m(bytes);
    cmsghdr* c = CMSG_FIRSTHDR(&m.msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &uffd, sizeof uffd);
    ssize_t sent = 0;
    while ((sent = ::sendmsg(sock, &m.msg, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
    if (sent != static_cast<ssize_t>(bytes.size()))
        return fail_sys("sending the memory layout to the memory loader");
    return {};
}

Result<std::optional<ReceivedLayout>> receive_layout(int sock) {
    ReceivedLayout out;
    out.bytes.resize(kMaxLayoutBytes + 1);
    OneFdMessage m(out.bytes);
    ssize_t n = 0;
    while ((n = ::recvmsg(sock, &m.msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {
    }
    if (n < 0) return fail_sys("receiving the memory layout");
    for (cmsghdr* c = CMSG_FIRSTHDR(&m.msg); c != nullptr; c = CMSG_NXTHDR(&m.msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int))) {
            int fd = -1;
            std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
            out.uffd = UniqueFd(fd);
        }
    if (n == 0) return std::nullopt;
    // (On a stream socket a longer message is not cut short: more bytes than a layout's
    // largest came.)
    if (static_cast<std::size_t>(n) > kMaxLayoutBytes ||
        (m.msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
        return fail("the memory layout: more than a layout message");
    if (!out.uffd) return fail("the memory layout came without its userfaultfd");
    out.bytes.resize(static_cast<std::size_t>(n));
    return out;
}

std::string done_line(const Done& d) {
    return fmt::format("done {} {} {} {}\n", d.faulted, d.background, d.zero, d.ms);
}

Result<Said> parse_line(const std::string& line) {
    if (line == "ready") return Said{true, {}};
    if (line.starts_with("error ")) return fail("{}", line.substr(6));
    if (line.starts_with("done ")) {
        Said s;
        std::uint64_t* fields[] = {&s.done.faulted, &s.done.background, &s.done.zero, &s.done.ms};
        const char* p = line.data() + 5;
        const char* end = line.data() + line.size();
        for (std::size_t i = 0; i < 4; ++i) {
            const auto [next, ec] = std::from_chars(p, end, *fields[i]);
            if (ec != std::errc{} || (i < 3 ? (next == end || *next != ' ') : next != end))
                return fail("the memory loader said something else: {}", line.substr(0, 80));
            p = next + 1;
        }
        return s;
    }
    return fail("the memory loader said something else: {}", line.substr(0, 80));
}

}  // namespace stockade::memory_loader
