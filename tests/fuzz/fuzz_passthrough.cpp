// libFuzzer target: a passed-through PCI function (runner/pci/passthrough.hpp) made from an
// arbitrary host configuration space and BAR layout, then driven by an arbitrary guest
// through the PCI bus: configuration writes of every size anywhere (BARs, command, MSI-X
// control), trapped BAR reads and writes at any offset. It must never crash, never reach
// the device outside BARs 0-5 and their real sizes or outside the configuration space, and
// never map a memory slot that is not inside a mappable BAR.
//
// Input: 256 bytes of configuration space; 6 BAR bytes (bits 0-3: size 2^(n%8+8), 0 = none;
// bit 4: mmap-able; bit 5: 64-bit); 1 byte of MSI-X vectors VFIO offers; then operations of
// 8 bytes: kind, target (register or BAR), size exponent, spare, offset (u16), value (u16).
#include <array>
#include <cstdint>
#include <cstring>
#include <map>
#include <vector>

#include "base/log.hpp"
#include "runner/devices/bus.hpp"
#include "runner/pci/passthrough.hpp"
#include "runner/pci/pci_bus.hpp"

using namespace stockade;

namespace {

struct Router : kvm::MsiRouter {
    std::uint32_t next = kvm::kFirstMsiGsi;
    Result<std::uint32_t> allocate_msi() override { return next++; }
    Result<> set_msi(std::uint32_t, std::uint64_t, std::uint32_t) override { return {}; }
    Result<> attach(std::uint32_t, int) override { return {}; }
    Result<> detach(std::uint32_t, int) override { return {}; }
};

struct Io : pci::PassthroughIo {
    std::array<std::uint8_t, pci::kConfigSize> config{};
    std::array<std::uint64_t, 6> sizes{};
    void check(std::uint32_t region, std::uint64_t offset, std::size_t len) const {
        if (region == pci::kConfigRegion) {
            if (offset + len > pci::kConfigSize) __builtin_trap();
            return;
        }
        if (region >= 6 || offset >= sizes[region] || len > sizes[region] - offset)
            __builtin_trap();
    }
    Result<> read(std::uint32_t region, std::uint64_t offset,
                  std::span<std::uint8_t> out) override {
        check(region, offset, out.size());
        if (region == pci::kConfigRegion)
            std::memcpy(out.data(), config.data() + offset, out.size());
        return {};
    }
    Result<> write(std::uint32_t region, std::uint64_t offset,
                   std::span<const std::uint8_t> in) override {
        check(region, offset, in.size());
        return {};
    }
    Result<> set_msix(std::span<const int> fds) override {
        for (int fd : fds)
            if (fd < 0) __builtin_trap();
        return {};
    }
};

struct Slots : pci::BarSlots {
    std::vector<std::pair<std::uint8_t*, std::uint64_t>> backing;  // per BAR: host, size
    std::map<std::uint32_t, int> live;
    std::uint32_t next = 0;
    Result<std::uint32_t> map(std::uint64_t gpa, std::uint64_t size, void* host) override {
        const auto* h = static_cast<std::uint8_t*>(host);
        bool inside = false;
        for (const auto& [base, len] : backing)
            inside |= base != nullptr && h >= base && size <= len && h + size <= base + len;
        if (!inside || size == 0 || size % 4096 != 0 || gpa % 4096 != 0) __builtin_trap();
        live[next] = 1;
        return next++;
    }
    Result<> unmap(std::uint32_t slot) override {
        if (!live.erase(slot)) __builtin_trap();
        return {};
    }
};

constexpr std::size_t kHeader = pci::kConfigSize + 6 + 1;
constexpr pci::MmioWindows kWindows{0xc000'0000, 0xe000'0000, 0x10'0000'0000, 0x20'0000'0000};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    log::set_level(log::Level::error);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < kHeader) return 0;
    Io io;
    std::memcpy(io.config.data(), data, pci::kConfigSize);
    pci::PassthroughSetup setup;
    setup.name = "fuzz";
    setup.config = io.config;
    std::array<std::vector<std::uint8_t>, 6> memory;
    Slots slots;
    for (std::size_t i = 0; i < 6; ++i) {
        const std::uint8_t b = data[pci::kConfigSize + i];
        if ((b & 15) == 0) {
            slots.backing.emplace_back(nullptr, 0);
            continue;
        }
        const std::uint64_t bar_size = std::uint64_t{1} << ((b & 15) % 8 + 8);  // 256 B .. 32 KiB
        io.sizes[i] = bar_size;
        setup.bars[i].size = bar_size;
        setup.bars[i].is_64bit = b & 0x20;
        if (b & 0x10) {
            memory[i].assign(bar_size, 0);
            setup.bars[i].host = memory[i].data();
            setup.bars[i].mappable = {{0, bar_size}};
        }
        slots.backing.emplace_back(setup.bars[i].host, setup.bars[i].host ? bar_size : 0);
    }
    setup.msix_vectors = 1 + data[pci::kConfigSize + 6] % 32;
    Router router;
    auto f = pci::PassthroughFunction::create(std::move(setup), io, slots, router);
    if (!f) return 0;
    Bus mmio("mmio");
    pci::PciBus bus(mmio, kWindows);
    auto slot = bus.add(**f);
    if (!slot) return 0;
    std::array<std::uint8_t, 8> buf{};
    for (std::size_t at = kHeader; at + 8 <= size; at += 8) {
        const std::uint8_t* op = data + at;
        const std::size_t len = std::size_t{1} << (op[2] % 4);
        std::uint16_t offset, value;
        std::memcpy(&offset, op + 4, 2);
        std::memcpy(&value, op + 6, 2);
        std::memcpy(buf.data(), &value, 2);
        switch (op[0] % 3) {
            case 0:
                if (op[1] + std::min<std::size_t>(len, 4) <= pci::kConfigSize)
                    bus.config_write(*slot, op[1],
                                     std::span(buf.data(), std::min<std::size_t>(len, 4)));
                break;
            case 1:
                (*f)->bar_read(op[1] % 8, offset, std::span(buf.data(), len));
                break;
            case 2:
                (*f)->bar_write(op[1] % 8, offset, std::span(buf.data(), len));
                break;
        }
    }
    return 0;
}
