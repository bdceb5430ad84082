#include "runner/pci/passthrough.hpp"

#include <algorithm>
#include <cstring>

#include "base/log.hpp"

namespace stockade::pci {
namespace {

constexpr std::uint64_t kPage = 4096;
constexpr std::size_t kMaxCapabilities = 48;  // a loop in the device's list ends here
constexpr std::uint16_t kMsixTableSizeMask = 0x07ff;
constexpr std::uint16_t kDeviceCommandBits = kCommandMemory | kCommandBusMaster;

std::uint16_t u16_at(std::span<const std::uint8_t> b, std::size_t off) {
    std::uint16_t v;
    std::memcpy(&v, b.data() + off, 2);
    return v;
}
std::uint32_t u32_at(std::span<const std::uint8_t> b, std::size_t off) {
    std::uint32_t v;
    std::memcpy(&v, b.data() + off, 4);
    return v;
}
bool overlaps(std::uint64_t a, std::uint64_t alen, std::uint64_t b, std::uint64_t blen) {
    return a < b + blen && b < a + alen;
}

// The identity a passed-through function shows the guest: the device's own, which must be
// an endpoint's (header type 0).
Result<DeviceIdentity> endpoint_identity(std::span<const std::uint8_t> c, const std::string& name) {
    const DeviceIdentity id{
        u16_at(c, 0x00), u16_at(c, 0x02),
        c[0x08],         c[0x09] | std::uint32_t{c[0x0a]} << 8 | std::uint32_t{c[0x0b]} << 16,
        u16_at(c, 0x2c), u16_at(c, 0x2e)};
    if (id.vendor == 0xffff || id.vendor == 0)
        return fail("{}: its configuration space reads vendor {:#06x} (no device)", name,
                    id.vendor);
    if ((c[0x0e] & 0x7f) != 0)
        return fail(
            "{}: header type {:#x} is not an endpoint's (0): bridges are not passed through", name,
            c[0x0e] & 0x7f);
    return id;
}

// The device's capabilities that matter to the guest: where MSI-X is (0: none) and the
// vendor-specific ones to copy read-only; the rest are hidden. The list is the device's:
// walked with every pointer checked, and a loop ends it.
struct FoundCapabilities {
    std::size_t msix_at = 0;
    std::vector<std::pair<std::size_t, std::uint8_t>> kept;  // device offset, id
};
FoundCapabilities walk_capabilities(std::span<const std::uint8_t> c) {
    FoundCapabilities found;
    if (!(u16_at(c, kOffStatus) & kStatusCapList)) return found;
    std::array<bool, kConfigSize> seen{};
    std::size_t at = c[kOffCapPtr] & 0xfc;
    for (std::size_t n = 0;
         at >= 0x40 && at + 2 <= kConfigSize && !seen[at] && n < kMaxCapabilities; ++n) {
        seen[at] = true;
        const std::uint8_t cap = c[at];
        if (cap == kCapMsix && found.msix_at == 0 && at + 12 <= kConfigSize) found.msix_at = at;
        if (cap == kCapVendor) found.kept.emplace_back(at, cap);
        at = c[at + 1] & 0xfc;
    }
    return found;
}

}  // namespace

std::vector<Range> direct_ranges(std::span<const Range> mappable, std::span<const Range> trapped) {
    std::vector<Range> out;
    for (const auto& [off, size] : mappable) {
        std::uint64_t begin = (off + kPage - 1) & ~(kPage - 1);
        const std::uint64_t end = (off + size) & ~(kPage - 1);
        // Trapped ranges widened to pages, in order; the pieces between them remain.
        std::vector<Range> holes;
        for (const auto& [t, tsize] : trapped)
            if (tsize != 0)
                holes.emplace_back(t & ~(kPage - 1), ((t + tsize + kPage - 1) & ~(kPage - 1)));
        std::sort(holes.begin(), holes.end());
        for (const auto& [hb, he] : holes) {
            if (he <= begin || hb >= end) continue;
            if (hb > begin) out.emplace_back(begin, hb - begin);
            begin = std::max(begin, he);
        }
        if (begin < end) out.emplace_back(begin, end - begin);
    }
    return out;
}

Result<std::unique_ptr<PassthroughFunction>> PassthroughFunction::create(PassthroughSetup setup,
                                                                         PassthroughIo& io,
                                                                         BarSlots& slots,
                                                                         kvm::MsiRouter& router) {
    const std::span<const std::uint8_t> c = setup.config;
    const std::string& name = setup.name;
    ConfigSpace config(STOCKADE_TRY(endpoint_identity(c, name)));
    const auto [msix_at, kept] = walk_capabilities(c);
    if (msix_at == 0)
        return fail(
            "{}: the device has no MSI-X capability (stockade passes through MSI-X "
            "devices only; INTx and MSI are not offered)",
            name);
    const std::uint16_t msix_control = u16_at(c, msix_at + 2);
    const std::uint32_t table = u32_at(c, msix_at + 4), pba = u32_at(c, msix_at + 8);
    std::uint32_t vectors = (msix_control & kMsixTableSizeMask) + 1u;
    if (setup.msix_vectors != 0) vectors = std::min(vectors, setup.msix_vectors);
    const MsixPlace table_at{static_cast<std::uint8_t>(table & 7),
                             {table & ~7u, msix_table_bytes(vectors)}};
    const MsixPlace pba_at{static_cast<std::uint8_t>(pba & 7),
                           {pba & ~7u, msix_pba_bytes(vectors)}};
    for (const MsixPlace& p : {table_at, pba_at})
        if (p.bar > 5 || setup.bars[p.bar].size < p.range.first + p.range.second)
            return fail(
                "{}: its MSI-X table (BAR {} at {:#x}) or PBA (BAR {} at {:#x}) lies outside "
                "the BAR",
                name, table_at.bar, table_at.range.first, pba_at.bar, pba_at.range.first);
    auto msix = STOCKADE_TRY(Msix::create(router, static_cast<std::uint16_t>(vectors)));

    // MSI-X: the same table and PBA places as the device.
    const std::size_t msix_cap = config.add_capability(
        kCapMsix,
        msix.capability(table_at.bar, static_cast<std::uint32_t>(table_at.range.first), pba_at.bar,
                        static_cast<std::uint32_t>(pba_at.range.first)),
        kMsixCapabilityWritable);
    for (const auto& [at, cap] : kept) {
        const std::size_t len = c[at + 2];  // a vendor capability's length, header included
        if (len < 3 || at + len > kConfigSize || len - 2 > config.capability_room()) {
            log::warn("{}: vendor capability at {:#x} ({} bytes) hidden: it does not fit", name, at,
                      len);
            continue;
        }
        config.add_capability(cap, c.subspan(at + 2, len - 2));
    }

    std::unique_ptr<PassthroughFunction> f(
        new PassthroughFunction(std::move(setup), io, slots, std::move(msix), std::move(config)));
    f->msix_cap_ = msix_cap;
    f->table_ = table_at;
    f->pba_ = pba_at;
    // The device starts with decoding and bus mastering off and INTx disabled; the guest's
    // command writes turn the first two on.
    f->push_command();
    return f;
}

PassthroughFunction::PassthroughFunction(PassthroughSetup setup, PassthroughIo& io, BarSlots& slots,
                                         Msix msix, ConfigSpace config)
    : setup_(std::move(setup)),
      io_(io),
      slots_(slots),
      msix_(std::move(msix)),
      config_(std::move(config)) {
    msix_.share_warnings(warnings());
}

PassthroughFunction::~PassthroughFunction() {
    // The VM and the device descriptor go with the sandbox; closing the device resets it
    // and turns its interrupts off. Nothing here calls the kernel.
}

std::vector<BarSpec> PassthroughFunction::bar_specs() const {
    std::vector<BarSpec> specs;
    for (std::size_t i = 0; i < 6; ++i) {
        const PassthroughBar& b = setup_.bars[i];
        std::uint64_t size = b.size;
        if (size != 0) {
            size = std::max<std::uint64_t>(size, kPage);
            while (size & (size - 1))  // a BAR's size is a power of two; keep it one
                size = (size | (size - 1)) + 1;
        }
        specs.push_back({size, b.is_64bit});
        if (b.is_64bit) ++i;  // the upper half is the next register
    }
    return specs;
}

std::vector<Range> PassthroughFunction::direct(std::size_t bar) const {
    if (bar >= 6 || setup_.bars[bar].host == nullptr) return {};
    std::vector<Range> trapped;
    for (const MsixPlace* p : {&table_, &pba_})
        if (p->bar == bar) trapped.push_back(p->range);
    return direct_ranges(setup_.bars[bar].mappable, trapped);
}

void PassthroughFunction::config_read(std::size_t offset, std::span<std::uint8_t> out) {
    std::lock_guard lock(mu_);
    config_.read(offset, out);
}

void PassthroughFunction::config_write(std::size_t offset, std::span<const std::uint8_t> in) {
    std::lock_guard lock(mu_);
    config_.write(offset, in);
    if (overlaps(offset, in.size(), kOffCommand, 2)) push_command();
    if (overlaps(offset, in.size(), msix_cap_ + 2, 2)) msix_control_changed();
}

// The guest's memory-decoding and bus-master bits to the device, INTx disabled there.
void PassthroughFunction::push_command() {
    std::uint16_t cmd = 0;
    if (auto r = io_.read(kConfigRegion, kOffCommand,
                          std::span(reinterpret_cast<std::uint8_t*>(&cmd), 2));
        !r) {
        warnings().warn("{}: reading the command register: {}", setup_.name, r.error().message);
        return;
    }
    cmd = static_cast<std::uint16_t>((cmd & ~(kDeviceCommandBits | kCommandIo)) |
                                     (config_.u16(kOffCommand) & kDeviceCommandBits) |
                                     kCommandIntxDisable);
    if (auto r = io_.write(kConfigRegion, kOffCommand,
                           std::span(reinterpret_cast<const std::uint8_t*>(&cmd), 2));
        !r)
        warnings().warn("{}: writing the command register: {}", setup_.name, r.error().message);
}

void PassthroughFunction::msix_control_changed() {
    const std::uint16_t control = config_.u16(msix_cap_ + 2);
    const bool enable = (control & kMsixEnable) != 0;
    if (enable && !msix_on_device_) {
        std::vector<int> fds;
        for (std::uint16_t v = 0; v < msix_.vector_count(); ++v)
            fds.push_back(msix_.event_fd(v));
        if (auto r = io_.set_msix(fds); r)
            msix_on_device_ = true;
        else
            warnings().warn("{}: enabling MSI-X: {}", setup_.name, r.error().message);
    } else if (!enable && msix_on_device_) {
        if (auto r = io_.set_msix({}); !r)
            warnings().warn("{}: disabling MSI-X: {}", setup_.name, r.error().message);
        msix_on_device_ = false;
    }
    msix_.set_control(control);
}

bool PassthroughFunction::MsixPlace::covers(std::size_t b, std::uint64_t offset,
                                            std::size_t len) const {
    return b == bar && overlaps(offset, len, range.first, range.second);
}

void PassthroughFunction::bar_read(std::size_t bar, std::uint64_t offset,
                                   std::span<std::uint8_t> out) {
    std::fill(out.begin(), out.end(), 0xff);
    if (bar >= 6) return;
    std::lock_guard lock(mu_);
    if (table_.covers(bar, offset, out.size())) {
        if (offset >= table_.range.first) msix_.table_read(offset - table_.range.first, out);
        return;
    }
    if (pba_.covers(bar, offset, out.size())) {
        if (offset >= pba_.range.first) msix_.pba_read(offset - pba_.range.first, out);
        return;
    }
    const std::uint64_t size = setup_.bars[bar].size;
    if (offset >= size || out.size() > size - offset) return;  // the rounded-up tail
    if (auto r = io_.read(static_cast<std::uint32_t>(bar), offset, out); !r)
        std::fill(out.begin(), out.end(), 0xff);
}

void PassthroughFunction::bar_write(std::size_t bar, std::uint64_t offset,
                                    std::span<const std::uint8_t> in) {
    if (bar >= 6) return;
    std::lock_guard lock(mu_);
    if (table_.covers(bar, offset, in.size())) {
        if (offset >= table_.range.first) msix_.table_write(offset - table_.range.first, in);
        return;
    }
    if (pba_.covers(bar, offset, in.size())) return;  // read-only
    const std::uint64_t size = setup_.bars[bar].size;
    if (offset >= size || in.size() > size - offset) return;
    if (auto r = io_.write(static_cast<std::uint32_t>(bar), offset, in); !r)
        warnings().warn("{}: BAR {} write at {:#x}: {}", setup_.name, bar, offset,
                        r.error().message);
}

void PassthroughFunction::bar_placed(std::size_t bar, std::uint64_t address) {
    if (bar >= 6) return;
    std::lock_guard lock(mu_);
    for (std::uint32_t slot : bar_slots_[bar])
        if (auto r = slots_.unmap(slot); !r)
            warnings().warn("{}: BAR {}: {}", setup_.name, bar, r.error().message);
    bar_slots_[bar].clear();
    if (address == 0) return;
    for (const auto& [off, size] : direct(bar)) {
        auto slot = slots_.map(address + off, size, setup_.bars[bar].host + off);
        if (!slot) {
            // The part stays reachable through the trapped path, only slower.
            warnings().warn("{}: BAR {} at {:#x}: {}", setup_.name, bar, address + off,
                            slot.error().message);
            continue;
        }
        bar_slots_[bar].push_back(*slot);
    }
}

}  // namespace stockade::pci
