#pragma once
// A kernel vhost device (/dev/vhost-net, /dev/vhost-vsock): the common protocol. The fd is
// opened before the jail and handed in; this class takes ownership, claims it for this
// process, tells the kernel where guest RAM is, and sets up each virtqueue's rings and
// its kick (ioeventfd) and call (irqfd) eventfds. The datapath then runs in a vhost
// kernel worker: no exit and no userspace work per packet.
#include <cstdint>

#include "base/error.hpp"
#include "base/guest_memory.hpp"
#include "base/uapi.hpp"
#include "base/unique_fd.hpp"

namespace stockade::vhost {

struct VringSetup {
    std::uint32_t index = 0;
    std::uint16_t size = 0;
    std::uint64_t desc = 0, avail = 0, used = 0;  // guest physical addresses
    int kick_fd = -1;                             // the guest's notifications arrive here
    int call_fd = -1;                             // written by vhost to interrupt the guest
    bool event_idx = false;
    std::uint16_t base = 0;  // the avail index the kernel takes next (a restored snapshot's)
};

class VhostDevice {
  public:
    // Takes an open /dev/vhost-* fd and sets this process as its owner.
    [[nodiscard]] static Result<VhostDevice> adopt(UniqueFd fd, const char* what);

    [[nodiscard]] Result<std::uint64_t> features() const;
    [[nodiscard]] Result<> set_features(std::uint64_t features);
    // The guest RAM table: every region with its host address.
    [[nodiscard]] Result<> set_memory(const GuestMemory& memory);
    // Ring size, base index, ring addresses (host addresses of the guest rings, which
    // must lie in RAM), kick and call eventfds.
    [[nodiscard]] Result<> set_vring(const GuestMemory& memory, const VringSetup& vring);
    // Stops the kernel using a ring (device reset): detaches kick and call.
    [[nodiscard]] Result<std::uint16_t> stop_vring(std::uint32_t index);
    // The avail index the kernel takes next on ring `index`, which stays attached: stable
    // only while the datapath is stopped (vhost-vsock not running, vhost-net's backend
    // detached).
    [[nodiscard]] Result<std::uint16_t> vring_base(std::uint32_t index) const;
    // vhost-net: the tap (or -1: none) whose frames ring `index` carries. Attaching the
    // backend starts the kernel's datapath for that ring; -1 stops it.
    [[nodiscard]] Result<> net_set_backend(std::uint32_t index, int tap_fd);
    // vhost-vsock: starts (true) or stops the kernel's datapath for both rings.
    [[nodiscard]] Result<> vsock_set_running(bool running);

  private:
    VhostDevice(UniqueFd fd, const char* what) : fd_(std::move(fd)), what_(what) {}
    UniqueFd fd_;
    const char* what_;
};

// vhost-vsock: claims `cid` for the guest behind `fd` (an open /dev/vhost-vsock, before any
// owner is set). CIDs are host-wide: EADDRINUSE when another VM holds it.
[[nodiscard]] Result<> vsock_set_guest_cid(int fd, std::uint64_t cid);

}  // namespace stockade::vhost
