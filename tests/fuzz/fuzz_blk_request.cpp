// libFuzzer target: virtio-blk requests from arbitrary guest memory (layout in
// guest_image.hpp). Every chain the queue yields goes through parse_blk_request(); then
// the same RAM is served end to end by a Blk device (flag bit 2: read-only) on a small
// memfd image, as the event loop would on a kick. Nothing may crash, hang, touch memory
// outside guest RAM, or reach the image outside its sectors.
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <functional>
#include <memory>

#include "base/log.hpp"
#include "base/unique_fd.hpp"
#include "runner/virtio/blk.hpp"
#include "tests/fuzz/guest_image.hpp"

using namespace stockade;

namespace {

constexpr std::uint64_t kImageBytes = 64 * virtio::kSectorSize;
constexpr std::uint8_t kFlagReadOnly = 4, kFlagIndirect = 8;

// The event loop, reduced to what one kick needs.
class OneShotWatcher : public FdWatcher {
  public:
    Result<> watch(int fd, std::function<void()> cb) override {
        fd_ = fd;
        cb_ = std::move(cb);
        return {};
    }
    void unwatch(int fd) override {
        if (fd == fd_) cb_ = nullptr;
    }
    void fire() const {
        if (cb_) cb_();
    }

  private:
    int fd_ = -1;
    std::function<void()> cb_;
};

struct Disk {
    UniqueFd image;
    std::unique_ptr<virtio::VirtioDevice> dev;
};

Disk make_disk(bool read_only) {
    Disk d;
    d.image = UniqueFd(::memfd_create("fuzz-disk", MFD_CLOEXEC));
    if (!d.image || ::ftruncate(d.image.get(), kImageBytes) != 0) __builtin_trap();
    auto dev = virtio::Blk::create(UniqueFd(::dup(d.image.get())), read_only, "fuzz");
    if (!dev) __builtin_trap();
    d.dev = std::move(*dev);
    return d;
}

void parse_every_chain(const fuzz::GuestImage& img) {
    const GuestMemory& mem = fuzz::guest_memory();
    auto queue = virtio::SplitQueue::create(mem, img.setup, img.flags & fuzz::kFlagEventIdx,
                                            virtio::kMaxQueueSize);
    if (!queue) return;
    for (std::size_t i = 0; i < img.steps(); ++i) {
        img.guest_store(mem, i);
        auto chain = queue->pop();
        if (!chain || !*chain) return;
        fuzz::check_chain(mem, **chain, queue->size());
        auto req = virtio::parse_blk_request(**chain, mem);
        if (req) {
            if (req->data.size() > 254) __builtin_trap();
            if (!mem.contains(req->status.addr, 1) || req->status.len != 1) __builtin_trap();
            for (const auto& d : req->data)
                if (!mem.contains(d.addr, d.len)) __builtin_trap();
        }
        (void)queue->push_used((*chain)->head, 0);
    }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    log::set_level(log::Level::error);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Disk rw = make_disk(false), ro = make_disk(true);
    static const UniqueFd kick(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));

    fuzz::GuestImage img;
    if (!fuzz::load(data, size, img)) return 0;
    parse_every_chain(img);

    // Again from the same RAM, through the device.
    if (!fuzz::load(data, size, img)) return 0;
    const GuestMemory& mem = fuzz::guest_memory();
    Disk& disk = (img.flags & kFlagReadOnly) ? ro : rw;
    const std::uint64_t features =
        virtio::kFeatureVersion1 |
        ((img.flags & fuzz::kFlagEventIdx) ? virtio::kFeatureEventIdx : 0) |
        ((img.flags & kFlagIndirect) ? virtio::kFeatureIndirectDesc : 0);
    OneShotWatcher watcher;
    bool broken = false;
    const virtio::QueueSetup queues[] = {img.setup};
    const int kicks[] = {kick.get()}, calls[] = {-1};
    virtio::ActivateContext ctx{mem,
                                features,
                                queues,
                                kicks,
                                calls,
                                watcher,
                                [](std::uint16_t) {},
                                [&broken](std::string) { broken = true; }};
    if (disk.dev->activate(ctx)) {
        // Each kick serves everything available; the guest's stores come in between.
        for (std::size_t i = 0; i < img.steps() && !broken; ++i) {
            img.guest_store(mem, i);
            watcher.fire();
        }
        if (img.steps() == 0) watcher.fire();
    }
    disk.dev->reset();
    // The image never grows: no write lands past its last sector.
    struct stat st {};
    if (::fstat(disk.image.get(), &st) != 0 ||
        static_cast<std::uint64_t>(st.st_size) != kImageBytes)
        __builtin_trap();
    return 0;
}
