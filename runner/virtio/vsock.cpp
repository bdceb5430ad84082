#include "runner/virtio/vsock.hpp"

#include <cstring>

#include "base/log.hpp"
#include "runner/virtio/vhost_rings.hpp"

namespace stockade::virtio {
namespace {

// Ring layouts the device offers when the kernel's vhost-vsock supports them. Stream
// sockets only: VIRTIO_VSOCK_F_SEQPACKET is not offered.
constexpr std::uint64_t kRingFeatures = kFeatureIndirectDesc | kFeatureEventIdx;

}  // namespace

Result<std::unique_ptr<VirtioDevice>> Vsock::create(vhost::VhostDevice vhost,
                                                    std::uint64_t guest_cid) {
    // CIDs 0-2 are the hypervisor, the local loopback and the host; U32_MAX is "any".
    if (guest_cid < 3 || guest_cid >= 0xffff'ffffu)
        return fail("virtio-vsock: {} is not a guest CID", guest_cid);
    const std::uint64_t kernel = STOCKADE_TRY(vhost.features());
    if (!(kernel & kFeatureVersion1))
        return fail("vhost-vsock: the kernel does not support VIRTIO_F_VERSION_1");
    const std::uint64_t offered = kFeatureVersion1 | (kernel & kRingFeatures);
    return std::unique_ptr<VirtioDevice>(new Vsock(std::move(vhost), guest_cid, offered));
}

Vsock::~Vsock() {
    stop();
}

void Vsock::config_read(std::uint64_t offset, std::span<std::uint8_t> out) {
    // struct virtio_vsock_config: le64 guest_cid.
    std::uint8_t img[8];
    std::memcpy(img, &cid_, sizeof img);
    std::fill(out.begin(), out.end(), 0);
    for (std::size_t i = 0; i < out.size(); ++i)
        if (offset + i < sizeof img) out[i] = img[offset + i];
}

Result<> Vsock::activate(const ActivateContext& ctx) {
    std::unique_lock lock(mu_);
    running_ = true;  // from here on, stop() has something to undo
    auto started = start_vhost_rings(vhost_, ctx, {kVsockRxQueue, kVsockTxQueue}, queue_max_size(),
                                     kRingFeatures);
    if (started) started = vhost_.vsock_set_running(true);
    lock.unlock();
    if (!started) stop();
    return started;
}

void Vsock::hold(bool held) {
    std::lock_guard lock(mu_);
    // Stopped, vhost-vsock keeps its connections and what waits to be sent to the guest.
    if (running_)
        if (auto r = vhost_.vsock_set_running(!held); !r) log::warn("{}", r.error().message);
}

void Vsock::reset() {
    stop();
}

void Vsock::stop() {
    std::lock_guard lock(mu_);
    if (!running_) return;
    running_ = false;
    (void)vhost_.vsock_set_running(false);
    for (std::uint32_t q : {kVsockRxQueue, kVsockTxQueue})
        (void)vhost_.stop_vring(q);
}

}  // namespace stockade::virtio
