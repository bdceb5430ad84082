#include "runner/virtio/net.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
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

// Whether the driver enabled pair k's rings: both of them, and for pairs after the first with
// VIRTIO_NET_F_MQ (without it they do not exist for the driver).
bool pair_enabled(const ActivateContext& ctx, std::size_t k, bool rx_only = false) {
    const std::size_t rx = 2 * k, tx = rx + 1;
    const bool mq = (ctx.features & kNetFMq) != 0;
    return (k == 0 || mq) && rx < ctx.queues.size() && ctx.queues[rx].enabled &&
           (rx_only || (tx < ctx.queues.size() && ctx.queues[tx].enabled));
}

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
           needs(kNetFHostEcn, kNetFHostTso4 | kNetFHostTso6) && needs(kNetFMq, kNetFCtrlVq);
}

Result<std::unique_ptr<VirtioDevice>> Net::create(NetBackend backend) {
    if (!backend.tap) return fail("virtio-net: no tap");
    if ((backend.mac[0] & 1) != 0) return fail("virtio-net: the guest MAC is a multicast address");
    if (backend.more_pairs.size() + 1 > kNetMaxQueuePairs)
        return fail("virtio-net: {} queue pairs, at most {}", backend.more_pairs.size() + 1,
                    kNetMaxQueuePairs);
    if (!valid_net_queue_size(backend.queue_size))
        return fail("virtio-net: a queue size of {}, not a power of two from {} to {}",
                    backend.queue_size, kNetMinQueueSize, kNetMaxQueueSize);
    for (const NetQueuePair& p : backend.more_pairs)
        if (!p.tap || p.vhost.has_value() != backend.vhost.has_value())
            return fail("virtio-net: every queue pair needs a tap queue and the same datapath");
    std::uint64_t offered = kNetOffloads | kNetFMac | kNetFStatus | kFeatureVersion1;
    if (backend.mtu) offered |= kNetFMtu;
    if (!backend.more_pairs.empty()) offered |= kNetFCtrlVq | kNetFMq;
    if (backend.vhost) {
        const std::uint64_t kernel = STOCKADE_TRY(backend.vhost->features());
        if (!(kernel & kFeatureVersion1))
            return fail("vhost-net: the kernel does not support VIRTIO_F_VERSION_1");
        offered |= kernel & kRingFeatures;
    } else {
        offered |= kRingFeatures;
        // The event loop must never block on the tap.
        auto nonblocking = [](int fd) {
            const int flags = ::fcntl(fd, F_GETFL);
            return flags >= 0 && ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0;
        };
        if (!nonblocking(backend.tap.get()))
            return fail_sys("virtio-net: making the tap non-blocking");
        for (const NetQueuePair& p : backend.more_pairs)
            if (!nonblocking(p.tap.get()))
                return fail_sys("virtio-net: making the tap non-blocking");
    }
    std::unique_ptr<Net> net(new Net(std::move(backend), offered));
    // Until a driver accepts offloads, the tap hands over only plain frames.
    STOCKADE_TRY_VOID(net->set_offloads(0));
    return std::unique_ptr<VirtioDevice>(std::move(net));
}

Net::Net(NetBackend backend, std::uint64_t offered)
    : mac_(backend.mac),
      mtu_(backend.mtu),
      is_tap_(backend.is_tap),
      offered_(offered),
      queue_size_(backend.queue_size) {
    pairs_.reserve(backend.more_pairs.size() + 1);
    pairs_.emplace_back(std::move(backend.tap), std::move(backend.vhost), 0);
    for (NetQueuePair& p : backend.more_pairs)
        pairs_.emplace_back(std::move(p.tap), std::move(p.vhost),
                            static_cast<std::uint16_t>(pairs_.size()));
}

Net::~Net() {
    stop_vhost();
}

std::uint16_t Net::pairs_in_use() {
    std::lock_guard lock(mu_);
    return pairs_in_use_;
}

std::optional<std::uint16_t> Net::control_queue(std::uint64_t features) const {
    if (!(features & kNetFCtrlVq) || !(offered_ & kNetFCtrlVq)) return std::nullopt;
    return static_cast<std::uint16_t>((features & kNetFMq) ? 2 * pairs_.size() : 2);
}

bool Net::serves_queue(std::uint16_t q, std::uint64_t features) const {
    return !uses_vhost() || control_queue(features) == q;
}

Net::Counters Net::counters() {
    std::lock_guard lock(mu_);
    return counters_;
}

std::size_t Net::reserved_chains() {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const Pair& p : pairs_)
        n += p.reserved.size();
    return n;
}

std::string Net::stats() {
    std::string text;
    if (!uses_vhost()) {
        const Counters n = counters();
        text = fmt::format("userspace datapath, frames rx {} tx {}, dropped rx {} tx {}",
                           n.rx_frames, n.tx_frames, n.rx_dropped, n.tx_dropped);
    } else {
        text = "vhost-net datapath";
    }
    // The size the driver gave its first receive queue (at most queue_size=N; Linux takes it).
    if (const std::uint16_t size = ring_size_; size != 0)
        text += fmt::format(", rings of {} of at most {}", size, queue_size_);
    if (!multi_queue()) {
        if (uses_vhost()) return text;
        const auto q = queue_counters();
        for (std::uint16_t k = 0; k < q.size() && k < 2; ++k)
            text += fmt::format("; {} queue: {}", k == kNetRxQueue ? "rx" : "tx", queue_stats(k));
        return text;
    }
    text += fmt::format(", queue pairs {} ({} in use), control commands refused {}", pairs_.size(),
                        pairs_in_use(), counters().commands_refused);
    if (uses_vhost()) {
        std::lock_guard lock(vhost_mu_);
        for (std::size_t k = 0; k < pairs_.size(); ++k) {
            const auto used = pairs_[k].rings.used_indices();
            if (used.size() == 2)
                text += fmt::format("; rx{} used {}, tx{} used {}", k, used[0], k, used[1]);
        }
        return text;
    }
    const auto q = queue_counters();
    for (std::uint16_t i = 0; i < q.size(); ++i) {
        if (i == 2 * pairs_.size())
            text += fmt::format("; control queue: {}", queue_stats(i));
        else
            text +=
                fmt::format("; {}{} queue: {}", i % 2 == 0 ? "rx" : "tx", i / 2, queue_stats(i));
    }
    return text;
}

Result<> Net::set_offloads(unsigned offloads) {
    // The offloads are the tap's, whichever queue's fd says them.
    if (is_tap_ &&
        ::ioctl(pairs_.front().tap.get(), TUNSETOFFLOAD, static_cast<unsigned long>(offloads)) != 0)
        return fail_sys(fmt::format("TUNSETOFFLOAD {:#x} on the tap", offloads));
    offloads_ = offloads;
    return {};
}

void Net::config_read(std::uint64_t offset, std::span<std::uint8_t> out) {
    // struct virtio_net_config: mac[6], status, max_virtqueue_pairs, mtu.
    std::uint8_t img[12] = {};
    std::memcpy(img, mac_.data(), 6);
    const std::uint16_t status = kNetSLinkUp, pairs = static_cast<std::uint16_t>(pairs_.size()),
                        mtu = mtu_.value_or(0);
    std::memcpy(img + 6, &status, 2);
    std::memcpy(img + 8, &pairs, 2);
    std::memcpy(img + 10, &mtu, 2);
    std::fill(out.begin(), out.end(), 0);
    for (std::size_t i = 0; i < out.size(); ++i)
        if (offset + i < sizeof img) out[i] = img[offset + i];
}

Result<> Net::activate(const ActivateContext& ctx) {
    STOCKADE_TRY_VOID(set_offloads(tap_offloads_for(ctx.features)));
    ring_size_ = ctx.queues.empty() ? 0 : ctx.queues.front().size;
    // The userspace queues: all of them, or beside vhost-net only the control queue (one pair
    // on vhost-net has none).
    if (!uses_vhost() || multi_queue()) STOCKADE_TRY_VOID(QueueDevice::activate(ctx));
    if (!uses_vhost()) return {};
    auto started = start_vhost(ctx);
    if (!started) {
        stop_vhost();
        if (multi_queue()) QueueDevice::reset();
    }
    return started;
}

void Net::reset() {
    ring_size_ = 0;
    if (uses_vhost()) stop_vhost();
    if (!uses_vhost() || multi_queue()) QueueDevice::reset();
    (void)set_offloads(0);
}

Result<DeviceState> Net::save_state() {
    if (multi_queue())
        return fail(
            "virtio net: snapshots of a multi-queue device ({} queue pairs) are not "
            "supported yet",
            pairs_.size());
    if (!uses_vhost()) return QueueDevice::save_state();
    std::lock_guard lock(vhost_mu_);
    return pairs_.front().rings.saved(queue_count(), name());
}

std::uint16_t Net::unused_chains(std::uint16_t q) const {
    return q % 2 == 0 && q / 2 < pairs_.size()
               ? static_cast<std::uint16_t>(pairs_[q / 2].reserved.size())
               : 0;
}

// ---- vhost-net ----

// Each pair's rings go to its own vhost-net, as rings 0 (receive) and 1 (transmit). The
// driver may leave the rings of pairs it will not use disabled: those pairs get no worker.
Result<> Net::start_vhost(const ActivateContext& ctx) {
    std::lock_guard lock(vhost_mu_);
    vhost_running_ = true;  // from here on, stop_vhost() has something to undo
    for (std::uint16_t k = 0; k < pairs_.size(); ++k) {
        Pair& p = pairs_[k];
        if (k > 0 && !pair_enabled(ctx, k)) continue;
        const std::uint16_t rx = 2 * k, tx = rx + 1;
        const std::uint16_t rings[] = {rx, tx};
        // Only the ring features are the kernel's business; offloads are the tap's.
        STOCKADE_TRY_VOID(
            start_vhost_rings(*p.vhost, ctx, rings, queue_max_size(), kRingFeatures, rx));
        for (std::uint16_t r : {kNetRxQueue, kNetTxQueue})
            STOCKADE_TRY_VOID(p.vhost->net_set_backend(r, p.tap.get()));
        p.rings.started(ctx);
    }
    return {};
}

void Net::hold(bool held) {
    QueueDevice::hold(held);
    std::lock_guard lock(vhost_mu_);
    if (!vhost_running_ || !uses_vhost()) return;
    // Without a backend the worker leaves the rings alone; the tap keeps what arrives.
    for (Pair& p : pairs_) {
        if (!p.rings.running()) continue;  // a pair the driver left without rings
        Result<> switched;
        for (std::uint16_t r : {kNetRxQueue, kNetTxQueue})
            if (auto set = p.vhost->net_set_backend(r, held ? -1 : p.tap.get()); !set) {
                log::warn("{}", set.error().message);
                switched = std::move(set);
            }
        p.rings.switched(*p.vhost, held, std::move(switched));
    }
}

void Net::stop_vhost() {
    std::lock_guard lock(vhost_mu_);
    if (!vhost_running_ || !uses_vhost()) return;
    vhost_running_ = false;
    // Every pair, started or not: one whose start failed half-way may have a backend set.
    for (Pair& p : pairs_) {
        p.rings.stopped();
        for (std::uint32_t r : {kNetRxQueue, kNetTxQueue}) {
            // Detaching the backend first makes the worker finish with the ring.
            (void)p.vhost->net_set_backend(r, -1);
            (void)p.vhost->stop_vring(r);
        }
    }
}

// ---- the control queue (5.1.6.5) ----

// Each command: class, code and data device-readable, then a one-byte ack device-writable.
Result<> Net::control(SplitQueue& queue, const GuestMemory& memory) {
    for (;;) {
        auto chain = STOCKADE_TRY(queue.pop());
        if (!chain) return {};
        if (chain->writable_bytes() < 1)
            return fail("control chain {} has no room for the ack", chain->head);
        std::uint8_t ack = kNetErr;
        const std::uint64_t n = chain->readable_bytes();
        std::array<std::uint8_t, 16> cmd{};  // every command stockade knows fits
        if (n >= 2 && n <= cmd.size()) {
            ChainReader reader(memory, chain->readable);
            STOCKADE_TRY_VOID(reader.read(std::span(cmd.data(), n)));
            ack = command(cmd[0], cmd[1], std::span(cmd.data() + 2, n - 2));
        } else {
            ++counters_.commands_refused;
        }
        ChainWriter writer(memory, chain->writable);
        STOCKADE_TRY_VOID(writer.write(std::span(&ack, 1)));
        STOCKADE_TRY_VOID(queue.push_used(chain->head, 1));
        // The driver waits for the ack, spinning.
        STOCKADE_TRY_VOID(notify_if_needed(*control_queue(negotiated()), queue));
    }
}

std::uint8_t Net::command(std::uint8_t cls, std::uint8_t code, std::span<const std::uint8_t> data) {
    if (cls == kNetCtrlMq && code == kNetCtrlMqVqPairsSet && data.size() == 2 &&
        (negotiated() & kNetFMq)) {
        std::uint16_t k = 0;
        std::memcpy(&k, data.data(), 2);
        // Only pairs whose rings the driver enabled (and, for vhost-net, that have a worker):
        // a tap queue attached for a pair nobody serves would keep frames there, and its fd
        // readable.
        const bool ready = k >= 1 && k <= pairs_.size() &&
                           std::all_of(pairs_.begin(), pairs_.begin() + k,
                                       [](const Pair& p) { return p.enabled; });
        if (ready && use_pairs(k)) return kNetOk;
    }
    ++counters_.commands_refused;
    return kNetErr;
}

bool Net::use_pairs(std::uint16_t k) {
    for (std::uint16_t i = 0; i < pairs_.size(); ++i) {
        Pair& p = pairs_[i];
        const bool want = i < k;
        if (p.attached == want) continue;
        if (!want) set_tap_watch(i, false);  // a detached queue is given no frames
        if (is_tap_) {
            ifreq ifr{};
            ifr.ifr_flags = static_cast<short>(want ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE);
            if (::ioctl(p.tap.get(), TUNSETQUEUE, &ifr) != 0) {
                if (!warned_tap_) {
                    warned_tap_ = true;
                    log::warn("virtio-net: {} tap queue {}: {}", want ? "attaching" : "detaching",
                              i, std::strerror(errno));
                }
                return false;
            }
        }
        p.attached = want;
        if (want && !uses_vhost() && watcher_ != nullptr) set_tap_watch(i, true);
    }
    pairs_in_use_ = k;
    return true;
}

// ---- userspace datapath ----

void Net::on_activate(const ActivateContext& ctx) {
    for (std::size_t k = 0; k < pairs_.size(); ++k) {
        pairs_[k].rx_enabled = pair_enabled(ctx, k, true);
        pairs_[k].enabled = pair_enabled(ctx, k);
    }
    if (!uses_vhost()) {
        watcher_ = &ctx.watcher;
        for (Pair& p : pairs_) {
            p.frame.resize(kNetMaxFrame + kNetHdrSize);
            p.frame_len = 0;
            p.reserved.clear();
        }
    }
    // Until the driver says otherwise, only the first pair (5.1.6.5.5).
    if (!use_pairs(1)) {
        // The tap keeps steering flows to queues nobody serves; pair 0 still works.
        pairs_in_use_ = 1;
    }
    if (!uses_vhost()) set_tap_watch(0, true);
}

void Net::on_reset() {
    for (std::uint16_t k = 0; k < pairs_.size(); ++k) {
        set_tap_watch(k, false);
        pairs_[k].frame_len = 0;
        pairs_[k].reserved.clear();
        pairs_[k].rx_enabled = pairs_[k].enabled = false;
    }
    // The default again: the tap steers nothing to the other pairs' queues.
    if (!use_pairs(1)) pairs_in_use_ = 1;
}

// Frames wait in the tap until the driver resets the device (activation watches it again).
void Net::on_broken() {
    for (std::uint16_t k = 0; k < pairs_.size(); ++k)
        set_tap_watch(k, false);
}

void Net::set_tap_watch(std::uint16_t k, bool on) {
    Pair& p = pairs_[k];
    // Watched only while frames can go somewhere: its receive ring enabled (else serving it
    // does nothing, and the readable tap would wake the loop for ever) and its queue attached.
    if (watcher_ == nullptr || uses_vhost() || on == p.tap_watched ||
        (on && (!p.attached || !p.rx_enabled)))
        return;
    if (on) {
        auto r =
            watcher_->watch(p.tap.get(), [this, k] { kick(static_cast<std::uint16_t>(2 * k)); });
        if (!r) {
            log::warn("virtio-net: cannot watch the tap: {}", r.error().message);
            return;
        }
    } else {
        watcher_->unwatch(p.tap.get());
    }
    p.tap_watched = on;
}

Result<> Net::serve(std::uint16_t q, SplitQueue& queue, const GuestMemory& memory) {
    const std::uint64_t f = negotiated();
    if (control_queue(f) == q) return control(queue, memory);
    const std::uint16_t k = q / 2;
    // Pairs after the first exist for the driver only with VIRTIO_NET_F_MQ.
    if (k >= pairs_.size() || (k > 0 && !(f & kNetFMq))) return {};
    if (q % 2 == 0) return receive(pairs_[k], k, queue, memory);
    return transmit(pairs_[k], k, queue, memory);
}

Result<> Net::transmit(Pair& pair, std::uint16_t k, SplitQueue& queue, const GuestMemory& memory) {
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
            const ssize_t n = ::writev(pair.tap.get(), iov.data(), static_cast<int>(iov.size()));
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
        STOCKADE_TRY_VOID(notify_if_needed(static_cast<std::uint16_t>(2 * k + 1), queue));
    }
}

Result<> Net::receive(Pair& pair, std::uint16_t k, SplitQueue& queue, const GuestMemory& memory) {
    // A pair the driver does not use has its tap queue detached: nothing arrives there.
    if (!pair.attached) return {};
    for (int i = 0; i < kRxBatch; ++i) {
        if (pair.frame_len == 0) {
            // Read from the tap only with somewhere to put the frame; otherwise it waits in
            // the tap's queue (and the tap is not watched until the guest adds buffers).
            if (pair.reserved.empty() && !STOCKADE_TRY(queue.has_available())) {
                set_tap_watch(k, false);
                return {};
            }
            const ssize_t n = ::read(pair.tap.get(), pair.frame.data(), pair.frame.size());
            if (n < 0) {
                if (errno != EAGAIN && errno != EINTR && !warned_tap_) {
                    warned_tap_ = true;
                    log::warn("virtio-net: reading the tap: {}", std::strerror(errno));
                }
                set_tap_watch(k, true);
                return {};
            }
            if (static_cast<std::size_t>(n) <= kNetHdrSize) {
                ++counters_.rx_dropped;
                continue;
            }
            pair.frame_len = static_cast<std::size_t>(n);
        }
        if (!STOCKADE_TRY(deliver(pair, queue, memory))) {
            set_tap_watch(k, false);  // the guest's next receive kick resumes
            return {};
        }
        STOCKADE_TRY_VOID(notify_if_needed(static_cast<std::uint16_t>(2 * k), queue));
    }
    set_tap_watch(k, true);
    return {};
}

Result<bool> Net::deliver(Pair& pair, SplitQueue& queue, const GuestMemory& memory) {
    const bool mergeable = (negotiated() & kNetFMrgRxbuf) != 0;
    // Chains the frame needs: one without mergeable buffers, else as many as it fills.
    std::size_t chains = 0;
    std::uint64_t room = 0;
    for (;;) {
        while (chains < pair.reserved.size() && room < pair.frame_len && (mergeable || chains == 0))
            room += pair.reserved[chains++].writable_bytes();
        if (room >= pair.frame_len || (!mergeable && chains == 1)) break;
        // An honest driver has at most a queue's worth of chains out; one that re-posts heads
        // it has not got back would have this list (and its rescan on every kick) grow
        // without end.
        if (pair.reserved.size() >= queue.size()) break;
        auto chain = STOCKADE_TRY(queue.pop());
        if (!chain) return false;
        if (!chain->readable.empty())
            return fail("receive chain {} has device-readable buffers", chain->head);
        // With mergeable buffers each one holds at least the header (5.1.6.3.1): a smaller
        // one adds no room, so a stream of them would never fill a frame.
        if (mergeable && chain->writable_bytes() < kNetHdrSize)
            return fail("receive chain {} has {} bytes, less than the {}-byte header", chain->head,
                        chain->writable_bytes(), kNetHdrSize);
        pair.reserved.push_back(std::move(*chain));
    }
    if (room < pair.frame_len) {
        // Without mergeable buffers a driver must offer room for a whole frame (5.1.6.3.1);
        // with them, a frame a queue's worth of chains cannot hold goes too. The chains it
        // had go back empty.
        ++counters_.rx_dropped;
        pair.frame_len = 0;
        for (std::size_t c = 0; c < chains; ++c)
            STOCKADE_TRY_VOID(queue.push_used(pair.reserved[c].head, 0));
        pair.reserved.erase(pair.reserved.begin(),
                            pair.reserved.begin() + static_cast<std::ptrdiff_t>(chains));
        return true;
    }
    // num_buffers (the header's last field): the tap leaves it to us.
    const std::uint16_t used = static_cast<std::uint16_t>(chains);
    std::memcpy(pair.frame.data() + 10, &used, 2);
    std::size_t at = 0;
    for (std::size_t c = 0; c < chains; ++c) {
        ChainWriter w(memory, pair.reserved[c].writable);
        const std::size_t n =
            std::min<std::uint64_t>(pair.reserved[c].writable_bytes(), pair.frame_len - at);
        STOCKADE_TRY_VOID(w.write(std::span(pair.frame.data() + at, n)));
        at += n;
        STOCKADE_TRY_VOID(queue.push_used(pair.reserved[c].head, static_cast<std::uint32_t>(n)));
    }
    pair.reserved.erase(pair.reserved.begin(),
                        pair.reserved.begin() + static_cast<std::ptrdiff_t>(chains));
    pair.frame_len = 0;
    ++counters_.rx_frames;
    return true;
}

}  // namespace stockade::virtio
