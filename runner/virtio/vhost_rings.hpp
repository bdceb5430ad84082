#pragma once
// Handing a virtio device's rings to a kernel vhost worker (vhost-net, vhost-vsock): the same
// checks a userspace queue gets (size, alignment, rings inside guest RAM), then the kernel's
// ring features, memory table and each ring with its kick (ioeventfd) and call (irqfd).
#include <cstdint>
#include <initializer_list>

#include "runner/virtio/virtio.hpp"
#include "vhost/vhost.hpp"

namespace stockade::virtio {

// `ring_features`: the negotiated bits the kernel is told about (VERSION_1 always).
[[nodiscard]] Result<> start_vhost_rings(vhost::VhostDevice& vhost, const ActivateContext& context,
                                         std::initializer_list<std::uint16_t> queues,
                                         std::uint16_t max_size, std::uint64_t ring_features);

}  // namespace stockade::virtio
