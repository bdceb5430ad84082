#include "runner/virtio/pci_transport.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "base/log.hpp"

namespace stockade::virtio {
namespace {

constexpr std::uint64_t kCommonSize = 0x38;
constexpr std::uint64_t kDeviceCfgSize = 0x1000;
constexpr std::uint8_t kCapCommon = 1, kCapNotify = 2, kCapIsr = 3, kCapDevice = 4, kCapPciCfg = 5;
constexpr std::uint16_t kVirtioVendor = 0x1af4;

// The body of a virtio_pci_cap (after cap_vndr and cap_next).
std::vector<std::uint8_t> virtio_cap(std::uint8_t type, std::uint32_t offset, std::uint32_t length,
                                     std::size_t extra = 0) {
    std::vector<std::uint8_t> b(14 + extra, 0);
    b[0] = static_cast<std::uint8_t>(16 + extra);  // cap_len, counting vndr and next
    b[1] = type;
    b[2] = 0;  // BAR 0
    std::memcpy(b.data() + 6, &offset, 4);
    std::memcpy(b.data() + 10, &length, 4);
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
      msix_(std::move(msix)) {}

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
    c.add_capability(pci::kCapVendor, virtio_cap(kCapCommon, kCommonOffset, kCommonSize));
    auto notify = virtio_cap(kCapNotify, kNotifyOffset, kNotifyMultiplier * queues, 4);
    std::memcpy(notify.data() + 14, &kNotifyMultiplier, 4);
    c.add_capability(pci::kCapVendor, notify);
    c.add_capability(pci::kCapVendor, virtio_cap(kCapIsr, kIsrOffset, 4));
    c.add_capability(pci::kCapVendor, virtio_cap(kCapDevice, kDeviceCfgOffset, kDeviceCfgSize));
    // VIRTIO_PCI_CAP_PCI_CFG: a window into the BARs through configuration space. The
    // driver writes bar, offset and length, then reads or writes pci_cfg_data.
    std::vector<std::uint8_t> pci_cfg_writable(18, 0);
    for (std::size_t i : {2u, 6u, 7u, 8u, 9u, 10u, 11u, 12u, 13u, 14u, 15u, 16u, 17u})
        pci_cfg_writable[i] = 0xff;
    t->pci_cfg_cap_ =
        c.add_capability(pci::kCapVendor, virtio_cap(kCapPciCfg, 0, 0, 4), pci_cfg_writable);
    const std::vector<std::uint8_t> msix_writable = {0x00, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0};
    c.add_capability(pci::kCapMsix, t->msix_.capability(0, kMsixTableOffset, kMsixPbaOffset),
                     msix_writable);
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
    const std::size_t data = pci_cfg_cap_ + 16;
    if (offset >= data && offset < data + 4) pci_cfg_access(false);
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
    const std::size_t data = pci_cfg_cap_ + 16;
    if (touches(offset, in.size(), data, 4)) pci_cfg_access(true);
}

// Performs the access the VIRTIO_PCI_CAP_PCI_CFG window describes.
void PciTransport::pci_cfg_access(bool write) {
    std::uint8_t cap[20];
    config_.read(pci_cfg_cap_, cap);
    const std::uint8_t bar = cap[4];
    // struct virtio_pci_cfg_cap: cap.bar at 4, cap.offset at 8, cap.length at 12, data at 16.
    const std::uint32_t off = get<std::uint32_t>(cap, 8), len = get<std::uint32_t>(cap, 12);
    if (bar != 0 || (len != 1 && len != 2 && len != 4) || off >= kBar0Size || off + len > kBar0Size)
        return;
    std::uint8_t buf[4] = {};
    if (write) {
        std::memcpy(buf, cap + 16, len);
        bar_write_locked(off, std::span<const std::uint8_t>(buf, len));
    } else {
        bar_read_locked(off, std::span(buf, len));
        config_.write(pci_cfg_cap_ + 16, std::span<const std::uint8_t>(buf, 4));
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
                log::warn("virtio {}: queue {} notifications will exit to userspace: {}",
                          device_->name(), q, r.error().message);
    }
    notify_base_ = base;
}

void PciTransport::common_read(std::uint64_t offset, std::span<std::uint8_t> out) {
    std::uint8_t img[kCommonSize] = {};
    const std::uint64_t offered = device_->offered_features();
    put<std::uint32_t>(img, 0x00, device_feature_select_);
    put<std::uint32_t>(img, 0x04,
                       device_feature_select_ < 2
                           ? static_cast<std::uint32_t>(offered >> (32 * device_feature_select_))
                           : 0);
    put<std::uint32_t>(img, 0x08, driver_feature_select_);
    put<std::uint32_t>(
        img, 0x0c,
        driver_feature_select_ < 2
            ? static_cast<std::uint32_t>(driver_features_ >> (32 * driver_feature_select_))
            : 0);
    put<std::uint16_t>(img, 0x10, msix_config_.load());
    put<std::uint16_t>(img, 0x12, static_cast<std::uint16_t>(queues_.size()));
    img[0x14] = status_.load();
    img[0x15] = config_generation_;
    put<std::uint16_t>(img, 0x16, queue_select_);
    if (queue_select_ < queues_.size()) {
        const QueueSetup& q = queues_[queue_select_];
        put<std::uint16_t>(img, 0x18, q.size);
        put<std::uint16_t>(img, 0x1a, q.msix_vector);
        put<std::uint16_t>(img, 0x1c, q.enabled ? 1 : 0);
        put<std::uint16_t>(img, 0x1e, queue_select_);  // notify offset in multiplier units
        put<std::uint64_t>(img, 0x20, q.desc);
        put<std::uint64_t>(img, 0x28, q.driver);
        put<std::uint64_t>(img, 0x30, q.device);
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

    if (touches(offset, n, 0x00, 4)) device_feature_select_ = get<std::uint32_t>(img, 0x00);
    if (touches(offset, n, 0x08, 4)) driver_feature_select_ = get<std::uint32_t>(img, 0x08);
    if (touches(offset, n, 0x0c, 4) && driver_feature_select_ < 2 &&
        !(status_.load() & kStatusFeaturesOk)) {
        const unsigned shift = 32 * driver_feature_select_;
        driver_features_ = (driver_features_ & ~(0xffff'ffffull << shift)) |
                           (std::uint64_t{get<std::uint32_t>(img, 0x0c)} << shift);
    }
    if (touches(offset, n, 0x10, 2)) {
        const std::uint16_t v = get<std::uint16_t>(img, 0x10);
        msix_config_ = v < msix_.vector_count() ? v : pci::kNoVector;
    }
    if (touches(offset, n, 0x16, 2)) queue_select_ = get<std::uint16_t>(img, 0x16);
    if (queue_select_ < queues_.size() && !running) {
        QueueSetup& q = queues_[queue_select_];
        if (touches(offset, n, 0x18, 2)) q.size = get<std::uint16_t>(img, 0x18);
        if (touches(offset, n, 0x1a, 2)) {
            const std::uint16_t v = get<std::uint16_t>(img, 0x1a);
            q.msix_vector = v < msix_.vector_count() ? v : pci::kNoVector;
        }
        if (touches(offset, n, 0x1c, 2)) q.enabled = get<std::uint16_t>(img, 0x1c) == 1;
        if (touches(offset, n, 0x20, 8)) q.desc = get<std::uint64_t>(img, 0x20);
        if (touches(offset, n, 0x28, 8)) q.driver = get<std::uint64_t>(img, 0x28);
        if (touches(offset, n, 0x30, 8)) q.device = get<std::uint64_t>(img, 0x30);
    }
    if (touches(offset, n, 0x14, 1)) set_status(img[0x14]);
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
            log::warn("virtio {}: driver features {:#x} refused (offered {:#x})", device_->name(),
                      driver_features_, offered);
            status &= static_cast<std::uint8_t>(~kStatusFeaturesOk);
        }
    }
    status_ = status;
    if ((added & kStatusDriverOk) && (status & kStatusFeaturesOk)) activate();
}

void PciTransport::activate() {
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
    };
    if (auto r = device_->activate(ctx); !r) {
        mark_needs_reset("cannot start: " + r.error().message);
        return;
    }
    active_ = true;
}

void PciTransport::mark_needs_reset(const std::string& why) {
    // Called from the device's thread: never takes mu_ (a vCPU may hold it while resetting
    // the device, which waits for that thread).
    if (!reported_violation_.exchange(true))
        log::warn("virtio {}: driver error, device needs reset: {}", device_->name(), why);
    status_.fetch_or(kStatusNeedsReset);
    isr_.fetch_or(2);  // configuration change
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
