#pragma once
// virtio-blk over a raw image file: read, write, flush (fdatasync: it reaches stable
// storage) and get-id; read-only disks refuse writes. Requests are parsed by a pure
// function (parse_blk_request) that a fuzzer drives with arbitrary chains.
#include <atomic>
#include <cstdint>
#include <string>

#include "base/unique_fd.hpp"
#include "runner/virtio/queue_device.hpp"

namespace stockade::virtio {

inline constexpr std::uint32_t kBlkIn = 0, kBlkOut = 1, kBlkFlush = 4, kBlkGetId = 8;
inline constexpr std::uint8_t kBlkOk = 0, kBlkIoErr = 1, kBlkUnsupported = 2;
inline constexpr std::uint64_t kSectorSize = 512;
inline constexpr std::uint64_t kBlkFeatureSegMax = 1ull << 2, kBlkFeatureRo = 1ull << 5,
                               kBlkFeatureBlkSize = 1ull << 6, kBlkFeatureFlush = 1ull << 9;

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
    // Requests and bytes served, and flushes that reached stable storage (fdatasync).
    std::string stats() override;
    std::uint32_t pci_class() const override { return 0x010000; }  // mass storage

  protected:
    Result<> serve(std::uint16_t q, SplitQueue& queue, const GuestMemory& memory) override;

  private:
    Blk(UniqueFd fd, bool ro, std::string id, std::uint64_t bytes)
        : fd_(std::move(fd)), read_only_(ro), id_(std::move(id)), bytes_(bytes) {}
    // Carries out a parsed request; returns the status byte and how much was written to
    // the guest's buffers.
    std::uint8_t execute(const BlkRequest& r, const GuestMemory& memory, std::uint32_t& written);

    UniqueFd fd_;
    bool read_only_;
    std::string id_;
    std::uint64_t bytes_;
    std::atomic<std::uint64_t> reads_{0}, writes_{0}, read_bytes_{0}, written_bytes_{0},
        flushes_{0}, errors_{0};
};

}  // namespace stockade::virtio
