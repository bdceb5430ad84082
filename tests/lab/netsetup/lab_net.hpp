#pragma once
// Lab helpers for the netsetup tests: a fresh network namespace per test, iproute2 to
// observe (never to configure what netsetup configures), a snapshot of everything netsetup
// could touch, and the two ends frames travel between: a sandbox's tap fd (with the
// virtio-net header, as vhost-net will write it) and a raw AF_PACKET socket.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/unique_fd.hpp"
#include "netsetup/mac.hpp"

namespace stockade::net::lab {

struct Shell {
    int status;
    std::string output;  // stdout and stderr
};
// Runs `command` with /bin/sh in the calling thread's network namespace.
Shell sh(const std::string& command);
// Same, failing the current test when the command fails.
std::string must(const std::string& command);

// Moves the calling thread into a new, empty network namespace; back on destruction,
// after which the namespace and everything in it (taps included) is gone.
class FreshNetns {
  public:
    FreshNetns();
    ~FreshNetns();
    FreshNetns(const FreshNetns&) = delete;
    FreshNetns& operator=(const FreshNetns&) = delete;

  private:
    UniqueFd original_;
};

// A named namespace (`ip netns add`) for the far side of an uplink; deleted on destruction.
class NamedNetns {
  public:
    explicit NamedNetns(std::string name);
    ~NamedNetns();
    NamedNetns(const NamedNetns&) = delete;
    NamedNetns& operator=(const NamedNetns&) = delete;
    [[nodiscard]] const std::string& name() const { return name_; }
    // Runs `command` inside (ip -n / ip netns exec).
    std::string exec(const std::string& command) const;
    // A raw socket bound to `ifname` inside this namespace.
    UniqueFd packet_socket(const std::string& ifname) const;

  private:
    std::string name_;
};

// Links, bridge VLANs, qdiscs and tc filters of the current namespace, as stable text
// (timers that tick by themselves are left out), once settled.
std::string host_snapshot();
// The same, but as soon as one look equals `expected` (what a check compares with): everything
// a change leaves behind shows at once (links, flags, VLANs, qdiscs, filters); only derived
// operational state lags, and that settles towards the flags, not away from them. Otherwise
// the settled state, as host_snapshot().
std::string host_snapshot_as(const std::string& expected);

// ---- frames ----
inline constexpr std::uint16_t kTestEthertype = 0x88b5;  // IEEE local experimental

struct Frame {
    MacAddress dst;
    MacAddress src;
    std::optional<std::uint16_t> vlan;  // 802.1Q tag
    std::string marker;                 // payload, to tell test frames apart
};

struct Received {
    MacAddress dst;
    MacAddress src;
    std::optional<std::uint16_t> vlan;
    std::string marker;
};

std::vector<std::uint8_t> encode(const Frame& frame);
// nullopt for frames that are not test frames (IPv6 ND, MLD, ...).
std::optional<Received> decode(const std::uint8_t* data, std::size_t size);

MacAddress mac(std::string_view text);
inline const MacAddress kBroadcast{{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}};

// A sandbox's view of its tap: frames written and read with a 12-byte virtio-net header.
class TapEnd {
  public:
    explicit TapEnd(int fd);  // not owned; made non-blocking
    void send(const Frame& frame) const;
    // Test frames that arrive within `wait`.
    std::vector<Received> receive(
        std::chrono::milliseconds wait = std::chrono::milliseconds(20)) const;

  private:
    int fd_;
};

// A raw socket on some interface: sends frames as they are, receives with the VLAN tag
// the kernel took off put back into Received::vlan.
class PacketEnd {
  public:
    explicit PacketEnd(UniqueFd fd);
    void send(const Frame& frame) const;
    std::vector<Received> receive(
        std::chrono::milliseconds wait = std::chrono::milliseconds(20)) const;

  private:
    UniqueFd fd_;
};

// Gives frames in flight time to arrive (receive() then only drains what is queued).
void settle();

// Markers of the frames in `frames`, in order.
std::vector<std::string> markers(const std::vector<Received>& frames);

}  // namespace stockade::net::lab
