#include "runner/virtio/blk.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "base/log.hpp"

namespace stockade::virtio {
namespace {

struct BlkHeader {
    std::uint32_t type;
    std::uint32_t reserved;
    std::uint64_t sector;
};
static_assert(sizeof(BlkHeader) == 16);

std::uint64_t data_bytes(const BlkRequest& r) {
    std::uint64_t n = 0;
    for (const auto& d : r.data)
        n += d.len;
    return n;
}

// Answers a request: its status byte, then the chain back with what was written.
Result<> complete(SplitQueue& queue, const GuestMemory& memory, std::uint16_t head,
                  std::uint64_t status_at, std::uint8_t status, std::uint32_t written) {
    STOCKADE_TRY_VOID(memory.write_obj(status_at, status));
    return queue.push_used(head, written + 1);
}

}  // namespace

Result<BlkRequest> parse_blk_request(const Chain& chain, const GuestMemory& memory) {
    BlkRequest r;
    ChainReader reader(memory, chain.readable);
    BlkHeader h{};
    STOCKADE_TRY_VOID(reader.read(std::span(reinterpret_cast<std::uint8_t*>(&h), sizeof h)));
    r.type = h.type;
    r.sector = h.sector;
    // The status byte is the last byte of the last writable descriptor.
    if (chain.writable.empty()) return fail("block request has no status byte");
    Descriptor last = chain.writable.back();
    if (last.len == 0) return fail("block request's status descriptor is empty");
    r.status = {last.addr + last.len - 1, 1};
    std::vector<Descriptor> writable(chain.writable.begin(), chain.writable.end() - 1);
    if (last.len > 1) writable.push_back({last.addr, last.len - 1});
    // What follows the header in the readable part is write data.
    std::vector<Descriptor> readable;
    std::uint64_t skip = sizeof(BlkHeader);
    for (const Descriptor& d : chain.readable) {
        if (skip >= d.len) {
            skip -= d.len;
            continue;
        }
        readable.push_back({d.addr + skip, static_cast<std::uint32_t>(d.len - skip)});
        skip = 0;
    }
    switch (r.type) {
        case kBlkOut:
            if (!writable.empty()) return fail("write request has device-writable data");
            r.data = std::move(readable);
            break;
        case kBlkIn:
        case kBlkGetId:
            if (!readable.empty()) return fail("read request has device-readable data");
            r.data = std::move(writable);
            break;
        default:
            r.data.clear();  // flush and unknown types carry no data we look at
            break;
    }
    if (r.data.size() > kBlkSegMax) return fail("block request has {} segments", r.data.size());
    return r;
}

Result<std::unique_ptr<VirtioDevice>> Blk::create(UniqueFd fd, bool read_only, std::string id) {
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return fail_sys("stat of the disk image");
    std::uint64_t bytes = static_cast<std::uint64_t>(st.st_size);
    if (S_ISBLK(st.st_mode)) {
        off_t end = ::lseek(fd.get(), 0, SEEK_END);
        if (end < 0) return fail_sys("size of the block device");
        bytes = static_cast<std::uint64_t>(end);
    } else if (!S_ISREG(st.st_mode)) {
        return fail("disk image is neither a regular file nor a block device");
    }
    if (bytes % kSectorSize != 0)
        return fail("disk image size {} is not a multiple of 512 bytes", bytes);
    if (id.size() > 20) id.resize(20);
    return std::unique_ptr<VirtioDevice>(new Blk(std::move(fd), read_only, std::move(id), bytes));
}

std::uint64_t Blk::offered_features() const {
    return kTransportFeatures | kBlkFeatureSizeMax | kBlkFeatureSegMax | kBlkFeatureBlkSize |
           kBlkFeatureFlush | (read_only_ ? kBlkFeatureRo : 0);
}

void Blk::config_read(std::uint64_t offset, std::span<std::uint8_t> out) {
    // struct virtio_blk_config: capacity, size_max, seg_max, geometry, blk_size.
    std::uint8_t cfg[24] = {};
    const std::uint64_t capacity = bytes_ / kSectorSize;
    const std::uint32_t size_max = kBlkSizeMax, seg_max = kBlkSegMax, blk_size = kSectorSize;
    std::memcpy(cfg, &capacity, 8);
    std::memcpy(cfg + 8, &size_max, 4);
    std::memcpy(cfg + 12, &seg_max, 4);
    std::memcpy(cfg + 20, &blk_size, 4);
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = offset + i < sizeof cfg ? cfg[offset + i] : 0;
}

std::string Blk::stats() {
    auto get = [](const std::atomic<std::uint64_t>& v) {
        return v.load(std::memory_order_relaxed);
    };
    return fmt::format(
        "{} reads ({} KiB), {} writes ({} KiB), {} flushes, {} failed requests ({} oversized); "
        "{} flush requests; queue: {}",
        get(reads_), get(read_bytes_) >> 10, get(writes_), get(written_bytes_) >> 10, get(flushes_),
        get(errors_), get(oversized_), get(flush_requests_), queue_stats(0));
}

std::uint8_t Blk::transfer(const BlkRequest& r, const GuestMemory& memory, std::uint32_t& written) {
    // The advertised limits (the parser holds seg_max): a larger segment fails this request.
    for (const auto& d : r.data)
        if (d.len > kBlkSizeMax) {
            oversized_.fetch_add(1, std::memory_order_relaxed);
            return kBlkIoErr;
        }
    if (r.type == kBlkOut && read_only_) return kBlkIoErr;
    const std::uint64_t len = data_bytes(r);
    // Overflow-safe bounds check: sector and length both come from the guest.
    if (len % kSectorSize != 0 || r.sector > bytes_ / kSectorSize ||
        len > bytes_ - r.sector * kSectorSize)
        return kBlkIoErr;
    std::vector<iovec> iov;
    for (const auto& d : r.data) {
        auto s = memory.slice(d.addr, d.len);
        if (!s) return kBlkIoErr;
        iov.push_back({s->data(), s->size()});
    }
    if (r.type == kBlkOut) dirty_ = true;  // even a write that fails may have changed the image
    off_t at = static_cast<off_t>(r.sector * kSectorSize);
    std::size_t i = 0;
    while (i < iov.size()) {
        const int count = static_cast<int>(std::min<std::size_t>(iov.size() - i, IOV_MAX));
        ssize_t n = r.type == kBlkIn ? ::preadv(fd_.get(), iov.data() + i, count, at)
                                     : ::pwritev(fd_.get(), iov.data() + i, count, at);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return kBlkIoErr;
        at += n;
        if (r.type == kBlkIn) written += static_cast<std::uint32_t>(n);
        // Advance past what was transferred (partial transfers resume mid-iovec).
        auto left = static_cast<std::size_t>(n);
        while (i < iov.size() && left >= iov[i].iov_len)
            left -= iov[i++].iov_len;
        if (i < iov.size()) {
            iov[i].iov_base = static_cast<std::uint8_t*>(iov[i].iov_base) + left;
            iov[i].iov_len -= left;
        }
    }
    (r.type == kBlkIn ? reads_ : writes_).fetch_add(1, std::memory_order_relaxed);
    (r.type == kBlkIn ? read_bytes_ : written_bytes_).fetch_add(len, std::memory_order_relaxed);
    return kBlkOk;
}

std::uint8_t Blk::execute(const BlkRequest& r, const GuestMemory& memory, std::uint32_t& written) {
    written = 0;
    switch (r.type) {
        case kBlkIn:
        case kBlkOut:
            return transfer(r, memory, written);
        case kBlkGetId: {
            ChainWriter w(memory, r.data);
            std::uint8_t id[20] = {};
            std::memcpy(id, id_.data(), id_.size());
            const std::uint64_t n = std::min<std::uint64_t>(w.remaining(), sizeof id);
            if (!w.write(std::span(id, n))) return kBlkIoErr;
            written = static_cast<std::uint32_t>(n);
            return kBlkOk;
        }
        default:
            return kBlkUnsupported;
    }
}

Result<> Blk::serve(std::uint16_t, SplitQueue& queue, const GuestMemory& memory) {
    std::vector<PendingFlush> flushes;
    auto served = serve_requests(queue, memory, flushes);
    // The flushes taken are answered even when a later chain was malformed.
    auto finished = finish_flushes(queue, memory, flushes);
    if (!served) return served;
    return finished;
}

Result<> Blk::serve_requests(SplitQueue& queue, const GuestMemory& memory,
                             std::vector<PendingFlush>& flushes) {
    std::uint64_t moved = 0;
    for (;;) {
        auto chain = STOCKADE_TRY(queue.pop());
        if (!chain) return {};
        auto req = parse_blk_request(*chain, memory);
        if (!req) return std::unexpected(std::move(req).error());
        if (req->type == kBlkFlush) {
            flush_requests_.fetch_add(1, std::memory_order_relaxed);
            // Nothing written since the last fdatasync (or a read-only disk): nothing to make
            // durable. Otherwise one fdatasync at the end of the turn answers it.
            if (dirty_)
                flushes.push_back({chain->head, req->status.addr});
            else
                STOCKADE_TRY_VOID(
                    complete(queue, memory, chain->head, req->status.addr, kBlkOk, 0));
            continue;
        }
        std::uint32_t written = 0;
        const std::uint8_t status = execute(*req, memory, written);
        if (status != kBlkOk) errors_.fetch_add(1, std::memory_order_relaxed);
        STOCKADE_TRY_VOID(complete(queue, memory, chain->head, req->status.addr, status, written));
        if (status == kBlkOk && (req->type == kBlkIn || req->type == kBlkOut))
            moved += data_bytes(*req);
        if (moved >= kBlkTurnBytes || should_yield()) queue.end_turn();
    }
}

Result<> Blk::finish_flushes(SplitQueue& queue, const GuestMemory& memory,
                             const std::vector<PendingFlush>& flushes) {
    if (flushes.empty()) return {};
    std::uint8_t status = kBlkOk;
    if (::fdatasync(fd_.get()) == 0) {
        dirty_ = false;
        flushes_.fetch_add(1, std::memory_order_relaxed);
    } else {
        status = kBlkIoErr;
        errors_.fetch_add(flushes.size(), std::memory_order_relaxed);
    }
    for (const PendingFlush& f : flushes)
        STOCKADE_TRY_VOID(complete(queue, memory, f.head, f.status, status, 0));
    return {};
}

}  // namespace stockade::virtio
