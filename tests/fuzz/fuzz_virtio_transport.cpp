// libFuzzer target: the virtio-pci transport as a hostile driver sees it, with the device
// behind it: PCI configuration space (the capability list, MSI-X control, the PCI-config
// access window), BAR0 (common configuration, ISR, device configuration, notifications, the
// MSI-X table and PBA), BAR moves, guest RAM stores (rings) and queue kicks, in any order.
// The device (the first byte, modulo 4) is virtio-rng, virtio-blk on a small memfd image, or
// virtio-net on its userspace datapath with one queue pair or with two and the control queue
// (VIRTIO_NET_F_MQ), each pair's tap a datagram socket the host side sends frames into (so
// every queue, the receive paths and the control commands are driven). Nothing may
// crash or hang; KVM's side is faked with checks: an interrupt route attached twice, a
// detach of what is not attached, or a notification registered twice is a bug.
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <vector>

#include "base/log.hpp"
#include "base/unique_fd.hpp"
#include "runner/kvm/irq_router.hpp"
#include "runner/virtio/blk.hpp"
#include "runner/virtio/net.hpp"
#include "runner/virtio/pci_transport.hpp"
#include "runner/virtio/rng.hpp"
#include "tests/fuzz/guest_image.hpp"

using namespace stockade;

namespace {

class Watcher : public FdWatcher {
  public:
    Result<> watch(int fd, std::function<void()> cb) override {
        if (!callbacks_.emplace(fd, std::move(cb)).second) __builtin_trap();
        return {};
    }
    void unwatch(int fd) override { callbacks_.erase(fd); }
    // Runs the n-th watched descriptor's callback, as the event loop would on a kick.
    void fire(std::size_t n) {
        if (callbacks_.empty()) return;
        auto it = callbacks_.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(n % callbacks_.size()));
        auto cb = it->second;  // the callback may unwatch itself
        cb();
    }

  private:
    std::map<int, std::function<void()>> callbacks_;
};

class Router : public kvm::MsiRouter {
  public:
    Result<std::uint32_t> allocate_msi() override { return next_++; }
    Result<> set_msi(std::uint32_t, std::uint64_t, std::uint32_t) override { return {}; }
    Result<> attach(std::uint32_t gsi, int fd) override {
        if (!attached_.emplace(gsi, fd).second) __builtin_trap();
        return {};
    }
    Result<> detach(std::uint32_t gsi, int fd) override {
        auto it = attached_.find(gsi);
        if (it == attached_.end() || it->second != fd) __builtin_trap();
        attached_.erase(it);
        return {};
    }

  private:
    std::uint32_t next_ = kvm::kFirstMsiGsi;
    std::map<std::uint32_t, int> attached_;
};

class IoEvents : public kvm::IoEventRegistry {
  public:
    Result<> ioeventfd(int fd, std::uint64_t addr, std::uint32_t, bool pio, bool assign) override {
        if (pio) __builtin_trap();  // virtio-pci notifications are MMIO
        if (assign) {
            if (!registered_.emplace(addr, fd).second) __builtin_trap();
        } else {
            auto it = registered_.find(addr);
            if (it == registered_.end() || it->second != fd) __builtin_trap();
            registered_.erase(it);
        }
        return {};
    }

  private:
    std::map<std::uint64_t, int> registered_;
};

// The host's ends of the net device's "tap" queues (none for the other devices).
std::vector<int> host_ends;

// A "tap" queue: the device's end, the host's kept for the run.
UniqueFd tap_queue() {
    static std::vector<UniqueFd> hosts;
    if (hosts.size() >= 2) hosts.erase(hosts.begin());  // the previous input's
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
        __builtin_trap();
    hosts.emplace_back(sv[1]);
    host_ends.push_back(sv[1]);
    return UniqueFd(sv[0]);
}

std::unique_ptr<virtio::VirtioDevice> make_device(std::uint8_t kind) {
    host_ends.clear();
    if (kind == 0) return std::make_unique<virtio::Rng>();
    if (kind >= 2) {
        virtio::NetBackend b{tap_queue(), {0x02, 0, 0, 0, 0, 1}, 1500, std::nullopt, false};
        if (kind == 3) b.more_pairs.push_back({tap_queue(), std::nullopt});
        auto dev = virtio::Net::create(std::move(b));
        if (!dev) __builtin_trap();
        return std::move(*dev);
    }
    UniqueFd image(::memfd_create("fuzz-disk", MFD_CLOEXEC));
    if (!image || ::ftruncate(image.get(), 64 * virtio::kSectorSize) != 0) __builtin_trap();
    auto dev = virtio::Blk::create(std::move(image), false, "fuzz");
    if (!dev) __builtin_trap();
    return std::move(*dev);
}

// One 8-byte access: op, width, offset (LE 16), value (LE 32).
struct Access {
    std::uint8_t op, width;
    std::uint16_t offset;
    std::uint32_t value;
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    log::set_level(log::Level::error);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const GuestMemory& mem = fuzz::guest_memory();
    static std::vector<std::uint8_t> zeros(fuzz::kLowSize);
    (void)mem.write(0, zeros);  // each input starts from clean RAM
    Watcher watcher;
    Router router;
    IoEvents io;
    auto transport =
        virtio::PciTransport::create(make_device(data[0] % 4), io, router, mem, watcher);
    if (!transport) __builtin_trap();
    virtio::PciTransport& t = **transport;
    t.bar_placed(0, 0xc000'0000);
    for (std::size_t at = 1; at + sizeof(Access) <= size; at += sizeof(Access)) {
        Access a;
        std::memcpy(&a, data + at, sizeof a);
        std::uint8_t buf[8] = {};
        std::memcpy(buf, &a.value, 4);
        const std::size_t width = std::size_t{1} << (a.width & 3);
        switch (a.op % 9) {
            case 0:
                t.config_read(a.offset % 0x100, std::span(buf, width));
                break;
            case 1:
                t.config_write(a.offset % 0x100, std::span<const std::uint8_t>(buf, width));
                break;
            case 2:
                t.bar_read(0, a.offset % virtio::kBar0Size, std::span(buf, width));
                break;
            case 3:
            case 4:  // the common configuration most often
                t.bar_write(0, (a.op % 9 == 3 ? a.offset % virtio::kBar0Size : a.offset % 0x40),
                            std::span<const std::uint8_t>(buf, width));
                break;
            case 5:  // a guest store into RAM: rings and buffers
                (void)mem.write(a.offset % (fuzz::kLowSize - 4), std::span(buf, 4));
                break;
            case 6:
                watcher.fire(a.value);
                break;
            case 7:  // the guest's BIOS or kernel moves BAR0
                t.bar_placed(0, std::uint64_t{a.value} << 12);
                break;
            default: {  // the host sends the net device a frame (header included)
                static std::uint8_t frame[2048];
                std::memset(frame, a.width, sizeof frame);
                if (!host_ends.empty())
                    (void)!::send(host_ends[a.offset % host_ends.size()], frame,
                                  a.value % sizeof frame, 0);
                break;
            }
        }
    }
    return 0;
}
