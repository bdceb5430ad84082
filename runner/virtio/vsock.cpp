#include "runner/virtio/vsock.hpp"

#include <cstring>

#include "base/log.hpp"
#include "runner/virtio/queue.hpp"
#include "runner/virtio/vhost_rings.hpp"

namespace stockade::virtio {
namespace {

// Ring layouts the device offers when the kernel's vhost-vsock supports them. Stream
// sockets only: VIRTIO_VSOCK_F_SEQPACKET is not offered.
constexpr std::uint64_t kVsockRingFeatures = kFeatureIndirectDesc | kFeatureEventIdx;
// struct virtio_vsock_event: le32 id; the one event there is.
constexpr std::uint32_t kEventTransportReset = 0;

}  // namespace

Result<> post_transport_reset(const GuestMemory& memory, const QueueSetup& setup, bool event_idx,
                              std::uint16_t max_size, QueuePosition& at,
                              const std::function<void()>& notify) {
    auto queue = STOCKADE_TRY(SplitQueue::create(memory, setup, event_idx, max_size));
    STOCKADE_TRY_VOID(queue.resume_at(at));
    auto chain = STOCKADE_TRY(queue.pop());
    if (!chain) return fail("the guest left no buffer on the event queue");
    std::uint32_t written = 0;
    if (!chain->writable.empty() && chain->writable[0].len >= sizeof kEventTransportReset) {
        STOCKADE_TRY_VOID(memory.write_obj(chain->writable[0].addr, kEventTransportReset));
        written = sizeof kEventTransportReset;
    }
    STOCKADE_TRY_VOID(queue.push_used(chain->head, written));
    at = queue.position();
    if (STOCKADE_TRY(queue.should_notify())) notify();
    if (written == 0) return fail("the guest's event buffer takes no event");
    return {};
}

Result<std::unique_ptr<VirtioDevice>> Vsock::create(vhost::VhostDevice vhost,
                                                    std::uint64_t guest_cid) {
    // CIDs 0-2 are the hypervisor, the local loopback and the host; U32_MAX is "any".
    if (guest_cid < 3 || guest_cid >= 0xffff'ffffu)
        return fail("virtio-vsock: {} is not a guest CID", guest_cid);
    const std::uint64_t kernel = STOCKADE_TRY(vhost.features());
    if (!(kernel & kFeatureVersion1))
        return fail("vhost-vsock: the kernel does not support VIRTIO_F_VERSION_1");
    const std::uint64_t offered = kFeatureVersion1 | (kernel & kVsockRingFeatures);
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
    constexpr std::uint16_t kRings[] = {kVsockRxQueue, kVsockTxQueue};
    auto started = start_vhost_rings(vhost_, ctx, kRings, queue_max_size(), kVsockRingFeatures);
    if (started) started = vhost_.vsock_set_running(true);
    if (started) {
        event_position_ =
            kVsockEventQueue < ctx.resume.size() ? ctx.resume[kVsockEventQueue] : QueuePosition{};
        if (!ctx.resume.empty()) send_transport_reset(ctx);
        rings_.started(ctx);
    }
    lock.unlock();
    if (!started) stop();
    return started;
}

void Vsock::send_transport_reset(const ActivateContext& ctx) {
    // Without the event the guest keeps its old CID and its connections hang: it is warned
    // of, and the sandbox goes on (its guest may have no event buffer for a reason of its own).
    if (kVsockEventQueue >= ctx.queues.size() || !ctx.queues[kVsockEventQueue].enabled) {
        log::warn("virtio vsock: restored with the event queue off: the guest is not told");
        return;
    }
    auto posted = post_transport_reset(
        ctx.memory, ctx.queues[kVsockEventQueue], (ctx.features & kFeatureEventIdx) != 0,
        queue_max_size(), event_position_, [&ctx] { ctx.notify_queue(kVsockEventQueue); });
    if (!posted)
        log::warn("virtio vsock: telling the guest its transport was reset: {}",
                  posted.error().message);
}

Result<DeviceState> Vsock::save_state() {
    std::lock_guard lock(mu_);
    DeviceState s = STOCKADE_TRY(rings_.saved(queue_count(), name()));
    if (running_) s.queues[kVsockEventQueue] = event_position_;
    return s;
}

void Vsock::hold(bool held) {
    std::lock_guard lock(mu_);
    if (!running_) return;
    // Stopped, vhost-vsock keeps its connections and what waits to be sent to the guest.
    auto switched = vhost_.vsock_set_running(!held);
    if (!switched) log::warn("{}", switched.error().message);
    rings_.switched(vhost_, held, std::move(switched));
}

void Vsock::reset() {
    stop();
}

void Vsock::stop() {
    std::lock_guard lock(mu_);
    if (!running_) return;
    running_ = false;
    rings_.stopped();
    (void)vhost_.vsock_set_running(false);
    for (std::uint32_t q : {kVsockRxQueue, kVsockTxQueue})
        (void)vhost_.stop_vring(q);
}

}  // namespace stockade::virtio
