#pragma once
// virtio-vsock (virtio 1.2, 5.10) on the kernel's vhost-vsock: the receive and transmit
// queues are served by a vhost worker, so the guest's sockets reach host AF_VSOCK sockets
// without userspace copying anything. The event queue is served here, and only once: a
// sandbox restored from a snapshot tells its guest that the transport was reset (virtio
// 1.2, 5.10.6.7), so the guest drops every connection of the snapshot's and reads its
// (new) CID again.
//
// The guest's CID is claimed by the supervisor before the sandbox process exists
// (vhost::vsock_set_guest_cid); this process only reports it in the configuration space.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "runner/virtio/vhost_rings.hpp"
#include "runner/virtio/virtio.hpp"
#include "vhost/vhost.hpp"

namespace stockade::virtio {

inline constexpr std::uint16_t kVsockRxQueue = 0, kVsockTxQueue = 1, kVsockEventQueue = 2;

// The transport-reset event (struct virtio_vsock_event, id 0) in the first buffer the driver
// made available on the event queue `setup`, which stands at `at`: the chain is used (4
// bytes written, or 0 when its first writable buffer is too small, which is an error after
// the chain went back; `at` moves on either way) and `notify` called when the driver wants
// an interrupt. Every index and address the guest wrote is checked (SplitQueue).
[[nodiscard]] Result<> post_transport_reset(const GuestMemory& memory, const QueueSetup& setup,
                                            bool event_idx, std::uint16_t max_size,
                                            QueuePosition& at, const std::function<void()>& notify);

class Vsock : public VirtioDevice {
  public:
    // Asks the kernel which ring features it supports and offers only those; must run in
    // the process that owns `vhost`.
    [[nodiscard]] static Result<std::unique_ptr<VirtioDevice>> create(vhost::VhostDevice vhost,
                                                                      std::uint64_t guest_cid);
    ~Vsock() override;

    std::uint32_t device_type() const override { return kTypeVsock; }
    std::string name() const override { return "vsock"; }
    std::uint64_t offered_features() const override { return offered_; }
    std::uint16_t queue_count() const override { return 3; }
    void config_read(std::uint64_t offset, std::span<std::uint8_t> out) override;
    Result<> activate(const ActivateContext& context) override;
    void reset() override;
    void hold(bool held) override;
    Result<DeviceState> save_state() override;

  private:
    Vsock(vhost::VhostDevice vhost, std::uint64_t cid, std::uint64_t offered)
        : vhost_(std::move(vhost)), cid_(cid), offered_(offered) {}
    void stop();
    // Restored: the transport-reset event into the guest's first event buffer.
    void send_transport_reset(const ActivateContext& context);

    vhost::VhostDevice vhost_;
    std::uint64_t cid_;
    std::uint64_t offered_;
    std::mutex mu_;
    bool running_ = false;
    VhostRings rings_{kVsockRxQueue, kVsockTxQueue};
    QueuePosition event_position_;  // the event queue's, kept here (the kernel never sees it)
};

}  // namespace stockade::virtio
