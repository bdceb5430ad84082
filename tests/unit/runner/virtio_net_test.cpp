// virtio-net without a tap or KVM: feature negotiation and its dependencies, the
// configuration space, the offloads given to the tap, and the userspace datapath against a
// datagram socket standing in for the tap, with a driver that follows the rules and one
// that does not. Also the runner's --net spec.
#include <gtest/gtest.h>

#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "base/uapi.hpp"
#include "runner/registry/net.hpp"
#include "runner/virtio/net.hpp"
#include "runner/virtio/pci_transport.hpp"
#include "tests/unit/runner/virtio_test_support.hpp"

namespace stockade::virtio {
namespace {

using fake::FakeIoEvents;
using fake::FakeRouter;
using fake::FakeWatcher;
using fake::RawDesc;

constexpr std::array<std::uint8_t, 6> kMac{0x02, 0x11, 0x22, 0x33, 0x44, 0x55};
constexpr std::uint16_t kRingSize = 16;

// A split ring the test writes as a driver would, anywhere in a shared guest memory.
class DriverRing {
  public:
    DriverRing(const GuestMemory& mem, std::uint64_t base, std::uint16_t size)
        : mem_(&mem),
          size_(size),
          desc_(base),
          avail_(base + 16ull * size),
          used_((avail_ + 6 + 2ull * size + 0xfff) & ~0xfffull) {}
    [[nodiscard]] QueueSetup setup() const { return {size_, desc_, avail_, used_, 0, true}; }
    void desc(std::uint16_t i, std::uint64_t addr, std::uint32_t len, std::uint16_t flags = 0,
              std::uint16_t next = 0) const {
        ASSERT_TRUE(mem_->write_obj(desc_ + 16ull * i, RawDesc{addr, len, flags, next}));
    }
    void offer(std::uint16_t head) {
        ASSERT_TRUE(mem_->write_obj<std::uint16_t>(avail_ + 4 + 2ull * (idx_ % size_), head));
        ++idx_;
        ASSERT_TRUE(mem_->write_obj<std::uint16_t>(avail_ + 2, idx_));
    }
    [[nodiscard]] std::uint16_t used_idx() const {
        return mem_->read_obj<std::uint16_t>(used_ + 2).value();
    }
    struct Used {
        std::uint32_t id, len;
    };
    [[nodiscard]] Used used(std::uint16_t slot) const {
        return mem_->read_obj<Used>(used_ + 4 + 8ull * (slot % size_)).value();
    }

  private:
    const GuestMemory* mem_;
    std::uint16_t size_;
    std::uint64_t desc_, avail_, used_;
    std::uint16_t idx_ = 0;
};

// A Net device on the userspace datapath whose "tap" is one end of a datagram socket pair.
struct NetRig {
    GuestMemory mem = GuestMemory::create_unregistered(4 << 20).value();
    DriverRing rx{mem, 0x10000, kRingSize}, tx{mem, 0x20000, kRingSize};
    UniqueFd peer;  // the host side: what the tap would carry
    Net* net = nullptr;
    std::unique_ptr<VirtioDevice> owned;
    FakeWatcher watcher;
    int tap_fd = -1;
    int kicks[2] = {-1, -1};
    std::vector<std::string> resets;
    int notified[2] = {0, 0};
    std::vector<std::uint16_t> used_at_notify[2];  // the used index each interrupt saw
    std::function<void(std::uint16_t)> on_notify;  // the driver's interrupt handler, if any
    std::uint64_t next_buf = 0x100000;

    explicit NetRig(std::optional<std::uint16_t> mtu = std::nullopt) {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
        peer = UniqueFd(sv[1]);
        tap_fd = sv[0];
        for (int& k : kicks)
            k = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        NetBackend b{UniqueFd(sv[0]), kMac, mtu, std::nullopt, false};
        auto created = Net::create(std::move(b));
        EXPECT_TRUE(created) << created.error().message;
        owned = std::move(*created);
        net = static_cast<Net*>(owned.get());
    }
    ~NetRig() {
        owned.reset();
        for (int k : kicks)
            ::close(k);
    }

    std::uint64_t alloc(std::uint64_t len) {
        const std::uint64_t at = next_buf;
        next_buf = (next_buf + len + 15) & ~15ull;
        return at;
    }

    Result<> activate(std::uint64_t features, std::span<const QueuePosition> resume = {}) {
        QueueSetup queues[2] = {rx.setup(), tx.setup()};
        int calls[2] = {-1, -1};
        ActivateContext ctx{
            mem,
            features,
            queues,
            kicks,
            calls,
            watcher,
            [this](std::uint16_t q) {
                ++notified[q];
                used_at_notify[q].push_back((q == kNetRxQueue ? rx : tx).used_idx());
                if (on_notify) on_notify(q);
            },
            [this](std::string why) { resets.push_back(why); },
            resume};
        return net->activate(ctx);
    }

    void kick(std::uint16_t q) {
        std::uint64_t one = 1;
        ASSERT_EQ(::write(kicks[q], &one, sizeof one), 8);
        watcher.fire(kicks[q]);
    }

    // Sends `frame` (virtio-net header first) from the host into the "tap".
    void host_send(const std::vector<std::uint8_t>& frame) {
        ASSERT_EQ(::send(peer.get(), frame.data(), frame.size(), 0),
                  static_cast<ssize_t>(frame.size()));
    }
    // What the "tap" received from the guest; empty when nothing.
    std::vector<std::uint8_t> host_receive() {
        std::vector<std::uint8_t> buf(kNetMaxFrame + kNetHdrSize + 64);
        const ssize_t n = ::recv(peer.get(), buf.data(), buf.size(), MSG_DONTWAIT);
        buf.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
        return buf;
    }
};

constexpr std::uint64_t kModern = kFeatureVersion1 | kFeatureEventIdx | kFeatureIndirectDesc;

std::vector<std::uint8_t> frame_with_header(std::size_t payload, std::uint8_t fill = 0xab) {
    std::vector<std::uint8_t> f(kNetHdrSize + payload, fill);
    std::fill(f.begin(), f.begin() + kNetHdrSize, 0);
    return f;
}

// ---- features ----

TEST(VirtioNetFeatures, OffersOffloadsMacStatusAndModernRings) {
    NetRig rig;
    const std::uint64_t f = rig.net->offered_features();
    for (std::uint64_t bit : {kNetFCsum, kNetFGuestCsum, kNetFMac, kNetFStatus, kNetFGuestTso4,
                              kNetFGuestTso6, kNetFHostTso4, kNetFHostTso6, kNetFMrgRxbuf,
                              kFeatureVersion1, kFeatureEventIdx, kFeatureIndirectDesc})
        EXPECT_TRUE(f & bit) << std::hex << bit;
    EXPECT_FALSE(f & kNetFMtu) << "MTU is only offered when the spec sets one";
    EXPECT_EQ(rig.net->queue_count(), 2);
    EXPECT_EQ(rig.net->device_type(), kTypeNet);
}

TEST(VirtioNetFeatures, DependenciesAreEnforced) {
    EXPECT_TRUE(net_features_consistent(0));
    EXPECT_TRUE(net_features_consistent(kNetFGuestCsum | kNetFGuestTso4 | kNetFGuestEcn));
    EXPECT_TRUE(net_features_consistent(kNetFCsum | kNetFHostTso6 | kNetFHostEcn));
    EXPECT_FALSE(net_features_consistent(kNetFGuestTso4));
    EXPECT_FALSE(net_features_consistent(kNetFGuestTso6));
    EXPECT_FALSE(net_features_consistent(kNetFGuestCsum | kNetFGuestEcn));
    EXPECT_FALSE(net_features_consistent(kNetFHostTso4));
    EXPECT_FALSE(net_features_consistent(kNetFCsum | kNetFHostEcn));
}

TEST(VirtioNetFeatures, TapOffloadsFollowWhatTheGuestAccepted) {
    EXPECT_EQ(tap_offloads_for(0), 0u);
    EXPECT_EQ(tap_offloads_for(kNetFGuestTso4), 0u) << "no TSO without checksum offload";
    EXPECT_EQ(tap_offloads_for(kNetFGuestCsum), unsigned{TUN_F_CSUM});
    EXPECT_EQ(tap_offloads_for(kNetFGuestCsum | kNetFGuestTso4 | kNetFGuestTso6 | kNetFGuestEcn),
              unsigned{TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN});
    // Host-side offloads are what the guest sends; they do not change what the tap may send.
    EXPECT_EQ(tap_offloads_for(kNetFCsum | kNetFHostTso4), 0u);
}

TEST(VirtioNetFeatures, ActivationSetsAndResetClearsTapOffloads) {
    NetRig rig;
    EXPECT_EQ(rig.net->tap_offloads(), 0u);
    ASSERT_TRUE(rig.activate(kModern | kNetFGuestCsum | kNetFGuestTso4));
    EXPECT_EQ(rig.net->tap_offloads(), unsigned{TUN_F_CSUM | TUN_F_TSO4});
    rig.net->reset();
    EXPECT_EQ(rig.net->tap_offloads(), 0u);
    EXPECT_FALSE(rig.watcher.watching(rig.tap_fd));
}

// Through the transport: a driver that asks for guest TSO without guest checksums does not
// get FEATURES_OK.
TEST(VirtioNetFeatures, TransportRefusesInconsistentFeatures) {
    NetRig rig;
    FakeRouter router;
    FakeIoEvents ioevents;
    auto t = PciTransport::create(std::move(rig.owned), ioevents, router, rig.mem, rig.watcher);
    ASSERT_TRUE(t) << t.error().message;
    auto w32 = [&](std::uint64_t off, std::uint32_t v) {
        (*t)->bar_write(0, off, std::span(reinterpret_cast<const std::uint8_t*>(&v), 4));
    };
    auto status = [&] {
        std::uint8_t s = 0;
        (*t)->bar_read(0, 0x14, std::span(&s, 1));
        return s;
    };
    auto set_status = [&](std::uint8_t s) { (*t)->bar_write(0, 0x14, std::span(&s, 1)); };
    auto negotiate = [&](std::uint64_t features) {
        set_status(0);
        set_status(kStatusAcknowledge | kStatusDriver);
        w32(0x08, 0);
        w32(0x0c, static_cast<std::uint32_t>(features));
        w32(0x08, 1);
        w32(0x0c, static_cast<std::uint32_t>(features >> 32));
        set_status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
        return (status() & kStatusFeaturesOk) != 0;
    };
    EXPECT_FALSE(negotiate(kFeatureVersion1 | kNetFGuestTso4));
    EXPECT_FALSE(negotiate(kFeatureVersion1 | kNetFCsum | kNetFHostEcn));
    EXPECT_FALSE(negotiate(kFeatureVersion1 | (1ull << 22))) << "not offered (MQ)";
    EXPECT_TRUE(negotiate(kModern | kNetFMac | kNetFGuestCsum | kNetFGuestTso4 | kNetFMrgRxbuf));
    rig.net = nullptr;
}

// ---- configuration space ----

TEST(VirtioNetConfig, MacStatusPairsAndMtu) {
    NetRig rig(std::uint16_t{9000});
    EXPECT_TRUE(rig.net->offered_features() & kNetFMtu);
    std::uint8_t cfg[16];
    std::memset(cfg, 0xee, sizeof cfg);
    rig.net->config_read(0, cfg);
    EXPECT_EQ(0, std::memcmp(cfg, kMac.data(), 6));
    std::uint16_t status, pairs, mtu;
    std::memcpy(&status, cfg + 6, 2);
    std::memcpy(&pairs, cfg + 8, 2);
    std::memcpy(&mtu, cfg + 10, 2);
    EXPECT_EQ(status, kNetSLinkUp);
    EXPECT_EQ(pairs, 1);
    EXPECT_EQ(mtu, 9000);
    for (int i = 12; i < 16; ++i)
        EXPECT_EQ(cfg[i], 0) << "bytes past the structure read as zero";
    // Unaligned and partial reads see the same bytes.
    std::uint8_t two[2];
    rig.net->config_read(5, two);
    EXPECT_EQ(two[0], kMac[5]);
    EXPECT_EQ(two[1], kNetSLinkUp);
    std::uint8_t far[4] = {1, 2, 3, 4};
    rig.net->config_read(0xffc, far);
    EXPECT_EQ(far[0] | far[1] | far[2] | far[3], 0);
    // Writes (the MAC is read-only for a modern driver) change nothing.
    const std::uint8_t junk[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    rig.net->config_write(0, junk);
    rig.net->config_read(0, cfg);
    EXPECT_EQ(0, std::memcmp(cfg, kMac.data(), 6));
}

TEST(VirtioNetConfig, MulticastMacIsRefused) {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
    ::close(sv[1]);
    NetBackend b{UniqueFd(sv[0]), {0x01, 0, 0x5e, 0, 0, 1}, std::nullopt, std::nullopt, false};
    EXPECT_FALSE(Net::create(std::move(b)));
}

// ---- userspace datapath ----

TEST(VirtioNetDatapath, TransmitPassesHeaderAndFrameToTheTap) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern));
    auto frame = frame_with_header(100, 0x5a);
    frame[0] = 1;  // VIRTIO_NET_HDR_F_NEEDS_CSUM: passed through untouched
    // Header and frame in two descriptors, as Linux sends without any_layout.
    const std::uint64_t hdr = rig.alloc(kNetHdrSize), body = rig.alloc(100);
    ASSERT_TRUE(rig.mem.write(hdr, std::span(frame.data(), kNetHdrSize)));
    ASSERT_TRUE(rig.mem.write(body, std::span(frame.data() + kNetHdrSize, 100)));
    rig.tx.desc(0, hdr, kNetHdrSize, kDescNext, 1);
    rig.tx.desc(1, body, 100);
    rig.tx.offer(0);
    rig.kick(kNetTxQueue);
    EXPECT_EQ(rig.host_receive(), frame);
    EXPECT_EQ(rig.tx.used_idx(), 1);
    EXPECT_EQ(rig.tx.used(0).id, 0u);
    EXPECT_EQ(rig.notified[kNetTxQueue], 1);
    EXPECT_TRUE(rig.resets.empty());
    EXPECT_EQ(rig.net->counters().tx_frames, 1u);
    // --stats says the ring size the driver chose, and the most it could.
    EXPECT_NE(rig.net->stats().find(fmt::format("rings of {} of at most 256", kRingSize)),
              std::string::npos)
        << rig.net->stats();
}

// With EVENT_IDX and used_event 0 the driver wants one interrupt, once its first frame is
// back: it comes before the rest of the batch is written, not after (the driver's TCP may be
// waiting for that frame's memory to send the next).
TEST(VirtioNetDatapath, TransmitInterruptsAfterTheFirstFrameOfABatch) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern));
    auto frame = frame_with_header(200, 0x3c);
    for (std::uint16_t i = 0; i < 3; ++i) {
        const std::uint64_t at = rig.alloc(frame.size());
        ASSERT_TRUE(rig.mem.write(at, frame));
        rig.tx.desc(i, at, static_cast<std::uint32_t>(frame.size()));
        rig.tx.offer(i);
    }
    rig.kick(kNetTxQueue);
    for (int i = 0; i < 3; ++i)
        EXPECT_EQ(rig.host_receive(), frame);
    EXPECT_EQ(rig.tx.used_idx(), 3);
    EXPECT_EQ(rig.used_at_notify[kNetTxQueue], std::vector<std::uint16_t>{1});
    EXPECT_TRUE(rig.resets.empty());
}

TEST(VirtioNetDatapath, ReceiveInterruptsAfterTheFirstFrameOfABatch) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern));
    for (std::uint16_t i = 0; i < 2; ++i) {
        rig.rx.desc(i, rig.alloc(2048), 2048, kDescWrite);
        rig.rx.offer(i);
    }
    rig.kick(kNetRxQueue);
    rig.used_at_notify[kNetRxQueue].clear();  // the first check after activation interrupts
    auto frame = frame_with_header(60, 0x11);
    rig.host_send(frame);
    rig.host_send(frame);
    rig.watcher.fire(rig.tap_fd);
    EXPECT_EQ(rig.rx.used_idx(), 2);
    EXPECT_EQ(rig.used_at_notify[kNetRxQueue], std::vector<std::uint16_t>{1});
    EXPECT_EQ(rig.net->counters().rx_frames, 2u);
}

TEST(VirtioNetDatapath, ReceiveFillsOneBufferWithNumBuffersOne) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern));
    EXPECT_TRUE(rig.watcher.watching(rig.tap_fd));
    const std::uint64_t buf = rig.alloc(2048);
    rig.rx.desc(0, buf, 2048, kDescWrite);
    rig.rx.offer(0);
    rig.kick(kNetRxQueue);
    auto frame = frame_with_header(60, 0x77);
    rig.host_send(frame);
    rig.watcher.fire(rig.tap_fd);
    ASSERT_EQ(rig.rx.used_idx(), 1);
    EXPECT_EQ(rig.rx.used(0).len, frame.size());
    std::vector<std::uint8_t> got(frame.size());
    ASSERT_TRUE(rig.mem.read(buf, got));
    frame[10] = 1;  // num_buffers
    EXPECT_EQ(got, frame);
    EXPECT_GE(rig.notified[kNetRxQueue], 1);
}

TEST(VirtioNetDatapath, MergeableBuffersSpreadALargeFrame) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern | kNetFMrgRxbuf));
    std::uint64_t bufs[4];
    for (std::uint16_t i = 0; i < 4; ++i) {
        bufs[i] = rig.alloc(1000);
        rig.rx.desc(i, bufs[i], 1000, kDescWrite);
        rig.rx.offer(i);
    }
    auto frame = frame_with_header(2500 - kNetHdrSize);
    for (std::size_t i = kNetHdrSize; i < frame.size(); ++i)
        frame[i] = static_cast<std::uint8_t>(i * 7);
    rig.host_send(frame);
    rig.watcher.fire(rig.tap_fd);
    ASSERT_EQ(rig.rx.used_idx(), 3) << "2500 bytes in three 1000-byte buffers";
    EXPECT_EQ(rig.rx.used(0).len, 1000u);
    EXPECT_EQ(rig.rx.used(1).len, 1000u);
    EXPECT_EQ(rig.rx.used(2).len, 500u);
    std::vector<std::uint8_t> got(2500);
    ASSERT_TRUE(rig.mem.read(bufs[0], std::span(got.data(), 1000)));
    ASSERT_TRUE(rig.mem.read(bufs[1], std::span(got.data() + 1000, 1000)));
    ASSERT_TRUE(rig.mem.read(bufs[2], std::span(got.data() + 2000, 500)));
    frame[10] = 3;
    EXPECT_EQ(got, frame);
    // The fourth buffer is kept for the next frame.
    auto small = frame_with_header(20);
    rig.host_send(small);
    rig.watcher.fire(rig.tap_fd);
    EXPECT_EQ(rig.rx.used_idx(), 4);
    EXPECT_EQ(rig.rx.used(3).id, 3u);
}

TEST(VirtioNetDatapath, WithoutBuffersTheFrameWaitsAndTheTapIsNotWatched) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern));
    auto frame = frame_with_header(40, 0x42);
    rig.host_send(frame);
    rig.watcher.fire(rig.tap_fd);
    EXPECT_FALSE(rig.watcher.watching(rig.tap_fd)) << "no busy loop on a readable tap";
    EXPECT_EQ(rig.rx.used_idx(), 0);
    for (std::uint16_t i = 0; i < 2; ++i) {
        rig.rx.desc(i, rig.alloc(1600), 1600, kDescWrite);
        rig.rx.offer(i);
    }
    rig.kick(kNetRxQueue);
    ASSERT_EQ(rig.rx.used_idx(), 1) << "the guest's buffers bring the waiting frame in";
    EXPECT_EQ(rig.rx.used(0).len, frame.size());
    EXPECT_TRUE(rig.watcher.watching(rig.tap_fd)) << "a buffer is left: the tap is read again";
}

// ---- a hostile driver ----

TEST(VirtioNetHostile, ShortAndOversizedTransmitChainsAreDropped) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern));
    const std::uint64_t tiny = rig.alloc(4);
    rig.tx.desc(0, tiny, 4);  // shorter than the header
    rig.tx.offer(0);
    // 80 KiB of frame: more than a tap takes.
    for (std::uint16_t i = 1; i <= 5; ++i)
        rig.tx.desc(i, rig.alloc(16384), 16384, i < 5 ? kDescNext : 0,
                    static_cast<std::uint16_t>(i + 1));
    rig.tx.offer(1);
    rig.kick(kNetTxQueue);
    EXPECT_TRUE(rig.host_receive().empty());
    EXPECT_EQ(rig.tx.used_idx(), 2) << "dropped chains are still returned";
    EXPECT_TRUE(rig.resets.empty());
    EXPECT_EQ(rig.net->counters().tx_dropped, 2u);
}

TEST(VirtioNetHostile, TransmitChainWithWritableBufferNeedsReset) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern));
    rig.tx.desc(0, rig.alloc(64), 64, kDescNext, 1);
    rig.tx.desc(1, rig.alloc(64), 64, kDescWrite);
    rig.tx.offer(0);
    rig.kick(kNetTxQueue);
    ASSERT_EQ(rig.resets.size(), 1u);
    EXPECT_NE(rig.resets[0].find("device-writable"), std::string::npos) << rig.resets[0];
}

TEST(VirtioNetHostile, ReceiveChainWithReadableBufferNeedsReset) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern));
    rig.rx.desc(0, rig.alloc(2048), 2048);  // device-readable: not a receive buffer
    rig.rx.offer(0);
    rig.host_send(frame_with_header(60));
    rig.watcher.fire(rig.tap_fd);
    ASSERT_EQ(rig.resets.size(), 1u);
    EXPECT_NE(rig.resets[0].find("device-readable"), std::string::npos) << rig.resets[0];
    // The device has stopped: more traffic does nothing.
    rig.host_send(frame_with_header(60));
    if (rig.watcher.watching(rig.tap_fd)) rig.watcher.fire(rig.tap_fd);
    EXPECT_EQ(rig.rx.used_idx(), 0);
}

TEST(VirtioNetHostile, ReceiveBufferOutsideRamNeedsReset) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern));
    rig.rx.desc(0, (4 << 20) - 100, 2048, kDescWrite);
    rig.rx.offer(0);
    rig.host_send(frame_with_header(60));
    rig.watcher.fire(rig.tap_fd);
    EXPECT_EQ(rig.resets.size(), 1u);
    EXPECT_EQ(rig.rx.used_idx(), 0);
}

TEST(VirtioNetHostile, TooSmallBufferWithoutMergeableDropsTheFrame) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern));
    rig.rx.desc(0, rig.alloc(64), 64, kDescWrite);
    rig.rx.offer(0);
    rig.host_send(frame_with_header(1000));
    rig.watcher.fire(rig.tap_fd);
    ASSERT_EQ(rig.rx.used_idx(), 1);
    EXPECT_EQ(rig.rx.used(0).len, 0u);
    EXPECT_TRUE(rig.resets.empty());
    EXPECT_EQ(rig.net->counters().rx_dropped, 1u);
}

// The driver's interrupt handler re-posts the chain it just got back, at once and for ever:
// a queue served "until empty" would never let the event loop go. Each turn serves
// kServeBudget chains, and the device signals its own kick eventfd for the next turn.
TEST(VirtioNetHostile, ATransmitChainRepostedForeverStillEndsEachTurn) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kFeatureVersion1));  // no EVENT_IDX: an interrupt per frame
    const auto frame = frame_with_header(60, 0x21);
    const std::uint64_t at = rig.alloc(frame.size());
    ASSERT_TRUE(rig.mem.write(at, frame));
    rig.tx.desc(0, at, static_cast<std::uint32_t>(frame.size()));
    int reposts = 0;
    rig.on_notify = [&](std::uint16_t q) {
        if (q == kNetTxQueue && reposts < 100000) {
            rig.tx.offer(0);
            ++reposts;
        }
    };
    rig.tx.offer(0);
    rig.kick(kNetTxQueue);
    EXPECT_EQ(rig.tx.used_idx(), kServeBudget) << "the first turn ended at the budget";
    ASSERT_TRUE(fake::readable(rig.kicks[kNetTxQueue])) << "and asked for the next";
    for (std::uint32_t turn = 2; turn <= 3; ++turn) {
        rig.watcher.fire(rig.kicks[kNetTxQueue]);
        EXPECT_EQ(rig.tx.used_idx(), turn * kServeBudget);
    }
    const auto c = rig.net->queue_counters().at(kNetTxQueue);
    EXPECT_EQ(c.kicks, 1u);
    EXPECT_EQ(c.runs, 3u);
    EXPECT_EQ(c.budget_exhausted, 3u);
    EXPECT_NE(rig.net->stats().find("tx queue: kicks 1, served 3, interrupts "), std::string::npos)
        << rig.net->stats();
    EXPECT_NE(rig.net->stats().find("budget exhausted 3"), std::string::npos) << rig.net->stats();
    // The driver stops: the next turn drains the ring and asks for nothing more.
    rig.on_notify = nullptr;
    rig.watcher.fire(rig.kicks[kNetTxQueue]);
    EXPECT_EQ(rig.tx.used_idx(), reposts + 1) << "every chain offered came back";
    EXPECT_FALSE(fake::readable(rig.kicks[kNetTxQueue]));
    EXPECT_TRUE(rig.resets.empty());
}

// With mergeable buffers every receive buffer holds at least the header (5.1.6.3.1).
TEST(VirtioNetHostile, MergeableReceiveChainsSmallerThanTheHeaderNeedReset) {
    for (std::uint32_t len : {0u, 1u, static_cast<std::uint32_t>(kNetHdrSize - 1)}) {
        NetRig rig;
        ASSERT_TRUE(rig.activate(kModern | kNetFMrgRxbuf));
        rig.rx.desc(0, rig.alloc(64), len, kDescWrite);
        rig.rx.offer(0);
        rig.host_send(frame_with_header(60));
        rig.watcher.fire(rig.tap_fd);
        ASSERT_EQ(rig.resets.size(), 1u) << len;
        EXPECT_NE(rig.resets[0].find("less than the 12-byte header"), std::string::npos)
            << rig.resets[0];
        EXPECT_EQ(rig.rx.used_idx(), 0) << len;
        // Broken until the driver resets it, with a frame waiting: the tap no longer wakes
        // the (level-triggered) loop, which would otherwise spin on it.
        EXPECT_FALSE(rig.watcher.watching(rig.tap_fd)) << len;
        rig.net->reset();
        ASSERT_TRUE(rig.activate(kModern | kNetFMrgRxbuf));
        EXPECT_TRUE(rig.watcher.watching(rig.tap_fd)) << "watched again once reset and started";
    }
    // Exactly a header's worth is a buffer (if a useless one).
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern | kNetFMrgRxbuf));
    for (std::uint16_t i = 0; i < 8; ++i) {
        rig.rx.desc(i, rig.alloc(kNetHdrSize), kNetHdrSize, kDescWrite);
        rig.rx.offer(i);
    }
    rig.host_send(frame_with_header(60));  // 72 bytes: six buffers
    rig.watcher.fire(rig.tap_fd);
    EXPECT_TRUE(rig.resets.empty());
    EXPECT_EQ(rig.rx.used_idx(), 6);
    EXPECT_EQ(rig.net->counters().rx_frames, 1u);
}

// A driver re-posting one small receive chain it has not got back: the device holds at most
// a queue's worth of chains for a frame; a frame they cannot hold is dropped and the chains
// come back empty.
TEST(VirtioNetHostile, ReservedReceiveChainsNeverExceedTheQueueSize) {
    NetRig rig;
    ASSERT_TRUE(rig.activate(kModern | kNetFMrgRxbuf));
    const std::uint64_t tiny = rig.alloc(kNetHdrSize);
    rig.rx.desc(0, tiny, kNetHdrSize, kDescWrite);
    constexpr int kFrames = 4;
    for (int i = 0; i < kFrames; ++i)
        rig.host_send(frame_with_header(1500));  // 126 header-sized buffers each
    int offered = 0;
    for (int round = 0; round < 40; ++round) {
        // Keep the ring full of head 0, whatever the device has taken.
        const int taken = rig.rx.used_idx() + static_cast<int>(rig.net->reserved_chains());
        for (; offered - taken < kRingSize; ++offered)
            rig.rx.offer(0);
        rig.kick(kNetRxQueue);
        ASSERT_LE(rig.net->reserved_chains(), kRingSize) << "round " << round;
        ASSERT_TRUE(rig.resets.empty()) << rig.resets.front();
    }
    EXPECT_EQ(rig.net->counters().rx_dropped, static_cast<std::uint64_t>(kFrames));
    EXPECT_EQ(rig.net->counters().rx_frames, 0u);
    EXPECT_EQ(rig.rx.used_idx(), kFrames * kRingSize);
    for (std::uint16_t i = 0; i < rig.rx.used_idx(); ++i)
        EXPECT_EQ(rig.rx.used(i).len, 0u) << i;
    EXPECT_EQ(rig.net->reserved_chains(), 0u);
}

// Snapshots of the userspace datapath: receive chains the device took for a frame that
// did not fit yet are not lost: the saved position is before them, so a restored device
// takes them again.
TEST(VirtioNetState, ReceiveChainsWaitingForAFrameAreTakenAgainAfterRestore) {
    NetRig a;
    ASSERT_TRUE(a.activate(kModern | kNetFMrgRxbuf));
    for (std::uint16_t i = 0; i < 2; ++i) {
        a.rx.desc(i, a.alloc(1000), 1000, kDescWrite);
        a.rx.offer(i);
    }
    a.host_send(frame_with_header(2500 - kNetHdrSize));  // needs three
    a.watcher.fire(a.tap_fd);
    ASSERT_EQ(a.net->reserved_chains(), 2u);
    ASSERT_EQ(a.rx.used_idx(), 0);
    const DeviceState saved = a.net->save_state().value();
    EXPECT_EQ(saved.queues[kNetRxQueue].next_avail, 0) << "the two waiting chains, handed back";

    NetRig b;
    fake::copy_guest_memory(a.mem, b.mem);
    ASSERT_TRUE(b.activate(kModern | kNetFMrgRxbuf, saved.queues));
    b.rx.desc(2, b.alloc(1000), 1000, kDescWrite);
    b.rx.offer(0);  // b's driver ring helper starts at 0: put slots 0 and 1 back as they were
    b.rx.offer(1);
    b.rx.offer(2);
    b.host_send(frame_with_header(2500 - kNetHdrSize));
    b.watcher.fire(b.tap_fd);
    ASSERT_EQ(b.rx.used_idx(), 3) << "chains 0 and 1 taken again, and 2";
    EXPECT_EQ(b.rx.used(0).id, 0u);
    EXPECT_EQ(b.rx.used(2).id, 2u);
    EXPECT_TRUE(b.resets.empty());
}

TEST(VirtioNetHostile, MisplacedRingsFailActivation) {
    NetRig rig;
    rig.rx = DriverRing(rig.mem, (4 << 20) - 64, kRingSize);  // runs off the end of RAM
    EXPECT_FALSE(rig.activate(kModern));
}

// ---- the --net spec ----

// ---- multi-queue: several pairs and the control queue ----

// A Net device with kPairs pairs on the userspace datapath, each pair's "tap" one end of a
// datagram socket pair; queues rx0 tx0 rx1 tx1 ... and the control queue last.
struct MqRig {
    static constexpr std::uint16_t kPairs = 2, kControl = 2 * kPairs;
    GuestMemory mem = GuestMemory::create_unregistered(4 << 20).value();
    std::vector<DriverRing> rings;
    std::vector<UniqueFd> peers;
    std::vector<int> taps, kicks;
    FakeWatcher watcher;
    std::unique_ptr<VirtioDevice> owned;
    Net* net = nullptr;
    std::vector<std::string> resets;
    std::vector<int> notified = std::vector<int>(kControl + 1, 0);
    std::uint64_t next_buf = 0x100000;

    MqRig() {
        NetBackend b{UniqueFd(pair()), kMac, std::nullopt, std::nullopt, false};
        for (std::uint16_t k = 1; k < kPairs; ++k)
            b.more_pairs.push_back({UniqueFd(pair()), std::nullopt});
        for (std::uint16_t q = 0; q <= kControl; ++q) {
            rings.emplace_back(mem, 0x10000 + 0x4000ull * q, kRingSize);
            kicks.push_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
        }
        auto created = Net::create(std::move(b));
        EXPECT_TRUE(created) << created.error().message;
        owned = std::move(*created);
        net = static_cast<Net*>(owned.get());
    }
    ~MqRig() {
        owned.reset();
        for (int k : kicks)
            ::close(k);
    }
    int pair() {
        int sv[2];
        EXPECT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
        peers.emplace_back(sv[1]);
        taps.push_back(sv[0]);
        return sv[0];
    }
    std::uint64_t alloc(std::uint64_t len) {
        const std::uint64_t at = next_buf;
        next_buf = (next_buf + len + 15) & ~15ull;
        return at;
    }
    // Every ring enabled but those in `disabled`.
    Result<> activate(std::uint64_t features, std::vector<std::uint16_t> disabled = {}) {
        std::vector<QueueSetup> setups;
        for (const DriverRing& r : rings)
            setups.push_back(r.setup());
        for (std::uint16_t q : disabled)
            setups[q].enabled = false;
        std::vector<int> calls(rings.size(), -1);
        ActivateContext ctx{mem,
                            features,
                            setups,
                            kicks,
                            calls,
                            watcher,
                            [this](std::uint16_t q) { ++notified[q]; },
                            [this](std::string why) { resets.push_back(why); },
                            {}};
        return net->activate(ctx);
    }
    void kick(std::uint16_t q) {
        std::uint64_t one = 1;
        ASSERT_EQ(::write(kicks[q], &one, sizeof one), 8);
        watcher.fire(kicks[q]);
    }
    // Sends a control command on queue q (the control queue unless said): its bytes readable,
    // then a one-byte ack. The ack, or -1 when the device used nothing.
    int command(std::vector<std::uint8_t> cmd, std::uint16_t q = kControl) {
        DriverRing& r = rings[q];
        const std::uint64_t at = alloc(cmd.size()), ack = alloc(1);
        EXPECT_TRUE(mem.write(at, cmd));
        EXPECT_TRUE(mem.write_obj<std::uint8_t>(ack, 0xee));
        const std::uint16_t before = r.used_idx();
        r.desc(0, at, static_cast<std::uint32_t>(cmd.size()), kDescNext, 1);
        r.desc(1, ack, 1, kDescWrite);
        r.offer(0);
        kick(q);
        if (r.used_idx() == before) return -1;
        return mem.read_obj<std::uint8_t>(ack).value();
    }
    static std::vector<std::uint8_t> set_pairs(std::uint16_t k) {
        return {kNetCtrlMq, kNetCtrlMqVqPairsSet, static_cast<std::uint8_t>(k & 0xff),
                static_cast<std::uint8_t>(k >> 8)};
    }
};

constexpr std::uint64_t kMq = kModern | kNetFCtrlVq | kNetFMq;

TEST(VirtioNetMultiQueue, PairsAndTheControlQueueAreOfferedAndCounted) {
    MqRig rig;
    const std::uint64_t f = rig.net->offered_features();
    EXPECT_TRUE(f & kNetFMq);
    EXPECT_TRUE(f & kNetFCtrlVq);
    EXPECT_EQ(rig.net->queue_count(), 2 * MqRig::kPairs + 1);
    EXPECT_EQ(rig.net->queue_pairs(), MqRig::kPairs);
    std::uint8_t cfg[10];
    rig.net->config_read(0, cfg);
    EXPECT_EQ(cfg[8] | (cfg[9] << 8), MqRig::kPairs) << "max_virtqueue_pairs";
    EXPECT_FALSE(net_features_consistent(kNetFMq)) << "MQ needs the control queue";
    EXPECT_TRUE(net_features_consistent(kNetFMq | kNetFCtrlVq));
    NetRig one;
    EXPECT_FALSE(one.net->offered_features() & (kNetFMq | kNetFCtrlVq));
}

TEST(VirtioNetMultiQueue, TheDriverSetsHowManyPairsItUses) {
    MqRig rig;
    ASSERT_TRUE(rig.activate(kMq));
    EXPECT_EQ(rig.net->pairs_in_use(), 1) << "the first pair only, until the driver says";
    EXPECT_TRUE(rig.watcher.watching(rig.taps[0]));
    EXPECT_FALSE(rig.watcher.watching(rig.taps[1]));
    EXPECT_EQ(rig.command(MqRig::set_pairs(2)), kNetOk);
    EXPECT_EQ(rig.net->pairs_in_use(), 2);
    EXPECT_TRUE(rig.watcher.watching(rig.taps[1]));
    EXPECT_GE(rig.notified[MqRig::kControl], 1) << "the driver spins on the ack";
    // Out of range, unknown, short and long commands: refused, the pairs as they were.
    EXPECT_EQ(rig.command(MqRig::set_pairs(0)), kNetErr);
    EXPECT_EQ(rig.command(MqRig::set_pairs(3)), kNetErr);
    EXPECT_EQ(rig.command({kNetCtrlMq, 7, 1, 0}), kNetErr);
    EXPECT_EQ(rig.command({0, 0, 1}), kNetErr) << "rx mode: not offered";
    EXPECT_EQ(rig.command({kNetCtrlMq}), kNetErr);
    EXPECT_EQ(rig.command(std::vector<std::uint8_t>(200, 4)), kNetErr);
    EXPECT_EQ(rig.net->pairs_in_use(), 2);
    EXPECT_EQ(rig.net->counters().commands_refused, 6u);
    EXPECT_EQ(rig.command(MqRig::set_pairs(1)), kNetOk);
    EXPECT_FALSE(rig.watcher.watching(rig.taps[1]));
    EXPECT_TRUE(rig.resets.empty());
    EXPECT_NE(rig.net->stats().find("queue pairs 2 (1 in use)"), std::string::npos)
        << rig.net->stats();
}

TEST(VirtioNetMultiQueue, EachPairMovesFramesOnItsOwnTapQueue) {
    MqRig rig;
    ASSERT_TRUE(rig.activate(kMq));
    ASSERT_EQ(rig.command(MqRig::set_pairs(2)), kNetOk);
    for (std::uint16_t k = 0; k < MqRig::kPairs; ++k) {
        DriverRing& rx = rig.rings[2 * k];
        const std::uint64_t buf = rig.alloc(2048);
        rx.desc(0, buf, 2048, kDescWrite);
        rx.offer(0);
        rig.kick(static_cast<std::uint16_t>(2 * k));
        auto frame = frame_with_header(60, static_cast<std::uint8_t>(0x10 + k));
        ASSERT_EQ(::send(rig.peers[k].get(), frame.data(), frame.size(), 0),
                  static_cast<ssize_t>(frame.size()));
        rig.watcher.fire(rig.taps[k]);
        ASSERT_EQ(rx.used_idx(), 1) << "pair " << k;
        std::vector<std::uint8_t> got(frame.size());
        ASSERT_TRUE(rig.mem.read(buf, got));
        EXPECT_EQ(got[kNetHdrSize], 0x10 + k);
        // And a frame sent on the pair's transmit queue reaches its own tap queue only.
        DriverRing& tx = rig.rings[2 * k + 1];
        auto out = frame_with_header(40, static_cast<std::uint8_t>(0x20 + k));
        const std::uint64_t at = rig.alloc(out.size());
        ASSERT_TRUE(rig.mem.write(at, out));
        tx.desc(0, at, static_cast<std::uint32_t>(out.size()));
        tx.offer(0);
        rig.kick(static_cast<std::uint16_t>(2 * k + 1));
        std::vector<std::uint8_t> host(256);
        const ssize_t n = ::recv(rig.peers[k].get(), host.data(), host.size(), MSG_DONTWAIT);
        ASSERT_EQ(n, static_cast<ssize_t>(out.size())) << "pair " << k;
        EXPECT_EQ(host[kNetHdrSize], 0x20 + k);
        const ssize_t other =
            ::recv(rig.peers[1 - k].get(), host.data(), host.size(), MSG_DONTWAIT);
        EXPECT_LT(other, 0) << "pair " << k << "'s frame on the other queue";
    }
    EXPECT_EQ(rig.net->counters().rx_frames, 2u);
    EXPECT_EQ(rig.net->counters().tx_frames, 2u);
    const std::string stats = rig.net->stats();
    EXPECT_NE(stats.find("rx1 queue: kicks 1"), std::string::npos) << stats;
    EXPECT_NE(stats.find("control queue:"), std::string::npos) << stats;
}

// A pair the driver does not use takes nothing from its tap queue (a real tap's is detached).
TEST(VirtioNetMultiQueue, AnUnusedPairReceivesNothing) {
    MqRig rig;
    ASSERT_TRUE(rig.activate(kMq));
    DriverRing& rx1 = rig.rings[2];
    rx1.desc(0, rig.alloc(2048), 2048, kDescWrite);
    rx1.offer(0);
    rig.kick(2);
    auto frame = frame_with_header(60);
    ASSERT_EQ(::send(rig.peers[1].get(), frame.data(), frame.size(), 0),
              static_cast<ssize_t>(frame.size()));
    EXPECT_FALSE(rig.watcher.watching(rig.taps[1]));
    rig.kick(2);
    EXPECT_EQ(rx1.used_idx(), 0);
    EXPECT_TRUE(rig.resets.empty());
}

// A pair whose rings the driver left disabled is never used: asking for it is refused, and a
// receive ring that is not enabled leaves its tap unwatched (the readable tap would otherwise
// wake the event loop for ever, as nothing serves it).
TEST(VirtioNetMultiQueue, PairsWithoutEnabledRingsAreNotUsed) {
    MqRig rig;
    ASSERT_TRUE(rig.activate(kMq, {3}));  // pair 1's transmit ring
    EXPECT_EQ(rig.command(MqRig::set_pairs(2)), kNetErr);
    EXPECT_EQ(rig.net->pairs_in_use(), 1);
    EXPECT_FALSE(rig.watcher.watching(rig.taps[1]));
    rig.net->reset();
    ASSERT_TRUE(rig.activate(kMq, {0}));  // pair 0's receive ring
    EXPECT_FALSE(rig.watcher.watching(rig.taps[0]));
    EXPECT_EQ(rig.command(MqRig::set_pairs(2)), kNetErr);
    rig.net->reset();
    ASSERT_TRUE(rig.activate(kMq));
    EXPECT_TRUE(rig.watcher.watching(rig.taps[0]));
    EXPECT_EQ(rig.command(MqRig::set_pairs(2)), kNetOk);
    rig.net->reset();
    EXPECT_EQ(rig.net->pairs_in_use(), 1) << "a reset goes back to one pair";
    EXPECT_EQ(rig.watcher.count(), 0u);
}

// Without MQ the control queue is queue 2 (5.1.2) and the other pairs do not exist.
TEST(VirtioNetMultiQueue, WithoutMqTheControlQueueIsQueueTwo) {
    MqRig rig;
    ASSERT_TRUE(rig.activate(kModern | kNetFCtrlVq));
    EXPECT_EQ(rig.command(MqRig::set_pairs(2), 2), kNetErr) << "MQ was not negotiated";
    EXPECT_EQ(rig.net->pairs_in_use(), 1);
    EXPECT_EQ(rig.command(MqRig::set_pairs(1)), -1) << "queue 4 is not the control queue now";
}

TEST(VirtioNetMultiQueue, AControlChainWithoutRoomForTheAckNeedsReset) {
    MqRig rig;
    ASSERT_TRUE(rig.activate(kMq));
    DriverRing& c = rig.rings[MqRig::kControl];
    c.desc(0, rig.alloc(4), 4);
    c.offer(0);
    rig.kick(MqRig::kControl);
    ASSERT_EQ(rig.resets.size(), 1u);
    EXPECT_NE(rig.resets[0].find("no room for the ack"), std::string::npos) << rig.resets[0];
}

TEST(VirtioNetMultiQueue, SnapshotsOfAMultiQueueDeviceAreRefused) {
    MqRig rig;
    ASSERT_TRUE(rig.activate(kMq));
    auto s = rig.net->save_state();
    ASSERT_FALSE(s);
    EXPECT_NE(s.error().message.find("multi-queue"), std::string::npos) << s.error().message;
}

TEST(NetDeviceSpec, RunnerKeysAreSplitFromTheNetsetupSpec) {
    auto s = parse_net_device_spec("bridge=br0,vhost=off,vlan=10,addr=169.254.10.2/24");
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->netsetup, "bridge=br0,vlan=10");
    EXPECT_EQ(s->vhost, VhostMode::off);
    EXPECT_EQ(s->address, "169.254.10.2/24");
    auto d = parse_net_device_spec("");
    ASSERT_TRUE(d) << d.error().message;
    EXPECT_EQ(d->vhost, VhostMode::automatic);
    EXPECT_TRUE(d->address.empty());
    EXPECT_EQ(parse_net_device_spec("vhost=on")->vhost, VhostMode::on);
}

TEST(NetDeviceSpec, BadValuesNameTheirKey) {
    for (const char* bad :
         {"vhost=maybe", "vhost=on,vhost=off", "addr=169.254.1.2", "addr=169.254.1.2/33",
          "addr=169.254.1/16", "addr=x/8", "addr=1.2.3.4/8,addr=1.2.3.5/8", "vlan=5000,bridge=b",
          "colour=blue", "queues=17", "queues=0"}) {
        auto r = parse_net_device_spec(bad);
        EXPECT_FALSE(r) << bad;
        if (!r) {
            EXPECT_NE(r.error().message.find("--net"), std::string::npos) << r.error().message;
        }
    }
}

TEST(NetDeviceSpec, QueuesAskForThatManyPairs) {
    auto s = parse_net_device_spec("queues=4,vhost=on");
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->netsetup, "queues=4");
    auto many = parse_net_device_spec("queues=17");
    ASSERT_FALSE(many);
    EXPECT_NE(many.error().message.find("at most 16"), std::string::npos) << many.error().message;
}

// queue_size=N sizes every virtqueue (a runner key: netsetup never sees it); the device
// offers that size, and refuses one that is not a power of two in range.
TEST(NetDeviceSpec, QueueSizeIsAPowerOfTwoTheDeviceOffers) {
    auto s = parse_net_device_spec("bridge=br0,queue_size=1024");
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->netsetup, "bridge=br0");
    EXPECT_EQ(s->queue_size, 1024);
    EXPECT_EQ(parse_net_device_spec("bridge=br0")->queue_size, 0) << "the default";
    EXPECT_TRUE(parse_net_device_spec("tap=tap0,queue_size=512"));
    EXPECT_TRUE(parse_net_device_spec("netns=/run/netns/x,queue_size=64"));
    for (const char* bad :
         {"queue_size=100", "queue_size=2048", "queue_size=32", "queue_size=", "queue_size=-256",
          "queue_size=256k", "queue_size=256,queue_size=256"}) {
        auto r = parse_net_device_spec(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_NE(r.error().message.find("--net: queue_size: "), std::string::npos)
            << r.error().message;
    }
    for (const std::uint16_t size : {64, 1024, 100, 2048}) {
        int sv[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0);
        ::close(sv[1]);
        NetBackend b{UniqueFd(sv[0]), kMac, std::nullopt, std::nullopt, false};
        b.queue_size = size;
        auto net = Net::create(std::move(b));
        const bool valid = size == 64 || size == 1024;
        ASSERT_EQ(static_cast<bool>(net), valid) << size;
        if (valid) {
            EXPECT_EQ((*net)->queue_max_size(), size);
        } else {
            EXPECT_NE(net.error().message.find("queue size"), std::string::npos)
                << net.error().message;
        }
    }
}

TEST(NetDeviceSpec, AnExistingTapTakesTheGuestSideKeys) {
    auto s = parse_net_device_spec("tap=tap0,mac=02:11:22:33:44:55,vhost=off,addr=169.254.10.2/24");
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_TRUE(s->existing_tap);
    EXPECT_EQ(s->netsetup, "tap=tap0,mac=02:11:22:33:44:55");
    EXPECT_EQ(s->vhost, VhostMode::off);
    EXPECT_EQ(s->address, "169.254.10.2/24");
    auto bare = parse_net_device_spec("tap=tap0");
    ASSERT_TRUE(bare) << bare.error().message;
    EXPECT_TRUE(bare->existing_tap);
    EXPECT_FALSE(parse_net_device_spec("bridge=br0")->existing_tap);
    EXPECT_FALSE(parse_net_device_spec("")->existing_tap);
}

// Everything that would make or change the host side is refused, naming the key.
TEST(NetDeviceSpec, AnExistingTapRefusesHostSideKeysByName) {
    for (const std::string item :
         {"id=sb1", "bridge=br0", "vlan=10", "trunk=10", "uplink=eth0", "isolated=yes", "mtu=9000",
          "queues=1", "filter=off", "owner=0", "colour=blue"}) {
        const std::string text = "tap=tap0," + item;
        auto r = parse_net_device_spec(text);
        ASSERT_FALSE(r) << text;
        const std::string key = item.substr(0, item.find('='));
        EXPECT_NE(r.error().message.find("--net: " + key + ": "), std::string::npos)
            << r.error().message;
    }
}

// netns=PATH: the namespace's interface is the guest's, so only the datapath and the queue
// count may be chosen.
TEST(NetDeviceSpec, ANetworkNamespaceTakesOnlyTheDatapathAndQueues) {
    auto s = parse_net_device_spec("netns=/var/run/netns/cni-1,vhost=on,queues=2");
    ASSERT_TRUE(s) << s.error().message;
    EXPECT_EQ(s->netns, "/var/run/netns/cni-1");
    EXPECT_EQ(s->netsetup, "queues=2");
    EXPECT_EQ(s->vhost, VhostMode::on);
    for (const std::string item : {"mac=02:11:22:33:44:55", "bridge=br0", "tap=tap0", "vlan=10",
                                   "filter=off", "addr=10.0.0.2/24"}) {
        const std::string text = "netns=/run/netns/x," + item;
        auto r = parse_net_device_spec(text);
        ASSERT_FALSE(r) << text;
        const std::string key = item.substr(0, item.find('='));
        EXPECT_NE(r.error().message.find("--net: " + key + ": "), std::string::npos)
            << r.error().message;
    }
    for (const char* bad : {"netns=", "netns=run/netns/x", "netns=/a,netns=/b"})
        EXPECT_FALSE(parse_net_device_spec(bad)) << bad;
}

TEST(NetDeviceSpec, AnExistingTapNeedsAnInterfaceName) {
    for (const char* bad : {"tap=", "tap=1234567890123456", "tap=a/b", "tap=.", "tap=..", "tap=a b",
                            "tap=tap%d", "tap=a,tap=b"}) {
        auto r = parse_net_device_spec(bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_NE(r.error().message.find("--net: tap: "), std::string::npos) << r.error().message;
    }
    auto mac = parse_net_device_spec("tap=tap0,mac=01:00:5e:00:00:01");
    ASSERT_FALSE(mac);
    EXPECT_NE(mac.error().message.find("--net: mac: "), std::string::npos) << mac.error().message;
}

}  // namespace
}  // namespace stockade::virtio
