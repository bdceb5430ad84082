#include "runner/virtio/queue.hpp"

#include <atomic>
#include <cstring>

#include "base/uapi.hpp"

namespace stockade::virtio {
namespace {

// Ring fields shared with the guest: accessed atomically, with acquire/release order.
Result<std::uint16_t> load_u16(const GuestMemory& m, std::uint64_t gpa) {
    auto s = STOCKADE_TRY(m.slice(gpa, 2));
    return std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(s.data()))
        .load(std::memory_order_acquire);
}

Result<> store_u16(const GuestMemory& m, std::uint64_t gpa, std::uint16_t v) {
    auto s = STOCKADE_TRY(m.slice(gpa, 2));
    std::atomic_ref<std::uint16_t>(*reinterpret_cast<std::uint16_t*>(s.data()))
        .store(v, std::memory_order_release);
    return {};
}

// A descriptor as the driver wrote it (virtio 1.2, 2.7.5): the kernel's vring_desc, from
// <linux/virtio_ring.h> through base/uapi.hpp.
using RawDesc = vring_desc;
static_assert(sizeof(RawDesc) == 16);

}  // namespace

std::uint64_t Chain::readable_bytes() const {
    std::uint64_t n = 0;
    for (const auto& d : readable)
        n += d.len;
    return n;
}

std::uint64_t Chain::writable_bytes() const {
    std::uint64_t n = 0;
    for (const auto& d : writable)
        n += d.len;
    return n;
}

Result<SplitQueue> SplitQueue::create(const GuestMemory& m, const QueueSetup& s, bool event_idx,
                                      std::uint16_t max_size) {
    if (s.size == 0 || (s.size & (s.size - 1)) != 0 || s.size > max_size || s.size > kMaxQueueSize)
        return fail("queue size {} is not a power of two up to {}", s.size, max_size);
    if (s.desc % 16 != 0 || s.driver % 2 != 0 || s.device % 4 != 0)
        return fail("queue rings are misaligned (desc {:#x}, avail {:#x}, used {:#x})", s.desc,
                    s.driver, s.device);
    const std::uint64_t n = s.size;
    if (!m.contains(s.desc, 16 * n) || !m.contains(s.driver, 6 + 2 * n) ||
        !m.contains(s.device, 6 + 8 * n))
        return fail("queue rings are not in guest RAM (desc {:#x}, avail {:#x}, used {:#x})",
                    s.desc, s.driver, s.device);
    return SplitQueue(m, s, event_idx);
}

Result<std::uint16_t> SplitQueue::avail_idx() const {
    return load_u16(*mem_, avail_ + 2);
}

Result<std::uint16_t> SplitQueue::avail_idx_or_arm() {
    const std::uint16_t idx = STOCKADE_TRY(avail_idx());
    if (idx != last_avail_ || !event_idx_) return idx;
    // Drained: ask to be kicked for the next chain, then look once more, since a chain the
    // driver made available before it could see the request came without a kick. While
    // chains are still being served the request is left where it was, so a driver that
    // keeps adding does not kick (a VM exit each) for every one of them.
    STOCKADE_TRY_VOID(store_u16(*mem_, used_ + 4 + 8ull * size_, last_avail_));
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return avail_idx();
}

Result<> SplitQueue::resume_at(QueuePosition p) {
    const std::uint16_t used = STOCKADE_TRY(load_u16(*mem_, used_ + 2));
    const std::uint16_t avail = STOCKADE_TRY(avail_idx());
    if (used != p.next_used)
        return fail("the used index in guest memory is {}, the saved queue's {}", used,
                    p.next_used);
    // A device is saved quiescent: every chain it took is used or handed back, so the two
    // agree (a chain counted in flight would never be completed after the restore).
    if (p.next_avail != p.next_used || static_cast<std::uint16_t>(avail - p.next_avail) > size_)
        return fail(
            "saved queue position (avail {}, used {}) does not fit the ring (avail index "
            "{}, size {})",
            p.next_avail, p.next_used, avail, size_);
    last_avail_ = p.next_avail;
    next_used_ = p.next_used;
    signalled_valid_ = false;  // the next should_notify interrupts: one more than needed at most
    return {};
}

Result<bool> SplitQueue::has_available() {
    return STOCKADE_TRY(avail_idx_or_arm()) != last_avail_;
}

// Follows a chain through `table` (the ring's own table, or an indirect one), copying and
// checking each descriptor. `budget` bounds the total chain length, so loops end.
Result<> SplitQueue::walk(std::uint64_t table, std::uint32_t entries, std::uint16_t first,
                          bool indirect, Chain& chain, std::uint32_t& budget) const {
    std::uint16_t index = first;
    for (;;) {
        if (index >= entries)
            return fail("descriptor index {} is outside a table of {}", index, entries);
        if (budget == 0) return fail("descriptor chain is longer than the queue (a loop?)");
        --budget;
        const RawDesc d = STOCKADE_TRY(mem_->read_obj<RawDesc>(table + 16ull * index));
        if (d.flags & kDescIndirect) {
            if (indirect) return fail("an indirect table refers to another indirect table");
            if (d.flags & kDescNext) return fail("descriptor is both indirect and chained");
            if (d.len == 0 || d.len % 16 != 0)
                return fail("indirect table length {} is not a multiple of 16", d.len);
            const std::uint32_t n = d.len / 16;
            if (n > kMaxQueueSize) return fail("indirect table of {} entries is too long", n);
            if (!mem_->contains(d.addr, d.len))
                return fail("indirect table {:#x}+{} is outside guest RAM", d.addr, d.len);
            // The indirect chain counts against the same budget as the direct one, but the
            // descriptor naming the table is not a buffer of the chain: a driver may put a
            // whole queue-size chain in one table (Linux does, for seg_max-sized requests).
            ++budget;
            return walk(d.addr, n, 0, true, chain, budget);
        }
        if (!mem_->contains(d.addr, d.len))
            return fail("descriptor buffer {:#x}+{} is outside guest RAM", d.addr, d.len);
        if (d.flags & kDescWrite) {
            chain.writable.push_back({d.addr, d.len});
        } else {
            if (!chain.writable.empty())
                return fail("a device-readable descriptor follows a writable one");
            chain.readable.push_back({d.addr, d.len});
        }
        if (!(d.flags & kDescNext)) return {};
        index = d.next;
    }
}

Result<std::optional<Chain>> SplitQueue::pop() {
    const std::uint16_t idx = STOCKADE_TRY(avail_idx_or_arm());
    if (idx == last_avail_) return std::optional<Chain>{};
    if (static_cast<std::uint16_t>(idx - last_avail_) > size_)
        return fail("avail index moved by {} in a queue of {}",
                    static_cast<std::uint16_t>(idx - last_avail_), size_);
    if (turn_left_ == 0) {
        turn_cut_short_ = true;
        return std::optional<Chain>{};
    }
    --turn_left_;
    const std::uint16_t head =
        STOCKADE_TRY(mem_->read_obj<std::uint16_t>(avail_ + 4 + 2ull * (last_avail_ % size_)));
    ++last_avail_;
    Chain chain;
    chain.head = head;
    std::uint32_t budget = size_;
    STOCKADE_TRY_VOID(walk(desc_, size_, head, false, chain, budget));
    return std::optional<Chain>(std::move(chain));
}

void SplitQueue::begin_turn(std::uint32_t chains) {
    turn_left_ = chains;
    turn_cut_short_ = false;
}

Result<> SplitQueue::push_used(std::uint16_t head, std::uint32_t written) {
    const std::uint64_t elem = used_ + 4 + 8ull * (next_used_ % size_);
    const std::uint32_t id = head;
    STOCKADE_TRY_VOID(mem_->write_obj(elem, id));
    STOCKADE_TRY_VOID(mem_->write_obj(elem + 4, written));
    ++next_used_;
    return store_u16(*mem_, used_ + 2, next_used_);
}

Result<bool> SplitQueue::should_notify() {
    // The used index must be visible before the driver's wishes are read.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!event_idx_) {
        const std::uint16_t flags = STOCKADE_TRY(load_u16(*mem_, avail_));
        return (flags & kAvailNoInterrupt) == 0;
    }
    const std::uint16_t used_event = STOCKADE_TRY(load_u16(*mem_, avail_ + 4 + 2ull * size_));
    const std::uint16_t old = signalled_used_, now = next_used_;
    const bool valid = signalled_valid_;
    signalled_used_ = now;
    signalled_valid_ = true;
    if (!valid) return true;
    // vring_need_event(): the driver asked for an interrupt once used passes used_event.
    return static_cast<std::uint16_t>(now - used_event - 1) < static_cast<std::uint16_t>(now - old);
}

std::uint64_t ChainCursor::remaining() const {
    std::uint64_t n = 0;
    for (std::size_t i = index_; i < descs_.size(); ++i)
        n += descs_[i].len;
    return n - offset_;
}

void ChainCursor::step(std::uint64_t n) {
    offset_ += n;
    if (offset_ == descs_[index_].len) {
        ++index_;
        offset_ = 0;
    }
}

template <typename Access, typename Moved>
Result<> ChainCursor::walk(std::size_t size, const char* short_chain, Access access, Moved moved) {
    std::size_t done = 0;
    while (done < size) {
        if (index_ >= descs_.size()) return fail("{}", short_chain);
        const Descriptor& d = descs_[index_];
        const std::uint64_t n = std::min<std::uint64_t>(d.len - offset_, size - done);
        STOCKADE_TRY_VOID(access(d.addr + offset_, done, n));
        done += n;
        moved(n);
    }
    return {};
}

Result<> ChainReader::read(std::span<std::uint8_t> out) {
    return walk(
        out.size(), "request is shorter than its header",
        [&](std::uint64_t gpa, std::size_t done, std::uint64_t n) {
            return mem_.read(gpa, out.subspan(done, n));
        },
        [this](std::uint64_t n) { step(n); });
}

Result<std::vector<std::span<std::uint8_t>>> ChainReader::spans(std::uint64_t max) {
    std::vector<std::span<std::uint8_t>> out;
    while (max > 0 && index_ < descs_.size()) {
        const Descriptor& d = descs_[index_];
        const std::uint64_t n = std::min<std::uint64_t>(d.len - offset_, max);
        if (n > 0) out.push_back(STOCKADE_TRY(mem_.slice(d.addr + offset_, n)));
        max -= n;
        step(n);
    }
    return out;
}

Result<> ChainWriter::write(std::span<const std::uint8_t> in) {
    return walk(
        in.size(), "the driver's buffers are too small",
        [&](std::uint64_t gpa, std::size_t done, std::uint64_t n) {
            return mem_.write(gpa, in.subspan(done, n));
        },
        [this](std::uint64_t n) { advance(n); });
}

void ChainWriter::advance(std::uint64_t n) {
    written_ += n;
    while (n > 0 && index_ < descs_.size()) {
        const std::uint64_t part = std::min<std::uint64_t>(descs_[index_].len - offset_, n);
        step(part);
        n -= part;
    }
    while (index_ < descs_.size() && descs_[index_].len == 0)
        ++index_;
}

Result<std::vector<std::span<std::uint8_t>>> ChainWriter::spans(std::uint64_t max) {
    std::vector<std::span<std::uint8_t>> out;
    std::size_t i = index_;
    std::uint64_t off = offset_;
    while (max > 0 && i < descs_.size()) {
        const std::uint64_t n = std::min<std::uint64_t>(descs_[i].len - off, max);
        if (n > 0) out.push_back(STOCKADE_TRY(mem_.slice(descs_[i].addr + off, n)));
        max -= n;
        ++i;
        off = 0;
    }
    return out;
}

}  // namespace stockade::virtio
