#pragma once
// A split virtqueue (virtio 1.2, 2.7) driven by a userspace device, with the guest as
// an adversary: every index, address, length and flag it wrote is checked before use.
// Descriptors are copied out of guest memory once and validated as copies, so the
// guest changing them afterwards cannot bypass a check. A violation is an Error; the
// device then stops using the queue (NEEDS_RESET).
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/guest_memory.hpp"
#include "runner/virtio/virtio.hpp"

namespace stockade::virtio {

inline constexpr std::uint16_t kDescNext = 1, kDescWrite = 2, kDescIndirect = 4;
inline constexpr std::uint16_t kAvailNoInterrupt = 1;
inline constexpr std::uint16_t kMaxQueueSize = 32768;

struct Descriptor {
    std::uint64_t addr;
    std::uint32_t len;
};

// One available request: what the device may read, then what it may write.
struct Chain {
    std::uint16_t head = 0;
    std::vector<Descriptor> readable;
    std::vector<Descriptor> writable;
    [[nodiscard]] std::uint64_t readable_bytes() const;
    [[nodiscard]] std::uint64_t writable_bytes() const;
};

class SplitQueue {
  public:
    // Checks size (power of two, <= max), alignment and that the three rings lie in RAM.
    [[nodiscard]] static Result<SplitQueue> create(const GuestMemory& memory,
                                                   const QueueSetup& setup, bool event_idx,
                                                   std::uint16_t max_size);

    // The next available chain, validated; nullopt when the driver has made none. With
    // EVENT_IDX, finding the ring empty is what asks the driver for the next kick.
    [[nodiscard]] Result<std::optional<Chain>> pop();
    // Returns a chain to the driver with `written` bytes filled in.
    [[nodiscard]] Result<> push_used(std::uint16_t head, std::uint32_t written);
    // Whether the driver wants an interrupt for what was pushed since the last call.
    [[nodiscard]] Result<bool> should_notify();
    // Whether the driver made more chains available; when not, with EVENT_IDX, the driver
    // is asked to kick for the next one (as pop() does).
    [[nodiscard]] Result<bool> has_available();
    // Serving in turns (QueueDevice): after begin_turn(n), pop() hands out at most n chains
    // and then reports none, even while the driver keeps making more available; end_turn()
    // spends what is left of the turn. turn_cut_short() says whether pop() found chains it
    // did not hand out (they wait for the next turn). Outside a turn pop() has no limit.
    void begin_turn(std::uint32_t chains);
    void end_turn() { turn_left_ = 0; }
    [[nodiscard]] bool turn_cut_short() const { return turn_cut_short_; }

    // Snapshots: where the queue stands, and a fresh queue going on from there. The used
    // index in guest memory must be p.next_used, the device must have used every chain it
    // took (next_avail == next_used: saved quiescent), and the chains the driver has made
    // available since may not be more than a queue.
    [[nodiscard]] QueuePosition position() const { return {last_avail_, next_used_}; }
    [[nodiscard]] Result<> resume_at(QueuePosition p);

    [[nodiscard]] std::uint16_t size() const { return size_; }
    [[nodiscard]] std::uint16_t last_avail() const { return last_avail_; }
    [[nodiscard]] std::uint16_t next_used() const { return next_used_; }

  private:
    SplitQueue(const GuestMemory& m, const QueueSetup& s, bool event_idx)
        : mem_(&m),
          size_(s.size),
          desc_(s.desc),
          avail_(s.driver),
          used_(s.device),
          event_idx_(event_idx) {}
    [[nodiscard]] Result<std::uint16_t> avail_idx() const;
    [[nodiscard]] Result<std::uint16_t> avail_idx_or_arm();
    [[nodiscard]] Result<> walk(std::uint64_t table, std::uint32_t entries, std::uint16_t first,
                                bool indirect, Chain& chain, std::uint32_t& budget) const;

    const GuestMemory* mem_;
    std::uint16_t size_;
    std::uint64_t desc_, avail_, used_;
    bool event_idx_;
    std::uint16_t last_avail_ = 0;
    std::uint16_t next_used_ = 0;
    std::uint16_t signalled_used_ = 0;
    bool signalled_valid_ = false;
    std::uint32_t turn_left_ = UINT32_MAX;
    bool turn_cut_short_ = false;
};

// A position in a chain's descriptors, which ChainReader and ChainWriter read or write
// as one byte stream.
class ChainCursor {
  public:
    // The bytes from the position to the end of the chain.
    [[nodiscard]] std::uint64_t remaining() const;

  protected:
    ChainCursor(const GuestMemory& m, std::span<const Descriptor> d) : mem_(m), descs_(d) {}
    // Moves the position on by `n` bytes inside the current descriptor (to the start of the
    // next one when that ends the current one).
    void step(std::uint64_t n);
    // Walks the next `size` bytes one descriptor's piece at a time: access(gpa, done, n) for
    // the n bytes at gpa that follow the `done` already walked, then moved(n). Fails with
    // `short_chain` when the chain ends first.
    template <typename Access, typename Moved>
    [[nodiscard]] Result<> walk(std::size_t size, const char* short_chain, Access access,
                                Moved moved);

    const GuestMemory& mem_;
    std::span<const Descriptor> descs_;
    std::size_t index_ = 0;
    std::uint64_t offset_ = 0;
};

class ChainReader : public ChainCursor {
  public:
    ChainReader(const GuestMemory& m, std::span<const Descriptor> d) : ChainCursor(m, d) {}
    // Copies exactly out.size() bytes or fails (short chain).
    [[nodiscard]] Result<> read(std::span<std::uint8_t> out);
    // The remaining bytes as guest-memory spans (for zero-copy I/O).
    [[nodiscard]] Result<std::vector<std::span<std::uint8_t>>> spans(std::uint64_t max);
};

class ChainWriter : public ChainCursor {
  public:
    ChainWriter(const GuestMemory& m, std::span<const Descriptor> d) : ChainCursor(m, d) {}
    [[nodiscard]] Result<> write(std::span<const std::uint8_t> in);
    [[nodiscard]] std::uint64_t written() const { return written_; }
    [[nodiscard]] Result<std::vector<std::span<std::uint8_t>>> spans(std::uint64_t max);
    void advance(std::uint64_t n);

  private:
    std::uint64_t written_ = 0;
};

}  // namespace stockade::virtio
