#include "runner/pci/config_space.hpp"

#include <algorithm>
#include <cstring>

namespace stockade::pci {

ConfigSpace::ConfigSpace(const DeviceIdentity& id) {
    set_u16(0x00, id.vendor);
    set_u16(0x02, id.device);
    bytes_[0x08] = id.revision;
    bytes_[0x09] = static_cast<std::uint8_t>(id.class_code);
    bytes_[0x0a] = static_cast<std::uint8_t>(id.class_code >> 8);
    bytes_[0x0b] = static_cast<std::uint8_t>(id.class_code >> 16);
    bytes_[0x0e] = 0x00;  // header type 0, single function
    set_u16(0x2c, id.subsystem_vendor);
    set_u16(0x2e, id.subsystem);
    // Writable: command (I/O, memory, bus master, parity, SERR, INTx disable), cache line
    // size, latency timer, interrupt line. Everything else is read-only.
    const std::uint16_t cmd_mask = kCommandIo | kCommandMemory | kCommandBusMaster | (1u << 6) |
                                   (1u << 8) | kCommandIntxDisable;
    wmask_[kOffCommand] = static_cast<std::uint8_t>(cmd_mask);
    wmask_[kOffCommand + 1] = static_cast<std::uint8_t>(cmd_mask >> 8);
    wmask_[0x0c] = 0xff;
    wmask_[0x0d] = 0xff;
    wmask_[kOffIntLine] = 0xff;
}

void ConfigSpace::read(std::size_t offset, std::span<std::uint8_t> out) const {
    for (std::size_t i = 0; i < out.size(); ++i)
        out[i] = offset + i < kConfigSize ? bytes_[offset + i] : 0xff;
}

void ConfigSpace::write(std::size_t offset, std::span<const std::uint8_t> in) {
    for (std::size_t i = 0; i < in.size() && offset + i < kConfigSize; ++i) {
        const std::uint8_t m = wmask_[offset + i];
        bytes_[offset + i] = static_cast<std::uint8_t>((bytes_[offset + i] & ~m) | (in[i] & m));
    }
}

std::size_t ConfigSpace::add_capability(std::uint8_t id, std::span<const std::uint8_t> body,
                                        std::span<const std::uint8_t> writable) {
    if (body.size() > capability_room() || writable.size() > body.size()) return 0;  // no room
    const std::size_t off = next_cap_;
    bytes_[off] = id;
    bytes_[off + 1] = 0;
    std::copy(body.begin(), body.end(), bytes_.begin() + static_cast<std::ptrdiff_t>(off + 2));
    std::copy(writable.begin(), writable.end(),
              wmask_.begin() + static_cast<std::ptrdiff_t>(off + 2));
    if (last_cap_ == 0) {
        bytes_[kOffCapPtr] = static_cast<std::uint8_t>(off);
        set_u16(kOffStatus, u16(kOffStatus) | kStatusCapList);
    } else {
        bytes_[last_cap_ + 1] = static_cast<std::uint8_t>(off);
    }
    last_cap_ = off;
    next_cap_ = (off + 2 + body.size() + 3) & ~std::size_t{3};
    return off;
}

std::uint16_t ConfigSpace::u16(std::size_t off) const {
    std::uint16_t v;
    std::memcpy(&v, bytes_.data() + off, 2);
    return v;
}
void ConfigSpace::set_u16(std::size_t off, std::uint16_t v) {
    std::memcpy(bytes_.data() + off, &v, 2);
}

}  // namespace stockade::pci
