#pragma once
// virtio-net (virtio 1.2, 5.1): one receive and one transmit queue on a tap. Two datapaths:
//   vhost-net: the kernel's vhost worker moves frames between the rings and the tap; the
//              guest's notifications reach it through the KVM ioeventfds and it interrupts
//              the guest through the MSI-X irqfds, so no exit reaches userspace per packet;
//   userspace: the event loop moves frames (`--net ...,vhost=off`, or no /dev/vhost-net).
// Either way the virtio_net_hdr passes through unchanged: the tap was made with
// IFF_VNET_HDR and a 12-byte header, and the offloads it may hand the guest (TUNSETOFFLOAD)
// are exactly those the guest accepted. Frames and headers from the guest are hostile; the
// tap validates headers itself, and every descriptor is checked by the queue code.
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "base/unique_fd.hpp"
#include "runner/virtio/queue_device.hpp"
#include "runner/virtio/vhost_rings.hpp"
#include "vhost/vhost.hpp"

namespace stockade::virtio {

// Feature bits of virtio-net (5.1.3).
inline constexpr std::uint64_t kNetFCsum = 1ull << 0, kNetFGuestCsum = 1ull << 1,
                               kNetFMtu = 1ull << 3, kNetFMac = 1ull << 5,
                               kNetFGuestTso4 = 1ull << 7, kNetFGuestTso6 = 1ull << 8,
                               kNetFGuestEcn = 1ull << 9, kNetFHostTso4 = 1ull << 11,
                               kNetFHostTso6 = 1ull << 12, kNetFHostEcn = 1ull << 13,
                               kNetFMrgRxbuf = 1ull << 15, kNetFStatus = 1ull << 16;
inline constexpr std::uint16_t kNetSLinkUp = 1;
inline constexpr std::uint16_t kNetRxQueue = 0, kNetTxQueue = 1;
// struct virtio_net_hdr_mrg_rxbuf: the header of every frame for a VERSION_1 device.
inline constexpr std::size_t kNetHdrSize = 12;
// The largest frame a tap hands over or takes (64 KiB GSO frames plus link headers).
inline constexpr std::size_t kNetMaxFrame = 65536 + 256;

// The TUN_F_* offloads a tap may use towards a guest that accepted `features`.
[[nodiscard]] unsigned tap_offloads_for(std::uint64_t features);
// Whether `features` respect virtio-net's dependencies (5.1.3.1): e.g. guest TSO only with
// guest checksum offload.
[[nodiscard]] bool net_features_consistent(std::uint64_t features);

struct NetBackend {
    UniqueFd tap;                             // IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, hdr 12
    std::array<std::uint8_t, 6> mac{};        // what the guest uses (and the host filters on)
    std::optional<std::uint16_t> mtu;         // advertised with VIRTIO_NET_F_MTU
    std::optional<vhost::VhostDevice> vhost;  // owned /dev/vhost-net; none: userspace
    bool is_tap = true;  // false (unit tests): a datagram socket stands in, no tap ioctls
};

class Net : public QueueDevice {
  public:
    // For vhost-net this asks the kernel which ring features it supports (VHOST_GET_FEATURES)
    // and offers the guest only those; it must run in the process that owns the vhost fd.
    [[nodiscard]] static Result<std::unique_ptr<VirtioDevice>> create(NetBackend backend);
    ~Net() override;

    std::uint32_t device_type() const override { return kTypeNet; }
    std::string name() const override { return "net"; }
    std::uint64_t offered_features() const override { return offered_; }
    bool accepts_features(std::uint64_t features) const override {
        return net_features_consistent(features);
    }
    std::uint16_t queue_count() const override { return 2; }
    void config_read(std::uint64_t offset, std::span<std::uint8_t> out) override;
    Result<> activate(const ActivateContext& context) override;
    void reset() override;
    void hold(bool held) override;
    // Snapshots (the device held): the userspace datapath's positions (the receive chains
    // waiting for a frame are taken again after restore; a frame read from the tap and not yet
    // delivered is lost, as on a wire), or the vhost-net rings', read when the backend was
    // detached (hold, on the event loop). A restore gives the kernel its rings back there.
    [[nodiscard]] Result<DeviceState> save_state() override;

    [[nodiscard]] bool uses_vhost() const { return backend_.vhost.has_value(); }
    // The TUN_F_* offloads the tap was last told to use.
    [[nodiscard]] unsigned tap_offloads() const { return offloads_; }
    struct Counters {
        std::uint64_t rx_frames = 0, tx_frames = 0, rx_dropped = 0, tx_dropped = 0;
    };
    [[nodiscard]] Counters counters();
    // Receive chains held for the pending frame (userspace datapath): at most the queue size.
    [[nodiscard]] std::size_t reserved_chains();
    // The datapath and, for the userspace one, frames and each queue's kicks, runs,
    // interrupts and turns that ended at the serve budget.
    std::string stats() override;
    std::uint32_t pci_class() const override { return 0x020000; }  // network controller

  protected:
    Result<> serve(std::uint16_t q, SplitQueue& queue, const GuestMemory& memory) override;
    void on_activate(const ActivateContext& context) override;
    void on_reset() override;
    void on_broken() override;
    [[nodiscard]] std::uint16_t unused_chains(std::uint16_t q) const override;

  private:
    Net(NetBackend backend, std::uint64_t offered)
        : backend_(std::move(backend)), offered_(offered) {}
    [[nodiscard]] Result<> receive(SplitQueue& queue, const GuestMemory& memory);
    [[nodiscard]] Result<> transmit(SplitQueue& queue, const GuestMemory& memory);
    // Places the pending frame into reserved receive chains; false: not enough buffers yet.
    [[nodiscard]] Result<bool> deliver(SplitQueue& queue, const GuestMemory& memory);
    void set_tap_watch(bool on);
    [[nodiscard]] Result<> start_vhost(const ActivateContext& context);
    void stop_vhost();
    [[nodiscard]] Result<> set_offloads(unsigned offloads);

    NetBackend backend_;
    std::uint64_t offered_;
    // Userspace datapath (guarded by QueueDevice::mu_).
    std::vector<std::uint8_t> frame_;  // the frame read from the tap, header first
    std::size_t frame_len_ = 0;        // 0: none pending
    std::vector<Chain> reserved_;      // receive chains popped but not yet used
    FdWatcher* watcher_ = nullptr;
    bool tap_watched_ = false;
    Counters counters_;
    // vhost-net datapath.
    std::mutex vhost_mu_;
    bool vhost_running_ = false;
    VhostRings vhost_rings_{kNetRxQueue, kNetTxQueue};
    bool warned_tap_ = false;
    std::atomic<unsigned> offloads_{0};
};

}  // namespace stockade::virtio
