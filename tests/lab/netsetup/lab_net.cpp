#include "tests/lab/netsetup/lab_net.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "netsetup/tap.hpp"

namespace stockade::net::lab {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "lab_net: %s: %s\n", what.c_str(), std::strerror(errno));
    std::abort();
}

UniqueFd open_netns(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) die("open " + path);
    return UniqueFd(fd);
}

void enter(int ns_fd, const std::string& what) {
    if (::setns(ns_fd, CLONE_NEWNET) != 0) die("setns " + what);
}

json strip_timers(json j) {
    if (j.is_object()) {
        json out = json::object();
        for (auto& [k, v] : j.items())
            if (!k.ends_with("_timer")) out[k] = strip_timers(v);
        return out;
    }
    if (j.is_array()) {
        json out = json::array();
        for (auto& v : j)
            out.push_back(strip_timers(v));
        return out;
    }
    return j;
}

// Waits up to `wait` for the first frame, then keeps reading while frames keep coming.
template <typename ReadOne>
std::vector<Received> collect(int fd, std::chrono::milliseconds wait, ReadOne read_one) {
    std::vector<Received> got;
    auto deadline = Clock::now() + wait;
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
        if (left.count() <= 0) break;
        pollfd p{fd, POLLIN, 0};
        int n = ::poll(&p, 1, static_cast<int>(left.count()));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        while (auto r = read_one()) {
            if (r->has_value()) got.push_back(**r);
        }
    }
    return got;
}

}  // namespace

Shell sh(const std::string& command) {
    std::string full = command + " 2>&1";
    FILE* p = ::popen(full.c_str(), "r");
    if (!p) die("popen " + command);
    std::string out;
    char buf[4096];
    while (std::size_t n = std::fread(buf, 1, sizeof buf, p))
        out.append(buf, n);
    int status = ::pclose(p);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : 128, out};
}

std::string must(const std::string& command) {
    auto r = sh(command);
    EXPECT_EQ(r.status, 0) << command << " failed:\n" << r.output;
    return r.output;
}

FreshNetns::FreshNetns() : original_(open_netns("/proc/thread-self/ns/net")) {
    if (::unshare(CLONE_NEWNET) != 0) die("unshare(CLONE_NEWNET)");
    must("ip link set lo up");
}

FreshNetns::~FreshNetns() {
    enter(original_.get(), "back to the original namespace");
}

NamedNetns::NamedNetns(std::string name) : name_(std::move(name)) {
    sh("ip netns del " + name_);  // a leftover from an aborted run
    must("ip netns add " + name_);
    must("ip -n " + name_ + " link set lo up");
}

NamedNetns::~NamedNetns() {
    sh("ip netns del " + name_);
}

std::string NamedNetns::exec(const std::string& command) const {
    return must("ip netns exec " + name_ + " " + command);
}

UniqueFd NamedNetns::packet_socket(const std::string& ifname) const {
    auto here = open_netns("/proc/thread-self/ns/net");
    auto there = open_netns("/run/netns/" + name_);
    enter(there.get(), name_);
    int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    unsigned ifindex = ::if_nametoindex(ifname.c_str());
    enter(here.get(), "back from " + name_);
    if (fd < 0) die("socket(AF_PACKET)");
    if (ifindex == 0) die("if_nametoindex " + ifname + " in " + name_);
    sockaddr_ll sll{};
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_ALL);
    sll.sll_ifindex = static_cast<int>(ifindex);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&sll), sizeof sll) != 0) die("bind AF_PACKET");
    return UniqueFd(fd);
}

namespace {
std::string host_snapshot_now() {
    auto links = json::parse(must("ip -d -j link show"));
    // The kernel attaches a device's default root qdisc (noqueue for a veth) the first time
    // the device comes up and keeps it after it goes down again; before that it shows
    // "noop". That is the kernel's own bookkeeping, not something up() made, so a device
    // that was never up and one that was up once compare equal; every other qdisc counts.
    for (auto& l : links)
        if (l.value("qdisc", "") == "noop") l["qdisc"] = "noqueue";
    json qdiscs = json::array();
    for (const auto& q : json::parse(must("tc -j qdisc show")))
        if (!(q.value("kind", "") == "noqueue" && q.value("root", false))) qdiscs.push_back(q);
    std::string out = "links:\n" + strip_timers(links).dump(1) + "\n";
    out += "bridge vlans:\n" + sh("bridge -j -d vlan show").output + "\n";
    out += "qdiscs:\n" + qdiscs.dump(1) + "\n";
    for (const auto& l : links) {
        auto name = l.at("ifname").get<std::string>();
        for (const char* dir : {"ingress", "egress"})
            out += fmt::format("filters {} {}:\n{}\n", name, dir,
                               sh(fmt::format("tc -j filter show dev {} {}", name, dir)).output);
    }
    return out;
}

// Two looks more than a second apart that agree, starting from `prev`.
std::string settled_from(std::string prev) {
    for (int i = 0; i < 10; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1100));
        std::string cur = host_snapshot_now();
        if (cur == prev) return cur;
        prev = std::move(cur);
    }
    return prev;
}
}  // namespace

std::string host_snapshot() {
    // Operational state (carrier, operstate) follows a change asynchronously: the kernel's
    // link watch applies it up to a second later. Compare settled states only: two looks
    // more than that apart that agree.
    return settled_from(host_snapshot_now());
}

std::string host_snapshot_as(const std::string& expected) {
    std::string now = host_snapshot_now();
    if (now == expected) return now;
    return settled_from(std::move(now));
}

std::vector<std::uint8_t> encode(const Frame& frame) {
    std::vector<std::uint8_t> b(frame.dst.bytes.begin(), frame.dst.bytes.end());
    b.insert(b.end(), frame.src.bytes.begin(), frame.src.bytes.end());
    auto put16 = [&](std::uint16_t v) {
        b.push_back(static_cast<std::uint8_t>(v >> 8));
        b.push_back(static_cast<std::uint8_t>(v));
    };
    if (frame.vlan) {
        put16(0x8100);
        put16(*frame.vlan);
    }
    put16(kTestEthertype);
    b.insert(b.end(), frame.marker.begin(), frame.marker.end());
    b.push_back(0);
    if (b.size() < 60) b.resize(60, 0);
    return b;
}

std::optional<Received> decode(const std::uint8_t* data, std::size_t size) {
    if (size < 14) return std::nullopt;
    Received r;
    std::memcpy(r.dst.bytes.data(), data, 6);
    std::memcpy(r.src.bytes.data(), data + 6, 6);
    std::size_t off = 12;
    auto get16 = [&](std::size_t at) {
        return static_cast<std::uint16_t>(data[at] << 8 | data[at + 1]);
    };
    if (get16(off) == 0x8100) {
        if (size < 18) return std::nullopt;
        r.vlan = get16(off + 2) & 0xfff;
        off += 4;
    }
    if (get16(off) != kTestEthertype) return std::nullopt;
    off += 2;
    const char* p = reinterpret_cast<const char*>(data + off);
    r.marker.assign(p, strnlen(p, size - off));
    return r;
}

MacAddress mac(std::string_view text) {
    auto m = parse_mac(text);
    if (!m) die("bad MAC in test: " + std::string(text));
    return *m;
}

TapEnd::TapEnd(int fd) : fd_(fd) {
    int flags = ::fcntl(fd_, F_GETFL);
    if (flags < 0 || ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) != 0) die("O_NONBLOCK on tap fd");
}

void TapEnd::send(const Frame& frame) const {
    std::vector<std::uint8_t> buf(kVnetHdrSize, 0);  // no offloads: all-zero header
    auto f = encode(frame);
    buf.insert(buf.end(), f.begin(), f.end());
    ssize_t n = ::write(fd_, buf.data(), buf.size());
    ASSERT_EQ(n, static_cast<ssize_t>(buf.size())) << "write to tap: " << std::strerror(errno);
}

std::vector<Received> TapEnd::receive(std::chrono::milliseconds wait) const {
    return collect(fd_, wait, [&]() -> std::optional<std::optional<Received>> {
        std::uint8_t buf[65536 + kVnetHdrSize];
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n < kVnetHdrSize) return std::nullopt;  // EAGAIN: nothing more queued
        return std::optional<std::optional<Received>>(
            std::in_place, decode(buf + kVnetHdrSize, static_cast<std::size_t>(n - kVnetHdrSize)));
    });
}

PacketEnd::PacketEnd(UniqueFd fd) : fd_(std::move(fd)) {
    int one = 1;
    if (::setsockopt(fd_.get(), SOL_PACKET, PACKET_AUXDATA, &one, sizeof one) != 0)
        die("PACKET_AUXDATA");
    int flags = ::fcntl(fd_.get(), F_GETFL);
    if (flags < 0 || ::fcntl(fd_.get(), F_SETFL, flags | O_NONBLOCK) != 0)
        die("O_NONBLOCK on packet socket");
}

void PacketEnd::send(const Frame& frame) const {
    auto f = encode(frame);
    ssize_t n = ::send(fd_.get(), f.data(), f.size(), 0);
    ASSERT_EQ(n, static_cast<ssize_t>(f.size()))
        << "send on packet socket: " << std::strerror(errno);
}

std::vector<Received> PacketEnd::receive(std::chrono::milliseconds wait) const {
    return collect(fd_.get(), wait, [&]() -> std::optional<std::optional<Received>> {
        std::uint8_t buf[65536];
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(tpacket_auxdata))];
        sockaddr_ll from{};
        iovec iov{buf, sizeof buf};
        msghdr msg{};
        msg.msg_name = &from;
        msg.msg_namelen = sizeof from;
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = ::recvmsg(fd_.get(), &msg, 0);
        if (n < 0) return std::nullopt;
        if (from.sll_pkttype == PACKET_OUTGOING)
            return std::optional<std::optional<Received>>(std::in_place);
        auto r = decode(buf, static_cast<std::size_t>(n));
        if (!r) return std::optional<std::optional<Received>>(std::in_place);
        // The kernel hands the tag over separately when it took it off the frame.
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_PACKET || c->cmsg_type != PACKET_AUXDATA) continue;
            tpacket_auxdata aux;
            std::memcpy(&aux, CMSG_DATA(c), sizeof aux);
            if (aux.tp_status & TP_STATUS_VLAN_VALID) r->vlan = aux.tp_vlan_tci & 0xfff;
        }
        return std::optional<std::optional<Received>>(std::in_place, std::move(r));
    });
}

void settle() {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
}

std::vector<std::string> markers(const std::vector<Received>& frames) {
    std::vector<std::string> out;
    for (const auto& f : frames)
        out.push_back(f.marker);
    return out;
}

}  // namespace stockade::net::lab
