#pragma once
// The virtio device model (virtio 1.x): what a device tells its transport, and what the
// transport hands the device when the driver sets DRIVER_OK.
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/error.hpp"
#include "base/guest_memory.hpp"
#include "guest/abi.hpp"
#include "runner/devices/fd_watcher.hpp"

namespace stockade::virtio {

// Device status bits (virtio 1.2, 2.1).
inline constexpr std::uint8_t kStatusAcknowledge = 1, kStatusDriver = 2, kStatusDriverOk = 4,
                              kStatusFeaturesOk = 8, kStatusNeedsReset = 0x40, kStatusFailed = 0x80;
// Transport feature bits every stockade device offers (6.x).
inline constexpr std::uint64_t kFeatureIndirectDesc = 1ull << 28;
inline constexpr std::uint64_t kFeatureEventIdx = 1ull << 29;
inline constexpr std::uint64_t kFeatureVersion1 = 1ull << 32;
inline constexpr std::uint64_t kTransportFeatures =
    kFeatureIndirectDesc | kFeatureEventIdx | kFeatureVersion1;

// Device types (5.x): guest/abi.hpp's, where each is paired with the guest's driver module.
inline constexpr std::uint32_t kTypeNet = guest_abi::kVirtioNet,
                               kTypeBlock = guest_abi::kVirtioBlock,
                               kTypeRng = guest_abi::kVirtioRng,
                               kTypeVsock = guest_abi::kVirtioVsock;

struct QueueSetup {
    std::uint16_t size = 0;
    std::uint64_t desc = 0, driver = 0, device = 0;  // descriptor table, avail ring, used ring
    std::uint16_t msix_vector = 0xffff;
    bool enabled = false;
};

// Where a queue stands, for snapshots: the avail index of the next chain the device takes
// and the used index of the next entry it writes.
struct QueuePosition {
    std::uint16_t next_avail = 0, next_used = 0;
};

// What a snapshot keeps of a device beyond its transport's: where each queue stands.
struct DeviceState {
    std::vector<QueuePosition> queues;  // index = queue number; {0, 0} for one not running
};

struct ActivateContext {
    const GuestMemory& memory;
    std::uint64_t features;              // negotiated
    std::span<const QueueSetup> queues;  // index = queue number
    std::span<const int> kick_fds;       // eventfd per queue, written on notify
    std::span<const int> call_fds;       // eventfd per queue that interrupts the
                                         // guest (-1: no vector assigned)
    FdWatcher& watcher;
    std::function<void(std::uint16_t queue)> notify_queue;
    std::function<void(std::string why)> needs_reset;  // a driver violation: stop the device
    // A restored snapshot's queue positions (index = queue number), for this activation
    // only; empty: the queues start at 0.
    std::span<const QueuePosition> resume = {};
};

class VirtioDevice {
  public:
    virtual ~VirtioDevice() = default;
    [[nodiscard]] virtual std::uint32_t device_type() const = 0;
    [[nodiscard]] virtual std::string name() const = 0;
    // Everything offered, transport bits included.
    [[nodiscard]] virtual std::uint64_t offered_features() const = 0;
    // Whether the device can work with what the driver chose (a subset of the offer):
    // false leaves FEATURES_OK clear, which is how a device refuses (3.1.1).
    [[nodiscard]] virtual bool accepts_features(std::uint64_t /*features*/) const { return true; }
    [[nodiscard]] virtual std::uint16_t queue_count() const = 0;
    [[nodiscard]] virtual std::uint16_t queue_max_size() const { return 256; }
    // Bytes of device-specific configuration (at most 4 KiB).
    virtual void config_read(std::uint64_t offset, std::span<std::uint8_t> out) = 0;
    virtual void config_write(std::uint64_t /*offset*/, std::span<const std::uint8_t> /*in*/) {}
    // The driver set DRIVER_OK. An error marks the device NEEDS_RESET.
    [[nodiscard]] virtual Result<> activate(const ActivateContext& context) = 0;
    // The driver wrote 0 to the status (or the device is being torn down).
    virtual void reset() = 0;
    // Pause: while held, nothing on the host's side (a vhost worker) touches the device's
    // rings or guest memory; released, it carries on. Called on the event-loop thread while
    // every vCPU is parked (so never beside activate or reset). Userspace queues need
    // nothing here: the event loop holds the descriptors that drive them.
    virtual void hold(bool /*held*/) {}
    // Whether the device is served on a thread of its own rather than on the event loop (a
    // disk, whose requests may block on slow storage). The sandbox starts that thread, with
    // its own filter, before the vCPUs run and hands it over with serve_on.
    [[nodiscard]] virtual bool wants_own_thread() const { return false; }
    virtual void serve_on(ServingThread& /*thread*/) {}
    // Snapshots: called while the device is held (paused), with every chain it took either
    // given back or handed back to the ring (a chain taken but unused is taken again after
    // restore). The positions come back through the restored transport's activation
    // (ActivateContext::resume). A device that cannot be saved says why.
    [[nodiscard]] virtual Result<DeviceState> save_state() {
        return fail("virtio {}: snapshots of this device are not supported", name());
    }
    // A writable disk's image (its descriptor and length), which a snapshot copies while the
    // device is held; nullopt: none.
    struct SnapshotDisk {
        int fd = -1;
        std::uint64_t size = 0;
    };
    [[nodiscard]] virtual std::optional<SnapshotDisk> snapshot_disk() const { return std::nullopt; }
    // What the device did, one line for `stockade run --stats`; empty: nothing to report.
    [[nodiscard]] virtual std::string stats() { return {}; }
    // PCI class code (base class, subclass, interface) its transport reports.
    [[nodiscard]] virtual std::uint32_t pci_class() const { return 0xff0000; }  // unclassified
};

}  // namespace stockade::virtio
