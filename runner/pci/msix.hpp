#pragma once
// MSI-X for one function: the capability's control word, the vector table and the PBA,
// and what they mean for delivery. Each vector owns an eventfd and a GSI; the eventfd is
// what a device (or a vhost worker) writes to interrupt the guest. While a vector is
// masked its eventfd is detached from KVM, so writes accumulate in its counter and KVM
// delivers them when the vector is unmasked (KVM polls an eventfd when it is attached).
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "base/error.hpp"
#include "base/rate_limit.hpp"
#include "base/unique_fd.hpp"
#include "runner/kvm/irq_router.hpp"

namespace stockade::pci {

inline constexpr std::uint16_t kMsixEnable = 1u << 15, kMsixFunctionMask = 1u << 14;
inline constexpr std::uint32_t kMsixVectorMasked = 1;
inline constexpr std::uint16_t kNoVector = 0xffff;  // virtio's VIRTIO_MSI_NO_VECTOR

// The bytes of the vector table and of the pending-bit array for `vectors` vectors.
[[nodiscard]] constexpr std::uint64_t msix_table_bytes(std::uint32_t vectors) {
    return std::uint64_t{vectors} * 16;
}
[[nodiscard]] constexpr std::uint64_t msix_pba_bytes(std::uint32_t vectors) {
    return (std::uint64_t{vectors} + 63) / 64 * 8;
}
// Which bytes of the capability's body (after id and next) the guest may write: the enable
// and function-mask bits of the message control.
inline constexpr std::array<std::uint8_t, 10> kMsixCapabilityWritable = {
    0x00, static_cast<std::uint8_t>((kMsixEnable | kMsixFunctionMask) >> 8)};

struct MsixEntry {
    std::uint64_t address = 0;
    std::uint32_t data = 0;
    std::uint32_t control = kMsixVectorMasked;
};

// What a snapshot keeps of MSI-X: the control word, the table, and which vectors have an
// interrupt waiting (raised while masked: it is delivered when the vector is unmasked).
struct MsixState {
    std::uint16_t control = 0;
    std::vector<MsixEntry> entries;
    std::vector<bool> pending;
};

class Msix {
  public:
    [[nodiscard]] static Result<Msix> create(kvm::MsiRouter& router, std::uint16_t vectors);

    [[nodiscard]] std::uint16_t vector_count() const {
        return static_cast<std::uint16_t>(entries_.size());
    }
    // The capability body (after id and next): control, table BIR/offset, PBA BIR/offset.
    [[nodiscard]] std::vector<std::uint8_t> capability(std::uint8_t table_bar,
                                                       std::uint32_t table_offset,
                                                       std::uint8_t pba_bar,
                                                       std::uint32_t pba_offset) const;
    // Message control as the guest wrote it (enable, function mask).
    void set_control(std::uint16_t control);
    [[nodiscard]] std::uint16_t control() const { return control_; }

    void table_read(std::uint64_t offset, std::span<std::uint8_t> out) const;
    void table_write(std::uint64_t offset, std::span<const std::uint8_t> in);
    void pba_read(std::uint64_t offset, std::span<std::uint8_t> out) const;

    // The eventfd to write to raise `vector`; -1 for an out-of-range vector.
    [[nodiscard]] int event_fd(std::uint16_t vector) const;
    // Raises `vector` (no-op for kNoVector or out of range).
    void notify(std::uint16_t vector) const;
    // Disconnects every vector (device reset, teardown).
    void reset();

    [[nodiscard]] const std::vector<MsixEntry>& entries() const { return entries_; }

    // Snapshots. state() leaves every pending interrupt pending. restore() takes a state of
    // the same vector count (else it refuses, changing nothing) and puts it in place as the
    // guest's own writes would, raising again each vector that was pending.
    [[nodiscard]] MsixState state() const;
    [[nodiscard]] Result<> restore(const MsixState& s);
    // Where the table's warnings (a route KVM refused) count: its function's (PciDevice).
    void share_warnings(const GuestWarnings& warnings) { warnings_ = warnings; }

  private:
    explicit Msix(kvm::MsiRouter& router) : router_(&router) {}
    void update(std::size_t vector);
    kvm::MsiRouter* router_;
    std::uint16_t control_ = 0;
    std::vector<MsixEntry> entries_;
    std::vector<UniqueFd> events_;
    std::vector<std::uint32_t> gsis_;
    std::vector<bool> attached_;
    GuestWarnings warnings_;
};

}  // namespace stockade::pci
