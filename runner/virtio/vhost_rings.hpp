#pragma once
// Handing a virtio device's rings to a kernel vhost worker (vhost-net, vhost-vsock): the same
// checks a userspace queue gets (size, alignment, rings inside guest RAM), then the kernel's
// ring features, memory table and each ring with its kick (ioeventfd) and call (irqfd).
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "runner/virtio/virtio.hpp"
#include "vhost/vhost.hpp"

namespace stockade::virtio {

// `ring_features`: the negotiated bits the kernel is told about (VERSION_1 always). A
// restored snapshot's positions (context.resume) are checked against the rings in guest
// memory as a userspace queue's are, and the kernel takes each ring on from its saved
// avail index. Queue q is the vhost device's ring q - first (a multi-queue virtio-net
// device's pair k is queues 2k and 2k + 1 of the guest's, rings 0 and 1 of its own vhost-net).
[[nodiscard]] Result<> start_vhost_rings(vhost::VhostDevice& vhost, const ActivateContext& context,
                                         std::span<const std::uint16_t> queues,
                                         std::uint16_t max_size, std::uint64_t ring_features,
                                         std::uint16_t first = 0);

// A kick on each of `queues` (their kick eventfds), as if the guest had notified: once a
// stopped datapath runs again (released from a hold, or restored) the kernel looks at what the
// driver made available meanwhile, which it would otherwise not do until the next
// notification, and with EVENT_IDX a driver may not send one for chains it already made
// available. A kick while the datapath is stopped is lost: after it runs.
void kick_vhost_rings(std::span<const int> kick_fds, std::span<const std::uint16_t> queues);

// Where the kernel's rings stand, for a snapshot: each ring's next avail index (from the
// kernel) and used index (from guest memory), in a DeviceState of `queue_count` queues.
// Only while the datapath is stopped (the device held), when every chain the kernel took
// has been used.
[[nodiscard]] Result<DeviceState> save_vhost_rings(
    const vhost::VhostDevice& vhost, const GuestMemory& memory, std::span<const QueueSetup> setups,
    std::span<const std::uint16_t> queues, std::uint16_t queue_count, std::uint16_t first = 0);

// What a vhost device (vhost-vsock, vhost-net) keeps of its kernel rings between starts, for
// holds and snapshots: where the rings are and their kicks while the datapath runs, and the
// positions read at the last hold. Guarded by the device's own lock.
class VhostRings {
  public:
    // The guest's queue numbers; queue q is the vhost device's ring q - first.
    explicit VhostRings(std::initializer_list<std::uint16_t> queues) : queues_(queues) {}
    VhostRings(std::vector<std::uint16_t> queues, std::uint16_t first)
        : queues_(std::move(queues)), first_(first) {}
    [[nodiscard]] bool running() const { return memory_ != nullptr; }
    // Each queue's used index in guest memory (what the kernel has used, modulo 2^16), while
    // the datapath runs; empty otherwise.
    [[nodiscard]] std::vector<std::uint16_t> used_indices() const;
    // The datapath runs (start_vhost_rings and the backend done); a restored one is kicked.
    void started(const ActivateContext& context);
    void stopped();
    // The datapath was switched off (held) or on again: on, the rings are kicked; off and
    // `switched` without error, their positions are read (save_vhost_rings) for saved().
    void switched(const vhost::VhostDevice& vhost, bool held, Result<> switched);
    // A snapshot's positions: every queue at {0, 0} when the datapath is not running, those of
    // the last hold while it is held.
    [[nodiscard]] Result<DeviceState> saved(std::uint16_t queue_count,
                                            std::string_view device) const;

  private:
    std::vector<std::uint16_t> queues_;
    std::uint16_t first_ = 0;
    const GuestMemory* memory_ = nullptr;  // null: not running
    std::vector<QueueSetup> setups_;
    std::vector<int> kick_fds_;
    std::optional<Result<DeviceState>> held_;
};

}  // namespace stockade::virtio
