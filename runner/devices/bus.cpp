#include "runner/devices/bus.hpp"

#include <algorithm>
#include <mutex>

namespace stockade {

Result<> Bus::add(std::uint64_t base, std::uint64_t length, BusDevice& device, std::string what) {
    if (length == 0 || base + length < base)
        return fail("{} bus: bad range {:#x}+{:#x} for {}", name_, base, length, what);
    std::unique_lock lock(mu_);
    for (const Range& r : ranges_)
        if (base < r.base + r.length && r.base < base + length)
            return fail("{} bus: {} at {:#x}+{:#x} overlaps {}", name_, what, base, length, r.what);
    Range nr{base, length, &device, std::move(what)};
    ranges_.insert(std::upper_bound(ranges_.begin(), ranges_.end(), base,
                                    [](std::uint64_t b, const Range& r) { return b < r.base; }),
                   std::move(nr));
    return {};
}

bool Bus::remove(std::uint64_t base, const BusDevice& device) {
    std::unique_lock lock(mu_);
    auto it = std::find_if(ranges_.begin(), ranges_.end(),
                           [&](const Range& r) { return r.base == base && r.device == &device; });
    if (it == ranges_.end()) return false;
    ranges_.erase(it);
    return true;
}

const Bus::Range* Bus::find(std::uint64_t addr, std::uint64_t len) const {
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), addr,
                               [](std::uint64_t a, const Range& r) { return a < r.base; });
    if (it == ranges_.begin()) return nullptr;
    --it;
    // The access must lie wholly inside the range (no straddling into a neighbour).
    if (addr - it->base >= it->length || len > it->length - (addr - it->base)) return nullptr;
    return &*it;
}

bool Bus::read(std::uint64_t addr, std::span<std::uint8_t> data) const {
    std::shared_lock lock(mu_);
    const Range* r = find(addr, data.size());
    if (r == nullptr) {
        std::fill(data.begin(), data.end(), 0xff);
        return false;
    }
    r->device->read(addr - r->base, data);
    return true;
}

bool Bus::write(std::uint64_t addr, std::span<const std::uint8_t> data) const {
    std::shared_lock lock(mu_);
    const Range* r = find(addr, data.size());
    if (r == nullptr) return false;
    r->device->write(addr - r->base, data);
    return true;
}

}  // namespace stockade
