#pragma once
// virtio-rng: one queue; every writable buffer the driver offers is filled from getrandom.
#include "runner/virtio/queue_device.hpp"

namespace stockade::virtio {

class Rng : public QueueDevice {
  public:
    std::uint32_t device_type() const override { return kTypeRng; }
    std::string name() const override { return "rng"; }
    std::uint64_t offered_features() const override { return kTransportFeatures; }
    std::uint16_t queue_count() const override { return 1; }
    void config_read(std::uint64_t, std::span<std::uint8_t> out) override {
        std::fill(out.begin(), out.end(), 0);
    }

  protected:
    Result<> serve(std::uint16_t q, SplitQueue& queue, const GuestMemory& memory) override;
};

}  // namespace stockade::virtio
