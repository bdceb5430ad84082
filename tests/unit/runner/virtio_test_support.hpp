#pragma once
// A hostile guest for the virtio unit tests: fake guest memory (no KVM) holding one split
// virtqueue that the test writes exactly as a driver would, or as an attacker would.
#include <gtest/gtest.h>

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <map>
#include <vector>

#include "base/guest_memory.hpp"
#include "base/uapi.hpp"
#include "runner/devices/fd_watcher.hpp"
#include "runner/kvm/irq_router.hpp"
#include "runner/kvm/vm.hpp"
#include "runner/virtio/queue.hpp"

namespace stockade::virtio::fake {

// The descriptor layout of virtio 1.2, 2.7.5, as the driver writes it.
using RawDesc = vring_desc;
static_assert(sizeof(RawDesc) == 16);

class GuestRing {
  public:
    // A queue of `size` entries in `memory_size` bytes of fake RAM: descriptor table at
    // 64 KiB, then the avail ring, then the used ring; buffers come after (alloc()).
    explicit GuestRing(std::uint16_t size, std::uint64_t memory_size = 4 << 20)
        : mem_(GuestMemory::create_unregistered(memory_size).value()), size_(size) {
        desc_ = 0x10000;
        avail_ = desc_ + 16ull * size;
        used_ = (avail_ + 6 + 2ull * size + 0xfff) & ~0xfffull;
        next_free_ = (used_ + 6 + 8ull * size + 0xfff) & ~0xfffull;
    }
    GuestRing(const GuestRing&) = delete;
    GuestRing& operator=(const GuestRing&) = delete;

    [[nodiscard]] const GuestMemory& mem() const { return mem_; }
    [[nodiscard]] std::uint16_t size() const { return size_; }
    [[nodiscard]] std::uint64_t desc_table() const { return desc_; }
    [[nodiscard]] std::uint64_t avail_ring() const { return avail_; }
    [[nodiscard]] std::uint64_t used_ring() const { return used_; }

    [[nodiscard]] QueueSetup setup() const {
        QueueSetup s;
        s.size = size_;
        s.desc = desc_;
        s.driver = avail_;
        s.device = used_;
        s.enabled = true;
        return s;
    }
    [[nodiscard]] Result<SplitQueue> queue(bool event_idx = false,
                                           std::uint16_t max_size = kMaxQueueSize) const {
        return SplitQueue::create(mem_, setup(), event_idx, max_size);
    }

    // Guest buffer space, zeroed, `align`-aligned.
    std::uint64_t alloc(std::uint64_t len, std::uint64_t align = 16) {
        const std::uint64_t at = (next_free_ + align - 1) & ~(align - 1);
        next_free_ = at + len;
        EXPECT_TRUE(mem_.contains(at, len)) << "test guest out of memory";
        return at;
    }

    void put_desc(std::uint64_t table, std::uint32_t index, std::uint64_t addr, std::uint32_t len,
                  std::uint16_t flags = 0, std::uint16_t next = 0) const {
        ASSERT_TRUE(mem_.write_obj(table + 16ull * index, RawDesc{addr, len, flags, next}));
    }
    void desc(std::uint16_t index, std::uint64_t addr, std::uint32_t len, std::uint16_t flags = 0,
              std::uint16_t next = 0) const {
        put_desc(desc_, index, addr, len, flags, next);
    }

    // Offers `head` in the next avail slot and publishes it.
    void make_available(std::uint16_t head) {
        ASSERT_TRUE(mem_.write_obj<std::uint16_t>(avail_ + 4 + 2ull * (avail_idx_ % size_), head));
        set_avail_idx(static_cast<std::uint16_t>(avail_idx_ + 1));
    }
    void set_avail_idx(std::uint16_t idx) {
        avail_idx_ = idx;
        ASSERT_TRUE(mem_.write_obj<std::uint16_t>(avail_ + 2, idx));
    }
    void set_avail_slot(std::uint16_t slot, std::uint16_t head) const {
        ASSERT_TRUE(mem_.write_obj<std::uint16_t>(avail_ + 4 + 2ull * slot, head));
    }
    void set_avail_flags(std::uint16_t flags) const {
        ASSERT_TRUE(mem_.write_obj<std::uint16_t>(avail_, flags));
    }
    // VIRTIO_F_EVENT_IDX: the driver's used_event (after the avail ring).
    void set_used_event(std::uint16_t v) const {
        ASSERT_TRUE(mem_.write_obj<std::uint16_t>(avail_ + 4 + 2ull * size_, v));
    }
    // VIRTIO_F_EVENT_IDX: the device's avail_event (after the used ring).
    [[nodiscard]] std::uint16_t avail_event() const {
        return mem_.read_obj<std::uint16_t>(used_ + 4 + 8ull * size_).value();
    }
    [[nodiscard]] std::uint16_t used_idx() const {
        return mem_.read_obj<std::uint16_t>(used_ + 2).value();
    }
    struct UsedElem {
        std::uint32_t id, len;
    };
    [[nodiscard]] UsedElem used_elem(std::uint16_t slot) const {
        return mem_.read_obj<UsedElem>(used_ + 4 + 8ull * (slot % size_)).value();
    }

  private:
    GuestMemory mem_;
    std::uint16_t size_;
    std::uint64_t desc_, avail_, used_, next_free_;
    std::uint16_t avail_idx_ = 0;
};

// The event loop's side of a device: remembers what it was asked to watch, and lets the
// test play the kick.
class FakeWatcher : public FdWatcher {
  public:
    Result<> watch(int fd, std::function<void()> on_readable) override {
        if (!callbacks_.emplace(fd, std::move(on_readable)).second)
            return fail("fd {} is already watched", fd);
        return {};
    }
    void unwatch(int fd) override { callbacks_.erase(fd); }
    [[nodiscard]] bool watching(int fd) const { return callbacks_.contains(fd); }
    [[nodiscard]] std::size_t count() const { return callbacks_.size(); }
    [[nodiscard]] std::vector<int> fds() const {
        std::vector<int> out;
        for (const auto& [fd, cb] : callbacks_)
            out.push_back(fd);
        return out;
    }
    // Runs what the event loop would run when `fd` becomes readable.
    void fire(int fd) {
        auto it = callbacks_.find(fd);
        ASSERT_NE(it, callbacks_.end()) << "fd " << fd << " is not watched";
        auto cb = it->second;  // the callback may unwatch itself
        cb();
    }

  private:
    std::map<int, std::function<void()>> callbacks_;
};

// KVM's GSI routing as MSI-X drives it: records routes and which eventfds are attached,
// and fails the test on an attach that is already in place or a detach that is not.
class FakeRouter : public kvm::MsiRouter {
  public:
    struct Route {
        std::uint64_t address;
        std::uint32_t data;
    };
    Result<std::uint32_t> allocate_msi() override { return next_gsi_++; }
    Result<> set_msi(std::uint32_t gsi, std::uint64_t address, std::uint32_t data) override {
        routes[gsi] = {address, data};
        ++set_msi_calls;
        return {};
    }
    Result<> attach(std::uint32_t gsi, int event_fd) override {
        EXPECT_FALSE(attached.contains(gsi)) << "GSI " << gsi << " attached twice";
        attached[gsi] = event_fd;
        ++attach_calls;
        return {};
    }
    Result<> detach(std::uint32_t gsi, int event_fd) override {
        auto it = attached.find(gsi);
        EXPECT_TRUE(it != attached.end() && it->second == event_fd)
            << "GSI " << gsi << " detached but not attached with fd " << event_fd;
        if (it != attached.end()) attached.erase(it);
        ++detach_calls;
        return {};
    }
    // The eventfd of the n-th vector allocated, once it has been attached (else -1).
    [[nodiscard]] int attached_fd(std::uint32_t vector) const {
        auto it = attached.find(kvm::kFirstMsiGsi + vector);
        return it == attached.end() ? -1 : it->second;
    }

    std::map<std::uint32_t, Route> routes;
    std::map<std::uint32_t, int> attached;
    int set_msi_calls = 0, attach_calls = 0, detach_calls = 0;

  private:
    std::uint32_t next_gsi_ = kvm::kFirstMsiGsi;
};

// KVM_IOEVENTFD as the virtio-pci transport uses it.
class FakeIoEvents : public kvm::IoEventRegistry {
  public:
    struct Registration {
        int fd;
        std::uint32_t len;
    };
    Result<> ioeventfd(int event_fd, std::uint64_t addr, std::uint32_t len, bool pio,
                       bool assign) override {
        EXPECT_FALSE(pio) << "virtio-pci notifications are MMIO";
        if (assign) {
            EXPECT_FALSE(registered.contains(addr)) << std::hex << addr << " registered twice";
            registered[addr] = {event_fd, len};
        } else {
            auto it = registered.find(addr);
            EXPECT_TRUE(it != registered.end() && it->second.fd == event_fd)
                << std::hex << addr << " deregistered but not registered";
            if (it != registered.end()) registered.erase(it);
        }
        return {};
    }
    std::map<std::uint64_t, Registration> registered;
};

// Whether `fd` is readable now (for an eventfd: its counter is not 0), without reading it.
inline bool readable(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 1 && (p.revents & POLLIN) != 0;
}

// Reads an eventfd's counter (0 when nothing was written); non-blocking eventfds only.
// Guest RAM as a snapshot restores it: every byte of `from` into `to` (of at least its size).
inline void copy_guest_memory(const GuestMemory& from, const GuestMemory& to) {
    const auto all = from.slice(0, from.total_size()).value();
    std::copy(all.begin(), all.end(), to.slice(0, all.size()).value().begin());
}

inline std::uint64_t drain_eventfd(int fd) {
    std::uint64_t v = 0;
    if (::read(fd, &v, sizeof v) != static_cast<ssize_t>(sizeof v)) return 0;
    return v;
}

}  // namespace stockade::virtio::fake
