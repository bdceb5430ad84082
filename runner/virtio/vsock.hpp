#pragma once
// virtio-vsock (virtio 1.2, 5.10) on the kernel's vhost-vsock: the receive and transmit
// queues are served by a vhost worker, so the guest's sockets reach host AF_VSOCK sockets
// without userspace copying anything. The event queue (used only to tell a guest it was
// migrated) is left to the driver: the device never takes buffers from it.
//
// The guest's CID is claimed by the supervisor before the sandbox process exists
// (vhost::vsock_set_guest_cid); this process only reports it in the configuration space.
#include <cstdint>
#include <memory>
#include <mutex>

#include "runner/virtio/virtio.hpp"
#include "vhost/vhost.hpp"

namespace stockade::virtio {

inline constexpr std::uint16_t kVsockRxQueue = 0, kVsockTxQueue = 1, kVsockEventQueue = 2;

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

  private:
    Vsock(vhost::VhostDevice vhost, std::uint64_t cid, std::uint64_t offered)
        : vhost_(std::move(vhost)), cid_(cid), offered_(offered) {}
    void stop();

    vhost::VhostDevice vhost_;
    std::uint64_t cid_;
    std::uint64_t offered_;
    std::mutex mu_;
    bool running_ = false;
};

}  // namespace stockade::virtio
