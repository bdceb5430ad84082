#include "runner/virtio/net.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "base/log.hpp"
#include "base/uapi.hpp"
#include "runner/virtio/vhost_rings.hpp"

namespace stockade::virtio {
namespace {

// What the device offers besides the ring features (which depend on the datapath).
constexpr std::uint64_t kNetOffloads = kNetFCsum | kNetFGuestCsum | kNetFGuestTso4 |
                                       kNetFGuestTso6 | kNetFGuestEcn | kNetFHostTso4 |
                                       kNetFHostTso6 | kNetFHostEcn;
// Ring layout features a vhost backend must support for the device to offer them.
constexpr std::uint64_t kRingFeatures = kFeatureIndirectDesc | kFeatureEventIdx | kNetFMrgRxbuf;
// Frames moved per event before the loop lets others run (the tap stays readable, so the
// loop comes back).
constexpr int kRxBatch = 64;

}  // namespace

unsigned tap_offloads_for(std::uint64_t f) {
    // TUN_F_* say what the tap may hand to the reader (here: the guest's receive queue).
    if (!(f & kNetFGuestCsum)) return 0;
    unsigned o = TUN_F_CSUM;
    if (f & kNetFGuestTso4) o |= TUN_F_TSO4;
    if (f & kNetFGuestTso6) o |= TUN_F_TSO6;
    if ((f & kNetFGuestEcn) && (o & (TUN_F_TSO4 | TUN_F_TSO6))) o |= TUN_F_TSO_ECN;
    return o;
}

bool net_features_consistent(std::uint64_t f) {
    auto needs = [f](std::uint64_t bit, std::uint64_t any_of) {
        return !(f & bit) || (f & any_of) != 0;
    };
    return needs(kNetFGuestTso4, kNetFGuestCsum) && needs(kNetFGuestTso6, kNetFGuestCsum) &&
           needs(kNetFGuestEcn, kNetFGuestTso4 | kNetFGuestTso6) &&
           needs(kNetFHostTso4, kNetFCsum) && needs(kNetFHostTso6, kNetFCsum) &&
           needs(kNetFHostEcn, kNetFHostTso4 | kNetFHostTso6);
}

Result<std::unique_ptr<VirtioDevice>> Net::create(NetBackend backend) {
    if (!backend.tap) return fail("virtio-net: no tap");
    if ((backend.mac[0] & 1) != 0) return fail("virtio-net: the guest MAC is a multicast address");
    std::uint64_t offered = kNetOffloads | kNetFMac | kNetFStatus | kFeatureVersion1;
    if (backend.mtu) offered |= kNetFMtu;
    if (backend.vhost) {
        const std::uint64_t kernel = STOCKADE_TRY(backend.vhost->features());
        if (!(kernel & kFeatureVersion1))
            return fail("vhost-net: the kernel does not support VIRTIO_F_VERSION_1");
        offered |= kernel & kRingFeatures;
    } else {
        offered |= kRingFeatures;
        // The event loop must never block on the tap.
        const int flags = ::fcntl(backend.tap.get(), F_GETFL);
        if (flags < 0 || ::fcntl(backend.tap.get(), F_SETFL, flags | O_NONBLOCK) != 0)
            return fail_sys("virtio-net: making the tap non-blocking");
    }
    std::unique_ptr<Net> net(new Net(std::move(backend), offered));
    // Until a driver accepts offloads, the tap hands over only plain frames.
    STOCKADE_TRY_VOID(net->set_offloads(0));
    return std::unique_ptr<VirtioDevice>(std::move(net));
}

Net::~Net() {
    stop_vhost();
}

Net::Counters Net::counters() {
    std::lock_guard lock(mu_);
    return counters_;
}

std::size_t Net::reserved_chains() {
    std::lock_guard lock(mu_);
    return reserved_.size();
}

std::string Net::stats() {
    if (uses_vhost()) return "vhost-net datapath";
    const Counters n = counters();
    std::string text = fmt::format("userspace datapath, frames rx {} tx {}, dropped rx {} tx {}",
                                   n.rx_frames, n.tx_frames, n.rx_dropped, n.tx_dropped);
    const auto q = queue_counters();
    for (std::uint16_t k = 0; k < q.size() && k < 2; ++k)
        text += fmt::format("; {} queue: {}", k == kNetRxQueue ? "rx" : "tx", queue_stats(k));
    return text;
}

Result<> Net::set_offloads(unsigned offloads) {
    if (backend_.is_tap &&
        ::ioctl(backend_.tap.get(), TUNSETOFFLOAD, static_cast<unsigned long>(offloads)) != 0)
        return fail_sys(fmt::format("TUNSETOFFLOAD {:#x} on the tap", offloads));
    offloads_ = offloads;
    return {};
}

void Net::config_read(std::uint64_t offset, std::span<std::uint8_t> out) {
    // struct virtio_net_config: mac[6], status, max_virtqueue_pairs, mtu.
    std::uint8_t img[12] = {};
    std::memcpy(img, backend_.mac.data(), 6);
    const std::uint16_t status = kNetSLinkUp, pairs = 1, mtu = backend_.mtu.value_or(0);
    std::memcpy(img + 6, &status, 2);
    std::memcpy(img + 8, &pairs, 2);
    std::memcpy(img + 10, &mtu, 2);
    std::fill(out.begin(), out.end(), 0);
    for (std::size_t i = 0; i < out.size(); ++i)
        if (offset + i < sizeof img) out[i] = img[offset + i];
}

Result<> Net::activate(const ActivateContext& ctx) {
    STOCKADE_TRY_VOID(set_offloads(tap_offloads_for(ctx.features)));
    if (!backend_.vhost) return QueueDevice::activate(ctx);
    auto started = start_vhost(ctx);
    if (!started) stop_vhost();
    return started;
}

void Net::reset() {
    if (backend_.vhost)
        stop_vhost();
    else
        QueueDevice::reset();
    (void)set_offloads(0);
}

Result<DeviceState> Net::save_state() {
    if (!backend_.vhost) return QueueDevice::save_state();
    std::lock_guard lock(vhost_mu_);
    return vhost_rings_.saved(queue_count(), name());
}

std::uint16_t Net::unused_chains(std::uint16_t q) const {
    return q == kNetRxQueue ? static_cast<std::uint16_t>(reserved_.size()) : 0;
}

// ---- vhost-net ----

Result<> Net::start_vhost(const ActivateContext& ctx) {
    std::lock_guard lock(vhost_mu_);
    vhost::VhostDevice& v = *backend_.vhost;
    vhost_running_ = true;  // from here on, stop_vhost() has something to undo
    // Only the ring features are the kernel's business; offloads are the tap's.
    STOCKADE_TRY_VOID(
        start_vhost_rings(v, ctx, {kNetRxQueue, kNetTxQueue}, queue_max_size(), kRingFeatures));
    for (std::uint16_t q : {kNetRxQueue, kNetTxQueue})
        STOCKADE_TRY_VOID(v.net_set_backend(q, backend_.tap.get()));
    vhost_rings_.started(ctx);
    return {};
}

void Net::hold(bool held) {
    QueueDevice::hold(held);
    std::lock_guard lock(vhost_mu_);
    if (!vhost_running_ || !backend_.vhost) return;
    // Without a backend the worker leaves the rings alone; the tap keeps what arrives.
    Result<> switched;
    for (std::uint16_t q : {kNetRxQueue, kNetTxQueue})
        if (auto r = backend_.vhost->net_set_backend(q, held ? -1 : backend_.tap.get()); !r) {
            log::warn("{}", r.error().message);
            switched = std::move(r);
        }
    vhost_rings_.switched(*backend_.vhost, held, std::move(switched));
}

void Net::stop_vhost() {
    std::lock_guard lock(vhost_mu_);
    if (!vhost_running_ || !backend_.vhost) return;
    vhost_running_ = false;
    vhost_rings_.stopped();
    for (std::uint32_t q : {kNetRxQueue, kNetTxQueue}) {
        // Detaching the backend first makes the worker finish with the ring.
        (void)backend_.vhost->net_set_backend(q, -1);
        (void)backend_.vhost->stop_vring(q);
    }
}

// ---- userspace datapath ----

void Net::on_activate(const ActivateContext& ctx) {
    watcher_ = &ctx.watcher;
    frame_.resize(kNetMaxFrame + kNetHdrSize);
    frame_len_ = 0;
    reserved_.clear();
    set_tap_watch(true);
}

void Net::on_reset() {
    set_tap_watch(false);
    frame_len_ = 0;
    reserved_.clear();
}

// Frames wait in the tap until the driver resets the device (activation watches it again).
void Net::on_broken() {
    set_tap_watch(false);
}

void Net::set_tap_watch(bool on) {
    if (watcher_ == nullptr || on == tap_watched_) return;
    if (on) {
        auto r = watcher_->watch(backend_.tap.get(), [this] { kick(kNetRxQueue); });
        if (!r) {
            log::warn("virtio-net: cannot watch the tap: {}", r.error().message);
            return;
        }
    } else {
        watcher_->unwatch(backend_.tap.get());
    }
    tap_watched_ = on;
}

Result<> Net::serve(std::uint16_t q, SplitQueue& queue, const GuestMemory& memory) {
    if (q == kNetRxQueue) return receive(queue, memory);
    if (q == kNetTxQueue) return transmit(queue, memory);
    return {};
}

Result<> Net::transmit(SplitQueue& queue, const GuestMemory& memory) {
    for (;;) {
        auto chain = STOCKADE_TRY(queue.pop());
        if (!chain) return {};
        // A transmit chain is header and frame, device-readable only (5.1.6.2).
        if (!chain->writable.empty())
            return fail("transmit chain {} has device-writable buffers", chain->head);
        const std::uint64_t bytes = chain->readable_bytes();
        if (bytes < kNetHdrSize || bytes > kNetHdrSize + kNetMaxFrame) {
            ++counters_.tx_dropped;  // no frame, or more than a tap takes
        } else {
            ChainReader reader(memory, chain->readable);
            auto spans = STOCKADE_TRY(reader.spans(bytes));
            std::vector<iovec> iov;
            iov.reserve(spans.size());
            for (auto s : spans)
                iov.push_back({s.data(), s.size()});
            // The tap checks the header itself (the guest may still be changing it).
            const ssize_t n =
                ::writev(backend_.tap.get(), iov.data(), static_cast<int>(iov.size()));
            if (n < 0) {
                ++counters_.tx_dropped;
                if (!warned_tap_ && errno != EAGAIN && errno != EINVAL && errno != EIO) {
                    warned_tap_ = true;
                    log::warn("virtio-net: writing to the tap: {}", std::strerror(errno));
                }
            } else {
                ++counters_.tx_frames;
            }
        }
        STOCKADE_TRY_VOID(queue.push_used(chain->head, 0));
        // The driver frees the frame's memory (and, through TCP's small-queue limit, may send
        // its next frame) only once told; a batch's first frame does not wait for its last.
        STOCKADE_TRY_VOID(notify_if_needed(kNetTxQueue, queue));
    }
}

Result<> Net::receive(SplitQueue& queue, const GuestMemory& memory) {
    for (int i = 0; i < kRxBatch; ++i) {
        if (frame_len_ == 0) {
            // Read from the tap only with somewhere to put the frame; otherwise it waits in
            // the tap's queue (and the tap is not watched until the guest adds buffers).
            if (reserved_.empty() && !STOCKADE_TRY(queue.has_available())) {
                set_tap_watch(false);
                return {};
            }
            const ssize_t n = ::read(backend_.tap.get(), frame_.data(), frame_.size());
            if (n < 0) {
                if (errno != EAGAIN && errno != EINTR && !warned_tap_) {
                    warned_tap_ = true;
                    log::warn("virtio-net: reading the tap: {}", std::strerror(errno));
                }
                set_tap_watch(true);
                return {};
            }
            if (static_cast<std::size_t>(n) <= kNetHdrSize) {
                ++counters_.rx_dropped;
                continue;
            }
            frame_len_ = static_cast<std::size_t>(n);
        }
        if (!STOCKADE_TRY(deliver(queue, memory))) {
            set_tap_watch(false);  // the guest's next receive kick resumes
            return {};
        }
        STOCKADE_TRY_VOID(notify_if_needed(kNetRxQueue, queue));
    }
    set_tap_watch(true);
    return {};
}

Result<bool> Net::deliver(SplitQueue& queue, const GuestMemory& memory) {
    const bool mergeable = (negotiated() & kNetFMrgRxbuf) != 0;
    // Chains the frame needs: one without mergeable buffers, else as many as it fills.
    std::size_t chains = 0;
    std::uint64_t room = 0;
    for (;;) {
        while (chains < reserved_.size() && room < frame_len_ && (mergeable || chains == 0))
            room += reserved_[chains++].writable_bytes();
        if (room >= frame_len_ || (!mergeable && chains == 1)) break;
        // An honest driver has at most a queue's worth of chains out; one that re-posts heads
        // it has not got back would have this list (and its rescan on every kick) grow
        // without end.
        if (reserved_.size() >= queue.size()) break;
        auto chain = STOCKADE_TRY(queue.pop());
        if (!chain) return false;
        if (!chain->readable.empty())
            return fail("receive chain {} has device-readable buffers", chain->head);
        // With mergeable buffers each one holds at least the header (5.1.6.3.1): a smaller
        // one adds no room, so a stream of them would never fill a frame.
        if (mergeable && chain->writable_bytes() < kNetHdrSize)
            return fail("receive chain {} has {} bytes, less than the {}-byte header", chain->head,
                        chain->writable_bytes(), kNetHdrSize);
        reserved_.push_back(std::move(*chain));
    }
    if (room < frame_len_) {
        // Without mergeable buffers a driver must offer room for a whole frame (5.1.6.3.1);
        // with them, a frame a queue's worth of chains cannot hold goes too. The chains it
        // had go back empty.
        ++counters_.rx_dropped;
        frame_len_ = 0;
        for (std::size_t c = 0; c < chains; ++c)
            STOCKADE_TRY_VOID(queue.push_used(reserved_[c].head, 0));
        reserved_.erase(reserved_.begin(), reserved_.begin() + static_cast<std::ptrdiff_t>(chains));
        return true;
    }
    // num_buffers (the header's last field): the tap leaves it to us.
    const std::uint16_t used = static_cast<std::uint16_t>(chains);
    std::memcpy(frame_.data() + 10, &used, 2);
    std::size_t at = 0;
    for (std::size_t c = 0; c < chains; ++c) {
        ChainWriter w(memory, reserved_[c].writable);
        const std::size_t n =
            std::min<std::uint64_t>(reserved_[c].writable_bytes(), frame_len_ - at);
        STOCKADE_TRY_VOID(w.write(std::span(frame_.data() + at, n)));
        at += n;
        STOCKADE_TRY_VOID(queue.push_used(reserved_[c].head, static_cast<std::uint32_t>(n)));
    }
    reserved_.erase(reserved_.begin(), reserved_.begin() + static_cast<std::ptrdiff_t>(chains));
    frame_len_ = 0;
    ++counters_.rx_frames;
    return true;
}

}  // namespace stockade::virtio
