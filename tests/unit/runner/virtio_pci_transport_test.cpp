// The virtio-pci 1.x transport driven through BAR0 and configuration space the way a
// driver does it, and the way a broken or hostile one might: feature negotiation, the
// status protocol, queue configuration, reset, notifications, ISR, device configuration,
// MSI-X and the PCI configuration access window.
#include <gtest/gtest.h>

#include <poll.h>

#include <cstring>
#include <functional>
#include <map>
#include <set>

#include "runner/pci/pci_bus.hpp"
#include "runner/virtio/pci_transport.hpp"
#include "runner/virtio/queue_device.hpp"
#include "tests/support/log_capture.hpp"
#include "tests/unit/runner/virtio_test_support.hpp"

namespace stockade::virtio {
namespace {

using fake::copy_guest_memory;
using fake::drain_eventfd;
using fake::FakeIoEvents;
using fake::FakeRouter;
using fake::FakeWatcher;
using fake::GuestRing;

// virtio_pci_common_cfg (virtio 1.2, 4.1.4.3).
enum : std::uint64_t {
    kDeviceFeatureSelect = 0x00,
    kDeviceFeature = 0x04,
    kDriverFeatureSelect = 0x08,
    kDriverFeature = 0x0c,
    kMsixConfig = 0x10,
    kNumQueues = 0x12,
    kDeviceStatus = 0x14,
    kConfigGeneration = 0x15,
    kQueueSelect = 0x16,
    kQueueSize = 0x18,
    kQueueMsixVector = 0x1a,
    kQueueEnable = 0x1c,
    kQueueNotifyOff = 0x1e,
    kQueueDesc = 0x20,
    kQueueDriver = 0x28,
    kQueueDevice = 0x30,
};

constexpr std::uint64_t kDeviceBit = 1ull << 5;  // a device-specific feature the fake offers
constexpr std::uint16_t kQueues = 2;

// A device that serves chains by returning them with their writable length, and checks
// that the transport never asks for configuration bytes outside its 4 KiB window.
class FakeDevice : public QueueDevice {
  public:
    explicit FakeDevice(std::uint32_t type, std::uint32_t pci_class = 0xff0000)
        : type_(type), pci_class_(pci_class) {
        for (std::size_t i = 0; i < sizeof config; ++i)
            config[i] = static_cast<std::uint8_t>(0xc0 + i);
    }
    std::uint32_t device_type() const override { return type_; }
    std::uint32_t pci_class() const override { return pci_class_; }
    std::string name() const override { return "fake"; }
    std::uint64_t offered_features() const override { return kTransportFeatures | kDeviceBit; }
    std::uint16_t queue_count() const override { return kQueues; }
    std::uint16_t queue_max_size() const override { return 64; }
    void config_read(std::uint64_t offset, std::span<std::uint8_t> out) override {
        EXPECT_LE(offset + out.size(), 0x1000u) << "read past the device configuration window";
        for (std::size_t i = 0; i < out.size(); ++i)
            out[i] = offset + i < sizeof config ? config[offset + i] : 0;
    }
    void config_write(std::uint64_t offset, std::span<const std::uint8_t> in) override {
        EXPECT_LE(offset + in.size(), 0x1000u) << "write past the device configuration window";
        for (std::size_t i = 0; i < in.size(); ++i)
            if (offset + i < sizeof config) config[offset + i] = in[i];
    }

    std::uint8_t config[32];
    int activations = 0, resets = 0, served = 0;
    std::uint64_t features_seen = 0;

  protected:
    Result<> serve(std::uint16_t, SplitQueue& queue, const GuestMemory&) override {
        for (;;) {
            auto chain = STOCKADE_TRY(queue.pop());
            if (!chain) return {};
            ++served;
            STOCKADE_TRY_VOID(
                queue.push_used(chain->head, static_cast<std::uint32_t>(chain->writable_bytes())));
        }
    }
    void on_activate(const ActivateContext& ctx) override {
        ++activations;
        features_seen = ctx.features;
    }
    void on_reset() override { ++resets; }

  private:
    std::uint32_t type_;
    std::uint32_t pci_class_;
};

struct Rig {
    GuestRing ring{64};  // guest RAM, with one well-formed ring for queue 0
    FakeRouter router;
    FakeIoEvents ioevents;
    FakeWatcher watcher;
    FakeDevice* dev = nullptr;
    std::unique_ptr<PciTransport> t;

    explicit Rig(std::uint32_t type = kTypeRng, std::uint32_t pci_class = 0xff0000) {
        auto d = std::make_unique<FakeDevice>(type, pci_class);
        dev = d.get();
        auto r = PciTransport::create(std::move(d), ioevents, router, ring.mem(), watcher);
        EXPECT_TRUE(r) << r.error().message;
        t = std::move(r).value();
    }

    template <typename T>
    T read(std::uint64_t off) {
        T v{};
        t->bar_read(0, off, std::span(reinterpret_cast<std::uint8_t*>(&v), sizeof v));
        return v;
    }
    template <typename T>
    void write(std::uint64_t off, T v) {
        t->bar_write(0, off, std::span(reinterpret_cast<const std::uint8_t*>(&v), sizeof v));
    }
    // 64-bit fields as Linux writes them: low dword, then high dword.
    void write64(std::uint64_t off, std::uint64_t v) {
        write<std::uint32_t>(off, static_cast<std::uint32_t>(v));
        write<std::uint32_t>(off + 4, static_cast<std::uint32_t>(v >> 32));
    }
    std::uint64_t read64(std::uint64_t off) {
        return read<std::uint32_t>(off) | std::uint64_t{read<std::uint32_t>(off + 4)} << 32;
    }
    std::uint8_t status() { return read<std::uint8_t>(kDeviceStatus); }
    void set_status(std::uint8_t s) { write<std::uint8_t>(kDeviceStatus, s); }

    std::uint64_t device_features() {
        write<std::uint32_t>(kDeviceFeatureSelect, 0);
        std::uint64_t f = read<std::uint32_t>(kDeviceFeature);
        write<std::uint32_t>(kDeviceFeatureSelect, 1);
        return f | std::uint64_t{read<std::uint32_t>(kDeviceFeature)} << 32;
    }
    void write_driver_features(std::uint64_t f) {
        write<std::uint32_t>(kDriverFeatureSelect, 0);
        write<std::uint32_t>(kDriverFeature, static_cast<std::uint32_t>(f));
        write<std::uint32_t>(kDriverFeatureSelect, 1);
        write<std::uint32_t>(kDriverFeature, static_cast<std::uint32_t>(f >> 32));
    }
    std::uint64_t read_driver_features() {
        write<std::uint32_t>(kDriverFeatureSelect, 0);
        std::uint64_t f = read<std::uint32_t>(kDriverFeature);
        write<std::uint32_t>(kDriverFeatureSelect, 1);
        return f | std::uint64_t{read<std::uint32_t>(kDriverFeature)} << 32;
    }
    // The driver's side of 3.1.1 up to FEATURES_OK; true when the device accepted.
    bool negotiate(std::uint64_t features) {
        set_status(kStatusAcknowledge);
        set_status(kStatusAcknowledge | kStatusDriver);
        write_driver_features(features);
        set_status(kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
        return (status() & kStatusFeaturesOk) != 0;
    }
    void setup_queue(std::uint16_t q, const QueueSetup& s, std::uint16_t vector) {
        write<std::uint16_t>(kQueueSelect, q);
        write<std::uint16_t>(kQueueSize, s.size);
        write<std::uint16_t>(kQueueMsixVector, vector);
        write64(kQueueDesc, s.desc);
        write64(kQueueDriver, s.driver);
        write64(kQueueDevice, s.device);
        write<std::uint16_t>(kQueueEnable, 1);
    }
    void driver_ok() { set_status(status() | kStatusDriverOk); }

    // Configuration space, as the PCI bus forwards it.
    template <typename T>
    T cfg(std::size_t off) {
        T v{};
        t->config_read(off, std::span(reinterpret_cast<std::uint8_t*>(&v), sizeof v));
        return v;
    }
    template <typename T>
    void cfg_write(std::size_t off, T v) {
        t->config_write(off, std::span(reinterpret_cast<const std::uint8_t*>(&v), sizeof v));
    }
    // Every capability as (offset, id), walking the list from the header.
    std::vector<std::pair<std::size_t, std::uint8_t>> capabilities() {
        std::vector<std::pair<std::size_t, std::uint8_t>> out;
        std::set<std::size_t> seen;
        for (std::size_t cap = cfg<std::uint8_t>(pci::kOffCapPtr); cap != 0;
             cap = cfg<std::uint8_t>(cap + 1)) {
            EXPECT_TRUE(cap >= 0x40 && cap <= 0xfc && cap % 4 == 0) << "bad pointer " << cap;
            if (!seen.insert(cap).second || cap < 0x40 || cap > 0xfc) {
                ADD_FAILURE() << "capability list loops or leaves config space at " << cap;
                break;
            }
            out.push_back({cap, cfg<std::uint8_t>(cap)});
        }
        return out;
    }
    std::size_t virtio_cap(std::uint8_t type) {
        for (auto [off, id] : capabilities())
            if (id == pci::kCapVendor && cfg<std::uint8_t>(off + 3) == type) return off;
        ADD_FAILURE() << "no virtio capability of type " << int{type};
        return 0;
    }
    std::size_t msix_cap() {
        for (auto [off, id] : capabilities())
            if (id == pci::kCapMsix) return off;
        ADD_FAILURE() << "no MSI-X capability";
        return 0;
    }
    // Enables MSI-X and programs + unmasks vector `v` (as the PCI core and irq layer do).
    void enable_msix_vector(std::uint16_t v) {
        const std::size_t cap = msix_cap();
        cfg_write<std::uint16_t>(cap + 2, pci::kMsixEnable);
        write<std::uint64_t>(kMsixTableOffset + 16ull * v, 0xfee0'0000);
        write<std::uint32_t>(kMsixTableOffset + 16ull * v + 8, 0x40 + v);
        write<std::uint32_t>(kMsixTableOffset + 16ull * v + 12, 0);
    }
};

constexpr std::uint64_t kGoodFeatures = kFeatureVersion1 | kFeatureEventIdx | kDeviceBit;

TEST(VirtioPciTransport, IdentifiesAsAModernVirtioDevice) {
    for (auto [type, cls] : {std::pair{kTypeNet, 0x020000u}, std::pair{kTypeBlock, 0x010000u},
                             std::pair{kTypeRng, 0xff0000u}}) {
        Rig r(type, cls);  // the class is the device's to say
        EXPECT_EQ(r.cfg<std::uint16_t>(0x00), 0x1af4);
        EXPECT_EQ(r.cfg<std::uint16_t>(0x02), 0x1040 + type);
        EXPECT_GE(r.cfg<std::uint8_t>(0x08), 1) << "modern devices have revision >= 1";
        EXPECT_EQ(r.cfg<std::uint32_t>(0x08) >> 8, cls);
        EXPECT_EQ(r.cfg<std::uint16_t>(0x2c), 0x1af4);
        EXPECT_GE(r.cfg<std::uint16_t>(0x2e), 0x40) << "modern subsystem ids start at 0x40";
        const auto bars = r.t->bar_specs();
        ASSERT_EQ(bars.size(), 1u);
        EXPECT_TRUE(bars[0].is_64bit);
        EXPECT_EQ(bars[0].size, kBar0Size);
    }
}

TEST(VirtioPciTransport, CapabilitiesDescribeEveryStructureInsideBar0) {
    Rig r;
    std::map<std::uint8_t, int> types;
    for (auto [off, id] : r.capabilities()) {
        if (id == pci::kCapMsix) {
            const auto ctl = r.cfg<std::uint16_t>(off + 2);
            EXPECT_EQ((ctl & 0x7ff) + 1, kQueues + 1) << "a vector per queue and one for config";
            EXPECT_EQ(r.cfg<std::uint32_t>(off + 4), kMsixTableOffset) << "BAR 0";
            EXPECT_EQ(r.cfg<std::uint32_t>(off + 8), kMsixPbaOffset) << "BAR 0";
            continue;
        }
        ASSERT_EQ(id, pci::kCapVendor);
        const std::uint8_t type = r.cfg<std::uint8_t>(off + 3);
        ++types[type];
        EXPECT_GE(r.cfg<std::uint8_t>(off + 2), 16) << "cap_len";
        if (type == 5) continue;  // PCI_CFG: its window fields are the driver's
        EXPECT_EQ(r.cfg<std::uint8_t>(off + 4), 0) << "BAR 0";
        const std::uint32_t offset = r.cfg<std::uint32_t>(off + 8),
                            length = r.cfg<std::uint32_t>(off + 12);
        EXPECT_GT(length, 0u);
        EXPECT_LE(std::uint64_t{offset} + length, kBar0Size) << "type " << int{type};
        if (type == 1) {
            EXPECT_GE(length, 0x38u) << "the whole common configuration";
        }
        if (type == 2) {
            EXPECT_EQ(r.cfg<std::uint8_t>(off + 2), 20);
            EXPECT_EQ(r.cfg<std::uint32_t>(off + 16), kNotifyMultiplier);
            EXPECT_GE(length, kNotifyMultiplier * kQueues);
        }
    }
    for (std::uint8_t type = 1; type <= 5; ++type)
        EXPECT_EQ(types[type], 1) << "virtio capability type " << int{type};
    EXPECT_TRUE(r.cfg<std::uint16_t>(pci::kOffStatus) & pci::kStatusCapList);
}

TEST(VirtioPciTransport, NegotiatesOfferedFeatures) {
    Rig r;
    EXPECT_EQ(r.device_features(), kTransportFeatures | kDeviceBit);
    r.write<std::uint32_t>(kDeviceFeatureSelect, 2);
    EXPECT_EQ(r.read<std::uint32_t>(kDeviceFeature), 0u) << "no features beyond bit 63";
    EXPECT_EQ(r.read<std::uint16_t>(kNumQueues), kQueues);
    ASSERT_TRUE(r.negotiate(kGoodFeatures));
    EXPECT_EQ(r.read_driver_features(), kGoodFeatures);
    // Once FEATURES_OK is set the driver's features are fixed.
    r.write_driver_features(kGoodFeatures | kFeatureIndirectDesc);
    EXPECT_EQ(r.read_driver_features(), kGoodFeatures);
    r.write<std::uint32_t>(kDriverFeatureSelect, 7);
    r.write<std::uint32_t>(kDriverFeature, 0xffff'ffff);
    EXPECT_EQ(r.read<std::uint32_t>(kDriverFeature), 0u);
    r.setup_queue(0, r.ring.setup(), pci::kNoVector);
    r.driver_ok();
    EXPECT_EQ(r.dev->activations, 1);
    EXPECT_EQ(r.dev->features_seen, kGoodFeatures);
}

TEST(VirtioPciTransport, RefusesFeaturesThatWereNotOffered) {
    for (std::uint64_t extra : {1ull << 0, 1ull << 40, 1ull << 63, 1ull << 31}) {
        Rig r;
        EXPECT_FALSE(r.negotiate(kGoodFeatures | extra)) << std::hex << extra;
        EXPECT_TRUE(r.status() & kStatusDriver) << "the rest of the status stays";
        r.setup_queue(0, r.ring.setup(), pci::kNoVector);
        r.set_status(r.status() | kStatusFeaturesOk | kStatusDriverOk);
        EXPECT_FALSE(r.status() & kStatusFeaturesOk);
        EXPECT_EQ(r.dev->activations, 0) << "never started with features it does not have";
        EXPECT_EQ(r.watcher.count(), 0u);
    }
}

TEST(VirtioPciTransport, RefusesADriverWithoutVersion1) {
    Rig r;
    EXPECT_FALSE(r.negotiate(kFeatureEventIdx | kDeviceBit));
    EXPECT_FALSE(r.negotiate(0));
    // A driver that retries with VERSION_1 after a reset is accepted.
    r.set_status(0);
    EXPECT_TRUE(r.negotiate(kFeatureVersion1));
}

TEST(VirtioPciTransport, StatusOnlyGainsBits) {
    Rig r;
    r.set_status(kStatusAcknowledge);
    r.set_status(kStatusDriver);  // drops ACKNOWLEDGE: ignored
    EXPECT_EQ(r.status(), kStatusAcknowledge);
    r.set_status(kStatusAcknowledge | kStatusDriver);
    EXPECT_EQ(r.status(), kStatusAcknowledge | kStatusDriver);
    r.set_status(kStatusAcknowledge);
    EXPECT_EQ(r.status(), kStatusAcknowledge | kStatusDriver);
    r.set_status(kStatusAcknowledge | kStatusDriver | kStatusFailed);
    EXPECT_EQ(r.status(), kStatusAcknowledge | kStatusDriver | kStatusFailed);
}

TEST(VirtioPciTransport, ResetClearsEverything) {
    Rig r;
    ASSERT_TRUE(r.negotiate(kGoodFeatures));
    r.write<std::uint16_t>(kMsixConfig, 0);
    r.setup_queue(0, r.ring.setup(), 1);
    r.setup_queue(1, r.ring.setup(), 2);  // same rings: fine until used
    r.write<std::uint16_t>(kQueueEnable, 0);
    r.driver_ok();
    ASSERT_EQ(r.dev->activations, 1);
    ASSERT_EQ(r.watcher.count(), 1u);
    r.write<std::uint32_t>(kDeviceFeatureSelect, 1);

    r.set_status(0);
    EXPECT_EQ(r.status(), 0);
    EXPECT_EQ(r.dev->resets, 1);
    EXPECT_EQ(r.watcher.count(), 0u) << "no kick reaches the device after a reset";
    EXPECT_EQ(r.read_driver_features(), 0u);
    EXPECT_EQ(r.read<std::uint32_t>(kDeviceFeatureSelect), 0u);
    EXPECT_EQ(r.read<std::uint16_t>(kMsixConfig), pci::kNoVector);
    EXPECT_EQ(r.read<std::uint16_t>(kQueueSelect), 0);
    for (std::uint16_t q = 0; q < kQueues; ++q) {
        r.write<std::uint16_t>(kQueueSelect, q);
        EXPECT_EQ(r.read<std::uint16_t>(kQueueSize), 64) << "back to the maximum";
        EXPECT_EQ(r.read<std::uint16_t>(kQueueMsixVector), pci::kNoVector);
        EXPECT_EQ(r.read<std::uint16_t>(kQueueEnable), 0);
        EXPECT_EQ(r.read64(kQueueDesc), 0u);
        EXPECT_EQ(r.read64(kQueueDriver), 0u);
        EXPECT_EQ(r.read64(kQueueDevice), 0u);
    }
    EXPECT_EQ(r.read<std::uint8_t>(kIsrOffset), 0);
    // And the device can be brought up again.
    ASSERT_TRUE(r.negotiate(kGoodFeatures));
    r.setup_queue(0, r.ring.setup(), pci::kNoVector);
    r.driver_ok();
    EXPECT_EQ(r.dev->activations, 2);
    EXPECT_FALSE(r.status() & kStatusNeedsReset);
}

TEST(VirtioPciTransport, QueueFieldsAreFrozenOnceTheDriverIsOk) {
    Rig r;
    ASSERT_TRUE(r.negotiate(kGoodFeatures));
    const QueueSetup good = r.ring.setup();
    r.setup_queue(0, good, 1);
    r.driver_ok();
    ASSERT_EQ(r.dev->activations, 1);
    r.write<std::uint16_t>(kQueueSelect, 0);
    r.write<std::uint16_t>(kQueueSize, 2);
    r.write<std::uint16_t>(kQueueMsixVector, 0);
    r.write64(kQueueDesc, 0x1234'0000);
    r.write64(kQueueDriver, 0x5678'0000);
    r.write64(kQueueDevice, ~0ull);
    r.write<std::uint16_t>(kQueueEnable, 0);
    EXPECT_EQ(r.read<std::uint16_t>(kQueueSize), good.size);
    EXPECT_EQ(r.read<std::uint16_t>(kQueueMsixVector), 1);
    EXPECT_EQ(r.read64(kQueueDesc), good.desc);
    EXPECT_EQ(r.read64(kQueueDriver), good.driver);
    EXPECT_EQ(r.read64(kQueueDevice), good.device);
    EXPECT_EQ(r.read<std::uint16_t>(kQueueEnable), 1);
    EXPECT_EQ(r.read<std::uint16_t>(kQueueNotifyOff), 0);
}

TEST(VirtioPciTransport, AnOutOfRangeQueueSelectReadsZeroAndTakesNoWrites) {
    Rig r;
    for (std::uint16_t sel : {kQueues, std::uint16_t{100}, std::uint16_t{0xffff}}) {
        r.write<std::uint16_t>(kQueueSelect, sel);
        EXPECT_EQ(r.read<std::uint16_t>(kQueueSelect), sel);
        r.write<std::uint16_t>(kQueueSize, 8);
        r.write64(kQueueDesc, 0x1000);
        r.write<std::uint16_t>(kQueueEnable, 1);
        EXPECT_EQ(r.read<std::uint16_t>(kQueueSize), 0) << "a queue that does not exist";
        EXPECT_EQ(r.read<std::uint16_t>(kQueueEnable), 0);
        EXPECT_EQ(r.read64(kQueueDesc), 0u);
    }
    for (std::uint16_t q = 0; q < kQueues; ++q) {
        r.write<std::uint16_t>(kQueueSelect, q);
        EXPECT_EQ(r.read<std::uint16_t>(kQueueSize), 64);
        EXPECT_EQ(r.read64(kQueueDesc), 0u);
        EXPECT_EQ(r.read<std::uint16_t>(kQueueEnable), 0);
    }
}

TEST(VirtioPciTransport, VectorsOutOfRangeReadBackAsNoVector) {
    Rig r;
    const std::uint16_t vectors = kQueues + 1;
    r.write<std::uint16_t>(kMsixConfig, vectors - 1);
    EXPECT_EQ(r.read<std::uint16_t>(kMsixConfig), vectors - 1);
    for (std::uint16_t bad : {vectors, std::uint16_t{0x800}, std::uint16_t{0xfffe}}) {
        r.write<std::uint16_t>(kMsixConfig, bad);
        EXPECT_EQ(r.read<std::uint16_t>(kMsixConfig), pci::kNoVector) << bad;
        r.write<std::uint16_t>(kQueueSelect, 1);
        r.write<std::uint16_t>(kQueueMsixVector, bad);
        EXPECT_EQ(r.read<std::uint16_t>(kQueueMsixVector), pci::kNoVector) << bad;
    }
    r.write<std::uint16_t>(kQueueMsixVector, 0);
    EXPECT_EQ(r.read<std::uint16_t>(kQueueMsixVector), 0);
}

TEST(VirtioPciTransport, ABadQueueAtDriverOkMeansNeedsReset) {
    struct Case {
        const char* what;
        std::function<void(QueueSetup&)> spoil;
    };
    const Case cases[] = {
        {"size 3", [](QueueSetup& s) { s.size = 3; }},
        {"size 0", [](QueueSetup& s) { s.size = 0; }},
        {"bigger than offered", [](QueueSetup& s) { s.size = 128; }},
        {"desc outside RAM", [](QueueSetup& s) { s.desc = 1ull << 40; }},
        {"avail misaligned", [](QueueSetup& s) { s.driver += 1; }},
        {"used wrapping", [](QueueSetup& s) { s.device = ~0ull & ~3ull; }},
    };
    for (const Case& c : cases) {
        Rig r;
        r.enable_msix_vector(0);
        ASSERT_TRUE(r.negotiate(kGoodFeatures));
        r.write<std::uint16_t>(kMsixConfig, 0);
        QueueSetup s = r.ring.setup();
        c.spoil(s);
        r.setup_queue(0, s, pci::kNoVector);
        r.driver_ok();
        EXPECT_TRUE(r.status() & kStatusNeedsReset) << c.what;
        EXPECT_EQ(r.dev->activations, 0) << c.what;
        EXPECT_EQ(r.watcher.count(), 0u) << c.what;
        ASSERT_NE(r.router.attached_fd(0), -1);
        EXPECT_EQ(drain_eventfd(r.router.attached_fd(0)), 1u)
            << c.what << ": the configuration vector tells the driver";
        EXPECT_EQ(r.read<std::uint8_t>(kIsrOffset), 2) << "configuration change";
        EXPECT_EQ(r.read<std::uint8_t>(kIsrOffset), 0) << "reading the ISR clears it";
        r.set_status(0);
        EXPECT_EQ(r.status(), 0) << "reset recovers";
    }
}

TEST(VirtioPciTransport, DeviceConfigurationStaysInsideItsWindow) {
    Rig r;
    for (std::uint64_t i = 0; i < 32; i += 4)
        EXPECT_EQ(r.read<std::uint32_t>(kDeviceCfgOffset + i) & 0xff, 0xc0 + i);
    r.write<std::uint8_t>(kDeviceCfgOffset + 3, 0x11);
    EXPECT_EQ(r.dev->config[3], 0x11);
    EXPECT_EQ(r.read<std::uint32_t>(kDeviceCfgOffset + 0xffc), 0u);
    // Accesses that start inside the window and run past its end.
    for (std::uint64_t off : {0xffdu, 0xffeu, 0xfffu}) {
        (void)r.read<std::uint32_t>(kDeviceCfgOffset + off);
        (void)r.read<std::uint64_t>(kDeviceCfgOffset + off);
        r.write<std::uint32_t>(kDeviceCfgOffset + off, 0xffff'ffff);
        r.write<std::uint64_t>(kDeviceCfgOffset + off, ~0ull);
    }
    // Common configuration: straddling its end reads zeros and writes nothing.
    EXPECT_EQ(r.read<std::uint64_t>(0x34), 0u);
    r.write<std::uint64_t>(0x34, ~0ull);
    EXPECT_EQ(r.status(), 0);
}

TEST(VirtioPciTransport, UnusedBar0RegionsReadZero) {
    Rig r;
    for (std::uint64_t off : {0x0038u, 0x0ffcu, 0x1004u, 0x3000u, 0x6000u, 0x7ffcu})
        EXPECT_EQ(r.read<std::uint32_t>(off), 0u) << std::hex << off;
    for (std::uint64_t off : {0x0038u, 0x1004u, 0x6000u, 0x7ffcu})
        r.write<std::uint32_t>(off, 0xffff'ffff);
    EXPECT_EQ(r.status(), 0);
    std::uint32_t v = 0x12345678;
    r.t->bar_read(1, 0, std::span(reinterpret_cast<std::uint8_t*>(&v), 4));
    EXPECT_EQ(v, 0u) << "there is no BAR 1";
    r.t->bar_write(2, 0x14, std::span(reinterpret_cast<const std::uint8_t*>(&v), 1));
}

TEST(VirtioPciTransport, NotificationsRaiseTheQueuesKickAndTheServedQueueInterrupts) {
    Rig r;
    ASSERT_TRUE(r.negotiate(kGoodFeatures));
    r.enable_msix_vector(1);
    r.setup_queue(0, r.ring.setup(), 1);
    r.driver_ok();
    ASSERT_EQ(r.dev->activations, 1);
    const auto kicks = r.watcher.fds();
    ASSERT_EQ(kicks.size(), 1u) << "only queue 0 is enabled";
    // A chain for the device.
    r.ring.desc(0, r.ring.alloc(8), 8, kDescWrite);
    r.ring.make_available(0);
    r.write<std::uint16_t>(kQueueSelect, 0);
    const std::uint16_t off = r.read<std::uint16_t>(kQueueNotifyOff);
    // Without an ioeventfd (no BAR placed) the notify write reaches the transport.
    r.write<std::uint16_t>(kNotifyOffset + kNotifyMultiplier * off, 0);
    r.watcher.fire(kicks[0]);
    EXPECT_EQ(r.dev->served, 1);
    EXPECT_EQ(r.ring.used_idx(), 1);
    EXPECT_EQ(r.ring.used_elem(0).len, 8u);
    ASSERT_NE(r.router.attached_fd(1), -1);
    EXPECT_EQ(drain_eventfd(r.router.attached_fd(1)), 1u) << "queue 0's vector fired";
    // Notifications for queues that do not exist go nowhere.
    r.write<std::uint16_t>(kNotifyOffset + kNotifyMultiplier * kQueues, 0);
    r.write<std::uint16_t>(kNotifyOffset + 0xffc, 0);
}

TEST(VirtioPciTransport, PlacingBar0MovesTheIoeventfds) {
    Rig r;
    EXPECT_TRUE(r.ioevents.registered.empty());
    const std::uint64_t a = 0x10'0000'0000, b = 0x10'0001'0000;
    r.t->bar_placed(0, a);
    ASSERT_EQ(r.ioevents.registered.size(), kQueues);
    std::set<int> fds;
    for (std::uint16_t q = 0; q < kQueues; ++q) {
        const auto it = r.ioevents.registered.find(a + kNotifyOffset + kNotifyMultiplier * q);
        ASSERT_NE(it, r.ioevents.registered.end()) << "queue " << q;
        EXPECT_EQ(it->second.len, 2u) << "Linux notifies with a 16-bit write";
        fds.insert(it->second.fd);
    }
    EXPECT_EQ(fds.size(), kQueues) << "one eventfd per queue";
    // The same eventfd is the one a userspace notify write reaches.
    r.write<std::uint16_t>(kNotifyOffset + kNotifyMultiplier, 1);
    EXPECT_EQ(drain_eventfd(r.ioevents.registered.at(a + kNotifyOffset + kNotifyMultiplier).fd),
              1u);
    r.t->bar_placed(0, b);
    ASSERT_EQ(r.ioevents.registered.size(), kQueues);
    EXPECT_TRUE(r.ioevents.registered.contains(b + kNotifyOffset));
    r.t->bar_placed(1, a);  // other BARs do not exist: nothing changes
    EXPECT_TRUE(r.ioevents.registered.contains(b + kNotifyOffset));
    r.t->bar_placed(0, 0);
    EXPECT_TRUE(r.ioevents.registered.empty());
}

TEST(VirtioPciTransport, OnThePciBusBar0FollowsTheGuest) {
    Rig r;
    Bus mmio("mmio");
    pci::PciBus bus(mmio, {0xc000'0000, 0xe000'0000, 0x10'0000'0000, 0x20'0000'0000});
    const std::uint8_t slot = bus.add(*r.t).value();
    auto cfg_write = [&](std::size_t off, std::uint32_t v, std::size_t n) {
        bus.config_write(slot, off, std::span(reinterpret_cast<const std::uint8_t*>(&v), n));
    };
    EXPECT_TRUE(r.ioevents.registered.empty()) << "decoding is off";
    cfg_write(pci::kOffCommand, pci::kCommandMemory | pci::kCommandBusMaster, 2);
    const std::uint64_t at = bus.bar_address(slot, 0);
    ASSERT_NE(at, 0u);
    EXPECT_TRUE(r.ioevents.registered.contains(at + kNotifyOffset));
    // The guest reads the status through the MMIO bus.
    r.set_status(kStatusAcknowledge);
    std::uint8_t st = 0;
    EXPECT_TRUE(mmio.read(at + kDeviceStatus, std::span(&st, 1)));
    EXPECT_EQ(st, kStatusAcknowledge);
    // Moving BAR0 (a 64-bit BAR: two dwords) moves the notifications.
    const std::uint64_t to = 0x18'0000'0000;
    cfg_write(pci::kOffBar0 + 4, static_cast<std::uint32_t>(to >> 32), 4);
    cfg_write(pci::kOffBar0, static_cast<std::uint32_t>(to), 4);
    EXPECT_EQ(bus.bar_address(slot, 0), to);
    EXPECT_TRUE(r.ioevents.registered.contains(to + kNotifyOffset));
    EXPECT_FALSE(r.ioevents.registered.contains(at + kNotifyOffset));
    cfg_write(pci::kOffCommand, 0, 2);
    EXPECT_TRUE(r.ioevents.registered.empty());
}

TEST(VirtioPciTransport, MsixIsControlledThroughItsCapability) {
    Rig r;
    const std::size_t cap = r.msix_cap();
    const std::uint16_t ctl = r.cfg<std::uint16_t>(cap + 2);
    r.cfg_write<std::uint16_t>(cap + 2, 0xffff);
    EXPECT_EQ(r.cfg<std::uint16_t>(cap + 2), ctl | pci::kMsixEnable | pci::kMsixFunctionMask)
        << "table size is read-only";
    r.cfg_write<std::uint32_t>(cap + 4, 0);
    EXPECT_EQ(r.cfg<std::uint32_t>(cap + 4), kMsixTableOffset) << "table offset is read-only";
    r.cfg_write<std::uint16_t>(cap + 2, 0);
    // Program two vectors through BAR0, then enable: both attach.
    for (std::uint16_t v = 0; v < 2; ++v) {
        r.write<std::uint64_t>(kMsixTableOffset + 16 * v, 0xfee0'0000);
        r.write<std::uint32_t>(kMsixTableOffset + 16 * v + 12, 0);
    }
    EXPECT_TRUE(r.router.attached.empty());
    r.cfg_write<std::uint16_t>(cap + 2, pci::kMsixEnable);
    EXPECT_EQ(r.router.attached.size(), 2u);
    // A dword write covering the capability header and control does the same.
    r.cfg_write<std::uint32_t>(cap, std::uint32_t{pci::kMsixEnable | pci::kMsixFunctionMask} << 16);
    EXPECT_TRUE(r.router.attached.empty());
    r.cfg_write<std::uint8_t>(cap + 3, pci::kMsixEnable >> 8);
    EXPECT_EQ(r.router.attached.size(), 2u);
    // The table reads back through BAR0; the PBA is in range.
    EXPECT_EQ(r.read<std::uint64_t>(kMsixTableOffset + 16), 0xfee0'0000u);
    EXPECT_EQ(r.read<std::uint64_t>(kMsixPbaOffset), 0u);
    // A virtio reset leaves MSI-X (PCI function state) alone.
    r.set_status(0);
    EXPECT_EQ(r.router.attached.size(), 2u);
}

// VIRTIO_PCI_CAP_PCI_CFG: BAR0 through configuration space (for firmware without MMIO).
TEST(VirtioPciTransport, ThePciCfgWindowReachesBar0) {
    Rig r;
    const std::size_t cap = r.virtio_cap(5);
    ASSERT_NE(cap, 0u);
    auto window = [&](std::uint8_t bar, std::uint32_t offset, std::uint32_t length) {
        r.cfg_write<std::uint8_t>(cap + 4, bar);
        r.cfg_write<std::uint32_t>(cap + 8, offset);
        r.cfg_write<std::uint32_t>(cap + 12, length);
    };
    window(0, kDeviceStatus, 1);
    r.cfg_write<std::uint32_t>(cap + 16, kStatusAcknowledge);
    EXPECT_EQ(r.status(), kStatusAcknowledge);
    EXPECT_EQ(r.cfg<std::uint32_t>(cap + 16) & 0xff, kStatusAcknowledge);
    window(0, kDeviceCfgOffset, 4);
    EXPECT_EQ(r.cfg<std::uint32_t>(cap + 16), 0xc3c2'c1c0u);
    window(0, kQueueSize, 2);
    EXPECT_EQ(r.cfg<std::uint32_t>(cap + 16) & 0xffff, 64u);
    // Reads through the window have the register's side effects: the ISR clears.
    ASSERT_TRUE(r.negotiate(kGoodFeatures));
    QueueSetup bad = r.ring.setup();
    bad.size = 5;
    r.setup_queue(0, bad, pci::kNoVector);
    r.driver_ok();
    window(0, kIsrOffset, 1);
    EXPECT_EQ(r.cfg<std::uint8_t>(cap + 16), 2);
    EXPECT_EQ(r.read<std::uint8_t>(kIsrOffset), 0);
    // Bad windows do nothing: wrong BAR, odd lengths, past the BAR's end.
    r.set_status(0);
    struct Window {
        std::uint8_t bar;
        std::uint32_t offset, length;
    };
    for (const Window w : {Window{1, kDeviceStatus, 1}, Window{0, kDeviceStatus, 3},
                           Window{0, kDeviceStatus, 0}, Window{0, kDeviceStatus, 8},
                           Window{0, 0x7fff, 4}, Window{0, 0xffff'fffe, 4}, Window{0, 0x8000, 1}}) {
        window(w.bar, w.offset, w.length);
        r.cfg_write<std::uint32_t>(cap + 16, kStatusAcknowledge);
        EXPECT_EQ(r.status(), 0) << int{w.bar} << " " << w.offset << " " << w.length;
    }
}

// A hostile driver repeats what makes the transport warn as often as it likes: the log gets
// the rate limit's burst (base/rate_limit.hpp), and the device's count has every one.
TEST(VirtioPciTransport, AThousandRefusedFeaturesOkLogAtMostTheBurst) {
    Rig r;
    int refused = 0;
    const std::string log = test::captured_log([&] {
        for (int i = 0; i < 1000; ++i) {
            r.set_status(0);
            refused += !r.negotiate(kGoodFeatures | 1ull << 40);
        }
    });
    EXPECT_EQ(refused, 1000) << "each one refused, logged or not";
    EXPECT_GE(test::lines_with(log, "refused"), 1u);
    EXPECT_LE(test::lines_with(log, "warning: "), RateLimit{}.burst) << log;
    EXPECT_LE(test::lines_with(log, "refused"), RateLimit{}.burst) << log;
    const GuestWarnings::Counts c = r.t->warnings().counts();
    EXPECT_EQ(c.warned + c.suppressed, 1000u);
    EXPECT_LE(c.warned, RateLimit{}.burst);
}

TEST(VirtioPciTransport, AResetAndStartLoopLogsAtMostTheBurst) {
    Rig r;
    const std::string log = test::captured_log([&] {
        for (int i = 0; i < 1000; ++i) {
            r.set_status(0);
            ASSERT_TRUE(r.negotiate(kGoodFeatures));
            QueueSetup s = r.ring.setup();
            s.size = 3;  // the device cannot start with it
            r.setup_queue(0, s, pci::kNoVector);
            r.driver_ok();
            ASSERT_TRUE(r.status() & kStatusNeedsReset);
        }
    });
    EXPECT_GE(test::lines_with(log, "cannot start"), 1u);
    EXPECT_LE(test::lines_with(log, "cannot start"), RateLimit{}.burst) << log;
    EXPECT_EQ(r.t->warnings().counts().warned + r.t->warnings().counts().suppressed, 1000u);
}

// ---- snapshots ----

// Every byte a driver can read of the function: configuration space, the common
// configuration seen through each queue select, and the MSI-X table.
std::vector<std::uint8_t> driver_view(Rig& r) {
    std::vector<std::uint8_t> v;
    for (std::size_t off = 0; off < pci::kConfigSize; off += 4) {
        const auto x = r.cfg<std::uint32_t>(off);
        v.insert(v.end(), reinterpret_cast<const std::uint8_t*>(&x),
                 reinterpret_cast<const std::uint8_t*>(&x) + 4);
    }
    const auto select = r.read<std::uint16_t>(kQueueSelect);
    for (std::uint16_t q = 0; q < kQueues; ++q) {
        r.write<std::uint16_t>(kQueueSelect, q);
        for (std::uint64_t off = 0; off < 0x38; off += 2) {
            const auto x = r.read<std::uint16_t>(off);
            v.push_back(static_cast<std::uint8_t>(x));
            v.push_back(static_cast<std::uint8_t>(x >> 8));
        }
    }
    r.write<std::uint16_t>(kQueueSelect, select);
    for (std::uint64_t off = 0; off < 16ull * (kQueues + 1); off += 4) {
        const auto x = r.read<std::uint32_t>(kMsixTableOffset + off);
        v.insert(v.end(), reinterpret_cast<const std::uint8_t*>(&x),
                 reinterpret_cast<const std::uint8_t*>(&x) + 4);
    }
    return v;
}

// A running function's transport, put into a fresh one: the driver reads back exactly what
// it had written, the device is activated again on the same queues with the same features,
// and the next chain the guest makes available is served and interrupts on the same vector.
TEST(VirtioPciTransportState, ARunningFunctionRestoredIntoAFreshOneServesOn) {
    Rig a;
    ASSERT_TRUE(a.negotiate(kGoodFeatures));
    a.enable_msix_vector(1);
    a.enable_msix_vector(2);
    a.write<std::uint16_t>(kMsixConfig, 2);
    a.setup_queue(0, a.ring.setup(), 1);
    a.driver_ok();
    a.write<std::uint16_t>(kQueueSelect, 1);  // where the driver left it
    a.cfg_write<std::uint16_t>(pci::kOffCommand, pci::kCommandMemory | pci::kCommandBusMaster);
    const TransportState saved = a.t->state();
    EXPECT_EQ(saved.status,
              kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk | kStatusDriverOk);

    Rig b;
    ASSERT_TRUE(b.t->restore(saved));
    EXPECT_EQ(driver_view(b), driver_view(a));
    EXPECT_EQ(b.dev->activations, 1);
    EXPECT_EQ(b.dev->features_seen, kGoodFeatures);
    const auto kicks = b.watcher.fds();
    ASSERT_EQ(kicks.size(), 1u) << "queue 0 only, as before";
    b.ring.desc(0, b.ring.alloc(8), 8, kDescWrite);
    b.ring.make_available(0);
    b.watcher.fire(kicks[0]);
    EXPECT_EQ(b.dev->served, 1);
    EXPECT_EQ(b.ring.used_idx(), 1);
    ASSERT_NE(b.router.attached_fd(1), -1);
    EXPECT_EQ(drain_eventfd(b.router.attached_fd(1)), 1u) << "queue 0's vector, restored";
    // And the driver can still reset it and start over.
    b.set_status(0);
    EXPECT_EQ(b.dev->resets, 1);
    EXPECT_TRUE(b.negotiate(kGoodFeatures));
}

// A function the driver had not started comes back not started; one whose device had
// failed comes back failed (NEEDS_RESET), its device not running.
TEST(VirtioPciTransportState, NotStartedAndFailedFunctionsComeBackSo) {
    Rig a;
    ASSERT_TRUE(a.negotiate(kGoodFeatures));
    Rig b;
    ASSERT_TRUE(b.t->restore(a.t->state()));
    EXPECT_EQ(b.status(), kStatusAcknowledge | kStatusDriver | kStatusFeaturesOk);
    EXPECT_EQ(b.dev->activations, 0);
    EXPECT_EQ(b.read_driver_features(), kGoodFeatures);

    TransportState failed = a.t->state();
    failed.status |= kStatusDriverOk | kStatusNeedsReset;
    Rig c;
    ASSERT_TRUE(c.t->restore(failed));
    EXPECT_EQ(c.dev->activations, 0);
    EXPECT_TRUE(c.status() & kStatusNeedsReset);
}

// A state that no driver could have written is refused whole, and the transport is left as
// it was created; read-only configuration bytes do not come back through a state at all.
TEST(VirtioPciTransportState, AStateNoDriverCouldHaveWrittenIsRefused) {
    Rig a;
    ASSERT_TRUE(a.negotiate(kGoodFeatures));
    a.setup_queue(0, a.ring.setup(), 0);
    a.driver_ok();
    const TransportState good = a.t->state();
    std::vector<std::pair<std::string, std::function<void(TransportState&)>>> bad = {
        {"a queue too many", [](TransportState& s) { s.queues.emplace_back(); }},
        {"a queue too big", [](TransportState& s) { s.queues[0].size = 128; }},
        {"a queue vector out of range", [](TransportState& s) { s.queues[0].msix_vector = 3; }},
        {"a config vector out of range", [](TransportState& s) { s.msix_config = 7; }},
        {"an unknown status bit", [](TransportState& s) { s.status |= 0x10; }},
        {"an unknown ISR bit", [](TransportState& s) { s.isr = 4; }},
        {"a feature never offered", [](TransportState& s) { s.driver_features |= 1ull << 40; }},
        {"no VERSION_1", [](TransportState& s) { s.driver_features &= ~kFeatureVersion1; }},
        {"DRIVER_OK without FEATURES_OK",
         [](TransportState& s) { s.status &= static_cast<std::uint8_t>(~kStatusFeaturesOk); }},
        {"an MSI-X table of another size", [](TransportState& s) { s.msix.entries.pop_back(); }},
    };
    for (auto& [why, change] : bad) {
        TransportState s = good;
        change(s);
        Rig b;
        EXPECT_FALSE(b.t->restore(s)) << why;
        EXPECT_EQ(b.status(), 0) << why;
        EXPECT_EQ(b.dev->activations, 0) << why;
    }
    // Into a transport the driver has already started: refused.
    Rig started;
    ASSERT_TRUE(started.negotiate(kGoodFeatures));
    EXPECT_FALSE(started.t->restore(good));
    // Identity and capability bytes are read-only: the device's own stay.
    TransportState forged = good;
    forged.config[0] = 0x34;                // vendor
    forged.config[pci::kOffCapPtr] = 0x80;  // capability list
    Rig b;
    ASSERT_TRUE(b.t->restore(forged));
    EXPECT_EQ(b.cfg<std::uint16_t>(0x00), 0x1af4);
    EXPECT_EQ(b.cfg<std::uint8_t>(pci::kOffCapPtr), a.cfg<std::uint8_t>(pci::kOffCapPtr));
}

// The device's side: a device that served three chains of five, saved and given with its
// transport to a fresh one over the same guest memory, serves the other two and no other.
TEST(VirtioPciTransportState, WithItsDeviceStateTheRestoredDeviceServesWhatWasLeft) {
    Rig a;
    ASSERT_TRUE(a.negotiate(kGoodFeatures));
    a.setup_queue(0, a.ring.setup(), pci::kNoVector);
    a.driver_ok();
    for (std::uint16_t i = 0; i < 3; ++i) {
        a.ring.desc(i, a.ring.alloc(8), 8, kDescWrite);
        a.ring.make_available(i);
    }
    a.watcher.fire(a.watcher.fds().at(0));
    ASSERT_EQ(a.dev->served, 3);
    for (std::uint16_t i = 3; i < 5; ++i) {
        a.ring.desc(i, a.ring.alloc(8), 8, kDescWrite);
        a.ring.make_available(i);  // no kick yet
    }
    const DeviceState device = a.dev->save_state().value();
    ASSERT_EQ(device.queues.size(), kQueues);
    EXPECT_EQ(device.queues[0].next_avail, 3);
    EXPECT_EQ(device.queues[1].next_avail, 0) << "not running";
    const TransportState transport = a.t->state();

    Rig b;
    copy_guest_memory(a.ring.mem(), b.ring.mem());
    ASSERT_TRUE(b.t->restore(transport, device.queues));
    ASSERT_EQ(b.dev->activations, 1);
    // No kick came after the restore (the driver's were before it, and with EVENT_IDX it
    // would not kick again for chains it made available): the device asked to be served.
    pollfd kick{b.watcher.fds().at(0), POLLIN, 0};
    EXPECT_EQ(::poll(&kick, 1, 0), 1) << "the resumed queue's own kick is waiting";
    b.watcher.fire(b.watcher.fds().at(0));
    EXPECT_EQ(b.dev->served, 2);
    EXPECT_EQ(b.ring.used_idx(), 5);
    EXPECT_EQ(b.ring.used_elem(3).id, 3u);
    EXPECT_EQ(b.ring.used_elem(4).id, 4u);
    EXPECT_EQ(b.status() & kStatusNeedsReset, 0);

    // A device state that does not fit the memory (its used index) fails the activation:
    // the device needs a reset, the host goes on.
    DeviceState wrong = device;
    wrong.queues[0].next_used = 1;
    Rig c;
    copy_guest_memory(a.ring.mem(), c.ring.mem());
    ASSERT_TRUE(c.t->restore(transport, wrong.queues));
    EXPECT_TRUE(c.status() & kStatusNeedsReset);
    // The positions were for that one activation: the driver resets the device and starts
    // it on fresh rings, which work.
    c.set_status(0);
    const auto ram = c.ring.mem().slice(0, c.ring.mem().total_size()).value();
    std::fill(ram.begin(), ram.end(), 0);
    ASSERT_TRUE(c.negotiate(kGoodFeatures));
    c.setup_queue(0, c.ring.setup(), pci::kNoVector);
    c.driver_ok();
    EXPECT_EQ(c.status() & kStatusNeedsReset, 0);
    EXPECT_EQ(c.dev->activations, 1) << "the failed resume never started the device";
    // In flight (taken, not used) is not a quiescent save: refused.
    DeviceState in_flight = device;
    in_flight.queues[0].next_avail = 4;
    Rig d;
    copy_guest_memory(a.ring.mem(), d.ring.mem());
    ASSERT_TRUE(d.t->restore(transport, in_flight.queues));
    EXPECT_TRUE(d.status() & kStatusNeedsReset);
}

}  // namespace
}  // namespace stockade::virtio
