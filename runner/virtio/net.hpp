#pragma once
// virtio-net (virtio 1.2, 5.1): a receive and a transmit queue on a tap, or N such pairs on the
// N queues of a multi-queue tap with a control queue through which the driver says how many
// it uses (VIRTIO_NET_F_MQ: one per vCPU, as Linux's driver does). Two datapaths:
//   vhost-net: the kernel's vhost worker moves frames between the rings and the tap; the
//              guest's notifications reach it through the KVM ioeventfds and it interrupts
//              the guest through the MSI-X irqfds, so no exit reaches userspace per packet;
//   userspace: the event loop moves frames (`--net ...,vhost=off`, or no /dev/vhost-net).
// Each pair has its own tap queue and, for vhost-net, its own /dev/vhost-net (one kernel worker
// per pair). The tap queues of pairs the driver does not use are detached (TUNSETQUEUE), so
// the tap never steers a flow to a queue nobody serves. The control queue is served in
// userspace on either datapath.
// Either way the virtio_net_hdr passes through unchanged: the tap was made with
// IFF_VNET_HDR and a 12-byte header, and the offloads it may hand the guest (TUNSETOFFLOAD)
// are exactly those the guest accepted. Frames and headers from the guest are hostile; the
// tap validates headers itself, and every descriptor is checked by the queue code.
#include <array>
#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
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
                               kNetFMrgRxbuf = 1ull << 15, kNetFStatus = 1ull << 16,
                               kNetFCtrlVq = 1ull << 17, kNetFMq = 1ull << 22;
inline constexpr std::uint16_t kNetSLinkUp = 1;
inline constexpr std::uint16_t kNetRxQueue = 0, kNetTxQueue = 1;  // pair k: 2k and 2k + 1
// The most queue pairs a device offers (each is a tap queue, a vhost worker and three MSI-X
// vectors' worth of queues).
inline constexpr std::uint16_t kNetMaxQueuePairs = 16;
// Each virtqueue's size (the most the driver may set; Linux takes it): `--net queue_size=N`,
// a power of two in this range.
inline constexpr std::uint16_t kNetMinQueueSize = 64, kNetMaxQueueSize = 1024,
                               kNetDefaultQueueSize = 256;
[[nodiscard]] constexpr bool valid_net_queue_size(unsigned n) {
    return n >= kNetMinQueueSize && n <= kNetMaxQueueSize && std::has_single_bit(n);
}
// The control queue's one command class stockade serves (5.1.6.5.5) and the acks.
inline constexpr std::uint8_t kNetCtrlMq = 4, kNetCtrlMqVqPairsSet = 0;
inline constexpr std::uint8_t kNetOk = 0, kNetErr = 1;
// struct virtio_net_hdr_mrg_rxbuf: the header of every frame for a VERSION_1 device.
inline constexpr std::size_t kNetHdrSize = 12;
// The largest frame a tap hands over or takes (64 KiB GSO frames plus link headers).
inline constexpr std::size_t kNetMaxFrame = 65536 + 256;

// The TUN_F_* offloads a tap may use towards a guest that accepted `features`.
[[nodiscard]] unsigned tap_offloads_for(std::uint64_t features);
// Whether `features` respect virtio-net's dependencies (5.1.3.1): e.g. guest TSO only with
// guest checksum offload.
[[nodiscard]] bool net_features_consistent(std::uint64_t features);

// Pairs after the first on a multi-queue tap: a queue's fd and its own /dev/vhost-net.
struct NetQueuePair {
    UniqueFd tap;
    std::optional<vhost::VhostDevice> vhost;
};

struct NetBackend {
    UniqueFd tap;                             // IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, hdr 12
    std::array<std::uint8_t, 6> mac{};        // what the guest uses (and the host filters on)
    std::optional<std::uint16_t> mtu;         // advertised with VIRTIO_NET_F_MTU
    std::optional<vhost::VhostDevice> vhost;  // owned /dev/vhost-net; none: userspace
    bool is_tap = true;  // false (unit tests): a datagram socket stands in, no tap ioctls
    // Pairs 1.. (IFF_MULTI_QUEUE: one fd per queue), each with a vhost-net exactly when pair 0
    // has one. Empty: one pair and no control queue, as a single-queue tap.
    std::vector<NetQueuePair> more_pairs{};
    std::uint16_t queue_size = kNetDefaultQueueSize;  // every virtqueue's (checked by create)
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
    std::uint16_t queue_max_size() const override { return queue_size_; }
    bool accepts_features(std::uint64_t features) const override {
        return net_features_consistent(features);
    }
    // Two per pair, and the control queue after them when there is more than one pair.
    std::uint16_t queue_count() const override {
        return multi_queue() ? static_cast<std::uint16_t>(2 * pairs_.size() + 1) : 2;
    }
    void config_read(std::uint64_t offset, std::span<std::uint8_t> out) override;
    Result<> activate(const ActivateContext& context) override;
    void reset() override;
    void hold(bool held) override;
    // Snapshots (the device held): the userspace datapath's positions (the receive chains
    // waiting for a frame are taken again after restore; a frame read from the tap and not yet
    // delivered is lost, as on a wire), or the vhost-net rings', read when the backend was
    // detached (hold, on the event loop). A restore gives the kernel its rings back there.
    [[nodiscard]] Result<DeviceState> save_state() override;

    [[nodiscard]] bool uses_vhost() const { return pairs_.front().vhost.has_value(); }
    [[nodiscard]] std::uint16_t queue_pairs() const {
        return static_cast<std::uint16_t>(pairs_.size());
    }
    // The pairs the driver uses (1 until it says otherwise through the control queue).
    [[nodiscard]] std::uint16_t pairs_in_use();
    // The TUN_F_* offloads the tap was last told to use.
    [[nodiscard]] unsigned tap_offloads() const { return offloads_; }
    struct Counters {
        std::uint64_t rx_frames = 0, tx_frames = 0, rx_dropped = 0, tx_dropped = 0;
        std::uint64_t commands_refused = 0;  // control queue: answered VIRTIO_NET_ERR
    };
    [[nodiscard]] Counters counters();
    // Receive chains held for the pending frame (userspace datapath): at most the queue size.
    [[nodiscard]] std::size_t reserved_chains();
    // The datapath and, for the userspace one, frames and each queue's kicks, runs,
    // interrupts and turns that ended at the serve budget; with several pairs, how many are in
    // use and, for vhost-net, each ring's used index (chains the kernel has used, modulo 2^16).
    std::string stats() override;
    std::uint32_t pci_class() const override { return 0x020000; }  // network controller

  protected:
    Result<> serve(std::uint16_t q, SplitQueue& queue, const GuestMemory& memory) override;
    void on_activate(const ActivateContext& context) override;
    void on_reset() override;
    void on_broken() override;
    [[nodiscard]] std::uint16_t unused_chains(std::uint16_t q) const override;
    [[nodiscard]] bool serves_queue(std::uint16_t q, std::uint64_t features) const override;

  private:
    struct Pair {
        Pair(UniqueFd t, std::optional<vhost::VhostDevice> v, std::uint16_t k)
            : tap(std::move(t)),
              vhost(std::move(v)),
              rings({static_cast<std::uint16_t>(2 * k), static_cast<std::uint16_t>(2 * k + 1)},
                    static_cast<std::uint16_t>(2 * k)) {}
        UniqueFd tap;
        std::optional<vhost::VhostDevice> vhost;
        VhostRings rings;  // guarded by vhost_mu_
        // Userspace datapath (guarded by QueueDevice::mu_).
        std::vector<std::uint8_t> frame;  // the frame read from the tap, header first
        std::size_t frame_len = 0;        // 0: none pending
        std::vector<Chain> reserved;      // receive chains popped but not yet used
        bool tap_watched = false;
        bool attached = true;  // the tap queue takes frames (TUNSETQUEUE); guarded by mu_
        // The driver enabled its receive ring / both rings (this activation); guarded by mu_.
        bool rx_enabled = false, enabled = false;
    };

    Net(NetBackend backend, std::uint64_t offered);
    [[nodiscard]] bool multi_queue() const { return pairs_.size() > 1; }
    // The control queue's number (5.1.2: after the pairs the driver may use), once negotiated.
    [[nodiscard]] std::optional<std::uint16_t> control_queue(std::uint64_t features) const;
    [[nodiscard]] Result<> receive(Pair& pair, std::uint16_t k, SplitQueue& queue,
                                   const GuestMemory& memory);
    [[nodiscard]] Result<> transmit(Pair& pair, std::uint16_t k, SplitQueue& queue,
                                    const GuestMemory& memory);
    // Places the pending frame into reserved receive chains; false: not enough buffers yet.
    [[nodiscard]] Result<bool> deliver(Pair& pair, SplitQueue& queue, const GuestMemory& memory);
    [[nodiscard]] Result<> control(SplitQueue& queue, const GuestMemory& memory);
    [[nodiscard]] std::uint8_t command(std::uint8_t cls, std::uint8_t code,
                                       std::span<const std::uint8_t> data);
    // Attaches the tap queues of pairs 0..k-1 and detaches the others (mu_ held).
    [[nodiscard]] bool use_pairs(std::uint16_t k);
    void set_tap_watch(std::uint16_t k, bool on);
    [[nodiscard]] Result<> start_vhost(const ActivateContext& context);
    void stop_vhost();
    [[nodiscard]] Result<> set_offloads(unsigned offloads);

    std::array<std::uint8_t, 6> mac_;
    std::optional<std::uint16_t> mtu_;
    bool is_tap_;
    std::vector<Pair> pairs_;
    std::uint64_t offered_;
    std::uint16_t queue_size_;
    std::atomic<std::uint16_t> ring_size_{0};  // rx0's, as the driver set it; 0: not active
    // Userspace datapath and control queue (guarded by QueueDevice::mu_).
    FdWatcher* watcher_ = nullptr;
    Counters counters_;
    std::uint16_t pairs_in_use_ = 1;
    // vhost-net datapath.
    std::mutex vhost_mu_;
    bool vhost_running_ = false;
    bool warned_tap_ = false;
    std::atomic<unsigned> offloads_{0};
};

}  // namespace stockade::virtio
