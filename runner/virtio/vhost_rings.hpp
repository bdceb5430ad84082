#pragma once
// Handing a virtio device's rings to a kernel vhost worker (vhost-net, vhost-vsock): the same
// checks a userspace queue gets (size, alignment, rings inside guest RAM), then the kernel's
// ring features, memory table and each ring with its kick (ioeventfd) and call (irqfd).
#include <cstdint>
#include <initializer_list>
#include <span>

#include "runner/virtio/virtio.hpp"
#include "vhost/vhost.hpp"

namespace stockade::virtio {

// `ring_features`: the negotiated bits the kernel is told about (VERSION_1 always). A
// restored snapshot's positions (context.resume) are checked against the rings in guest
// memory as a userspace queue's are, and the kernel takes each ring on from its saved
// avail index.
[[nodiscard]] Result<> start_vhost_rings(vhost::VhostDevice& vhost, const ActivateContext& context,
                                         std::initializer_list<std::uint16_t> queues,
                                         std::uint16_t max_size, std::uint64_t ring_features);

// A kick on each of `queues` (their kick eventfds), as if the guest had notified: once a
// stopped datapath runs again (released from a hold, or restored) the kernel looks at what the
// driver made available meanwhile, which it would otherwise not do until the next
// notification, and with EVENT_IDX a driver may not send one for chains it already made
// available. A kick while the datapath is stopped is lost: after it runs.
void kick_vhost_rings(std::span<const int> kick_fds, std::initializer_list<std::uint16_t> queues);

// Where the kernel's rings stand, for a snapshot: each ring's next avail index (from the
// kernel) and used index (from guest memory), in a DeviceState of `queue_count` queues.
// Only while the datapath is stopped (the device held), when every chain the kernel took
// has been used.
[[nodiscard]] Result<DeviceState> save_vhost_rings(const vhost::VhostDevice& vhost,
                                                   const GuestMemory& memory,
                                                   std::span<const QueueSetup> setups,
                                                   std::initializer_list<std::uint16_t> queues,
                                                   std::uint16_t queue_count);

}  // namespace stockade::virtio
