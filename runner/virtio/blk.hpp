#pragma once
// virtio-blk over a raw image file: read, write, flush (fdatasync: it reaches stable
// storage) and get-id; read-only disks refuse writes. Requests are parsed by a pure
// function (parse_blk_request) that a fuzzer drives with arbitrary chains. Requests are
// served synchronously on the disk's own thread (wants_own_thread), so slow or hung storage
// stalls neither the event loop nor another disk; the work one request, and one turn of the
// queue, may ask for is bounded (the limits below), and a turn ends early when a pause or
// the stop waits for it.
#include <atomic>
#include <cstdint>
#include <string>

#include "base/unique_fd.hpp"
#include "runner/virtio/queue_device.hpp"

namespace stockade::virtio {

inline constexpr std::uint32_t kBlkIn = 0, kBlkOut = 1, kBlkFlush = 4, kBlkGetId = 8;
inline constexpr std::uint8_t kBlkOk = 0, kBlkIoErr = 1, kBlkUnsupported = 2;
inline constexpr std::uint64_t kSectorSize = 512;
inline constexpr std::uint64_t kBlkFeatureSizeMax = 1ull << 1, kBlkFeatureSegMax = 1ull << 2,
                               kBlkFeatureRo = 1ull << 5, kBlkFeatureBlkSize = 1ull << 6,
                               kBlkFeatureFlush = 1ull << 9;

// Limits advertised in the configuration (seg_max, size_max), which Linux's driver honours
// (they become the queue's max_segments and max_segment_size). seg_max: the queue size less
// the header and the status, so a maximal request fits the ring. size_max 64 KiB: the block
// layer's default segment size (BLK_MAX_SEGMENT_SIZE) for drivers that set none; with
// seg_max it bounds a request to 254 x 64 KiB = 15.9 MiB (kBlkMaxRequestBytes), more than
// Linux sends by default (max_sectors_kb: 1280 KiB), and no setting in the guest raises it.
// More segments than seg_max is a malformed chain (NEEDS_RESET); a larger segment is an
// error in that request only (VIRTIO_BLK_S_IOERR).
inline constexpr std::uint32_t kBlkSegMax = 254;
inline constexpr std::uint32_t kBlkSizeMax = 64 * 1024;
inline constexpr std::uint64_t kBlkMaxRequestBytes = std::uint64_t{kBlkSegMax} * kBlkSizeMax;
// Bytes read or written after which a turn of the queue ends (besides kServeBudget's
// chains, which alone would allow 64 maximal requests, a GiB): about one maximal request.
inline constexpr std::uint64_t kBlkTurnBytes = 16 << 20;

struct BlkRequest {
    std::uint32_t type = 0;
    std::uint64_t sector = 0;
    std::vector<Descriptor> data;  // readable (OUT) or writable (IN, GET_ID) buffers
    Descriptor status{};           // one byte, the last writable byte of the chain
};

// Splits a chain into header, data and status; refuses malformed requests (short
// header, no status byte, data in the wrong direction).
[[nodiscard]] Result<BlkRequest> parse_blk_request(const Chain& chain, const GuestMemory& memory);

class Blk : public QueueDevice {
  public:
    // `fd` is the open image (O_RDWR, or O_RDONLY when read_only); `id` is what GET_ID says.
    [[nodiscard]] static Result<std::unique_ptr<VirtioDevice>> create(UniqueFd fd, bool read_only,
                                                                      std::string id);

    std::uint32_t device_type() const override { return kTypeBlock; }
    std::string name() const override { return "blk"; }
    std::uint64_t offered_features() const override;
    std::uint16_t queue_count() const override { return 1; }
    void config_read(std::uint64_t offset, std::span<std::uint8_t> out) override;
    // Requests and bytes served, flushes that reached stable storage (fdatasync), failed
    // requests (those over the size limits among them), the driver's flush requests (fewer
    // fdatasyncs: see serve) and the queue's counters.
    std::string stats() override;
    std::optional<SnapshotDisk> snapshot_disk() const override {
        if (read_only_) return std::nullopt;
        return SnapshotDisk{fd_.get(), bytes_};
    }
    std::uint32_t pci_class() const override { return 0x010000; }  // mass storage
    bool wants_own_thread() const override { return true; }

  protected:
    // One turn of requests. Flushes are coalesced: one with nothing written since the last
    // completed fdatasync is answered at once, the others of the turn are answered together
    // after one fdatasync at its end.
    Result<> serve(std::uint16_t q, SplitQueue& queue, const GuestMemory& memory) override;

  private:
    struct PendingFlush {
        std::uint16_t head;
        std::uint64_t status;  // guest address of its status byte
    };
    Blk(UniqueFd fd, bool ro, std::string id, std::uint64_t bytes)
        : fd_(std::move(fd)), read_only_(ro), id_(std::move(id)), bytes_(bytes) {}
    [[nodiscard]] Result<> serve_requests(SplitQueue& queue, const GuestMemory& memory,
                                          std::vector<PendingFlush>& flushes);
    [[nodiscard]] Result<> finish_flushes(SplitQueue& queue, const GuestMemory& memory,
                                          const std::vector<PendingFlush>& flushes);
    // Carries out a parsed request (not a flush); returns the status byte and how much was
    // written to the guest's buffers.
    std::uint8_t execute(const BlkRequest& r, const GuestMemory& memory, std::uint32_t& written);
    std::uint8_t transfer(const BlkRequest& r, const GuestMemory& memory, std::uint32_t& written);

    UniqueFd fd_;
    bool read_only_;
    std::string id_;
    std::uint64_t bytes_;
    bool dirty_ = false;  // written since the last completed fdatasync (under mu_)
    std::atomic<std::uint64_t> reads_{0}, writes_{0}, read_bytes_{0}, written_bytes_{0},
        flushes_{0}, flush_requests_{0}, errors_{0}, oversized_{0};
};

}  // namespace stockade::virtio
