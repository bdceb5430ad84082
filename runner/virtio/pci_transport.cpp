#include "runner/virtio/pci_transport.hpp"

#include <linux/virtio_pci.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>

namespace stockade::virtio {
namespace {

// The common configuration structure (virtio 1.2, 4.1.4.3), its fields named as the kernel
// names them: "guest" features are the driver's, "avail" is the driver area, "used" the
// device area.
using CommonCfg = virtio_pci_common_cfg;
constexpr std::uint64_t kCommonSize = sizeof(CommonCfg);
static_assert(kCommonSize == 0x38);
constexpr std::size_t kDeviceFeatureSelect = offsetof(CommonCfg, device_feature_select),
                      kDeviceFeature = offsetof(CommonCfg, device_feature),
                      kDriverFeatureSelect = offsetof(CommonCfg, guest_feature_select),
                      kDriverFeature = offsetof(CommonCfg, guest_feature),
                      kMsixConfig = offsetof(CommonCfg, msix_config),
                      kNumQueues = offsetof(CommonCfg, num_queues),
                      kDeviceStatus = offsetof(CommonCfg, device_status),
                      kConfigGeneration = offsetof(CommonCfg, config_generation),
                      kQueueSelect = offsetof(CommonCfg, queue_select),
                      kQueueSize = offsetof(CommonCfg, queue_size),
                      kQueueMsixVector = offsetof(CommonCfg, queue_msix_vector),
                      kQueueEnable = offsetof(CommonCfg, queue_enable),
                      kQueueNotifyOff = offsetof(CommonCfg, queue_notify_off),
                      kQueueDesc = offsetof(CommonCfg, queue_desc_lo),
                      kQueueDriver = offsetof(CommonCfg, queue_avail_lo),
                      kQueueDevice = offsetof(CommonCfg, queue_used_lo);

constexpr std::uint64_t kDeviceCfgSize = 0x1000;
constexpr std::uint16_t kVirtioVendor = 0x1af4;

// ConfigSpace::add_capability writes a capability's cap_vndr and cap_next itself and takes
// the rest, the body; offsets into a body are the structure's offsets less this.
constexpr std::size_t kCapBodyStart = offsetof(virtio_pci_cap, cap_len);
constexpr std::size_t in_body(std::size_t field_offset) {
    return field_offset - kCapBodyStart;
}
// Where, in the VIRTIO_PCI_CAP_PCI_CFG capability, the window's data lies.
constexpr std::size_t kPciCfgData = offsetof(virtio_pci_cfg_cap, pci_cfg_data);
constexpr std::size_t kPciCfgDataSize = sizeof(virtio_pci_cfg_cap::pci_cfg_data);

// The body of a virtio_pci_cap in BAR 0, with `extra` bytes after it (zero) for the
// capabilities that extend it.
std::vector<std::uint8_t> virtio_cap(std::uint8_t type, std::uint32_t offset, std::uint32_t length,
                                     std::size_t extra = 0) {
    virtio_pci_cap cap{};
    cap.cap_len = static_cast<std::uint8_t>(sizeof cap + extra);  // counting vndr and next
    cap.cfg_type = type;
    cap.bar = 0;
    cap.offset = offset;
    cap.length = length;
    std::vector<std::uint8_t> b(sizeof cap - kCapBodyStart + extra, 0);
    std::memcpy(b.data(), reinterpret_cast<const std::uint8_t*>(&cap) + kCapBodyStart,
                sizeof cap - kCapBodyStart);
    return b;
}

template <typename T>
void put(std::uint8_t* img, std::size_t off, T v) {
    std::memcpy(img + off, &v, sizeof v);
}
template <typename T>
T get(const std::uint8_t* img, std::size_t off) {
    T v;
    std::memcpy(&v, img + off, sizeof v);
    return v;
}

// Whether an access of [off, off+len) lies wholly inside [start, start+size).
bool inside(std::uint64_t off, std::size_t len, std::uint64_t start, std::uint64_t size) {
    return off >= start && off - start <= size && len <= size - (off - start);
}

// Whether a write of [off, off+len) touched the field [field, field+size).
bool touches(std::uint64_t off, std::size_t len, std::uint64_t field, std::size_t size) {
    return off < field + size && field < off + len;
}

}  // namespace

PciTransport::PciTransport(std::unique_ptr<VirtioDevice> device, kvm::IoEventRegistry& vm,
                           const GuestMemory& memory, FdWatcher& watcher, pci::Msix msix)
    : device_(std::move(device)),
      vm_(vm),
      memory_(memory),
      watcher_(watcher),
      config_({kVirtioVendor, static_cast<std::uint16_t>(0x1040 + device_->device_type()), 1,
               device_->pci_class(), kVirtioVendor, 0x1100}),
      msix_(std::move(msix)) {
    msix_.share_warnings(warnings());
}

Result<std::unique_ptr<PciTransport>> PciTransport::create(std::unique_ptr<VirtioDevice> device,
                                                           kvm::IoEventRegistry& vm,
                                                           kvm::MsiRouter& router,
                                                           const GuestMemory& memory,
                                                           FdWatcher& watcher) {
    const std::uint16_t queues = device->queue_count();
    if (queues == 0 || queues > 1024) return fail("virtio {}: {} queues", device->name(), queues);
    // One vector per queue plus one for configuration changes.
    auto msix = STOCKADE_TRY(pci::Msix::create(router, static_cast<std::uint16_t>(queues + 1)));
    std::unique_ptr<PciTransport> t(
        new PciTransport(std::move(device), vm, memory, watcher, std::move(msix)));
    t->queues_.resize(queues);
    for (auto& q : t->queues_)
        q.size = t->device_->queue_max_size();
    for (std::uint16_t i = 0; i < queues; ++i) {
        int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (fd < 0) return fail_sys("eventfd for a virtio queue notification");
        t->kick_fds_.emplace_back(fd);
    }
    auto& c = t->config_;
    c.add_capability(pci::kCapVendor,
                     virtio_cap(VIRTIO_PCI_CAP_COMMON_CFG, kCommonOffset, kCommonSize));
    constexpr std::size_t kMultiplierSize = sizeof(virtio_pci_notify_cap) - sizeof(virtio_pci_cap);
    auto notify = virtio_cap(VIRTIO_PCI_CAP_NOTIFY_CFG, kNotifyOffset, kNotifyMultiplier * queues,
                             kMultiplierSize);
    std::memcpy(notify.data() + in_body(offsetof(virtio_pci_notify_cap, notify_off_multiplier)),
                &kNotifyMultiplier, kMultiplierSize);
    c.add_capability(pci::kCapVendor, notify);
    c.add_capability(pci::kCapVendor, virtio_cap(VIRTIO_PCI_CAP_ISR_CFG, kIsrOffset, 4));
    c.add_capability(pci::kCapVendor,
                     virtio_cap(VIRTIO_PCI_CAP_DEVICE_CFG, kDeviceCfgOffset, kDeviceCfgSize));
    // VIRTIO_PCI_CAP_PCI_CFG: a window into the BARs through configuration space. The
    // driver writes bar, offset and length, then reads or writes pci_cfg_data.
    std::vector<std::uint8_t> pci_cfg_writable(sizeof(virtio_pci_cfg_cap) - kCapBodyStart, 0);
    pci_cfg_writable[in_body(offsetof(virtio_pci_cfg_cap, cap.bar))] = 0xff;
    // cap.offset, cap.length and pci_cfg_data: everything from cap.offset to the end.
    std::fill(pci_cfg_writable.begin() + in_body(offsetof(virtio_pci_cfg_cap, cap.offset)),
              pci_cfg_writable.end(), 0xff);
    t->pci_cfg_cap_ =
        c.add_capability(pci::kCapVendor, virtio_cap(VIRTIO_PCI_CAP_PCI_CFG, 0, 0, kPciCfgDataSize),
                         pci_cfg_writable);
    t->msix_cap_ =
        c.add_capability(pci::kCapMsix, t->msix_.capability(0, kMsixTableOffset, 0, kMsixPbaOffset),
                         pci::kMsixCapabilityWritable);
    return t;
}

PciTransport::~PciTransport() {
    std::lock_guard lock(mu_);
    reset_locked();
    register_notifiers(0);
}

std::string PciTransport::name() const {
    return "virtio-" + device_->name();
}

std::vector<pci::BarSpec> PciTransport::bar_specs() const {
    return {{kBar0Size, true}};
}

std::uint8_t PciTransport::status() const {
    return status_.load();
}

void PciTransport::config_read(std::size_t offset, std::span<std::uint8_t> out) {
    std::lock_guard lock(mu_);
    const std::size_t data = pci_cfg_cap_ + kPciCfgData;
    if (offset >= data && offset < data + kPciCfgDataSize) pci_cfg_access(false);
    config_.read(offset, out);
}

void PciTransport::config_write(std::size_t offset, std::span<const std::uint8_t> in) {
    std::lock_guard lock(mu_);
    config_.write(offset, in);
    for (std::size_t cap = config_.u16(pci::kOffCapPtr) & 0xff; cap != 0;) {
        std::uint8_t hdr[2];
        config_.read(cap, hdr);
        if (hdr[0] == pci::kCapMsix && touches(offset, in.size(), cap + 2, 2))
            msix_.set_control(config_.u16(cap + 2));
        cap = hdr[1];
    }
    const std::size_t data = pci_cfg_cap_ + kPciCfgData;
    if (touches(offset, in.size(), data, kPciCfgDataSize)) pci_cfg_access(true);
}

// Performs the access the VIRTIO_PCI_CAP_PCI_CFG window describes.
void PciTransport::pci_cfg_access(bool write) {
    virtio_pci_cfg_cap window{};
    config_.read(pci_cfg_cap_, std::span(reinterpret_cast<std::uint8_t*>(&window), sizeof window));
    const std::uint8_t bar = window.cap.bar;
    const std::uint32_t off = window.cap.offset, len = window.cap.length;
    if (bar != 0 || (len != 1 && len != 2 && len != 4) || off >= kBar0Size || off + len > kBar0Size)
        return;
    std::uint8_t buf[sizeof window.pci_cfg_data] = {};
    if (write) {
        std::memcpy(buf, window.pci_cfg_data, len);
        bar_write_locked(off, std::span<const std::uint8_t>(buf, len));
    } else {
        bar_read_locked(off, std::span(buf, len));
        config_.write(pci_cfg_cap_ + kPciCfgData, std::span<const std::uint8_t>(buf, sizeof buf));
    }
}

void PciTransport::bar_read(std::size_t bar, std::uint64_t offset, std::span<std::uint8_t> out) {
    std::fill(out.begin(), out.end(), 0);
    if (bar != 0) return;
    std::lock_guard lock(mu_);
    bar_read_locked(offset, out);
}

void PciTransport::bar_write(std::size_t bar, std::uint64_t offset,
                             std::span<const std::uint8_t> in) {
    if (bar != 0 || in.empty()) return;
    std::lock_guard lock(mu_);
    bar_write_locked(offset, in);
}

void PciTransport::bar_read_locked(std::uint64_t offset, std::span<std::uint8_t> out) {
    std::fill(out.begin(), out.end(), 0);
    if (offset < kCommonOffset + kCommonSize) {
        common_read(offset, out);
    } else if (offset >= kIsrOffset && offset < kIsrOffset + 4) {
        if (!out.empty()) out[0] = isr_.exchange(0);  // reading the ISR acknowledges it
    } else if (inside(offset, out.size(), kDeviceCfgOffset, kDeviceCfgSize)) {
        // Only accesses wholly inside the window reach the device: a device may index its
        // configuration with offset + size, trusting the 4 KiB the capability promises.
        device_->config_read(offset - kDeviceCfgOffset, out);
    } else if (offset >= kMsixTableOffset && offset < kMsixPbaOffset) {
        msix_.table_read(offset - kMsixTableOffset, out);
    } else if (offset >= kMsixPbaOffset && offset < kMsixPbaOffset + 0x1000) {
        msix_.pba_read(offset - kMsixPbaOffset, out);
    }
}

void PciTransport::bar_write_locked(std::uint64_t offset, std::span<const std::uint8_t> in) {
    if (offset < kCommonOffset + kCommonSize) {
        common_write(offset, in);
    } else if (inside(offset, in.size(), kDeviceCfgOffset, kDeviceCfgSize)) {
        device_->config_write(offset - kDeviceCfgOffset, in);
    } else if (offset >= kNotifyOffset && offset < kNotifyOffset + 0x1000) {
        // Normally an ioeventfd takes these writes in the kernel; one that reaches us (a
        // BAR that could not get its ioeventfds) is forwarded to the same eventfd.
        const std::uint64_t q = (offset - kNotifyOffset) / kNotifyMultiplier;
        if (q < kick_fds_.size()) {
            std::uint64_t one = 1;
            (void)!::write(kick_fds_[q].get(), &one, sizeof one);
        }
    } else if (offset >= kMsixTableOffset && offset < kMsixPbaOffset) {
        msix_.table_write(offset - kMsixTableOffset, in);
    }
}

void PciTransport::bar_placed(std::size_t bar, std::uint64_t address) {
    if (bar != 0) return;
    std::lock_guard lock(mu_);
    register_notifiers(address);
}

void PciTransport::register_notifiers(std::uint64_t base) {
    if (base == notify_base_) return;
    for (std::size_t q = 0; q < kick_fds_.size(); ++q) {
        const std::uint64_t at = kNotifyOffset + kNotifyMultiplier * q;
        if (notify_base_ != 0)
            (void)vm_.ioeventfd(kick_fds_[q].get(), notify_base_ + at, 2, false, false);
        if (base != 0)
            if (auto r = vm_.ioeventfd(kick_fds_[q].get(), base + at, 2, false, true); !r)
                warnings().warn("virtio {}: queue {} notifications will exit to userspace: {}",
                                device_->name(), q, r.error().message);
    }
    notify_base_ = base;
}

void PciTransport::common_read(std::uint64_t offset, std::span<std::uint8_t> out) {
    std::uint8_t img[kCommonSize] = {};
    const std::uint64_t offered = device_->offered_features();
    put<std::uint32_t>(img, kDeviceFeatureSelect, device_feature_select_);
    put<std::uint32_t>(img, kDeviceFeature,
                       device_feature_select_ < 2
                           ? static_cast<std::uint32_t>(offered >> (32 * device_feature_select_))
                           : 0);
    put<std::uint32_t>(img, kDriverFeatureSelect, driver_feature_select_);
    put<std::uint32_t>(
        img, kDriverFeature,
        driver_feature_select_ < 2
            ? static_cast<std::uint32_t>(driver_features_ >> (32 * driver_feature_select_))
            : 0);
    put<std::uint16_t>(img, kMsixConfig, msix_config_.load());
    put<std::uint16_t>(img, kNumQueues, static_cast<std::uint16_t>(queues_.size()));
    img[kDeviceStatus] = status_.load();
    img[kConfigGeneration] = config_generation_;
    put<std::uint16_t>(img, kQueueSelect, queue_select_);
    if (queue_select_ < queues_.size()) {
        const QueueSetup& q = queues_[queue_select_];
        put<std::uint16_t>(img, kQueueSize, q.size);
        put<std::uint16_t>(img, kQueueMsixVector, q.msix_vector);
        put<std::uint16_t>(img, kQueueEnable, q.enabled ? 1 : 0);
        put<std::uint16_t>(img, kQueueNotifyOff, queue_select_);  // in multiplier units
        put<std::uint64_t>(img, kQueueDesc, q.desc);
        put<std::uint64_t>(img, kQueueDriver, q.driver);
        put<std::uint64_t>(img, kQueueDevice, q.device);
    }
    if (offset + out.size() <= kCommonSize) std::memcpy(out.data(), img + offset, out.size());
}

void PciTransport::common_write(std::uint64_t offset, std::span<const std::uint8_t> in) {
    if (offset + in.size() > kCommonSize) return;
    std::uint8_t img[kCommonSize] = {};
    common_read(0, img);
    std::memcpy(img + offset, in.data(), in.size());
    const std::size_t n = in.size();
    const bool running = (status_.load() & kStatusDriverOk) != 0;
    // Whether the write touched the field at `field` (of the field's own size).
    auto wrote = [&](std::size_t field, std::size_t size) {
        return touches(offset, n, field, size);
    };

    if (wrote(kDeviceFeatureSelect, 4))
        device_feature_select_ = get<std::uint32_t>(img, kDeviceFeatureSelect);
    if (wrote(kDriverFeatureSelect, 4))
        driver_feature_select_ = get<std::uint32_t>(img, kDriverFeatureSelect);
    if (wrote(kDriverFeature, 4) && driver_feature_select_ < 2 &&
        !(status_.load() & kStatusFeaturesOk)) {
        const unsigned shift = 32 * driver_feature_select_;
        driver_features_ = (driver_features_ & ~(0xffff'ffffull << shift)) |
                           (std::uint64_t{get<std::uint32_t>(img, kDriverFeature)} << shift);
    }
    if (wrote(kMsixConfig, 2)) {
        const std::uint16_t v = get<std::uint16_t>(img, kMsixConfig);
        msix_config_ = v < msix_.vector_count() ? v : pci::kNoVector;
    }
    if (wrote(kQueueSelect, 2)) queue_select_ = get<std::uint16_t>(img, kQueueSelect);
    if (queue_select_ < queues_.size() && !running) {
        QueueSetup& q = queues_[queue_select_];
        if (wrote(kQueueSize, 2)) q.size = get<std::uint16_t>(img, kQueueSize);
        if (wrote(kQueueMsixVector, 2)) {
            const std::uint16_t v = get<std::uint16_t>(img, kQueueMsixVector);
            q.msix_vector = v < msix_.vector_count() ? v : pci::kNoVector;
        }
        if (wrote(kQueueEnable, 2)) q.enabled = get<std::uint16_t>(img, kQueueEnable) == 1;
        if (wrote(kQueueDesc, 8)) q.desc = get<std::uint64_t>(img, kQueueDesc);
        if (wrote(kQueueDriver, 8)) q.driver = get<std::uint64_t>(img, kQueueDriver);
        if (wrote(kQueueDevice, 8)) q.device = get<std::uint64_t>(img, kQueueDevice);
    }
    if (wrote(kDeviceStatus, 1)) set_status(img[kDeviceStatus]);
}

void PciTransport::set_status(std::uint8_t status) {
    if (status == 0) {
        reset_locked();
        return;
    }
    // The driver only ever adds bits; a write that clears one is ignored.
    const std::uint8_t current = status_.load();
    if ((status & current) != current) return;
    const std::uint8_t added = status & ~current;
    if (added & kStatusFeaturesOk) {
        const std::uint64_t offered = device_->offered_features();
        if ((driver_features_ & ~offered) != 0 || !(driver_features_ & kFeatureVersion1) ||
            !device_->accepts_features(driver_features_)) {
            // Leaving FEATURES_OK clear is how the device refuses (the driver reads it back).
            warnings().warn("virtio {}: driver features {:#x} refused (offered {:#x})",
                            device_->name(), driver_features_, offered);
            status &= static_cast<std::uint8_t>(~kStatusFeaturesOk);
        }
    }
    status_ = status;
    if ((added & kStatusDriverOk) && (status & kStatusFeaturesOk)) activate();
}

void PciTransport::activate(std::span<const QueuePosition> resume) {
    std::vector<int> kicks, calls;
    std::vector<std::uint16_t> vectors;
    for (std::size_t q = 0; q < queues_.size(); ++q) {
        kicks.push_back(kick_fds_[q].get());
        calls.push_back(msix_.event_fd(queues_[q].msix_vector));
        vectors.push_back(queues_[q].msix_vector);
    }
    const pci::Msix* msix = &msix_;
    ActivateContext ctx{
        memory_,
        driver_features_,
        queues_,
        kicks,
        calls,
        watcher_,
        // Runs on the device's thread: no transport lock, only the eventfd write.
        [msix, vectors](std::uint16_t q) {
            if (q < vectors.size()) msix->notify(vectors[q]);
        },
        [this](std::string why) { mark_needs_reset(why); },
        resume,
    };
    if (auto r = device_->activate(ctx); !r) {
        mark_needs_reset("cannot start: " + r.error().message);
        return;
    }
    active_ = true;
}

TransportState PciTransport::state() const {
    std::lock_guard lock(mu_);
    TransportState s;
    config_.read(0, s.config);
    s.msix = msix_.state();
    s.device_feature_select = device_feature_select_;
    s.driver_feature_select = driver_feature_select_;
    s.driver_features = driver_features_;
    s.msix_config = msix_config_.load();
    s.status = status_.load();
    s.isr = isr_.load();
    s.config_generation = config_generation_;
    s.queue_select = queue_select_;
    s.queues = queues_;
    return s;
}

Result<> PciTransport::restore(const TransportState& s, std::span<const QueuePosition> resume) {
    std::lock_guard lock(mu_);
    if (active_ || status_.load() != 0)
        return fail("virtio {}: restore into a started transport", device_->name());
    const std::string what = "virtio " + device_->name() + ": saved transport state";
    const std::uint16_t vectors = msix_.vector_count();
    auto vector_ok = [&](std::uint16_t v) { return v == pci::kNoVector || v < vectors; };
    if (s.queues.size() != queues_.size())
        return fail("{}: {} queues, the device has {}", what, s.queues.size(), queues_.size());
    for (std::size_t q = 0; q < s.queues.size(); ++q)
        if (s.queues[q].size > device_->queue_max_size() || !vector_ok(s.queues[q].msix_vector))
            return fail("{}: queue {} has size {} (at most {}) and vector {:#x}", what, q,
                        s.queues[q].size, device_->queue_max_size(), s.queues[q].msix_vector);
    if (!vector_ok(s.msix_config))
        return fail("{}: configuration vector {:#x} of {}", what, s.msix_config, vectors);
    constexpr std::uint8_t kKnown = kStatusAcknowledge | kStatusDriver | kStatusDriverOk |
                                    kStatusFeaturesOk | kStatusNeedsReset | kStatusFailed;
    if ((s.status & ~kKnown) != 0 || (s.isr & ~3u) != 0)
        return fail("{}: status {:#x} and ISR {:#x}", what, s.status, s.isr);
    if ((s.status & kStatusFeaturesOk) &&
        ((s.driver_features & ~device_->offered_features()) != 0 ||
         !(s.driver_features & kFeatureVersion1) || !device_->accepts_features(s.driver_features)))
        return fail("{}: features {:#x} (offered {:#x})", what, s.driver_features,
                    device_->offered_features());
    if ((s.status & kStatusDriverOk) && !(s.status & kStatusFeaturesOk))
        return fail("{}: DRIVER_OK without FEATURES_OK", what);
    if (s.msix.entries.size() != vectors || s.msix.pending.size() != vectors)
        return fail("{}: {} MSI-X vectors, the function has {}", what, s.msix.entries.size(),
                    vectors);
    config_.write(0, s.config);
    // MSI-X after the configuration space, under its control word (enable, function mask):
    // a pending vector is raised only as that word allows.
    pci::MsixState msix = s.msix;
    msix.control = config_.u16(msix_cap_ + 2);
    STOCKADE_TRY_VOID(msix_.restore(msix));
    device_feature_select_ = s.device_feature_select;
    driver_feature_select_ = s.driver_feature_select;
    driver_features_ = s.driver_features;
    msix_config_ = s.msix_config;
    isr_ = s.isr;
    config_generation_ = s.config_generation;
    queue_select_ = s.queue_select;
    queues_ = s.queues;
    status_ = s.status;
    reported_violation_ = (s.status & kStatusNeedsReset) != 0;
    // A device that had failed stays failed until the driver resets it.
    if ((s.status & kStatusDriverOk) && !(s.status & kStatusNeedsReset)) activate(resume);
    return {};
}

void PciTransport::mark_needs_reset(const std::string& why) {
    // Called from the device's thread: never takes mu_ (a vCPU may hold it while resetting
    // the device, which waits for that thread).
    if (!reported_violation_.exchange(true))
        warnings().warn("virtio {}: driver error, device needs reset: {}", device_->name(), why);
    status_.fetch_or(kStatusNeedsReset);
    isr_.fetch_or(VIRTIO_PCI_ISR_CONFIG);
    msix_.notify(msix_config_.load());
}

void PciTransport::reset_locked() {
    if (active_) device_->reset();
    active_ = false;
    status_ = 0;
    driver_features_ = 0;
    device_feature_select_ = driver_feature_select_ = 0;
    msix_config_ = pci::kNoVector;
    queue_select_ = 0;
    isr_ = 0;
    reported_violation_ = false;
    for (auto& q : queues_)
        q = QueueSetup{device_->queue_max_size(), 0, 0, 0, pci::kNoVector, false};
    for (auto& fd : kick_fds_) {
        std::uint64_t drain;
        (void)!::read(fd.get(), &drain, sizeof drain);
    }
}

}  // namespace stockade::virtio
